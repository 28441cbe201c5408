//! `tlsrpt ingest`: take reports delivered by mail, from an MTA pipe or a Maildir.
//!
//! Every message goes through the receiver's one pipeline (`tlsrpt_receiver::pipeline`):
//! lenient reading, DKIM per `[receiver] dkim`, storage de-duplicated by the database.
//!
//! # One message (`tlsrpt ingest [FILE|-]`, for Postfix pipe(8), procmail, sieve)
//!
//! Exit codes are sysexits(3), which MTAs understand:
//! * **0**: stored, already stored (duplicate), or kept as `rejected` under `dkim = "require"`.
//!   A forged report is not bounced: a bounce would go to the forged sender (backscatter); it
//!   is kept for audit and shown only with `?status=rejected`.
//! * **65** (EX_DATAERR): not a usable report (the reason is printed); retrying cannot help.
//! * **75** (EX_TEMPFAIL): the store or the DKIM key lookup is unavailable, or the config
//!   cannot be loaded: the MTA keeps the message queued and retries, so nothing is lost while
//!   the operator fixes it.
//!
//! # A Maildir (`tlsrpt ingest --maildir DIR [--watch]`)
//!
//! Decisions (Maildir has no notion of "processed"):
//! * Only `new/` is processed, oldest name first; `tmp/` is the delivery agent's and `cur/`
//!   holds what was processed (or read by a mail client). To process a message again, move it
//!   back to `new/`.
//! * A stored or duplicate message moves to `cur/NAME:2,S` (seen).
//! * A rejected message (kept as rejected by the DKIM policy, or not a usable report) moves to
//!   `cur/NAME:2,FS` (flagged, seen) and one line `TIME<TAB>cur/NAME:2,FS<TAB>REASON` is
//!   appended to `DIR/tlsrpt-rejected.log`: beside the folders, so mail clients never take it
//!   for a message. Nothing is deleted.
//! * A temporary failure (store or DNS unavailable) leaves the message in `new/` for the next
//!   run or poll; the run then exits 75.
//! * `--watch` processes `new/` again every `[receiver] maildir_interval` (default 10 s, or
//!   `--interval`) until SIGTERM or SIGINT, finishing the message in hand first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tlsrpt_core::read::Limits;
use tlsrpt_receiver::dkim::{DkimConfig, DkimVerifier};
use tlsrpt_receiver::pipeline::{Accepted, Intake, Pipeline, Rejected, Via};
use tlsrpt_store::Store;

use crate::config::{Config, DEFAULT_MAILDIR_INTERVAL};

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "Examples:
  # Postfix master.cf: tlsrpt unix - n n - - pipe user=tlsrpt argv=/usr/bin/tlsrpt ingest --config /etc/tlsrpt/tlsrpt.toml
  tlsrpt ingest --config /etc/tlsrpt/tlsrpt.toml < report.eml
  tlsrpt ingest --config /etc/tlsrpt/tlsrpt.toml --maildir ~/Maildir/.tlsrpt
  tlsrpt ingest --config /etc/tlsrpt/tlsrpt.toml --maildir /var/mail/tlsrpt --watch --interval 30s";

/// sysexits(3) EX_TEMPFAIL.
const EX_TEMPFAIL: u8 = 75;
/// Messages processed at once from a Maildir (DKIM lookups overlap; writes are serialised by
/// the store).
const MAILDIR_CONCURRENCY: usize = 8;
/// The file beside `new/`, `cur/`, `tmp/` that records why messages were rejected.
pub const REJECTED_LOG: &str = "tlsrpt-rejected.log";

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The message to take (RFC 5322, as delivered); `-` or nothing reads standard input.
    #[arg(value_name = "FILE", conflicts_with = "maildir")]
    file: Option<PathBuf>,
    /// Process the messages in this Maildir's `new/` folder instead.
    #[arg(long, value_name = "DIR")]
    maildir: Option<PathBuf>,
    /// With --maildir: keep polling until SIGTERM or SIGINT.
    #[arg(long, requires = "maildir")]
    watch: bool,
    /// With --watch: polling interval (e.g. `30s`); default `[receiver] maildir_interval`.
    #[arg(long, value_name = "DURATION", requires = "watch", value_parser = parse_duration)]
    interval: Option<Duration>,
    /// The config file (`[store] url`, `[receiver] dkim`, `nameservers`, limits).
    #[arg(long, value_name = "FILE", env = "TLSRPT_CONFIG")]
    config: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let sd: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like \"30s\": {e}"))?;
    let d = Duration::try_from(sd).map_err(|_| format!("{s:?} is negative"))?;
    if d.is_zero() {
        return Err(format!("{s:?} must be more than 0"));
    }
    Ok(d)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let setup = setup(args.config.as_deref()).await;
        match args.maildir {
            None => Ok(one_message(setup, args.file.as_deref()).await),
            Some(dir) => {
                let (pipeline, interval) = setup?;
                let interval = args.interval.unwrap_or(interval);
                maildir(&pipeline, &dir, args.watch.then_some(interval)).await
            }
        }
    })
}

/// Loads the config, opens the store, builds the DKIM verifier.
async fn setup(config: Option<&Path>) -> anyhow::Result<(Pipeline, Duration)> {
    let config = Config::load(config)?;
    let mut limits = Limits::default();
    let mut dkim = DkimConfig::default();
    let mut interval = DEFAULT_MAILDIR_INTERVAL;
    // No sender limits here (see tlsrpt_receiver::senders): a maildir backlog or one message
    // per MTA pipe process is the operator's own mail. Our domains (RCV-10) do apply.
    let mut options = tlsrpt_receiver::pipeline::PipelineOptions::default();
    if let Some(r) = &config.receiver {
        options.our_domains = r.domains.clone();
        if let Some(n) = r.max_body_bytes {
            limits.max_input_bytes = n;
        }
        if let Some(n) = r.max_decompressed_bytes {
            limits.max_decompressed_bytes = n;
        }
        dkim.policy = r.dkim;
        dkim.nameservers = r.nameservers.clone();
        dkim.trusted_authserv_id = r.trusted_authserv_id.clone();
        interval = r.maildir_interval;
    }
    let verifier = DkimVerifier::new(&dkim)?;
    let store = Store::open(&config.store.url).await.with_context(|| {
        format!(
            "opening the store {}",
            tlsrpt_store::redact_url(&config.store.url)
        )
    })?;
    Ok((
        Pipeline::with_options(Arc::new(store), limits, verifier, options),
        interval,
    ))
}

/// Reads at most `max + 1` bytes, so an endless stdin cannot exhaust memory.
fn read_bounded(r: impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

async fn one_message(setup: anyhow::Result<(Pipeline, Duration)>, file: Option<&Path>) -> ExitCode {
    let pipeline = match setup {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("tlsrpt: error (temporary, exit {EX_TEMPFAIL}): {e:#}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    let max = pipeline.limits().max_input_bytes;
    let bytes = match file {
        None => read_bounded(std::io::stdin().lock(), max),
        Some(p) if p.as_os_str() == "-" => read_bounded(std::io::stdin().lock(), max),
        Some(p) => std::fs::File::open(p).and_then(|f| read_bounded(f, max)),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            let what = file.map_or("standard input".into(), |p| p.display().to_string());
            eprintln!("tlsrpt: error: reading {what}: {e}");
            // EX_NOINPUT (66) when the file cannot be opened.
            return ExitCode::from(66);
        }
    };
    let outcome = pipeline
        .ingest(Intake {
            bytes: &bytes,
            via: Via::Mail,
            content_type: None,
            content_encoding: None,
            peer: None,
        })
        .await;
    match outcome {
        Ok(a) => {
            eprintln!("tlsrpt: {}", describe(&a));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tlsrpt: rejected: {e}");
            ExitCode::from(e.sysexit())
        }
    }
}

fn describe(a: &Accepted) -> String {
    match a {
        Accepted::Stored { id } => format!("stored as report {id}"),
        Accepted::Duplicate { id } => format!("duplicate of report {id}; not stored again"),
        Accepted::Quarantined { id, reason } => {
            format!("kept as rejected report {id}: {reason}")
        }
    }
}

/// Counts of one pass over `new/`.
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    stored: usize,
    duplicate: usize,
    quarantined: usize,
    rejected: usize,
    deferred: usize,
}

async fn maildir(
    pipeline: &Pipeline,
    dir: &Path,
    watch: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    for sub in ["new", "cur"] {
        let p = dir.join(sub);
        anyhow::ensure!(
            p.is_dir(),
            "{} is not a Maildir: {} is missing",
            dir.display(),
            p.display()
        );
    }
    let Some(interval) = watch else {
        let pass = process_new(pipeline, dir).await?;
        report_pass(&pass);
        return Ok(if pass.deferred > 0 {
            ExitCode::from(EX_TEMPFAIL)
        } else {
            ExitCode::SUCCESS
        });
    };
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        // A pass always completes; the signal is looked at between passes. A failing pass
        // (e.g. the folder briefly unreadable) is reported and retried at the next poll.
        match process_new(pipeline, dir).await {
            Ok(pass) => {
                if pass.stored + pass.duplicate + pass.quarantined + pass.rejected + pass.deferred
                    > 0
                {
                    report_pass(&pass);
                }
            }
            Err(e) => eprintln!("tlsrpt: maildir: {e:#}; retrying in {interval:?}"),
        }
        tokio::select! {
            r = &mut stop => {
                let sig = r?;
                eprintln!("tlsrpt: {sig}: stopping");
                return Ok(ExitCode::SUCCESS);
            }
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn report_pass(p: &Pass) {
    eprintln!(
        "tlsrpt: maildir: {} stored, {} duplicate, {} kept as rejected, {} rejected as bad data, {} deferred",
        p.stored, p.duplicate, p.quarantined, p.rejected, p.deferred
    );
}

enum Fate {
    Stored,
    Duplicate,
    Quarantined(String),
    Rejected(String),
    Deferred(String),
}

async fn process_new(pipeline: &Pipeline, dir: &Path) -> anyhow::Result<Pass> {
    let new = dir.join("new");
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&new).with_context(|| format!("reading {}", new.display()))? {
        let entry = entry.with_context(|| format!("reading {}", new.display()))?;
        // Dot files are not messages (Maildir spec).
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        names.push(name);
    }
    names.sort();

    let mut pass = Pass::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = names.into_iter();
    loop {
        while tasks.len() < MAILDIR_CONCURRENCY {
            let Some(name) = queue.next() else { break };
            let p = pipeline.clone();
            let path = new.join(&name);
            tasks.spawn(async move {
                let fate = one_file(&p, &path).await;
                (name, fate)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (name, fate) = joined.context("a maildir task failed")?;
        settle(dir, &name, &fate, &mut pass)?;
    }
    Ok(pass)
}

async fn one_file(pipeline: &Pipeline, path: &Path) -> Fate {
    let max = pipeline.limits().max_input_bytes;
    let bytes = match std::fs::File::open(path).and_then(|f| read_bounded(f, max)) {
        Ok(b) => b,
        Err(e) => return Fate::Deferred(format!("reading {}: {e}", path.display())),
    };
    let outcome = pipeline
        .ingest(Intake {
            bytes: &bytes,
            via: Via::Mail,
            content_type: None,
            content_encoding: None,
            peer: None,
        })
        .await;
    match outcome {
        Ok(Accepted::Stored { .. }) => Fate::Stored,
        Ok(Accepted::Duplicate { .. }) => Fate::Duplicate,
        Ok(Accepted::Quarantined { id, reason }) => {
            Fate::Quarantined(format!("kept as rejected report {id}: {reason}"))
        }
        Err(e @ (Rejected::Unavailable(_) | Rejected::RateLimited(_))) => {
            Fate::Deferred(e.to_string())
        }
        Err(e) => Fate::Rejected(e.to_string()),
    }
}

/// The Maildir name with its info replaced by `:2,FLAGS`.
fn cur_name(name: &str, flags: &str) -> String {
    let base = name.split_once(":2,").map_or(name, |(b, _)| b);
    format!("{base}:2,{flags}")
}

fn settle(dir: &Path, name: &str, fate: &Fate, pass: &mut Pass) -> anyhow::Result<()> {
    let (flags, reason) = match fate {
        Fate::Stored => {
            pass.stored += 1;
            ("S", None)
        }
        Fate::Duplicate => {
            pass.duplicate += 1;
            ("S", None)
        }
        Fate::Quarantined(r) => {
            pass.quarantined += 1;
            ("FS", Some(r))
        }
        Fate::Rejected(r) => {
            pass.rejected += 1;
            ("FS", Some(r))
        }
        Fate::Deferred(r) => {
            pass.deferred += 1;
            eprintln!("tlsrpt: maildir: new/{name}: left for later: {r}");
            return Ok(());
        }
    };
    let to = cur_name(name, flags);
    let from_path = dir.join("new").join(name);
    let to_path = dir.join("cur").join(&to);
    std::fs::rename(&from_path, &to_path)
        .with_context(|| format!("moving {} to {}", from_path.display(), to_path.display()))?;
    if let Some(reason) = reason {
        let line = format!(
            "{}\tcur/{to}\t{}\n",
            tlsrpt_core::write::format_datetime(jiff::Timestamp::now()),
            one_line(reason)
        );
        let log = dir.join(REJECTED_LOG);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .with_context(|| format!("writing {}", log.display()))?;
        eprintln!("tlsrpt: maildir: cur/{to}: {}", one_line(reason));
    }
    Ok(())
}

/// Tabs and line breaks would break the log's one-line-per-message format.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_names_get_info() {
        assert_eq!(cur_name("123.abc.host", "S"), "123.abc.host:2,S");
        assert_eq!(cur_name("123.abc.host:2,", "FS"), "123.abc.host:2,FS");
    }

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(one_line("a\tb\nc"), "a b c");
    }
}
