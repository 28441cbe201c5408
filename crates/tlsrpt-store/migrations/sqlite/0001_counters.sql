-- Collected counters (the collector's output, the reporter's input).
--
-- One row per (UTC day, policy domain, TLSRPT record, applied policy); failure details get
-- their own table keyed by the same columns plus the whole failure detail, so per-IP details
-- are never collapsed (RFC 8460 §4.4, REQUIREMENTS RPT-05, RPT-08).
--
-- `day` is 'YYYY-MM-DD' (UTC receive day), so text order is date order and pruning is a
-- range delete on the primary key's prefix. `policy` and `failure` hold canonical JSON text
-- (sorted keys, absent fields omitted) written only by tlsrpt-store's codec: equal keys give
-- equal text, which is what lets the primary keys enforce uniqueness.
-- Counters are only ever added to (ON CONFLICT DO UPDATE SET n = n + excluded.n).

CREATE TABLE policy_counters (
    day        TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    record     TEXT    NOT NULL,
    policy     TEXT    NOT NULL,
    successful INTEGER NOT NULL DEFAULT 0 CHECK (successful >= 0),
    failed     INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (day, domain, record, policy)
) WITHOUT ROWID;

CREATE TABLE failure_counters (
    day      TEXT    NOT NULL,
    domain   TEXT    NOT NULL,
    record   TEXT    NOT NULL,
    policy   TEXT    NOT NULL,
    failure  TEXT    NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0 CHECK (sessions >= 0),
    PRIMARY KEY (day, domain, record, policy, failure)
) WITHOUT ROWID;
