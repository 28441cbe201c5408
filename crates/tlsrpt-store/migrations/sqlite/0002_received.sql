-- Received reports (the receiver's output, the API's input). REQUIREMENTS RCV-09, RCV-11.
--
-- One row per accepted report in `received_reports`, with the report as the strict writer
-- prints it (raw deflate: as text it was the largest column, ~3× the gzip original), the
-- reader's deviations (JSON array), and, in `received_raw`, the original bytes
-- gzip-compressed for audit (`raw_encoding` says whether they were compressed by us, `gzip`,
-- or already gzip as received, `stored-gzip`). Normalised child tables make the report queryable by policy
-- domain, policy type, MX host, result type, receiving IP without parsing JSON.
--
-- De-duplication (RFC 8460 §5.3 "duplicate reports", REQUIREMENTS RCV-09) is enforced by the
-- database: a unique index on (organization_name, report_id, start_ts, end_ts) per status.
-- It is partial per status on purpose: a forged (rejected) copy must not occupy the key and
-- turn the genuine signed report that arrives later into a "duplicate".
-- `organization_name` is '' when the report has none (NULLs would never collide).
-- Timestamps are RFC 3339 UTC text with whole seconds ('YYYY-MM-DDTHH:MM:SSZ'), so text
-- order is time order.

CREATE TABLE received_reports (
    id                  INTEGER PRIMARY KEY,
    organization_name   TEXT    NOT NULL,
    report_id           TEXT    NOT NULL,
    start_ts            TEXT    NOT NULL,
    end_ts              TEXT    NOT NULL,
    contact_info        TEXT,
    report_json         BLOB    NOT NULL, -- raw deflate of the strict JSON
    deviations          TEXT    NOT NULL,
    deviation_count     INTEGER NOT NULL CHECK (deviation_count >= 0),
    successful_sessions INTEGER NOT NULL CHECK (successful_sessions >= 0),
    failed_sessions     INTEGER NOT NULL CHECK (failed_sessions >= 0),
    raw_encoding        TEXT    NOT NULL CHECK (raw_encoding IN ('gzip', 'stored-gzip')),
    raw_size            INTEGER NOT NULL CHECK (raw_size >= 0),
    via                 TEXT    NOT NULL CHECK (via IN ('https', 'mail')),
    dkim                TEXT    NOT NULL CHECK (dkim IN ('pass', 'fail', 'none', 'skipped')),
    dkim_domain         TEXT,
    dkim_selector       TEXT,
    submitter           TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('stored', 'rejected')),
    reject_reason       TEXT,
    received_at         TEXT    NOT NULL
);

CREATE UNIQUE INDEX received_reports_dedupe
    ON received_reports (organization_name, report_id, start_ts, end_ts, status);
CREATE INDEX received_reports_start ON received_reports (start_ts);
CREATE INDEX received_reports_status ON received_reports (status, id);

-- The original bytes, apart from the report row: a report row with ~1 KiB of original bytes
-- inline no longer fits twice in a 4 KiB page, which left ~40% of the table's pages empty.
-- Apart, both tables pack their pages (and listing scans skip the blobs).
CREATE TABLE received_raw (
    report INTEGER PRIMARY KEY REFERENCES received_reports (id) ON DELETE CASCADE,
    raw    BLOB    NOT NULL
);

-- One row per `policies[]` entry; `idx` is its position in the report.
CREATE TABLE received_policies (
    report        INTEGER NOT NULL REFERENCES received_reports (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    policy_type   TEXT    NOT NULL,
    policy_domain TEXT,
    successful    INTEGER NOT NULL CHECK (successful >= 0),
    failed        INTEGER NOT NULL CHECK (failed >= 0),
    PRIMARY KEY (report, idx)
) WITHOUT ROWID;

CREATE INDEX received_policies_domain ON received_policies (policy_domain, report);
CREATE INDEX received_policies_type ON received_policies (policy_type, report);

-- One row per `mx-host` entry of a policy.
CREATE TABLE received_mx_hosts (
    report     INTEGER NOT NULL REFERENCES received_reports (id) ON DELETE CASCADE,
    policy_idx INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    mx_host    TEXT    NOT NULL,
    PRIMARY KEY (report, policy_idx, idx)
) WITHOUT ROWID;

CREATE INDEX received_mx_hosts_host ON received_mx_hosts (mx_host);

-- One row per `failure-details[]` entry, values verbatim as sent (an `x.x.x.x` receiving IP
-- is kept as text; the strict writer in report_json omits it).
CREATE TABLE received_failures (
    report                 INTEGER NOT NULL REFERENCES received_reports (id) ON DELETE CASCADE,
    policy_idx             INTEGER NOT NULL,
    idx                    INTEGER NOT NULL,
    result_type            TEXT    NOT NULL,
    sending_mta_ip         TEXT,
    receiving_mx_hostname  TEXT,
    receiving_mx_helo      TEXT,
    receiving_ip           TEXT,
    failed_session_count   INTEGER NOT NULL CHECK (failed_session_count >= 0),
    additional_information TEXT,
    failure_reason_code    TEXT,
    PRIMARY KEY (report, policy_idx, idx)
) WITHOUT ROWID;

CREATE INDEX received_failures_result ON received_failures (result_type);
CREATE INDEX received_failures_receiving_ip ON received_failures (receiving_ip);
