//! Domain name normalisation: one spelling per policy domain.
//!
//! The same domain reaches us spelled many ways: `Example.COM`, `example.com.` (fully
//! qualified), `bücher.example` (U-labels) or `xn--bcher-kva.example` (A-labels). Counters and
//! reports are keyed by domain, so all of these must collapse to one key or a day's sessions
//! would be split over several reports (REQUIREMENTS RPT-04: one report per policy domain per
//! day). The canonical form is the one RFC 8460 §4.4 wants on the wire (REQUIREMENTS JSON-17):
//! lower case, A-labels, no trailing dot.
//!
//! Character rules are deliberately those of a host name *plus* the underscore: the datagram's
//! `d` comes from an MTA that already resolved it, so rejecting an odd but resolvable name here
//! would lose real sessions. Length limits are RFC 1035 §2.3.4 (63 octets per label, 253 for the
//! presentation form without the trailing dot).

use thiserror::Error;

/// Longest domain in presentation form without the trailing dot (RFC 1035 §2.3.4: 255 octets
/// on the wire, which is 253 characters of text).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Input longer than this is rejected before any IDN processing, so a hostile datagram cannot
/// make us run UTS #46 over megabytes of text.
pub const MAX_INPUT_LEN: usize = 1024;

/// Why a domain could not be normalised.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Nothing left after removing the trailing dot.
    #[error("domain is empty")]
    Empty,
    /// The input is longer than [`MAX_INPUT_LEN`] characters.
    #[error("domain input is {len} bytes, longer than the {MAX_INPUT_LEN}-byte limit")]
    InputTooLong {
        /// Input length in bytes.
        len: usize,
    },
    /// The A-label form is longer than [`MAX_DOMAIN_LEN`].
    #[error("domain is {len} characters in A-label form, longer than {MAX_DOMAIN_LEN}")]
    TooLong {
        /// Length of the normalised form.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("label {index} is empty (leading dot or two dots in a row)")]
    EmptyLabel {
        /// Zero-based label index.
        index: usize,
    },
    /// A label longer than [`MAX_LABEL_LEN`].
    #[error("label {index} is {len} characters, longer than {MAX_LABEL_LEN}")]
    LabelTooLong {
        /// Zero-based label index.
        index: usize,
        /// Length of the label in A-label form.
        len: usize,
    },
    /// A character that is not a letter, digit, hyphen or underscore (after IDN conversion).
    #[error("character {ch:?} at byte {offset} is not allowed in a domain name")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Byte offset in the A-label form.
        offset: usize,
    },
    /// UTS #46 / IDNA 2008 processing rejected the name (bad U-label or bad Punycode A-label).
    #[error("not a valid internationalised domain name: {0}")]
    Idna(String),
}

/// True when `name` is a proper subdomain of `parent` (`mx1.example.com` of `example.com`):
/// it ends with `parent` after a dot and a non-empty rest. Both are compared as given, so pass
/// them in one spelling (e.g. [`normalize`]d). No allocation: it runs per policy and per rule.
///
/// ```
/// use tlsrpt_core::domain::is_subdomain_of;
/// assert!(is_subdomain_of("mx1.example.com", "example.com"));
/// assert!(!is_subdomain_of("example.com", "example.com"));
/// assert!(!is_subdomain_of("notexample.com", "example.com"));
/// assert!(!is_subdomain_of(".example.com", "example.com"));
/// ```
pub fn is_subdomain_of(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.ends_with(parent)
        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
}

/// [`normalize`]d when `input` is a valid domain, else `input` exactly as written: for a name
/// taken from outside (a datagram, a report) that must be compared or counted under one
/// spelling when it can be, and must never be lost or invented when it cannot.
///
/// ```
/// use tlsrpt_core::domain::normalize_or_keep;
/// assert_eq!(normalize_or_keep("MX1.Example.COM."), "mx1.example.com");
/// assert_eq!(normalize_or_keep("bücher.example"), "xn--bcher-kva.example");
/// assert_eq!(normalize_or_keep("not a domain"), "not a domain");
/// ```
pub fn normalize_or_keep(input: &str) -> String {
    normalize(input).unwrap_or_else(|_| input.to_owned())
}

/// Normalises a domain name: lower case, one trailing dot removed, U-labels turned into
/// A-labels (UTS #46 via the `idna` crate), and RFC 1035 length limits checked.
///
/// Already-normal ASCII input costs one scan and one allocation. `xn--` labels are checked by
/// the IDNA decoder so a malformed A-label is rejected rather than stored.
///
/// ```
/// use tlsrpt_core::domain::normalize;
/// assert_eq!(normalize("Example.COM.").unwrap(), "example.com");
/// assert_eq!(normalize("bücher.example").unwrap(), "xn--bcher-kva.example");
/// assert!(normalize("a..b").is_err());
/// ```
pub fn normalize(input: &str) -> Result<String, DomainError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(DomainError::InputTooLong { len: input.len() });
    }
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    let needs_idna = !trimmed.is_ascii()
        || trimmed
            .split('.')
            .any(|l| l.len() >= 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"));
    let out = if needs_idna {
        // Empty labels are reported by our own check below with a precise index; the IDNA
        // crate would map them to a generic error, so check them first.
        check_empty_labels(trimmed)?;
        idna::domain_to_ascii(trimmed).map_err(|e| DomainError::Idna(e.to_string()))?
    } else {
        trimmed.to_ascii_lowercase()
    };
    check_ascii_domain(&out)?;
    Ok(out)
}

fn check_empty_labels(s: &str) -> Result<(), DomainError> {
    for (index, label) in s.split('.').enumerate() {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel { index });
        }
    }
    Ok(())
}

/// Checks a lower-case ASCII name against the length and character rules.
fn check_ascii_domain(s: &str) -> Result<(), DomainError> {
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    if s.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong { len: s.len() });
    }
    let mut offset = 0;
    for (index, label) in s.split('.').enumerate() {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel { index });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong {
                index,
                len: label.len(),
            });
        }
        for (i, ch) in label.char_indices() {
            if !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                return Err(DomainError::InvalidChar {
                    ch,
                    offset: offset + i,
                });
            }
        }
        offset += label.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_strips_one_dot() {
        assert_eq!(normalize("MX.Example.ORG.").unwrap(), "mx.example.org");
        assert_eq!(normalize("example.org").unwrap(), "example.org");
        assert_eq!(
            normalize("example.org.."),
            Err(DomainError::EmptyLabel { index: 2 })
        );
        assert_eq!(normalize("."), Err(DomainError::Empty));
        assert_eq!(normalize(""), Err(DomainError::Empty));
    }

    #[test]
    fn idn_u_labels_become_a_labels() {
        assert_eq!(
            normalize("Bücher.Example.").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize("XN--BCHER-KVA.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(matches!(
            normalize("xn--zz-.example"),
            Err(DomainError::Idna(_))
        ));
    }

    #[test]
    fn limits_and_characters() {
        let long_label = "a".repeat(64);
        assert_eq!(
            normalize(&format!("{long_label}.example")),
            Err(DomainError::LabelTooLong { index: 0, len: 64 })
        );
        let long = format!("{}.example", vec!["a".repeat(60); 5].join("."));
        assert!(matches!(normalize(&long), Err(DomainError::TooLong { .. })));
        assert_eq!(
            normalize("exa mple.org"),
            Err(DomainError::InvalidChar { ch: ' ', offset: 3 })
        );
        assert!(matches!(
            normalize(&"a".repeat(2000)),
            Err(DomainError::InputTooLong { len: 2000 })
        ));
        assert_eq!(normalize("_smtp._tls.x.org").unwrap(), "_smtp._tls.x.org");
    }
}
