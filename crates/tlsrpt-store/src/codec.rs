//! Canonical text for the two composite keys stored in text columns: the applied policy and
//! the failure detail.
//!
//! Why canonical JSON rather than one column per field: the key is compared by the database's
//! primary key, so equal keys must give byte-equal text. serde_json's default `Map` is a
//! `BTreeMap`, so keys come out sorted; absent (`None`/empty) fields are omitted rather than
//! written as `null`, so there is exactly one spelling per value. The same text works in
//! PostgreSQL (`TEXT` column), which keeps the two backends' keys identical.
//!
//! Only this module writes these columns; [`decode_policy`]/[`decode_failure`] reject anything
//! else as corrupt instead of guessing.

use serde_json::{Map, Value};
use tlsrpt_core::{FailureDetail, Policy, PolicyType, ResultType};

/// Canonical text of an applied policy (RFC 8460 §4.4 `policy`; REQUIREMENTS RPT-05).
pub(crate) fn encode_policy(p: &Policy) -> String {
    let mut m = Map::new();
    m.insert("policy-type".into(), Value::from(p.policy_type.as_str()));
    if let Some(d) = &p.policy_domain {
        m.insert("policy-domain".into(), Value::from(d.as_str()));
    }
    if !p.policy_string.is_empty() {
        m.insert("policy-string".into(), Value::from(p.policy_string.clone()));
    }
    if !p.mx_host.is_empty() {
        m.insert("mx-host".into(), Value::from(p.mx_host.clone()));
    }
    Value::Object(m).to_string()
}

/// Canonical text of a failure detail without its count (REQUIREMENTS RPT-08: the whole
/// detail is the grouping key).
pub(crate) fn encode_failure(f: &FailureDetail) -> String {
    let mut m = Map::new();
    m.insert("result-type".into(), Value::from(f.result_type.as_str()));
    let opt = [
        ("sending-mta-ip", &f.sending_mta_ip),
        ("receiving-mx-hostname", &f.receiving_mx_hostname),
        ("receiving-mx-helo", &f.receiving_mx_helo),
        ("receiving-ip", &f.receiving_ip),
        ("additional-information", &f.additional_information),
        ("failure-reason-code", &f.failure_reason_code),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.as_str()));
        }
    }
    Value::Object(m).to_string()
}

/// Why a stored key could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("not a JSON object: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("not a JSON object")]
    NotObject,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type")]
    WrongType(String),
    #[error("unknown field `{0}`")]
    Unknown(String),
}

fn object(text: &str) -> Result<Map<String, Value>, CodecError> {
    match serde_json::from_str::<Value>(text)? {
        Value::Object(m) => Ok(m),
        _ => Err(CodecError::NotObject),
    }
}

fn string(k: &str, v: Value) -> Result<String, CodecError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(CodecError::WrongType(k.to_owned())),
    }
}

fn strings(k: &str, v: Value) -> Result<Vec<String>, CodecError> {
    match v {
        Value::Array(a) => a.into_iter().map(|x| string(k, x)).collect(),
        _ => Err(CodecError::WrongType(k.to_owned())),
    }
}

/// Inverse of [`encode_policy`].
pub(crate) fn decode_policy(text: &str) -> Result<Policy, CodecError> {
    let mut policy_type = None;
    let mut p = Policy {
        policy_type: PolicyType::NoPolicyFound,
        policy_string: Vec::new(),
        policy_domain: None,
        mx_host: Vec::new(),
    };
    for (k, v) in object(text)? {
        match k.as_str() {
            "policy-type" => policy_type = Some(PolicyType::parse(&string(&k, v)?)),
            "policy-domain" => p.policy_domain = Some(string(&k, v)?),
            "policy-string" => p.policy_string = strings(&k, v)?,
            "mx-host" => p.mx_host = strings(&k, v)?,
            _ => return Err(CodecError::Unknown(k)),
        }
    }
    p.policy_type = policy_type.ok_or(CodecError::Missing("policy-type"))?;
    Ok(p)
}

/// Inverse of [`encode_failure`]; the count is left at 0 (it lives in its own column).
pub(crate) fn decode_failure(text: &str) -> Result<FailureDetail, CodecError> {
    let mut result_type = None;
    let mut f = FailureDetail::new(ResultType::StarttlsNotSupported);
    for (k, v) in object(text)? {
        match k.as_str() {
            "result-type" => result_type = Some(ResultType::parse(&string(&k, v)?)),
            "sending-mta-ip" => f.sending_mta_ip = Some(string(&k, v)?),
            "receiving-mx-hostname" => f.receiving_mx_hostname = Some(string(&k, v)?),
            "receiving-mx-helo" => f.receiving_mx_helo = Some(string(&k, v)?),
            "receiving-ip" => f.receiving_ip = Some(string(&k, v)?),
            "additional-information" => f.additional_information = Some(string(&k, v)?),
            "failure-reason-code" => f.failure_reason_code = Some(string(&k, v)?),
            _ => return Err(CodecError::Unknown(k)),
        }
    }
    f.result_type = result_type.ok_or(CodecError::Missing("result-type"))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> Policy {
        Policy {
            policy_type: PolicyType::Sts,
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            policy_domain: Some("example.com".into()),
            mx_host: vec!["*.mail.example.com".into()],
        }
    }

    #[test]
    fn policy_round_trips_and_is_canonical() {
        let p = sts();
        let t = encode_policy(&p);
        assert_eq!(
            t,
            r#"{"mx-host":["*.mail.example.com"],"policy-domain":"example.com","policy-string":["version: STSv1","mode: enforce"],"policy-type":"sts"}"#
        );
        assert_eq!(decode_policy(&t).unwrap(), p);
        let bare = Policy {
            policy_type: PolicyType::NoPolicyFound,
            policy_string: vec![],
            policy_domain: None,
            mx_host: vec![],
        };
        assert_eq!(encode_policy(&bare), r#"{"policy-type":"no-policy-found"}"#);
        assert_eq!(decode_policy(&encode_policy(&bare)).unwrap(), bare);
    }

    #[test]
    fn rpt_08_failure_round_trips_and_details_stay_apart() {
        let mut f = FailureDetail::new(ResultType::ValidationFailure);
        f.sending_mta_ip = Some("2001:db8::1".into());
        f.receiving_mx_helo = Some("250-mx.example.org\r\n250 STARTTLS".into());
        f.failure_reason_code = Some("self-signed_certificate".into());
        let t = encode_failure(&f);
        assert_eq!(decode_failure(&t).unwrap(), f);
        // Different details give different keys (RPT-08: never collapsed).
        let mut g = f.clone();
        g.sending_mta_ip = Some("192.0.2.1".into());
        assert_ne!(encode_failure(&g), t);
    }

    #[test]
    fn garbage_is_rejected_not_guessed() {
        assert!(decode_policy("[]").is_err());
        assert!(decode_policy("{}").is_err());
        assert!(decode_policy(r#"{"policy-type":"sts","x":1}"#).is_err());
        assert!(decode_failure(r#"{"result-type":5}"#).is_err());
        assert!(decode_failure("not json").is_err());
    }
}
