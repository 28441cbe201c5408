//! `tlsrpt ingest` (work in progress).

use std::process::ExitCode;

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "";

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
