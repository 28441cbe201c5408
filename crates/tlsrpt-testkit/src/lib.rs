//! # tlsrpt-testkit
//!
//! Real servers on 127.0.0.1 for the network tests: nothing here touches the internet, and
//! nothing uses the system resolver.
//!
//! * [`dns::DnsServer`]: an authoritative DNS server (hickory-server) on UDP and TCP, with
//!   zones built from simple records, and names that answer SERVFAIL or never answer.
//! * [`https::TestCa`] and [`https::HttpsServer`]: a CA generated in the test (rcgen) and an
//!   HTTPS server (axum over tokio-rustls) whose certificate it signs, so clients can trust
//!   exactly that CA.
//! * [`smtp::SmtpSink`]: an SMTP server that keeps what it receives, with optional STARTTLS
//!   (test CA), AUTH and scripted replies (e.g. 451 first, then 250).
//!
//! Test-only: `publish = false`, used as a dev-dependency. Errors are `anyhow` because a
//! failing set-up should just fail the test with a message.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dns;
pub mod https;
pub mod smtp;

/// Re-exported so tests can build routes without their own axum dependency.
pub use axum;

/// Installs rustls' ring provider as the process default. Safe to call many times: a second
/// install fails and is ignored. Call it before building any TLS client or server, or rustls
/// panics when it cannot pick a provider.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
