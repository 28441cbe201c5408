//! The strict report writer: RFC-valid JSON only, whatever the model holds.
//!
//! The model may hold what a lenient read kept (an `x.x.x.x` address, `mx-host` on a `tlsa`
//! policy, fractional seconds); the writer never passes such things on. Rules:
//!
//! * Members in the order RFC 8460 §4.4 lists them.
//! * `policies` is always an array (REQUIREMENTS JSON-02).
//! * `mx-host` is always an array and only written for `sts` policies, omitted when empty
//!   (JSON-18).
//! * Date-times are RFC 3339 UTC with whole seconds, `2025-03-14T00:00:00Z` (JSON-11/JSON-12);
//!   fractional seconds are truncated.
//! * Unknown values are omitted, never written as `""` or `null` (JSON-29): `None` and empty
//!   strings are skipped.
//! * `policy-string`: written when non-empty; when empty, `[]` for `sts` and `tlsa` (the RFC's
//!   schema requires the member for them, and mox and mail-auth write `[]`) and omitted for
//!   `no-policy-found` and unknown types (JSON-16 REC: omit; Google omits it).
//! * IP addresses: canonical text (RFC 5952 for IPv6, dotted quad for IPv4) when they parse,
//!   omitted when they do not (JSON-22, JSON-25, JSON-29).
//! * Counts are JSON numbers. The model holds `u64`; values over 2^53-1 are **clamped** to
//!   2^53-1 so the output stays I-JSON (JSON-01, JSON-32). No real count comes near that, and
//!   an infallible writer is simpler for every caller than an error no one can act on.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::read::MAX_COUNT;
use crate::report::{DateRange, FailureDetail, Policy, PolicyResult, Report, Summary};
use crate::types::PolicyType;

/// Compact RFC 8460 JSON (no whitespace), as sent on the wire.
pub fn to_json(report: &Report) -> String {
    // Serialising these wrappers into a String cannot fail: every key is a string and no
    // value errors. `unwrap_or_default` keeps the signature infallible without a panic path.
    serde_json::to_string(&Wire(report)).unwrap_or_default()
}

/// Indented RFC 8460 JSON, for people.
pub fn to_json_pretty(report: &Report) -> String {
    serde_json::to_string_pretty(&Wire(report)).unwrap_or_default()
}

/// gzip (RFC 1952) of [`to_json`], as RFC 8460 §5.2 asks for both transports (REQUIREMENTS
/// DLV-02). The gzip header has mtime 0 and no file name, so equal reports give equal bytes.
pub fn to_gzip(report: &Report) -> Vec<u8> {
    let json = to_json(report);
    let mut enc = flate2::GzBuilder::new().write(
        Vec::with_capacity(json.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail; on the impossible error an empty Vec is returned.
    if enc.write_all(json.as_bytes()).is_err() {
        return Vec::new();
    }
    enc.finish().unwrap_or_default()
}

/// The same JSON as a [`serde_json::Value`], for embedding in other JSON output (the CLI's
/// `--json`). Note that `Value` objects do not keep member order.
pub fn to_value(report: &Report) -> serde_json::Value {
    serde_json::to_value(Wire(report)).unwrap_or(serde_json::Value::Null)
}

/// RFC 3339 UTC with whole seconds.
pub fn format_datetime(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Canonical text of an address, or `None` when the text is not an address.
pub fn canonical_ip(s: &str) -> Option<String> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

fn clamp(n: u64) -> u64 {
    n.min(MAX_COUNT)
}

fn some_nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The report as RFC 8460 JSON for any serde serializer, member order kept (unlike
/// [`to_value`], whose objects are unordered): embed it in other output with
/// `serde_json::to_writer(&mut out, &Wire(&report))`.
pub struct Wire<'a>(pub &'a Report);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(org) = some_nonempty(&r.organization_name) {
            m.serialize_entry("organization-name", org)?;
        }
        m.serialize_entry("date-range", &Dr(&r.date_range))?;
        if let Some(ci) = some_nonempty(&r.contact_info) {
            m.serialize_entry("contact-info", ci)?;
        }
        m.serialize_entry("report-id", &r.report_id)?;
        m.serialize_entry("policies", &Seq(&r.policies, PrW))?;
        m.end()
    }
}

/// A slice written as a JSON array through a wrapper.
struct Seq<'a, T, F>(&'a [T], F);

impl<'a, T, F, X> Serialize for Seq<'a, T, F>
where
    F: Fn(&'a T) -> X + Copy,
    X: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for x in self.0 {
            seq.serialize_element(&(self.1)(x))?;
        }
        seq.end()
    }
}

struct Dr<'a>(&'a DateRange);

impl Serialize for Dr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("start-datetime", &format_datetime(self.0.start))?;
        m.serialize_entry("end-datetime", &format_datetime(self.0.end))?;
        m.end()
    }
}

struct PrW<'a>(&'a PolicyResult);

impl Serialize for PrW<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("policy", &Po(&p.policy))?;
        m.serialize_entry("summary", &Su(&p.summary))?;
        if !p.failure_details.is_empty() {
            m.serialize_entry("failure-details", &Seq(&p.failure_details, FdW))?;
        }
        m.end()
    }
}

struct Po<'a>(&'a Policy);

impl Serialize for Po<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("policy-type", p.policy_type.as_str())?;
        let always = matches!(p.policy_type, PolicyType::Sts | PolicyType::Tlsa);
        if always || !p.policy_string.is_empty() {
            m.serialize_entry("policy-string", &p.policy_string)?;
        }
        if let Some(d) = some_nonempty(&p.policy_domain) {
            m.serialize_entry("policy-domain", d)?;
        }
        // RFC 8460 §4.4, REQUIREMENTS JSON-18: an array, sts only.
        if p.policy_type == PolicyType::Sts && !p.mx_host.is_empty() {
            m.serialize_entry("mx-host", &p.mx_host)?;
        }
        m.end()
    }
}

struct Su<'a>(&'a Summary);

impl Serialize for Su<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry(
            "total-successful-session-count",
            &clamp(self.0.total_successful_session_count),
        )?;
        m.serialize_entry(
            "total-failure-session-count",
            &clamp(self.0.total_failure_session_count),
        )?;
        m.end()
    }
}

struct FdW<'a>(&'a FailureDetail);

impl Serialize for FdW<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("result-type", d.result_type.as_str())?;
        if let Some(ip) = d.sending_mta_ip.as_deref().and_then(canonical_ip) {
            m.serialize_entry("sending-mta-ip", &ip)?;
        }
        if let Some(h) = some_nonempty(&d.receiving_mx_hostname) {
            m.serialize_entry("receiving-mx-hostname", h)?;
        }
        if let Some(h) = some_nonempty(&d.receiving_mx_helo) {
            m.serialize_entry("receiving-mx-helo", h)?;
        }
        if let Some(ip) = d.receiving_ip.as_deref().and_then(canonical_ip) {
            m.serialize_entry("receiving-ip", &ip)?;
        }
        m.serialize_entry("failed-session-count", &clamp(d.failed_session_count))?;
        // REQUIREMENTS JSON-27: the key is additional-information, never additional-info-uri.
        if let Some(a) = some_nonempty(&d.additional_information) {
            m.serialize_entry("additional-information", a)?;
        }
        if let Some(c) = some_nonempty(&d.failure_reason_code) {
            m.serialize_entry("failure-reason-code", c)?;
        }
        m.end()
    }
}
