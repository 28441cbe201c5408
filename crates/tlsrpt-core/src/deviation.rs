//! Deviations: what a lenient reader tolerated, said precisely enough to act on.
//!
//! Every place that accepts input the RFC does not strictly allow records one `Deviation`
//! instead of silently "fixing" it, so an operator sees exactly how a sender strays from
//! RFC 8460 and the data is never lost (REQUIREMENTS RCV-11).

use serde::Serialize;

/// One tolerated departure from RFC 8460 in a piece of input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deviation {
    /// Where: a JSON path such as `policies[1].policy.mx-host`, or a message location such as
    /// `header:Subject`.
    pub path: String,
    /// The REQUIREMENTS ID of the rule bent, e.g. `JSON-18`.
    pub rule: &'static str,
    /// What was found and what was done with it, in words a postmaster understands.
    pub message: String,
}

impl Deviation {
    /// Builds a deviation.
    pub fn new(path: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        Deviation {
            path: path.into(),
            rule,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.rule)
    }
}
