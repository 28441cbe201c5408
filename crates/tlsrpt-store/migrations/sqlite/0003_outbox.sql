-- The reporter's outbox: reports built from the collected counters, where each goes, and
-- every delivery attempt (RFC 8460 §4.1, §5.5; REQUIREMENTS RPT-04, DLV-03..DLV-07).
--
-- Times are Unix seconds (UTC). `day` is 'YYYY-MM-DD'.
--
-- One report per (day, policy domain, record): the UNIQUE constraint makes building a day
-- idempotent, so rebuilding never mints a second report-id for the same data (RPT-04).
--
-- A report first waits for its random send time (`next_at`, RPT-03), then its destinations
-- are discovered (`_smtp._tls` looked up at send time, DNS-19); status:
--   discovering -> sending -> delivered (>= 1 destination accepted, DLV-05)
--                          -> failed    (every destination gave up)
--              -> none                  (no usable TLSRPT record, DNS-18 / RPT-01)
-- `lease_until`/`claim_token` make the discovery step claimable by one process at a time.

CREATE TABLE outbox_reports (
    report_id     TEXT    NOT NULL PRIMARY KEY,
    day           TEXT    NOT NULL,
    policy_domain TEXT    NOT NULL,
    record        TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    gzip          BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'discovering'
                  CHECK (status IN ('discovering', 'sending', 'delivered', 'failed', 'none')),
    next_at       INTEGER NOT NULL,
    deadline      INTEGER NOT NULL,
    lookups       INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER,
    claim_token   TEXT,
    last_error    TEXT,
    UNIQUE (day, policy_domain, record)
);

CREATE INDEX outbox_reports_due ON outbox_reports (status, next_at);

-- Each (report, destination URI). Status:
--   queued -> claimed -> delivered | queued (retry later) | failed (permanent or 24 h over)
--   suppressed (by a rule or the suppression list; never sent)
-- A `claimed` row whose lease expired (its process died) is claimable again.
CREATE TABLE outbox_destinations (
    report_id        TEXT    NOT NULL REFERENCES outbox_reports (report_id) ON DELETE CASCADE,
    destination      TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued', 'claimed', 'delivered', 'failed', 'suppressed')),
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    claim_token      TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at INTEGER,
    last_error       TEXT,
    PRIMARY KEY (report_id, destination)
);

CREATE INDEX outbox_destinations_due ON outbox_destinations (status, next_attempt_at);

-- Every attempt: DNS lookups (destination 'dns:_smtp._tls.<domain>') and deliveries.
CREATE TABLE outbox_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   TEXT    NOT NULL REFERENCES outbox_reports (report_id) ON DELETE CASCADE,
    destination TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

CREATE INDEX outbox_attempts_report ON outbox_attempts (report_id, destination, id);

-- Addresses that bounced permanently (DLV-07): not sent to until `expires_at`.
CREATE TABLE suppression_list (
    address    TEXT    NOT NULL PRIMARY KEY,
    reason     TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
