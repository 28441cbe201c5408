//! DNS lookups for TLSRPT and MTA-STS: TXT RRsets, MX, addresses and TLSA, with outcomes that
//! keep "there is nothing" apart from "we could not find out".
//!
//! The difference matters (REQUIREMENTS DNS-18): NXDOMAIN and NODATA mean no TLSRPT record, so
//! no report; SERVFAIL or a timeout means the answer is unknown, so the reporter keeps the data
//! and retries later. Every lookup therefore returns a [`Lookup`] with exactly those cases.
//!
//! Names are queried fully qualified (a trailing dot is added), so no search domain from the
//! system configuration is ever appended, and there is no walking up the tree (DNS-02).
//!
//! # Resolver configuration
//!
//! [`Dns::new`] takes an optional list of name servers (`nameservers = ["127.0.0.1:5353"]` in
//! the config file, `--nameserver` on the command line). When it is empty the system
//! configuration (`/etc/resolv.conf`) is used; tests must always pass their own server.
//!
//! Two hickory resolvers are built: a plain one for TXT, MX and addresses, and a
//! DNSSEC-validating one used only for TLSA, because DANE needs the proof status (RFC 7672
//! §2.2) while the other lookups must not fail when a zone's signatures are broken (RFC 8460
//! does not require DNSSEC). If the validating lookup fails for a reason other than "no such
//! record" (for instance a server that does not serve the DNSSEC records), the TLSA RRset is
//! fetched without validation and reported with status [`DnssecStatus::Indeterminate`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;
use tlsrpt_core::record::{self, Outcome, Selection};

/// The result of one DNS lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The RRset (possibly reached through CNAMEs, REQUIREMENTS DNS-17).
    Found(T),
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no records of this type (NODATA).
    NoData,
    /// SERVFAIL, REFUSED, timeout, network error: the answer is unknown; try again later.
    Temporary(String),
}

impl<T> Lookup<T> {
    /// Maps the found value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(t) => Lookup::Found(f(t)),
            Lookup::NxDomain => Lookup::NxDomain,
            Lookup::NoData => Lookup::NoData,
            Lookup::Temporary(e) => Lookup::Temporary(e),
        }
    }

    /// A short description of a non-found outcome, for messages.
    pub fn describe_absence(&self) -> &str {
        match self {
            Lookup::Found(_) => "found",
            Lookup::NxDomain => "the name does not exist (NXDOMAIN)",
            Lookup::NoData => "the name has no records of this type (NODATA)",
            Lookup::Temporary(e) => e,
        }
    }
}

/// DNSSEC status of an answer (RFC 4035 §4.3 terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnssecStatus {
    /// A chain of trust from the root validates the answer.
    Secure,
    /// The zone is provably unsigned: DANE does not apply (RFC 7672 §2.2).
    Insecure,
    /// Signatures were expected but do not validate: an attack or a broken zone.
    Bogus,
    /// Validation could not be done (no DNSSEC data from the server).
    Indeterminate,
}

impl DnssecStatus {
    fn from_proof(p: Proof) -> Self {
        match p {
            Proof::Secure => DnssecStatus::Secure,
            Proof::Insecure => DnssecStatus::Insecure,
            Proof::Bogus => DnssecStatus::Bogus,
            _ => DnssecStatus::Indeterminate,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecStatus::Secure => "secure",
            DnssecStatus::Insecure => "insecure",
            DnssecStatus::Bogus => "bogus",
            DnssecStatus::Indeterminate => "indeterminate",
        }
    }
}

/// One MX RR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MxHost {
    /// The preference (lower is tried first).
    pub preference: u16,
    /// The exchange, lower case, without the trailing dot.
    pub host: String,
}

/// One TLSA RR (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tlsa {
    /// Certificate usage (3 = DANE-EE, 2 = DANE-TA).
    pub usage: u8,
    /// Selector (0 = full certificate, 1 = SPKI).
    pub selector: u8,
    /// Matching type (0 = exact, 1 = SHA-256, 2 = SHA-512).
    pub matching: u8,
    /// The association data.
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The TLSRPT `policy-string` element: `"3 1 1 HEX"`, upper-case hex (REQUIREMENTS
    /// DANE-10).
    pub fn to_policy_string(&self) -> String {
        let mut s = format!("{} {} {} ", self.usage, self.selector, self.matching);
        for b in &self.data {
            s.push_str(&format!("{b:02X}"));
        }
        s
    }
}

/// A TLSA RRset and its DNSSEC status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsaSet {
    /// The RRs.
    pub records: Vec<Tlsa>,
    /// The proof status of the RRset (the weakest over its RRs).
    pub dnssec: DnssecStatus,
}

/// What `_smtp._tls.<policy domain>` says, for the reporter (REQUIREMENTS DNS-18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A TXT RRset came back; the core's RRset rules decided (DNS-03/04/16).
    Answer {
        /// The RRset as received, each RR as its character-strings.
        rrset: Vec<Vec<Vec<u8>>>,
        /// The core's verdict.
        selection: Selection,
    },
    /// NXDOMAIN or NODATA: no TLSRPT, so no report.
    NoRecord(Lookup<()>),
    /// SERVFAIL, timeout...: keep the data and retry later (DNS-18, DLV-03).
    Temporary(String),
}

impl Discovery {
    /// `Some(record)` when reports are to be sent.
    pub fn record(&self) -> Option<&record::TlsrptRecord> {
        match self {
            Discovery::Answer { selection, .. } => selection.record(),
            _ => None,
        }
    }

    /// Whether the reporter should try again later rather than drop the report.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Discovery::Temporary(_))
    }

    /// Whether there is definitely no usable TLSRPT record (no report is sent).
    pub fn is_none(&self) -> bool {
        match self {
            Discovery::Answer { selection, .. } => {
                !matches!(selection.outcome, Outcome::Found { .. })
            }
            Discovery::NoRecord(_) => true,
            Discovery::Temporary(_) => false,
        }
    }
}

/// Why a resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    /// Reading the system configuration failed.
    #[error("cannot read the system DNS configuration: {0}")]
    System(String),
    /// hickory refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// Resolver settings.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Name servers to use instead of the system's (empty = system configuration).
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Attempts per query.
    pub attempts: usize,
    /// DNSSEC trust anchors for the TLSA lookups (None = the IANA root anchors built into
    /// hickory). Tests pass the keys of their signed test zones.
    pub trust_anchors: Option<Anchors>,
}

/// DNSSEC trust anchors (hickory's type, wrapped so that configurations can derive `Debug`).
#[derive(Clone)]
pub struct Anchors(pub Arc<TrustAnchors>);

impl std::fmt::Debug for Anchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Anchors(..)")
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            trust_anchors: None,
        }
    }
}

/// The resolvers: plain, and DNSSEC-validating for TLSA.
#[derive(Clone)]
pub struct Dns {
    plain: TokioResolver,
    validating: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// Builds resolvers using `nameservers` (UDP and TCP to each), or the system configuration
    /// when the list is empty. Must be called inside a tokio runtime.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Self, ResolverError> {
        Self::with_config(&DnsConfig {
            nameservers: nameservers.to_vec(),
            ..DnsConfig::default()
        })
    }

    /// Builds resolvers from a [`DnsConfig`].
    pub fn with_config(cfg: &DnsConfig) -> Result<Self, ResolverError> {
        Ok(Dns {
            plain: build(cfg, false)?,
            validating: build(cfg, true)?,
        })
    }

    /// The TXT RRset at `name`, each RR as its character-strings.
    pub async fn txt(&self, name: &str) -> Lookup<Vec<Vec<Vec<u8>>>> {
        let l = lookup(&self.plain, name, RecordType::TXT).await;
        l.map(|records| {
            records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
                    _ => None,
                })
                .collect()
        })
        .found_nonempty()
    }

    /// The MX RRset of `domain`, sorted by preference then name.
    pub async fn mx(&self, domain: &str) -> Lookup<Vec<MxHost>> {
        let l = lookup(&self.plain, domain, RecordType::MX).await;
        l.map(|records| {
            let mut v: Vec<MxHost> = records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(MxHost {
                        preference: mx.preference,
                        host: name_text(&mx.exchange.to_ascii()),
                    }),
                    _ => None,
                })
                .collect();
            v.sort_by(|a, b| (a.preference, &a.host).cmp(&(b.preference, &b.host)));
            v
        })
        .found_nonempty()
    }

    /// The A and AAAA addresses of `host`.
    pub async fn ips(&self, host: &str) -> Lookup<Vec<IpAddr>> {
        let (a, aaaa) = tokio::join!(
            lookup(&self.plain, host, RecordType::A),
            lookup(&self.plain, host, RecordType::AAAA)
        );
        let extract = |records: Vec<Record>| -> Vec<IpAddr> {
            records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect()
        };
        let (a, aaaa) = (
            a.map(extract).found_nonempty(),
            aaaa.map(extract).found_nonempty(),
        );
        match (a, aaaa) {
            (Lookup::Found(mut x), Lookup::Found(y)) => {
                x.extend(y);
                Lookup::Found(x)
            }
            (Lookup::Found(x), _) | (_, Lookup::Found(x)) => Lookup::Found(x),
            (Lookup::Temporary(e), _) | (_, Lookup::Temporary(e)) => Lookup::Temporary(e),
            (Lookup::NxDomain, _) | (_, Lookup::NxDomain) => Lookup::NxDomain,
            _ => Lookup::NoData,
        }
    }

    /// The TLSA RRset at `_<port>._tcp.<host>` (RFC 6698 §3; REQUIREMENTS DANE-01) with its
    /// DNSSEC status.
    pub async fn tlsa(&self, host: &str, port: u16) -> Lookup<TlsaSet> {
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        let extract = |records: &[Record]| -> Vec<Tlsa> {
            records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some(Tlsa {
                        usage: u8::from(t.cert_usage),
                        selector: u8::from(t.selector),
                        matching: u8::from(t.matching),
                        data: t.cert_data.clone(),
                    }),
                    _ => None,
                })
                .collect()
        };
        match lookup(&self.validating, &name, RecordType::TLSA).await {
            Lookup::Found(records) => {
                let tlsa: Vec<&Record> = records
                    .iter()
                    .filter(|r| r.record_type() == RecordType::TLSA)
                    .collect();
                let dnssec = tlsa
                    .iter()
                    .map(|r| DnssecStatus::from_proof(r.proof))
                    .min_by_key(|s| match s {
                        DnssecStatus::Bogus => 0,
                        DnssecStatus::Indeterminate => 1,
                        DnssecStatus::Insecure => 2,
                        DnssecStatus::Secure => 3,
                    })
                    .unwrap_or(DnssecStatus::Indeterminate);
                let records = extract(&records);
                if records.is_empty() {
                    Lookup::NoData
                } else {
                    Lookup::Found(TlsaSet { records, dnssec })
                }
            }
            Lookup::NxDomain => Lookup::NxDomain,
            Lookup::NoData => Lookup::NoData,
            Lookup::Temporary(why) => {
                // The validating path failed; fall back to a plain lookup so that the
                // existence of TLSA records is still reported, flagged as unvalidated.
                tracing::debug!(%name, %why, "validating TLSA lookup failed; retrying without validation");
                lookup(&self.plain, &name, RecordType::TLSA)
                    .await
                    .map(|records| TlsaSet {
                        records: extract(&records),
                        dnssec: DnssecStatus::Indeterminate,
                    })
                    .found_nonempty_by(|s| !s.records.is_empty())
            }
        }
    }

    /// Destination discovery for the reporter: `_smtp._tls.<policy domain>` (RFC 8460 §3;
    /// REQUIREMENTS DNS-01, DNS-02: exactly that name, no walking up), decided by the core's
    /// RRset rules ([`tlsrpt_core::record::select`]).
    pub async fn discover(&self, policy_domain: &str) -> Discovery {
        let name = format!("_smtp._tls.{}", policy_domain.trim_end_matches('.'));
        match self.txt(&name).await {
            Lookup::Found(rrset) => {
                let selection = record::select(&rrset);
                Discovery::Answer { rrset, selection }
            }
            Lookup::NxDomain => Discovery::NoRecord(Lookup::NxDomain),
            Lookup::NoData => Discovery::NoRecord(Lookup::NoData),
            Lookup::Temporary(e) => Discovery::Temporary(e),
        }
    }
}

impl<T> Lookup<Vec<T>> {
    /// An answer with no records of the wanted type (only CNAMEs, say) is NODATA.
    fn found_nonempty(self) -> Self {
        self.found_nonempty_by(|v| !v.is_empty())
    }
}

impl<T> Lookup<T> {
    fn found_nonempty_by(self, ok: impl FnOnce(&T) -> bool) -> Self {
        match self {
            Lookup::Found(v) if !ok(&v) => Lookup::NoData,
            other => other,
        }
    }
}

fn build(cfg: &DnsConfig, validate: bool) -> Result<TokioResolver, ResolverError> {
    let mut builder = if cfg.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| ResolverError::System(e.to_string()))?
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
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = cfg.timeout;
    opts.attempts = cfg.attempts;
    opts.validate = validate;
    // Only DNS answers: /etc/hosts must not redirect a policy host.
    opts.use_hosts_file = ResolveHosts::Never;
    // We query absolute names; never append search domains.
    opts.ndots = 0;
    if validate && let Some(Anchors(ta)) = &cfg.trust_anchors {
        builder = builder.with_trust_anchor(ta.clone());
    }
    builder
        .build()
        .map_err(|e| ResolverError::Build(e.to_string()))
}

/// Absolute name for the query: a trailing dot so no search domain is appended.
fn absolute(name: &str) -> String {
    let n = name.trim_end_matches('.');
    format!("{n}.")
}

fn name_text(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

async fn lookup(resolver: &TokioResolver, name: &str, rtype: RecordType) -> Lookup<Vec<Record>> {
    // A string that is not a DNS name (empty label, label over 63 octets...) cannot exist in
    // the DNS: that is NXDOMAIN, not a reason to retry later.
    let Ok(qname) = Name::from_ascii(absolute(name)) else {
        tracing::debug!(%name, "not a valid DNS name; treated as NXDOMAIN");
        return Lookup::NxDomain;
    };
    match resolver.lookup(qname, rtype).await {
        Ok(l) => Lookup::Found(l.answers().to_vec()),
        Err(e) => classify(&e),
    }
}

/// NXDOMAIN / NODATA (including DNSSEC-proven ones) versus everything else (DNS-18).
fn classify<T>(e: &NetError) -> Lookup<T> {
    if e.is_nx_domain() {
        return Lookup::NxDomain;
    }
    if e.is_no_records_found() {
        return Lookup::NoData;
    }
    if let NetError::Dns(DnsError::Nsec { .. }) = e {
        return Lookup::NoData;
    }
    Lookup::Temporary(format!("DNS lookup failed: {e}"))
}
