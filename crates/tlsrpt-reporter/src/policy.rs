//! Destination policy: what the operator and past bounces say about where a report may go.
//! Pure functions; the outbox stores the suppression list and calls these.
//!
//! * **Rules** (`[[reporter.rules]]`): per policy domain, `suppress` (send nothing) or
//!   `rewrite` (send to `to` instead of the published rua). Decisions (RFC 8460 is silent):
//!   a rule's `domain` matches the policy domain exactly (case-insensitive, trailing dot
//!   ignored); `*.example.com` matches subdomains only, not `example.com` itself; the first
//!   matching rule in file order wins; a rewrite replaces *every* published destination.
//! * **Cap**: at most [`MAX_USABLE_RUA`] destinations per report, duplicates removed, in
//!   record order (REQUIREMENTS DNS-22; the record parser already caps, this also covers
//!   rewrites and the `pr` fallback).
//! * **Suppression list** (REQUIREMENTS DLV-07, as mox keeps one): a destination that failed
//!   permanently is suppressed for [`SUPPRESSION_TTL`] (14 days): long enough not to hammer a
//!   dead mailbox daily, short enough that a fixed one gets reports again without operator
//!   action. Temporary failures never suppress. Keys are [`suppression_key`]s: the
//!   destination URI with the mail domain (or URL host) lower-cased.

use jiff::{SignedDuration, Timestamp};
use tlsrpt_core::domain;
pub use tlsrpt_core::record::MAX_USABLE_RUA;

use crate::deliver::{DeliveryError, Destination};

/// How long a permanently failing destination is suppressed.
pub const SUPPRESSION_TTL: SignedDuration = SignedDuration::from_hours(14 * 24);

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Send no report for the domain.
    Suppress,
    /// Send to `to` instead of the published destinations.
    Rewrite,
}

/// One `[[reporter.rules]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRule {
    /// The policy domain (`example.com`) or its subdomains (`*.example.com`).
    pub domain: String,
    /// What to do.
    pub action: RuleAction,
    /// For `rewrite`: the `mailto:` or `https:` URI to use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A rule set that cannot be used, naming the rule (0-based index) and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Bad `domain` pattern.
    #[error("reporter.rules[{index}].domain {value:?}: {problem}")]
    Domain {
        /// Index of the rule.
        index: usize,
        /// The pattern.
        value: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// `to` missing, superfluous, or not a usable `mailto:`/`https:` URI.
    #[error("reporter.rules[{index}].to: {problem}")]
    To {
        /// Index of the rule.
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Subdomains(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Compiled {
    Suppress,
    Rewrite(Destination),
}

/// Checked rules, ready to apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    rules: Vec<(Pattern, Compiled)>,
}

/// The outcome for one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Send to these (deduplicated, capped at [`MAX_USABLE_RUA`]); `rewritten` is true when
    /// a rule replaced the published destinations.
    Send {
        /// The destinations.
        destinations: Vec<Destination>,
        /// Whether a rewrite rule applied.
        rewritten: bool,
    },
    /// A suppress rule matched: send nothing.
    Suppressed {
        /// The rule's domain pattern, for the log.
        rule: String,
    },
}

fn normalize_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

impl DestinationPolicy {
    /// Checks and compiles `rules`.
    pub fn new(rules: &[DestinationRule]) -> Result<Self, PolicyError> {
        let mut out = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            let d = normalize_domain(&r.domain);
            let dom_err = |problem| PolicyError::Domain {
                index,
                value: r.domain.clone(),
                problem,
            };
            let pattern = match d.strip_prefix("*.") {
                Some(rest) if valid_domain(rest) => Pattern::Subdomains(rest.to_string()),
                Some(_) => return Err(dom_err("not a domain after \"*.\"")),
                None if valid_domain(&d) => Pattern::Exact(d),
                None => {
                    return Err(dom_err(
                        "not a domain name (use \"example.com\" or \"*.example.com\")",
                    ));
                }
            };
            let action = match (r.action, r.to.as_deref()) {
                (RuleAction::Suppress, None) => Compiled::Suppress,
                (RuleAction::Suppress, Some(_)) => {
                    return Err(PolicyError::To {
                        index,
                        problem: "not allowed with action = \"suppress\"".into(),
                    });
                }
                (RuleAction::Rewrite, None) => {
                    return Err(PolicyError::To {
                        index,
                        problem: "required with action = \"rewrite\"".into(),
                    });
                }
                (RuleAction::Rewrite, Some(to)) => {
                    let dest = Destination::parse(to.trim()).ok_or_else(|| PolicyError::To {
                        index,
                        problem: format!("{to:?} is not a usable mailto: or https: URI"),
                    })?;
                    Compiled::Rewrite(dest)
                }
            };
            out.push((pattern, action));
        }
        Ok(DestinationPolicy { rules: out })
    }

    /// Applies the first matching rule to the published `destinations` of `policy_domain`,
    /// then deduplicates and caps the result (REQUIREMENTS DNS-22).
    pub fn apply(&self, policy_domain: &str, destinations: &[Destination]) -> Applied {
        let pd = normalize_domain(policy_domain);
        let hit = self.rules.iter().find(|(p, _)| match p {
            Pattern::Exact(d) => *d == pd,
            Pattern::Subdomains(d) => domain::is_subdomain_of(&pd, d),
        });
        match hit {
            Some((p, Compiled::Suppress)) => Applied::Suppressed {
                rule: match p {
                    Pattern::Exact(d) => d.clone(),
                    Pattern::Subdomains(d) => format!("*.{d}"),
                },
            },
            Some((_, Compiled::Rewrite(to))) => Applied::Send {
                destinations: vec![to.clone()],
                rewritten: true,
            },
            None => Applied::Send {
                destinations: cap_destinations(destinations),
                rewritten: false,
            },
        }
    }
}

/// Removes duplicates (by [`suppression_key`]) keeping the first, and keeps at most
/// [`MAX_USABLE_RUA`] (REQUIREMENTS DNS-22).
pub fn cap_destinations(destinations: &[Destination]) -> Vec<Destination> {
    let mut seen = std::collections::HashSet::new();
    destinations
        .iter()
        .filter(|d| seen.insert(suppression_key(d)))
        .take(MAX_USABLE_RUA)
        .cloned()
        .collect()
}

/// The key a destination is suppressed under: `mailto:local@domain` with the domain in lower
/// case (local parts may be case-sensitive), or the https URL with scheme and host in lower
/// case.
pub fn suppression_key(d: &Destination) -> String {
    match d {
        Destination::Mailto(a) => match a.rsplit_once('@') {
            Some((l, dom)) => format!("mailto:{l}@{}", normalize_domain(dom)),
            None => format!("mailto:{a}"),
        },
        Destination::Https(u) => match url_host_lower(u) {
            Some(s) => s,
            None => u.clone(),
        },
    }
}

fn url_host_lower(u: &str) -> Option<String> {
    let rest = u.get(..8).filter(|p| p.eq_ignore_ascii_case("https://"))?;
    let _ = rest;
    let after = u.get(8..)?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    Some(format!("https://{}{tail}", authority.to_ascii_lowercase()))
}

/// One suppression list entry (stored by the outbox).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Suppression {
    /// [`suppression_key`] of the destination.
    pub key: String,
    /// Suppressed until (exclusive).
    pub until: Timestamp,
    /// The permanent error that caused it.
    pub reason: String,
}

/// The entry to add after an attempt failed with `error` at `now`: only permanent failures
/// suppress (REQUIREMENTS DLV-07); temporary ones are retried instead, and failures caused by
/// our own configuration ([`DeliveryError::is_config`]) never suppress a destination.
pub fn suppression_after(
    d: &Destination,
    error: &DeliveryError,
    now: Timestamp,
) -> Option<Suppression> {
    if error.is_config() {
        return None;
    }
    match error {
        DeliveryError::Permanent(reason) => Some(Suppression {
            key: suppression_key(d),
            until: now.checked_add(SUPPRESSION_TTL).unwrap_or(Timestamp::MAX),
            reason: reason.chars().take(500).collect(),
        }),
        DeliveryError::Temporary(_) => None,
    }
}

/// The live entry that suppresses `d` at `now`, if any (expired entries are ignored).
pub fn is_suppressed<'a>(
    list: &'a [Suppression],
    d: &Destination,
    now: Timestamp,
) -> Option<&'a Suppression> {
    let key = suppression_key(d);
    list.iter().find(|s| s.key == key && now < s.until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, action: RuleAction, to: Option<&str>) -> DestinationRule {
        DestinationRule {
            domain: domain.into(),
            action,
            to: to.map(Into::into),
        }
    }

    fn m(a: &str) -> Destination {
        Destination::Mailto(a.into())
    }

    #[test]
    fn rules_match_exact_and_subdomains_first_wins() {
        let p = DestinationPolicy::new(&[
            rule("Example.COM.", RuleAction::Suppress, None),
            rule(
                "*.example.com",
                RuleAction::Rewrite,
                Some("mailto:ops@us.example"),
            ),
            rule(
                "example.com",
                RuleAction::Rewrite,
                Some("mailto:never@us.example"),
            ),
        ])
        .unwrap();
        let published = [m("rua@example.com")];
        assert_eq!(
            p.apply("example.com", &published),
            Applied::Suppressed {
                rule: "example.com".into()
            }
        );
        assert_eq!(
            p.apply("mx.EXAMPLE.com", &published),
            Applied::Send {
                destinations: vec![m("ops@us.example")],
                rewritten: true
            }
        );
        // Not a subdomain: "badexample.com" ends with "example.com" but not ".example.com".
        assert_eq!(
            p.apply("badexample.com", &published),
            Applied::Send {
                destinations: published.to_vec(),
                rewritten: false
            }
        );
    }

    #[test]
    fn bad_rules_name_the_index() {
        let e = DestinationPolicy::new(&[
            rule("a.example", RuleAction::Suppress, None),
            rule("b.example", RuleAction::Rewrite, None),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("rules[1].to"), "{e}");
        let e = DestinationPolicy::new(&[rule("a b", RuleAction::Suppress, None)]).unwrap_err();
        assert!(e.to_string().contains("rules[0].domain"), "{e}");
        let e = DestinationPolicy::new(&[rule(
            "a.example",
            RuleAction::Rewrite,
            Some("http://x.example/"),
        )])
        .unwrap_err();
        assert!(e.to_string().contains("not a usable"), "{e}");
        let e =
            DestinationPolicy::new(&[rule("a.example", RuleAction::Suppress, Some("mailto:x@y"))])
                .unwrap_err();
        assert!(e.to_string().contains("suppress"), "{e}");
    }

    #[test]
    fn dns_22_cap_and_dedupe() {
        let many: Vec<Destination> = (0..8)
            .map(|i| m(&format!("r{i}@example.com")))
            .chain([m("r0@EXAMPLE.com")])
            .collect();
        let mut input = vec![m("r0@example.com"), m("r0@Example.Com")];
        input.extend(many);
        let out = cap_destinations(&input);
        assert_eq!(out.len(), MAX_USABLE_RUA);
        assert_eq!(out[0], m("r0@example.com"));
        assert_eq!(out[1], m("r1@example.com"));
    }

    #[test]
    fn dlv_07_permanent_failures_suppress_until_expiry() {
        let now: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let d = m("Rua@Example.com");
        assert!(suppression_after(&d, &DeliveryError::Temporary("451".into()), now).is_none());
        assert!(
            suppression_after(
                &d,
                &DeliveryError::Permanent("config: no smtp_relay configured".into()),
                now
            )
            .is_none(),
            "our own configuration problems never suppress a destination"
        );
        let s = suppression_after(
            &d,
            &DeliveryError::Permanent("550 no such user".into()),
            now,
        )
        .unwrap();
        assert_eq!(s.key, "mailto:Rua@example.com");
        let list = vec![s];
        assert!(is_suppressed(&list, &m("Rua@EXAMPLE.com"), now).is_some());
        // Local parts are case-sensitive.
        assert!(is_suppressed(&list, &m("rua@example.com"), now).is_none());
        let later = now.checked_add(SUPPRESSION_TTL).unwrap();
        assert!(
            is_suppressed(&list, &d, later).is_none(),
            "expired at `until`"
        );
        assert!(
            is_suppressed(
                &list,
                &d,
                later.checked_sub(SignedDuration::from_secs(1)).unwrap()
            )
            .is_some()
        );
        let h = Destination::Https("HTTPS://Reports.Example/Path?A=B".into());
        assert_eq!(suppression_key(&h), "https://reports.example/Path?A=B");
    }
}
