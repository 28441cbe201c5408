//! The live domain check behind `tlsrpt check <domain>`: what a sender would find.
//!
//! Items, in order, each with a verdict (`ok`, `warn`, `fail`), a detail and a fix:
//!
//! 1. `tlsrpt-record`: the `_smtp._tls` TXT RRset under the core's rules (RFC 8460 §3).
//! 2. `mta-sts-record`: the `_mta-sts` TXT record (RFC 8461 §3.1, STS-01). MTA-STS is
//!    optional, so its absence is a warning, not a failure.
//! 3. `mta-sts-policy`: the policy fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//!    (STS-02, STS-03: certificate valid for that name, status 200 only, no redirects
//!    followed, 64 KiB and one minute at most) and its mode; `mta-sts-content-type` warns
//!    when it is not served as `text/plain`.
//! 4. `mx`: the MX RRset; then `mx-coverage:<host>` per MX: does a policy `mx` pattern match
//!    it (RFC 8461 §4.1, STS-04)?
//! 5. `tlsa:<host>` per MX: TLSA records at `_25._tcp.<host>` and their DNSSEC status
//!    (RFC 7672; only DNSSEC-secure TLSA records count for DANE).
//!
//! The check passes ([`DomainCheck::passed`]) when the TLSRPT record is valid and no item
//! failed. Decisions: mode `testing` is `ok` (it is the usual companion of TLSRPT); mode
//! `none` is `warn` (no active policy, STS-11); TLSA records that are not DNSSEC-secure are
//! `warn` (senders ignore them); no TLSA at all is `ok` (DANE is optional); no MX falls back
//! to the domain itself as the implicit MX (RFC 5321 §5.1) with a warning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tlsrpt_core::mtasts::{self, Mode, NoStsRecord, PolicyError};
use tlsrpt_core::record::{NoTlsrpt, Outcome};

use crate::http::{HttpClient, HttpConfig, HttpError, Redirects};
use crate::resolver::{
    Anchors, Discovery, Dns, DnsConfig, DnssecStatus, Lookup, MxHost, ResolverError,
};

/// How the check talks to the network.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Name servers to use instead of the system's (empty = system).
    pub nameservers: Vec<SocketAddr>,
    /// Let the policy fetch connect to non-public addresses.
    pub allow_private_targets: bool,
    /// Extra CA certificates (PEM) to trust for the policy fetch.
    pub extra_ca: Option<PathBuf>,
    /// Per-query DNS timeout.
    pub dns_timeout: Duration,
    /// Policy fetch timeout (RFC 8461 §3.3 suggests one minute).
    pub http_timeout: Duration,
    /// The port the policy is fetched from: always 443 in real life (RFC 8461 §3.3); tests
    /// change it to reach a test server on an ephemeral port.
    pub policy_port: u16,
    /// DNSSEC trust anchors for the TLSA lookups (None = the root anchors).
    pub trust_anchors: Option<Anchors>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            nameservers: Vec::new(),
            allow_private_targets: false,
            extra_ca: None,
            dns_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(60),
            policy_port: 443,
            trust_anchors: None,
        }
    }
}

/// A verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but something should be fixed or is worth knowing.
    Warn,
    /// Broken.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One checked item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// What was checked, e.g. `tlsrpt-record`, `mx-coverage:mx1.example.com`.
    pub check: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not ok (or when there is advice).
    pub fix: Option<String>,
    /// The REQUIREMENTS rule involved, if one.
    pub rule: Option<&'static str>,
}

/// The whole result, serialisable for `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainCheck {
    /// The domain checked (normalised).
    pub domain: String,
    /// Whether the TLSRPT record is valid with a usable rua.
    pub tlsrpt_valid: bool,
    /// The usable reporting URIs.
    pub rua: Vec<String>,
    /// MTA-STS mode, if a policy was fetched and parsed.
    pub mta_sts_mode: Option<Mode>,
    /// The policy lines as served (the TLSRPT `policy-string`, STS-10), if fetched.
    pub mta_sts_policy: Option<Vec<String>>,
    /// The MX hosts checked.
    pub mx: Vec<MxHost>,
    /// Every item, in order.
    pub items: Vec<Item>,
}

impl DomainCheck {
    /// True when the TLSRPT record is valid and no item failed.
    pub fn passed(&self) -> bool {
        self.tlsrpt_valid && self.items.iter().all(|i| i.verdict != Verdict::Fail)
    }
}

/// Why the check could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The domain is not a domain name.
    #[error("invalid domain {domain:?}: {reason}")]
    Domain {
        /// As given.
        domain: String,
        /// Why.
        reason: String,
    },
    /// The resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] ResolverError),
    /// The HTTPS client could not be built (e.g. a bad extra CA file).
    #[error(transparent)]
    Http(#[from] HttpError),
}

fn item(check: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Item {
    Item {
        check: check.into(),
        verdict,
        detail: detail.into(),
        fix: None,
        rule: None,
    }
}

impl Item {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
    fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }
}

/// Runs every check for `domain`. Needs a tokio runtime.
pub async fn check_domain(domain: &str, opts: &CheckOptions) -> Result<DomainCheck, CheckError> {
    let domain = tlsrpt_core::domain::normalize(domain).map_err(|e| CheckError::Domain {
        domain: domain.to_string(),
        reason: e.to_string(),
    })?;
    let dns = Dns::with_config(&DnsConfig {
        nameservers: opts.nameservers.clone(),
        timeout: opts.dns_timeout,
        trust_anchors: opts.trust_anchors.clone(),
        ..DnsConfig::default()
    })?;
    let http = HttpClient::new(
        &HttpConfig {
            allow_private_targets: opts.allow_private_targets,
            extra_ca: opts.extra_ca.clone(),
            redirects: Redirects::None, // RFC 8461 §3.3: 3xx are not followed (STS-03)
            timeout: opts.http_timeout,
            ..HttpConfig::default()
        },
        dns.clone(),
    )?;
    let mut out = DomainCheck {
        domain: domain.clone(),
        tlsrpt_valid: false,
        rua: Vec::new(),
        mta_sts_mode: None,
        mta_sts_policy: None,
        mx: Vec::new(),
        items: Vec::new(),
    };

    check_tlsrpt(&dns, &domain, &mut out).await;
    let policy = check_mta_sts(&dns, &http, &domain, opts.policy_port, &mut out).await;

    // MX hosts.
    let mx_hosts: Vec<String> = match dns.mx(&domain).await {
        Lookup::Found(mx) => {
            let list: Vec<String> = mx
                .iter()
                .map(|m| format!("{} {}", m.preference, m.host))
                .collect();
            out.items
                .push(item("mx", Verdict::Ok, format!("MX: {}", list.join(", "))));
            out.mx = mx.clone();
            mx.into_iter().map(|m| m.host).collect()
        }
        Lookup::NxDomain | Lookup::NoData => {
            out.items.push(
                item(
                    "mx",
                    Verdict::Warn,
                    format!("no MX records; mail goes to {domain} itself (implicit MX)"),
                )
                .fix("publish MX records for your mail servers"),
            );
            vec![domain.clone()]
        }
        Lookup::Temporary(e) => {
            out.items.push(
                item("mx", Verdict::Fail, format!("MX lookup failed: {e}"))
                    .fix("check the domain's name servers; retry later"),
            );
            Vec::new()
        }
    };

    // Coverage of each MX by the policy's patterns (STS-04).
    if let Some(p) = &policy
        && p.mode != Mode::None
    {
        let patterns: Vec<&str> = p.mx.iter().map(|m| m.text.as_str()).collect();
        for host in &mx_hosts {
            let check = format!("mx-coverage:{host}");
            if p.covers(host) {
                out.items.push(
                    item(check, Verdict::Ok, format!("{host} matches the policy")).rule("STS-04"),
                );
            } else {
                out.items.push(
                    item(
                        check,
                        Verdict::Fail,
                        format!(
                            "{host} matches none of the policy's mx patterns ({}); senders \
                             treat it as a validation failure",
                            patterns.join(", ")
                        ),
                    )
                    .fix(format!(
                        "add \"mx: {host}\" to the policy (and change its id)"
                    ))
                    .rule("STS-04"),
                );
            }
        }
    }

    // TLSA per MX (DANE, RFC 7672).
    for host in &mx_hosts {
        let check = format!("tlsa:{host}");
        let it = match dns.tlsa(host, 25).await {
            Lookup::Found(set) => {
                let recs: Vec<String> = set.records.iter().map(|t| t.to_policy_string()).collect();
                let detail = format!(
                    "{} TLSA record(s) at _25._tcp.{host}, DNSSEC {}: {}",
                    set.records.len(),
                    set.dnssec.as_str(),
                    recs.join("; ")
                );
                if set.dnssec == DnssecStatus::Secure {
                    item(check, Verdict::Ok, detail)
                } else {
                    item(check, Verdict::Warn, detail).fix(
                        "TLSA records only count when DNSSEC-signed (RFC 7672): sign the zone, \
                         or remove them",
                    )
                }
            }
            Lookup::NxDomain | Lookup::NoData => item(
                check,
                Verdict::Ok,
                format!("no TLSA records for {host} (no DANE)"),
            ),
            Lookup::Temporary(e) => item(check, Verdict::Warn, format!("TLSA lookup failed: {e}"))
                .fix("check the name servers of the MX host's zone"),
        };
        out.items.push(it.rule("DANE-01"));
    }
    Ok(out)
}

async fn check_tlsrpt(dns: &Dns, domain: &str, out: &mut DomainCheck) {
    let name = format!("_smtp._tls.{domain}");
    let fix_publish = "publish one TXT record like \"v=TLSRPTv1; rua=mailto:tlsrpt@your.domain\"";
    let it = match dns.discover(domain).await {
        Discovery::Answer { selection, .. } => {
            let warnings: Vec<String> = selection.warnings.iter().map(|w| w.to_string()).collect();
            match &selection.outcome {
                Outcome::Found { text, parsed } => {
                    out.tlsrpt_valid = true;
                    out.rua = parsed
                        .record
                        .usable_rua()
                        .map(|u| u.as_str().to_string())
                        .collect();
                    let mut detail = format!("{name}: {text}");
                    if warnings.is_empty() {
                        item("tlsrpt-record", Verdict::Ok, detail).rule("DNS-04")
                    } else {
                        detail.push_str(&format!("; warnings: {}", warnings.join("; ")));
                        let canon = parsed.record.to_canonical_string().ok();
                        let it = item("tlsrpt-record", Verdict::Warn, detail).rule("DNS-04");
                        match canon {
                            Some(c) => it.fix(format!("publish \"{c}\"")),
                            None => it,
                        }
                    }
                }
                Outcome::NothingToSend { text, .. } => item(
                    "tlsrpt-record",
                    Verdict::Fail,
                    format!("{name}: {text}: no rua URI is mailto: or https:"),
                )
                .fix("add a mailto: or https:// URI, e.g. rua=mailto:tlsrpt@your.domain")
                .rule("DNS-10"),
                Outcome::NoTlsrpt(why) => {
                    let fix = match why {
                        NoTlsrpt::Invalid { error, .. } => {
                            error.hint().unwrap_or(fix_publish).to_string()
                        }
                        NoTlsrpt::Several { .. } => {
                            "merge them into one record: v=TLSRPTv1; rua=<uri>,<uri>".to_string()
                        }
                        _ => fix_publish.to_string(),
                    };
                    item("tlsrpt-record", Verdict::Fail, format!("{name}: {why}"))
                        .fix(fix)
                        .rule(why.rule())
                }
            }
        }
        Discovery::NoRecord(l) => item(
            "tlsrpt-record",
            Verdict::Fail,
            format!("{name}: {}: no TLSRPT", l.describe_absence()),
        )
        .fix(fix_publish)
        .rule("DNS-18"),
        Discovery::Temporary(e) => item(
            "tlsrpt-record",
            Verdict::Fail,
            format!("{name}: lookup failed, senders will retry: {e}"),
        )
        .fix("check the domain's name servers (SERVFAIL or timeout)")
        .rule("DNS-18"),
    };
    out.items.push(it);
}

async fn check_mta_sts(
    dns: &Dns,
    http: &HttpClient,
    domain: &str,
    port: u16,
    out: &mut DomainCheck,
) -> Option<mtasts::StsPolicy> {
    let name = format!("_mta-sts.{domain}");
    let fix_txt = "publish \"v=STSv1; id=20260101T000000\" at _mta-sts and serve the policy";
    match dns.txt(&name).await {
        Lookup::Found(rrset) => {
            let sel = mtasts::select_record(&rrset);
            match sel.outcome {
                Ok((text, rec)) => {
                    let mut it = item(
                        "mta-sts-record",
                        Verdict::Ok,
                        format!("{name}: {text} (id {})", rec.id),
                    )
                    .rule("STS-01");
                    if !sel.warnings.is_empty() {
                        let w: Vec<String> = sel.warnings.iter().map(|w| w.to_string()).collect();
                        it.verdict = Verdict::Warn;
                        it.detail.push_str(&format!("; warnings: {}", w.join("; ")));
                        it.fix = Some(format!("publish \"v=STSv1; id={}\"", rec.id));
                    }
                    out.items.push(it);
                }
                Err(why) => {
                    let fix = match &why {
                        NoStsRecord::Invalid { error, .. } => error.hint().to_string(),
                        NoStsRecord::Several { .. } => {
                            "keep exactly one v=STSv1 record".to_string()
                        }
                        NoStsRecord::NoRecord => fix_txt.to_string(),
                    };
                    let verdict = if why == NoStsRecord::NoRecord {
                        Verdict::Warn
                    } else {
                        Verdict::Fail
                    };
                    out.items.push(
                        item("mta-sts-record", verdict, format!("{name}: {why}"))
                            .fix(fix)
                            .rule("STS-01"),
                    );
                    return None;
                }
            }
        }
        Lookup::NxDomain | Lookup::NoData => {
            out.items.push(
                item(
                    "mta-sts-record",
                    Verdict::Warn,
                    format!("{name}: no record, so no MTA-STS (optional, but TLSRPT reports little without a policy)"),
                )
                .fix(fix_txt)
                .rule("STS-01"),
            );
            return None;
        }
        Lookup::Temporary(e) => {
            out.items.push(
                item(
                    "mta-sts-record",
                    Verdict::Fail,
                    format!("{name}: lookup failed: {e}"),
                )
                .fix("check the domain's name servers")
                .rule("STS-01"),
            );
            return None;
        }
    }

    let url = if port == 443 {
        mtasts::policy_url(domain)
    } else {
        format!("https://mta-sts.{domain}:{port}{}", mtasts::POLICY_PATH)
    };
    let fetched = match http.get(&url, mtasts::MAX_POLICY_LEN).await {
        Ok(f) => f,
        Err(e) => {
            let fix = match &e {
                HttpError::Tls(_) => format!(
                    "serve a certificate valid for mta-sts.{domain} from a public CA (STS-03)"
                ),
                HttpError::ForbiddenTarget { .. } => format!(
                    "mta-sts.{domain} must resolve to a public address (use \
                     --allow-private-targets only for tests)"
                ),
                HttpError::Resolve { .. } => {
                    format!("publish an A/AAAA record for mta-sts.{domain}")
                }
                HttpError::TooLarge { .. } => "serve a policy of a few hundred bytes".to_string(),
                _ => format!("serve the policy at {url}"),
            };
            out.items.push(
                item(
                    "mta-sts-policy",
                    Verdict::Fail,
                    format!("fetching {url}: {e}"),
                )
                .fix(fix)
                .rule("STS-03"),
            );
            return None;
        }
    };
    if (300..400).contains(&fetched.status) {
        out.items.push(
            item(
                "mta-sts-policy",
                Verdict::Fail,
                format!(
                    "{url} answered {} (redirect to {}); senders do not follow redirects",
                    fetched.status,
                    fetched.location.as_deref().unwrap_or("?")
                ),
            )
            .fix("serve the policy directly at that URL with status 200")
            .rule("STS-03"),
        );
        return None;
    }
    if fetched.status != 200 {
        out.items.push(
            item(
                "mta-sts-policy",
                Verdict::Fail,
                format!("{url} answered {}; only 200 is valid", fetched.status),
            )
            .fix("serve the policy with status 200")
            .rule("STS-03"),
        );
        return None;
    }
    let ct = fetched.content_type.clone().unwrap_or_default();
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "text/plain" {
        out.items.push(
            item(
                "mta-sts-content-type",
                Verdict::Warn,
                format!(
                    "served as {:?}, not text/plain; senders SHOULD check this",
                    if ct.is_empty() { "(none)" } else { ct.as_str() }
                ),
            )
            .fix("configure the web server to send Content-Type: text/plain")
            .rule("STS-02"),
        );
    }
    match mtasts::parse_policy(&fetched.body) {
        Ok(parsed) => {
            let p = parsed.policy;
            let mx: Vec<&str> = p.mx.iter().map(|m| m.text.as_str()).collect();
            let detail = format!(
                "mode {}, max_age {}, mx {}",
                p.mode.as_str(),
                p.max_age,
                if mx.is_empty() {
                    "(none)".to_string()
                } else {
                    mx.join(", ")
                }
            );
            let mut it = match p.mode {
                Mode::Enforce | Mode::Testing => item("mta-sts-policy", Verdict::Ok, detail),
                Mode::None => item(
                    "mta-sts-policy",
                    Verdict::Warn,
                    format!("{detail}: mode none means no active policy"),
                )
                .fix("use mode testing (with TLSRPT) or enforce"),
            }
            .rule("STS-02");
            if !parsed.warnings.is_empty() {
                let w: Vec<String> = parsed.warnings.iter().map(|w| w.to_string()).collect();
                it.verdict = Verdict::Warn;
                it.detail.push_str(&format!("; warnings: {}", w.join("; ")));
                if it.fix.is_none() {
                    it.fix = Some("one \"key: value\" per line, lower-case A-label mx".into());
                }
            }
            out.items.push(it);
            out.mta_sts_mode = Some(p.mode);
            out.mta_sts_policy = Some(parsed.lines);
            Some(p)
        }
        Err(e) => {
            let fix = e.hint();
            let rule = match e {
                PolicyError::TooLong { .. } => "STS-03",
                _ => "STS-02",
            };
            out.items.push(
                item("mta-sts-policy", Verdict::Fail, format!("{url}: {e}"))
                    .fix(fix)
                    .rule(rule),
            );
            None
        }
    }
}
