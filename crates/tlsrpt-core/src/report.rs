//! The RFC 8460 §4.4 report as Rust types.
//!
//! One model serves both directions: the lenient reader (`crate::read`) fills it from whatever
//! real senders send, the strict writer (`crate::write`) turns it into RFC-valid JSON, and the
//! tally (`crate::tally`) builds it from collected sessions. Fields that real senders omit are
//! `Option`s or empty vectors so that "absent" is never confused with a value; the counts the
//! reader insists on (see `crate::read`) are plain `u64` (REQUIREMENTS JSON-32).
//!
//! Addresses are kept as the text the sender wrote: a receiver stores `x.x.x.x` verbatim with a
//! deviation rather than inventing an address, and the writer canonicalises valid ones
//! (RFC 5952 for IPv6, REQUIREMENTS JSON-22).

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::types::{PolicyType, ResultType};

/// One aggregate report (RFC 8460 §4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `organization-name`. Required by the RFC, but `None` when a sender left it out.
    pub organization_name: Option<String>,
    /// `date-range`.
    pub date_range: DateRange,
    /// `contact-info`, an RFC 5322 addr-spec. `null` is seen in the wild (REQUIREMENTS §13.3).
    pub contact_info: Option<String>,
    /// `report-id`: unique, free form; never assumed to be msg-id shaped (JSON-14).
    pub report_id: String,
    /// `policies`: always an array on the wire (JSON-02).
    pub policies: Vec<PolicyResult>,
}

/// `date-range`: the reporting period, normally one whole UTC day (RFC 8460 §4.1, JSON-11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateRange {
    /// `start-datetime`
    pub start: Timestamp,
    /// `end-datetime`
    pub end: Timestamp,
}

impl DateRange {
    /// The date-range of one whole UTC day, `YYYY-MM-DDT00:00:00Z` … `YYYY-MM-DDT23:59:59Z`:
    /// what we write (RFC 8460 §4.1, REQUIREMENTS RPT-02, JSON-12) and what the §5.1 filename's
    /// timestamps encode (end = begin + 86399, MAIL-09). Days at the very edge of jiff's range
    /// clamp to its limits instead of failing.
    pub fn utc_day(day: Date) -> DateRange {
        let at = |h, m, s| TimeZone::UTC.to_timestamp(day.at(h, m, s, 0));
        DateRange {
            start: at(0, 0, 0).unwrap_or(Timestamp::MIN),
            end: at(23, 59, 59).unwrap_or(Timestamp::MAX),
        }
    }
}

/// One element of `policies`: an applied policy with its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyResult {
    /// `policy`
    pub policy: Policy,
    /// `summary`
    pub summary: Summary,
    /// `failure-details`; empty when absent or `[]` on the wire.
    pub failure_details: Vec<FailureDetail>,
}

/// `policy`: what identifies one distinct applied policy (REQUIREMENTS RPT-05).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Policy {
    /// `policy-type`
    pub policy_type: PolicyType,
    /// `policy-string`: MTA-STS policy lines or TLSA RRs (RFC 8460 §4.5); empty when absent.
    pub policy_string: Vec<String>,
    /// `policy-domain`, in A-labels (JSON-17). `None` when a sender omitted it (sys4 reporter).
    pub policy_domain: Option<String>,
    /// `mx-host`: the MTA-STS `mx` patterns (JSON-18); empty when absent.
    pub mx_host: Vec<String>,
}

/// `summary`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Summary {
    /// `total-successful-session-count` (RFC 8460 §4.2.1)
    pub total_successful_session_count: u64,
    /// `total-failure-session-count` (RFC 8460 §4.2.2)
    pub total_failure_session_count: u64,
}

/// One element of `failure-details` (RFC 8460 §4.4). Every field but the result type and the
/// count is optional in practice (REQUIREMENTS §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailureDetail {
    /// `result-type`
    pub result_type: ResultType,
    /// `sending-mta-ip`, as written by the sender.
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`, as written by the sender.
    pub receiving_ip: Option<String>,
    /// `failed-session-count`
    pub failed_session_count: u64,
    /// `additional-information` (the prose calls its value "additional-info-uri"; JSON-27).
    pub additional_information: Option<String>,
    /// `failure-reason-code`
    pub failure_reason_code: Option<String>,
}

impl FailureDetail {
    /// A detail of the given type with every optional field absent and a count of zero.
    pub fn new(result_type: ResultType) -> Self {
        FailureDetail {
            result_type,
            sending_mta_ip: None,
            receiving_mx_hostname: None,
            receiving_mx_helo: None,
            receiving_ip: None,
            failed_session_count: 0,
            additional_information: None,
            failure_reason_code: None,
        }
    }

    /// This detail with its count set to 0: what identifies it, so that equal details meet
    /// in one entry when they are counted or merged (REQUIREMENTS RPT-08).
    pub fn key(&self) -> FailureDetail {
        FailureDetail {
            failed_session_count: 0,
            ..self.clone()
        }
    }
}

impl Report {
    /// Sessions counted as successful, over all policies.
    ///
    /// A domain reported under both an `sts` and a `tlsa` policy in one report has each
    /// session counted twice on the wire (Microsoft does this; REQUIREMENTS JSON-30). See
    /// [`Report::session_totals`] for totals that count each session once.
    pub fn raw_totals(&self) -> Summary {
        let mut s = Summary::default();
        for p in &self.policies {
            s.total_successful_session_count = s
                .total_successful_session_count
                .saturating_add(p.summary.total_successful_session_count);
            s.total_failure_session_count = s
                .total_failure_session_count
                .saturating_add(p.summary.total_failure_session_count);
        }
        s
    }
}

/// The optional failure-detail fields a sender may leave out of the reports it writes
/// (REQUIREMENTS RPT-19, SEC-07: they reveal the sender's infrastructure and TLS stack). Names
/// are the RFC 8460 §4.4 member names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OmittedFields {
    /// `sending-mta-ip`
    pub sending_mta_ip: bool,
    /// `receiving-mx-helo`
    pub receiving_mx_helo: bool,
    /// `failure-reason-code`
    pub failure_reason_code: bool,
}

impl OmittedFields {
    /// The member names that can be omitted.
    pub const NAMES: [&'static str; 3] =
        ["sending-mta-ip", "receiving-mx-helo", "failure-reason-code"];

    /// Marks the member `name` (one of [`OmittedFields::NAMES`]) as omitted; false for any
    /// other name.
    pub fn omit(&mut self, name: &str) -> bool {
        match name {
            "sending-mta-ip" => self.sending_mta_ip = true,
            "receiving-mx-helo" => self.receiving_mx_helo = true,
            "failure-reason-code" => self.failure_reason_code = true,
            _ => return false,
        }
        true
    }

    /// True when nothing is omitted.
    pub fn is_empty(&self) -> bool {
        *self == OmittedFields::default()
    }
}

impl Report {
    /// Removes the `omit`ted fields from every failure detail (REQUIREMENTS RPT-19). Details
    /// that become identical are merged, their counts added (saturating), so the report still
    /// has one entry per distinct failure (JSON-31) and the same totals; the first of them
    /// keeps its place.
    pub fn omit_detail_fields(&mut self, omit: OmittedFields) {
        if omit.is_empty() {
            return;
        }
        for p in &mut self.policies {
            let mut merged: Vec<FailureDetail> = Vec::with_capacity(p.failure_details.len());
            // Each distinct detail (count aside) → its place in `merged`.
            let mut index: std::collections::HashMap<FailureDetail, usize> =
                std::collections::HashMap::with_capacity(p.failure_details.len());
            for mut d in p.failure_details.drain(..) {
                if omit.sending_mta_ip {
                    d.sending_mta_ip = None;
                }
                if omit.receiving_mx_helo {
                    d.receiving_mx_helo = None;
                }
                if omit.failure_reason_code {
                    d.failure_reason_code = None;
                }
                let key = d.key();
                match index.get(&key).and_then(|&i| merged.get_mut(i)) {
                    Some(e) => {
                        e.failed_session_count = e
                            .failed_session_count
                            .saturating_add(d.failed_session_count)
                    }
                    None => {
                        index.insert(key, merged.len());
                        merged.push(d);
                    }
                }
            }
            p.failure_details = merged;
        }
    }
}
