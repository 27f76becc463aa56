DROP TABLE node_counters;
DROP TABLE alert_incidents;
