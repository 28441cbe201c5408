//! # tlsrpt-core
//!
//! SMTP TLS Reporting (RFC 8460) as pure types and functions. No network, no files, no async:
//! everything here takes bytes or values and returns values, so every rule can be tested in
//! isolation and the services built on top stay thin.
//!
//! Rules are cited where they are enforced: `RFC 8460 §n` for the RFC and `REQUIREMENTS ID`
//! for the digest in `shared/spec/REQUIREMENTS.md`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
pub mod ascii;
pub mod datagram;
pub mod deviation;
pub mod domain;
pub mod inflate;
pub mod message;
pub mod mtasts;
pub mod naming;
pub mod read;
pub mod record;
pub mod report;
pub mod tally;
pub mod types;
pub mod write;

pub use deviation::Deviation;
pub use report::{DateRange, FailureDetail, OmittedFields, Policy, PolicyResult, Report, Summary};
pub use types::{PolicyType, ResultType};
