//! Policy types and result types: the two enumerations of RFC 8460.
//!
//! Both registries are open-ended (RFC 8460 §6.6 is an Expert Review registry, and a future
//! revision may add policy types), so an unknown value is kept verbatim in `Unknown(String)`
//! and written back out unchanged: a receiver must never lose what a sender said
//! (REQUIREMENTS JSON-15, JSON-21, IANA-06).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `policy-type` of RFC 8460 §4.4: which mechanism's policy the sessions were evaluated under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    /// `"tlsa"`: a DANE TLSA RRset (RFC 7672).
    Tlsa,
    /// `"sts"`: an MTA-STS policy (RFC 8461).
    Sts,
    /// `"no-policy-found"`: neither applied; the heartbeat of opportunistic TLS (RFC 8460 §4.4).
    NoPolicyFound,
    /// Any other string, kept verbatim (REQUIREMENTS JSON-15).
    Unknown(String),
}

impl PolicyType {
    /// The RFC 8460 §4.4 string for this type.
    pub fn as_str(&self) -> &str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
            PolicyType::Unknown(s) => s,
        }
    }

    /// Reads the RFC string; anything else becomes `Unknown` with the text kept.
    pub fn parse(s: &str) -> Self {
        match s {
            "tlsa" => PolicyType::Tlsa,
            "sts" => PolicyType::Sts,
            "no-policy-found" => PolicyType::NoPolicyFound,
            other => PolicyType::Unknown(other.to_owned()),
        }
    }

    /// The integer libtlsrpt puts in a datagram's `policy-type` (DATAGRAM.md §3):
    /// 1 = tlsa, 2 = sts, 9 = no-policy-found. Other codes have no RFC meaning.
    pub fn from_datagram_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(PolicyType::Tlsa),
            2 => Some(PolicyType::Sts),
            9 => Some(PolicyType::NoPolicyFound),
            _ => None,
        }
    }

    /// The libtlsrpt code of this type, if it has one.
    pub fn datagram_code(&self) -> Option<u64> {
        match self {
            PolicyType::Tlsa => Some(1),
            PolicyType::Sts => Some(2),
            PolicyType::NoPolicyFound => Some(9),
            PolicyType::Unknown(_) => None,
        }
    }

    /// True for the three values RFC 8460 §4.4 defines.
    pub fn is_known(&self) -> bool {
        !matches!(self, PolicyType::Unknown(_))
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PolicyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PolicyType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(PolicyType::parse(&s))
    }
}

/// `result-type` of RFC 8460 §4.3, the "STARTTLS Validation Result Types" registry (§6.6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultType {
    /// §4.3.1 `starttls-not-supported`
    StarttlsNotSupported,
    /// §4.3.1 `certificate-host-mismatch`
    CertificateHostMismatch,
    /// §4.3.1 `certificate-expired`
    CertificateExpired,
    /// §4.3.1 `certificate-not-trusted` (SHOULD carry a failure-reason-code, RT-01)
    CertificateNotTrusted,
    /// §4.3.1 `validation-failure` (SHOULD carry a failure-reason-code, RT-01)
    ValidationFailure,
    /// §4.3.2.1 `tlsa-invalid`
    TlsaInvalid,
    /// §4.3.2.1 `dnssec-invalid`
    DnssecInvalid,
    /// §4.3.2.1 `dane-required`
    DaneRequired,
    /// §4.3.2.2 `sts-policy-fetch-error`
    StsPolicyFetchError,
    /// §4.3.2.2 `sts-policy-invalid`
    StsPolicyInvalid,
    /// §4.3.2.2 `sts-webpki-invalid`
    StsWebpkiInvalid,
    /// A value registered after RFC 8460, or a sender's invention: kept verbatim (JSON-21).
    Unknown(String),
}

/// Every result type RFC 8460 registers, in registry order.
pub const KNOWN_RESULT_TYPES: [ResultType; 11] = [
    ResultType::StarttlsNotSupported,
    ResultType::CertificateHostMismatch,
    ResultType::CertificateExpired,
    ResultType::CertificateNotTrusted,
    ResultType::ValidationFailure,
    ResultType::TlsaInvalid,
    ResultType::DnssecInvalid,
    ResultType::DaneRequired,
    ResultType::StsPolicyFetchError,
    ResultType::StsPolicyInvalid,
    ResultType::StsWebpkiInvalid,
];

impl ResultType {
    /// The registry string.
    pub fn as_str(&self) -> &str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
            ResultType::Unknown(s) => s,
        }
    }

    /// Reads the registry string; anything else becomes `Unknown` with the text kept.
    pub fn parse(s: &str) -> Self {
        KNOWN_RESULT_TYPES
            .iter()
            .find(|k| k.as_str() == s)
            .cloned()
            .unwrap_or_else(|| ResultType::Unknown(s.to_owned()))
    }

    /// The integer libtlsrpt sends in a failure detail's `c` (DATAGRAM.md §3, `tlsrpt.h`):
    /// 201–205 negotiation, 301–303 MTA-STS, 304–306 DANE. 901 ("unfinished policy") and any
    /// other code have no RFC meaning and give `None`.
    pub fn from_datagram_code(code: u64) -> Option<Self> {
        Some(match code {
            201 => ResultType::StarttlsNotSupported,
            202 => ResultType::CertificateHostMismatch,
            203 => ResultType::CertificateNotTrusted,
            204 => ResultType::CertificateExpired,
            205 => ResultType::ValidationFailure,
            301 => ResultType::StsPolicyFetchError,
            302 => ResultType::StsPolicyInvalid,
            303 => ResultType::StsWebpkiInvalid,
            304 => ResultType::TlsaInvalid,
            305 => ResultType::DnssecInvalid,
            306 => ResultType::DaneRequired,
            _ => return None,
        })
    }

    /// The libtlsrpt code of this type, if it has one (inverse of `from_datagram_code`).
    pub fn datagram_code(&self) -> Option<u64> {
        Some(match self {
            ResultType::StarttlsNotSupported => 201,
            ResultType::CertificateHostMismatch => 202,
            ResultType::CertificateNotTrusted => 203,
            ResultType::CertificateExpired => 204,
            ResultType::ValidationFailure => 205,
            ResultType::StsPolicyFetchError => 301,
            ResultType::StsPolicyInvalid => 302,
            ResultType::StsWebpkiInvalid => 303,
            ResultType::TlsaInvalid => 304,
            ResultType::DnssecInvalid => 305,
            ResultType::DaneRequired => 306,
            ResultType::Unknown(_) => return None,
        })
    }

    /// True for the eleven values RFC 8460 registers.
    pub fn is_known(&self) -> bool {
        !matches!(self, ResultType::Unknown(_))
    }

    /// RFC 8460 §4.3.1/§4.3.3, REQUIREMENTS RT-01/RPT-09: these two types SHOULD carry a
    /// `failure-reason-code`.
    pub fn wants_reason_code(&self) -> bool {
        matches!(
            self,
            ResultType::CertificateNotTrusted | ResultType::ValidationFailure
        )
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResultType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResultType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ResultType::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_types_round_trip_and_codes_are_inverse() {
        for rt in KNOWN_RESULT_TYPES.iter() {
            assert_eq!(&ResultType::parse(rt.as_str()), rt);
            let code = rt
                .datagram_code()
                .expect("every RFC type has a libtlsrpt code");
            assert_eq!(ResultType::from_datagram_code(code).as_ref(), Some(rt));
        }
        assert_eq!(ResultType::from_datagram_code(901), None);
        assert_eq!(
            ResultType::parse("mta-sts-mx-mismatch"),
            ResultType::Unknown("mta-sts-mx-mismatch".into())
        );
    }

    #[test]
    fn policy_types_keep_unknown_values() {
        for (s, code) in [("tlsa", 1), ("sts", 2), ("no-policy-found", 9)] {
            let p = PolicyType::parse(s);
            assert_eq!(p.as_str(), s);
            assert_eq!(p.datagram_code(), Some(code));
            assert_eq!(PolicyType::from_datagram_code(code), Some(p));
        }
        let u = PolicyType::parse("invalid-policy-type");
        assert_eq!(u.as_str(), "invalid-policy-type");
        assert!(!u.is_known());
    }
}
