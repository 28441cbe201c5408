//! The aggregation algebra: session outcomes → counters → one report per (UTC day, policy
//! domain, TLSRPT record).
//!
//! Counters only ever add, and every map is ordered, so partial tallies from many collectors
//! (or many flushes) merge in any order into byte-identical reports (RFC 8460 §4, REQUIREMENTS
//! RPT-04, RPT-05, RPT-08).

use std::collections::BTreeMap;

use jiff::civil::Date;

use crate::report::{FailureDetail, Policy};

/// Where a group of counters goes: one report is built per `ReportKey`.
///
/// `domain` is the policy domain the report is about (the datagram's `d`, normalised by
/// [`crate::domain::normalize`]); `record` is the TLSRPT TXT record text the MTA saw (`pr`).
/// A record change during the day therefore yields a separate report (DATAGRAM.md §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportKey {
    /// UTC day of receipt (RFC 8460 §4.1, REQUIREMENTS RPT-02).
    pub day: Date,
    /// Normalised policy domain (lower case, no trailing dot, A-labels).
    pub domain: String,
    /// The TLSRPT record text as the MTA saw it.
    pub record: String,
}

/// A failure detail without its count: the full grouping key of REQUIREMENTS RPT-08.
/// `failed_session_count` is always 0 inside a key.
pub type FailureKey = FailureDetail;

/// Counters of one applied policy within one report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    /// Sessions that succeeded under the policy.
    pub successful: u64,
    /// Sessions that failed under the policy.
    pub failed: u64,
    /// Failure details by their full key (count zeroed in the key), with session counts.
    pub failures: BTreeMap<FailureKey, u64>,
}

/// A tally: every counter, keyed by report and then by applied policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The counters. Public so stores can fill a tally from rows.
    pub reports: BTreeMap<ReportKey, BTreeMap<Policy, PolicyCounters>>,
}

use crate::datagram::{Datagram, DatagramError};
use crate::report::{DateRange, PolicyResult, Report, Summary};

impl PolicyCounters {
    /// True when nothing was counted: such an entry is left out of reports.
    pub fn is_zero(&self) -> bool {
        self.successful == 0 && self.failed == 0 && self.failures.values().all(|&n| n == 0)
    }

    /// Adds `other`'s counts to these (saturating: a counter never wraps).
    pub fn merge(&mut self, other: &PolicyCounters) {
        self.successful = self.successful.saturating_add(other.successful);
        self.failed = self.failed.saturating_add(other.failed);
        for (k, &n) in &other.failures {
            add_failure_count(&mut self.failures, k, n);
        }
    }

    /// Sessions counted (successful + failed).
    pub fn sessions(&self) -> u64 {
        self.successful.saturating_add(self.failed)
    }
}

/// Adds `n` to the counter of `key`, forcing the key's own count to 0 so that equal failure
/// details always meet in one entry (REQUIREMENTS RPT-08).
fn add_failure_count(map: &mut BTreeMap<FailureKey, u64>, key: &FailureKey, n: u64) {
    if let Some(c) = map.get_mut(key) {
        *c = c.saturating_add(n);
        return;
    }
    let c = map.entry(key.key()).or_insert(0);
    *c = c.saturating_add(n);
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Tally::default()
    }

    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.reports
            .values()
            .all(|ps| ps.values().all(PolicyCounters::is_zero))
    }

    /// Total sessions counted over all reports and policies (successful + failed; a session
    /// counted under two policies counts twice, see [`crate::accounting`]).
    pub fn sessions(&self) -> u64 {
        self.reports
            .values()
            .flat_map(|ps| ps.values())
            .fold(0u64, |a, c| a.saturating_add(c.sessions()))
    }

    /// Number of distinct counter keys: one per (report, policy) plus one per failure key.
    pub fn key_count(&self) -> usize {
        self.reports
            .values()
            .flat_map(|ps| ps.values())
            .map(|c| 1 + c.failures.len())
            .sum()
    }

    /// Counts one received datagram on `day` (the UTC day of receipt, DATAGRAM.md §6).
    ///
    /// The report key is (day, normalised `d`, `pr`). Per policy: `successful += 1` when the
    /// final result `f` is 0, `failed += 1` when it is 1 (RFC 8460 §4.2.1/§4.2.2, REQUIREMENTS
    /// RPT-06, RPT-07), and every failure detail adds 1 to the counter of its whole key
    /// (DATAGRAM.md §6: per-IP details never collapse; REQUIREMENTS RPT-08). The failure
    /// details are mapped as described in [`crate::datagram`] (EHLO host name, unknown codes).
    ///
    /// Fails only when `d` is not a valid domain; then nothing is counted.
    pub fn add_datagram(&mut self, day: Date, d: &Datagram<'_>) -> Result<(), DatagramError> {
        let domain = d.normalized_domain()?;
        let key = ReportKey {
            day,
            domain,
            record: d.record.to_string_value(),
        };
        let report_domain = key.domain.clone();
        let policies = self.reports.entry(key).or_default();
        for p in d.policies() {
            let counters = policies.entry(p.to_policy(&report_domain)).or_default();
            if p.failed {
                counters.failed = counters.failed.saturating_add(1);
            } else {
                counters.successful = counters.successful.saturating_add(1);
            }
            for f in p.failure_details.iter() {
                add_failure_count(&mut counters.failures, &f.to_failure_key(), 1);
            }
        }
        Ok(())
    }

    /// Adds counts for one (report, policy) pair, e.g. rows read back from a store.
    pub fn add_counters(&mut self, key: &ReportKey, policy: &Policy, counters: &PolicyCounters) {
        let ps = match self.reports.get_mut(key) {
            Some(ps) => ps,
            None => self.reports.entry(key.clone()).or_default(),
        };
        match ps.get_mut(policy) {
            Some(c) => c.merge(counters),
            None => {
                let mut c = PolicyCounters::default();
                c.merge(counters);
                ps.insert(policy.clone(), c);
            }
        }
    }

    /// Adds every counter of `other` to this tally. Addition is commutative and associative,
    /// so tallies from many collectors or flushes merge in any order to the same result.
    pub fn merge(&mut self, other: &Tally) {
        for (key, ps) in &other.reports {
            for (policy, c) in ps {
                self.add_counters(key, policy, c);
            }
        }
    }

    /// Like [`Tally::merge`], but consumes `other` (no clones for keys new to `self`).
    pub fn merge_owned(&mut self, other: Tally) {
        for (key, ps) in other.reports {
            let mine = self.reports.entry(key).or_default();
            for (policy, c) in ps {
                match mine.get_mut(&policy) {
                    Some(m) => m.merge(&c),
                    None => {
                        mine.insert(policy, c);
                    }
                }
            }
        }
    }

    /// Builds one RFC 8460 report per [`ReportKey`] (REQUIREMENTS RPT-04), in key order.
    ///
    /// * `date-range` is the whole UTC day ([`DateRange::utc_day`], JSON-12).
    /// * `policies` come in [`Policy`] order, `failure-details` in failure-key order, so equal
    ///   tallies give byte-identical reports whatever order they were built in.
    /// * Policies with nothing counted and reports with no such policy are left out.
    /// * `report_id` makes the report-id for a key (see `crate::naming`).
    pub fn reports(
        &self,
        organization_name: &str,
        contact_info: &str,
        report_id: impl Fn(&ReportKey) -> String,
    ) -> Vec<(ReportKey, Report)> {
        let mut out = Vec::new();
        for (key, ps) in &self.reports {
            let policies: Vec<PolicyResult> = ps
                .iter()
                .filter(|(_, c)| !c.is_zero())
                .map(|(policy, c)| PolicyResult {
                    policy: policy.clone(),
                    summary: Summary {
                        total_successful_session_count: c.successful,
                        total_failure_session_count: c.failed,
                    },
                    failure_details: c
                        .failures
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(k, &n)| {
                            let mut fd = k.clone();
                            fd.failed_session_count = n;
                            fd
                        })
                        .collect(),
                })
                .collect();
            if policies.is_empty() {
                continue;
            }
            out.push((
                key.clone(),
                Report {
                    organization_name: Some(organization_name.to_owned()),
                    date_range: DateRange::utc_day(key.day),
                    contact_info: Some(contact_info.to_owned()),
                    report_id: report_id(key),
                    policies,
                },
            ));
        }
        out
    }
}
