//! `tlsrpt check`: is this `_smtp._tls` TXT RRset a working TLSRPT policy (RFC 8460 §3)?
//!
//! Two forms:
//! * `--txt` (one per RR, as dig prints it): the RRset is given on the command line; all the
//!   rules live in `tlsrpt_core::record`.
//! * `<domain>`: live checks through DNS and HTTPS (`tlsrpt_net::check`): the TLSRPT record,
//!   the MTA-STS record and policy, the MX hosts and the policy's coverage of them, and TLSA
//!   records per MX. `--json` then prints `tlsrpt_net::check::DomainCheck`.
//!
//! This module only renders the verdict for a person (default) or a program (`--json`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use tlsrpt_core::record::{
    self, NoTlsrpt, Outcome, RecordError, ReportingUri, Selection, TlsrptRecord,
};

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "\
Examples:
  # Live check of a domain: TLSRPT record, MTA-STS record and policy, MX coverage, TLSA:
  tlsrpt check example.com

  # Against a test DNS server and a test HTTPS server with a private CA:
  tlsrpt check example.test --nameserver 127.0.0.1:5353 --allow-private-targets --extra-ca ca.pem

  # Check the record you are about to publish (unquoted text is one string):
  tlsrpt check --txt 'v=TLSRPTv1; rua=mailto:tlsrpt@example.com'

  # Paste the RRset as dig prints it, one --txt per line of `dig +short TXT _smtp._tls.example.com`:
  tlsrpt check --txt '\"v=spf1 -all\"' --txt '\"v=TLSRPTv1; rua=mailto:tls@exa\" \"mple.com\"'

  # Check what DNS serves now (bash; one --txt per RR):
  mapfile -t rrs < <(dig +short TXT _smtp._tls.example.com); tlsrpt check \"${rrs[@]/#/--txt=}\"

  # For scripts: exactly {\"valid\",\"record\",\"rua\",\"errors\",\"warnings\"} on stdout:
  tlsrpt check --json --txt 'v=TLSRPTv1; rua=https://tlsrpt.example.com/v1'

Exit status: 0 if exactly one valid TLSRPT record with a usable rua URI (mailto: or https:) is
found (and, for a <domain>, no check fails), 1 if not, 2 on usage errors (including a --txt value
with broken quotes).";

/// One TXT RR given on the command line, split into its character-strings.
#[derive(Clone, Debug)]
pub struct Rr(Vec<Vec<u8>>);

fn parse_rr(s: &str) -> Result<Rr, RecordError> {
    record::split_presentation(s).map(Rr)
}

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One TXT RR of the `_smtp._tls.<domain>` RRset, as dig prints it ("abc" "def": quoted
    /// character-strings, joined without a separator) or as plain text (one string). Repeat
    /// for each RR of the set.
    #[arg(
        long = "txt",
        value_name = "RR",
        required_unless_present = "domain",
        conflicts_with = "domain",
        value_parser = parse_rr
    )]
    txt: Vec<Rr>,
    /// The domain to check live: its _smtp._tls record, _mta-sts record and policy, MX hosts
    /// and TLSA records.
    #[arg(value_name = "DOMAIN")]
    domain: Option<String>,
    /// DNS server to ask instead of the system resolver (IP:PORT); repeat for several.
    #[arg(long = "nameserver", value_name = "IP:PORT", conflicts_with = "txt")]
    nameserver: Vec<SocketAddr>,
    /// Allow the policy fetch to connect to loopback/private addresses (tests only).
    #[arg(long, conflicts_with = "txt")]
    allow_private_targets: bool,
    /// PEM file with extra CA certificates to trust for the policy fetch.
    #[arg(long, value_name = "FILE", conflicts_with = "txt")]
    extra_ca: Option<PathBuf>,
    /// Port of the MTA-STS policy server (always 443 in real life; for tests).
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 443,
        conflicts_with = "txt",
        hide = true
    )]
    mta_sts_port: u16,
    /// Print JSON on stdout instead of the report for humans. With --txt: {"valid", "record",
    /// "rua", "errors", "warnings"} ("rua" lists the URIs reports would be sent to). With a
    /// domain: {"domain", "tlsrpt_valid", "rua", "mta_sts_mode", "mta_sts_policy", "mx",
    /// "items": [{"check", "verdict", "detail", "fix", "rule"}]}.
    #[arg(long)]
    json: bool,
}

/// The `--json` output, exactly these keys in this order.
#[derive(Serialize, Debug)]
struct JsonVerdict {
    valid: bool,
    record: Option<String>,
    rua: Vec<String>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(domain) = args.domain.clone() {
        return run_domain(&domain, args);
    }
    let rrset: Vec<Vec<Vec<u8>>> = args.txt.into_iter().map(|Rr(s)| s).collect();
    let sel = record::select(&rrset);
    let valid = matches!(sel.outcome, Outcome::Found { .. });
    if args.json {
        let verdict = json_verdict(&sel);
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        print!("{}", human(&rrset, &sel));
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn json_verdict(sel: &Selection) -> JsonVerdict {
    let warnings = sel.warnings.iter().map(ToString::to_string).collect();
    match &sel.outcome {
        Outcome::Found { text, parsed } => JsonVerdict {
            valid: true,
            record: Some(text.clone()),
            rua: parsed
                .record
                .usable_rua()
                .map(|u| u.as_str().to_string())
                .collect(),
            errors: vec![],
            warnings,
        },
        Outcome::NothingToSend { text, .. } => JsonVerdict {
            valid: false,
            record: Some(text.clone()),
            rua: vec![],
            errors: vec![nothing_to_send_message()],
            warnings,
        },
        Outcome::NoTlsrpt(why) => JsonVerdict {
            valid: false,
            record: match why {
                NoTlsrpt::Invalid { text, .. } => Some(text.clone()),
                _ => None,
            },
            rua: vec![],
            errors: vec![why.to_string()],
            warnings,
        },
    }
}

fn nothing_to_send_message() -> String {
    "the record is valid, but none of its rua URIs is mailto: or https:, so reporters have \
     nowhere to send reports (DNS-10)"
        .to_string()
}

/// The report for a person: the RRs as given, the verdict, the record's destinations, and
/// every warning, with a fix for each problem where we know one.
fn human(rrset: &[Vec<Vec<u8>>], sel: &Selection) -> String {
    let mut o = String::new();
    let n = rrset.len();
    let _ = writeln!(
        o,
        "TXT RRset at _smtp._tls ({n} record{}):",
        if n == 1 { "" } else { "s" }
    );
    for (i, rr) in rrset.iter().enumerate() {
        let text: Vec<u8> = rr.concat();
        let tag = if record::begins_with_version(rr) {
            "TLSRPT"
        } else {
            "other, ignored"
        };
        let _ = writeln!(
            o,
            "  {}. {}  [{tag}]",
            i + 1,
            record::to_presentation(&text)
        );
    }
    o.push('\n');
    match &sel.outcome {
        Outcome::Found { text, parsed } => {
            let _ = writeln!(o, "OK: one valid TLSRPT record.");
            let _ = writeln!(o, "  record: {}", printable(text));
            describe(&mut o, &parsed.record);
        }
        Outcome::NothingToSend { text, parsed } => {
            let _ = writeln!(o, "FAIL: {}", nothing_to_send_message());
            let _ = writeln!(o, "  record: {}", printable(text));
            describe(&mut o, &parsed.record);
            let _ = writeln!(
                o,
                "  fix: add a mailto: or https:// URI, e.g. rua=mailto:tlsrpt@your.domain"
            );
        }
        Outcome::NoTlsrpt(NoTlsrpt::NoRecord) => {
            let _ = writeln!(
                o,
                "FAIL: no TLSRPT: no TXT record begins with \"v=TLSRPTv1;\" (DNS-04)."
            );
            let _ = writeln!(
                o,
                "  fix: publish one TXT record like \"v=TLSRPTv1; rua=mailto:tlsrpt@your.domain\""
            );
        }
        Outcome::NoTlsrpt(NoTlsrpt::Several { count }) => {
            let _ = writeln!(
                o,
                "FAIL: no TLSRPT: {count} TXT records begin with \"v=TLSRPTv1;\"; exactly one is \
                 allowed, so senders use none (DNS-04)."
            );
            let _ = writeln!(
                o,
                "  fix: merge them into one record: v=TLSRPTv1; rua=<uri>,<uri>"
            );
        }
        Outcome::NoTlsrpt(NoTlsrpt::Invalid { text, error }) => {
            let _ = writeln!(
                o,
                "FAIL: no TLSRPT: the record is invalid, so senders ignore it (DNS-16)."
            );
            let _ = writeln!(o, "  record: {}", printable(text));
            let _ = writeln!(o, "          {}^", caret_pad(text, error.offset()));
            let _ = writeln!(o, "  error: {error}");
            if let Some(hint) = error.hint() {
                let _ = writeln!(o, "  fix: {hint}");
            }
        }
    }
    if !sel.warnings.is_empty() {
        let _ = writeln!(o, "  warnings:");
        for w in &sel.warnings {
            let _ = writeln!(o, "    - {w}");
        }
    }
    if let Outcome::Found { parsed, text } | Outcome::NothingToSend { parsed, text } = &sel.outcome
        && let Ok(canon) = parsed.record.to_canonical_string()
        && canon != *text
    {
        let _ = writeln!(
            o,
            "  suggested record: {}",
            record::to_presentation(canon.as_bytes())
        );
    }
    o
}

/// Lists the rua URIs (what happens with each) and the extensions.
fn describe(o: &mut String, rec: &TlsrptRecord) {
    let _ = writeln!(o, "  rua:");
    let mut usable = 0usize;
    for u in &rec.rua {
        let what = match u {
            ReportingUri::Mailto { address, .. } => {
                usable += 1;
                format!("reports by e-mail to {address}")
            }
            ReportingUri::Https { .. } => {
                usable += 1;
                "reports by HTTPS POST".to_string()
            }
            ReportingUri::Unsupported { scheme, .. } => {
                format!("ignored: scheme \"{scheme}\" is not supported")
            }
        };
        let what = if u.is_usable() && usable > record::MAX_USABLE_RUA {
            format!(
                "ignored: only the first {} usable URIs are used",
                record::MAX_USABLE_RUA
            )
        } else {
            what
        };
        let _ = writeln!(o, "    {}  ({what})", u.as_str());
    }
    for e in &rec.extensions {
        let _ = writeln!(
            o,
            "  extension: {}={}  (not defined by RFC 8460, ignored)",
            e.name, e.value
        );
    }
}

/// The text with control characters (other than tab) replaced one-for-one, so a stray
/// newline cannot garble the terminal or shift the caret.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Spaces (tabs kept) to put a caret under byte `offset` of `text`.
fn caret_pad(text: &str, offset: usize) -> String {
    text.char_indices()
        .take_while(|(i, _)| *i < offset)
        .map(|(_, c)| if c == '\t' { '\t' } else { ' ' })
        .collect()
}

/// `tlsrpt check <domain>`: live checks (tlsrpt_net::check).
fn run_domain(domain: &str, args: Args) -> anyhow::Result<ExitCode> {
    tlsrpt_net::install_crypto();
    let opts = tlsrpt_net::check::CheckOptions {
        nameservers: args.nameserver,
        allow_private_targets: args.allow_private_targets,
        extra_ca: args.extra_ca,
        policy_port: args.mta_sts_port,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(tlsrpt_net::check::check_domain(domain, &opts))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", human_domain(&result));
    }
    Ok(if result.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per check: verdict, check, detail; then the fix indented below it.
fn human_domain(r: &tlsrpt_net::check::DomainCheck) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Checks for {}:", r.domain);
    for it in &r.items {
        let rule = match (it.verdict, it.rule) {
            (tlsrpt_net::check::Verdict::Ok, _) | (_, None) => String::new(),
            (_, Some(r)) if it.detail.contains(r) => String::new(),
            (_, Some(r)) => format!(" [{r}]"),
        };
        let _ = writeln!(
            o,
            "  {:<4}  {}: {}{rule}",
            it.verdict.as_str().to_ascii_uppercase(),
            it.check,
            printable(&it.detail)
        );
        if let Some(fix) = &it.fix {
            let _ = writeln!(o, "        fix: {}", printable(fix));
        }
    }
    let _ = writeln!(
        o,
        "\nResult: {}",
        if r.passed() {
            "OK: the TLSRPT record is valid and no check failed."
        } else if !r.tlsrpt_valid {
            "FAIL: no valid TLSRPT record."
        } else {
            "FAIL: at least one check failed."
        }
    );
    o
}
