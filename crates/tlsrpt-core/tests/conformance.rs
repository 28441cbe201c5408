//! Keeps `docs/CONFORMANCE.md` honest.
//!
//! The table maps every REQUIREMENTS.md rule to the tests that prove it. This test fails when
//! a test named in the table no longer exists, when a MUST/SHOULD rule of REQUIREMENTS.md has
//! no row, or when a rule-named test exists that the table does not list (regenerate with
//! `python3 scripts/conformance.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Rule-named test functions in the workspace: name → file (relative to the repo root).
fn rule_tests_in_source() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                // This file's own self-test mentions rule-shaped names that are not tests.
                && !path.ends_with("tlsrpt-core/tests/conformance.rs")
            {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                for name in rule_fn_names(&text) {
                    out.insert(name, rel.clone());
                }
            }
        }
    }
    let root = repo_root().canonicalize().expect("repo root");
    let mut out = BTreeMap::new();
    walk(&root.join("crates"), &root, &mut out);
    out
}

/// Names like `dns_04_two_records` following `fn `: lower-case letters, `_`, two digits, `_`.
fn rule_fn_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("fn ") {
        let rest = &text[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !rest[name.len()..].trim_start().starts_with('(') {
            continue;
        }
        let mut parts = name.splitn(3, '_');
        let (Some(prefix), Some(num), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !prefix.is_empty()
            && prefix.chars().all(|c| c.is_ascii_lowercase())
            && num.len() == 2
            && num.chars().all(|c| c.is_ascii_digit())
        {
            names.push(name);
        }
    }
    names
}

/// Rows of the table: rule ID → listed (test name, file).
fn table() -> BTreeMap<String, Vec<(String, String)>> {
    let path = repo_root().join("docs/CONFORMANCE.md");
    let text = fs::read_to_string(&path).expect("docs/CONFORMANCE.md must exist");
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| ID | Level | Side | Rule | Tests |" → ["", ID, Level, Side, Rule, Tests, ""]
        if cells.len() < 7 || !cells[1].contains('-') || cells[1] == "ID" {
            continue;
        }
        let mut listed = Vec::new();
        for item in cells[5].split("<br>") {
            let mut it = item.split('`');
            if let (Some(_), Some(name), Some(file)) = (it.next(), it.next(), it.next()) {
                let file = file.trim().trim_start_matches('(').trim_end_matches(')');
                listed.push((name.to_owned(), file.to_owned()));
            }
        }
        rows.insert(cells[1].to_owned(), listed);
    }
    rows
}

#[test]
fn every_listed_test_exists_in_its_file() {
    let root = repo_root();
    let mut missing = Vec::new();
    for (id, listed) in table() {
        for (name, file) in listed {
            let text = fs::read_to_string(root.join(&file)).unwrap_or_default();
            if !rule_fn_names(&text).contains(&name) {
                missing.push(format!("{id}: `{name}` not found in {file}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/CONFORMANCE.md lists tests that do not exist (run python3 scripts/conformance.py):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_rule_named_test_is_listed() {
    let listed: BTreeSet<String> = table()
        .into_values()
        .flatten()
        .map(|(name, _)| name)
        .collect();
    let unlisted: Vec<String> = rule_tests_in_source()
        .into_iter()
        .filter(|(name, _)| !listed.contains(name))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        unlisted.is_empty(),
        "rule-named tests missing from docs/CONFORMANCE.md (run python3 scripts/conformance.py):\n{}",
        unlisted.join("\n")
    );
}

#[test]
fn every_must_and_should_rule_has_a_row() {
    let req = repo_root().join("../shared/spec/REQUIREMENTS.md");
    let text = fs::read_to_string(&req).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); the repository expects shared/ beside it",
            req.display()
        )
    });
    let rows = table();
    let mut missing = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("- [ ] **") else {
            continue;
        };
        let Some((id, tail)) = rest.split_once("**") else {
            continue;
        };
        let level = tail.split(" — ").next().unwrap_or("");
        let normative = ["MUST", "SHOULD", "SHALL", "RECOMMENDED"]
            .iter()
            .any(|k| level.contains(k));
        if normative && !rows.contains_key(id) {
            missing.push(id.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "MUST/SHOULD rules without a row in docs/CONFORMANCE.md: {missing:?}"
    );
}

#[test]
fn rule_fn_names_recognises_only_rule_shaped_names() {
    let src = "fn dns_04_two_records() {}\nfn helper() {}\nfn json_18_mx(x: u8) {}\nfn ab_1_x() {}";
    assert_eq!(rule_fn_names(src), vec!["dns_04_two_records", "json_18_mx"]);
}
