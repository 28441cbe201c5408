//! A test CA (rcgen) and an HTTPS server on 127.0.0.1 whose certificate it signs.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use axum::{Router, routing::get};
//! use tlsrpt_testkit::https::HttpsServer;
//! let app = Router::new().route("/.well-known/mta-sts.txt", get(|| async { "version: STSv1\n" }));
//! let srv = HttpsServer::start(app, &["mta-sts.example.com"]).await?;
//! let ca_file = srv.ca().write_pem()?; // give its path to the client as extra_ca
//! let _url = srv.url("mta-sts.example.com", "/.well-known/mta-sts.txt");
//! # drop(ca_file); Ok(()) }
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::task::JoinHandle;

/// A certificate authority made up for one test.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// Generates a fresh CA key and self-signed CA certificate.
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tlsrpt test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate in PEM, for the client's trust store.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA PEM to a temporary file (deleted when the handle drops), for options
    /// that take a path such as `extra_ca` / `--extra-ca`.
    pub fn write_pem(&self) -> anyhow::Result<tempfile::NamedTempFile> {
        let mut f = tempfile::Builder::new().suffix(".pem").tempfile()?;
        f.write_all(self.pem.as_bytes())?;
        f.flush()?;
        Ok(f)
    }

    /// Issues a leaf certificate for these names (DNS names or IP addresses).
    pub fn leaf(
        &self,
        names: &[&str],
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tlsrpt test server");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone()], key_der))
    }

    /// A rustls server configuration presenting a leaf for `names` (ALPN h2 and http/1.1).
    pub fn server_config(&self, names: &[&str]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        crate::install_crypto();
        let (chain, key) = self.leaf(names)?;
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// An HTTPS server on 127.0.0.1 serving an axum `Router`. Stops when dropped.
pub struct HttpsServer {
    addr: SocketAddr,
    ca: Arc<TestCa>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HttpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpsServer {
    /// Makes a new CA and serves `router` with a certificate for `names`.
    pub async fn start(router: axum::Router, names: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_ca(Arc::new(TestCa::new()?), router, names).await
    }

    /// Serves `router` with a certificate for `names` signed by `ca`.
    pub async fn start_with_ca(
        ca: Arc<TestCa>,
        router: axum::Router,
        names: &[&str],
    ) -> anyhow::Result<Self> {
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(names)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _peer)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                tokio::spawn(async move {
                    // A client that rejects our certificate aborts the handshake: fine.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = TowerToHyperService::new(router);
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(HttpsServer { addr, ca, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA that signed its certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// `https://{host}:{port}{path}`: the host must resolve to 127.0.0.1 for the client
    /// (through the test DNS server) and be one of the certificate's names.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
