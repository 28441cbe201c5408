//! Flood defences keyed on who sent a report (REQUIREMENTS SEC-01, RCV-07): reports per
//! submitter, reports per DKIM signing domain, and a shared allowance for senders we have not
//! seen much of, so that the senders we usually hear from keep capacity in reserve.
//!
//! Why: RFC 8460 §7 warns that an attacker can flood a published `rua` to hide the real
//! reports among junk. The per-client limit of the HTTPS endpoint ([`crate::limits`]) stops
//! one address; these limits stop one *identity* (many addresses claiming one submitter, or
//! mail signed by one domain) and bound what all unfamiliar senders together can add:
//!
//! * **per submitter**: the sender's organisational domain, from the mail's
//!   `TLS-Report-Submitter` header (RFC 8460 §5.3), else `contact-info`, else the
//!   `organization-name` ([`sender_key`]). Mail whose DKIM check did not pass is counted as
//!   `unverified:<sender>`, so a forgery never spends the real sender's allowance;
//! * **per DKIM domain**: the organisational domain of a *passing* signature's `d=` (a failing
//!   signature proves nothing, so it cannot spend a real signer's allowance);
//! * **new senders**: one bucket shared by every sender outside the top senders: the
//!   `top_senders` senders that reported on the most days over the last 30 (HTTPS reports and
//!   DKIM-verified mail; [`rank_senders`], reloaded from the store by `serve`). A flood from
//!   many invented submitters drains this bucket, not the reserve of the senders we know, and
//!   cannot buy its way into the top quickly: it adds one day per day, however many reports.
//!
//! A report over a limit is refused as temporary ([`Limited`]): HTTP 429 with `Retry-After`,
//! SMTP 451, exit 75 from `tlsrpt ingest`, left in the mailbox by IMAP and maildir, so a real
//! sender retries and nothing is lost. Limits are per process: `tlsrpt ingest` run once per
//! message from an MTA pipe starts fresh each time, and there the MTA's own concurrency and
//! rate limits apply.
//!
//! Known weakness, as with any unauthenticated endpoint: an HTTPS report can *claim* any
//! submitter, so a flood claiming a top sender's name spends that sender's per-submitter
//! allowance for HTTPS (its reports are then delayed, not lost). Its DKIM-signed mail is not
//! affected. Mail is limited after the DKIM check, so a mail flood costs one key lookup per
//! message (cached by the resolver) before it is refused.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Instant;

use tlsrpt_core::naming::contact_domain;

use crate::dkim::organizational_domain;
use crate::limits::{Decision, RateLimiter};

/// Default reports per minute per submitter (bursts of the same size). A big sender sends one
/// report per policy domain per day, mostly in the first hours of the UTC day: 600 a minute
/// lets a receiver for 10,000 domains take Google's batch in under 20 minutes.
pub const DEFAULT_PER_SUBMITTER_PER_MINUTE: u32 = 600;
/// Default reports per minute per DKIM signing domain.
pub const DEFAULT_PER_DKIM_DOMAIN_PER_MINUTE: u32 = 600;
/// Default reports per minute shared by all senders outside the top senders.
pub const DEFAULT_NEW_SENDERS_PER_MINUTE: u32 = 300;
/// Default number of top senders kept out of the shared new-sender allowance.
pub const DEFAULT_TOP_SENDERS: usize = 100;
/// How far back the store is asked for the top senders.
pub const TOP_SENDERS_WINDOW_DAYS: u32 = 30;
/// Submitters and DKIM domains tracked at once by each limiter.
const MAX_TRACKED: usize = 100_000;

/// The limits, from `[receiver]`. A rate of 0 switches that limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderLimits {
    /// Reports per minute per submitter.
    pub per_submitter_per_minute: u32,
    /// Reports per minute per (passing) DKIM signing domain.
    pub per_dkim_domain_per_minute: u32,
    /// Reports per minute shared by every sender outside the top senders.
    pub new_senders_per_minute: u32,
    /// How many of the most frequent senders are kept out of the shared allowance.
    pub top_senders: usize,
}

impl Default for SenderLimits {
    fn default() -> Self {
        SenderLimits {
            per_submitter_per_minute: DEFAULT_PER_SUBMITTER_PER_MINUTE,
            per_dkim_domain_per_minute: DEFAULT_PER_DKIM_DOMAIN_PER_MINUTE,
            new_senders_per_minute: DEFAULT_NEW_SENDERS_PER_MINUTE,
            top_senders: DEFAULT_TOP_SENDERS,
        }
    }
}

impl SenderLimits {
    /// Every limit off (benchmarks; deployments that limit elsewhere).
    pub fn off() -> Self {
        SenderLimits {
            per_submitter_per_minute: 0,
            per_dkim_domain_per_minute: 0,
            new_senders_per_minute: 0,
            top_senders: 0,
        }
    }
}

/// Which of the sender limits a report is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Reports per submitter.
    Submitter,
    /// Reports per passing DKIM domain.
    DkimDomain,
    /// The allowance shared by senders outside the top senders.
    NewSenders,
}

impl LimitKind {
    /// The name in answers and logs: `submitter`, `dkim-domain`, `new-senders`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Submitter => "submitter",
            LimitKind::DkimDomain => "dkim-domain",
            LimitKind::NewSenders => "new-senders",
        }
    }
}

/// A report refused for now because its sender is over a limit (REQUIREMENTS SEC-01).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} {key} is over the {} limit; retry in {retry_after_secs} s",
    if *.limit == LimitKind::DkimDomain { "DKIM domain" } else { "sender" },
    .limit.as_str()
)]
pub struct Limited {
    /// Which limit.
    pub limit: LimitKind,
    /// The key that is over it (a domain, `org:<name>`, `unverified:<sender>` or `unknown`).
    pub key: String,
    /// Seconds until one more report would be taken.
    pub retry_after_secs: u64,
}

/// The per-sender limiters of one pipeline.
#[derive(Debug)]
pub struct SenderLimiter {
    limits: SenderLimits,
    per_submitter: RateLimiter<String>,
    per_dkim_domain: RateLimiter<String>,
    new_senders: RateLimiter<()>,
    top: RwLock<HashSet<String>>,
}

impl SenderLimiter {
    /// Limiters for `limits`, with no top senders known yet.
    pub fn new(limits: SenderLimits) -> Self {
        SenderLimiter {
            limits,
            per_submitter: RateLimiter::new(limits.per_submitter_per_minute, MAX_TRACKED),
            per_dkim_domain: RateLimiter::new(limits.per_dkim_domain_per_minute, MAX_TRACKED),
            new_senders: RateLimiter::new(limits.new_senders_per_minute, 1),
            top: RwLock::new(HashSet::new()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> SenderLimits {
        self.limits
    }

    /// Replaces the top senders with the first `top_senders` keys of `ranked` (most reports
    /// first, as [`rank_senders`] returns them).
    pub fn set_top_senders(&self, ranked: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = ranked.into_iter().take(self.limits.top_senders).collect();
        *self.top.write().unwrap_or_else(|p| p.into_inner()) = set;
    }

    /// How many top senders are known.
    pub fn top_senders_len(&self) -> usize {
        self.top.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when `key` is one of the top senders.
    pub fn is_top_sender(&self, key: &str) -> bool {
        self.top
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// Counts one report by `sender` (a [`sender_key`]) at `now`: first against the
    /// submitter's own allowance, then, for a sender outside the top senders, against the
    /// shared new-sender allowance.
    pub fn check_sender(&self, sender: &str, now: Instant) -> Result<(), Limited> {
        let limited = |limit, retry_after_secs| Limited {
            limit,
            key: sender.to_owned(),
            retry_after_secs,
        };
        if let Decision::Deny { retry_after_secs } = self.per_submitter.check_key(sender, now) {
            return Err(limited(LimitKind::Submitter, retry_after_secs));
        }
        if !self.is_top_sender(sender)
            && let Decision::Deny { retry_after_secs } = self.new_senders.check_key(&(), now)
        {
            return Err(limited(LimitKind::NewSenders, retry_after_secs));
        }
        Ok(())
    }

    /// Counts one report signed (with a passing signature) by `dkim_domain` at `now`, keyed
    /// on its organisational domain.
    pub fn check_dkim_domain(&self, dkim_domain: &str, now: Instant) -> Result<(), Limited> {
        let key = organizational_domain(dkim_domain);
        match self.per_dkim_domain.check_key(&key, now) {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after_secs } => Err(Limited {
                limit: LimitKind::DkimDomain,
                key,
                retry_after_secs,
            }),
        }
    }
}

/// Who sent a report, for the limits: the organisational domain of the `TLS-Report-Submitter`
/// header (mail, RFC 8460 §5.3), else of the `contact-info`, else `org:` and the
/// `organization-name` in lower case (at most 64 characters), else `unknown`. Subdomains of
/// one organisation share a key, so rotating host names does not multiply the allowance.
pub fn sender_key(
    submitter: Option<&str>,
    contact_info: Option<&str>,
    organization_name: Option<&str>,
) -> String {
    let domain = submitter
        .and_then(|s| tlsrpt_core::domain::normalize(s.trim()).ok())
        .or_else(|| contact_info.and_then(contact_domain));
    if let Some(d) = domain {
        return organizational_domain(&d);
    }
    match organization_name.map(str::trim) {
        Some(name) if !name.is_empty() => {
            let mut key = String::from("org:");
            key.extend(name.chars().take(64).flat_map(char::to_lowercase));
            key
        }
        _ => "unknown".to_owned(),
    }
}

/// One row of the history the top senders are ranked from, as the store counts it: who (the
/// mail's submitter header, `contact-info`, `organization-name`), on which UTC day, how many.
#[derive(Clone, Copy, Debug)]
pub struct SenderDay<'a> {
    /// `TLS-Report-Submitter` (mail), if any.
    pub submitter: Option<&'a str>,
    /// `contact-info`, if any.
    pub contact_info: Option<&'a str>,
    /// `organization-name`, if any.
    pub organization_name: Option<&'a str>,
    /// The day of arrival (`YYYY-MM-DD`).
    pub day: &'a str,
    /// Reports that day.
    pub reports: u64,
}

/// [`sender_key`] of a report: `submitter` is the mail's `TLS-Report-Submitter` (`None` for
/// HTTPS, which has no such header).
pub fn report_sender(submitter: Option<&str>, report: &tlsrpt_core::Report) -> String {
    sender_key(
        submitter,
        report.contact_info.as_deref(),
        report.organization_name.as_deref(),
    )
}

/// Ranks senders for the reserve: each [`sender_key`] once, the one that reported on the most
/// distinct days first, then by reports, then by key (a stable order). Days come first because
/// a flood can add many reports in an hour but only one day per day: the senders we really
/// hear from every day stay on top.
pub fn rank_senders<'a>(rows: impl IntoIterator<Item = SenderDay<'a>>) -> Vec<String> {
    let mut totals: HashMap<String, (HashSet<&'a str>, u64)> = HashMap::new();
    for r in rows {
        let t = totals
            .entry(sender_key(r.submitter, r.contact_info, r.organization_name))
            .or_default();
        t.0.insert(r.day);
        t.1 += r.reports;
    }
    let mut ranked: Vec<(String, usize, u64)> = totals
        .into_iter()
        .map(|(k, (days, n))| (k, days.len(), n))
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.2.cmp(&a.2))
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked.into_iter().map(|(k, _, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sec_01_sender_key_prefers_header_then_contact_then_name() {
        let google = (Some("smtp-tls-reporting@google.com"), Some("Google Inc."));
        assert_eq!(
            sender_key(Some("Mail.Google.COM"), google.0, google.1),
            "google.com"
        );
        assert_eq!(sender_key(None, google.0, google.1), "google.com");
        let odd = (Some("call us maybe"), Some("Example  Mailer"));
        assert_eq!(sender_key(None, odd.0, odd.1), "org:example  mailer");
        assert_eq!(
            sender_key(Some("not a domain!"), odd.0, odd.1),
            "org:example  mailer"
        );
        assert_eq!(sender_key(None, None, None), "unknown");
        assert_eq!(
            sender_key(None, Some("tlsrpt@reports.example.co.uk"), Some(" ")),
            "example.co.uk"
        );
        let long = "X".repeat(500);
        assert_eq!(sender_key(None, None, Some(&long)).len(), 4 + 64);
    }

    #[test]
    fn sec_01_per_submitter_burst_then_retry_after() {
        let l = SenderLimiter::new(SenderLimits {
            per_submitter_per_minute: 3,
            new_senders_per_minute: 0,
            ..SenderLimits::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_sender("example.com", t0), Ok(()));
        }
        let e = l.check_sender("example.com", t0).unwrap_err();
        assert_eq!(e.limit, LimitKind::Submitter);
        assert_eq!(e.key, "example.com");
        assert_eq!(e.retry_after_secs, 20);
        // Another submitter is not affected; 20 s later one report is taken again.
        assert_eq!(l.check_sender("example.org", t0), Ok(()));
        assert_eq!(
            l.check_sender("example.com", t0 + Duration::from_secs(20)),
            Ok(())
        );
    }

    #[test]
    fn sec_01_top_senders_keep_capacity_when_new_senders_flood() {
        let l = SenderLimiter::new(SenderLimits {
            per_submitter_per_minute: 100,
            new_senders_per_minute: 5,
            top_senders: 2,
            ..SenderLimits::default()
        });
        l.set_top_senders([
            "google.com".to_owned(),
            "microsoft.com".to_owned(),
            "x.example".to_owned(),
        ]);
        assert!(l.is_top_sender("google.com") && l.is_top_sender("microsoft.com"));
        assert!(
            !l.is_top_sender("x.example"),
            "only the first top_senders count"
        );
        let t0 = Instant::now();
        // Invented submitters share five reports a minute between them.
        let mut taken = 0;
        for i in 0..50 {
            if l.check_sender(&format!("flood{i}.example"), t0).is_ok() {
                taken += 1;
            }
        }
        assert_eq!(taken, 5);
        let e = l.check_sender("flood99.example", t0).unwrap_err();
        assert_eq!(e.limit, LimitKind::NewSenders);
        // The top senders are still served, up to their own allowance.
        for _ in 0..100 {
            assert_eq!(l.check_sender("google.com", t0), Ok(()));
        }
        assert_eq!(l.check_sender("microsoft.com", t0), Ok(()));
        assert_eq!(
            l.check_sender("google.com", t0).unwrap_err().limit,
            LimitKind::Submitter
        );
    }

    #[test]
    fn sec_01_dkim_domain_keyed_on_organisational_domain() {
        let l = SenderLimiter::new(SenderLimits {
            per_dkim_domain_per_minute: 2,
            ..SenderLimits::default()
        });
        let t0 = Instant::now();
        assert_eq!(l.check_dkim_domain("a.google.com", t0), Ok(()));
        assert_eq!(l.check_dkim_domain("B.google.com", t0), Ok(()));
        let e = l.check_dkim_domain("google.com", t0).unwrap_err();
        assert_eq!(
            (e.limit.as_str(), e.key.as_str()),
            ("dkim-domain", "google.com")
        );
        assert_eq!(l.check_dkim_domain("microsoft.com", t0), Ok(()));
    }

    #[test]
    fn zero_switches_limits_off() {
        let l = SenderLimiter::new(SenderLimits::off());
        let t0 = Instant::now();
        for i in 0..10_000 {
            assert_eq!(l.check_sender(&format!("s{i}.example"), t0), Ok(()));
            assert_eq!(l.check_dkim_domain("example.com", t0), Ok(()));
        }
    }

    #[test]
    fn sec_01_rank_senders_by_days_then_reports() {
        let row = |submitter, contact_info, org, day, reports| SenderDay {
            submitter,
            contact_info,
            organization_name: org,
            day,
            reports,
        };
        let rows = [
            // Google on three days (two rows name it differently: one key).
            row(
                None,
                Some("smtp-tls-reporting@google.com"),
                Some("Google"),
                "2026-11-01",
                10,
            ),
            row(Some("google.com"), None, Some("Google"), "2026-11-02", 5),
            row(
                None,
                Some("smtp-tls-reporting@google.com"),
                Some("Google"),
                "2026-11-03",
                1,
            ),
            row(Some("mail.google.com"), None, None, "2026-11-03", 1),
            // A flood: many reports, one day.
            row(None, Some("x@flood.example"), None, "2026-11-03", 100_000),
            // Microsoft on two days, Tiny and Alpha on one day each.
            row(
                None,
                Some("tlsrpt@microsoft.com"),
                Some("Microsoft"),
                "2026-11-01",
                12,
            ),
            row(
                None,
                Some("tlsrpt@microsoft.com"),
                Some("Microsoft"),
                "2026-11-02",
                12,
            ),
            row(None, None, Some("Tiny"), "2026-11-02", 1),
            row(None, None, Some("Alpha"), "2026-11-02", 1),
        ];
        assert_eq!(
            rank_senders(rows),
            [
                "google.com",
                "microsoft.com",
                "flood.example",
                "org:alpha",
                "org:tiny"
            ]
        );
    }
}
