//! DKIM verification of mailed reports (RFC 8460 §3, REQUIREMENTS RCV-01..03, SEC-09).
//!
//! RFC 8460 §3: "reports lacking a valid DKIM signature by the reporting domain MUST be
//! ignored". DKIM is the only authentication a mailed report has: an unsigned report is never
//! marked verified, whatever path it came by (SEC-09).
//!
//! A signature **counts** when all of these hold:
//!
//! 1. mail-auth verifies it: result `pass` (RFC 6376).
//! 2. It has no `l=` body length (RCV-02). mail-auth's strict parsing (the default) turns such
//!    a signature into an error before it is verified, so it never passes.
//! 3. Its key record does not exclude the `tlsrpt` service (RCV-03): `s=` absent, `*`, or a
//!    list containing `tlsrpt` is fine; a list without it (e.g. `s=email`) is not. `s=tlsrpt`
//!    is recorded but not required: erratum 5889 notes the service type was never registered
//!    and real keys do not set it.
//! 4. Its `d=` is aligned ([`aligned`]) with every identity the report claims (below).
//!
//! # The reporting domain (a decision; RFC 8460 leaves it open, REQUIREMENTS §15 item 10)
//!
//! The identities a signature must align with are the `TLS-Report-Submitter` header (when
//! present) and the domain of the report's `contact-info` (when it is an e-mail address, a URI
//! with a host, or a bare domain). When neither is there, the RFC 5322 `From` domain is used.
//! A report whose claims cannot all be covered by one signature is not verified.
//!
//! # Organisational domain (a decision, documented limitation)
//!
//! No public-suffix list is used (it would be one more data file to keep current). The
//! organisational domain of a name is its last two labels, or its last three when the
//! top-level label has two letters (a country code) and the second-level label is one of a
//! short list of well-known registry second-levels (`co`, `com`, `ac`, `go`, `gov`, `or`,
//! `org`, `ne`, `net`, `edu`, ...), as in `co.uk`, `com.au`, `go.id`. This errs on the strict
//! side for unusual public suffixes not in the list (e.g. `a.b.pvt.k12.ma.us` gives
//! `k12.ma.us`-less results and may align too broadly for such registries): such senders
//! should sign with exactly their submitter domain, which always aligns.
//!
//! # Upstream `Authentication-Results` (optional)
//!
//! Gateways that rewrite bodies (disclaimers, re-encoding) break DKIM. When
//! `trusted_authserv_id` is set, the **first** `Authentication-Results` header (RFC 8601) whose
//! authserv-id equals it is read, and a `dkim=pass` result in it with an aligned `header.d=`
//! counts as a pass. The gateway must remove such headers arriving from outside (RFC 8601 §5),
//! or anyone can forge one; only the topmost header with the id is used to limit that risk.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use serde::{Deserialize, Serialize};
use tlsrpt_store::DkimStatus;

/// What to do with a mailed report whose DKIM check does not pass (`[receiver] dkim`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimPolicy {
    /// RFC 8460 §3: keep it as `rejected` with the reason; the API lists it only when asked.
    #[default]
    Require,
    /// Store it, marked unverified (`dkim` = `fail`/`none`).
    Prefer,
    /// Do not check; `dkim` = `skipped`.
    Off,
}

impl FromStr for DkimPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "require" => Ok(DkimPolicy::Require),
            "prefer" => Ok(DkimPolicy::Prefer),
            "off" => Ok(DkimPolicy::Off),
            other => Err(format!(
                "dkim = {other:?}: expected \"require\", \"prefer\" or \"off\""
            )),
        }
    }
}

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct DkimConfig {
    /// The policy.
    pub policy: DkimPolicy,
    /// Name servers for the key lookups (UDP and TCP on the given port); empty for the
    /// system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Trust `dkim=pass` in the first `Authentication-Results` header with this authserv-id.
    pub trusted_authserv_id: Option<String>,
    /// Per-query timeout; default 5 s.
    pub timeout: Option<Duration>,
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DkimSetupError {
    /// The resolver could not be built (e.g. no usable `/etc/resolv.conf`).
    #[error("DKIM resolver: {0}")]
    Resolver(String),
}

/// Why verification could not reach a verdict; retrying later may succeed.
#[derive(Debug, thiserror::Error)]
pub enum DkimTempError {
    /// A key lookup failed temporarily (timeout, SERVFAIL) and no signature passed.
    #[error("DKIM key lookup failed temporarily: {0}")]
    Dns(String),
}

/// The outcome of checking one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `pass` (a signature counts), `none` (unsigned), `fail` (signed, none counts) or
    /// `skipped` (policy off).
    pub status: DkimStatus,
    /// `d=` of the signature that counted, else of the first one seen.
    pub domain: Option<String>,
    /// `s=` (selector) of that signature.
    pub selector: Option<String>,
    /// The key record's `s=` service list as published (`None` when absent or not read).
    pub key_services: Option<String>,
    /// True when the key record was read for its `s=` tag (so `key_services: None` means the
    /// tag is absent).
    pub key_read: bool,
    /// Why it did not pass (one line per signature considered).
    pub reason: Option<String>,
}

impl Verdict {
    fn skipped() -> Self {
        Verdict {
            status: DkimStatus::Skipped,
            domain: None,
            selector: None,
            key_services: None,
            key_read: false,
            reason: None,
        }
    }
}

/// The identities a message claims, which a signature's `d=` must align with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// `TLS-Report-Submitter` header value.
    pub submitter: Option<String>,
    /// The report's `contact-info`.
    pub contact_info: Option<String>,
}

/// Verifies DKIM with mail-auth against the configured name servers.
pub struct DkimVerifier {
    auth: Option<MessageAuthenticator>,
    policy: DkimPolicy,
    trusted_authserv_id: Option<String>,
}

impl std::fmt::Debug for DkimVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimVerifier")
            .field("policy", &self.policy)
            .field("trusted_authserv_id", &self.trusted_authserv_id)
            .finish_non_exhaustive()
    }
}

impl DkimVerifier {
    /// Builds the verifier; with policy `off` no resolver is built.
    pub fn new(cfg: &DkimConfig) -> Result<Self, DkimSetupError> {
        let auth = if cfg.policy == DkimPolicy::Off {
            None
        } else {
            let timeout = cfg.timeout.unwrap_or(Duration::from_secs(5));
            let config = if cfg.nameservers.is_empty() {
                let (config, _) = mail_auth::hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| DkimSetupError::Resolver(e.to_string()))?;
                config
            } else {
                let servers = cfg
                    .nameservers
                    .iter()
                    .map(|sa| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = sa.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = sa.port();
                        NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                ResolverConfig::from_name_servers(servers)
            };
            let mut opts = ResolverOpts::default();
            opts.timeout = timeout;
            opts.attempts = 2;
            // Only DNS answers: /etc/hosts must not stand in for a key.
            opts.use_hosts_file = ResolveHosts::Never;
            opts.ndots = 0;
            Some(
                MessageAuthenticator::new(config, opts)
                    .map_err(|e| DkimSetupError::Resolver(e.to_string()))?,
            )
        };
        Ok(DkimVerifier {
            auth,
            policy: cfg.policy,
            trusted_authserv_id: cfg.trusted_authserv_id.clone(),
        })
    }

    /// The configured policy.
    pub fn policy(&self) -> DkimPolicy {
        self.policy
    }

    /// Checks `message` (the raw RFC 5322 bytes) against the identities it claims.
    pub async fn verify(&self, message: &[u8], claims: &Claims) -> Result<Verdict, DkimTempError> {
        let Some(auth) = &self.auth else {
            return Ok(Verdict::skipped());
        };
        // A third-party parser over hostile bytes: a panic in it fails this message's DKIM
        // check instead of the task serving it (as `message::extract_report` does for MIME).
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            AuthenticatedMessage::parse(message)
        }));
        let Ok(parsed) = parsed else {
            return Ok(Verdict {
                status: DkimStatus::Fail,
                reason: Some("the DKIM parser could not read the message's headers".into()),
                ..Verdict::skipped()
            });
        };
        let Some(msg) = parsed else {
            return Ok(Verdict {
                status: DkimStatus::None,
                reason: Some("no header fields to verify".into()),
                ..Verdict::skipped()
            });
        };
        let mut required = required_identities(claims);
        if required.is_empty() {
            required.extend(msg.from.iter().filter_map(|a| email_domain(a)));
        }
        if required.is_empty() {
            return Ok(Verdict {
                status: DkimStatus::Fail,
                reason: Some(
                    "no reporting domain to align with: no TLS-Report-Submitter, contact-info \
                     or From domain"
                        .into(),
                ),
                ..Verdict::skipped()
            });
        }

        // Upstream Authentication-Results, when configured.
        if let Some(id) = &self.trusted_authserv_id
            && let Some(d) = trusted_ar_pass(&msg, id)
            && aligned_all(&d, &required)
        {
            return Ok(Verdict {
                status: DkimStatus::Pass,
                domain: Some(d),
                selector: None,
                key_services: None,
                key_read: false,
                reason: Some(format!("dkim=pass in Authentication-Results of {id}")),
            });
        }

        let signed = !msg.dkim_headers.is_empty() || msg.has_dkim_errors;
        if !signed {
            return Ok(Verdict {
                status: DkimStatus::None,
                reason: Some("the message has no DKIM-Signature".into()),
                ..Verdict::skipped()
            });
        }

        let mut reasons: Vec<String> = Vec::new();
        let mut first: Option<(String, String)> = msg
            .dkim_headers
            .first()
            .map(|h| (h.header.d.to_ascii_lowercase(), h.header.s.clone()));
        // Only a signature by the reporting organisation can count (REQUIREMENTS RCV-01), so
        // the others are not verified at all: the sender does not get to choose which
        // domains we query, nor how many times.
        let mut msg = msg;
        msg.dkim_headers.retain(|h| {
            let d = h.header.d.trim_end_matches('.').to_ascii_lowercase();
            let ok = aligned_all(&d, &required);
            if !ok && reasons.len() < MAX_SIGNATURES {
                reasons.push(format!(
                    "d={} s={}: signing domain not aligned with the reporting domain ({})",
                    h.header.d,
                    h.header.s,
                    required.join(", ")
                ));
            }
            ok
        });
        if msg.dkim_headers.len() > MAX_SIGNATURES {
            reasons.push(format!(
                "{} more aligned signatures not tried (at most {MAX_SIGNATURES})",
                msg.dkim_headers.len() - MAX_SIGNATURES
            ));
            msg.dkim_headers.truncate(MAX_SIGNATURES);
        }
        let outputs = auth.verify_dkim(&msg).await;
        let mut temp: Option<String> = None;
        for out in &outputs {
            let sig = out.signature();
            if let Some(s) = sig
                && first.is_none()
            {
                first = Some((s.d.to_ascii_lowercase(), s.s.clone()));
            }
            let label = sig
                .map(|s| format!("d={} s={}", s.d, s.s))
                .unwrap_or_else(|| "unparsed signature".to_owned());
            match out.result() {
                DkimResult::Pass => {}
                DkimResult::TempError(e) => {
                    temp.get_or_insert_with(|| format!("{label}: {e}"));
                    reasons.push(format!("{label}: temporary error: {e}"));
                    continue;
                }
                DkimResult::Neutral(e) | DkimResult::Fail(e) | DkimResult::PermError(e) => {
                    reasons.push(format!("{label}: {e}"));
                    continue;
                }
                DkimResult::None => {
                    reasons.push(format!("{label}: no result"));
                    continue;
                }
            }
            let Some(sig) = sig else { continue };
            let d = sig.d.trim_end_matches('.').to_ascii_lowercase();
            // REQUIREMENTS RCV-02: defence in depth (strict parsing already refuses l=).
            if sig.l != 0 {
                reasons.push(format!("{label}: uses l= (body length), not acceptable"));
                continue;
            }
            if !aligned_all(&d, &required) {
                reasons.push(format!(
                    "{label}: signing domain not aligned with the reporting domain ({})",
                    required.join(", ")
                ));
                continue;
            }
            // REQUIREMENTS RCV-03: the key must not exclude the tlsrpt service.
            let (key_read, services) = match key_services(auth, &sig.s, &sig.d).await {
                Some(s) => (true, s),
                None => (false, None),
            };
            if let Some(list) = &services
                && !service_allows_tlsrpt(list)
            {
                reasons.push(format!(
                    "{label}: key record s={list} does not allow the tlsrpt service"
                ));
                continue;
            }
            return Ok(Verdict {
                status: DkimStatus::Pass,
                domain: Some(d),
                selector: Some(sig.s.clone()),
                key_services: services,
                key_read,
                reason: None,
            });
        }
        if let Some(t) = temp {
            return Err(DkimTempError::Dns(t));
        }
        let (domain, selector) = first.unzip();
        Ok(Verdict {
            status: DkimStatus::Fail,
            domain,
            selector,
            key_services: None,
            key_read: false,
            reason: Some(if reasons.is_empty() {
                "no DKIM signature could be verified".to_owned()
            } else {
                format!("no acceptable DKIM signature: {}", reasons.join("; "))
            }),
        })
    }
}

/// The key record's `s=` list (`Some(None)` when the tag is absent), or `None` when the
/// record cannot be fetched again (mail-auth has just verified with it, so a failure here is
/// not held against the signature).
async fn key_services(
    auth: &MessageAuthenticator,
    selector: &str,
    domain: &str,
) -> Option<Option<String>> {
    let name = format!("{selector}._domainkey.{}.", domain.trim_end_matches('.'));
    let raw = auth.txt_raw_lookup(name).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    Some(tag_value(&text, "s").map(|v| v.split_whitespace().collect::<String>()))
}

/// The value of tag `name` in a DKIM tag list (`k=v; k2=v2`).
fn tag_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then_some(v.trim())
    })
}

/// RFC 6376 §3.6.1 service types, as REQUIREMENTS RCV-03 applies them: allowed when the list
/// contains `*` or `tlsrpt`.
pub fn service_allows_tlsrpt(list: &str) -> bool {
    list.split(':')
        .map(str::trim)
        .any(|s| s == "*" || s.eq_ignore_ascii_case("tlsrpt"))
}

fn required_identities(claims: &Claims) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &claims.submitter
        && let Some(d) = clean_domain(s)
    {
        out.push(d);
    }
    if let Some(c) = &claims.contact_info
        && let Some(d) = contact_domain(c)
        && !out.contains(&d)
    {
        out.push(d);
    }
    out
}

/// Lower case, one trailing dot removed, `None` when it cannot be a domain name.
fn clean_domain(s: &str) -> Option<String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

fn email_domain(addr: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let (_, d) = a.rsplit_once('@')?;
    clean_domain(d)
}

/// The domain of a `contact-info` value (one definition, in the core).
pub use tlsrpt_core::naming::contact_domain;

/// Most signatures by the reporting organisation verified per message (each costs a DNS
/// query): real report mail carries one or two.
pub const MAX_SIGNATURES: usize = 4;

/// Second-level labels that registries hand out under a country code (`co.uk`, `com.au`,
/// `go.id`, ...). See the module docs for the limitation.
const CC_SECOND_LEVELS: &[&str] = &[
    "ac", "co", "com", "edu", "go", "gob", "gov", "gv", "ltd", "me", "mil", "ne", "net", "nhs",
    "or", "org", "plc", "sch",
];

/// The organisational domain of `domain` under the module's rule (last two labels, or three
/// under a known country-code second level).
pub fn organizational_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = d.split('.').collect();
    let n = labels.len();
    let keep = match (labels.get(n.wrapping_sub(2)), labels.get(n.wrapping_sub(1))) {
        (Some(sl), Some(tld)) if tld.len() == 2 && CC_SECOND_LEVELS.contains(sl) => 3,
        _ => 2,
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// True when `signer` and `identity` are the same domain or share the organisational domain
/// (REQUIREMENTS RCV-01, as mox does).
pub fn aligned(signer: &str, identity: &str) -> bool {
    let a = signer.trim_end_matches('.').to_ascii_lowercase();
    let b = identity.trim_end_matches('.').to_ascii_lowercase();
    a == b || organizational_domain(&a) == organizational_domain(&b)
}

fn aligned_all(signer: &str, required: &[String]) -> bool {
    required.iter().all(|r| aligned(signer, r))
}

/// `header.d=` of a `dkim=pass` in the first Authentication-Results header whose authserv-id
/// is `id`.
fn trusted_ar_pass(msg: &AuthenticatedMessage<'_>, id: &str) -> Option<String> {
    for (name, value) in &msg.headers {
        if !name.eq_ignore_ascii_case(b"Authentication-Results") {
            continue;
        }
        let text = strip_comments(&String::from_utf8_lossy(value));
        let mut parts = text.split(';');
        let authserv = parts
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        if !authserv.eq_ignore_ascii_case(id) {
            continue;
        }
        for res in parts {
            let mut tokens = res.split_whitespace();
            let Some(method) = tokens.next() else {
                continue;
            };
            if !method.eq_ignore_ascii_case("dkim=pass") {
                continue;
            }
            for t in tokens {
                if let Some((k, v)) = t.split_once('=')
                    && k.eq_ignore_ascii_case("header.d")
                    && let Some(d) = clean_domain(v.trim_matches('"'))
                {
                    return Some(d);
                }
            }
        }
        // Only the first header with our id is trusted.
        return None;
    }
    None
}

/// Removes RFC 5322 comments `( ... )`, nested, so `dkim=pass (good) header.d=x` reads plain.
fn strip_comments(s: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains() {
        assert_eq!(organizational_domain("mail.google.com"), "google.com");
        assert_eq!(organizational_domain("google.com."), "google.com");
        assert_eq!(organizational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("ppatk.go.id"), "ppatk.go.id");
        assert_eq!(organizational_domain("x.ppatk.go.id"), "ppatk.go.id");
        assert_eq!(organizational_domain("com"), "com");
        assert_eq!(organizational_domain(""), "");
    }

    #[test]
    fn rcv_01_alignment_rule() {
        assert!(aligned("google.com", "google.com"));
        assert!(aligned("mail.google.com", "google.com"));
        assert!(aligned("google.com", "smtp.google.com"));
        assert!(!aligned("evil.example", "google.com"));
        assert!(!aligned("google.co.uk", "evil.co.uk"));
        assert!(!aligned("com", "google.com"));
    }

    #[test]
    fn contact_info_domains() {
        assert_eq!(
            contact_domain("smtp-tls-reporting@google.com").as_deref(),
            Some("google.com")
        );
        assert_eq!(
            contact_domain("mailto:tls@Example.ORG").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            contact_domain("https://reports.example.net/x").as_deref(),
            Some("reports.example.net")
        );
        assert_eq!(contact_domain("call us maybe"), None);
    }

    #[test]
    fn rcv_03_service_types() {
        assert!(service_allows_tlsrpt("*"));
        assert!(service_allows_tlsrpt("email:tlsrpt"));
        assert!(service_allows_tlsrpt("TLSRPT"));
        assert!(!service_allows_tlsrpt("email"));
        assert_eq!(
            tag_value("v=DKIM1; k=rsa; s=email; p=AAA", "s"),
            Some("email")
        );
        assert_eq!(tag_value("v=DKIM1; p=AAA", "s"), None);
    }

    #[test]
    fn comments_are_stripped() {
        assert_eq!(
            strip_comments("mx.example (nested (x)) ; dkim=pass (ok) header.d=a.b"),
            "mx.example  ; dkim=pass  header.d=a.b"
        );
    }
}
