-- What was uploaded is a typed part of the conversation (audio or transcript, its format,
-- size and file name), no longer keys of the free-form metadata that the worker read back.
ALTER TABLE conversations ADD COLUMN media_kind TEXT CHECK (media_kind IN ('audio', 'transcript'));
ALTER TABLE conversations ADD COLUMN media_format TEXT;
ALTER TABLE conversations ADD COLUMN media_bytes INTEGER;
ALTER TABLE conversations ADD COLUMN file_name TEXT;
UPDATE conversations SET
    media_kind = CASE json_extract(metadata, '$.media')
        WHEN 'transcript' THEN 'transcript' WHEN 'audio' THEN 'audio' END,
    media_format = json_extract(metadata, '$.format'),
    media_bytes = COALESCE(json_extract(metadata, '$.bytes'), json_extract(metadata, '$.source_bytes')),
    file_name = json_extract(metadata, '$.file_name');
UPDATE conversations SET metadata = json_remove(metadata, '$.media', '$.format', '$.bytes', '$.source_bytes', '$.file_name');
