//! One delivery attempt of one report to one destination (RFC 8460 §3, §5.3, §5.4).
//!
//! The caller (the outbox) owns retries and persistence; this module only makes an attempt and
//! says whether a failure is worth retrying ([`DeliveryError::Temporary`]) or not
//! ([`DeliveryError::Permanent`], REQUIREMENTS DLV-07).
//!
//! Classification (decisions where the RFC is silent are marked *decision*):
//!
//! | outcome | class |
//! |---|---|
//! | HTTP 2xx | delivered (HTTP-03: any 2xx, not only 200/201) |
//! | HTTP 408, 429, 5xx, other non-2xx/3xx/4xx codes | temporary |
//! | HTTP 4xx other than 408/429 | permanent (DLV-07) |
//! | HTTP 301/302/303 (never followed, HTTP-05), or a 3xx left after following | permanent (*decision*: the server answered definitively that the report does not belong at this URL; retrying the same URL gets the same answer; the rua should name the final URL) |
//! | more than 3 redirects (a loop), or a redirect to http:/a forbidden address | permanent (*decision*, same reason) |
//! | timeout, connection refused/reset, DNS failure for the host | temporary |
//! | TLS failure (untrusted/expired certificate, wrong name, handshake) | temporary (*decision*: certificates get fixed or renewed, often within the 24 h window; `accept_invalid_certs` (HTTP-04) is the operator's opt-out) |
//! | SSRF guard refusal, bad URL, non-https URL | permanent |
//! | SMTP 2xx after DATA | delivered (the relay accepted it) |
//! | SMTP 4xx | temporary |
//! | SMTP 5xx | permanent (DLV-07), except 530/534/535/538 (the relay wants other AUTH/TLS from us: temporary, *decision*) |
//! | SMTP connection/TLS/timeout/AUTH-negotiation trouble | temporary (relay or config problems are fixed on our side) |
//! | mail destination without `smtp_relay` or DKIM key, bad address | permanent, message starting with `config:` or naming the address |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tlsrpt_core::record::ReportingUri;
use tlsrpt_core::report::Report;
use tlsrpt_net::http::{HttpClient, HttpConfig, HttpError};
use tlsrpt_net::resolver::Dns;

use crate::dkim::{DkimError, DkimKeyConfig, Signer};
use crate::mail;

/// A report ready to go: the model (for the mail summary and headers), the gzip body that is
/// sent as is, and its RFC 8460 §5.1 filename.
#[derive(Clone, Debug)]
pub struct ReportToSend {
    /// The report (its `report-id` also goes into the Subject, MAIL-07).
    pub report: Report,
    /// The policy domain the report is about (`TLS-Report-Domain`, MAIL-04), in A-labels.
    pub policy_domain: String,
    /// The gzipped JSON (REQUIREMENTS DLV-02), exactly the bytes sent.
    pub gzip: Vec<u8>,
    /// The RFC 8460 §5.1 filename (`sender!policy-domain!begin!end[!id].json.gz`).
    pub filename: String,
}

impl ReportToSend {
    /// Prepares `report` about `policy_domain`: gzips it (REQUIREMENTS DLV-02) and names it per
    /// RFC 8460 §5.1 (`<contact-info domain>!<policy-domain>!<begin>!<end>!<id>.json.gz`). The
    /// filename's unique-id is 16 hex digits of a hash of the report-id, so it is alphanumeric
    /// (MAIL-10) and the same report always gets the same name.
    pub fn new(report: Report, policy_domain: &str) -> Result<Self, mail::MailError> {
        let sender = mail::submitter_domain(&report)?;
        let unique = format!("{:016x}", mail::fnv1a64(report.report_id.as_bytes()));
        let filename = tlsrpt_core::naming::ReportFilename::new(
            &sender,
            policy_domain,
            report.date_range,
            Some(&unique),
            true,
        )
        .map_err(|e| mail::MailError::Filename(e.to_string()))?;
        let gzip = tlsrpt_core::write::to_gzip(&report);
        Ok(ReportToSend {
            policy_domain: filename.policy_domain.clone(),
            filename: filename.to_string(),
            report,
            gzip,
        })
    }
}

/// Where one copy of a report goes (one usable `rua` URI, REQUIREMENTS DLV-01).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// POST to this `https:` URL (RFC 8460 §5.4).
    Https(String),
    /// Mail to this address (the addr-spec of a `mailto:` URI, RFC 8460 §5.3).
    Mailto(String),
}

impl Destination {
    /// The destination for a usable rua URI; `None` for unsupported schemes (DNS-10).
    pub fn from_uri(uri: &ReportingUri) -> Option<Self> {
        match uri {
            ReportingUri::Mailto { address, .. } => Some(Destination::Mailto(address.clone())),
            ReportingUri::Https { uri } => Some(Destination::Https(uri.clone())),
            ReportingUri::Unsupported { .. } => None,
        }
    }

    /// The destination as a URI (`mailto:addr` or the https URL), for storage and display.
    pub fn to_uri(&self) -> String {
        match self {
            Destination::Https(u) => u.clone(),
            Destination::Mailto(a) => format!("mailto:{a}"),
        }
    }

    /// Parses what [`Destination::to_uri`] wrote (or any `mailto:`/`https:` URI).
    pub fn parse(uri: &str) -> Option<Self> {
        ReportingUri::parse(uri)
            .ok()
            .as_ref()
            .and_then(Self::from_uri)
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// Why an attempt failed, and whether to try again (REQUIREMENTS DLV-07).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (5xx, 408, 429, timeouts, refused connections, TLS failures, SMTP
    /// 4xx, DNS trouble).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Retrying will not help (HTTP 4xx other than 408/429, SMTP 5xx, SSRF refusal, bad URL).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl DeliveryError {
    /// True for [`DeliveryError::Permanent`].
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent(_))
    }

    /// True when the failure is our own configuration's fault (message starts with
    /// [`CONFIG_PREFIX`]: no relay, no DKIM key, relay refusing our AUTH/TLS). Such a failure
    /// says nothing about the destination, so it must never put it on the suppression list.
    pub fn is_config(&self) -> bool {
        match self {
            DeliveryError::Temporary(m) | DeliveryError::Permanent(m) => {
                m.starts_with(CONFIG_PREFIX)
            }
        }
    }
}

/// Prefix of [`DeliveryError`] messages caused by our own configuration.
pub const CONFIG_PREFIX: &str = "config:";

impl DeliveryError {
    /// The message without the variant.
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Temporary(m) | DeliveryError::Permanent(m) => m,
        }
    }
}

/// Whether and how to use STARTTLS towards the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Plain SMTP (a relay on localhost).
    Off,
    /// STARTTLS when the relay offers it (certificate still verified when used).
    #[default]
    Opportunistic,
    /// Fail unless STARTTLS succeeds.
    Required,
}

/// How to reach the SMTP relay that submits report mail.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// `host:port` (`[v6]:port` for IPv6 literals); the port defaults to 25.
    pub relay: String,
    /// STARTTLS policy.
    pub starttls: StartTls,
    /// AUTH user name (with `password_file`).
    pub username: Option<String>,
    /// File holding the AUTH password (first line, trailing whitespace removed); kept out of
    /// the configuration so the config can be world-readable.
    pub password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the relay's certificate.
    pub extra_ca: Option<PathBuf>,
    /// Per-command timeout.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Settings for `relay` with opportunistic STARTTLS, no AUTH and a 60 s timeout.
    pub fn new(relay: impl Into<String>) -> Self {
        SmtpSettings {
            relay: relay.into(),
            starttls: StartTls::Opportunistic,
            username: None,
            password_file: None,
            extra_ca: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Everything the [`Deliverer`] needs (the `[reporter]` delivery keys).
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// `From:` and envelope sender of report mail (REQUIREMENTS MAIL-16).
    pub from: String,
    /// DKIM keys (RFC 8460 §3: report mail MUST be signed).
    pub dkim: Vec<DkimKeyConfig>,
    /// The SMTP relay; `None` = mail destinations fail with a `config:` error.
    pub smtp: Option<SmtpSettings>,
    /// HTTPS client settings (timeouts, SSRF guard, extra CA, HTTP-04 opt-out).
    pub http: HttpConfig,
    /// Name servers for resolving HTTPS hosts (empty = system resolver).
    pub nameservers: Vec<SocketAddr>,
}

impl DeliverySettings {
    /// Settings with `from`, no keys, no relay, default HTTP and the system resolver.
    pub fn new(from: impl Into<String>) -> Self {
        DeliverySettings {
            from: from.into(),
            dkim: Vec::new(),
            smtp: None,
            http: HttpConfig::default(),
            nameservers: Vec::new(),
        }
    }
}

/// Why a [`Deliverer`] could not be built. Never contains key or password material.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A DKIM key could not be loaded.
    #[error(transparent)]
    Dkim(#[from] DkimError),
    /// The HTTPS client could not be built (e.g. `extra_ca`).
    #[error("HTTPS client: {0}")]
    Http(#[from] HttpError),
    /// The resolver could not be built.
    #[error("DNS resolver: {0}")]
    Dns(String),
    /// `from` is not a plain address.
    #[error("from {0:?}: not an addr-spec (local@domain)")]
    From(String),
    /// The relay settings are unusable.
    #[error("smtp_relay: {0}")]
    Smtp(String),
    /// Not called inside a tokio runtime.
    #[error("the deliverer must be built inside a tokio runtime")]
    NoRuntime,
}

/// A whole SMTP transaction may take this many per-command timeouts.
pub const SMTP_TOTAL_TIMEOUT_FACTOR: u32 = 5;

/// Largest HTTP response body read (the body is only logged).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Makes delivery attempts (built once, shared by all sends; cheap to share behind an `Arc`).
pub struct Deliverer {
    from: String,
    signer: Signer,
    http: HttpClient,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    smtp_total_timeout: Duration,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("from", &self.from)
            .field("signer", &self.signer)
            .field("smtp", &self.smtp.is_some())
            .finish_non_exhaustive()
    }
}

/// Splits `host:port`, `[v6]:port`, `host` (port 25).
fn split_relay(relay: &str) -> Result<(String, u16), String> {
    let relay = relay.trim();
    let (host, port) = if let Some(rest) = relay.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{relay:?}: missing ']'"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return Err(format!("{relay:?}: junk after ']'")),
        };
        (h.to_string(), port)
    } else {
        match relay.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return Err(format!("{relay:?}: write IPv6 addresses as [addr]:port")),
            None => (relay.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{relay:?}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{relay:?}: bad port {p:?}"))?,
        None => 25,
    };
    Ok((host, port))
}

fn read_password(path: &std::path::Path) -> Result<String, SetupError> {
    use std::io::Read as _;
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| {
        SetupError::Smtp(format!("password_file {shown}: cannot read: {}", e.kind()))
    })?;
    let mut buf = Vec::new();
    f.take(4097).read_to_end(&mut buf).map_err(|e| {
        SetupError::Smtp(format!("password_file {shown}: cannot read: {}", e.kind()))
    })?;
    if buf.len() > 4096 {
        return Err(SetupError::Smtp(format!(
            "password_file {shown}: larger than 4096 bytes"
        )));
    }
    let text = String::from_utf8(buf)
        .map_err(|_| SetupError::Smtp(format!("password_file {shown}: not UTF-8")))?;
    let pw = text.lines().next().unwrap_or("").trim_end().to_string();
    if pw.is_empty() {
        return Err(SetupError::Smtp(format!("password_file {shown}: empty")));
    }
    Ok(pw)
}

fn build_smtp(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, SetupError> {
    let (host, port) = split_relay(&s.relay).map_err(SetupError::Smtp)?;
    let tls = match s.starttls {
        StartTls::Off => Tls::None,
        mode => {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(ca) = &s.extra_ca {
                let pem = std::fs::read(ca).map_err(|e| {
                    SetupError::Smtp(format!(
                        "extra_ca {}: cannot read: {}",
                        ca.display(),
                        e.kind()
                    ))
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| SetupError::Smtp(format!("extra_ca {}: {e}", ca.display())))?;
                b = b.add_root_certificate(cert);
            }
            let params = b
                .build_rustls()
                .map_err(|e| SetupError::Smtp(format!("TLS parameters: {e}")))?;
            if mode == StartTls::Required {
                Tls::Required(params)
            } else {
                Tls::Opportunistic(params)
            }
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(s.timeout));
    match (&s.username, &s.password_file) {
        (Some(user), Some(pw)) => {
            b = b.credentials(Credentials::new(user.clone(), read_password(pw)?));
        }
        (None, None) => {}
        _ => {
            return Err(SetupError::Smtp(
                "username and password_file go together".into(),
            ));
        }
    }
    Ok(b.build())
}

impl Deliverer {
    /// Loads the DKIM keys, reads the relay password and builds the clients. Must be called
    /// inside a tokio runtime (the resolver and the SMTP pool spawn tasks).
    pub fn new(settings: &DeliverySettings) -> Result<Self, SetupError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SetupError::NoRuntime);
        }
        if !mail::is_plain_address(&settings.from) {
            return Err(SetupError::From(settings.from.chars().take(64).collect()));
        }
        let signer = Signer::load(&settings.dkim)?;
        let dns = Dns::new(&settings.nameservers).map_err(|e| SetupError::Dns(e.to_string()))?;
        let http = HttpClient::new(&settings.http, dns)?;
        let smtp = settings.smtp.as_ref().map(build_smtp).transpose()?;
        let smtp_total_timeout = settings
            .smtp
            .as_ref()
            .map_or(Duration::from_secs(300), |s| {
                s.timeout.saturating_mul(SMTP_TOTAL_TIMEOUT_FACTOR)
            });
        Ok(Deliverer {
            from: settings.from.clone(),
            signer,
            http,
            smtp,
            smtp_total_timeout,
        })
    }

    /// The DKIM signer (for `dns_records` / `check_alignment` at start-up).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// One attempt to hand `r` to `d`. On success, a short detail for the log ("HTTP 200",
    /// "250 2.0.0 queued"). See the module docs for how failures are classified.
    pub async fn deliver(
        &self,
        r: &ReportToSend,
        d: &Destination,
    ) -> Result<String, DeliveryError> {
        let res = match d {
            Destination::Https(url) => self.post(r, url).await,
            Destination::Mailto(addr) => self.mail(r, addr).await,
        };
        match &res {
            Ok(detail) => tracing::debug!(
                policy_domain = %r.policy_domain, destination = %d, %detail, "report accepted"
            ),
            Err(e) => tracing::debug!(
                policy_domain = %r.policy_domain, destination = %d, error = %e,
                "report not accepted"
            ),
        }
        res
    }

    /// HTTPS POST of the gzip body (RFC 8460 §5.4; REQUIREMENTS HTTP-01, HTTP-02).
    async fn post(&self, r: &ReportToSend, url: &str) -> Result<String, DeliveryError> {
        // HTTP-02: the raw gzip bytes, Content-Type application/tlsrpt+gzip, no
        // Content-Encoding.
        let res = self
            .http
            .post(
                url,
                mail::GZIP_MEDIA_TYPE,
                r.gzip.clone(),
                MAX_RESPONSE_BODY,
            )
            .await;
        match res {
            Ok(f) => classify_status(f.status, f.location.as_deref()),
            Err(e) => Err(classify_http_error(&e)),
        }
    }

    /// Builds, signs and submits the report message (RFC 8460 §5.3, §3).
    async fn mail(&self, r: &ReportToSend, to: &str) -> Result<String, DeliveryError> {
        let Some(smtp) = &self.smtp else {
            return Err(DeliveryError::Permanent(format!(
                "{CONFIG_PREFIX} no smtp_relay configured for mailto: destinations"
            )));
        };
        if self.signer.is_empty() {
            // RFC 8460 §3: unsigned report mail MUST be ignored by receivers; don't send it.
            return Err(DeliveryError::Permanent(format!(
                "{CONFIG_PREFIX} no DKIM key configured; report mail must be DKIM-signed \
                 (RFC 8460 §3)"
            )));
        }
        if !mail::is_plain_address(to) {
            return Err(DeliveryError::Permanent(format!(
                "mailto address {:?} is not a plain addr-spec",
                to.chars().take(64).collect::<String>()
            )));
        }
        let message = mail::build_message(r, &self.from, to, jiff::Timestamp::now()).map_err(
            |e| match e {
                // The destination's fault.
                mail::MailError::Address { field: "To", .. } => {
                    DeliveryError::Permanent(format!("cannot build the message: {e}"))
                }
                // Ours: the report or the From address (e.g. no contact-info, MAIL-05).
                _ => DeliveryError::Permanent(format!(
                    "{CONFIG_PREFIX} cannot build the message: {e}"
                )),
            },
        )?;
        let signed = self
            .signer
            .sign(&message)
            .map_err(|e| DeliveryError::Temporary(e.to_string()))?;
        let envelope = envelope(&self.from, to)?;
        // lettre's timeout is per command; a relay that drips bytes could still hold an
        // attempt for long, so the whole transaction is bounded too.
        let sent = tokio::time::timeout(self.smtp_total_timeout, smtp.send_raw(&envelope, &signed))
            .await
            .map_err(|_| {
                DeliveryError::Temporary(format!(
                    "SMTP relay: no completion within {} s",
                    self.smtp_total_timeout.as_secs()
                ))
            })?;
        match sent {
            Ok(resp) => {
                let line = resp.message().next().unwrap_or_default();
                Ok(format!("{} {line}", resp.code()).trim_end().to_string())
            }
            Err(e) => Err(classify_smtp_error(&e)),
        }
    }
}

fn envelope(from: &str, to: &str) -> Result<Envelope, DeliveryError> {
    let from = from
        .parse::<lettre::Address>()
        .map_err(|e| DeliveryError::Permanent(format!("{CONFIG_PREFIX} from address: {e}")))?;
    let to = to
        .parse::<lettre::Address>()
        .map_err(|e| DeliveryError::Permanent(format!("mailto address {to:?}: {e}")))?;
    Envelope::new(Some(from), vec![to])
        .map_err(|e| DeliveryError::Permanent(format!("envelope: {e}")))
}

/// Classifies an HTTP status (REQUIREMENTS HTTP-03, HTTP-05, DLV-07).
pub fn classify_status(status: u16, location: Option<&str>) -> Result<String, DeliveryError> {
    match status {
        200..=299 => Ok(format!("HTTP {status}")),
        300..=399 => Err(DeliveryError::Permanent(format!(
            "HTTP {status}: redirect not followed{} (RFC 8460 is silent on redirects; \
             301/302/303 would turn the POST into a GET, REQUIREMENTS HTTP-05)",
            location
                .map(|l| format!(" (Location: {l})"))
                .unwrap_or_default()
        ))),
        408 | 429 => Err(DeliveryError::Temporary(format!("HTTP {status}"))),
        400..=499 => Err(DeliveryError::Permanent(format!("HTTP {status}"))),
        _ => Err(DeliveryError::Temporary(format!("HTTP {status}"))),
    }
}

/// Classifies a transport failure of the HTTPS client (see the module docs).
pub fn classify_http_error(e: &HttpError) -> DeliveryError {
    let msg = e.to_string();
    match e {
        HttpError::BadUrl { .. }
        | HttpError::NotHttps { .. }
        | HttpError::ForbiddenTarget { .. }
        | HttpError::Redirect(_) => DeliveryError::Permanent(msg),
        _ => DeliveryError::Temporary(msg),
    }
}

/// Classifies an SMTP failure: 5xx permanent, everything else temporary (DLV-07).
pub fn classify_smtp_error(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    let code = e.status().map(|c| c.to_string());
    // 530/534/535/538: the relay wants (different) authentication or TLS from *us*; a
    // configuration problem on our side, not a verdict on the destination, so retry (and
    // never suppress the destination for it). Decision; RFC 4954 §6 codes.
    if matches!(code.as_deref(), Some("530" | "534" | "535" | "538")) {
        return DeliveryError::Temporary(format!(
            "{CONFIG_PREFIX} SMTP relay refused our authentication/TLS: {msg}"
        ));
    }
    if e.is_permanent() {
        DeliveryError::Permanent(format!("SMTP relay: {msg}"))
    } else {
        DeliveryError::Temporary(format!("SMTP relay: {msg}"))
    }
}

/// The delivery keys of `[reporter]`, as they appear in the configuration file (serde), for
/// the config loader to embed (e.g. with `#[serde(flatten)]`). Unknown keys are left to the
/// embedding struct.
///
/// ```toml
/// [reporter]
/// from = "tlsrpt-noreply@example.org"
/// dkim = [{ domain = "example.org", selector = "tlsrpt", key = "/etc/tlsrpt/dkim.pem" }]
/// smtp_relay = "127.0.0.1:25"
/// smtp_starttls = "opportunistic"   # "off" | "opportunistic" | "required"
/// smtp_username = "reporter"        # optional, with smtp_password_file
/// smtp_password_file = "/etc/tlsrpt/smtp.pw"
/// nameservers = ["127.0.0.1:5353"]  # optional
/// allow_private_targets = false     # tests only
/// extra_ca = "/path/to/ca.pem"      # optional, HTTPS and SMTP
/// accept_invalid_certs = false      # RFC 8460 §3 / HTTP-04: POST despite certificate errors
/// http_timeout_secs = 60
/// [[reporter.rules]]
/// domain = "example.com"
/// action = "rewrite"
/// to = "mailto:tlsrpt@example.net"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// From / envelope sender of report mail.
    pub from: Option<String>,
    /// DKIM keys.
    pub dkim: Vec<DkimKeyConfig>,
    /// `host:port` of the SMTP relay; without it `mailto:` destinations fail.
    pub smtp_relay: Option<String>,
    /// STARTTLS policy towards the relay.
    pub smtp_starttls: StartTls,
    /// AUTH user.
    pub smtp_username: Option<String>,
    /// AUTH password file.
    pub smtp_password_file: Option<PathBuf>,
    /// SMTP per-command timeout in seconds (default 60).
    pub smtp_timeout_secs: Option<u64>,
    /// Name servers instead of the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// Turn the SSRF guard off (tests, private deployments).
    pub allow_private_targets: bool,
    /// Extra CA certificates (PEM) for HTTPS targets and the relay.
    pub extra_ca: Option<PathBuf>,
    /// POST despite certificate errors (RFC 8460 §3, REQUIREMENTS HTTP-04; logged).
    pub accept_invalid_certs: bool,
    /// Whole-request HTTPS timeout in seconds (default 60; HTTP-05 recommends 30-60).
    pub http_timeout_secs: Option<u64>,
    /// Destination rules (see [`crate::policy`]).
    pub rules: Vec<crate::policy::DestinationRule>,
}

impl DeliveryConfig {
    /// The [`DeliverySettings`]; `fallback_from` (e.g. the contact-info address) is used when
    /// `from` is not set. Errors name the key.
    pub fn settings(&self, fallback_from: Option<&str>) -> Result<DeliverySettings, String> {
        let from = self
            .from
            .as_deref()
            .or(fallback_from)
            .ok_or("[reporter] from: required to send report mail")?;
        if !mail::is_plain_address(from) {
            return Err(format!("[reporter] from: {from:?} is not an addr-spec"));
        }
        let secs = |key: &str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(format!("[reporter] {key}: must be at least 1")),
            Some(n) => Ok(Duration::from_secs(n)),
            None => Ok(Duration::from_secs(default)),
        };
        let smtp = match &self.smtp_relay {
            Some(relay) => {
                split_relay(relay).map_err(|e| format!("[reporter] smtp_relay: {e}"))?;
                if self.smtp_username.is_some() != self.smtp_password_file.is_some() {
                    return Err(
                        "[reporter] smtp_username and smtp_password_file go together".into(),
                    );
                }
                Some(SmtpSettings {
                    relay: relay.clone(),
                    starttls: self.smtp_starttls,
                    username: self.smtp_username.clone(),
                    password_file: self.smtp_password_file.clone(),
                    extra_ca: self.extra_ca.clone(),
                    timeout: secs("smtp_timeout_secs", self.smtp_timeout_secs, 60)?,
                })
            }
            None => None,
        };
        let http = HttpConfig {
            allow_private_targets: self.allow_private_targets,
            extra_ca: self.extra_ca.clone(),
            accept_invalid_certs: self.accept_invalid_certs,
            timeout: secs("http_timeout_secs", self.http_timeout_secs, 60)?,
            ..HttpConfig::default()
        };
        Ok(DeliverySettings {
            from: from.to_string(),
            dkim: self.dkim.clone(),
            smtp,
            http,
            nameservers: self.nameservers.clone(),
        })
    }

    /// The checked destination rules.
    pub fn policy(&self) -> Result<crate::policy::DestinationPolicy, crate::policy::PolicyError> {
        crate::policy::DestinationPolicy::new(&self.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses() {
        assert_eq!(
            split_relay("127.0.0.1:2525").unwrap(),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(
            split_relay("mail.example").unwrap(),
            ("mail.example".into(), 25)
        );
        assert_eq!(split_relay("[::1]:587").unwrap(), ("::1".into(), 587));
        assert_eq!(split_relay("[::1]").unwrap(), ("::1".into(), 25));
        for bad in ["", ":25", "::1", "h:0", "h:x", "[::1", "[::1]x"] {
            assert!(split_relay(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_03_dlv_07_status_classes() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify_status(s, None), Ok(format!("HTTP {s}")));
        }
        for s in [408, 429, 500, 502, 503, 504, 100, 600] {
            assert!(
                matches!(classify_status(s, None), Err(DeliveryError::Temporary(_))),
                "{s}"
            );
        }
        for s in [
            400, 401, 403, 404, 405, 410, 413, 415, 301, 302, 303, 307, 308,
        ] {
            assert!(
                matches!(classify_status(s, None), Err(DeliveryError::Permanent(_))),
                "{s}"
            );
        }
        let e = classify_status(301, Some("https://x.example/new")).unwrap_err();
        assert!(e.to_string().contains("https://x.example/new"), "{e}");
    }

    #[test]
    fn config_from_toml() {
        let c: DeliveryConfig = toml::from_str(
            r#"
            from = "tlsrpt-noreply@example.org"
            dkim = [{ domain = "example.org", selector = "tlsrpt", key = "/etc/tlsrpt/dkim.pem" }]
            smtp_relay = "127.0.0.1:25"
            smtp_starttls = "required"
            nameservers = ["127.0.0.1:5353"]
            allow_private_targets = true
            extra_ca = "/ca.pem"
            http_timeout_secs = 30
            [[rules]]
            domain = "example.com"
            action = "suppress"
            "#,
        )
        .unwrap();
        let s = c.settings(None).unwrap();
        assert_eq!(s.from, "tlsrpt-noreply@example.org");
        assert_eq!(s.dkim[0].selector, "tlsrpt");
        let smtp = s.smtp.unwrap();
        assert_eq!(smtp.starttls, StartTls::Required);
        assert_eq!(smtp.extra_ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(s.nameservers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert!(s.http.allow_private_targets);
        assert_eq!(s.http.timeout, Duration::from_secs(30));
        assert!(c.policy().is_ok());

        let d = DeliveryConfig::default();
        assert!(d.settings(None).unwrap_err().contains("from"));
        let s = d.settings(Some("tlsrpt@example.org")).unwrap();
        assert!(s.smtp.is_none());
        assert!(!s.http.allow_private_targets, "SSRF guard on by default");
        let bad = DeliveryConfig {
            smtp_relay: Some("h:x".into()),
            ..DeliveryConfig::default()
        };
        assert!(
            bad.settings(Some("a@b"))
                .unwrap_err()
                .contains("smtp_relay")
        );
        let bad = DeliveryConfig {
            http_timeout_secs: Some(0),
            ..DeliveryConfig::default()
        };
        assert!(
            bad.settings(Some("a@b"))
                .unwrap_err()
                .contains("http_timeout_secs")
        );
    }

    #[test]
    fn destinations_round_trip() {
        let d = Destination::parse("mailto:tlsrpt@example.com").unwrap();
        assert_eq!(d, Destination::Mailto("tlsrpt@example.com".into()));
        assert_eq!(Destination::parse(&d.to_uri()), Some(d));
        let h = Destination::parse("https://r.example/v1").unwrap();
        assert_eq!(h, Destination::Https("https://r.example/v1".into()));
        assert_eq!(Destination::parse("http://r.example/"), None);
    }
}
