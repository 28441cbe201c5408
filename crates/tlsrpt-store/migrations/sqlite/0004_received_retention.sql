-- Retention of received reports (REQUIREMENTS SEC-08: reports name third-party IP addresses,
-- so they are not kept forever; `[receiver] retention_days`, tlsrpt_store::received).
--
-- A report expires by the earlier of its date-range end and its receipt time: the end says
-- how old the data is, and the receipt time bounds a report whose (forged or wrong) end lies
-- in the future, which would otherwise never expire. The expression index lets the hourly
-- prune find expired rows without scanning the whole table (the rows carry the report JSON,
-- so a scan would read most of the file every hour while holding the write lock).
--
-- Child rows (received_raw, received_policies, received_mx_hosts, received_failures) go with
-- their report through their ON DELETE CASCADE foreign keys (0002; foreign keys are on for
-- every connection, sqlite.rs).

CREATE INDEX received_reports_expiry ON received_reports (min(end_ts, received_at));
