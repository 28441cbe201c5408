//! # tlsrpt-receiver
//!
//! The receiving domain's side of SMTP TLS Reporting (RFC 8460): every intake (the HTTPS
//! endpoint, `tlsrpt ingest` from an MTA pipe or a maildir) goes through one
//! [`pipeline::Pipeline`], which reads the report leniently, verifies DKIM for mail
//! ([`dkim`]), and stores it with its deviations and original bytes, de-duplicated by the
//! database (REQUIREMENTS RCV-01..11, SEC-09).

#![forbid(unsafe_code)]

pub mod api;
pub mod dkim;
pub mod http;
pub mod imap;
pub mod limits;
pub mod pipeline;
pub mod senders;
pub mod smtp;
