//! `tlsrpt report send` and `tlsrpt report list`: the outbox from the command line.
//!
//! `send` builds a day's reports into the outbox (once: a second run finds the same
//! report-ids, RPT-04), then does what is due now: looks up `_smtp._tls` of each policy
//! domain (DNS-19) and delivers. With `--now` every report of the day is due at once (no
//! spreading over the window, no waiting for back-off); without it the reports get random
//! send times in the window (RPT-03) and only what is already due is done, the rest being
//! left to `tlsrpt serve`. It prints one line per (report, destination) at the end and exits
//! 0 when every report was delivered or has no record and no destination is left to try,
//! 75 (EX_TEMPFAIL) when something is still waiting (a retry, a lookup, a claim held by
//! another process), 1 when some report failed.
//!
//! `list` shows the outbox: each report, its lookups, destinations and attempts.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;
use jiff::civil::Date;
use tlsrpt_net::resolver::Dns;
use tlsrpt_reporter::Deliverer;
use tlsrpt_reporter::run::{Event, Reporter};
use tlsrpt_store::outbox::{AttemptOutcome, DestinationStart, OutboxAttempt, OutboxReport};
use tlsrpt_store::{Store, StoreOptions};

use super::parse_day;
use crate::config::Config;

/// Examples shown by `report send --help`.
pub const SEND_EXAMPLES: &str = "\
Examples:
  # Send yesterday's reports right away (what `serve` would spread over 4 hours)
  tlsrpt report send --day yesterday --now --config /etc/tlsrpt/tlsrpt.toml

  # Today's report for one domain, at once (e.g. to test a receiver)
  tlsrpt report send --day today --now --domain example.com --config /etc/tlsrpt/tlsrpt.toml

  # Run again later: nothing is sent twice; pending retries are done now
  tlsrpt report send --day 2026-11-28 --now";

/// Examples shown by `report list --help`.
pub const LIST_EXAMPLES: &str = "\
Examples:
  # Everything in the outbox
  tlsrpt report list --config /etc/tlsrpt/tlsrpt.toml

  # One day as JSON: reports, destinations, attempts, last errors
  tlsrpt report list --day yesterday --json | jq '.[] | {policy_domain, status}'";

/// Arguments of `report send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The UTC day: YYYY-MM-DD, `today` or `yesterday`.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    day: Date,
    /// Send at once: no random spreading over the window, no waiting for back-off.
    #[arg(long)]
    now: bool,
    /// Only the report(s) about this policy domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// The config file ([store], [reporter]).
    #[arg(long, value_name = "FILE", env = "TLSRPT_CONFIG")]
    config: Option<PathBuf>,
}

/// Arguments of `report list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only this UTC day: YYYY-MM-DD, `today` or `yesterday`.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    day: Option<Date>,
    /// Only the reports about this policy domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Print a JSON array on stdout.
    #[arg(long)]
    json: bool,
    /// Show the suppression list (addresses that bounced permanently, DLV-07) instead.
    #[arg(long)]
    suppressed: bool,
    /// The config file ([store]).
    #[arg(long, value_name = "FILE", env = "TLSRPT_CONFIG")]
    config: Option<PathBuf>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let options = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    Store::open_with(&config.store.url, &options)
        .await
        .with_context(|| {
            format!(
                "opening the store {}",
                tlsrpt_store::redact_url(&config.store.url)
            )
        })
}

/// `report send`.
pub fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let opts = config.reporter.run_options()?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = Arc::new(open_store(&config).await?);
        let deliverer = Deliverer::new(&config.reporter.delivery_settings())
            .context("setting up delivery ([reporter])")?;
        let dns = Dns::new(&config.reporter.delivery.nameservers)
            .context("setting up the resolver ([reporter] nameservers)")?;
        let reporter = Reporter::new(store.clone(), deliverer, dns, opts);
        let now = Timestamp::now();
        if tlsrpt_reporter::schedule::day_close(args.day) > now {
            // REQUIREMENTS RPT-21
            eprintln!(
                "tlsrpt: note: {} has not ended; its report is built now, and sessions counted \
                 after this go into no report",
                args.day
            );
        }
        let built = reporter
            .build(args.day, args.domain.as_deref(), !args.now, now)
            .await
            .context("building the reports")?;
        for (d, why) in &built.skipped_invalid {
            eprintln!("tlsrpt: note: no report for {d:?}: {why}");
        }
        if built.skipped_all_success > 0 {
            eprintln!(
                "tlsrpt: note: {} report(s) without failures not sent ([reporter] \
                 send_all_success = false)",
                built.skipped_all_success
            );
        }
        if built.reports.is_empty() {
            eprintln!("tlsrpt: no reports for {}", args.day);
            return Ok(ExitCode::SUCCESS);
        }
        let ids: Vec<String> = built.reports.iter().map(|r| r.report_id.clone()).collect();
        if args.now {
            store.outbox_make_due(&ids, now).await?;
        }
        let events = reporter
            .step(Timestamp::now(), Some(&ids))
            .await
            .context("sending")?;
        for e in &events {
            eprintln!("tlsrpt: {}", describe(e));
        }
        let list: Vec<OutboxReport> = store
            .outbox_list(Some(args.day), args.domain.as_deref())
            .await?
            .into_iter()
            .filter(|r| ids.contains(&r.report_id))
            .collect();
        let mut out = String::new();
        let (mut failed, mut pending) = (0, 0);
        for r in &list {
            let waiting = r
                .destinations
                .iter()
                .any(|d| d.status == "queued" || d.status == "claimed");
            match r.status.as_str() {
                "failed" => failed += 1,
                "discovering" | "sending" => pending += 1,
                // Delivered (DLV-05), but another destination is still to be tried.
                _ if waiting => pending += 1,
                _ => {}
            }
            if r.destinations.is_empty() {
                writeln!(
                    out,
                    "{:<11} {} - {}",
                    r.status,
                    r.policy_domain,
                    r.last_error.as_deref().unwrap_or("")
                )?;
            }
            for d in &r.destinations {
                let extra = match d.status.as_str() {
                    "queued" => format!("next attempt {}", d.next_attempt_at),
                    _ => d.last_error.clone().unwrap_or_default(),
                };
                writeln!(
                    out,
                    "{:<11} {} {} {}",
                    d.status, r.policy_domain, d.destination, extra
                )?;
            }
        }
        print!("{out}");
        let code = if failed > 0 {
            eprintln!("tlsrpt: {failed} report(s) failed");
            ExitCode::from(1)
        } else if pending > 0 {
            eprintln!(
                "tlsrpt: {pending} report(s) still pending; `tlsrpt serve` or another `report \
                 send` will retry"
            );
            ExitCode::from(75)
        } else {
            ExitCode::SUCCESS
        };
        drop(reporter);
        if let Ok(s) = Arc::try_unwrap(store) {
            s.close().await;
        }
        Ok(code)
    })
}

/// One progress line.
pub fn describe(e: &Event) -> String {
    match e {
        Event::Discovered {
            policy_domain,
            destinations,
            source,
            ..
        } => {
            let suppressed = destinations
                .iter()
                .filter(|(_, s)| matches!(s, DestinationStart::Suppressed(_)))
                .count();
            format!(
                "{policy_domain}: {} destination(s) from {source}{}",
                destinations.len(),
                if suppressed > 0 {
                    format!(", {suppressed} suppressed")
                } else {
                    String::new()
                }
            )
        }
        Event::NoRecord {
            policy_domain,
            detail,
            ..
        } => format!("{policy_domain}: no report: {detail}"),
        Event::DnsRetry {
            policy_domain,
            detail,
            next_at,
            ..
        } => format!("{policy_domain}: lookup failed ({detail}); next lookup at {next_at}"),
        Event::DnsGaveUp {
            policy_domain,
            detail,
            ..
        } => format!("{policy_domain}: {detail}"),
        Event::Attempt {
            policy_domain,
            destination,
            outcome,
            suppressed_until,
            ..
        } => {
            let s = match outcome {
                AttemptOutcome::Delivered(d) => format!("delivered ({d})"),
                AttemptOutcome::Retry {
                    detail,
                    next_attempt_at,
                } => format!("failed ({detail}); next attempt at {next_attempt_at}"),
                AttemptOutcome::Failed(d) => format!("failed for good ({d})"),
            };
            let sup = suppressed_until
                .map(|t| format!("; suppressed until {t}"))
                .unwrap_or_default();
            format!("{policy_domain} -> {destination}: {s}{sup}")
        }
    }
}

fn attempt_json(a: &OutboxAttempt) -> serde_json::Value {
    serde_json::json!({
        "at": a.at.to_string(),
        "outcome": a.outcome,
        "detail": a.detail,
    })
}

/// The JSON shape of one outbox report (`report list --json`).
pub fn report_json(r: &OutboxReport) -> serde_json::Value {
    serde_json::json!({
        "report_id": r.report_id,
        "day": r.day.to_string(),
        "policy_domain": r.policy_domain,
        "record": r.record,
        "filename": r.filename,
        "gzip_bytes": r.gzip_bytes,
        "status": r.status,
        "created_at": r.created_at.to_string(),
        "send_at": r.next_at.to_string(),
        "last_error": r.last_error,
        "lookups": r.lookups.iter().map(attempt_json).collect::<Vec<_>>(),
        "destinations": r.destinations.iter().map(|d| serde_json::json!({
            "destination": d.destination,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.to_string(),
            "first_attempt_at": d.first_attempt_at.map(|t| t.to_string()),
            "last_error": d.last_error,
            "history": d.history.iter().map(attempt_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `report list`.
pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let rt = runtime()?;
    if args.suppressed {
        return suppressed(&config, &rt, args.json);
    }
    let reports = rt.block_on(async {
        let store = open_store(&config).await?;
        let l = store
            .outbox_list(args.day, args.domain.as_deref())
            .await
            .context("reading the outbox");
        store.close().await;
        l
    })?;
    if args.json {
        let v: Vec<serde_json::Value> = reports.iter().map(report_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        eprintln!("tlsrpt: the outbox is empty");
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for r in &reports {
        writeln!(
            out,
            "{} {} {} ({} bytes gzip)",
            r.day, r.policy_domain, r.status, r.gzip_bytes
        )?;
        writeln!(out, "  report-id: {}", r.report_id)?;
        writeln!(out, "  record:    {}", r.record)?;
        if r.status == "discovering" {
            writeln!(out, "  send at:   {}", r.next_at)?;
        }
        if let Some(e) = &r.last_error {
            writeln!(out, "  last error: {e}")?;
        }
        for a in &r.lookups {
            writeln!(out, "  lookup {} {}: {}", a.at, a.outcome, a.detail)?;
        }
        for d in &r.destinations {
            write!(
                out,
                "  -> {} {} attempts={}",
                d.destination, d.status, d.attempts
            )?;
            if d.status == "queued" {
                write!(out, " next={}", d.next_attempt_at)?;
            }
            writeln!(out)?;
            if let Some(e) = &d.last_error {
                writeln!(out, "     last error: {e}")?;
            }
            for a in &d.history {
                writeln!(out, "     {} {}: {}", a.at, a.outcome, a.detail)?;
            }
        }
        writeln!(out)?;
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `report list --suppressed`.
fn suppressed(
    config: &Config,
    rt: &tokio::runtime::Runtime,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let list = rt.block_on(async {
        let store = open_store(config).await?;
        let l = store
            .suppression_list(Timestamp::now())
            .await
            .context("reading the suppression list");
        store.close().await;
        l
    })?;
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|s| {
                serde_json::json!({
                    "address": s.address,
                    "reason": s.reason,
                    "added_at": s.added_at.to_string(),
                    "expires_at": s.expires_at.to_string(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if list.is_empty() {
        eprintln!("tlsrpt: the suppression list is empty");
    } else {
        for s in &list {
            println!("{} until {} ({})", s.address, s.expires_at, s.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
