//! HTTPS clients: the only place we build one, so every request gets the same protections.
//!
//! * **TLS**: rustls with the ring provider (no aws-lc, no OpenSSL); certificate validation on
//!   (system roots through rustls-platform-verifier) plus an optional `extra_ca` PEM file for
//!   private CAs. RFC 8460 §3 allows ignoring certificate errors on POST (REQUIREMENTS
//!   HTTP-04): [`HttpConfig::accept_invalid_certs`] does that, off by default and logged at
//!   warn level whenever a client is built with it (SEC-04). Never use it for the MTA-STS
//!   policy fetch, whose whole point is the certificate (RFC 8461 §3.3).
//! * **Timeouts**: connect 10 s, whole request 60 s by default (HTTP-05 recommends 30–60 s).
//! * **No proxies** from the environment: `HTTPS_PROXY` would bypass the SSRF guard.
//! * **Redirects** ([`Redirects`]): for report POSTs, 301/302/303 are *not* followed (they turn
//!   the POST into a GET, HTTP-05) and come back to the caller as the response, which counts
//!   as a failure; 307/308 keep the method and body and are followed at most
//!   [`MAX_REDIRECTS`] hops, only to `https:` URLs that pass the SSRF guard. For the MTA-STS
//!   policy fetch nothing is followed (RFC 8461 §3.3, STS-03).
//! * **SSRF guard**: a rua URL comes from a stranger's DNS, so by default we refuse to connect
//!   to loopback, private, link-local and other non-public addresses ([`is_forbidden`]). The
//!   check is done inside the client's DNS resolver ([`GuardedResolver`]), which drops the
//!   forbidden addresses before the connector sees them: the address checked is the address
//!   connected to, so a second DNS answer cannot swap in 127.0.0.1 (no rebinding gap). URLs
//!   whose host is an IP literal never reach a resolver, so they are checked before the
//!   request ([`check_url`]) and again for every redirect hop. `allow_private_targets = true`
//!   turns the guard off (tests, private deployments).

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Action, Attempt, Policy};
use url::{Host, Url};

use crate::resolver::{Dns, Lookup};

/// At most this many 307/308 hops are followed for a POST (REQUIREMENTS HTTP-05).
pub const MAX_REDIRECTS: usize = 3;

/// The default connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default whole-request timeout.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which redirects a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirects {
    /// Follow none: every 3xx is returned to the caller (MTA-STS policy fetch, STS-03).
    None,
    /// Follow 307/308 up to [`MAX_REDIRECTS`] hops over https; return 301/302/303 to the caller
    /// (report POSTs, HTTP-05).
    PreserveMethod,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole request timeout, body included.
    pub timeout: Duration,
    /// Connect to non-public addresses too (turns the SSRF guard off).
    pub allow_private_targets: bool,
    /// PEM file with extra CA certificates to trust besides the system roots.
    pub extra_ca: Option<PathBuf>,
    /// Skip certificate validation (RFC 8460 §3 allows it for report POSTs, HTTP-04). Off by
    /// default; a warning is logged when a client is built with it.
    pub accept_invalid_certs: bool,
    /// Redirect policy.
    pub redirects: Redirects,
    /// The User-Agent header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: CONNECT_TIMEOUT,
            timeout: TOTAL_TIMEOUT,
            allow_private_targets: false,
            extra_ca: None,
            accept_invalid_certs: false,
            redirects: Redirects::PreserveMethod,
            user_agent: concat!("tlsrpt/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Why a request was not made or did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Not an `https:` URL.
    #[error("refusing {url}: only https:// URLs are used")]
    NotHttps {
        /// The URL.
        url: String,
    },
    /// The SSRF guard refused the target.
    #[error(
        "refusing to connect to {host}: {detail} (a non-public address; set \
         allow_private_targets to allow it)"
    )]
    ForbiddenTarget {
        /// The host as in the URL.
        host: String,
        /// Which addresses and why.
        detail: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {detail}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        detail: String,
    },
    /// The `extra_ca` file could not be used.
    #[error("cannot use extra CA file {path}: {reason}")]
    ExtraCa {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The response body is larger than allowed.
    #[error("response body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The TLS handshake failed (certificate not trusted, wrong name, expired...).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// A redirect was refused (too many hops, not https, forbidden target).
    #[error("redirect refused: {0}")]
    Redirect(String),
    /// Any other transport failure.
    #[error("{0}")]
    Transport(String),
}

/// A response, body read up to a limit.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// The Location header, if any (set on a 3xx that was not followed).
    pub location: Option<String>,
    /// The URL of the final response (after followed redirects).
    pub final_url: String,
    /// The address actually connected to.
    pub remote_addr: Option<SocketAddr>,
    /// The body.
    pub body: Vec<u8>,
}

/// An HTTPS client with the protections described in the module docs.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpClient {
    /// Builds a client. Host names are resolved through `dns` (so configured name servers
    /// apply to HTTPS targets too) and filtered by the SSRF guard.
    pub fn new(cfg: &HttpConfig, dns: Dns) -> Result<Self, HttpError> {
        crate::install_crypto();
        let allow_private = cfg.allow_private_targets;
        let redirect = match cfg.redirects {
            Redirects::None => Policy::none(),
            Redirects::PreserveMethod => {
                Policy::custom(move |attempt| redirect_decision(attempt, allow_private))
            }
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .no_proxy()
            .https_only(true)
            .redirect(redirect)
            .referer(false)
            .user_agent(cfg.user_agent.clone())
            .tls_backend_rustls()
            .dns_resolver(Arc::new(GuardedResolver { dns, allow_private }));
        if cfg.accept_invalid_certs {
            // SEC-04: record the choice in the logs.
            tracing::warn!(
                "HTTPS certificate validation is OFF for this client (accept_invalid_certs); \
                 RFC 8460 §3 allows this for report POSTs only"
            );
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &cfg.extra_ca {
            let err = |reason: String| HttpError::ExtraCa {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in the file".into()));
            }
            b = b.tls_certs_merge(certs);
        }
        let client = b.build().map_err(|e| {
            HttpError::Transport(format!("cannot build HTTP client: {}", chain(&e)))
        })?;
        Ok(HttpClient {
            client,
            allow_private,
        })
    }

    /// The underlying reqwest client (same protections), for callers that need more control.
    /// Check the URL with [`check_url`] first: IP-literal hosts bypass the resolver.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `url`, reading at most `max_body` bytes of body.
    pub async fn get(&self, url: &str, max_body: usize) -> Result<Fetched, HttpError> {
        let u = check_url(url, self.allow_private)?;
        let resp = self.client.get(u).send().await.map_err(map_err)?;
        read(resp, max_body).await
    }

    /// POST `body` with `content_type` to `url`; reads at most `max_body` bytes of the reply.
    /// Any status is returned; the caller decides (HTTP-03: 2xx means delivered).
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        max_body: usize,
    ) -> Result<Fetched, HttpError> {
        let u = check_url(url, self.allow_private)?;
        let resp = self
            .client
            .post(u)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(map_err)?;
        read(resp, max_body).await
    }
}

async fn read(mut resp: reqwest::Response, max_body: usize) -> Result<Fetched, HttpError> {
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let location = header(reqwest::header::LOCATION);
    let status = resp.status().as_u16();
    let final_url = resp.url().to_string();
    let remote_addr = resp.remote_addr();
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max_body).unwrap_or(u64::MAX))
    {
        return Err(HttpError::TooLarge { limit: max_body });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(map_err)? {
        if body.len() + chunk.len() > max_body {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        content_type,
        location,
        final_url,
        remote_addr,
        body,
    })
}

/// Parses `url` and applies the checks that do not need DNS: `https:` only, and an IP-literal
/// host must pass the SSRF guard (unless `allow_private`).
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, HttpError> {
    let u = Url::parse(url).map_err(|e| HttpError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    check_parsed(&u, allow_private)?;
    Ok(u)
}

fn check_parsed(u: &Url, allow_private: bool) -> Result<(), HttpError> {
    if u.scheme() != "https" {
        return Err(HttpError::NotHttps { url: u.to_string() });
    }
    let ip = match u.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) => return Ok(()),
        None => {
            return Err(HttpError::BadUrl {
                url: u.to_string(),
                reason: "no host".into(),
            });
        }
    };
    if !allow_private && is_forbidden(ip) {
        return Err(HttpError::ForbiddenTarget {
            host: u.host_str().unwrap_or_default().to_string(),
            detail: format!("{ip} is {}", forbidden_reason(ip).unwrap_or("not public")),
        });
    }
    Ok(())
}

/// HTTP-05: 301/302/303 are returned to the caller (a failure for a POST); 307/308 are
/// followed up to [`MAX_REDIRECTS`] hops, https only, each hop through the SSRF guard.
fn redirect_decision(attempt: Attempt, allow_private: bool) -> Action {
    let status = attempt.status().as_u16();
    if !matches!(status, 307 | 308) {
        return attempt.stop();
    }
    // `previous` holds the first URL plus every hop already followed.
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(RedirectRefused(format!(
            "more than {MAX_REDIRECTS} redirects"
        )));
    }
    if let Err(e) = check_parsed(attempt.url(), allow_private) {
        let msg = e.to_string();
        return attempt.error(RedirectRefused(msg));
    }
    attempt.follow()
}

#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RedirectRefused {}

/// Raised by [`GuardedResolver`] when every address of a host is forbidden.
#[derive(Debug)]
struct Forbidden {
    host: String,
    detail: String,
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.host, self.detail)
    }
}

impl StdError for Forbidden {}

/// Raised by [`GuardedResolver`] when a host does not resolve.
#[derive(Debug)]
struct Unresolved {
    host: String,
    detail: String,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.host, self.detail)
    }
}

impl StdError for Unresolved {}

/// reqwest's DNS resolver: hickory lookups (honouring configured name servers) with forbidden
/// addresses removed, so the connector can only connect to what was checked.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    dns: Dns,
    allow_private: bool,
}

impl GuardedResolver {
    /// A resolver over `dns`; `allow_private` disables the filter.
    pub fn new(dns: Dns, allow_private: bool) -> Self {
        GuardedResolver { dns, allow_private }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let dns = self.dns.clone();
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = match dns.ips(&host).await {
                Lookup::Found(ips) => ips,
                other => {
                    let detail = other.describe_absence().to_string();
                    return Err(Box::new(Unresolved { host, detail }) as _);
                }
            };
            let (ok, bad): (Vec<IpAddr>, Vec<IpAddr>) = ips
                .into_iter()
                .partition(|ip| allow_private || !is_forbidden(*ip));
            if ok.is_empty() {
                let detail = bad
                    .iter()
                    .map(|ip| format!("{ip} is {}", forbidden_reason(*ip).unwrap_or("not public")))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Forbidden { host, detail }) as _);
            }
            if !bad.is_empty() {
                tracing::warn!(%host, ?bad, "ignoring non-public addresses of a public host");
            }
            let addrs: Addrs = Box::new(ok.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Turns a reqwest error into an [`HttpError`], recognising our own guard errors and TLS
/// failures anywhere in the source chain.
fn map_err(e: reqwest::Error) -> HttpError {
    let mut src: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(s) = src {
        if let Some(f) = s.downcast_ref::<Forbidden>() {
            return HttpError::ForbiddenTarget {
                host: f.host.clone(),
                detail: f.detail.clone(),
            };
        }
        if let Some(u) = s.downcast_ref::<Unresolved>() {
            return HttpError::Resolve {
                host: u.host.clone(),
                detail: u.detail.clone(),
            };
        }
        if let Some(r) = s.downcast_ref::<RedirectRefused>() {
            return HttpError::Redirect(r.0.clone());
        }
        // rustls errors arrive wrapped in an io::Error, whose source() skips the wrapped
        // error itself, so look inside it explicitly.
        let is_tls = s.downcast_ref::<rustls::Error>().is_some()
            || s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if is_tls {
            return HttpError::Tls(chain(&e));
        }
        src = s.source();
    }
    if e.is_timeout() {
        return HttpError::Timeout(chain(&e));
    }
    // The connector may box the rustls error in a way the walk above cannot downcast; its
    // Debug form still names the rustls variant.
    let debug = format!("{e:?}");
    if [
        "InvalidCertificate",
        "invalid peer certificate",
        "AlertReceived",
        "PeerIncompatible",
    ]
    .iter()
    .any(|k| debug.contains(k))
    {
        return HttpError::Tls(chain(&e));
    }
    HttpError::Transport(chain(&e))
}

/// The error and all its sources, joined with ": ".
fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Is `ip` an address a report or policy fetch must not connect to by default?
///
/// Covered (with the decisions where a list could differ):
/// * IPv4: 0.0.0.0/8 ("this network", includes unspecified), 10/8, 100.64/10 (CGNAT),
///   127/8, 169.254/16, 172.16/12, 192.0.0/24 (IETF protocol assignments), 192.0.2/24,
///   198.51.100/24, 203.0.113/24 (documentation: never routable, so nothing legitimate
///   lives there), 192.88.99/24 (deprecated 6to4 relay), 192.168/16, 198.18/15
///   (benchmarking), 224/4 (multicast), 240/4 (reserved, includes 255.255.255.255).
/// * IPv6: `::`, `::1`, v4-mapped `::ffff:0:0/96` and the deprecated v4-compatible `::/96`
///   (judged by the embedded IPv4 address), 64:ff9b::/96 (the NAT64 well-known prefix:
///   judged by the embedded IPv4 address, because NAT64 networks legitimately reach public
///   hosts through it), 64:ff9b:1::/48 (local-use NAT64: forbidden), 100::/64 (discard),
///   2001::/23 (IETF protocol assignments, includes Teredo 2001::/32 and ORCHID), 2001:db8::/32
///   and 3fff::/20 (documentation), 2002::/16 (6to4: judged by the embedded IPv4 address),
///   fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (deprecated site-local),
///   ff00::/8 (multicast).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// Why `ip` is forbidden, or `None` if it is a public address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let r = match (a, b, c) {
        (0, _, _) => "unspecified/this network (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space / CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation range",
        (192, 88, 99) => "deprecated 6to4 relay (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved/broadcast (240.0.0.0/4)",
        _ => return None,
    };
    Some(r)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_tail = || {
        Ipv4Addr::new(
            (s[6] >> 8) as u8,
            (s[6] & 0xff) as u8,
            (s[7] >> 8) as u8,
            (s[7] & 0xff) as u8,
        )
    };
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    // v4-mapped ::ffff:a.b.c.d
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return v4_reason(embedded_tail()).map(|_| "IPv4-mapped form of a non-public address");
    }
    // deprecated v4-compatible ::a.b.c.d
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return v4_reason(embedded_tail())
            .map(|_| "IPv4-compatible form of a non-public address")
            .or(Some("deprecated IPv4-compatible address (::/96)"));
    }
    // NAT64 well-known prefix 64:ff9b::/96
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_reason(embedded_tail()).map(|_| "NAT64 form of a non-public address");
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return Some("discard-only (100::/64)");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("documentation (2001:db8::/32)");
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        return Some("IETF protocol assignments incl. Teredo (2001::/23)");
    }
    if s[0] & 0xfff0 == 0x3ff0 {
        return Some("documentation (3fff::/20)");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (s[1] >> 8) as u8,
            (s[1] & 0xff) as u8,
            (s[2] >> 8) as u8,
            (s[2] & 0xff) as u8,
        );
        return v4_reason(v4).map(|_| "6to4 form of a non-public address");
    }
    match s[0] {
        x if x & 0xfe00 == 0xfc00 => Some("unique local (fc00::/7)"),
        x if x & 0xffc0 == 0xfe80 => Some("link-local (fe80::/10)"),
        x if x & 0xffc0 == 0xfec0 => Some("site-local, deprecated (fec0::/10)"),
        x if x & 0xff00 == 0xff00 => Some("multicast (ff00::/8)"),
        _ => None,
    }
}
