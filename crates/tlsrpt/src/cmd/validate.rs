//! `tlsrpt validate`: is this file a usable TLS report, and how does it stray from RFC 8460?
//!
//! Each FILE may be a JSON report, a gzip-compressed one (detected by the magic `1f 8b`, never
//! by the name: file names are untrusted, REQUIREMENTS RCV-05) or a whole e-mail message as
//! delivered to the rua mailbox. The lenient reader (`tlsrpt_core::read`) does the work; this
//! module only renders its verdict for a person (default) or a program (`--json`).

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use tlsrpt_core::Deviation;
use tlsrpt_core::read::{self, Limits, Reading};
use tlsrpt_core::report::Report;
use tlsrpt_core::write;

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "\
Examples:
  # Check a report as received (JSON, .json.gz or the whole e-mail message):
  tlsrpt validate 'google.com!example.com!1747094400!1747180799!001.json.gz'

  # Fail (exit 1) on any deviation from RFC 8460, not only on unusable reports:
  tlsrpt validate --strict reports/*.json

  # From a pipe, for scripts: one JSON array, one {file, ok, error, deviations, report} per file:
  zcat report.json.gz | tlsrpt validate --json - | jq '.[0].deviations'

  # Check a saved message from the rua mailbox:
  tlsrpt validate ~/Maildir/tlsrpt/cur/1747181000.M1P2.mx:2,S

Exit status: 0 if every FILE is a usable report (with --strict: and has no deviation), 1 if
any is not (including files that cannot be read), 2 on usage errors (no FILE given).";

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Report files: JSON, gzip or whole e-mail messages (detected by content). `-` reads
    /// standard input.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Also count a report with deviations from RFC 8460 as failed (exit 1).
    #[arg(long)]
    strict: bool,
    /// Print one JSON array on stdout, one {"file", "ok", "error", "deviations", "report"} per
    /// FILE; "report" is the report as this tool would write it (RFC-valid), or null.
    #[arg(long)]
    json: bool,
}

/// One element of the `--json` output, exactly these keys in this order.
#[derive(Serialize)]
struct JsonResult<'a> {
    file: &'a str,
    ok: bool,
    error: Option<String>,
    deviations: &'a [Deviation],
    /// In RFC 8460 member order (what `write::to_value` holds, but ordered).
    report: Option<write::Wire<'a>>,
}

/// Where a report came from, for the human output.
#[derive(Debug, Default)]
struct Source {
    /// `Some` when the input was an e-mail message: the report part's media type, and
    /// what the message said about the report.
    message: Option<MessageInfo>,
    gzip: bool,
}

#[derive(Debug)]
struct MessageInfo {
    media_type: String,
    filename: Option<String>,
    report_domain: Option<String>,
    report_submitter: Option<String>,
}

/// Why a FILE is not a usable report.
#[derive(Debug)]
struct FileError {
    /// The whole message, one line (for `--json`).
    message: String,
    /// Each problem of an unusable report, for one line each in the human output.
    problems: Vec<String>,
}

impl FileError {
    fn plain(message: String) -> Self {
        FileError {
            message,
            problems: Vec::new(),
        }
    }

    fn read(prefix: &str, e: &read::ReadError) -> Self {
        FileError {
            message: format!("{prefix}{e}"),
            problems: match e {
                read::ReadError::Invalid(p) => p.iter().map(ToString::to_string).collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// The verdict on one FILE.
struct Outcome {
    file: String,
    result: Result<(Reading, Source), FileError>,
}

impl Outcome {
    /// Usable, and (with `--strict`) without deviations.
    fn ok(&self, strict: bool) -> bool {
        match &self.result {
            Ok((r, _)) => !strict || r.deviations.is_empty(),
            Err(_) => false,
        }
    }

    fn error(&self, strict: bool) -> Option<String> {
        match &self.result {
            Err(e) => Some(e.message.clone()),
            Ok((r, _)) if strict && !r.deviations.is_empty() => Some(format!(
                "--strict: {} deviation{} from RFC 8460",
                r.deviations.len(),
                if r.deviations.len() == 1 { "" } else { "s" }
            )),
            Ok(_) => None,
        }
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let outcomes: Vec<Outcome> = args
        .files
        .iter()
        .map(|f| Outcome {
            file: f.to_string_lossy().into_owned(),
            result: check_file(f, &limits),
        })
        .collect();
    let all_ok = outcomes.iter().all(|o| o.ok(args.strict));
    let mut out = std::io::stdout().lock();
    if args.json {
        let results: Vec<JsonResult<'_>> = outcomes
            .iter()
            .map(|o| JsonResult {
                file: &o.file,
                ok: o.ok(args.strict),
                error: o.error(args.strict),
                deviations: match &o.result {
                    Ok((r, _)) => &r.deviations,
                    Err(_) => &[],
                },
                report: match &o.result {
                    Ok((r, _)) => Some(write::Wire(&r.report)),
                    Err(_) => None,
                },
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &results)?;
        writeln!(out)?;
    } else {
        for (i, o) in outcomes.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            out.write_all(render(o, args.strict).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads FILE (or stdin for `-`) through a size cap, so a huge file is refused without being
/// read whole.
fn read_input(file: &Path, limits: &Limits) -> Result<Vec<u8>, FileError> {
    let cap = limits.max_input_bytes as u64 + 1;
    let mut buf = Vec::new();
    let stdin = file == Path::new("-");
    let res = if stdin {
        std::io::stdin().lock().take(cap).read_to_end(&mut buf)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(cap).read_to_end(&mut buf))
    };
    match res {
        Ok(_) => Ok(buf),
        Err(e) if stdin => Err(FileError::plain(format!("cannot read standard input: {e}"))),
        Err(e) => Err(FileError::plain(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
    }
}

fn check_file(file: &Path, limits: &Limits) -> Result<(Reading, Source), FileError> {
    let bytes = read_input(file, limits)?;
    check_bytes(&bytes, limits)
}

/// Gzip by magic, JSON by its first non-blank byte (a BOM is tolerated by the reader), an
/// e-mail message by its first header field; anything else goes to the JSON reader, whose
/// error says where the text stops being JSON.
fn check_bytes(bytes: &[u8], limits: &Limits) -> Result<(Reading, Source), FileError> {
    if read::is_gzip(bytes) {
        let reading = read::read_report(bytes, limits).map_err(|e| FileError::read("", &e))?;
        return Ok((
            reading,
            Source {
                gzip: true,
                ..Source::default()
            },
        ));
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && tlsrpt_core::message::looks_like_message(bytes) {
        return from_message(bytes, limits);
    }
    let reading = read::read_report(bytes, limits).map_err(|e| FileError::read("", &e))?;
    Ok((reading, Source::default()))
}

fn from_message(bytes: &[u8], limits: &Limits) -> Result<(Reading, Source), FileError> {
    let m = tlsrpt_core::message::extract_report(bytes, limits).map_err(|e| match &e {
        tlsrpt_core::message::MessageError::Report { source, .. } => {
            let mut fe = FileError::read("", source);
            fe.message = format!("e-mail message: {e}");
            fe
        }
        _ => FileError::plain(format!("e-mail message: {e}")),
    })?;
    Ok((
        m.reading,
        Source {
            message: Some(MessageInfo {
                media_type: m.media_type,
                filename: m.filename,
                report_domain: m.report_domain,
                report_submitter: m.report_submitter,
            }),
            gzip: false,
        },
    ))
}

/// The human-readable verdict on one file.
fn render(o: &Outcome, strict: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}:", o.file);
    let (reading, source) = match &o.result {
        Ok(x) => x,
        Err(e) => {
            if e.problems.is_empty() {
                let _ = writeln!(s, "  error: {}", e.message);
            } else {
                let _ = writeln!(
                    s,
                    "  error: unusable report, {} problem{}:",
                    e.problems.len(),
                    if e.problems.len() == 1 { "" } else { "s" }
                );
                for p in &e.problems {
                    let _ = writeln!(s, "    {p}");
                }
            }
            let _ = writeln!(s, "  result:       FAILED (not a usable report)");
            return s;
        }
    };
    let r: &Report = &reading.report;
    if let Some(m) = &source.message {
        let _ = writeln!(
            s,
            "  source:       e-mail message, report part {}{}",
            m.media_type,
            m.filename
                .as_deref()
                .map(|f| format!(", filename {f:?}"))
                .unwrap_or_default()
        );
        if m.report_domain.is_some() || m.report_submitter.is_some() {
            let _ = writeln!(
                s,
                "  headers:      TLS-Report-Domain: {}, TLS-Report-Submitter: {}",
                m.report_domain.as_deref().unwrap_or("(absent)"),
                m.report_submitter.as_deref().unwrap_or("(absent)")
            );
        }
    } else if source.gzip {
        let _ = writeln!(s, "  source:       gzip-compressed JSON");
    }
    let _ = writeln!(
        s,
        "  organisation: {}{}",
        r.organization_name.as_deref().unwrap_or("(not given)"),
        r.contact_info
            .as_deref()
            .map(|c| format!(" <{c}>"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "  report-id:    {}", r.report_id);
    let _ = writeln!(
        s,
        "  period:       {} .. {}",
        write::format_datetime(r.date_range.start),
        write::format_datetime(r.date_range.end)
    );
    let _ = writeln!(s, "  policies:     {}", r.policies.len());
    for (i, p) in r.policies.iter().enumerate() {
        let _ = writeln!(
            s,
            "  [{i}] {} {}: {} successful, {} failed sessions",
            p.policy.policy_type,
            p.policy
                .policy_domain
                .as_deref()
                .unwrap_or("(no policy-domain)"),
            p.summary.total_successful_session_count,
            p.summary.total_failure_session_count
        );
        if !p.policy.mx_host.is_empty() {
            let _ = writeln!(s, "      mx-host: {}", p.policy.mx_host.join(", "));
        }
        for d in &p.failure_details {
            let mut line = format!("      {} x{}", d.result_type, d.failed_session_count);
            if let Some(mx) = &d.receiving_mx_hostname {
                let _ = write!(line, ", mx {mx}");
            }
            if let Some(ip) = &d.receiving_ip {
                let _ = write!(line, ", receiving-ip {ip}");
            }
            if let Some(ip) = &d.sending_mta_ip {
                let _ = write!(line, ", sending-mta-ip {ip}");
            }
            if let Some(h) = &d.receiving_mx_helo {
                let _ = write!(line, ", helo {h}");
            }
            if let Some(c) = &d.failure_reason_code {
                let _ = write!(line, ", reason {c}");
            }
            if let Some(a) = &d.additional_information {
                let _ = write!(line, ", info {a}");
            }
            let _ = writeln!(s, "{line}");
        }
    }
    if reading.deviations.is_empty() {
        let _ = writeln!(s, "  deviations:   none");
    } else {
        let _ = writeln!(s, "  deviations:   {}", reading.deviations.len());
        for d in &reading.deviations {
            let _ = writeln!(s, "    {}: {}: {}", d.rule, d.path, d.message);
        }
    }
    let verdict = if o.ok(strict) {
        if reading.deviations.is_empty() {
            "OK"
        } else {
            "OK (usable, with deviations)"
        }
    } else {
        "FAILED (--strict: deviations from RFC 8460)"
    };
    let _ = writeln!(s, "  result:       {verdict}");
    s
}
