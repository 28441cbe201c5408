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
//! * **Group commit**: concurrent [`Store::insert_received`] calls are written together, up to
//!   64 reports per transaction (see `GroupCommit`); each caller still gets its own outcome.
//!   Within a batch the first copy of a key is stored and later copies are duplicates of it;
//!   a report the database refuses fails alone (the batch is retried one report at a time).
//!   Storage: the strict JSON is raw-deflated and the original bytes live in their own table
//!   (`received_raw`), which took a stored 1 KiB gzip report from ~7.0 to ~4.8 KB.
//! * **Retention** (REQUIREMENTS SEC-08): [`Store::prune_received`] deletes reports whose
//!   date-range end, or receipt time if earlier, is before a cut-off (`[receiver]
//!   retention_days`, pruned hourly by `tlsrpt serve`). A pruned report is forgotten by
//!   de-duplication too: a late copy of it is stored again.

use std::io::{Read, Write};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};
use tlsrpt_core::deviation::Deviation;
use tlsrpt_core::report::Report;

use crate::sqlite::{SqliteStore, classify, push_placeholders};
use crate::{Backend, Store, StoreError, normalize_domain};

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
    /// Stores a received report with its normalised rows, atomically (in one transaction,
    /// shared with the other reports being stored at the same moment), unless the same report
    /// (organization-name, report-id, date-range, status) is already stored: then nothing is
    /// written and the existing id is returned (REQUIREMENTS RCV-09).
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

    /// Deletes, in one transaction, every received report (stored and rejected alike) that
    /// expired before `cutoff`, with its policies, MX hosts, failure details, deviations and
    /// original bytes; returns how many reports were deleted.
    ///
    /// Why: reports name third-party IP addresses and hosts, so they are kept only as long as
    /// the operator's retention rule says (REQUIREMENTS SEC-08). A report expires by the
    /// earlier of its date-range end and its receipt time: the end is how old its data is,
    /// and the receipt time bounds a report claiming an end in the future, which would
    /// otherwise be kept forever. Rejected rows go by the same rule (they hold the same kind of
    /// data, and their date range is always known: a report is stored only once read).
    ///
    /// De-duplication (RCV-09) only knows the reports still stored: a copy of a pruned report
    /// that arrives again is stored again (and pruned again at the next run).
    pub async fn prune_received(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => prune(s, cutoff).await,
        }
    }

    /// Who sent the reports stored since `since`: one row per distinct (submitter header,
    /// contact-info, organization-name, UTC day of arrival) with its number of reports, at
    /// most [`MAX_SENDER_ROWS`] (busiest first). Only reports that are not rejected and either
    /// came by HTTPS or passed DKIM count: unverified mail says nothing about who sent it.
    /// The receiver ranks its top senders from these (REQUIREMENTS SEC-01: keep capacity in
    /// reserve for the top senders), by the days on which they reported, which a sender
    /// cannot fake the way it can fake a report's own dates or send many reports at once.
    pub async fn received_senders(
        &self,
        since: Timestamp,
    ) -> Result<Vec<ReceivedSender>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => senders(s, since).await,
        }
    }
}

/// Most rows [`Store::received_senders`] returns.
pub const MAX_SENDER_ROWS: u32 = 50_000;

/// One group of [`Store::received_senders`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSender {
    /// The mail's `TLS-Report-Submitter` header (`None` for HTTPS).
    pub submitter: Option<String>,
    /// `contact-info`.
    pub contact_info: Option<String>,
    /// `organization-name` (empty when the report had none).
    pub organization_name: String,
    /// The UTC day the reports arrived, `YYYY-MM-DD`.
    pub day: String,
    /// Reports from this sender stored on that day.
    pub reports: u64,
}

/// The cut-off for [`Store::prune_received`] when reports are kept `retention_days` days:
/// `now - retention_days × 24 h`, or `None` (prune nothing) when `retention_days` is 0, the
/// operator's "keep forever" (REQUIREMENTS SEC-08), or when the cut-off would lie before the
/// calendar's start (nothing is older than that).
pub fn received_cutoff(now: Timestamp, retention_days: u32) -> Option<Timestamp> {
    if retention_days == 0 {
        return None;
    }
    now.checked_sub(jiff::SignedDuration::from_hours(
        i64::from(retention_days) * 24,
    ))
    .ok()
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

/// Most reports one group commit writes (one multi-row `INSERT` of at most 20 × 64 bound
/// parameters, far below SQLite's 32,766).
const MAX_BATCH: usize = 64;

/// Largest strict JSON [`Store::get_received`] inflates (a damaged row cannot make it
/// allocate without bound; the reader's own input limit is far below this).
const MAX_JSON_BYTES: u64 = 1 << 28;

/// Received reports waiting to be written: the group-commit queue of one store.
///
/// Why: a transaction per report under the store's write lock costs a commit and ~6
/// statement round trips to SQLite's worker thread per report, which capped intake near
/// 1,400 reports/s on 2 cores. Instead every caller queues its prepared rows here and waits
/// for the write lock; whoever gets the lock writes everything queued (up to [`MAX_BATCH`])
/// in ONE transaction with multi-row statements and answers each caller through its oneshot.
/// Callers that were written by an earlier lock holder find their answer as soon as they get
/// the lock. No timer, no background task: under no load a batch is one report and costs
/// what it did before; under load batches grow by themselves.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: std::sync::Mutex<std::collections::VecDeque<Pending>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = self.queue.lock().map(|q| q.len()).unwrap_or(0);
        f.debug_struct("GroupCommit")
            .field("queued", &queued)
            .finish()
    }
}

impl GroupCommit {
    fn push(&self, p: Pending) {
        // A poisoned queue only means another caller panicked while pushing or draining;
        // the VecDeque itself is still consistent.
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(p);
    }

    fn take(&self, max: usize) -> Vec<Pending> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }
}

type Answer = Result<InsertOutcome, StoreError>;

struct Pending {
    row: Prepared,
    done: tokio::sync::oneshot::Sender<Answer>,
}

struct PolicyRow {
    idx: i64,
    policy_type: String,
    policy_domain: Option<String>,
    successful: i64,
    failed: i64,
}

/// One report encoded for the database: everything is computed before the write lock.
pub(crate) struct Prepared {
    org: String,
    report_id: String,
    start: String,
    end: String,
    contact_info: Option<String>,
    /// The strict JSON, raw-deflate compressed (it is ~3× the size of the gzip original).
    json: Vec<u8>,
    deviations: String,
    deviation_count: i64,
    successful: i64,
    failed: i64,
    raw: Vec<u8>,
    raw_encoding: &'static str,
    raw_size: i64,
    via: &'static str,
    dkim: &'static str,
    dkim_domain: Option<String>,
    dkim_selector: Option<String>,
    submitter: Option<String>,
    status: &'static str,
    reject_reason: Option<String>,
    received_at: String,
    policies: Vec<PolicyRow>,
    /// `[policy_idx, idx, mx_host]` rows.
    mx_hosts: Vec<serde_json::Value>,
    /// `[policy_idx, idx, result_type, …]` rows (see [`FAILURE_SQL`]).
    failures: Vec<serde_json::Value>,
}

impl Prepared {
    fn key(&self) -> (&str, &str, &str, &str, &str) {
        (
            &self.org,
            &self.report_id,
            &self.start,
            &self.end,
            self.status,
        )
    }
}

thread_local! {
    /// One raw-deflate compressor per thread, reset between reports: a fresh one allocates
    /// and zeroes ~300 KiB of window and tables, which cost more than compressing a 4 KiB
    /// report (perf: memset and page faults at ~7% of the receiver's CPU).
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        // Level 6: ~9% smaller than `fast` on a typical report, which lets three report rows
        // share a 4 KiB page instead of two.
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::default(), false));
}

fn deflate(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Unavailable(format!("compressing the report JSON: {e}"))
    };
    DEFLATE.with(|c| {
        let mut c = c.try_borrow_mut().map_err(|e| fail(&e))?;
        c.reset();
        let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let input = bytes.get(consumed..).unwrap_or_default();
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            match c
                .compress_vec(input, &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| fail(&e))?
            {
                flate2::Status::StreamEnd => return Ok(out),
                flate2::Status::Ok | flate2::Status::BufError => {}
            }
        }
    })
}

fn inflate_json(id: i64, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::DeflateDecoder::new(bytes)
        .take(MAX_JSON_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Corrupt(format!("report {id}: stored JSON: {e}")))?;
    Ok(out)
}

pub(crate) fn prepare(r: &ReceivedReport) -> Result<Prepared, StoreError> {
    let report = &r.report;
    let json = deflate(tlsrpt_core::write::to_json(report).as_bytes())?;
    let deviations = serde_json::to_string(&r.deviations)
        .map_err(|e| StoreError::Unavailable(format!("encoding deviations: {e}")))?;
    let totals = tlsrpt_core::accounting::session_totals(report);
    let (raw, raw_encoding) = compress(&r.raw)?;

    let mut policies = Vec::with_capacity(report.policies.len());
    let mut mx_hosts = Vec::new();
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
            mx_hosts.push(serde_json::json!([pi, mi, mx.as_str()]));
        }
        for (fi, f) in p.failure_details.iter().enumerate() {
            failures.push(serde_json::json!([
                pi,
                fi,
                f.result_type.as_str(),
                f.sending_mta_ip.as_deref(),
                f.receiving_mx_hostname.as_deref(),
                f.receiving_mx_helo.as_deref(),
                f.receiving_ip.as_deref(),
                to_sql(f.failed_session_count),
                f.additional_information.as_deref(),
                f.failure_reason_code.as_deref(),
            ]));
        }
    }
    Ok(Prepared {
        org: report.organization_name.clone().unwrap_or_default(),
        report_id: report.report_id.clone(),
        start: ts_text(report.date_range.start),
        end: ts_text(report.date_range.end),
        contact_info: report.contact_info.clone(),
        json,
        deviations,
        deviation_count: to_sql(r.deviations.len() as u64),
        successful: to_sql(totals.total_successful_session_count),
        failed: to_sql(totals.total_failure_session_count),
        raw,
        raw_encoding,
        raw_size: to_sql(r.raw.len() as u64),
        via: r.via.as_str(),
        dkim: r.dkim.as_str(),
        dkim_domain: r.dkim_domain.clone(),
        dkim_selector: r.dkim_selector.clone(),
        submitter: r.submitter.clone(),
        status: r.status.as_str(),
        reject_reason: r.reject_reason.clone(),
        received_at: ts_text(r.received_at),
        policies,
        mx_hosts,
        failures,
    })
}

async fn insert(s: &SqliteStore, r: &ReceivedReport) -> Result<InsertOutcome, StoreError> {
    // Everything is encoded before the write lock is taken. Encoding a large report (the
    // strict JSON, compressing a 20 MiB message) takes tens of milliseconds: off the async
    // worker, so the requests queued behind it move to another thread.
    let row = if r.raw.len() >= BLOCKING_RAW_BYTES && multi_thread_runtime() {
        tokio::task::block_in_place(|| prepare(r))?
    } else {
        prepare(r)?
    };
    let (done, mut answer) = tokio::sync::oneshot::channel();
    s.received_queue().push(Pending { row, done });
    loop {
        let _guard = s.write_lock().lock().await;
        match answer.try_recv() {
            Ok(a) => return a,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(lost()),
        }
        let batch = s.received_queue().take(MAX_BATCH);
        if batch.is_empty() {
            // Taken by a writer that was interrupted before answering.
            return Err(lost());
        }
        // The batch is written by its own task so that a caller that gives up (an HTTP
        // request timing out) cannot abandon the other callers' reports half-way.
        let pool = s.pool().clone();
        let writer = tokio::spawn(async move { write_batch(&pool, batch).await });
        if writer.await.is_err() {
            tracing::error!("the received-report writer task failed");
        }
        // Our report may be in a later batch (more than MAX_BATCH were queued ahead of us):
        // loop, taking the lock again.
    }
}

/// Reports whose original bytes are at least this large are encoded with `block_in_place`.
const BLOCKING_RAW_BYTES: usize = 256 * 1024;

/// `block_in_place` panics on a current-thread runtime (tests, one-shot CLI commands).
fn multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .unwrap_or(false)
}

fn lost() -> StoreError {
    StoreError::Unavailable(
        "the write of this report was interrupted; its outcome is unknown (retrying is safe: \
         a stored copy is answered as a duplicate)"
            .into(),
    )
}

/// Writes a batch in one transaction and answers every caller. When the batch fails because
/// of one row's data (a constraint, a value SQLite refuses), each report is retried in its
/// own transaction so one bad report cannot fail its neighbours; when it fails because the
/// database is unavailable (busy, full, I/O), every caller gets that error at once.
async fn write_batch(pool: &sqlx::SqlitePool, batch: Vec<Pending>) {
    let rows: Vec<&Prepared> = batch.iter().map(|p| &p.row).collect();
    let answers = match write_rows(pool, &rows).await {
        Ok(answers) => answers,
        Err((e, row_level)) if !row_level || batch.len() == 1 => {
            batch.iter().map(|_| Err(e.clone_message())).collect()
        }
        Err((e, _)) => {
            tracing::debug!(error = %e, size = batch.len(), "batch failed; writing its reports one by one");
            let mut answers = Vec::with_capacity(batch.len());
            for row in &rows {
                answers.push(match write_rows(pool, &[row]).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| Err(lost())),
                    Err((e, _)) => Err(e),
                });
            }
            answers
        }
    };
    for (p, a) in batch.into_iter().zip(answers) {
        // The caller may have given up waiting: its report is stored all the same.
        let _ = p.done.send(a);
    }
}

trait CloneMessage {
    fn clone_message(&self) -> StoreError;
}

impl CloneMessage for StoreError {
    fn clone_message(&self) -> StoreError {
        match self {
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Migration(m) => StoreError::Migration(m.clone()),
            StoreError::InvalidUrl { url, reason } => StoreError::InvalidUrl {
                url: url.clone(),
                reason: reason.clone(),
            },
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// True when a failed statement failed because of the data of a row (so the other rows of
/// its batch may well succeed alone), not because the database is unavailable.
fn row_level(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db
        .code()
        .and_then(|c| c.parse::<i64>().ok())
        .map(|c| c & 0xff);
    // SQLITE_ERROR (e.g. a value a function refuses), SQLITE_TOOBIG, SQLITE_CONSTRAINT
    // (CHECK, NOT NULL, a trigger's RAISE), SQLITE_MISMATCH, SQLITE_RANGE.
    matches!(code, Some(1 | 18 | 19 | 20 | 25))
}

type RowsError = (StoreError, bool);

fn fail(context: &'static str) -> impl Fn(sqlx::Error) -> RowsError {
    move |e| {
        let level = row_level(&e);
        (classify(context, e), level)
    }
}

const REPORT_COLUMNS: usize = 20;

const MX_SQL: &str = "INSERT INTO received_mx_hosts (report, policy_idx, idx, mx_host) \
     SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)";

/// One fixed statement per child table (prepared once per connection): the rows travel as
/// one JSON array, so a batch of any size is one round trip per table.
const FAILURE_SQL: &str = "INSERT INTO received_failures (report, policy_idx, idx, result_type, \
     sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, \
     failed_session_count, additional_information, failure_reason_code) \
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
     value->>7, value->>8, value->>9, value->>10 FROM json_each(?)";

const POLICY_SQL: &str = "INSERT INTO received_policies (report, idx, policy_type, \
     policy_domain, successful, failed) \
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 \
     FROM json_each(?)";

/// Writes `rows` in one transaction. Duplicates, against the table or inside `rows`, are
/// found by the database's unique index (`ON CONFLICT DO NOTHING`): SQLite inserts the
/// `VALUES` rows in order, so the first copy in the batch is the one stored and later copies
/// are answered as duplicates of it. The `Err` flag says whether the failure is row-level.
async fn write_rows(pool: &sqlx::SqlitePool, rows: &[&Prepared]) -> Result<Vec<Answer>, RowsError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(fail("starting a write transaction"))?;

    let mut sql = String::from(
        "INSERT INTO received_reports (organization_name, report_id, start_ts, end_ts, \
         contact_info, report_json, deviations, deviation_count, successful_sessions, \
         failed_sessions, raw_encoding, raw_size, via, dkim, dkim_domain, dkim_selector, \
         submitter, status, reject_reason, received_at) VALUES ",
    );
    push_placeholders(&mut sql, rows.len(), REPORT_COLUMNS);
    sql.push_str(
        " ON CONFLICT DO NOTHING \
         RETURNING id, organization_name, report_id, start_ts, end_ts, status",
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for r in rows {
        q = q
            .bind(r.org.as_str())
            .bind(r.report_id.as_str())
            .bind(r.start.as_str())
            .bind(r.end.as_str())
            .bind(r.contact_info.as_deref())
            .bind(r.json.as_slice())
            .bind(r.deviations.as_str())
            .bind(r.deviation_count)
            .bind(r.successful)
            .bind(r.failed)
            .bind(r.raw_encoding)
            .bind(r.raw_size)
            .bind(r.via)
            .bind(r.dkim)
            .bind(r.dkim_domain.as_deref())
            .bind(r.dkim_selector.as_deref())
            .bind(r.submitter.as_deref())
            .bind(r.status)
            .bind(r.reject_reason.as_deref())
            .bind(r.received_at.as_str());
    }
    let returned = q
        .fetch_all(&mut *tx)
        .await
        .map_err(fail("inserting received reports"))?;
    let mut inserted: std::collections::HashMap<(String, String, String, String, String), i64> =
        std::collections::HashMap::with_capacity(returned.len());
    for row in &returned {
        let get = fail("reading inserted ids");
        let id: i64 = row.try_get(0).map_err(&get)?;
        let key = (
            row.try_get(1).map_err(&get)?,
            row.try_get(2).map_err(&get)?,
            row.try_get(3).map_err(&get)?,
            row.try_get(4).map_err(&get)?,
            row.try_get(5).map_err(&get)?,
        );
        inserted.insert(key, id);
    }

    // Assign: the first row of each inserted key is Stored, any other is a duplicate.
    let mut answers: Vec<Answer> = Vec::with_capacity(rows.len());
    let mut seen: std::collections::HashMap<(&str, &str, &str, &str, &str), i64> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut policies = Vec::new();
    let mut mx_hosts = Vec::new();
    let mut failures = Vec::new();
    let mut raws: Vec<(i64, &[u8])> = Vec::new();
    for r in rows {
        let key = r.key();
        if let Some(id) = seen.get(&key) {
            answers.push(Ok(InsertOutcome::Duplicate(*id)));
            continue;
        }
        let owned = (
            key.0.to_owned(),
            key.1.to_owned(),
            key.2.to_owned(),
            key.3.to_owned(),
            key.4.to_owned(),
        );
        if let Some(id) = inserted.get(&owned).copied() {
            seen.insert(key, id);
            answers.push(Ok(InsertOutcome::Stored(id)));
            raws.push((id, r.raw.as_slice()));
            for p in &r.policies {
                policies.push(serde_json::json!([
                    id,
                    p.idx,
                    p.policy_type,
                    p.policy_domain,
                    p.successful,
                    p.failed
                ]));
            }
            for m in &r.mx_hosts {
                mx_hosts.push(with_id(id, m));
            }
            for f in &r.failures {
                failures.push(with_id(id, f));
            }
            continue;
        }
        // Conflicted with a row stored before this batch (or by another process).
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM received_reports WHERE organization_name = ? AND report_id = ? \
             AND start_ts = ? AND end_ts = ? AND status = ?",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(key.2)
        .bind(key.3)
        .bind(key.4)
        .fetch_optional(&mut *tx)
        .await
        .map_err(fail("looking up a duplicate report"))?;
        match existing {
            Some(id) => {
                seen.insert(key, id);
                answers.push(Ok(InsertOutcome::Duplicate(id)));
            }
            None => answers.push(Err(StoreError::Unavailable(
                "insert conflicted but no duplicate row was found".into(),
            ))),
        }
    }

    if !raws.is_empty() {
        let mut sql = String::from("INSERT INTO received_raw (report, raw) VALUES ");
        push_placeholders(&mut sql, raws.len(), 2);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, raw) in &raws {
            q = q.bind(*id).bind(*raw);
        }
        q.execute(&mut *tx)
            .await
            .map_err(fail("inserting original bytes"))?;
    }
    for (sql, rows, what) in [
        (POLICY_SQL, policies, "inserting received policies"),
        (MX_SQL, mx_hosts, "inserting received MX hosts"),
        (FAILURE_SQL, failures, "inserting received failure details"),
    ] {
        if rows.is_empty() {
            continue;
        }
        let text = serde_json::Value::Array(rows).to_string();
        sqlx::query(sql)
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(fail(what))?;
    }
    tx.commit()
        .await
        .map_err(fail("committing received reports"))?;
    Ok(answers)
}

/// `[id, …row]`.
fn with_id(id: i64, row: &serde_json::Value) -> serde_json::Value {
    let mut out = Vec::with_capacity(12);
    out.push(serde_json::Value::from(id));
    if let serde_json::Value::Array(items) = row {
        out.extend(items.iter().cloned());
    }
    serde_json::Value::Array(out)
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
    let report_json: Vec<u8> = row.try_get(18).map_err(get)?;
    let report_json = inflate_json(id, &report_json)?;
    let deviations_json: String = row.try_get(19).map_err(get)?;
    let report = serde_json::from_slice(&report_json)
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

/// `DELETE` of the expired reports; its expression is the one indexed by
/// `received_reports_expiry` (migration 0004), so the prune reads only the expired rows.
const PRUNE_SQL: &str = "DELETE FROM received_reports WHERE min(end_ts, received_at) < ?";

/// REQUIREMENTS SEC-08: see [`Store::prune_received`]. The child rows (`received_raw`,
/// `received_policies`, `received_mx_hosts`, `received_failures`) go with their report by
/// their `ON DELETE CASCADE` foreign keys (migration 0002; every connection enables foreign
/// keys, sqlite.rs), inside the same transaction, so no report is ever left half-deleted.
async fn prune(s: &SqliteStore, cutoff: Timestamp) -> Result<u64, StoreError> {
    // Stored timestamps are whole-second RFC 3339 UTC text, so text order is time order.
    let cut = ts_text(cutoff);
    // This process's writers (the group commit) wait for the lock instead of meeting a busy
    // database half-way through their batch.
    let _guard = s.write_lock().lock().await;
    let mut tx = s
        .pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| classify("starting a received-report prune", e))?;
    // `rows_affected` counts the reports only, not the rows deleted by the cascade.
    let n = sqlx::query(PRUNE_SQL)
        .bind(&cut)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify("pruning received reports", e))?
        .rows_affected();
    tx.commit()
        .await
        .map_err(|e| classify("committing the received-report prune", e))?;
    Ok(n)
}

async fn senders(s: &SqliteStore, since: Timestamp) -> Result<Vec<ReceivedSender>, StoreError> {
    let rows = sqlx::query(
        "SELECT submitter, contact_info, organization_name, substr(received_at, 1, 10) AS day, \
         count(*) AS n FROM received_reports \
         WHERE status = 'stored' AND dkim IN ('pass', 'skipped') AND received_at >= ? \
         GROUP BY submitter, contact_info, organization_name, day ORDER BY n DESC LIMIT ?",
    )
    .bind(ts_text(since))
    .bind(i64::from(MAX_SENDER_ROWS))
    .fetch_all(s.pool())
    .await
    .map_err(|e| classify("counting received reports by sender", e))?;
    rows.iter()
        .map(|row| {
            let get = |e| classify("reading a sender row", e);
            Ok(ReceivedSender {
                submitter: row.try_get("submitter").map_err(get)?,
                contact_info: row.try_get("contact_info").map_err(get)?,
                organization_name: row.try_get("organization_name").map_err(get)?,
                day: row.try_get("day").map_err(get)?,
                reports: from_sql("report count", row.try_get("n").map_err(get)?)?,
            })
        })
        .collect()
}

async fn get_raw(s: &SqliteStore, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query(
        "SELECT w.raw, r.raw_encoding, r.raw_size \
         FROM received_reports r JOIN received_raw w ON w.report = r.id WHERE r.id = ?",
    )
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

#[cfg(test)]
mod tests {
    //! One batch written directly (the integration tests cannot choose what lands in a batch).

    use super::*;
    use crate::StoreOptions;

    fn report(id: &str) -> ReceivedReport {
        let text = format!(
            r#"{{"organization-name":"o.example","date-range":{{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"}},"contact-info":"x@o.example","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-domain":"example.net","mx-host":["mx.example.net"]}},"summary":{{"total-successful-session-count":3,"total-failure-session-count":1}},"failure-details":[{{"result-type":"validation-failure","receiving-ip":"x.x.x.x","failed-session-count":1}}]}}]}}"#
        );
        let r = tlsrpt_core::read::read_report(text.as_bytes(), &Default::default())
            .map_err(|e| e.to_string())
            .unwrap();
        ReceivedReport {
            report: r.report,
            deviations: r.deviations,
            raw: text.into_bytes(),
            via: ReceivedVia::Https,
            dkim: DkimStatus::Skipped,
            dkim_domain: None,
            dkim_selector: None,
            submitter: None,
            status: ReceivedStatus::Stored,
            reject_reason: None,
            received_at: Timestamp::now(),
        }
    }

    #[test]
    fn the_reused_compressor_round_trips_any_size() {
        // Incompressible input outgrows the first output buffer; reuse must reset the state.
        let mut x: u64 = 8460;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        for input in [&b""[..], b"{\"a\":1}", &noise, b"again"] {
            let z = deflate(input).unwrap();
            assert_eq!(inflate_json(1, &z).unwrap(), input);
        }
    }

    async fn batch(s: &SqliteStore, ids: &[&str]) -> Vec<Answer> {
        let mut pending = Vec::new();
        let mut answers = Vec::new();
        for id in ids {
            let (done, rx) = tokio::sync::oneshot::channel();
            pending.push(Pending {
                row: prepare(&report(id)).unwrap(),
                done,
            });
            answers.push(rx);
        }
        write_batch(s.pool(), pending).await;
        let mut out = Vec::new();
        for rx in answers {
            out.push(rx.await.unwrap());
        }
        out
    }

    /// REQUIREMENTS SEC-08: the hourly prune finds expired reports through the expression
    /// index of migration 0004, not by reading every report row under the write lock.
    #[tokio::test]
    async fn sec_08_prune_uses_the_expiry_index() {
        let s = SqliteStore::open("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {PRUNE_SQL}")))
                .bind("2025-01-01T00:00:00Z")
                .fetch_all(s.pool())
                .await
                .unwrap();
        let text: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(
            text.iter().any(|t| t.contains("received_reports_expiry")),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.starts_with("SCAN")), "{text:?}");
    }

    #[test]
    fn sec_08_cutoff_is_retention_days_before_now_and_zero_keeps_forever() {
        let now: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(received_cutoff(now, 0), None);
        assert_eq!(
            received_cutoff(now, 1),
            Some("2026-02-28T12:00:00Z".parse().unwrap())
        );
        assert_eq!(
            received_cutoff(now, 400),
            Some("2025-01-25T12:00:00Z".parse().unwrap())
        );
        // Beyond the calendar's start: nothing can be older, so nothing is pruned.
        assert_eq!(received_cutoff(now, u32::MAX), None);
    }

    #[tokio::test]
    async fn rcv_09_duplicates_inside_one_batch_and_a_bad_neighbour() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let s = SqliteStore::open(&url, &StoreOptions::default())
            .await
            .unwrap();

        // The group commit relies on the pool's WAL journal and synchronous=NORMAL (one
        // fsync-free commit per batch; durable across a process crash).
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(sync, 1, "synchronous=NORMAL");

        // Two copies of `a` in one batch: the database keeps the first, names it for the second.
        let out = batch(&s, &["a", "b", "a", "c", "a"]).await;
        let ids: Vec<InsertOutcome> = out.into_iter().map(|a| a.unwrap()).collect();
        let InsertOutcome::Stored(a) = ids[0] else {
            panic!("{ids:?}")
        };
        assert!(matches!(ids[1], InsertOutcome::Stored(b) if b != a));
        assert_eq!(ids[2], InsertOutcome::Duplicate(a));
        assert!(matches!(ids[3], InsertOutcome::Stored(c) if c != a));
        assert_eq!(ids[4], InsertOutcome::Duplicate(a));
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM received_failures")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(rows, 3, "child rows written once per stored report");

        // A later batch: copies of stored reports are duplicates; a row the database refuses
        // fails alone and its neighbours are stored.
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON received_reports \
             WHEN NEW.report_id = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(s.pool())
        .await
        .unwrap();
        let out = batch(&s, &["d", "b", "bad", "e", "d"]).await;
        let InsertOutcome::Stored(d) = *out[0].as_ref().unwrap() else {
            panic!("{out:?}")
        };
        assert!(matches!(out[1], Ok(InsertOutcome::Duplicate(x)) if x != d));
        assert!(out[2].as_ref().unwrap_err().to_string().contains("refused"));
        assert!(matches!(out[3], Ok(InsertOutcome::Stored(_))));
        assert!(matches!(out[4], Ok(InsertOutcome::Duplicate(x)) if x == d));
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM received_reports")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(n, 5);
        let raws: i64 = sqlx::query_scalar("SELECT count(*) FROM received_raw")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(raws, 5);
    }
}
