//! One module per subcommand.

pub mod check;
pub mod ingest;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod validate;
