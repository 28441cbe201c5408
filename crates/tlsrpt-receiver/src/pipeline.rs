//! The one intake pipeline: bytes in (an HTTPS body or a mail message), a stored report (or a
//! clear reason) out.
//!
//! Every intake path calls [`Pipeline::ingest`]: the HTTPS endpoint, `tlsrpt ingest` from a
//! pipe or a maildir, and later IMAP and SMTP. The steps:
//!
//! 1. **Media type** (HTTPS only, RFC 8460 §5.4, REQUIREMENTS HTTP-02): `application/tlsrpt+gzip`
//!    and `application/tlsrpt+json` are accepted; `application/json`, `application/gzip`
//!    (`application/x-gzip`) and `Content-Encoding: gzip` are accepted with a deviation; a
//!    missing or other type is [`Rejected::UnsupportedMediaType`]. The body is decoded by its
//!    bytes (gzip magic), never by its label; a label that disagrees is noted.
//! 2. **Reading** with the core's lenient reader and its [`Limits`] (REQUIREMENTS RCV-07,
//!    RCV-11): every tolerated quirk becomes a stored deviation; an unusable report is
//!    [`Rejected::BadData`] naming the JSON path, and nothing is stored.
//! 3. **Sender limits** ([`crate::senders`], REQUIREMENTS SEC-01): reports per submitter,
//!    per passing DKIM domain, and for senders outside the top senders together. Over a limit
//!    is [`Rejected::RateLimited`], a temporary refusal. Off unless configured
//!    ([`PipelineOptions`]; `serve` turns them on).
//! 4. **DKIM** (mail only, RFC 8460 §3): see [`crate::dkim`]. Under `require` a report that
//!    does not pass is kept with status `rejected` and the reason ([`Accepted::Quarantined`]):
//!    never silently dropped. Under `prefer` it is stored, marked with its DKIM result. A DNS
//!    failure that prevents a verdict is [`Rejected::Unavailable`] (retry later), not a
//!    rejection.
//! 5. **Our domains** (REQUIREMENTS RCV-10, HTTP-07), when configured: a report none of
//!    whose policy domains is ours is kept as rejected with the reason (like a DKIM failure);
//!    a policy for a foreign domain inside a report that also covers ours is kept, flagged
//!    with a deviation.
//! 6. **Storage**: de-duplicated by the database (REQUIREMENTS RCV-09); the original bytes are
//!    kept compressed. Concurrent reports are written together in one transaction (the
//!    store's group commit), each still answered on its own.

use std::net::IpAddr;
use std::sync::Arc;

use tlsrpt_core::deviation::Deviation;
use tlsrpt_core::message::{self, MessageError};
use tlsrpt_core::read::{self, Limits, ReadError, Reading};
use tlsrpt_store::{
    DkimStatus, InsertOutcome, ReceivedReport, ReceivedStatus, ReceivedVia, Store, StoreError,
};

use crate::dkim::{Claims, DkimPolicy, DkimVerifier, Verdict};
use crate::senders::{Limited, SenderLimiter, SenderLimits, report_sender};
use tlsrpt_core::Report;

/// How a report arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// HTTPS POST (RFC 8460 §5.4): the body is the report, no DKIM.
    Https,
    /// Email (RFC 8460 §5.3): the bytes are the whole RFC 5322 message.
    Mail,
}

/// One arrival.
#[derive(Clone, Copy, Debug)]
pub struct Intake<'a> {
    /// The body (HTTPS) or the whole message (mail).
    pub bytes: &'a [u8],
    /// The path it came by.
    pub via: Via,
    /// HTTP `Content-Type` (HTTPS only).
    pub content_type: Option<&'a str>,
    /// HTTP `Content-Encoding` (HTTPS only).
    pub content_encoding: Option<&'a str>,
    /// The client's address, for logs.
    pub peer: Option<IpAddr>,
}

/// A report the pipeline took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored under this id.
    Stored {
        /// Row id.
        id: i64,
    },
    /// Already stored under this id (the sender must not retry: answer 2xx / exit 0).
    Duplicate {
        /// Row id of the earlier copy.
        id: i64,
    },
    /// Kept as rejected (DKIM policy), never silently dropped.
    Quarantined {
        /// Row id.
        id: i64,
        /// Why (the DKIM verdict).
        reason: String,
    },
}

/// Why a report was not taken. Nothing was stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The input is not a usable report (HTTP 400, sysexit 65 EX_DATAERR).
    #[error("bad data at {path}: {message}")]
    BadData {
        /// JSON path (`policies[0].summary.total-failure-session-count`), `$` for the whole
        /// document, or a message location (`message`, `header:...`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A size limit was exceeded (HTTP 413, sysexit 65).
    #[error("too large: over the limit {limit} = {max} bytes")]
    TooLarge {
        /// Which limit.
        limit: &'static str,
        /// Its value.
        max: usize,
    },
    /// The media type or content encoding is not one we take (HTTP 415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A temporary problem on our side: the store, or DNS for DKIM (HTTP 503, sysexit 75
    /// EX_TEMPFAIL). The sender should retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The sender is over a limit (REQUIREMENTS SEC-01; HTTP 429 with `Retry-After`, SMTP 451,
    /// sysexit 75). The sender should retry later.
    #[error("too many reports: {0}")]
    RateLimited(Limited),
}

impl Rejected {
    /// The sysexits(3) code an MTA pipe should see: 65 (EX_DATAERR) for bad input, 75
    /// (EX_TEMPFAIL) when retrying may help.
    pub fn sysexit(&self) -> u8 {
        match self {
            Rejected::Unavailable(_) | Rejected::RateLimited(_) => 75,
            _ => 65,
        }
    }
}

/// The intake pipeline. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone, Debug)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    limits: Limits,
    dkim: DkimVerifier,
    senders: SenderLimiter,
    our_domains: Vec<String>,
}

/// Optional intake rules; the default takes every report without limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Per-sender limits ([`crate::senders`]; REQUIREMENTS SEC-01).
    pub sender_limits: SenderLimits,
    /// Our domains (REQUIREMENTS RCV-10): a policy domain is ours when it is one of these or
    /// a subdomain of one (DANE reports name the MX host as the policy domain, RPT-15, so list
    /// the domains of your MX hosts too), in A-labels (case and a trailing dot do not
    /// matter). Empty: no check.
    pub our_domains: Vec<String>,
}

impl Default for PipelineOptions {
    /// No sender limits ([`SenderLimits::off`]) and no domain check.
    fn default() -> Self {
        PipelineOptions {
            sender_limits: SenderLimits::off(),
            our_domains: Vec::new(),
        }
    }
}

impl Pipeline {
    /// A pipeline storing into `store`, reading under `limits`, verifying mail with `dkim`,
    /// without sender limits (what `tlsrpt ingest` uses: a maildir backlog or an MTA pipe is
    /// the operator's own mail, already past the MTA's limits).
    pub fn new(store: Arc<Store>, limits: Limits, dkim: DkimVerifier) -> Self {
        Self::with_options(store, limits, dkim, PipelineOptions::default())
    }

    /// As [`Pipeline::new`], with the sender limits of [`crate::senders`] (what `serve`'s
    /// network intakes use) and our domains (RCV-10).
    pub fn with_options(
        store: Arc<Store>,
        limits: Limits,
        dkim: DkimVerifier,
        options: PipelineOptions,
    ) -> Self {
        Pipeline {
            inner: Arc::new(Inner {
                store,
                limits,
                dkim,
                senders: SenderLimiter::new(options.sender_limits),
                // Compared with policy domains in one spelling (lower-case A-labels, no
                // trailing dot), as the config loader also checks them.
                our_domains: options
                    .our_domains
                    .iter()
                    .map(|d| tlsrpt_core::domain::normalize_or_keep(d.trim()))
                    .filter(|d| !d.is_empty())
                    .collect(),
            }),
        }
    }

    /// The sender limiters, e.g. to refresh the top senders from the store.
    pub fn senders(&self) -> &SenderLimiter {
        &self.inner.senders
    }

    /// Reloads the top senders ([`crate::senders`]) from the reports stored over the last
    /// [`crate::senders::TOP_SENDERS_WINDOW_DAYS`] days; returns how many are known now.
    pub async fn refresh_top_senders(&self) -> Result<usize, StoreError> {
        let senders = &self.inner.senders;
        let want = senders.limits().top_senders;
        if want == 0 || senders.limits().new_senders_per_minute == 0 {
            return Ok(0);
        }
        let since = tlsrpt_store::received_cutoff(
            jiff::Timestamp::now(),
            crate::senders::TOP_SENDERS_WINDOW_DAYS,
        )
        .unwrap_or(jiff::Timestamp::MIN);
        let rows = self.inner.store.received_senders(since).await?;
        let ranked = crate::senders::rank_senders(rows.iter().map(|r| crate::senders::SenderDay {
            submitter: r.submitter.as_deref(),
            contact_info: r.contact_info.as_deref(),
            organization_name: Some(r.organization_name.as_str()).filter(|o| !o.is_empty()),
            day: &r.day,
            reports: r.reports,
        }));
        senders.set_top_senders(ranked);
        Ok(want.min(senders.top_senders_len()))
    }

    /// The store reports go to.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The reader limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Takes one report; see the module docs for the steps.
    pub async fn ingest(&self, intake: Intake<'_>) -> Result<Accepted, Rejected> {
        let limits = &self.inner.limits;
        if intake.bytes.len() > limits.max_input_bytes {
            return Err(Rejected::TooLarge {
                limit: "max_input_bytes",
                max: limits.max_input_bytes,
            });
        }
        let received_at = jiff::Timestamp::now();
        let mut record = match intake.via {
            Via::Https => {
                let reading = off_worker(intake.bytes.len(), || read_https(&intake, limits))?;
                let sender = report_sender(None, &reading.report);
                self.inner
                    .senders
                    .check_sender(&sender, std::time::Instant::now())
                    .map_err(Rejected::RateLimited)?;
                ReceivedReport {
                    report: reading.report,
                    deviations: reading.deviations,
                    raw: intake.bytes.to_vec(),
                    via: ReceivedVia::Https,
                    dkim: DkimStatus::Skipped,
                    dkim_domain: None,
                    dkim_selector: None,
                    submitter: None,
                    status: ReceivedStatus::Stored,
                    reject_reason: None,
                    received_at,
                }
            }
            Via::Mail => {
                let m = off_worker(intake.bytes.len(), || {
                    message::extract_report(intake.bytes, limits)
                })
                .map_err(message_error)?;
                let claims = Claims {
                    submitter: m.report_submitter.clone(),
                    contact_info: m.reading.report.contact_info.clone(),
                };
                let verdict = self
                    .inner
                    .dkim
                    .verify(intake.bytes, &claims)
                    .await
                    .map_err(|e| Rejected::Unavailable(e.to_string()))?;
                let sender = report_sender(m.report_submitter.as_deref(), &m.reading.report);
                self.check_mail_sender(&sender, &verdict)
                    .map_err(Rejected::RateLimited)?;
                let (status, reason) = decide(self.inner.dkim.policy(), &verdict);
                let mut deviations = m.reading.deviations;
                if let Some(d) = key_service_deviation(&verdict) {
                    deviations.push(d);
                }
                ReceivedReport {
                    report: m.reading.report,
                    deviations,
                    raw: intake.bytes.to_vec(),
                    via: ReceivedVia::Mail,
                    dkim: verdict.status,
                    dkim_domain: verdict.domain,
                    dkim_selector: verdict.selector,
                    submitter: m.report_submitter,
                    status,
                    reject_reason: reason,
                    received_at,
                }
            }
        };
        self.check_our_domains(&mut record);
        let status = record.status;
        let reason = record.reject_reason.clone();
        let outcome = self
            .inner
            .store
            .insert_received(&record)
            .await
            .map_err(store_error)?;
        let accepted = match (outcome, status) {
            (
                InsertOutcome::Stored(id) | InsertOutcome::Duplicate(id),
                ReceivedStatus::Rejected,
            ) => Accepted::Quarantined {
                id,
                reason: reason.unwrap_or_else(|| "rejected".into()),
            },
            (InsertOutcome::Stored(id), ReceivedStatus::Stored) => Accepted::Stored { id },
            (InsertOutcome::Duplicate(id), ReceivedStatus::Stored) => Accepted::Duplicate { id },
        };
        tracing::info!(
            via = ?intake.via,
            peer = ?intake.peer,
            organization = record.report.organization_name.as_deref().unwrap_or(""),
            report_id = %record.report.report_id,
            dkim = record.dkim.as_str(),
            deviations = record.deviations.len(),
            outcome = ?accepted,
            "report received"
        );
        Ok(accepted)
    }
}

impl Pipeline {
    /// The sender limits for mail, after DKIM (REQUIREMENTS SEC-01). A passing signature
    /// proves the signer and, through alignment, the submitter: the report spends that DKIM
    /// domain's allowance and the submitter's. Mail whose signature was checked and did not
    /// pass is counted under `unverified:<sender>`, never under the sender it names, so
    /// forgeries cannot use up (and so delay) a real sender's reports; it is never a top
    /// sender either. With DKIM off the claim is taken as it is, as for HTTPS.
    fn check_mail_sender(&self, sender: &str, verdict: &Verdict) -> Result<(), Limited> {
        let senders = &self.inner.senders;
        let now = std::time::Instant::now();
        match (verdict.status, verdict.domain.as_deref()) {
            (DkimStatus::Pass, Some(d)) => {
                senders.check_dkim_domain(d, now)?;
                senders.check_sender(sender, now)
            }
            (DkimStatus::Skipped, _) => senders.check_sender(sender, now),
            _ => senders.check_sender(&format!("unverified:{sender}"), now),
        }
    }

    /// REQUIREMENTS RCV-10, HTTP-07: with `our_domains` configured, a report that covers none
    /// of our domains is kept as rejected with the reason (unless already rejected, e.g. by
    /// DKIM, whose reason stays first); a foreign policy domain in a report that also covers
    /// ours is flagged with a deviation. Policies without a policy domain (seen from one
    /// sender) are neither ours nor foreign.
    fn check_our_domains(&self, record: &mut ReceivedReport) {
        let ours = &self.inner.our_domains;
        if ours.is_empty() {
            return;
        }
        let (mine, foreign) = classify_domains(&record.report, ours);
        if mine == 0 && !foreign.is_empty() {
            let mut names: Vec<&str> = foreign.iter().map(|(_, d)| d.as_str()).collect();
            names.dedup();
            let reason = format!(
                "RCV-10: no policy domain of this report is one of ours ([receiver] domains): {}",
                short(&names.join(", "))
            );
            if record.status != ReceivedStatus::Rejected {
                record.status = ReceivedStatus::Rejected;
                record.reject_reason = Some(reason);
            }
            return;
        }
        for (i, d) in foreign {
            record.deviations.push(Deviation::new(
                format!("policies[{i}].policy.policy-domain"),
                "RCV-10",
                format!(
                    "{:?} is not one of our domains ([receiver] domains); kept, flagged",
                    short(&d)
                ),
            ));
        }
    }
}

/// How many policies of `report` name one of `ours` (or a subdomain), and the index and
/// domain of each that names another.
fn classify_domains(report: &Report, ours: &[String]) -> (usize, Vec<(usize, String)>) {
    let mut mine = 0;
    let mut foreign = Vec::new();
    for (i, p) in report.policies.iter().enumerate() {
        let Some(d) = p.policy.policy_domain.as_deref() else {
            continue;
        };
        // U-labels (a JSON-17 deviation), upper case or a trailing dot still name our domain.
        let d = tlsrpt_core::domain::normalize_or_keep(d);
        let is_ours = ours
            .iter()
            .any(|o| d == *o || tlsrpt_core::domain::is_subdomain_of(&d, o));
        if is_ours {
            mine += 1;
        } else {
            foreign.push((i, d));
        }
    }
    (mine, foreign)
}

/// Inputs at least this large are read with [`tokio::task::block_in_place`].
const BLOCKING_INPUT_BYTES: usize = 256 * 1024;

/// Runs `f`, the CPU-heavy reading (gunzip, JSON, MIME) of an input of `len` bytes. A large
/// input (a 20 MiB report takes tens of milliseconds) is read with `block_in_place`, so the
/// other requests queued on this worker (there are only 2 workers) move to another thread
/// instead of waiting behind it. Small inputs, the common case, are read inline: handing them
/// to another thread would cost more than reading them. On a current-thread runtime (tests,
/// where `block_in_place` is not allowed) everything is read inline.
fn off_worker<R>(len: usize, f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if len >= BLOCKING_INPUT_BYTES && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// RFC 8460 §3: the signing key SHOULD carry `s=tlsrpt`. Not required (REQUIREMENTS RCV-03,
/// erratum 5889), but recorded with the report when it does not.
fn key_service_deviation(v: &Verdict) -> Option<Deviation> {
    if v.status != DkimStatus::Pass || !v.key_read {
        return None;
    }
    let listed = v.key_services.as_deref().is_some_and(|l| {
        l.split(':')
            .any(|s| s.trim().eq_ignore_ascii_case("tlsrpt"))
    });
    (!listed).then(|| {
        Deviation::new(
            "header:DKIM-Signature",
            "RCV-03",
            format!(
                "the DKIM key {}._domainkey.{} has {}; RFC 8460 §3 asks for s=tlsrpt (accepted)",
                v.selector.as_deref().unwrap_or(""),
                v.domain.as_deref().unwrap_or(""),
                match v.key_services.as_deref() {
                    Some(l) => format!("s={l}"),
                    None => "no s= tag".to_owned(),
                }
            ),
        )
    })
}

/// Status and reason under the policy (RFC 8460 §3, REQUIREMENTS RCV-01, SEC-09).
fn decide(policy: DkimPolicy, v: &Verdict) -> (ReceivedStatus, Option<String>) {
    match (v.status, policy) {
        (DkimStatus::Pass | DkimStatus::Skipped, _) | (_, DkimPolicy::Off) => {
            (ReceivedStatus::Stored, None)
        }
        (_, DkimPolicy::Prefer) => (
            ReceivedStatus::Stored,
            Some(format!(
                "unverified: {}",
                v.reason.as_deref().unwrap_or("DKIM did not pass")
            )),
        ),
        (_, DkimPolicy::Require) => (
            ReceivedStatus::Rejected,
            Some(format!(
                "RFC 8460 §3: no valid DKIM signature by the reporting domain: {}",
                v.reason.as_deref().unwrap_or("DKIM did not pass")
            )),
        ),
    }
}

/// The media type without parameters, lower case.
fn essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn read_https(intake: &Intake<'_>, limits: &Limits) -> Result<Reading, Rejected> {
    let mut devs = Vec::new();
    // REQUIREMENTS HTTP-02: the Content-Type says the compression.
    let declared_gzip = match intake.content_type.map(essence).as_deref() {
        Some("application/tlsrpt+gzip") => true,
        Some("application/tlsrpt+json") => false,
        Some(t @ "application/json") => {
            devs.push(Deviation::new(
                "http:Content-Type",
                "HTTP-02",
                format!("Content-Type {t} instead of application/tlsrpt+json"),
            ));
            false
        }
        Some(t @ ("application/gzip" | "application/x-gzip")) => {
            devs.push(Deviation::new(
                "http:Content-Type",
                "HTTP-02",
                format!("Content-Type {t} instead of application/tlsrpt+gzip"),
            ));
            true
        }
        Some(other) => {
            return Err(Rejected::UnsupportedMediaType(format!(
                "Content-Type {:?}; expected application/tlsrpt+gzip or application/tlsrpt+json",
                short(other)
            )));
        }
        None => {
            return Err(Rejected::UnsupportedMediaType(
                "no Content-Type; expected application/tlsrpt+gzip or application/tlsrpt+json"
                    .into(),
            ));
        }
    };
    let body: std::borrow::Cow<'_, [u8]> = match intake.content_encoding.map(essence).as_deref() {
        None | Some("" | "identity") => intake.bytes.into(),
        Some("gzip" | "x-gzip") => {
            devs.push(Deviation::new(
                "http:Content-Encoding",
                "HTTP-02",
                "Content-Encoding: gzip; RFC 8460 §5.4 uses Content-Type application/tlsrpt+gzip",
            ));
            read::gunzip(intake.bytes, limits)
                .map_err(read_error)?
                .into()
        }
        Some(other) => {
            return Err(Rejected::UnsupportedMediaType(format!(
                "Content-Encoding {:?}; only gzip is accepted",
                short(other)
            )));
        }
    };
    let is_gzip = read::is_gzip(&body);
    if is_gzip != declared_gzip {
        devs.push(Deviation::new(
            "http:Content-Type",
            "HTTP-02",
            if is_gzip {
                "declared JSON but the body is gzip; read as gzip"
            } else {
                "declared gzip but the body is not gzip; read as JSON"
            },
        ));
    }
    let mut reading = read::read_report(&body, limits).map_err(read_error)?;
    reading.deviations.extend(devs);
    Ok(reading)
}

/// At most 64 characters of untrusted text, for messages (never megabytes of header).
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn read_error(e: ReadError) -> Rejected {
    match e {
        ReadError::InputTooLarge { max, .. } => Rejected::TooLarge {
            limit: "max_input_bytes",
            max,
        },
        ReadError::DecompressedTooLarge { max } => Rejected::TooLarge {
            limit: "max_decompressed_bytes",
            max,
        },
        ReadError::TooMany { ref path, .. } => Rejected::BadData {
            path: path.clone(),
            message: e.to_string(),
        },
        ReadError::Invalid(ref problems) => Rejected::BadData {
            path: problems
                .first()
                .map(|p| p.path.clone())
                .unwrap_or_else(|| "$".into()),
            message: e.to_string(),
        },
        other => Rejected::BadData {
            path: "$".into(),
            message: other.to_string(),
        },
    }
}

fn message_error(e: MessageError) -> Rejected {
    match e {
        MessageError::TooLarge { limit, .. } => Rejected::TooLarge {
            limit: "max_input_bytes",
            max: limit,
        },
        MessageError::Report { source, .. } => read_error(source),
        other => Rejected::BadData {
            path: "message".into(),
            message: other.to_string(),
        },
    }
}

fn store_error(e: StoreError) -> Rejected {
    // Every store failure is answered "try again later": a corrupt database or a failed
    // migration is the operator's problem, and the sender's copy is the only one until fixed.
    Rejected::Unavailable(e.to_string())
}
