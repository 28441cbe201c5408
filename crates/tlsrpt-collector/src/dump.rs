//! Saving bad datagrams for later inspection, within a total size cap.
//!
//! The reference collector's dump path crashed the daemon when unset (DATAGRAM.md §6); here a
//! dump is best effort: any error is counted and logged (rate-limited) and receiving goes on.
//! The cap counts the bytes already in the directory at start-up (files we named), so restarts
//! cannot grow it without bound. Once the cap is reached nothing more is written until an
//! operator clears the directory and restarts.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tlsrpt_core::datagram::Reason;

use crate::CollectorError;

const PREFIX: &str = "invalid-datagram-";

pub(crate) struct Dumper {
    dir: PathBuf,
    max_bytes: u64,
    used: u64,
    seq: u64,
}

impl Dumper {
    /// Opens an existing directory (we create nothing) and sums what earlier runs left.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Dumper, CollectorError> {
        let entries = fs::read_dir(dir).map_err(|source| CollectorError::Io {
            context: "opening the dump directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let used = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(Dumper {
            dir: dir.to_path_buf(),
            max_bytes,
            used,
            seq: 0,
        })
    }

    /// Writes one datagram; `Ok(false)` when the cap would be exceeded.
    pub(crate) fn dump(&mut self, reason: Reason, bytes: &[u8]) -> std::io::Result<bool> {
        let len = bytes.len() as u64;
        if self.used.saturating_add(len) > self.max_bytes {
            return Ok(false);
        }
        self.seq += 1;
        let name = format!(
            "{PREFIX}{}-{}-{}.bin",
            jiff::Timestamp::now().as_millisecond(),
            self.seq,
            reason.as_str()
        );
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join(name))?;
        f.write_all(bytes)?;
        self.used = self.used.saturating_add(len);
        Ok(true)
    }
}
