//! The reporter role: build closed days, discover destinations at send time, deliver with
//! retries, record everything (RFC 8460 §3, §4.1, §5.5; REQUIREMENTS DNS-18, DNS-19, RPT-03,
//! DLV-03..DLV-07).
//!
//! [`Reporter::step`] does everything that is due at one instant; [`run_reporter`] is the
//! `tlsrpt serve` loop around it and `tlsrpt report send` calls it for one day's reports.
//!
//! * **Discovery** (DNS-19): `_smtp._tls.<policy domain>` is looked up when the report's send
//!   time comes, with the core's RRset rules, so the current rua is used. NXDOMAIN, NODATA and
//!   an unusable record mean no report (status `none`, recorded; DNS-18, RPT-01) — unless
//!   `use_collected_record` is set, in which case the record the MTA saw (`pr`) is used
//!   instead. SERVFAIL and timeouts are retried with back-off until 24 h after the send
//!   time; then the collected record is used if allowed, else the report fails.
//! * **Destination policy**: the operator's rules (`policy::DestinationPolicy`), then the
//!   suppression list in the store; suppressed destinations are recorded, never sent to.
//! * **Delivery**: each due (report, destination) is claimed in the store (so no two
//!   processes send it), attempted once with the [`Deliver`] implementation, and its outcome
//!   recorded: delivered; temporary → retry after `next_attempt_delay` until 24 h after the
//!   first attempt (DLV-03, DLV-04); permanent → failed (DLV-07), and a `mailto:` address goes
//!   on the suppression list for `policy::SUPPRESSION_TTL`. Decision: an `https:` endpoint
//!   answering 4xx is not suppressed: the report fails, but the next day's report tries
//!   again, so a fixed endpoint gets reports without operator action; bounces are what cost
//!   a third party (mox likewise suppresses mail addresses). A report is delivered once one
//!   destination accepted it (DLV-05); the others are still attempted (DNS-20 MAY).
//! * **Restarts**: see `tlsrpt_store::outbox`: delivered destinations are never sent again;
//!   a claim left by a killed process is retried after its lease (at-least-once window).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tlsrpt_core::read::{Limits, read_report};
use tlsrpt_core::record::parse_record;
use tlsrpt_net::resolver::{Discovery, Dns};
use tlsrpt_store::outbox::{
    AttemptOutcome, Claimed, DestinationStart, DiscoveryClaim, DiscoveryEnd,
};
use tlsrpt_store::{Store, StoreError};

use crate::deliver::{Deliverer, DeliveryError, Destination, ReportToSend};
use crate::outbox::{BuildError, BuildOptions, build_day};
use crate::policy::{self, Applied, DestinationPolicy};
use crate::schedule::{self, Clock};

/// Default lease of a claim: longer than any single attempt (HTTP and SMTP time out well
/// before), so a live process never loses a claim it is still working on.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

/// One delivery attempt. [`Deliverer`] is the real one; tests may count or fail.
pub trait Deliver: Send + Sync + 'static {
    /// Hands `r` to `d` once (see [`Deliverer::deliver`]).
    fn deliver(
        &self,
        r: &ReportToSend,
        d: &Destination,
    ) -> impl std::future::Future<Output = Result<String, DeliveryError>> + Send;
}

impl Deliver for Deliverer {
    fn deliver(
        &self,
        r: &ReportToSend,
        d: &Destination,
    ) -> impl std::future::Future<Output = Result<String, DeliveryError>> + Send {
        Deliverer::deliver(self, r, d)
    }
}

/// How the reporter role behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Identity, all-success reports, delay and window.
    pub build: BuildOptions,
    /// Fall back to the record the MTA saw (`pr`) when `_smtp._tls` has none (DNS-19).
    pub use_collected_record: bool,
    /// Lease of a claim ([`DEFAULT_LEASE`]).
    pub lease: Duration,
    /// Deliveries attempted at once.
    pub parallel: u32,
    /// Longest sleep of [`run_reporter`] between checks.
    pub poll: Duration,
    /// Closed days [`run_reporter`] builds (counters are kept at least 2 days, RPT-21).
    pub lookback_days: u32,
    /// Operator rules that suppress or rewrite destinations.
    pub rules: DestinationPolicy,
    /// Full days of outbox history [`run_reporter`] keeps before today (like the counters'
    /// `[store] retention_days`; at least 2 so a day can still be retried, RPT-21).
    pub retention_days: u32,
}

impl RunOptions {
    /// Defaults around `build`.
    pub fn new(build: BuildOptions) -> Self {
        RunOptions {
            build,
            use_collected_record: false,
            lease: DEFAULT_LEASE,
            parallel: 8,
            poll: Duration::from_secs(60),
            lookback_days: 2,
            rules: DestinationPolicy::default(),
            retention_days: 14,
        }
    }
}

/// Why the reporter stopped or a step failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building failed.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Something the reporter did, for logs and `report send`'s output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Destinations were found for a report.
    Discovered {
        /// The report.
        report_id: String,
        /// Its policy domain.
        policy_domain: String,
        /// Each destination URI and how it starts.
        destinations: Vec<(String, DestinationStart)>,
        /// Where they came from (`_smtp._tls` or the collected record).
        source: String,
    },
    /// No usable record: no report (DNS-18, RPT-01).
    NoRecord {
        /// The report.
        report_id: String,
        /// Its policy domain.
        policy_domain: String,
        /// Why.
        detail: String,
    },
    /// Temporary DNS failure; looked up again at `next_at`.
    DnsRetry {
        /// The report.
        report_id: String,
        /// Its policy domain.
        policy_domain: String,
        /// The error.
        detail: String,
        /// Next lookup.
        next_at: Timestamp,
    },
    /// Temporary DNS failures until the deadline: the report failed.
    DnsGaveUp {
        /// The report.
        report_id: String,
        /// Its policy domain.
        policy_domain: String,
        /// The last error.
        detail: String,
    },
    /// One delivery attempt.
    Attempt {
        /// The report.
        report_id: String,
        /// Its policy domain.
        policy_domain: String,
        /// The destination URI.
        destination: String,
        /// What happened.
        outcome: AttemptOutcome,
        /// Set when the destination went on the suppression list.
        suppressed_until: Option<Timestamp>,
    },
}

/// The reporter: store, DNS, deliverer and options. Cheap to clone.
pub struct Reporter<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for Reporter<D> {
    fn clone(&self) -> Self {
        Reporter {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<D> {
    store: Arc<Store>,
    deliverer: D,
    dns: Dns,
    opts: RunOptions,
}

impl<D: Deliver> Reporter<D> {
    /// A reporter over `store`, looking destinations up with `dns` and delivering with
    /// `deliverer`.
    pub fn new(store: Arc<Store>, deliverer: D, dns: Dns, opts: RunOptions) -> Self {
        Reporter {
            inner: Arc::new(Inner {
                store,
                deliverer,
                dns,
                opts,
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &RunOptions {
        &self.inner.opts
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Does everything due at `now`: destination lookups for reports whose send time has
    /// come, then every due delivery (in parallel batches). `only` restricts to some reports
    /// (`report send`). Returns what happened, in order.
    pub async fn step(
        &self,
        now: Timestamp,
        only: Option<&[String]>,
    ) -> Result<Vec<Event>, RunError> {
        let mut events = Vec::new();
        let store = &self.inner.store;
        let opts = &self.inner.opts;
        loop {
            let claims = store
                .outbox_claim_discovery(now, opts.lease, opts.parallel.max(1), only)
                .await?;
            if claims.is_empty() {
                break;
            }
            let mut set = tokio::task::JoinSet::new();
            for c in claims {
                let me = self.clone();
                set.spawn(async move { me.discover_one(c, now).await });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(Some(e))) => events.push(e),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => tracing::error!(error = %e, "destination lookup task failed"),
                }
            }
        }
        loop {
            let claims = store
                .outbox_claim_due(now, opts.lease, opts.parallel.max(1), only)
                .await?;
            if claims.is_empty() {
                break;
            }
            let mut set = tokio::task::JoinSet::new();
            for c in claims {
                let me = self.clone();
                set.spawn(async move { me.deliver_one(c, now).await });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(e)) => events.push(e),
                    Ok(Err(e)) => return Err(e),
                    Err(e) => tracing::error!(error = %e, "delivery task failed"),
                }
            }
        }
        Ok(events)
    }

    /// Destinations named by the record the MTA saw, if it parses and has usable ones.
    fn collected_destinations(record: &str) -> Option<Vec<Destination>> {
        let parsed = parse_record(record).ok()?;
        let d: Vec<Destination> = parsed
            .record
            .usable_rua()
            .filter_map(Destination::from_uri)
            .collect();
        (!d.is_empty()).then_some(d)
    }

    async fn discover_one(
        &self,
        c: DiscoveryClaim,
        now: Timestamp,
    ) -> Result<Option<Event>, RunError> {
        let store = &self.inner.store;
        let opts = &self.inner.opts;
        let found = self.inner.dns.discover(&c.policy_domain).await;
        let fallback = || {
            if opts.use_collected_record {
                Self::collected_destinations(&c.record)
            } else {
                None
            }
        };
        let (published, source) = match &found {
            Discovery::Answer { selection, .. } if selection.record().is_some() => {
                let d: Vec<Destination> = selection
                    .record()
                    .into_iter()
                    .flat_map(|r| r.usable_rua())
                    .filter_map(Destination::from_uri)
                    .collect();
                (d, format!("_smtp._tls.{}", c.policy_domain))
            }
            Discovery::Temporary(e) => {
                let detail = format!("_smtp._tls.{}: {e}", c.policy_domain);
                if now < c.deadline {
                    let delay = crate::next_attempt_delay(c.lookups.max(1));
                    let next_at = schedule::add(now, delay).min(c.deadline);
                    if store
                        .outbox_discovery_retry(&c, &detail, next_at, now)
                        .await?
                    {
                        return Ok(Some(Event::DnsRetry {
                            report_id: c.report_id,
                            policy_domain: c.policy_domain,
                            detail,
                            next_at,
                        }));
                    }
                    return Ok(None);
                }
                match fallback() {
                    Some(d) => (d, format!("the collected record (DNS failing: {e})")),
                    None => {
                        let detail = format!("{detail}; gave up after 24 h of temporary failures");
                        if store
                            .outbox_discovery_end(&c, DiscoveryEnd::Failed, &detail, now)
                            .await?
                        {
                            return Ok(Some(Event::DnsGaveUp {
                                report_id: c.report_id,
                                policy_domain: c.policy_domain,
                                detail,
                            }));
                        }
                        return Ok(None);
                    }
                }
            }
            other => {
                let why = match other {
                    Discovery::Answer { selection, .. } => match &selection.outcome {
                        tlsrpt_core::record::Outcome::NoTlsrpt(n) => n.to_string(),
                        _ => "the TLSRPT record has no mailto: or https: rua (DNS-10)".into(),
                    },
                    Discovery::NoRecord(l) => l.describe_absence().to_owned(),
                    Discovery::Temporary(e) => e.clone(),
                };
                let detail = format!("_smtp._tls.{}: {why}", c.policy_domain);
                match fallback() {
                    Some(d) => (d, format!("the collected record ({detail})")),
                    None => {
                        // REQUIREMENTS DNS-18, RPT-01: no record, no report.
                        if store
                            .outbox_discovery_end(&c, DiscoveryEnd::None, &detail, now)
                            .await?
                        {
                            return Ok(Some(Event::NoRecord {
                                report_id: c.report_id,
                                policy_domain: c.policy_domain,
                                detail,
                            }));
                        }
                        return Ok(None);
                    }
                }
            }
        };
        let mut destinations = Vec::new();
        match opts.rules.apply(&c.policy_domain, &published) {
            Applied::Suppressed { rule } => {
                for d in policy::cap_destinations(&published) {
                    destinations.push((
                        d.to_uri(),
                        DestinationStart::Suppressed(format!("suppressed by the rule for {rule}")),
                    ));
                }
            }
            Applied::Send {
                destinations: ds,
                rewritten,
            } => {
                for d in ds {
                    let key = policy::suppression_key(&d);
                    let start = match store.suppressed(&key, now).await? {
                        Some(s) => DestinationStart::Suppressed(format!(
                            "on the suppression list until {} ({})",
                            s.expires_at, s.reason
                        )),
                        None => DestinationStart::Queued,
                    };
                    let uri = d.to_uri();
                    if rewritten {
                        tracing::debug!(policy_domain = %c.policy_domain, to = %uri, "destination rewritten by a rule");
                    }
                    destinations.push((uri, start));
                }
            }
        }
        let summary = format!("{} destination(s) from {source}", destinations.len());
        if !store
            .outbox_discovered(&c, &destinations, &summary, now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(Event::Discovered {
            report_id: c.report_id,
            policy_domain: c.policy_domain,
            destinations,
            source,
        }))
    }

    async fn deliver_one(&self, c: Claimed, now: Timestamp) -> Result<Event, RunError> {
        let store = &self.inner.store;
        let mut suppressed_until = None;
        let outcome = match (
            Destination::parse(&c.destination),
            read_report(&c.gzip, &Limits::default()),
        ) {
            (None, _) => AttemptOutcome::Failed(format!(
                "{:?} is not a usable mailto: or https: URI",
                c.destination
            )),
            (_, Err(e)) => {
                AttemptOutcome::Failed(format!("the stored report does not read back: {e}"))
            }
            (Some(dest), Ok(reading)) => {
                let r = ReportToSend {
                    report: reading.report,
                    policy_domain: c.policy_domain.clone(),
                    gzip: c.gzip.clone(),
                    filename: c.filename.clone(),
                };
                let result = self.inner.deliverer.deliver(&r, &dest).await;
                match result {
                    Ok(detail) => AttemptOutcome::Delivered(detail),
                    Err(DeliveryError::Permanent(e)) => {
                        // REQUIREMENTS DLV-07
                        if let Destination::Mailto(_) = dest
                            && let Some(s) = policy::suppression_after(
                                &dest,
                                &DeliveryError::Permanent(e.clone()),
                                now,
                            )
                        {
                            store
                                .suppress_address(&s.key, &s.reason, now, s.until)
                                .await?;
                            suppressed_until = Some(s.until);
                        }
                        AttemptOutcome::Failed(e)
                    }
                    Err(DeliveryError::Temporary(e)) => {
                        let first = c.first_attempt_at.unwrap_or(now);
                        let delay = crate::next_attempt_delay(c.attempts.saturating_add(1));
                        // REQUIREMENTS DLV-03, DLV-04
                        match schedule::next_retry(first, now, delay) {
                            Some(next_attempt_at) => AttemptOutcome::Retry {
                                detail: e,
                                next_attempt_at,
                            },
                            None => AttemptOutcome::Failed(format!(
                                "{e}; gave up 24 h after the first attempt"
                            )),
                        }
                    }
                }
            }
        };
        store.outbox_record_attempt(&c, &outcome, now).await?;
        Ok(Event::Attempt {
            report_id: c.report_id,
            policy_domain: c.policy_domain,
            destination: c.destination,
            outcome,
            suppressed_until,
        })
    }

    /// Builds `day`'s reports into the outbox (see [`crate::outbox::build_day`]).
    pub async fn build(
        &self,
        day: jiff::civil::Date,
        domain: Option<&str>,
        spread: bool,
        now: Timestamp,
    ) -> Result<crate::outbox::Built, RunError> {
        let mut o = self.inner.opts.build.clone();
        o.spread = spread;
        Ok(build_day(&self.inner.store, day, domain, &o, now).await?)
    }
}

/// Logs one event.
pub fn log_event(e: &Event) {
    match e {
        Event::Discovered {
            report_id,
            destinations,
            source,
            ..
        } => tracing::info!(
            report_id,
            count = destinations.len(),
            source,
            "destinations found"
        ),
        Event::NoRecord {
            report_id, detail, ..
        } => tracing::info!(report_id, detail, "no TLSRPT record: no report"),
        Event::DnsRetry {
            report_id,
            detail,
            next_at,
            ..
        } => tracing::warn!(report_id, detail, %next_at, "TLSRPT lookup failed; retrying later"),
        Event::DnsGaveUp {
            report_id, detail, ..
        } => tracing::warn!(report_id, detail, "TLSRPT lookup gave up"),
        Event::Attempt {
            report_id,
            destination,
            outcome,
            ..
        } => match outcome {
            AttemptOutcome::Delivered(d) => {
                tracing::info!(report_id, destination, detail = %d, "report delivered")
            }
            AttemptOutcome::Retry {
                detail,
                next_attempt_at,
            } => {
                tracing::warn!(report_id, destination, detail, %next_attempt_at, "delivery failed; will retry")
            }
            AttemptOutcome::Failed(d) => {
                tracing::warn!(report_id, destination, detail = %d, "delivery failed for good")
            }
        },
    }
}

/// The reporter role of `tlsrpt serve`: builds each closed UTC day's reports `delay` after
/// midnight (and, at start, the closed days of the last `lookback_days` not built yet), then
/// looks up and delivers whatever is due, sleeping until the next due time (at most `poll`).
/// After each build, outbox history older than `retention_days` is pruned.
/// Returns when `shutdown` resolves; store errors are logged and retried on the next round.
pub async fn run_reporter<D: Deliver>(
    reporter: Reporter<D>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let opts = reporter.options().clone();
    let mut built: std::collections::BTreeSet<jiff::civil::Date> = Default::default();
    tokio::pin!(shutdown);
    loop {
        let now = clock.now();
        for day in schedule::days_to_build(now, opts.build.delay, opts.lookback_days) {
            if built.contains(&day) {
                continue;
            }
            match reporter.build(day, None, true, now).await {
                Ok(b) => {
                    let new = b.reports.iter().filter(|r| r.created).count();
                    tracing::info!(%day, reports = b.reports.len(), new, skipped_all_success = b.skipped_all_success, "built the day's reports");
                    for (d, why) in &b.skipped_invalid {
                        tracing::warn!(%day, policy_domain = %d, why, "no report for an invalid policy domain");
                    }
                    built.insert(day);
                    // Once per built day: drop outbox history past the retention.
                    let first_kept =
                        tlsrpt_store::first_kept_day(schedule::utc_day(now), opts.retention_days);
                    match reporter.store().outbox_prune(first_kept, now).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(reports = n, %first_kept, "pruned old outbox reports")
                        }
                        Err(e) => tracing::error!(error = %e, "pruning the outbox failed"),
                    }
                }
                Err(e) => tracing::error!(%day, error = %e, "building the day's reports failed"),
            }
        }
        // Forget days that left the lookback.
        if let Some(first) = schedule::days_to_build(now, opts.build.delay, opts.lookback_days)
            .first()
            .copied()
        {
            built.retain(|d| *d >= first);
        }
        match reporter.step(now, None).await {
            Ok(events) => events.iter().for_each(log_event),
            Err(e) => tracing::error!(error = %e, "reporter step failed"),
        }
        let mut wake = schedule::add(now, opts.poll);
        if let Ok(Some(t)) = reporter.store().outbox_next_due().await {
            wake = wake.min(t);
        }
        wake = wake.min(schedule::build_time(
            schedule::utc_day(now),
            opts.build.delay,
        ));
        let sleep = wake
            .duration_since(clock.now())
            .try_into()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(50))
            .min(opts.poll);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
