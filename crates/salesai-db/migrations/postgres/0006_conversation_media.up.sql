-- What was uploaded is a typed part of the conversation (audio or transcript, its format,
-- size and file name), no longer keys of the free-form metadata that the worker read back.
ALTER TABLE conversations ADD COLUMN media_kind TEXT CHECK (media_kind IN ('audio', 'transcript'));
ALTER TABLE conversations ADD COLUMN media_format TEXT;
ALTER TABLE conversations ADD COLUMN media_bytes BIGINT;
ALTER TABLE conversations ADD COLUMN file_name TEXT;
UPDATE conversations SET
    media_kind = CASE metadata->>'media' WHEN 'transcript' THEN 'transcript' WHEN 'audio' THEN 'audio' END,
    media_format = metadata->>'format',
    media_bytes = CASE WHEN COALESCE(metadata->>'bytes', metadata->>'source_bytes') ~ '^[0-9]{1,18}$'
        THEN COALESCE(metadata->>'bytes', metadata->>'source_bytes')::bigint END,
    file_name = metadata->>'file_name';
UPDATE conversations SET metadata = metadata - 'media' - 'format' - 'bytes' - 'source_bytes' - 'file_name';
