//! The JSON API on the web listener (issue 5 item 6): received reports, read-only.
//!
//! * `GET /api/v1/reports?policy_domain=&organization=&from=&to=&status=` → an array of
//!   summaries (`id`, `organization_name`, `report_id`, `start`, `end`, `policy_domains`,
//!   `successful_sessions`, `failed_sessions`, `deviations`, `dkim`, `received_via`).
//!   `from`/`to` are UTC days `YYYY-MM-DD` (inclusive); `status` is `stored` (default),
//!   `rejected` (reports kept but ignored, e.g. failed DKIM, REQUIREMENTS RCV-01) or `all`;
//!   `limit` (default 100, at most 1000) and `offset` page through the list, newest first.
//! * `GET /api/v1/reports/{id}` → the stored report (strict RFC 8460 JSON), its deviations,
//!   failure details and metadata.
//! * `GET /api/v1/reports/{id}/raw` → the original bytes as received, with their media type
//!   (`application/tlsrpt+gzip`, `application/tlsrpt+json`, or `message/rfc822` for mail).
//!
//! Report content is untrusted (REQUIREMENTS RCV-08, SEC-02): every string goes out through
//! serde_json (so `<script>` stays a JSON string), every answer carries
//! `X-Content-Type-Options: nosniff`, and raw bytes are sent as an attachment, so no browser
//! ever renders report content as HTML.
//!
//! Access: a bearer token (`Authorization: Bearer <token>`, the token read from
//! `[web] token_file`). [`check_listen`] refuses a listener on a non-loopback address without
//! a token: the reports name third-party IP addresses and hosts (REQUIREMENTS SEC-08). On
//! loopback the token is optional; when one is configured it is always required.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use tlsrpt_store::{ReceivedQuery, StatusFilter, Store, StoreError};

/// Settings of the API.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// The bearer token every request must carry; `None`: no authentication (allowed on
    /// loopback only, see [`check_listen`]).
    pub token: Option<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("WebConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Shortest accepted token: 16 characters, so it cannot be guessed online.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted token file.
const MAX_TOKEN_FILE: u64 = 4096;

/// Why the web listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// Non-loopback listener without a token.
    #[error(
        "[web] listen = {0} is not a loopback address: set [web] token_file so the API requires a bearer token"
    )]
    TokenRequired(SocketAddr),
    /// The token file could not be read or holds no usable token.
    #[error("[web] token_file {path}: {message}")]
    TokenFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Checks that `listen` may run with `cfg`: any address with a token, loopback without.
pub fn check_listen(listen: SocketAddr, cfg: &WebConfig) -> Result<(), WebConfigError> {
    if cfg.token.is_none() && !listen.ip().is_loopback() {
        return Err(WebConfigError::TokenRequired(listen));
    }
    Ok(())
}

/// Reads a token file: the first line, trimmed; at least [`MIN_TOKEN_LEN`] characters of
/// visible ASCII (it is sent in an HTTP header).
pub fn read_token_file(path: &Path) -> Result<String, WebConfigError> {
    let err = |message: String| WebConfigError::TokenFile {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_TOKEN_FILE {
        return Err(err(format!(
            "{} bytes; a token file holds one line of at most {MAX_TOKEN_FILE} bytes",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.len() < MIN_TOKEN_LEN {
        return Err(err(format!(
            "the token must be at least {MIN_TOKEN_LEN} characters"
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            "the token must be visible ASCII without spaces".to_owned()
        ));
    }
    Ok(token)
}

struct Api {
    store: Arc<Store>,
    token: Option<String>,
}

/// The API router: the three `GET` routes above under `/api/v1` (other methods: 405), a JSON
/// 404 for anything else under `/api/`, all bearer-token checked when `cfg.token` is set.
/// It has no fallback, so it can be merged into the web UI's router.
pub fn api_router(store: Arc<Store>, cfg: WebConfig) -> Router {
    let api = Arc::new(Api {
        store,
        token: cfg.token,
    });
    Router::new()
        .route("/api/v1/reports", get(list))
        .route("/api/v1/reports/{id}", get(detail))
        .route("/api/v1/reports/{id}/raw", get(raw))
        // A JSON 404 for the rest of /api/ (a route, not a fallback, so this router can be
        // merged with the web UI's, which may have its own fallback).
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        // `layer`, not `route_layer`: the 404s above need the token too, so an unauthenticated
        // client learns nothing about which routes exist.
        .layer(middleware::from_fn_with_state(api.clone(), auth))
        .with_state(api)
}

/// A JSON response (`application/json`, `nosniff`, `no-store`), shared with the HTTP
/// endpoint. Report content is untrusted (REQUIREMENTS RCV-08): serde escapes every string,
/// and [`HtmlSafe`] also writes `<`, `>`, `&`, `'`, U+2028 and U+2029 as `\uXXXX`, so the
/// text holds no markup even if someone pastes it into a page; `nosniff` stops a browser from
/// ever treating it as HTML. A JSON parser reads the original characters back unchanged.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut text = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut text, HtmlSafe);
    if body.serialize(&mut ser).is_err() {
        text = br#"{"error":"internal error: response not serialisable"}"#.to_vec();
    }
    let mut resp = (status, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Compact JSON with the HTML-significant characters of strings escaped as `\uXXXX` (as Go's
/// `encoding/json` does).
pub(crate) struct HtmlSafe;

impl serde_json::ser::Formatter for HtmlSafe {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> std::io::Result<()>
    where
        W: ?Sized + std::io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\'' => b"\\u0027",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc)?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    json_response(status, &ErrorBody { error: msg.into() })
}

fn store_error(e: &StoreError) -> Response {
    tracing::error!(error = %e, "API: store error");
    if e.is_transient() {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable; retry later",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, "store error")
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such API route")
}

/// Constant-time comparison, so response timing does not reveal how much of a guess matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let ok = given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()));
        if !ok {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tlsrpt\""),
            );
            return r;
        }
    }
    next.run(req).await
}

/// Query parameters of `GET /api/v1/reports`; unknown ones are an error, so a typo does not
/// silently list everything.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    policy_domain: Option<String>,
    organization: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// A UTC day `YYYY-MM-DD`, or the 400 message.
fn parse_day(name: &str, v: Option<&str>) -> Result<Option<jiff::civil::Date>, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<jiff::civil::Date>()
            .map(Some)
            .map_err(|_| format!("{name}: expected a UTC day YYYY-MM-DD, got {s:?}")),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn list(
    State(api): State<Arc<Api>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (from, to) = match (
        parse_day("from", p.from.as_deref()),
        parse_day("to", p.to.as_deref()),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let status = match non_empty(p.status).as_deref() {
        None | Some("stored") => StatusFilter::Stored,
        Some("rejected") => StatusFilter::Rejected,
        Some("all") => StatusFilter::All,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status: expected stored, rejected or all, got {other:?}"),
            );
        }
    };
    let q = ReceivedQuery {
        policy_domain: non_empty(p.policy_domain),
        organization: non_empty(p.organization),
        from,
        to,
        status,
        limit: p.limit,
        offset: p.offset.unwrap_or(0),
    };
    match api.store.list_received(&q).await {
        Ok(rows) => json_response(StatusCode::OK, &rows),
        Err(e) => store_error(&e),
    }
}

fn parse_id(id: Result<UrlPath<i64>, PathRejection>) -> Option<i64> {
    id.ok().map(|UrlPath(id)| id)
}

fn bad_id() -> Response {
    error(StatusCode::BAD_REQUEST, "id: expected a report number")
}

async fn detail(State(api): State<Arc<Api>>, id: Result<UrlPath<i64>, PathRejection>) -> Response {
    let Some(id) = parse_id(id) else {
        return bad_id();
    };
    match api.store.get_received(id).await {
        Ok(Some(d)) => json_response(StatusCode::OK, &d),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no report with id {id}")),
        Err(e) => store_error(&e),
    }
}

async fn raw(State(api): State<Arc<Api>>, id: Result<UrlPath<i64>, PathRejection>) -> Response {
    let Some(id) = parse_id(id) else {
        return bad_id();
    };
    match api.store.get_received_raw(id).await {
        Ok(Some(bytes)) => {
            let (ctype, ext) = raw_media_type(&bytes);
            let mut r = (StatusCode::OK, bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            // An attachment is saved, never rendered (RCV-08).
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"report-{id}.{ext}\""))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no report with id {id}")),
        Err(e) => store_error(&e),
    }
}

/// The media type of stored original bytes: gzip by its magic, JSON when it starts with `{`
/// (after optional whitespace or a BOM), otherwise a mail message.
fn raw_media_type(bytes: &[u8]) -> (&'static str, &'static str) {
    if tlsrpt_core::read::is_gzip(bytes) {
        return ("application/tlsrpt+gzip", "json.gz");
    }
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => ("application/tlsrpt+json", "json"),
        _ => ("message/rfc822", "eml"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_token() {
        let open: SocketAddr = "0.0.0.0:8461".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8461".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8461".parse().unwrap();
        assert!(check_listen(open, &WebConfig::default()).is_err());
        assert!(check_listen(lo, &WebConfig::default()).is_ok());
        assert!(check_listen(lo6, &WebConfig::default()).is_ok());
        let with = WebConfig {
            token: Some("0123456789abcdef".into()),
        };
        assert!(check_listen(open, &with).is_ok());
    }

    #[test]
    fn token_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(read_token_file(&p).is_err());
        std::fs::write(&p, "  0123456789abcdefXYZ \nsecond line ignored\n").unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "0123456789abcdefXYZ");
        assert!(read_token_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn secret_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn rcv_08_json_output_has_no_markup() {
        let v = serde_json::json!({"o": "<script>alert('x')</script> & \u{2028}ü"});
        let r = json_response(StatusCode::OK, &v);
        let mut text = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut text, HtmlSafe);
        v.serialize(&mut ser).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        assert!(text.contains("\\u003cscript\\u003e"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn raw_types() {
        assert_eq!(raw_media_type(b"\x1f\x8b\x08").0, "application/tlsrpt+gzip");
        assert_eq!(raw_media_type(b" \n{\"a\":1}").0, "application/tlsrpt+json");
        assert_eq!(raw_media_type(b"From: a@b\r\n\r\n{").0, "message/rfc822");
    }
}
