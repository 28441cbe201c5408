//! docs/deviations.md lists every deviation the receiver can record. This test keeps it true:
//! every REQUIREMENTS rule that the reader, the message parser or the intake pipeline puts into
//! a `Deviation` must have a row there, so a new tolerance cannot be added without telling
//! the operator.

use std::collections::BTreeSet;

/// The sources that build deviations, with the rule IDs found in each.
const SOURCES: [(&str, &str); 3] = [
    (
        "crates/tlsrpt-core/src/read.rs",
        include_str!("../src/read.rs"),
    ),
    (
        "crates/tlsrpt-core/src/message.rs",
        include_str!("../src/message.rs"),
    ),
    (
        "crates/tlsrpt-receiver/src/pipeline.rs",
        include_str!("../../tlsrpt-receiver/src/pipeline.rs"),
    ),
];

const CATALOGUE: &str = include_str!("../../../docs/deviations.md");

/// Rule IDs written as string literals (`"JSON-18"`): how a `Deviation` names its rule. Rules
/// cited in comments (`// REQUIREMENTS JSON-27`) are not quoted and so not collected.
fn quoted_rules(source: &str) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for piece in source.split('"').skip(1).step_by(2) {
        if let Some((family, number)) = piece.split_once('-')
            && ["JSON", "MAIL", "RCV", "HTTP"].contains(&family)
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            rules.insert(piece.to_owned());
        }
    }
    rules
}

/// Rule IDs in the first column of the catalogue's tables.
fn catalogued_rules() -> BTreeSet<String> {
    CATALOGUE
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_deviation_rule_in_the_code_is_catalogued() {
    let listed = catalogued_rules();
    let mut missing = Vec::new();
    for (path, source) in SOURCES {
        for rule in quoted_rules(source) {
            if !listed.contains(&rule) {
                missing.push(format!("{rule} (used in {path})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/deviations.md has no row for: {}",
        missing.join(", ")
    );
}

#[test]
fn the_scan_finds_rules_and_ignores_comments() {
    let src = "// REQUIREMENTS JSON-27\nself.dev(p, \"JSON-18\", \"text - JSON-99\"); \"MAIL-x\"";
    assert_eq!(
        quoted_rules(src),
        BTreeSet::from(["JSON-18".to_owned()]),
        "only whole quoted IDs count"
    );
    // The catalogue is read: a rule from each table is there.
    let listed = catalogued_rules();
    for rule in ["JSON-22", "MAIL-02", "HTTP-02"] {
        assert!(listed.contains(rule), "{rule} not found in the catalogue");
    }
}
