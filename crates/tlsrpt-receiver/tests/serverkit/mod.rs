//! Shared set-up for the HTTP endpoint and API tests (tests/http.rs, tests/api.rs,
//! tests/hostile.rs): the real servers on 127.0.0.1:0 with a fresh SQLite store, a real HTTP
//! client, a raw HTTP/1.1 client for malformed requests, and the sample reports.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tlsrpt_core::read::Limits;
use tlsrpt_receiver::api::{self, WebConfig};
use tlsrpt_receiver::dkim::{DkimConfig, DkimPolicy, DkimVerifier};
use tlsrpt_receiver::http::{self, HttpConfig};
use tlsrpt_receiver::pipeline::Pipeline;
use tlsrpt_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// The receiver and the API, running.
pub struct Servers {
    /// The report endpoint.
    pub rcv: SocketAddr,
    /// The web listener (API).
    pub web: SocketAddr,
    /// The store both use.
    pub store: Arc<Store>,
    pub path: String,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Servers {
    /// `http://127.0.0.1:port/tlsrpt`
    pub fn url(&self) -> String {
        format!("http://{}{}", self.rcv, self.path)
    }

    /// `http://127.0.0.1:port{p}` on the web listener.
    pub fn api(&self, p: &str) -> String {
        format!("http://{}{}", self.web, p)
    }

    /// Stops both servers and waits for them.
    pub async fn stop(mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// A fresh SQLite store in a temporary folder.
pub async fn temp_store() -> (Arc<Store>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    (Arc::new(store), dir, url)
}

pub fn pipeline(store: Arc<Store>) -> Arc<Pipeline> {
    let dkim = DkimVerifier::new(&DkimConfig {
        policy: DkimPolicy::Off,
        ..DkimConfig::default()
    })
    .unwrap();
    Arc::new(Pipeline::new(store, Limits::default(), dkim))
}

/// Both servers on a fresh store, plain HTTP.
pub async fn start(cfg: HttpConfig) -> Servers {
    let (store, dir, _) = temp_store().await;
    let mut s = start_on(store, cfg, WebConfig::default(), None).await;
    s._dir = Some(dir);
    s
}

/// Both servers on `store`; the receiver with TLS when `tls` is set.
pub async fn start_on(
    store: Arc<Store>,
    cfg: HttpConfig,
    web: WebConfig,
    tls: Option<(PathBuf, PathBuf)>,
) -> Servers {
    let path = cfg.path.clone();
    let rcv_router = http::router(pipeline(store.clone()), cfg);
    let api_router = api::api_router(store.clone(), web);
    let rcv_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (rcv, web) = (rcv_l.local_addr().unwrap(), web_l.local_addr().unwrap());
    let (s1, r1) = oneshot::channel::<()>();
    let (s2, r2) = oneshot::channel::<()>();
    let t1 = tokio::spawn(async move {
        http::serve(rcv_l, rcv_router, tls, async {
            let _ = r1.await;
        })
        .await
        .unwrap();
    });
    let t2 = tokio::spawn(async move {
        http::serve(web_l, api_router, None, async {
            let _ = r2.await;
        })
        .await
        .unwrap();
    });
    Servers {
        rcv,
        web,
        store,
        path,
        stops: vec![s1, s2],
        tasks: vec![t1, t2],
        _dir: None,
    }
}

/// A config with the rate limit off (tests send many requests from one address).
pub fn unlimited() -> HttpConfig {
    HttpConfig {
        rate_per_minute: 0,
        ..HttpConfig::default()
    }
}

pub fn client() -> reqwest::Client {
    tlsrpt_testkit::install_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// ../../../shared/testdata/reports from this crate.
pub fn reports_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/reports")
}

/// Every .json and .json.gz sample, sorted (rpt03.json, broken on purpose, included).
pub fn report_files() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                if n.ends_with(".json") || n.ends_with(".json.gz") {
                    out.push(p);
                }
            }
        }
    }
    let mut v = Vec::new();
    walk(&reports_dir(), &mut v);
    v.sort();
    assert!(
        v.len() >= 14,
        "sample reports not found in {}",
        reports_dir().display()
    );
    v
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A small valid report with this report-id and organization-name.
pub fn report_json(org: &str, report_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "organization-name": org,
        "date-range": {"start-datetime": "2026-11-27T00:00:00Z", "end-datetime": "2026-11-27T23:59:59Z"},
        "contact-info": "tlsrpt@sender.example",
        "report-id": report_id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"],
                       "policy-domain": "example.com", "mx-host": ["mx.example.com"]},
            "summary": {"total-successful-session-count": 10, "total-failure-session-count": 2},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "198.51.100.7",
                                 "receiving-ip": "203.0.113.9", "receiving-mx-hostname": "mx.example.com",
                                 "failed-session-count": 2}]
        }]
    }))
    .unwrap()
}

/// An answer read by [`raw_request`].
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `head` (the request line and headers, without the blank line) and `body` over a
/// raw TCP connection with `Connection: close`, and reads the answer until the server closes.
/// Write errors after the headers are ignored (the server may answer early and close).
pub async fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> RawAnswer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    read_answer(&mut s).await
}

/// Reads one HTTP/1.1 answer until EOF (the request said `Connection: close`).
pub async fn read_answer(s: &mut tokio::net::TcpStream) -> RawAnswer {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    RawAnswer { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
