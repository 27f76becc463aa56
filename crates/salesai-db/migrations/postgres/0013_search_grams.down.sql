DROP TABLE search_grams;
