//! The SQLite backend: one file, WAL journal, `synchronous=NORMAL`.
//!
//! WAL lets the reporter read while the collector writes; `synchronous=NORMAL` keeps every
//! committed flush across a process crash (only a power loss may lose the last commits), at
//! a fraction of FULL's fsync cost. Writes from this process are serialised by a mutex so that
//! the SQLite busy timeout only ever waits for *other* processes.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::civil::Date;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use tlsrpt_core::tally::{PolicyCounters, ReportKey, Tally};

use crate::codec;
use crate::{StoreError, StoreOptions, redact_url};

/// Rows per multi-row `INSERT`: fewer statement round trips per flush, far below SQLite's
/// 32,766 bound-parameter limit (6 or 7 parameters per row).
const BATCH_ROWS: usize = 128;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    write_lock: tokio::sync::Mutex<()>,
    url: String,
    /// Received reports waiting to be written together (group commit, received.rs).
    received_queue: crate::received::GroupCommit,
}

/// Maps an sqlx error onto the store's categories by SQLite's primary result code.
pub(crate) fn classify(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match code {
                // SQLITE_CORRUPT, SQLITE_NOTADB
                Some(11 | 26) => StoreError::Corrupt(format!("{context}: {}", db.message())),
                _ => StoreError::Unavailable(format!("{context}: {}", db.message())),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            StoreError::Corrupt(format!("{context}: {e}"))
        }
        _ => StoreError::Unavailable(format!("{context}: {e}")),
    }
}

fn count_to_sql(n: u64) -> i64 {
    // A day's counter cannot reach 2^63 sessions; saturate rather than wrap if it ever did.
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count_from_sql(what: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative {what} counter {n}")))
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?
            .create_if_missing(options.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            // Statement journals (every multi-row INSERT inside a transaction keeps one, so it
            // can undo itself alone) stay in memory instead of a temporary file: perf showed
            // the receiver's group commit spending ~12% of its writer thread in temp-file
            // writes. They hold one statement's changed pages, bounded by the batch size.
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(options.busy_timeout + std::time::Duration::from_secs(5))
            .connect_with(connect)
            .await
            .map_err(|e| classify(&format!("opening {shown}"), e))?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => {
                match classify(&format!("migrating {shown}"), inner) {
                    StoreError::Unavailable(m) => StoreError::Unavailable(m),
                    StoreError::Corrupt(m) => StoreError::Corrupt(m),
                    other => StoreError::Migration(other.to_string()),
                }
            }
            other => StoreError::Migration(format!("{shown}: {other}")),
        })?;
        tracing::debug!(store = %shown, "sqlite store open");
        Ok(SqliteStore {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            url: shown,
            received_queue: crate::received::GroupCommit::default(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.url.clone()
    }

    /// The connection pool, for the other table families' `impl` blocks (outbox.rs).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The queue of received reports waiting for the next group commit (received.rs).
    pub(crate) fn received_queue(&self) -> &crate::received::GroupCommit {
        &self.received_queue
    }

    /// Serialises this process's writes (see the module docs).
    pub(crate) fn write_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.write_lock
    }

    pub(crate) async fn add_counters(&self, delta: &Tally) -> Result<(), StoreError> {
        // Encode every row first: no work inside the write lock but the SQL itself.
        let mut policy_rows: Vec<(String, &str, &str, String, i64, i64)> = Vec::new();
        let mut failure_rows: Vec<(String, &str, &str, String, String, i64)> = Vec::new();
        for (key, policies) in &delta.reports {
            let day = key.day.to_string();
            for (policy, c) in policies {
                let ptext = codec::encode_policy(policy);
                for (failure, n) in &c.failures {
                    failure_rows.push((
                        day.clone(),
                        &key.domain,
                        &key.record,
                        ptext.clone(),
                        codec::encode_failure(failure),
                        count_to_sql(*n),
                    ));
                }
                policy_rows.push((
                    day.clone(),
                    &key.domain,
                    &key.record,
                    ptext,
                    count_to_sql(c.successful),
                    count_to_sql(c.failed),
                ));
            }
        }
        if policy_rows.is_empty() && failure_rows.is_empty() {
            return Ok(());
        }

        let _guard = self.write_lock.lock().await;
        // IMMEDIATE takes the write lock up front, so a busy database fails here (after the
        // busy timeout) instead of half-way through.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting a write transaction", e))?;

        for chunk in policy_rows.chunks(BATCH_ROWS) {
            let mut sql = String::from(
                "INSERT INTO policy_counters (day, domain, record, policy, successful, failed) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 6);
            sql.push_str(
                " ON CONFLICT (day, domain, record, policy) DO UPDATE SET \
                 successful = successful + excluded.successful, \
                 failed = failed + excluded.failed",
            );
            // Only the full-batch shape is kept prepared: caching every remainder size
            // (1..127 rows, per table and per connection) held tens of MB of SQLite
            // statements after a flush of 100,000 new keys.
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == BATCH_ROWS);
            for (day, domain, record, policy, s, f) in chunk {
                q = q
                    .bind(day.as_str())
                    .bind(*domain)
                    .bind(*record)
                    .bind(policy.as_str())
                    .bind(*s)
                    .bind(*f);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| classify("adding policy counters", e))?;
        }
        for chunk in failure_rows.chunks(BATCH_ROWS) {
            let mut sql = String::from(
                "INSERT INTO failure_counters (day, domain, record, policy, failure, sessions) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 6);
            sql.push_str(
                " ON CONFLICT (day, domain, record, policy, failure) DO UPDATE SET \
                 sessions = sessions + excluded.sessions",
            );
            // Only the full-batch shape is kept prepared: caching every remainder size
            // (1..127 rows, per table and per connection) held tens of MB of SQLite
            // statements after a flush of 100,000 new keys.
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == BATCH_ROWS);
            for (day, domain, record, policy, failure, n) in chunk {
                q = q
                    .bind(day.as_str())
                    .bind(*domain)
                    .bind(*record)
                    .bind(policy.as_str())
                    .bind(failure.as_str())
                    .bind(*n);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| classify("adding failure counters", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| classify("committing counters", e))?;
        Ok(())
    }

    pub(crate) async fn load_tally(
        &self,
        day: Date,
        domain: Option<&str>,
    ) -> Result<Tally, StoreError> {
        let day_text = day.to_string();
        // One query per table; a NULL domain means every domain of the day.
        let policy_rows = sqlx::query(
            "SELECT domain, record, policy, successful, failed FROM policy_counters \
             WHERE day = ?1 AND (?2 IS NULL OR domain = ?2)",
        )
        .bind(&day_text)
        .bind(domain)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify("loading policy counters", e))?;
        let failure_rows = sqlx::query(
            "SELECT domain, record, policy, failure, sessions FROM failure_counters \
             WHERE day = ?1 AND (?2 IS NULL OR domain = ?2)",
        )
        .bind(&day_text)
        .bind(domain)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify("loading failure counters", e))?;

        let mut tally = Tally::default();
        // Decode each distinct policy text once.
        let mut policies = BTreeMap::new();
        let mut policy_of = |text: String| -> Result<tlsrpt_core::Policy, StoreError> {
            if let Some(p) = policies.get(&text) {
                return Ok(Clone::clone(p));
            }
            let p = codec::decode_policy(&text)
                .map_err(|e| StoreError::Corrupt(format!("stored policy {text:?}: {e}")))?;
            policies.insert(text, p.clone());
            Ok(p)
        };
        for row in policy_rows {
            let get = |e| classify("reading a policy counter row", e);
            let domain: String = row.try_get(0).map_err(get)?;
            let record: String = row.try_get(1).map_err(get)?;
            let policy = policy_of(row.try_get(2).map_err(get)?)?;
            let successful = count_from_sql("successful", row.try_get(3).map_err(get)?)?;
            let failed = count_from_sql("failed", row.try_get(4).map_err(get)?)?;
            let c = tally
                .reports
                .entry(ReportKey {
                    day,
                    domain,
                    record,
                })
                .or_default()
                .entry(policy)
                .or_insert_with(PolicyCounters::default);
            c.successful = c.successful.saturating_add(successful);
            c.failed = c.failed.saturating_add(failed);
        }
        for row in failure_rows {
            let get = |e| classify("reading a failure counter row", e);
            let domain: String = row.try_get(0).map_err(get)?;
            let record: String = row.try_get(1).map_err(get)?;
            let policy = policy_of(row.try_get(2).map_err(get)?)?;
            let text: String = row.try_get(3).map_err(get)?;
            let failure = codec::decode_failure(&text)
                .map_err(|e| StoreError::Corrupt(format!("stored failure {text:?}: {e}")))?;
            let n = count_from_sql("failure", row.try_get(4).map_err(get)?)?;
            let c = tally
                .reports
                .entry(ReportKey {
                    day,
                    domain,
                    record,
                })
                .or_default()
                .entry(policy)
                .or_insert_with(PolicyCounters::default);
            let slot = c.failures.entry(failure).or_insert(0);
            *slot = slot.saturating_add(n);
        }
        Ok(tally)
    }

    pub(crate) async fn prune_before(&self, first_kept: Date) -> Result<u64, StoreError> {
        let cut = first_kept.to_string();
        let _guard = self.write_lock.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| classify("starting a prune transaction", e))?;
        let a = sqlx::query("DELETE FROM failure_counters WHERE day < ?")
            .bind(&cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("pruning failure counters", e))?
            .rows_affected();
        let b = sqlx::query("DELETE FROM policy_counters WHERE day < ?")
            .bind(&cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("pruning policy counters", e))?
            .rows_affected();
        tx.commit()
            .await
            .map_err(|e| classify("committing the prune", e))?;
        Ok(a + b)
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}

/// Appends `(?,?,…),(?,?,…)` for `rows` rows of `cols` columns.
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
}
