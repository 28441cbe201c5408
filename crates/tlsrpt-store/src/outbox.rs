//! The reporter's outbox: built reports, their destinations, every attempt, and the
//! suppression list (RFC 8460 §4.1, §5.5; REQUIREMENTS RPT-04, DLV-03..DLV-07).
//!
//! # Exactly one report-id per day's data
//!
//! `outbox_reports` is UNIQUE on (day, policy domain, record): [`Store::outbox_insert_reports`]
//! keeps the first report built for a key and hands back its report-id for every later build,
//! so a day can be rebuilt (a restart, `report send` after `serve`) without a second report-id
//! (RPT-04). Sessions counted after the report was built go into no report (RPT-21).
//!
//! # Claims, leases and restarts
//!
//! A delivery is claimed before it is attempted ([`Store::outbox_claim_due`]): in one
//! `BEGIN IMMEDIATE` transaction (so two processes on one database are serialised by SQLite's
//! write lock) due `queued` rows, and `claimed` rows whose lease expired, become `claimed` with
//! a fresh lease and claim token. Two reporter processes therefore never hold the same
//! (report, destination) at once. [`Store::outbox_record_attempt`] then stores the outcome and
//! the attempt in one transaction.
//!
//! A destination marked `delivered` is never claimed again, so a restart never re-sends it.
//! **At-least-once window**: a process killed after the receiver accepted a report but before
//! the success was committed leaves the row `claimed`; once the lease expires another process
//! claims and sends it again. That lost-acknowledgement send is the only possible duplicate
//! (receivers dedupe on report-id, RFC 8460 §4.4, and the report-id is the same).
//! The lease must outlast one delivery attempt (the HTTP and SMTP timeouts) or a slow attempt
//! could be claimed twice; the reporter's default lease is 10 minutes.

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::{AssertSqlSafe, Row};

use crate::sqlite::{SqliteStore, classify};
use crate::{Backend, Store, StoreError};

/// Rows per multi-row INSERT (11 bound parameters per row, far below SQLite's limit).
const BATCH_ROWS: usize = 128;

/// A built report to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReport {
    /// The report-id minted for this build (kept only if the key is new).
    pub report_id: String,
    /// UTC day covered.
    pub day: Date,
    /// The policy domain the report is about.
    pub policy_domain: String,
    /// The TLSRPT record text the MTA saw (`pr`), part of the report key.
    pub record: String,
    /// RFC 8460 §5.1 attachment filename.
    pub filename: String,
    /// The gzip'd JSON as sent.
    pub gzip: Vec<u8>,
    /// When destinations are looked up and the first attempts made (random, RPT-03).
    pub send_at: Timestamp,
    /// After this, temporary DNS failures give up (the DLV-03 window).
    pub deadline: Timestamp,
}

/// What [`Store::outbox_insert_reports`] did with one [`NewReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The report-id in effect for the key: the new one, or the one stored before.
    pub report_id: String,
    /// True if this call stored it; false if the key had been built before.
    pub created: bool,
}

/// A report whose destinations are to be discovered now; held under a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryClaim {
    /// The report.
    pub report_id: String,
    /// Its day.
    pub day: Date,
    /// The policy domain to look `_smtp._tls` up for.
    pub policy_domain: String,
    /// The record the MTA saw (fallback when configured, DNS-19).
    pub record: String,
    /// Lookups tried so far, this one included.
    pub lookups: u32,
    /// When temporary DNS failures give up.
    pub deadline: Timestamp,
    /// Proves the claim when its outcome is recorded.
    pub token: String,
}

/// How a discovered destination starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationStart {
    /// To be delivered.
    Queued,
    /// Never sent: the reason (a rule, the suppression list).
    Suppressed(String),
}

/// How a discovery ended for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryEnd {
    /// No usable TLSRPT record (NXDOMAIN, NODATA, invalid): no report (DNS-18, RPT-01).
    None,
    /// Lookups kept failing temporarily until the deadline (DLV-03).
    Failed,
}

/// A (report, destination) claimed for one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The report.
    pub report_id: String,
    /// The destination URI (`https:…` or `mailto:…`).
    pub destination: String,
    /// The report's policy domain.
    pub policy_domain: String,
    /// The report's day.
    pub day: Date,
    /// RFC 8460 §5.1 filename.
    pub filename: String,
    /// The gzip'd report.
    pub gzip: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the first attempt was made (`None`: this is the first), for the 24 h limit.
    pub first_attempt_at: Option<Timestamp>,
    /// Proves the claim when its outcome is recorded.
    pub token: String,
}

/// The outcome of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted (the detail, e.g. `HTTP 200`).
    Delivered(String),
    /// Failed temporarily; try again at `next_attempt_at`.
    Retry {
        /// The error.
        detail: String,
        /// When to try again.
        next_attempt_at: Timestamp,
    },
    /// Failed for good (permanent error, or the 24 h are over, DLV-07).
    Failed(String),
}

impl AttemptOutcome {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            AttemptOutcome::Delivered(d) => ("delivered", d),
            AttemptOutcome::Retry { detail, .. } => ("temporary", detail),
            AttemptOutcome::Failed(d) => ("failed", d),
        }
    }
}

/// One stored attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxAttempt {
    /// When.
    pub at: Timestamp,
    /// `delivered`, `temporary`, `failed`, `abandoned` (lease expired), or for DNS lookups
    /// `found`, `none`, `temporary`.
    pub outcome: String,
    /// The detail or error.
    pub detail: String,
}

/// One destination of a stored report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxDestination {
    /// The URI.
    pub destination: String,
    /// `queued`, `claimed`, `delivered`, `failed` or `suppressed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (meaningful while `queued`).
    pub next_attempt_at: Timestamp,
    /// First attempt, if any.
    pub first_attempt_at: Option<Timestamp>,
    /// The last error (or the suppression reason).
    pub last_error: Option<String>,
    /// Every attempt, oldest first.
    pub history: Vec<OutboxAttempt>,
}

/// One stored report with its destinations, for `report list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxReport {
    /// The report-id.
    pub report_id: String,
    /// The UTC day.
    pub day: Date,
    /// The policy domain.
    pub policy_domain: String,
    /// The record the MTA saw.
    pub record: String,
    /// RFC 8460 §5.1 filename.
    pub filename: String,
    /// Size of the gzip'd report.
    pub gzip_bytes: u64,
    /// `discovering`, `sending`, `delivered`, `failed` or `none`.
    pub status: String,
    /// When it was built.
    pub created_at: Timestamp,
    /// While `discovering`: when the destinations are looked up.
    pub next_at: Timestamp,
    /// The last error (DNS or delivery).
    pub last_error: Option<String>,
    /// The DNS lookups made for it (destination `dns:_smtp._tls.<domain>`).
    pub lookups: Vec<OutboxAttempt>,
    /// Its destinations.
    pub destinations: Vec<OutboxDestination>,
}

/// An entry of the suppression list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// The suppressed destination's key (the reporter uses `policy::suppression_key`:
    /// `mailto:local@domain` with the domain in lower case).
    pub address: String,
    /// Why (the permanent error).
    pub reason: String,
    /// When it was added.
    pub added_at: Timestamp,
    /// When it stops applying.
    pub expires_at: Timestamp,
}

fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

fn ts(what: &str, s: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_second(s).map_err(|e| StoreError::Corrupt(format!("stored {what} {s}: {e}")))
}

fn day_of(s: &str) -> Result<Date, StoreError> {
    s.parse::<Date>()
        .map_err(|e| StoreError::Corrupt(format!("stored day {s:?}: {e}")))
}

fn count(what: &str, n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("stored {what} {n}")))
}

/// A claim token unique among processes (pid) and claims (counter, time).
fn new_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// The destination name DNS lookups are recorded under.
pub fn dns_destination(policy_domain: &str) -> String {
    format!("dns:_smtp._tls.{policy_domain}")
}

impl Store {
    fn outbox_sqlite(&self) -> &SqliteStore {
        match &self.backend {
            Backend::Sqlite(s) => s,
        }
    }

    /// Stores built reports, in one transaction. A report whose (day, policy domain, record)
    /// is stored already is left as it was and its stored report-id returned (RPT-04).
    pub async fn outbox_insert_reports(
        &self,
        reports: &[NewReport],
        now: Timestamp,
    ) -> Result<Vec<Stored>, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let mut created = std::collections::HashSet::new();
        for chunk in reports.chunks(BATCH_ROWS) {
            let mut sql = String::from(
                "INSERT INTO outbox_reports (report_id, day, policy_domain, record, filename, \
                 gzip, created_at, status, next_at, deadline) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?,?,'discovering',?,?)");
            }
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING report_id");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.report_id.as_str())
                    .bind(r.day.to_string())
                    .bind(r.policy_domain.as_str())
                    .bind(r.record.as_str())
                    .bind(r.filename.as_str())
                    .bind(r.gzip.as_slice())
                    .bind(secs(now))
                    .bind(secs(r.send_at))
                    .bind(secs(r.deadline));
            }
            let rows = q
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| classify("storing reports", e))?;
            for row in rows {
                let id: String = row
                    .try_get(0)
                    .map_err(|e| classify("reading a report-id", e))?;
                created.insert(id);
            }
        }
        let mut out = Vec::with_capacity(reports.len());
        for r in reports {
            if created.contains(&r.report_id) {
                out.push(Stored {
                    report_id: r.report_id.clone(),
                    created: true,
                });
                continue;
            }
            let row = sqlx::query(
                "SELECT report_id FROM outbox_reports \
                 WHERE day = ? AND policy_domain = ? AND record = ?",
            )
            .bind(r.day.to_string())
            .bind(r.policy_domain.as_str())
            .bind(r.record.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| classify("finding a stored report", e))?;
            let Some(row) = row else {
                // A report-id collision with another key: the caller's ids are random, so
                // this is a bug or a corrupt database, not something to paper over.
                return Err(StoreError::Corrupt(format!(
                    "report-id {} is already used by another report",
                    r.report_id
                )));
            };
            out.push(Stored {
                report_id: row
                    .try_get(0)
                    .map_err(|e| classify("reading a report-id", e))?,
                created: false,
            });
        }
        tx.commit()
            .await
            .map_err(|e| classify("committing reports", e))?;
        Ok(out)
    }

    /// Whether any report of `day` has been built (the scheduler builds a day once).
    pub async fn outbox_day_built(&self, day: Date) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM outbox_reports WHERE day = ? LIMIT 1")
            .bind(day.to_string())
            .fetch_optional(self.outbox_sqlite().pool())
            .await
            .map_err(|e| classify("checking built days", e))?;
        Ok(row.is_some())
    }

    /// Makes the given reports due now: discovery at once, queued destinations at once
    /// (`report send --now`: no spreading, no waiting for back-off).
    pub async fn outbox_make_due(
        &self,
        report_ids: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        for id in report_ids {
            sqlx::query(
                "UPDATE outbox_reports SET next_at = MIN(next_at, ?) \
                 WHERE report_id = ? AND status = 'discovering'",
            )
            .bind(secs(now))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("making reports due", e))?;
            sqlx::query(
                "UPDATE outbox_destinations SET next_attempt_at = MIN(next_attempt_at, ?) \
                 WHERE report_id = ? AND status = 'queued'",
            )
            .bind(secs(now))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("making destinations due", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| classify("committing due times", e))?;
        Ok(())
    }

    /// Claims up to `limit` reports whose send time has come and whose destinations are not
    /// known yet, each under a lease until `now + lease`.
    pub async fn outbox_claim_discovery(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<DiscoveryClaim>, StoreError> {
        let s = self.outbox_sqlite();
        let until = secs(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let rows = sqlx::query(
            "SELECT report_id FROM outbox_reports WHERE status = 'discovering' AND next_at <= ?1 \
             AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY next_at LIMIT ?2",
        )
        .bind(secs(now))
        .bind(i64::from(if only.is_some() { u32::MAX } else { limit }))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| classify("finding reports to discover", e))?;
        let mut out = Vec::new();
        for row in rows {
            if out.len() >= limit as usize {
                break;
            }
            let id: String = row
                .try_get(0)
                .map_err(|e| classify("reading a report-id", e))?;
            if only.is_some_and(|o| !o.contains(&id)) {
                continue;
            }
            let token = new_token();
            let r = sqlx::query(
                "UPDATE outbox_reports SET lease_until = ?, claim_token = ?, lookups = lookups + 1 \
                 WHERE report_id = ? RETURNING day, policy_domain, record, lookups, deadline",
            )
            .bind(until)
            .bind(token.as_str())
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| classify("claiming a report", e))?;
            let get = |e| classify("reading a claimed report", e);
            let day: String = r.try_get(0).map_err(get)?;
            out.push(DiscoveryClaim {
                report_id: id,
                day: day_of(&day)?,
                policy_domain: r.try_get(1).map_err(get)?,
                record: r.try_get(2).map_err(get)?,
                lookups: count("lookups", r.try_get(3).map_err(get)?)?,
                deadline: ts("deadline", r.try_get(4).map_err(get)?)?,
                token,
            });
        }
        tx.commit()
            .await
            .map_err(|e| classify("committing report claims", e))?;
        Ok(out)
    }

    /// Stores the destinations discovered for a claimed report (due at `now`), and the lookup.
    /// The report becomes `sending`, or `failed` when every destination is suppressed.
    /// Returns false if the claim had been lost (lease expired and taken by another process);
    /// nothing is changed then.
    pub async fn outbox_discovered(
        &self,
        claim: &DiscoveryClaim,
        destinations: &[(String, DestinationStart)],
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let any_queued = destinations
            .iter()
            .any(|(_, d)| matches!(d, DestinationStart::Queued));
        let status = if any_queued { "sending" } else { "failed" };
        let last_error = if any_queued {
            None
        } else {
            Some("every destination is suppressed")
        };
        let held = sqlx::query(
            "UPDATE outbox_reports SET status = ?, lease_until = NULL, claim_token = NULL, \
             last_error = ? WHERE report_id = ? AND claim_token = ? AND status = 'discovering'",
        )
        .bind(status)
        .bind(last_error)
        .bind(claim.report_id.as_str())
        .bind(claim.token.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| classify("updating a report", e))?
        .rows_affected()
            == 1;
        if !held {
            return Ok(false);
        }
        for (uri, start) in destinations {
            let (st, err) = match start {
                DestinationStart::Queued => ("queued", None),
                DestinationStart::Suppressed(r) => ("suppressed", Some(r.as_str())),
            };
            sqlx::query(
                "INSERT INTO outbox_destinations (report_id, destination, status, \
                 next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(claim.report_id.as_str())
            .bind(uri.as_str())
            .bind(st)
            .bind(secs(now))
            .bind(err)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("storing a destination", e))?;
        }
        insert_attempt(
            &mut tx,
            &claim.report_id,
            &dns_destination(&claim.policy_domain),
            now,
            "found",
            detail,
        )
        .await?;
        tx.commit()
            .await
            .map_err(|e| classify("committing destinations", e))?;
        Ok(true)
    }

    /// Records a temporary lookup failure: the report is looked up again at `next_at`.
    pub async fn outbox_discovery_retry(
        &self,
        claim: &DiscoveryClaim,
        detail: &str,
        next_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.outbox_discovery_update(
            claim,
            "discovering",
            Some(next_at),
            "temporary",
            detail,
            now,
        )
        .await
    }

    /// Ends a report's discovery for good: no usable record, or temporary failures until the
    /// deadline.
    pub async fn outbox_discovery_end(
        &self,
        claim: &DiscoveryClaim,
        end: DiscoveryEnd,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (status, outcome) = match end {
            DiscoveryEnd::None => ("none", "none"),
            DiscoveryEnd::Failed => ("failed", "temporary"),
        };
        self.outbox_discovery_update(claim, status, None, outcome, detail, now)
            .await
    }

    async fn outbox_discovery_update(
        &self,
        claim: &DiscoveryClaim,
        status: &str,
        next_at: Option<Timestamp>,
        outcome: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let held = sqlx::query(
            "UPDATE outbox_reports SET status = ?, next_at = COALESCE(?, next_at), \
             lease_until = NULL, claim_token = NULL, last_error = ? \
             WHERE report_id = ? AND claim_token = ? AND status = 'discovering'",
        )
        .bind(status)
        .bind(next_at.map(secs))
        .bind(detail)
        .bind(claim.report_id.as_str())
        .bind(claim.token.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| classify("updating a report", e))?
        .rows_affected()
            == 1;
        if !held {
            return Ok(false);
        }
        insert_attempt(
            &mut tx,
            &claim.report_id,
            &dns_destination(&claim.policy_domain),
            now,
            outcome,
            detail,
        )
        .await?;
        tx.commit()
            .await
            .map_err(|e| classify("committing a lookup", e))?;
        Ok(true)
    }

    /// Claims up to `limit` due deliveries: `queued` rows whose time has come and `claimed`
    /// rows whose lease expired (their process died; an `abandoned` attempt is recorded),
    /// each under a new lease until `now + lease`. `only` restricts to some reports.
    pub async fn outbox_claim_due(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let s = self.outbox_sqlite();
        let until = secs(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let rows = sqlx::query(
            "SELECT d.report_id, d.destination, d.status FROM outbox_destinations d \
             WHERE (d.status = 'queued' AND d.next_attempt_at <= ?1) \
                OR (d.status = 'claimed' AND d.lease_until <= ?1) \
             ORDER BY d.next_attempt_at LIMIT ?2",
        )
        .bind(secs(now))
        .bind(i64::from(if only.is_some() { u32::MAX } else { limit }))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| classify("finding due deliveries", e))?;
        let mut out = Vec::new();
        for row in rows {
            if out.len() >= limit as usize {
                break;
            }
            let get = |e| classify("reading a due delivery", e);
            let report_id: String = row.try_get(0).map_err(get)?;
            let destination: String = row.try_get(1).map_err(get)?;
            let status: String = row.try_get(2).map_err(get)?;
            if only.is_some_and(|o| !o.contains(&report_id)) {
                continue;
            }
            if status == "claimed" {
                // REQUIREMENTS DLV-03: the attempt of a process that died is unknown; say so.
                insert_attempt(
                    &mut tx,
                    &report_id,
                    &destination,
                    now,
                    "abandoned",
                    "the lease of an earlier claim expired before its outcome was recorded \
                     (process killed?); it may have been delivered",
                )
                .await?;
            }
            let token = new_token();
            let r = sqlx::query(
                "UPDATE outbox_destinations SET status = 'claimed', lease_until = ?, \
                 claim_token = ? WHERE report_id = ? AND destination = ? \
                 RETURNING attempts, first_attempt_at",
            )
            .bind(until)
            .bind(token.as_str())
            .bind(report_id.as_str())
            .bind(destination.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| classify("claiming a delivery", e))?;
            let attempts = count("attempts", r.try_get(0).map_err(get)?)?;
            let first: Option<i64> = r.try_get(1).map_err(get)?;
            let rep = sqlx::query(
                "SELECT policy_domain, day, filename, gzip FROM outbox_reports WHERE report_id = ?",
            )
            .bind(report_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| classify("reading a claimed report", e))?;
            let day: String = rep.try_get(1).map_err(get)?;
            out.push(Claimed {
                policy_domain: rep.try_get(0).map_err(get)?,
                day: day_of(&day)?,
                filename: rep.try_get(2).map_err(get)?,
                gzip: rep.try_get(3).map_err(get)?,
                report_id,
                destination,
                attempts,
                first_attempt_at: first.map(|f| ts("first_attempt_at", f)).transpose()?,
                token,
            });
        }
        tx.commit()
            .await
            .map_err(|e| classify("committing delivery claims", e))?;
        Ok(out)
    }

    /// Records the outcome of a claimed delivery and the attempt, in one transaction, and
    /// updates the report's status (delivered once any destination accepted, DLV-05; failed
    /// once every destination gave up).
    ///
    /// A success is recorded even if the claim was lost meanwhile (it did happen); a retry or
    /// failure only if the claim is still held. Returns whether the claim was still held.
    pub async fn outbox_record_attempt(
        &self,
        claim: &Claimed,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox transaction", e))?;
        let held = sqlx::query(
            "SELECT 1 FROM outbox_destinations WHERE report_id = ? AND destination = ? \
             AND status = 'claimed' AND claim_token = ?",
        )
        .bind(claim.report_id.as_str())
        .bind(claim.destination.as_str())
        .bind(claim.token.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| classify("checking a claim", e))?
        .is_some();
        let (word, detail) = outcome.parts();
        let update = match outcome {
            AttemptOutcome::Delivered(_) => Some((
                "UPDATE outbox_destinations SET status = 'delivered', last_error = NULL, \
                 attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?1), \
                 lease_until = NULL, claim_token = NULL \
                 WHERE report_id = ?2 AND destination = ?3",
                None,
            )),
            AttemptOutcome::Retry {
                next_attempt_at, ..
            } if held => Some((
                "UPDATE outbox_destinations SET status = 'queued', last_error = ?4, \
                 attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?1), \
                 lease_until = NULL, claim_token = NULL, next_attempt_at = ?5 \
                 WHERE report_id = ?2 AND destination = ?3",
                Some(*next_attempt_at),
            )),
            AttemptOutcome::Failed(_) if held => Some((
                "UPDATE outbox_destinations SET status = 'failed', last_error = ?4, \
                 attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?1), \
                 lease_until = NULL, claim_token = NULL \
                 WHERE report_id = ?2 AND destination = ?3",
                None,
            )),
            _ => None,
        };
        if let Some((sql, next)) = update {
            let mut q = sqlx::query(sql)
                .bind(secs(now))
                .bind(claim.report_id.as_str())
                .bind(claim.destination.as_str());
            if !matches!(outcome, AttemptOutcome::Delivered(_)) {
                q = q.bind(detail).bind(next.map(secs));
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| classify("recording a delivery", e))?;
        }
        insert_attempt(
            &mut tx,
            &claim.report_id,
            &claim.destination,
            now,
            word,
            detail,
        )
        .await?;
        let report_error = match outcome {
            AttemptOutcome::Delivered(_) => None,
            _ => Some(format!("{}: {detail}", claim.destination)),
        };
        sqlx::query(
            "UPDATE outbox_reports SET status = CASE \
               WHEN EXISTS (SELECT 1 FROM outbox_destinations d WHERE d.report_id = ?1 \
                            AND d.status = 'delivered') THEN 'delivered' \
               WHEN EXISTS (SELECT 1 FROM outbox_destinations d WHERE d.report_id = ?1 \
                            AND d.status IN ('queued', 'claimed')) THEN 'sending' \
               ELSE 'failed' END, \
             last_error = COALESCE(?2, last_error) \
             WHERE report_id = ?1 AND status IN ('sending', 'delivered', 'failed')",
        )
        .bind(claim.report_id.as_str())
        .bind(report_error)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify("updating a report's status", e))?;
        tx.commit()
            .await
            .map_err(|e| classify("committing a delivery", e))?;
        Ok(held)
    }

    /// The earliest time something becomes due (a lookup, a delivery, an expiring lease), for
    /// the scheduler's sleep; `None` when nothing is pending.
    pub async fn outbox_next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(t) FROM ( \
               SELECT MIN(COALESCE(MAX(next_at, lease_until), next_at)) AS t FROM outbox_reports \
                 WHERE status = 'discovering' \
               UNION ALL SELECT MIN(next_attempt_at) FROM outbox_destinations \
                 WHERE status = 'queued' \
               UNION ALL SELECT MIN(lease_until) FROM outbox_destinations \
                 WHERE status = 'claimed')",
        )
        .fetch_one(self.outbox_sqlite().pool())
        .await
        .map_err(|e| classify("finding the next due time", e))?;
        let t: Option<i64> = row
            .try_get(0)
            .map_err(|e| classify("reading the next due time", e))?;
        t.map(|t| ts("due time", t)).transpose()
    }

    /// Every stored report (of `day`, and of `domain`, when given) with its destinations and
    /// attempts, ordered by day, policy domain, record.
    pub async fn outbox_list(
        &self,
        day: Option<Date>,
        domain: Option<&str>,
    ) -> Result<Vec<OutboxReport>, StoreError> {
        let pool = self.outbox_sqlite().pool();
        let rows = sqlx::query(
            "SELECT report_id, day, policy_domain, record, filename, length(gzip), status, \
             created_at, next_at, last_error FROM outbox_reports \
             WHERE (?1 IS NULL OR day = ?1) AND (?2 IS NULL OR policy_domain = ?2) \
             ORDER BY day, policy_domain, record",
        )
        .bind(day.map(|d| d.to_string()))
        .bind(domain.map(crate::normalize_domain))
        .fetch_all(pool)
        .await
        .map_err(|e| classify("listing reports", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e| classify("reading a report row", e);
            let day: String = row.try_get(1).map_err(get)?;
            let size: i64 = row.try_get(5).map_err(get)?;
            out.push(OutboxReport {
                report_id: row.try_get(0).map_err(get)?,
                day: day_of(&day)?,
                policy_domain: row.try_get(2).map_err(get)?,
                record: row.try_get(3).map_err(get)?,
                filename: row.try_get(4).map_err(get)?,
                gzip_bytes: u64::try_from(size).unwrap_or(0),
                status: row.try_get(6).map_err(get)?,
                created_at: ts("created_at", row.try_get(7).map_err(get)?)?,
                next_at: ts("next_at", row.try_get(8).map_err(get)?)?,
                last_error: row.try_get(9).map_err(get)?,
                lookups: Vec::new(),
                destinations: Vec::new(),
            });
        }
        for r in &mut out {
            let drows = sqlx::query(
                "SELECT destination, status, attempts, next_attempt_at, first_attempt_at, \
                 last_error FROM outbox_destinations WHERE report_id = ? ORDER BY destination",
            )
            .bind(r.report_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(|e| classify("listing destinations", e))?;
            for row in drows {
                let get = |e| classify("reading a destination row", e);
                let first: Option<i64> = row.try_get(4).map_err(get)?;
                r.destinations.push(OutboxDestination {
                    destination: row.try_get(0).map_err(get)?,
                    status: row.try_get(1).map_err(get)?,
                    attempts: count("attempts", row.try_get(2).map_err(get)?)?,
                    next_attempt_at: ts("next_attempt_at", row.try_get(3).map_err(get)?)?,
                    first_attempt_at: first.map(|f| ts("first_attempt_at", f)).transpose()?,
                    last_error: row.try_get(5).map_err(get)?,
                    history: Vec::new(),
                });
            }
            let arows = sqlx::query(
                "SELECT destination, at, outcome, detail FROM outbox_attempts \
                 WHERE report_id = ? ORDER BY id",
            )
            .bind(r.report_id.as_str())
            .fetch_all(pool)
            .await
            .map_err(|e| classify("listing attempts", e))?;
            let dns = dns_destination(&r.policy_domain);
            for row in arows {
                let get = |e| classify("reading an attempt row", e);
                let dest: String = row.try_get(0).map_err(get)?;
                let a = OutboxAttempt {
                    at: ts("attempt time", row.try_get(1).map_err(get)?)?,
                    outcome: row.try_get(2).map_err(get)?,
                    detail: row.try_get(3).map_err(get)?,
                };
                if dest == dns {
                    r.lookups.push(a);
                } else if let Some(d) = r.destinations.iter_mut().find(|d| d.destination == dest) {
                    d.history.push(a);
                }
            }
        }
        Ok(out)
    }

    /// The gzip'd report stored under `report_id`.
    pub async fn outbox_report_gzip(&self, report_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT gzip FROM outbox_reports WHERE report_id = ?")
            .bind(report_id)
            .fetch_optional(self.outbox_sqlite().pool())
            .await
            .map_err(|e| classify("reading a report", e))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| classify("reading a report", e))
    }

    /// Adds (or renews) `address` (a destination key) on the suppression list until
    /// `expires_at` (DLV-07).
    pub async fn suppress_address(
        &self,
        address: &str,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        sqlx::query(
            "INSERT INTO suppression_list (address, reason, added_at, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET \
             reason = excluded.reason, added_at = excluded.added_at, \
             expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(address)
        .bind(reason)
        .bind(secs(now))
        .bind(secs(expires_at))
        .execute(s.pool())
        .await
        .map_err(|e| classify("adding to the suppression list", e))?;
        Ok(())
    }

    /// The unexpired suppression of `address` (compared exactly: callers normalise), if any.
    pub async fn suppressed(
        &self,
        address: &str,
        now: Timestamp,
    ) -> Result<Option<Suppression>, StoreError> {
        let rows = self.suppression_query(Some(address), now).await?;
        Ok(rows.into_iter().next())
    }

    /// Every unexpired suppression.
    pub async fn suppression_list(&self, now: Timestamp) -> Result<Vec<Suppression>, StoreError> {
        self.suppression_query(None, now).await
    }

    /// Removes `address` from the suppression list; returns whether it was there.
    pub async fn unsuppress_address(&self, address: &str) -> Result<bool, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let n = sqlx::query("DELETE FROM suppression_list WHERE address = ?")
            .bind(address)
            .execute(s.pool())
            .await
            .map_err(|e| classify("removing from the suppression list", e))?
            .rows_affected();
        Ok(n > 0)
    }

    async fn suppression_query(
        &self,
        address: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, reason, added_at, expires_at FROM suppression_list \
             WHERE expires_at > ?1 AND (?2 IS NULL OR address = ?2) ORDER BY address",
        )
        .bind(secs(now))
        .bind(address)
        .fetch_all(self.outbox_sqlite().pool())
        .await
        .map_err(|e| classify("reading the suppression list", e))?;
        rows.into_iter()
            .map(|row| {
                let get = |e| classify("reading a suppression row", e);
                Ok(Suppression {
                    address: row.try_get(0).map_err(get)?,
                    reason: row.try_get(1).map_err(get)?,
                    added_at: ts("added_at", row.try_get(2).map_err(get)?)?,
                    expires_at: ts("expires_at", row.try_get(3).map_err(get)?)?,
                })
            })
            .collect()
    }
}

async fn insert_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    report_id: &str,
    destination: &str,
    at: Timestamp,
    outcome: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox_attempts (report_id, destination, at, outcome, detail) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(report_id)
    .bind(destination)
    .bind(secs(at))
    .bind(outcome)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(|e| classify("recording an attempt", e))?;
    Ok(())
}

impl Store {
    /// Deletes outbox reports (with their destinations and attempts) of days before
    /// `first_kept`, and expired suppression-list entries. Returns the reports deleted.
    pub async fn outbox_prune(&self, first_kept: Date, now: Timestamp) -> Result<u64, StoreError> {
        let s = self.outbox_sqlite();
        let _guard = s.write_lock().lock().await;
        let mut tx = s
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting an outbox prune", e))?;
        let cut = first_kept.to_string();
        // Children first, so the prune does not depend on foreign-key enforcement.
        for sql in [
            "DELETE FROM outbox_attempts WHERE report_id IN \
             (SELECT report_id FROM outbox_reports WHERE day < ?)",
            "DELETE FROM outbox_destinations WHERE report_id IN \
             (SELECT report_id FROM outbox_reports WHERE day < ?)",
        ] {
            sqlx::query(sql)
                .bind(&cut)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify("pruning the outbox", e))?;
        }
        let n = sqlx::query("DELETE FROM outbox_reports WHERE day < ?")
            .bind(&cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("pruning the outbox", e))?
            .rows_affected();
        sqlx::query("DELETE FROM suppression_list WHERE expires_at <= ?")
            .bind(secs(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("pruning the suppression list", e))?;
        tx.commit()
            .await
            .map_err(|e| classify("committing the outbox prune", e))?;
        Ok(n)
    }
}
