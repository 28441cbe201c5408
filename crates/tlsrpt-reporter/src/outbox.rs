//! Building a day's reports into the outbox (RFC 8460 §4, §5.1; REQUIREMENTS RPT-02, RPT-04,
//! RPT-20, RPT-21).
//!
//! [`build_day`] loads the day's counters, builds one report per (policy domain, record) with
//! a fresh report-id (`tlsrpt_core::naming::report_id` with a random 16-character token, also
//! used as the §5.1 filename's unique-id), gzips it and stores it with a random send time.
//! The store keeps the first build of a key, so building twice never gives a second report-id
//! for the same data (RPT-04); sessions counted after the build go into no report (RPT-21).
//!
//! All-success reports (RPT-20): sent by default, as the "heartbeat" framing of RFC 8460
//! §4.2.1 suggests and Google does; `send_all_success = false` skips reports without a single
//! failed session (mox's default).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use rand::Rng;
use tlsrpt_core::naming::{ReportFilename, report_id};
use tlsrpt_core::tally::ReportKey;
use tlsrpt_store::Store;
use tlsrpt_store::outbox::NewReport;

use crate::schedule;

/// Characters of the random token in report-ids and filenames.
pub const TOKEN_LEN: usize = 16;

/// What the reports say about us and when they go out.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// `organization-name` (RFC 8460 §4.4).
    pub organization_name: String,
    /// `contact-info` (RFC 8460 §4.4); its domain is the submitter in report-ids and
    /// filenames.
    pub contact_info: String,
    /// Send reports in which every session succeeded (RPT-20; default true).
    pub send_all_success: bool,
    /// Wait after the day closes (default 30 min).
    pub delay: Duration,
    /// Spread send times over this window (default 4 h, RPT-03).
    pub window: Duration,
    /// False: every report is due at once (`report send --now`).
    pub spread: bool,
    /// Failure-detail fields left out of every report (RPT-19, SEC-07; default none).
    pub omit: tlsrpt_core::OmittedFields,
}

impl BuildOptions {
    /// Defaults for everything but the identity.
    pub fn new(organization_name: &str, contact_info: &str) -> Self {
        BuildOptions {
            organization_name: organization_name.to_owned(),
            contact_info: contact_info.to_owned(),
            send_all_success: true,
            delay: schedule::DEFAULT_DELAY,
            window: schedule::DEFAULT_WINDOW,
            spread: true,
            omit: tlsrpt_core::OmittedFields::default(),
        }
    }
}

/// Why building failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tlsrpt_store::StoreError),
    /// `contact_info` has no usable domain for report-ids and filenames.
    #[error("contact_info {0:?}: no domain after '@' to name the submitter (RFC 8460 §5.1)")]
    Submitter(String),
    /// The building task failed (a panic in a worker thread).
    #[error("{0}")]
    Internal(String),
}

/// One report of a built day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltReport {
    /// The report-id in effect (the stored one if the key was built before).
    pub report_id: String,
    /// The policy domain.
    pub policy_domain: String,
    /// The record the MTA saw.
    pub record: String,
    /// False when the key had been built before (nothing changed).
    pub created: bool,
}

/// What [`build_day`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Built {
    /// The reports stored or found stored.
    pub reports: Vec<BuiltReport>,
    /// Reports left out because every session succeeded and `send_all_success` is false.
    pub skipped_all_success: usize,
    /// Keys whose names could not be built (not a host name), with the reason.
    pub skipped_invalid: Vec<(String, String)>,
}

/// The submitter domain: the domain of `contact_info` (`tlsrpt@example.org` → `example.org`).
pub fn submitter_domain(contact_info: &str) -> Result<String, BuildError> {
    // What we write must be an addr-spec (REQUIREMENTS JSON-13); readers of other senders'
    // reports are more lenient, so the shared helper also takes URLs and bare domains.
    contact_info
        .contains('@')
        .then(|| tlsrpt_core::naming::contact_domain(contact_info))
        .flatten()
        .ok_or_else(|| BuildError::Submitter(contact_info.to_owned()))
}

/// A random alphanumeric token (REQUIREMENTS MAIL-10).
pub fn random_token() -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(TOKEN_LEN)
        .map(char::from)
        .collect()
}

/// Builds `day`'s reports (of `domain` only, when given) from the store's counters and stores
/// them in the outbox (see the module docs). `now` is the build time.
pub async fn build_day(
    store: &Store,
    day: Date,
    domain: Option<&str>,
    opts: &BuildOptions,
    now: Timestamp,
) -> Result<Built, BuildError> {
    let submitter = submitter_domain(&opts.contact_info)?;
    let tally = store.load_tally(day, domain).await?;
    // Building and gzipping is CPU work (seconds for 100,000 domains): off the async
    // threads, gzip spread over the cores.
    let o = opts.clone();
    let (mut built, rows) =
        tokio::task::spawn_blocking(move || make_rows(&tally, day, &submitter, &o, now))
            .await
            .map_err(|e| BuildError::Internal(format!("building the reports: {e}")))?;
    let stored = store.outbox_insert_reports(&rows, now).await?;
    for (row, s) in rows.into_iter().zip(stored) {
        built.reports.push(BuiltReport {
            report_id: s.report_id,
            policy_domain: row.policy_domain,
            record: row.record,
            created: s.created,
        });
    }
    Ok(built)
}

/// The outbox rows of a tally (see [`build_day`]); `built` gets the skipped ones.
fn make_rows(
    tally: &tlsrpt_core::tally::Tally,
    day: Date,
    submitter: &str,
    opts: &BuildOptions,
    now: Timestamp,
) -> (Built, Vec<NewReport>) {
    let tokens: HashMap<&ReportKey, String> =
        tally.reports.keys().map(|k| (k, random_token())).collect();
    let mut built = Built::default();
    let mut rows = Vec::with_capacity(tokens.len());
    let mut models = Vec::with_capacity(tokens.len());
    let reports = tally.reports(&opts.organization_name, &opts.contact_info, |k| {
        let token = tokens.get(k).map(String::as_str).unwrap_or("0");
        report_id(k.day, &k.domain, submitter, token).unwrap_or_default()
    });
    for (key, mut report) in reports {
        // REQUIREMENTS RPT-19, SEC-07
        report.omit_detail_fields(opts.omit);
        if report.report_id.is_empty() {
            built.skipped_invalid.push((
                key.domain.clone(),
                "not a host name; no report-id can be made".into(),
            ));
            continue;
        }
        // REQUIREMENTS RPT-20
        if !opts.send_all_success
            && report
                .policies
                .iter()
                .all(|p| p.summary.total_failure_session_count == 0)
        {
            built.skipped_all_success += 1;
            continue;
        }
        let token = tokens.get(&key).map(String::as_str);
        let filename = match ReportFilename::for_day(submitter, &key.domain, day, token, true) {
            Ok(f) => f.to_string(),
            Err(e) => {
                built
                    .skipped_invalid
                    .push((key.domain.clone(), e.to_string()));
                continue;
            }
        };
        let send_at = if opts.spread {
            schedule::random_send_time(day, opts.delay, opts.window)
        } else {
            now
        };
        rows.push(NewReport {
            report_id: report.report_id.clone(),
            day,
            policy_domain: key.domain,
            record: key.record,
            filename,
            gzip: Vec::new(),
            send_at,
            deadline: schedule::add(send_at, schedule::RETRY_WINDOW),
        });
        models.push(report);
    }
    gzip_into(&models, &mut rows);
    (built, rows)
}

/// `rows[i].gzip = to_gzip(&models[i])`, on up to 8 threads (REQUIREMENTS DLV-02).
fn gzip_into(models: &[tlsrpt_core::Report], rows: &mut [NewReport]) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = models.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (m, r) in models.chunks(chunk).zip(rows.chunks_mut(chunk)) {
            s.spawn(move || {
                for (model, row) in m.iter().zip(r.iter_mut()) {
                    row.gzip = tlsrpt_core::write::to_gzip(model);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitter_is_the_contact_domain() {
        assert_eq!(
            submitter_domain("tlsrpt@Example.ORG").unwrap(),
            "example.org"
        );
        assert!(submitter_domain("https://example.org/").is_err());
        assert!(submitter_domain("x@").is_err());
    }

    #[test]
    fn tokens_are_alphanumeric_and_fresh() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
