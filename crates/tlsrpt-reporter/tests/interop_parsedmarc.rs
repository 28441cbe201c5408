//! Interop: parsedmarc 11.1.0 (a receiver we do not control, from PyPI) parses every report
//! shape we emit, as JSON, as gzip and as our complete signed e-mail, with the same totals;
//! dkimpy (installed with it) verifies our RSA signature in `tlsrpt='strict'` mode, which
//! requires `s=tlsrpt` in the key record (REQUIREMENTS MAIL-13).
//!
//! Needs `scripts/install-peers.sh` (a venv in target/peers-venv). Without it the test prints
//! SKIP, unless `CI` is set, where it fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{FROM, SHAPES, key, sample};
use tlsrpt_reporter::dkim::Signer;
use tlsrpt_reporter::mail::build_message;

fn venv_python() -> PathBuf {
    if let Ok(p) = std::env::var("TLSRPT_PEERS_VENV") {
        return PathBuf::from(p).join("bin/python");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers-venv/bin/python")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

#[tokio::test]
async fn mail_05_mail_11_mail_13_parsedmarc_and_dkimpy_accept_everything_we_emit() {
    let python = venv_python();
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import parsedmarc, dkim"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "CI is set but the parsedmarc venv is missing at {}: run scripts/install-peers.sh",
            python.display()
        );
        println!(
            "SKIP: parsedmarc venv not found at {} (run scripts/install-peers.sh)",
            python.display()
        );
        return;
    }

    let signer =
        Signer::load(&[key("rsa2048.pkcs8.pem", "rsa"), key("ed25519.pem", "ed")]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut expected = std::collections::BTreeMap::new();
    for shape in SHAPES {
        let r = sample(shape, "recipient.example");
        let base = format!("{shape:?}");
        let json = dir.path().join(format!("{base}.json"));
        std::fs::write(&json, tlsrpt_core::write::to_json(&r.report)).unwrap();
        let gz = dir.path().join(&r.filename);
        std::fs::write(&gz, &r.gzip).unwrap();
        let eml = dir.path().join(format!("{base}.eml"));
        let msg =
            build_message(&r, FROM, "tlsrpt@recipient.example", jiff::Timestamp::now()).unwrap();
        std::fs::write(&eml, signer.sign(&msg).unwrap()).unwrap();
        for (p, kind) in [(json, "json"), (gz, "gz"), (eml, "eml")] {
            let p = p.display().to_string();
            files.push(serde_json::json!({"path": p, "kind": kind}));
            expected.insert(p, (kind, r.report.clone()));
        }
    }
    let dns: serde_json::Map<String, serde_json::Value> = signer
        .dns_records()
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::to_vec(&serde_json::json!({"files": files, "dns": dns})).unwrap(),
    )
    .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop_parsedmarc.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(results.as_object().unwrap().len(), expected.len());
    for (path, (kind, report)) in &expected {
        let res = &results[path];
        assert!(res.get("error").is_none(), "{path}: {}", res["error"]);
        if *kind != "json" {
            assert_eq!(res["report_type"], "smtp_tls", "{path}");
        }
        let t = &res["totals"];
        let raw = report.raw_totals();
        assert_eq!(
            t["successful"], raw.total_successful_session_count,
            "{path}"
        );
        assert_eq!(t["failed"], raw.total_failure_session_count, "{path}");
        assert_eq!(t["policies"], report.policies.len(), "{path}");
        let details: usize = report
            .policies
            .iter()
            .map(|p| p.failure_details.len())
            .sum();
        assert_eq!(t["details"], details, "{path}");
        let detail_sessions: u64 = report
            .policies
            .iter()
            .flat_map(|p| &p.failure_details)
            .map(|d| d.failed_session_count)
            .sum();
        assert_eq!(t["detail_sessions"], detail_sessions, "{path}");
        let types: Vec<&str> = report
            .policies
            .iter()
            .map(|p| p.policy.policy_type.as_str())
            .collect();
        assert_eq!(t["policy_types"], serde_json::json!(types), "{path}");
        assert_eq!(t["report_id"], report.report_id.as_str(), "{path}");
        assert_eq!(
            t["contact_info"],
            report.contact_info.as_deref().unwrap(),
            "{path}"
        );
        assert_eq!(
            t["organization_name"],
            report.organization_name.as_deref().unwrap(),
            "{path}"
        );
        if *kind == "eml" {
            assert_eq!(
                res["dkim_rsa"], true,
                "{path}: dkimpy rejected our signature"
            );
            assert_eq!(
                res["dkim_tampered"], false,
                "{path}: dkimpy accepted a tampered copy"
            );
        }
    }
}
