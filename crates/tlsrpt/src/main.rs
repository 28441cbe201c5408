//! `tlsrpt`: SMTP TLS Reporting (RFC 8460) in one binary.
//!
//! The binary is thin: each subcommand parses its arguments here and calls into the library
//! crates. Exit codes follow DESIGN.md: 0 success, 1 the input or check failed, 2 usage error
//! (clap's own errors also exit 2).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod config;

/// SMTP TLS Reporting (RFC 8460): collect TLS session results from MTAs, send daily reports,
/// receive and check them.
#[derive(Parser, Debug)]
#[command(name = "tlsrpt", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate and pretty-print TLS reports (JSON, gzip or whole e-mail messages).
    #[command(after_help = cmd::validate::EXAMPLES)]
    Validate(cmd::validate::Args),
    /// Check a domain's TLSRPT record (live: with its MTA-STS policy, MX and TLSA), or a given RRset.
    #[command(after_help = cmd::check::EXAMPLES)]
    Check(cmd::check::Args),
    /// Run the roles the config file enables: collector, reporter, receiver, JSON API.
    #[command(after_help = cmd::serve::EXAMPLES)]
    Serve(cmd::serve::Args),
    /// Build, send and list the daily reports (preview, send, list).
    #[command(subcommand)]
    Report(cmd::report::Command),
    /// Take reports delivered by mail: one message on stdin or a file, or a Maildir.
    #[command(after_help = cmd::ingest::EXAMPLES)]
    Ingest(cmd::ingest::Args),
    /// Send libtlsrpt datagrams to a collector socket, like a busy MTA would.
    #[command(after_help = cmd::simulate::EXAMPLES)]
    Simulate(cmd::simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(a) => cmd::validate::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Report(c) => cmd::report::run(c),
        Command::Ingest(a) => cmd::ingest::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tlsrpt: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
