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
