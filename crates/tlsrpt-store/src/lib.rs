//! # tlsrpt-store
//!
//! The one storage interface of tlsrpt. Callers hold a [`Store`] and never see which database
//! is behind it: today SQLite (embedded, WAL), later PostgreSQL behind the same methods. The
//! backend is a private enum so adding one changes no caller.
//!
//! Only the collected-counters family exists so far: the collector adds increments
//! ([`Store::add_counters`]), the reporter reads one UTC day back as a
//! [`tlsrpt_core::tally::Tally`] ([`Store::load_tally`]), and old days are pruned
//! ([`Store::prune`]). Counters only ever add, in one transaction per flush, so a crash loses
//! at most the flush in flight and never half of one (RFC 8460 §4, REQUIREMENTS RPT-04).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::Duration;

use jiff::civil::Date;
use tlsrpt_core::tally::Tally;

mod codec;
/// The reporter's outbox (built reports, destinations, attempts, suppression list).
pub mod outbox;
mod received;
mod sqlite;

pub use received::{
    DkimStatus, InsertOutcome, MAX_SENDER_ROWS, ReceivedDetail, ReceivedFailure, ReceivedQuery,
    ReceivedReport, ReceivedSender, ReceivedStatus, ReceivedSummary, ReceivedVia, StatusFilter,
    StoredDeviation, received_cutoff,
};

/// Why a store operation failed.
///
/// Messages never contain secrets: URLs are shown with any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is not one this build can open (unknown scheme, malformed).
    #[error("invalid store URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or is busy (locked by another writer, disk full,
    /// I/O error, connection pool exhausted). Retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database holds data this version cannot read (not a database file, corrupt pages,
    /// a stored key that does not decode). Retrying will not help.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// Applying the schema migrations failed (e.g. the database was created by a newer
    /// tlsrpt).
    #[error("store migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// True when retrying the same operation later may succeed (the collector keeps its
    /// in-memory counters and retries on the next flush).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Tuning knobs for [`Store::open_with`]. The defaults suit the collector.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long a write waits for another process's write lock before failing with
    /// [`StoreError::Unavailable`]. Bounded so a stuck peer cannot stall the collector's
    /// flush forever: its counters stay in memory and go out with the next flush.
    pub busy_timeout: Duration,
    /// Connections in the pool (readers run in parallel; writes are serialised).
    pub max_connections: u32,
    /// Create the database when it does not exist (the collector), or fail (`report
    /// preview`, which should not leave an empty database behind a typo'd path).
    pub create_if_missing: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            max_connections: 4,
            create_if_missing: true,
        }
    }
}

/// A handle on the database. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens (creating if missing) the database at `url` with default options and applies
    /// pending migrations. `sqlite://PATH` (relative paths are relative to the current
    /// directory; the CLI resolves them against the config file first) or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit options.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            let s = sqlite::SqliteStore::open(url, options).await?;
            return Ok(Store {
                backend: Backend::Sqlite(s),
            });
        }
        let reason = match url.split_once(':') {
            Some(("postgres" | "postgresql", _)) => {
                "PostgreSQL is not supported by this version yet".to_owned()
            }
            Some((scheme, _)) => format!("unknown scheme `{scheme}` (expected sqlite://PATH)"),
            None => "expected a URL like sqlite://PATH".to_owned(),
        };
        Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason,
        })
    }

    /// Adds every counter of `delta` to the stored ones, in ONE transaction: either the whole
    /// flush is stored or none of it (so a retry never double-counts). Existing rows are
    /// incremented (`n = n + excluded.n`), so concurrent collectors add up exactly
    /// (REQUIREMENTS RPT-04).
    pub async fn add_counters(&self, delta: &Tally) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_counters(delta).await,
        }
    }

    /// Reads back one UTC day (optionally one policy domain; compared after lower-casing and
    /// stripping one trailing dot) as a tally.
    pub async fn load_tally(&self, day: Date, domain: Option<&str>) -> Result<Tally, StoreError> {
        let domain = domain.map(normalize_domain);
        match &self.backend {
            Backend::Sqlite(s) => s.load_tally(day, domain.as_deref()).await,
        }
    }

    /// Deletes counters of days before `today - keep_days` (`keep_days` never fewer than 2):
    /// today and the `keep_days` full days before it survive, so every session is kept at
    /// least 48 hours after its day ended and a day's report can be retried
    /// (REQUIREMENTS RPT-21). Returns the number of rows deleted.
    pub async fn prune(&self, today: Date, keep_days: u32) -> Result<u64, StoreError> {
        let first_kept = first_kept_day(today, keep_days);
        match &self.backend {
            Backend::Sqlite(s) => s.prune_before(first_kept).await,
        }
    }

    /// A short description for logs, with any password redacted.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.describe(),
        }
    }

    /// Closes the pool, waiting for in-flight operations (and checkpointing the WAL).
    pub async fn close(self) {
        match self.backend {
            Backend::Sqlite(s) => s.close().await,
        }
    }
}

/// The fewest full days before today that [`Store::prune`] keeps (REQUIREMENTS RPT-21: raw
/// data for at least 48 h after a day ends).
pub const MIN_KEEP_DAYS: u32 = 2;

/// The oldest day [`Store::prune`] keeps: `today - max(keep_days, 2)`.
pub fn first_kept_day(today: Date, keep_days: u32) -> Date {
    let keep = i64::from(keep_days.max(MIN_KEEP_DAYS));
    // Saturate at the calendar's start rather than fail: nothing is older than that.
    today
        .checked_sub(jiff::Span::new().days(keep))
        .unwrap_or(Date::MIN)
}

/// Lower case, one trailing dot removed: the collector's normalisation of the datagram's `d`
/// (DATAGRAM.md §3).
fn normalize_domain(d: &str) -> String {
    d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase()
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`, so that errors and logs can
/// name the database without leaking its password.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let tail = redact_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => format!("{scheme}://{authority}{tail}"),
        },
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `?password=x&y=z` → `?password=***&y=z` (libpq-style URLs accept the password there too).
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://tlsrpt:s3cret@db.example:5432/tlsrpt"),
            "postgres://tlsrpt:***@db.example:5432/tlsrpt"
        );
        assert_eq!(redact_url("sqlite://./tlsrpt.db"), "sqlite://./tlsrpt.db");
        assert_eq!(
            redact_url("postgres://u@h/db?password=x"),
            "postgres://u@h/db?password=***"
        );
    }

    #[test]
    fn rpt_21_keeps_at_least_two_full_days() {
        let today = jiff::civil::date(2026, 3, 1);
        assert_eq!(first_kept_day(today, 0), jiff::civil::date(2026, 2, 27));
        assert_eq!(first_kept_day(today, 2), jiff::civil::date(2026, 2, 27));
        assert_eq!(first_kept_day(today, 14), jiff::civil::date(2026, 2, 15));
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_leaking_passwords() {
        let e = Store::open("postgres://u:hunter2@localhost/x")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("not supported"), "{msg}");
        assert!(matches!(
            Store::open("mysql://x").await,
            Err(StoreError::InvalidUrl { .. })
        ));
    }
}
