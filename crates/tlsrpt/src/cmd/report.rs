//! `tlsrpt report ...` (work in progress).

use std::process::ExitCode;

/// Report subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Build the reports a day's data gives, without sending anything.
    Preview(PreviewArgs),
}

/// Arguments of `report preview`.
#[derive(clap::Args, Debug)]
pub struct PreviewArgs {}

/// Runs a report subcommand.
pub fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
