//! # tlsrpt-reporter
//!
//! The sending side of RFC 8460: every UTC day, tell each policy domain what happened.
//!
//! * [`mail`]: the report message (RFC 8460 §5.3, `multipart/report; report-type="tlsrpt"`).
//! * [`dkim`]: DKIM signing of that message (RFC 8460 §3: MUST be signed, never `l=`).
//! * [`deliver`]: one delivery attempt over HTTPS POST or SMTP submission, classified as
//!   temporary or permanent (REQUIREMENTS DLV-07).
//! * [`backoff`]: the delay between attempts (RFC 8460 §5.5, DLV-04).
//! * [`policy`]: operator rules that suppress or rewrite destinations, and the suppression list.
//! * [`outbox`], [`schedule`], [`run`]: persisted attempts, the daily scheduler, the CLI glue.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod deliver;
pub mod dkim;
pub mod mail;
pub mod outbox;
pub mod policy;
pub mod run;
pub mod schedule;

pub use backoff::next_attempt_delay;
pub use deliver::{Deliverer, DeliveryError, Destination, ReportToSend};
