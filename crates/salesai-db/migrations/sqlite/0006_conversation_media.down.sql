UPDATE conversations SET metadata = json_patch(metadata, json_object(
    'media', media_kind, 'format', media_format, 'bytes', media_bytes, 'file_name', file_name));
ALTER TABLE conversations DROP COLUMN file_name;
ALTER TABLE conversations DROP COLUMN media_bytes;
ALTER TABLE conversations DROP COLUMN media_format;
ALTER TABLE conversations DROP COLUMN media_kind;
