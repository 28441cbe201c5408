//! Session accounting: how many SMTP sessions a report describes, counting each session once.
//!
//! RFC 8460 counts sessions per applied policy (§4.2), and one session can be evaluated under
//! two policies at once: Microsoft reports each session to a domain with both MTA-STS and DANE
//! under an `sts` entry *and* a `tlsa` entry (REQUIREMENTS JSON-30, RPT-15;
//! `testdata/reports/cry-inc/microsoft.json`: 2 successes under each, which is 2 sessions,
//! not 4). Adding up the summaries ([`Report::raw_totals`]) double counts them. The RFC does
//! not say how to tell overlapping entries apart, so this module makes a rule.
//!
//! # The rule (a decision; the RFC is silent)
//!
//! 1. *Anchors* are the entries that are not `tlsa` (`sts`, `no-policy-found`, and unknown
//!    types). Anchors with the same policy domain form one group: they are the same
//!    delivery target under successive policies (e.g. a policy changed during the day), whose
//!    sessions are disjoint and add up.
//! 2. A `tlsa` entry joins the group of an anchor when its policy domain equals the anchor's
//!    policy domain (Microsoft's convention) or matches one of the anchor's MX patterns — the
//!    `mx-host` array and the `mx:` lines of an STS `policy-string` — with RFC 8461 §4.1
//!    matching (`*.example.com` matches exactly one extra left-most label), which covers the
//!    convention of RFC 7672 / mox where the TLSA policy domain is the MX host (RPT-15). A
//!    `tlsa` entry that matches no anchor is a group of its own.
//! 3. Within a group, the anchors' counts add up, the `tlsa` entries' counts add up, and the
//!    group's successful (and, separately, failed) count is the larger of the two sums: the
//!    same sessions were seen through two lenses, so the larger view covers the smaller.
//! 4. Groups add up.
//!
//! Names compare case-insensitively and without a trailing dot. Counts saturate.

use std::collections::BTreeMap;

use crate::mtasts::mx_matches;
use crate::report::{PolicyResult, Report, Summary};
use crate::types::PolicyType;

impl Report {
    /// Sessions of the report, each counted once: see [`session_totals`].
    pub fn session_totals(&self) -> Summary {
        session_totals(self)
    }
}

/// Sessions of the report, each counted once under the rule of the module docs.
///
/// `session_totals(r)` is never more than `r.raw_totals()` and equals it when no `tlsa` entry
/// overlaps another entry.
pub fn session_totals(report: &Report) -> Summary {
    groups(report)
        .iter()
        .fold(Summary::default(), |acc, g| add(acc, g.totals(report)))
}

/// Session totals per group, keyed by the group's policy domain (the anchors' policy domain,
/// or the `tlsa` entry's own for a lone `tlsa` group; `""` when absent). Groups with the same
/// name add up.
pub fn policy_domain_totals(report: &Report) -> BTreeMap<String, Summary> {
    let mut out: BTreeMap<String, Summary> = BTreeMap::new();
    for g in groups(report) {
        let name = g
            .members
            .first()
            .and_then(|&i| report.policies.get(i))
            .and_then(|p| p.policy.policy_domain.as_deref())
            .map(norm)
            .unwrap_or_default();
        let e = out.entry(name).or_default();
        *e = add(*e, g.totals(report));
    }
    out
}

/// The groups of the rule, as indices into `report.policies` (anchors first in each group).
pub fn session_groups(report: &Report) -> Vec<Vec<usize>> {
    groups(report).into_iter().map(|g| g.members).collect()
}

struct Group {
    members: Vec<usize>,
}

impl Group {
    fn totals(&self, report: &Report) -> Summary {
        let mut anchors = Summary::default();
        let mut tlsa = Summary::default();
        for p in self.members.iter().filter_map(|&i| report.policies.get(i)) {
            if p.policy.policy_type == PolicyType::Tlsa {
                tlsa = add(tlsa, p.summary);
            } else {
                anchors = add(anchors, p.summary);
            }
        }
        Summary {
            total_successful_session_count: anchors
                .total_successful_session_count
                .max(tlsa.total_successful_session_count),
            total_failure_session_count: anchors
                .total_failure_session_count
                .max(tlsa.total_failure_session_count),
        }
    }
}

fn add(a: Summary, b: Summary) -> Summary {
    Summary {
        total_successful_session_count: a
            .total_successful_session_count
            .saturating_add(b.total_successful_session_count),
        total_failure_session_count: a
            .total_failure_session_count
            .saturating_add(b.total_failure_session_count),
    }
}

fn norm(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

/// The MX patterns an anchor names: `mx-host` plus the `mx:` lines of an STS policy-string.
fn mx_patterns(p: &PolicyResult) -> Vec<String> {
    let mut out: Vec<String> = p.policy.mx_host.iter().map(|m| norm(m.trim())).collect();
    if p.policy.policy_type == PolicyType::Sts {
        for line in &p.policy.policy_string {
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("mx")
            {
                out.push(norm(v.trim()));
            }
        }
    }
    out
}

fn groups(report: &Report) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    // (group index, normalised policy domain, mx patterns) per anchor group.
    let mut anchor_info: Vec<(usize, String, Vec<String>)> = Vec::new();
    for (i, p) in report.policies.iter().enumerate() {
        if p.policy.policy_type == PolicyType::Tlsa {
            continue;
        }
        let domain = p.policy.policy_domain.as_deref().map(norm);
        let existing = domain.as_ref().and_then(|d| {
            anchor_info
                .iter_mut()
                .find(|(_, ad, _)| ad == d)
                .map(|(g, _, pats)| (*g, pats))
        });
        match existing {
            Some((g, pats)) => {
                pats.extend(mx_patterns(p));
                if let Some(group) = groups.get_mut(g) {
                    group.members.push(i);
                }
            }
            None => {
                let g = groups.len();
                groups.push(Group { members: vec![i] });
                // An anchor without a policy domain can still be joined through its patterns.
                anchor_info.push((g, domain.unwrap_or_default(), mx_patterns(p)));
            }
        }
    }
    for (i, p) in report.policies.iter().enumerate() {
        if p.policy.policy_type != PolicyType::Tlsa {
            continue;
        }
        let target = p.policy.policy_domain.as_deref().map(norm).and_then(|d| {
            anchor_info
                .iter()
                .find(|(_, ad, pats)| {
                    (!ad.is_empty() && *ad == d) || pats.iter().any(|pat| mx_matches(pat, &d))
                })
                .map(|(g, _, _)| *g)
        });
        match target.and_then(|g| groups.get_mut(g)) {
            Some(group) => group.members.push(i),
            None => groups.push(Group { members: vec![i] }),
        }
    }
    groups
}
