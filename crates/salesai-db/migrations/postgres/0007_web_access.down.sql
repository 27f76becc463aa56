DROP INDEX conversations_created_idx;
DROP TABLE web_sessions;
DROP TABLE login_links;
DROP TABLE team_managers;
DROP INDEX users_team_idx;
ALTER TABLE users DROP COLUMN deactivated_at;
