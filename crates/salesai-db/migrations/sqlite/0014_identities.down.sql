DROP TABLE server_facts;
DROP TABLE identities;
