//! # tlsrpt-net
//!
//! The network layer shared by the reporter, the receiver and `tlsrpt check`:
//!
//! * [`resolver`]: TXT/MX/TLSA lookups through hickory with outcomes that keep NXDOMAIN and
//!   NODATA (no record) apart from SERVFAIL and timeouts (try later), and `_smtp._tls`
//!   destination discovery using the core's RRset rules.
//! * [`http`]: the one way we build HTTPS clients: ring-only rustls, timeouts, a redirect
//!   policy for POSTs, optional extra CA, and an SSRF guard that checks the address actually
//!   connected to.
//! * [`check`]: the live domain check behind `tlsrpt check <domain>`.
//!
//! Call [`install_crypto`] before building clients (the binary does it at start-up).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod check;
pub mod http;
pub mod resolver;

/// Installs rustls' ring provider as the process default (a second call is a no-op). Without
/// a default provider rustls panics when reqwest builds its TLS configuration.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
