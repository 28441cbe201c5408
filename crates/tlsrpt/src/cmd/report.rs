//! `tlsrpt report ...`: build the daily reports from the collected counters.
//!
//! `preview` shows what the reporter would send for a day, without sending anything: it loads
//! the day's tally from the store and builds one RFC 8460 report per (policy domain, TLSRPT
//! record) with core's `Tally::reports` and strict writer (RFC 8460 §4, REQUIREMENTS RPT-04).
//! The report-id is deterministic (derived from the report key), so previews are repeatable.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use jiff::civil::Date;
use tlsrpt_core::Report;
use tlsrpt_core::tally::ReportKey;
use tlsrpt_store::{Store, StoreOptions};

use crate::config::Config;

/// `report send` and `report list` (the outbox).
pub mod send;

/// Placeholder `organization-name` when `[reporter] organization_name` is unset: `.invalid`
/// (RFC 2606) makes it obvious that it is not real.
pub const PLACEHOLDER_ORGANIZATION: &str = "unset.invalid";
/// Placeholder `contact-info` when `[reporter] contact_info` is unset.
pub const PLACEHOLDER_CONTACT: &str = "tlsrpt@unset.invalid";

/// Examples shown by `report preview --help`.
pub const PREVIEW_EXAMPLES: &str = "\
Examples:
  # Today's reports so far, human-readable
  tlsrpt report preview --day today --config /etc/tlsrpt/tlsrpt.toml

  # Yesterday's report for one domain as RFC 8460 JSON
  tlsrpt report preview --day 2026-11-28 --domain example.com --json

  # Count the reports of a day
  tlsrpt report preview --day today --json | jq length";

/// Report subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Build the reports a day's data gives, without sending anything.
    #[command(after_help = PREVIEW_EXAMPLES)]
    Preview(PreviewArgs),
    /// Build a day's reports into the outbox and deliver them (see `report list`).
    #[command(after_help = send::SEND_EXAMPLES)]
    Send(send::SendArgs),
    /// Show the outbox: each report, its destinations, attempts, status and last error.
    #[command(after_help = send::LIST_EXAMPLES)]
    List(send::ListArgs),
}

/// Arguments of `report preview`.
#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    /// The UTC day: YYYY-MM-DD, `today` or `yesterday`.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    day: Date,
    /// Only the reports about this policy domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Print a JSON array of the RFC 8460 reports on stdout (nothing else).
    #[arg(long)]
    json: bool,
    /// The config file (store URL, [reporter] organization_name and contact_info).
    #[arg(long, value_name = "FILE", env = "TLSRPT_CONFIG")]
    config: Option<PathBuf>,
}

/// `today`, `yesterday` (UTC) or an ISO date.
fn parse_day(s: &str) -> Result<Date, String> {
    let today = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date();
    match s {
        "today" => Ok(today),
        "yesterday" => today
            .yesterday()
            .map_err(|e| format!("no day before {today}: {e}")),
        _ => s
            .parse::<Date>()
            .map_err(|e| format!("{s:?} is not YYYY-MM-DD, today or yesterday: {e}")),
    }
}

/// Runs a report subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Preview(a) => preview(a),
        Command::Send(a) => send::send(a),
        Command::List(a) => send::list(a),
    }
}

fn preview(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    let tally = rt.block_on(async {
        let store = Store::open_with(&config.store.url, &options)
            .await
            .with_context(|| {
                format!(
                    "opening the store {}",
                    tlsrpt_store::redact_url(&config.store.url)
                )
            })?;
        let t = store.load_tally(args.day, args.domain.as_deref()).await;
        store.close().await;
        t.context("loading the counters")
    })?;

    let org = match &config.reporter.organization_name {
        Some(o) => o.clone(),
        None => {
            eprintln!(
                "tlsrpt: note: [reporter] organization_name is not set; using {PLACEHOLDER_ORGANIZATION:?}"
            );
            PLACEHOLDER_ORGANIZATION.to_owned()
        }
    };
    let contact = match &config.reporter.contact_info {
        Some(c) => c.clone(),
        None => {
            eprintln!(
                "tlsrpt: note: [reporter] contact_info is not set; using {PLACEHOLDER_CONTACT:?}"
            );
            PLACEHOLDER_CONTACT.to_owned()
        }
    };
    let submitter = submitter_domain(&contact);
    let reports = tally.reports(&org, &contact, |k| preview_report_id(k, &submitter));

    if args.json {
        let values: Vec<serde_json::Value> = reports
            .iter()
            .map(|(_, r)| tlsrpt_core::write::to_value(r))
            .collect();
        println!("{}", serde_json::to_string_pretty(&values)?);
    } else if reports.is_empty() {
        eprintln!("tlsrpt: no counters for {}", args.day);
    } else {
        let mut out = String::new();
        for (key, r) in &reports {
            human(&mut out, key, r)?;
        }
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The submitter domain for report-ids: the domain of `contact-info` when it is an address,
/// else the placeholder's.
fn submitter_domain(contact: &str) -> String {
    match contact.rsplit_once('@') {
        Some((_, d)) if !d.is_empty() => d.trim_end_matches('>').to_owned(),
        _ => "unset.invalid".to_owned(),
    }
}

/// FNV-1a 64: a tiny, fixed hash so a key gives the same token on every run and version.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A repeatable report-id for a preview: naming's generator with a token derived from the
/// report key (the record text is in the hash, so two records of one domain differ).
pub fn preview_report_id(key: &ReportKey, submitter: &str) -> String {
    let day = key.day.to_string();
    let token = format!("{:016x}", fnv1a(&[&day, &key.domain, &key.record]));
    tlsrpt_core::naming::report_id(key.day, &key.domain, submitter, &token)
        .unwrap_or_else(|_| format!("{day}.{token}@{submitter}"))
}

fn human(out: &mut String, key: &ReportKey, r: &Report) -> anyhow::Result<()> {
    writeln!(out, "report {}", r.report_id)?;
    writeln!(out, "  policy domain: {}", key.domain)?;
    writeln!(out, "  record:        {}", key.record)?;
    writeln!(
        out,
        "  date range:    {} .. {}",
        r.date_range.start, r.date_range.end
    )?;
    writeln!(
        out,
        "  from:          {} <{}>",
        r.organization_name.as_deref().unwrap_or("-"),
        r.contact_info.as_deref().unwrap_or("-")
    )?;
    for p in &r.policies {
        writeln!(
            out,
            "  policy {} (policy-domain {}): {} successful, {} failed",
            p.policy.policy_type,
            p.policy.policy_domain.as_deref().unwrap_or("-"),
            p.summary.total_successful_session_count,
            p.summary.total_failure_session_count
        )?;
        for s in &p.policy.policy_string {
            writeln!(out, "    policy-string: {s}")?;
        }
        if !p.policy.mx_host.is_empty() {
            writeln!(out, "    mx-host: {}", p.policy.mx_host.join(", "))?;
        }
        for f in &p.failure_details {
            let mut parts = Vec::new();
            let fields = [
                ("sending-mta-ip", &f.sending_mta_ip),
                ("receiving-mx-hostname", &f.receiving_mx_hostname),
                ("receiving-mx-helo", &f.receiving_mx_helo),
                ("receiving-ip", &f.receiving_ip),
                ("failure-reason-code", &f.failure_reason_code),
                ("additional-information", &f.additional_information),
            ];
            for (name, v) in fields {
                if let Some(v) = v {
                    parts.push(format!("{name} {}", v.escape_debug()));
                }
            }
            writeln!(
                out,
                "    failure {} x{}: {}",
                f.result_type,
                f.failed_session_count,
                parts.join(", ")
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(record: &str) -> ReportKey {
        ReportKey {
            day: jiff::civil::date(2026, 11, 29),
            domain: "example.com".into(),
            record: record.into(),
        }
    }

    #[test]
    fn report_ids_are_repeatable_and_distinguish_records() {
        let a = preview_report_id(&key("v=TLSRPTv1; rua=mailto:a@example.com"), "example.org");
        let b = preview_report_id(&key("v=TLSRPTv1; rua=mailto:a@example.com"), "example.org");
        let c = preview_report_id(&key("v=TLSRPTv1; rua=mailto:b@example.com"), "example.org");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("20261129T000000Z.example.com."), "{a}");
        assert!(a.ends_with("@example.org"), "{a}");
        assert!(tlsrpt_core::naming::is_msg_id(&a), "{a}");
    }

    #[test]
    fn days_parse() {
        assert_eq!(
            parse_day("2026-02-28").unwrap(),
            jiff::civil::date(2026, 2, 28)
        );
        assert!(parse_day("2026-02-30").is_err());
        assert!(parse_day("tomorrow").is_err());
        let t = parse_day("today").unwrap();
        assert_eq!(parse_day("yesterday").unwrap(), t.yesterday().unwrap());
    }

    #[test]
    fn submitter_comes_from_contact() {
        assert_eq!(submitter_domain("tlsrpt@example.org"), "example.org");
        assert_eq!(submitter_domain("https://example.org/x"), "unset.invalid");
    }
}
