//! Received reports: what the receiver (HTTPS endpoint, `tlsrpt ingest`) stores and the JSON
//! API reads back.
//!
//! Each report is stored once per status with its deviations, its original bytes
//! (gzip-compressed, for audit: REQUIREMENTS RCV-11) and normalised rows per policy, MX host
//! and failure detail, so it can be queried by day, reporting organisation, policy domain,
//! policy type, MX host, receiving IP and result type (migration `0002_received.sql`).
//!
//! # Decisions where the RFC is silent
//!
//! * **Duplicate key** (RFC 8460 §5.3, REQUIREMENTS RCV-09): (organization-name, report-id,
//!   date-range start, date-range end), compared exactly, enforced by a unique index so two
//!   copies racing in (HTTPS and mail at once) are stored once. RCV-09 suggests the submitter
//!   domain instead of the organisation name; HTTPS reports have no submitter, so the only key
//!   both intakes share is inside the JSON.
//! * **Per status**: a forged copy kept as `rejected` does not occupy the key of the genuine
//!   report (otherwise an attacker could pre-empt a domain's reports by mailing forgeries
//!   first). A report stored unverified under `dkim = "prefer"` does occupy it: a later
//!   verified copy is a duplicate.
//! * **Session totals** are [`tlsrpt_core::accounting::session_totals`], which never counts a
//!   session reported under both `sts` and `tlsa` twice (REQUIREMENTS JSON-30, RPT-15).
//! * **Day filters** match reports whose date-range overlaps the UTC days `from ..= to`.

use std::io::{Read, Write};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};
use tlsrpt_core::deviation::Deviation;
use tlsrpt_core::report::Report;

use crate::sqlite::{SqliteStore, classify};
use crate::{Backend, Store, StoreError, normalize_domain};

/// Rows per multi-row `INSERT` for the child tables (at most 11 parameters per row, far below
/// SQLite's bound-parameter limit).
const BATCH_ROWS: usize = 256;

/// Most rows [`Store::list_received`] returns when the query sets no limit.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Most rows [`Store::list_received`] returns whatever the query asks (bounded work per API
/// call).
pub const MAX_LIST_LIMIT: u32 = 1000;

/// How the report arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedVia {
    /// POST to the HTTPS endpoint (RFC 8460 §5.4).
    Https,
    /// Email (RFC 8460 §5.3): a pipe, a maildir, later IMAP or SMTP.
    Mail,
}

impl ReceivedVia {
    /// `https` or `mail`, as stored and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceivedVia::Https => "https",
            ReceivedVia::Mail => "mail",
        }
    }
}

/// The DKIM outcome recorded with a report (RFC 8460 §3, REQUIREMENTS RCV-01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimStatus {
    /// An acceptable signature by the reporting domain verified.
    Pass,
    /// Signatures were present but none was acceptable.
    Fail,
    /// The message carried no DKIM signature.
    None,
    /// Not checked: HTTPS intake, or `dkim = "off"`.
    Skipped,
}

impl DkimStatus {
    /// `pass`, `fail`, `none` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimStatus::Pass => "pass",
            DkimStatus::Fail => "fail",
            DkimStatus::None => "none",
            DkimStatus::Skipped => "skipped",
        }
    }
}

/// Whether a stored report counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedStatus {
    /// Accepted: listed by default.
    Stored,
    /// Kept for audit but ignored (RFC 8460 §3: no valid DKIM signature); listed only when
    /// asked for.
    Rejected,
}

impl ReceivedStatus {
    /// `stored` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceivedStatus::Stored => "stored",
            ReceivedStatus::Rejected => "rejected",
        }
    }
}

/// A report to store, as the receiver's pipeline made it.
#[derive(Clone, Debug)]
pub struct ReceivedReport {
    /// The report as read by the lenient reader.
    pub report: Report,
    /// What the reader (and the message checks) tolerated.
    pub deviations: Vec<Deviation>,
    /// The original bytes as received (the whole message for mail, the body for HTTPS);
    /// stored gzip-compressed.
    pub raw: Vec<u8>,
    /// How it arrived.
    pub via: ReceivedVia,
    /// The DKIM outcome.
    pub dkim: DkimStatus,
    /// `d=` of the signature that passed, or of the first one tried.
    pub dkim_domain: Option<String>,
    /// `s=` (selector) of that signature.
    pub dkim_selector: Option<String>,
    /// The `TLS-Report-Submitter` header (mail only).
    pub submitter: Option<String>,
    /// Stored or kept as rejected.
    pub status: ReceivedStatus,
    /// Why it was rejected (or, for reports stored unverified, why DKIM did not pass).
    pub reject_reason: Option<String>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// What [`Store::insert_received`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored under this id.
    Stored(i64),
    /// The same report (same key, same status) was already stored under this id; nothing was
    /// written.
    Duplicate(i64),
}

/// Which statuses [`Store::list_received`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusFilter {
    /// Only accepted reports (the default: rejected ones are shown only when asked for).
    #[default]
    Stored,
    /// Only reports kept as rejected.
    Rejected,
    /// Both.
    All,
}

/// Filters for [`Store::list_received`]. All are optional and combine with AND.
#[derive(Clone, Debug, Default)]
pub struct ReceivedQuery {
    /// A policy domain the report covers (compared lower-cased, without a trailing dot).
    pub policy_domain: Option<String>,
    /// The reporting organisation (`organization-name`), compared case-insensitively.
    pub organization: Option<String>,
    /// First UTC day: reports whose date-range ends after its start.
    pub from: Option<Date>,
    /// Last UTC day: reports whose date-range starts before the day after it.
    pub to: Option<Date>,
    /// Which statuses.
    pub status: StatusFilter,
    /// Most rows; default [`DEFAULT_LIST_LIMIT`], capped at [`MAX_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// Rows to skip (paging).
    pub offset: u32,
}

/// One element of the API's report list: exactly
/// `{"id","organization_name","report_id","start","end","policy_domains","successful_sessions",
/// "failed_sessions","deviations","dkim","received_via"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceivedSummary {
    /// Row id.
    pub id: i64,
    /// `organization-name`, verbatim (may contain HTML: escape it when showing it).
    pub organization_name: Option<String>,
    /// `report-id`, verbatim.
    pub report_id: String,
    /// Date-range start, RFC 3339 UTC.
    pub start: String,
    /// Date-range end, RFC 3339 UTC.
    pub end: String,
    /// Distinct policy domains, sorted.
    pub policy_domains: Vec<String>,
    /// Sessions, each counted once (see the module docs).
    pub successful_sessions: u64,
    /// Sessions, each counted once.
    pub failed_sessions: u64,
    /// How many deviations were recorded.
    pub deviations: u64,
    /// `pass`, `fail`, `none` or `skipped`.
    pub dkim: String,
    /// `https` or `mail`.
    pub received_via: String,
    /// `stored` or `rejected` (not serialised: the list element is fixed by the API).
    #[serde(skip)]
    pub status: String,
}

/// A deviation as stored (its rule id is owned text once read back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDeviation {
    /// JSON path or message location.
    pub path: String,
    /// REQUIREMENTS rule id.
    pub rule: String,
    /// What was tolerated.
    pub message: String,
}

/// A failure detail as stored, values verbatim as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceivedFailure {
    /// Index of the policy in `policies`.
    pub policy_index: u32,
    /// Its `policy-type`.
    pub policy_type: String,
    /// Its `policy-domain` (normalised).
    pub policy_domain: Option<String>,
    /// `result-type`.
    pub result_type: String,
    /// `sending-mta-ip`, verbatim.
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`, verbatim (not necessarily an address).
    pub receiving_ip: Option<String>,
    /// `failed-session-count`.
    pub failed_session_count: u64,
    /// `additional-information` (a URI; never dereferenced, REQUIREMENTS RCV-08).
    pub additional_information: Option<String>,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
}

/// Everything stored about one report, for `GET /api/v1/reports/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedDetail {
    /// The list element.
    pub summary: ReceivedSummary,
    /// `stored` or `rejected`.
    pub status: String,
    /// Why it was rejected (or stored unverified).
    pub reject_reason: Option<String>,
    /// When it arrived, RFC 3339 UTC.
    pub received_at: String,
    /// `d=` of the deciding DKIM signature.
    pub dkim_domain: Option<String>,
    /// `s=` of that signature.
    pub dkim_selector: Option<String>,
    /// `TLS-Report-Submitter`.
    pub submitter: Option<String>,
    /// `contact-info`.
    pub contact_info: Option<String>,
    /// Size of the original bytes.
    pub raw_size: u64,
    /// The report as the strict writer prints it (RFC 8460 §4.4 JSON).
    pub report: serde_json::Value,
    /// Every deviation recorded.
    pub deviations: Vec<StoredDeviation>,
    /// Every failure detail, verbatim.
    pub failure_details: Vec<ReceivedFailure>,
}

impl Store {
    /// Stores a received report with its normalised rows, in one transaction, unless the same
    /// report (organization-name, report-id, date-range, status) is already stored: then
    /// nothing is written and the existing id is returned (REQUIREMENTS RCV-09).
    pub async fn insert_received(&self, r: &ReceivedReport) -> Result<InsertOutcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => insert(s, r).await,
        }
    }

    /// Lists received reports, newest date-range first.
    pub async fn list_received(
        &self,
        q: &ReceivedQuery,
    ) -> Result<Vec<ReceivedSummary>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => list(s, q).await,
        }
    }

    /// One received report with its deviations and failure details; `None` if no such id.
    pub async fn get_received(&self, id: i64) -> Result<Option<ReceivedDetail>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => get(s, id).await,
        }
    }

    /// The original bytes of a received report, decompressed; `None` if no such id.
    pub async fn get_received_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => get_raw(s, id).await,
        }
    }
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(what: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative {what} {n}")))
}

fn ts_text(ts: Timestamp) -> String {
    tlsrpt_core::write::format_datetime(ts)
}

fn day_start(d: Date) -> String {
    format!("{d}T00:00:00Z")
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `(bytes, encoding)`: input that is already gzip is kept as it came (it is the original);
/// anything else is compressed.
fn compress(raw: &[u8]) -> Result<(Vec<u8>, &'static str), StoreError> {
    if raw.starts_with(&GZIP_MAGIC) {
        return Ok((raw.to_vec(), "stored-gzip"));
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(raw)
        .and_then(|()| enc.finish())
        .map(|v| (v, "gzip"))
        .map_err(|e| StoreError::Unavailable(format!("compressing the original bytes: {e}")))
}

struct PolicyRow {
    idx: i64,
    policy_type: String,
    policy_domain: Option<String>,
    successful: i64,
    failed: i64,
}

async fn insert(s: &SqliteStore, r: &ReceivedReport) -> Result<InsertOutcome, StoreError> {
    // Everything is encoded before the write lock is taken.
    let report = &r.report;
    let org = report.organization_name.clone().unwrap_or_default();
    let start = ts_text(report.date_range.start);
    let end = ts_text(report.date_range.end);
    let json = tlsrpt_core::write::to_json(report);
    let deviations = serde_json::to_string(&r.deviations)
        .map_err(|e| StoreError::Unavailable(format!("encoding deviations: {e}")))?;
    let totals = tlsrpt_core::accounting::session_totals(report);
    let (raw, raw_encoding) = compress(&r.raw)?;

    let mut policies = Vec::with_capacity(report.policies.len());
    let mut mx_rows: Vec<(i64, i64, &str)> = Vec::new();
    let mut failures = Vec::new();
    for (pi, p) in report.policies.iter().enumerate() {
        let pi = i64::try_from(pi).unwrap_or(i64::MAX);
        policies.push(PolicyRow {
            idx: pi,
            policy_type: p.policy.policy_type.as_str().to_owned(),
            policy_domain: p.policy.policy_domain.as_deref().map(normalize_domain),
            successful: to_sql(p.summary.total_successful_session_count),
            failed: to_sql(p.summary.total_failure_session_count),
        });
        for (mi, mx) in p.policy.mx_host.iter().enumerate() {
            mx_rows.push((pi, i64::try_from(mi).unwrap_or(i64::MAX), mx.as_str()));
        }
        for (fi, f) in p.failure_details.iter().enumerate() {
            failures.push((pi, i64::try_from(fi).unwrap_or(i64::MAX), f));
        }
    }

    let _guard = s.write_lock().lock().await;
    let mut tx = s
        .pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| classify("starting a write transaction", e))?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO received_reports (organization_name, report_id, start_ts, end_ts, \
         contact_info, report_json, deviations, deviation_count, successful_sessions, \
         failed_sessions, raw, raw_encoding, raw_size, via, dkim, dkim_domain, dkim_selector, \
         submitter, status, reject_reason, received_at) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&org)
    .bind(&report.report_id)
    .bind(&start)
    .bind(&end)
    .bind(report.contact_info.as_deref())
    .bind(&json)
    .bind(&deviations)
    .bind(to_sql(r.deviations.len() as u64))
    .bind(to_sql(totals.total_successful_session_count))
    .bind(to_sql(totals.total_failure_session_count))
    .bind(&raw)
    .bind(raw_encoding)
    .bind(to_sql(r.raw.len() as u64))
    .bind(r.via.as_str())
    .bind(r.dkim.as_str())
    .bind(r.dkim_domain.as_deref())
    .bind(r.dkim_selector.as_deref())
    .bind(r.submitter.as_deref())
    .bind(r.status.as_str())
    .bind(r.reject_reason.as_deref())
    .bind(ts_text(r.received_at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| classify("inserting a received report", e))?;

    let Some(id) = inserted else {
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM received_reports WHERE organization_name = ? AND report_id = ? \
             AND start_ts = ? AND end_ts = ? AND status = ?",
        )
        .bind(&org)
        .bind(&report.report_id)
        .bind(&start)
        .bind(&end)
        .bind(r.status.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| classify("looking up a duplicate report", e))?;
        tx.rollback()
            .await
            .map_err(|e| classify("ending a read", e))?;
        return existing.map(InsertOutcome::Duplicate).ok_or_else(|| {
            StoreError::Unavailable("insert conflicted but no duplicate row was found".into())
        });
    };

    for chunk in policies.chunks(BATCH_ROWS) {
        let mut sql = String::from(
            "INSERT INTO received_policies (report, idx, policy_type, policy_domain, successful, failed) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 6);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for p in chunk {
            q = q
                .bind(id)
                .bind(p.idx)
                .bind(p.policy_type.as_str())
                .bind(p.policy_domain.as_deref())
                .bind(p.successful)
                .bind(p.failed);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| classify("inserting received policies", e))?;
    }
    for chunk in mx_rows.chunks(BATCH_ROWS) {
        let mut sql = String::from(
            "INSERT INTO received_mx_hosts (report, policy_idx, idx, mx_host) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 4);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (pi, mi, mx) in chunk {
            q = q.bind(id).bind(*pi).bind(*mi).bind(*mx);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| classify("inserting received MX hosts", e))?;
    }
    for chunk in failures.chunks(BATCH_ROWS) {
        let mut sql = String::from(
            "INSERT INTO received_failures (report, policy_idx, idx, result_type, sending_mta_ip, \
             receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, \
             additional_information, failure_reason_code) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 11);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (pi, fi, f) in chunk {
            q = q
                .bind(id)
                .bind(*pi)
                .bind(*fi)
                .bind(f.result_type.as_str())
                .bind(f.sending_mta_ip.as_deref())
                .bind(f.receiving_mx_hostname.as_deref())
                .bind(f.receiving_mx_helo.as_deref())
                .bind(f.receiving_ip.as_deref())
                .bind(to_sql(f.failed_session_count))
                .bind(f.additional_information.as_deref())
                .bind(f.failure_reason_code.as_deref());
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| classify("inserting received failure details", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| classify("committing a received report", e))?;
    Ok(InsertOutcome::Stored(id))
}

fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
}

const SUMMARY_COLUMNS: &str = "r.id, r.organization_name, r.report_id, r.start_ts, r.end_ts, \
     r.successful_sessions, r.failed_sessions, r.deviation_count, r.dkim, r.via, r.status";

fn summary_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ReceivedSummary, StoreError> {
    let get = |e| classify("reading a received report", e);
    let org: String = row.try_get(1).map_err(get)?;
    Ok(ReceivedSummary {
        id: row.try_get(0).map_err(get)?,
        organization_name: (!org.is_empty()).then_some(org),
        report_id: row.try_get(2).map_err(get)?,
        start: row.try_get(3).map_err(get)?,
        end: row.try_get(4).map_err(get)?,
        policy_domains: Vec::new(),
        successful_sessions: from_sql("successful sessions", row.try_get(5).map_err(get)?)?,
        failed_sessions: from_sql("failed sessions", row.try_get(6).map_err(get)?)?,
        deviations: from_sql("deviation count", row.try_get(7).map_err(get)?)?,
        dkim: row.try_get(8).map_err(get)?,
        received_via: row.try_get(9).map_err(get)?,
        status: row.try_get(10).map_err(get)?,
    })
}

async fn policy_domains(s: &SqliteStore, id: i64) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT DISTINCT policy_domain FROM received_policies \
         WHERE report = ? AND policy_domain IS NOT NULL ORDER BY policy_domain",
    )
    .bind(id)
    .fetch_all(s.pool())
    .await
    .map_err(|e| classify("reading policy domains", e))
}

async fn list(s: &SqliteStore, q: &ReceivedQuery) -> Result<Vec<ReceivedSummary>, StoreError> {
    let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM received_reports r WHERE 1=1");
    let mut binds: Vec<String> = Vec::new();
    match q.status {
        StatusFilter::Stored => sql.push_str(" AND r.status = 'stored'"),
        StatusFilter::Rejected => sql.push_str(" AND r.status = 'rejected'"),
        StatusFilter::All => {}
    }
    if let Some(d) = &q.policy_domain {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM received_policies p WHERE p.report = r.id \
             AND p.policy_domain = ?)",
        );
        binds.push(normalize_domain(d));
    }
    if let Some(o) = &q.organization {
        sql.push_str(" AND r.organization_name = ? COLLATE NOCASE");
        binds.push(o.clone());
    }
    if let Some(from) = q.from {
        sql.push_str(" AND r.end_ts > ?");
        binds.push(day_start(from));
    }
    if let Some(to) = q.to {
        sql.push_str(" AND r.start_ts < ?");
        binds.push(match to.tomorrow() {
            Ok(next) => day_start(next),
            // The last representable day: every report starts before its end.
            Err(_) => "~".to_owned(),
        });
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT);
    sql.push_str(" ORDER BY r.start_ts DESC, r.id DESC LIMIT ? OFFSET ?");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query
        .bind(i64::from(limit))
        .bind(i64::from(q.offset))
        .fetch_all(s.pool())
        .await
        .map_err(|e| classify("listing received reports", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut summary = summary_from_row(row)?;
        summary.policy_domains = policy_domains(s, summary.id).await?;
        out.push(summary);
    }
    Ok(out)
}

async fn get(s: &SqliteStore, id: i64) -> Result<Option<ReceivedDetail>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, r.reject_reason, r.received_at, r.dkim_domain, \
         r.dkim_selector, r.submitter, r.contact_info, r.raw_size, r.report_json, r.deviations \
         FROM received_reports r WHERE r.id = ?"
    )))
    .bind(id)
    .fetch_optional(s.pool())
    .await
    .map_err(|e| classify("reading a received report", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let get = |e| classify("reading a received report", e);
    let mut summary = summary_from_row(&row)?;
    summary.policy_domains = policy_domains(s, id).await?;
    let report_json: String = row.try_get(18).map_err(get)?;
    let deviations_json: String = row.try_get(19).map_err(get)?;
    let report = serde_json::from_str(&report_json)
        .map_err(|e| StoreError::Corrupt(format!("report {id}: stored JSON: {e}")))?;
    let deviations = serde_json::from_str(&deviations_json)
        .map_err(|e| StoreError::Corrupt(format!("report {id}: stored deviations: {e}")))?;

    let frows = sqlx::query(
        "SELECT f.policy_idx, p.policy_type, p.policy_domain, f.result_type, f.sending_mta_ip, \
         f.receiving_mx_hostname, f.receiving_mx_helo, f.receiving_ip, f.failed_session_count, \
         f.additional_information, f.failure_reason_code \
         FROM received_failures f JOIN received_policies p \
           ON p.report = f.report AND p.idx = f.policy_idx \
         WHERE f.report = ? ORDER BY f.policy_idx, f.idx",
    )
    .bind(id)
    .fetch_all(s.pool())
    .await
    .map_err(|e| classify("reading failure details", e))?;
    let mut failure_details = Vec::with_capacity(frows.len());
    for f in &frows {
        let pi: i64 = f.try_get(0).map_err(get)?;
        failure_details.push(ReceivedFailure {
            policy_index: u32::try_from(pi)
                .map_err(|_| StoreError::Corrupt(format!("policy index {pi}")))?,
            policy_type: f.try_get(1).map_err(get)?,
            policy_domain: f.try_get(2).map_err(get)?,
            result_type: f.try_get(3).map_err(get)?,
            sending_mta_ip: f.try_get(4).map_err(get)?,
            receiving_mx_hostname: f.try_get(5).map_err(get)?,
            receiving_mx_helo: f.try_get(6).map_err(get)?,
            receiving_ip: f.try_get(7).map_err(get)?,
            failed_session_count: from_sql("failed session count", f.try_get(8).map_err(get)?)?,
            additional_information: f.try_get(9).map_err(get)?,
            failure_reason_code: f.try_get(10).map_err(get)?,
        });
    }
    Ok(Some(ReceivedDetail {
        status: summary.status.clone(),
        summary,
        reject_reason: row.try_get(11).map_err(get)?,
        received_at: row.try_get(12).map_err(get)?,
        dkim_domain: row.try_get(13).map_err(get)?,
        dkim_selector: row.try_get(14).map_err(get)?,
        submitter: row.try_get(15).map_err(get)?,
        contact_info: row.try_get(16).map_err(get)?,
        raw_size: from_sql("raw size", row.try_get(17).map_err(get)?)?,
        report,
        deviations,
        failure_details,
    }))
}

async fn get_raw(s: &SqliteStore, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query("SELECT raw, raw_encoding, raw_size FROM received_reports WHERE id = ?")
        .bind(id)
        .fetch_optional(s.pool())
        .await
        .map_err(|e| classify("reading original bytes", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let get = |e| classify("reading original bytes", e);
    let raw: Vec<u8> = row.try_get(0).map_err(get)?;
    let encoding: String = row.try_get(1).map_err(get)?;
    let size = from_sql("raw size", row.try_get(2).map_err(get)?)?;
    match encoding.as_str() {
        "stored-gzip" => Ok(Some(raw)),
        "gzip" => {
            // Bounded by the size recorded at insert time: a damaged row cannot inflate.
            let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26));
            let n = flate2::read::GzDecoder::new(raw.as_slice())
                .take(size.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| StoreError::Corrupt(format!("report {id}: original bytes: {e}")))?;
            if n as u64 != size {
                return Err(StoreError::Corrupt(format!(
                    "report {id}: original bytes are {n} bytes, {size} recorded"
                )));
            }
            Ok(Some(out))
        }
        other => Err(StoreError::Corrupt(format!(
            "report {id}: unknown raw encoding {other:?}"
        ))),
    }
}
