DROP TRIGGER search_grams_fts_update;
DROP TRIGGER search_grams_fts_delete;
DROP TRIGGER search_grams_fts_insert;
DROP TABLE search_grams_fts;
DROP TABLE search_grams;
