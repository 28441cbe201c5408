//! The HTTP(S) endpoint of the receiver: `POST` a report to the configured path (RFC 8460
//! §3, §5.4; REQUIREMENTS HTTP-02, HTTP-03, RCV-06, RCV-07, SEC-01, SEC-02).
//!
//! [`router`] answers one path; [`serve`] runs it on a listener, plain HTTP (behind a
//! reverse proxy) or TLS with rustls (ring provider) when a certificate and key are given.
//!
//! # Answers
//!
//! | situation | status | body |
//! |---|---|---|
//! | stored | 201 | `{"status":"stored","id":n}` |
//! | already stored (same organization-name, report-id, date-range) | 200 | `{"status":"duplicate","id":n}` |
//! | kept as rejected by local policy | 202 | `{"status":"quarantined","id":n,"reason":".."}` |
//! | unusable report | 400 | `{"error":"..","field":"policies[0].summary.total-failure-session-count"}` |
//! | body or decompressed size over the limit | 413 | `{"error":"..","limit":"max_body_bytes"}` |
//! | media type or content coding not accepted | 415 | `{"error":".."}` |
//! | too many requests from this client | 429 + `Retry-After` | `{"error":".."}` |
//! | body not received within `request_timeout` | 408 | `{"error":".."}` |
//! | no processing slot free within `request_timeout` | 503 + `Retry-After` | `{"error":".."}` |
//! | store unavailable | 503 + `Retry-After` | `{"error":".."}` |
//! | any method but POST | 405 (axum, with `Allow: POST`) | |
//!
//! A duplicate answers 2xx because the sender must not retry it (RFC 8460 §5.4 only asks for
//! "a success status"; REQUIREMENTS HTTP-03). 5xx is used only for our own temporary
//! problems, so a sender retries only when that can help (RCV-06).
//!
//! # Media types (HTTP-02)
//!
//! RFC 8460 §5.4 defines `application/tlsrpt+gzip` and `application/tlsrpt+json`. Senders in
//! the wild also use `application/json`, `application/gzip` (`application/x-gzip`) or
//! `Content-Encoding: gzip` on top of a JSON type; these are accepted as a deviation (the
//! pipeline stores it with the report, rule HTTP-02). Whatever the label says, the body is
//! sniffed for the gzip magic `1f 8b` (REQUIREMENTS HTTP-02 REC). No decompression layer is
//! used: gzip is undone by the core's bounded `gunzip` (`max_decompressed_bytes`, default
//! 20 MiB), so a bomb costs bounded memory. No Content-Type, or any other (`text/plain`,
//! `multipart/form-data`, `application/octet-stream`), or another coding (`br`, two codings)
//! is 415, checked on the headers before any of the body is read.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::json_response;
use crate::limits::{self, Decision, RateLimiter};
use crate::pipeline::{Accepted, Intake, Pipeline, Rejected, Via};

/// Re-exported so callers of [`router`] and [`serve`] (and of `crate::api::api_router`) need
/// no axum dependency of their own.
pub use axum::Router;
/// Re-exported: the type of [`HttpConfig::trusted_proxies`].
pub use ipnet::IpNet;

/// The default path of the endpoint (the `https:` rua of the TLSRPT record points here).
pub const DEFAULT_PATH: &str = "/tlsrpt";

/// `Retry-After` sent with 503: the store is usually back within a minute (a lock, a full
/// disk being cleaned); senders retry for up to 24 h anyway (REQUIREMENTS DLV-03).
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 60;

/// Longest error message echoed to the client; longer ones are cut (the full text is logged).
const MAX_ERROR_CHARS: usize = 300;

/// Limits and options of the endpoint. Every limit has a default defended in
/// [`crate::limits`]; the `[receiver]` config section overrides them.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// The path that accepts `POST` (default `/tlsrpt`).
    pub path: String,
    /// Largest request body, as sent (compressed or not). Default 10 MiB (DLV-02). A larger
    /// `Content-Length` is refused with 413 before any of the body is read.
    pub max_body_bytes: usize,
    /// Longest time from the end of the headers to the end of the body (waiting for a
    /// processing slot, then the upload): a slow-loris body is cut off with 408. Storing
    /// itself is bounded by the store's busy timeout instead. Default 30 s.
    pub request_timeout: Duration,
    /// Most requests processed at once; more wait for a slot within `request_timeout`.
    /// Default 64.
    pub max_concurrent_requests: usize,
    /// Requests per minute per client address (IPv6: per /64); 0 turns the limit off.
    /// Default 60 (SEC-01).
    pub rate_per_minute: u32,
    /// Most client addresses the rate limiter tracks at once (bounded memory).
    pub max_rate_clients: usize,
    /// Reverse proxies whose `X-Forwarded-For` is trusted: when the peer is in one of these
    /// ranges (a single address is a /32 or /128), the client address for rate limiting and
    /// logs is the right-most address in that header (SEC-01: behind a proxy every sender
    /// would otherwise share the proxy's bucket). Empty by default: the header is ignored,
    /// since anyone can send it. See [`parse_trusted_proxy`].
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            path: DEFAULT_PATH.to_owned(),
            max_body_bytes: limits::DEFAULT_MAX_BODY_BYTES,
            request_timeout: limits::DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: limits::DEFAULT_MAX_CONCURRENT_REQUESTS,
            rate_per_minute: limits::DEFAULT_RATE_PER_MINUTE,
            max_rate_clients: limits::DEFAULT_MAX_RATE_CLIENTS,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A configuration value the endpoint cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The path is not an absolute URL path of plain characters.
    #[error(
        "path {0:?}: must start with '/' and contain only letters, digits and - . _ ~ / (no {{ }} * ? # or spaces)"
    )]
    Path(String),
    /// A limit is zero where zero makes no sense.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
}

impl HttpConfig {
    /// Checks the values; call it when loading the config so a bad value stops start-up with
    /// a message naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = self.path.starts_with('/')
            && self.path.len() <= 256
            && self
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
        if !ok {
            return Err(ConfigError::Path(self.path.clone()));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Zero("max_body_bytes"));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::Zero("request_timeout"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::Zero("max_concurrent_requests"));
        }
        if self.max_rate_clients == 0 {
            return Err(ConfigError::Zero("max_rate_clients"));
        }
        Ok(())
    }
}

struct Endpoint {
    pipeline: Arc<Pipeline>,
    cfg: HttpConfig,
    limiter: RateLimiter,
    slots: Semaphore,
}

/// The endpoint's router: `POST cfg.path`, 405 for other methods on it, 404 elsewhere.
///
/// `cfg` should have passed [`HttpConfig::validate`]; an invalid path is logged and replaced
/// by [`DEFAULT_PATH`] rather than panicking, and zero limits are raised to 1.
pub fn router(pipeline: Arc<Pipeline>, mut cfg: HttpConfig) -> Router {
    if let Err(ConfigError::Path(p)) = cfg.validate() {
        tracing::error!(path = %p, "invalid receiver path; using {DEFAULT_PATH}");
        cfg.path = DEFAULT_PATH.to_owned();
    }
    cfg.max_body_bytes = cfg.max_body_bytes.max(1);
    cfg.max_concurrent_requests = cfg.max_concurrent_requests.max(1);
    if cfg.request_timeout.is_zero() {
        cfg.request_timeout = limits::DEFAULT_REQUEST_TIMEOUT;
    }
    let path = cfg.path.clone();
    let ep = Arc::new(Endpoint {
        pipeline,
        limiter: RateLimiter::new(cfg.rate_per_minute, cfg.max_rate_clients),
        slots: Semaphore::new(cfg.max_concurrent_requests),
        cfg,
    });
    Router::new()
        .route(&path, post(receive))
        // The body is read by `receive` itself through a `Limited` wrapper (413 on excess);
        // axum's own default (2 MiB, for extractors) does not apply.
        .layer(DefaultBodyLimit::disable())
        .with_state(ep)
}

#[derive(Serialize)]
struct Ok_ {
    status: &'static str,
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'static str>,
}

fn short(s: &str) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_ERROR_CHARS).collect();
        t.push('…');
        t
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(
        status,
        &ErrorBody {
            error: short(msg),
            field: None,
            limit: None,
        },
    )
}

fn with_retry_after(mut resp: Response, secs: u64) -> Response {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

fn too_large(limit: &'static str, max: usize) -> Response {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &ErrorBody {
            error: format!("report too large: over the limit {limit} = {max} bytes"),
            field: None,
            limit: Some(limit),
        },
    )
}

/// Parses one `trusted_proxies` entry: an address (`127.0.0.1`, `::1`) or a CIDR range
/// (`10.0.0.0/8`, `fd00::/8`). A range with host bits set (`10.0.0.1/8`) is refused rather
/// than widened: it is more likely a typo for a single address than a wish to trust the
/// whole network, and a trusted peer can choose the client address the rate limit sees.
pub fn parse_trusted_proxy(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address or a CIDR range like \"10.0.0.0/8\""))?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set: write the network, {:?}, or a single address",
            net.trunc().to_string()
        ));
    }
    Ok(net)
}

/// The client address: the TCP peer, or the right-most `X-Forwarded-For` entry when the
/// peer is a trusted proxy.
fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    // A dual-stack listener sees an IPv4 proxy as ::ffff:a.b.c.d; match it as a.b.c.d too.
    let canonical = peer.to_canonical();
    if !trusted
        .iter()
        .any(|n| n.contains(&peer) || n.contains(&canonical))
    {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(peer))
}

/// How the body is labelled, after the 415 checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    /// `application/tlsrpt+gzip` or `application/tlsrpt+json` without a content coding.
    Standard,
    /// Accepted, but not what RFC 8460 §5.4 says (logged; the pipeline records it).
    Deviation,
}

fn media_type(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| "Content-Type is not ASCII".to_owned())?;
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(Some(essence))
}

/// The early media-type check of the module docs, made on the headers alone so a wrong type
/// is answered 415 before the body is read; the pipeline applies the same rules again and
/// records the deviation. Ok(label) or the 415 message.
fn check_media(headers: &HeaderMap) -> Result<Label, String> {
    let label = match media_type(headers)?.as_deref() {
        // RFC 8460 §5.4, §6.4, §6.5.
        Some("application/tlsrpt+gzip" | "application/tlsrpt+json") => Label::Standard,
        // Seen in the wild; the body is sniffed anyway (HTTP-02 REC).
        Some("application/json" | "application/gzip" | "application/x-gzip") => Label::Deviation,
        None => {
            return Err(
                "no Content-Type: send application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 section 5.4)"
                    .to_owned(),
            );
        }
        Some(other) => {
            return Err(format!(
                "unsupported media type {:?}: send application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 section 5.4)",
                short(other)
            ));
        }
    };
    let mut codings = headers.get_all(header::CONTENT_ENCODING).iter();
    let v = match (codings.next(), codings.next()) {
        (None, _) => return Ok(label),
        (Some(v), None) => v,
        (Some(_), Some(_)) => {
            return Err(
                "several Content-Encoding headers: at most one gzip layer is accepted".to_owned(),
            );
        }
    };
    let v = v
        .to_str()
        .map_err(|_| "Content-Encoding is not ASCII".to_owned())?;
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(label),
        // One gzip layer; decoded with the bounded gunzip (never a decompression layer).
        "gzip" | "x-gzip" => Ok(Label::Deviation),
        other => Err(format!(
            "unsupported Content-Encoding {:?}: only gzip is accepted (application/tlsrpt+gzip needs none)",
            short(other)
        )),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn receive(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = client_ip(peer, req.headers(), &ep.cfg.trusted_proxies);
    // Rate limit first: it is the cheapest check and protects every later step (SEC-01).
    if let Some(ip) = client
        && let Decision::Deny { retry_after_secs } = ep.limiter.check(ip, Instant::now())
    {
        tracing::debug!(client = %ip, "rate limited");
        return with_retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many requests from this address (limit {} per minute); retry later",
                    ep.cfg.rate_per_minute
                ),
            ),
            retry_after_secs,
        );
    }
    let label = match check_media(req.headers()) {
        Ok(l) => l,
        Err(msg) => return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &msg),
    };
    // A declared length over the limit is refused before reading any of it (RCV-07).
    if let Some(len) = content_length(req.headers())
        && len > ep.cfg.max_body_bytes as u64
    {
        return too_large("max_body_bytes", ep.cfg.max_body_bytes);
    }
    // `request_timeout` bounds the wait for a slot and the upload (slow-loris bodies: 408).
    // Storing is not cut off half-way: it is bounded by the store's own busy timeout.
    let deadline = tokio::time::Instant::now() + ep.cfg.request_timeout;
    let Ok(slot) = tokio::time::timeout_at(deadline, ep.slots.acquire()).await else {
        return with_retry_after(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many reports being processed; retry later",
            ),
            UNAVAILABLE_RETRY_AFTER_SECS,
        );
    };
    let Ok(_slot) = slot else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, ep.cfg.max_body_bytes).collect();
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body not received within request_timeout = {} s",
                    ep.cfg.request_timeout.as_secs()
                ),
            );
        }
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large("max_body_bytes", ep.cfg.max_body_bytes);
            }
            return error(
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {e}"),
            );
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let content_encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if label == Label::Deviation {
        tracing::debug!(
            content_type = content_type.unwrap_or("(none)"),
            content_encoding = content_encoding.unwrap_or("(none)"),
            "report labelled other than RFC 8460 section 5.4 says; accepted"
        );
    }
    let intake = Intake {
        bytes: &bytes,
        via: Via::Https,
        content_type,
        content_encoding,
        peer: client,
    };
    answer(ep.pipeline.ingest(intake).await, client)
}

fn answer(result: Result<Accepted, Rejected>, client: Option<IpAddr>) -> Response {
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    match result {
        Ok(Accepted::Stored { id }) => {
            tracing::info!(id, client, "report stored");
            json_response(
                StatusCode::CREATED,
                &Ok_ {
                    status: "stored",
                    id,
                    reason: None,
                },
            )
        }
        Ok(Accepted::Duplicate { id }) => {
            tracing::info!(id, client, "duplicate report");
            json_response(
                StatusCode::OK,
                &Ok_ {
                    status: "duplicate",
                    id,
                    reason: None,
                },
            )
        }
        Ok(Accepted::Quarantined { id, reason }) => {
            tracing::info!(id, client, reason, "report kept as rejected");
            json_response(
                StatusCode::ACCEPTED,
                &Ok_ {
                    status: "quarantined",
                    id,
                    reason: Some(short(&reason)),
                },
            )
        }
        Err(Rejected::BadData { path, message }) => {
            tracing::info!(client, field = %path, message, "report rejected");
            json_response(
                StatusCode::BAD_REQUEST,
                &ErrorBody {
                    error: short(&message),
                    field: Some(short(&path)),
                    limit: None,
                },
            )
        }
        Err(Rejected::TooLarge { limit, max }) => {
            tracing::info!(client, limit, max, "report too large");
            too_large(limit, max)
        }
        Err(Rejected::UnsupportedMediaType(m)) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &m),
        Err(Rejected::RateLimited(l)) => {
            // SEC-01: the sender retries after `Retry-After`; nothing was stored.
            tracing::info!(client, limit = l.limit.as_str(), key = %l.key, "report refused: sender over its limit");
            let (retry_after, limit) = (l.retry_after_secs, l.limit.as_str());
            with_retry_after(
                json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &ErrorBody {
                        error: short(&Rejected::RateLimited(l).to_string()),
                        field: None,
                        limit: Some(limit),
                    },
                ),
                retry_after,
            )
        }
        Err(Rejected::Unavailable(m)) => {
            // Details (paths, SQL errors) go to the log, not to the sender.
            tracing::error!(client, error = m, "store unavailable; answering 503");
            with_retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "report store temporarily unavailable; retry later",
                ),
                UNAVAILABLE_RETRY_AFTER_SECS,
            )
        }
    }
}

/// Connection-level limits of [`serve_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// Time allowed for the request headers, and for the TLS handshake (slow-loris defence).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Most open connections; further ones wait in the kernel's accept queue. Default 1024.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish. Default 10 s.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: limits::DEFAULT_HEADER_TIMEOUT,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            grace: Duration::from_secs(10),
        }
    }
}

/// Why [`serve`] could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key file could not be read or used.
    #[error("TLS {what} {path}: {message}")]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Loads a PEM certificate chain and private key into a rustls server configuration with the
/// ring provider, TLS 1.2 and 1.3, ALPN h2 and http/1.1.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |what, path: &Path, message: String| ServeError::Tls {
        what,
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(tls_err(
            "certificate",
            cert,
            "no CERTIFICATE block found".into(),
        ));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err("key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("certificate", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_err("key", key, e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// [`serve_with`] with the default [`ServeOptions`].
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    tls: Option<(PathBuf, PathBuf)>,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    serve_with(listener, router, tls, ServeOptions::default(), shutdown).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (up to `opts.grace`). With `tls = Some((cert, key))` every connection is TLS
/// (rustls, ring); otherwise plain HTTP/1.1 and h2c. Each request carries the peer address as
/// `ConnectInfo<SocketAddr>` (used for rate limiting).
pub async fn serve_with<F>(
    listener: TcpListener,
    router: Router,
    tls: Option<(PathBuf, PathBuf)>,
    opts: ServeOptions,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    let acceptor = match &tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(load_tls(cert, key)?)),
        None => None,
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(32)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let conns = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let handshake_timeout = opts.header_read_timeout;
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = conns.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        while tasks.try_join_next().is_some() {}
        let svc = connection_service(router.clone(), peer, inflight.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                None => {
                    // The auto builder's protocol sniffing reads without a timeout: a client
                    // that connects and sends nothing is dropped here instead.
                    let mut first = [0u8; 1];
                    if !matches!(
                        tokio::time::timeout(handshake_timeout, tcp.peek(&mut first)).await,
                        Ok(Ok(1..))
                    ) {
                        tracing::debug!(%peer, "no request within the header timeout");
                        return;
                    }
                    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    // Connections finish their current request and close; idle keep-alive connections (which
    // hyper may keep waiting on) are dropped as soon as no request is in flight.
    let all_closed = graceful.shutdown();
    let mut all_closed = std::pin::pin!(all_closed);
    let deadline = tokio::time::sleep(opts.grace);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut all_closed => break,
            () = &mut deadline => {
                tracing::warn!("requests still in flight after the shutdown grace period; dropped");
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                if inflight.load(Ordering::SeqCst) == 0 {
                    break;
                }
            }
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The hyper service of one connection: the router, with the peer address inserted as
/// `ConnectInfo` for the handlers, counting requests in flight for the shutdown.
fn connection_service(
    router: Router,
    peer: SocketAddr,
    inflight: Arc<AtomicUsize>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let guard = InFlight::new(inflight.clone());
        let fut = tower::ServiceExt::oneshot(router.clone(), req);
        async move {
            let resp = fut.await;
            drop(guard);
            resp
        }
    })
}

/// Counts one request in flight until dropped (also when the request is cancelled).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(n: Arc<AtomicUsize>) -> InFlight {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn http_02_media_type_rules() {
        let ok = |p: &[(&str, &str)]| check_media(&headers(p));
        assert_eq!(
            ok(&[("content-type", "application/tlsrpt+gzip")]),
            Ok(Label::Standard)
        );
        assert_eq!(
            ok(&[("content-type", "Application/TLSRPT+JSON; charset=utf-8")]),
            Ok(Label::Standard)
        );
        assert_eq!(
            ok(&[("content-type", "application/json")]),
            Ok(Label::Deviation)
        );
        assert_eq!(
            ok(&[
                ("content-type", "application/tlsrpt+json"),
                ("content-encoding", "gzip")
            ]),
            Ok(Label::Deviation)
        );
        assert_eq!(
            ok(&[
                ("content-type", "application/tlsrpt+json"),
                ("content-encoding", "identity")
            ]),
            Ok(Label::Standard)
        );
        for bad in [
            vec![],
            vec![("content-type", "text/html")],
            vec![("content-type", "application/octet-stream")],
            vec![
                ("content-type", "application/tlsrpt+gzip"),
                ("content-encoding", "br"),
            ],
            vec![
                ("content-type", "application/tlsrpt+gzip"),
                ("content-encoding", "gzip"),
                ("content-encoding", "gzip"),
            ],
        ] {
            assert!(ok(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sec_01_forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [IpNet::from(proxy)];
        let h = headers(&[("x-forwarded-for", "198.51.100.9, 192.0.2.7")]);
        // Untrusted peer: the header is ignored (anyone can send it).
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_ip(Some(peer), &h, &trusted), Some(peer));
        // Trusted proxy: its right-most entry, the address it saw.
        assert_eq!(
            client_ip(Some(proxy), &h, &trusted),
            Some("192.0.2.7".parse().unwrap())
        );
        // Trusted proxy without a usable header: the proxy itself.
        assert_eq!(
            client_ip(
                Some(proxy),
                &headers(&[("x-forwarded-for", "junk")]),
                &trusted
            ),
            Some(proxy)
        );
        assert_eq!(client_ip(None, &h, &trusted), None);
    }

    #[test]
    fn sec_01_trusted_proxy_ranges_and_mapped_addresses() {
        let h = headers(&[("x-forwarded-for", "192.0.2.7")]);
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let ranges = [
            parse_trusted_proxy("10.0.0.0/8").unwrap(),
            parse_trusted_proxy("fd00::/8").unwrap(),
        ];
        for inside in ["10.1.2.3", "fd12::1", "::ffff:10.9.9.9"] {
            let peer: IpAddr = inside.parse().unwrap();
            assert_eq!(client_ip(Some(peer), &h, &ranges), Some(client), "{inside}");
        }
        for outside in ["11.0.0.1", "fe80::1", "::ffff:11.0.0.1"] {
            let peer: IpAddr = outside.parse().unwrap();
            assert_eq!(client_ip(Some(peer), &h, &ranges), Some(peer), "{outside}");
        }
    }

    #[test]
    fn trusted_proxy_entries_parse_strictly() {
        assert_eq!(
            parse_trusted_proxy("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_trusted_proxy(" ::1 ").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_trusted_proxy("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "1.2.3.4:80",
            "::/129",
        ] {
            assert!(parse_trusted_proxy(bad).is_err(), "{bad:?}");
        }
        let e = parse_trusted_proxy("10.0.0.1/8").unwrap_err();
        assert!(e.contains("host bits") && e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn config_validation_names_the_problem() {
        assert!(HttpConfig::default().validate().is_ok());
        for p in ["tlsrpt", "/a b", "/{id}", "/x?y", ""] {
            let c = HttpConfig {
                path: p.into(),
                ..HttpConfig::default()
            };
            assert!(matches!(c.validate(), Err(ConfigError::Path(_))), "{p:?}");
        }
        let c = HttpConfig {
            max_body_bytes: 0,
            ..HttpConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("max_body_bytes")));
    }
}
