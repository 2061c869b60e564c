//! Deleting the files no reader counts any more: those a commit removed (after
//! a grace period, since a server may still be reading them under an older
//! snapshot) and those of transactions that never committed (a killed ingest;
//! after a longer period, since a running ingest's files look the same).
//! Owns no decision about what is visible; the log makes that.

use std::time::Duration;

use object_store::ObjectStoreExt;

use super::log::{is_owned_name, LogState};
use super::schema::Table;
use super::{Lake, Result};

/// How long removed and uncommitted files are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// A file a commit removed is deleted this long after that commit.
    pub removed: Duration,
    /// A file of a transaction that never committed is deleted this long after it was written.
    pub uncommitted: Duration,
}

impl Default for Retention {
    /// What every ingest applies: 10 minutes for removed files (longer than a
    /// server's refresh interval plus its query timeout), a day for
    /// uncommitted ones (longer than any ingest runs).
    fn default() -> Self {
        Retention { removed: Duration::from_secs(600), uncommitted: Duration::from_secs(86_400) }
    }
}

/// What a vacuum deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumSummary {
    pub removed_deleted: usize,
    pub uncommitted_deleted: usize,
    pub bytes: u64,
}

/// Deletes the files past their retention; returns what it deleted.
pub async fn vacuum(lake: &Lake, keep: Retention) -> Result<VacuumSummary> {
    let state = LogState::load(lake).await?;
    let now = chrono::Utc::now();
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let removed_before = now.timestamp_micros().saturating_sub(micros(keep.removed));
    let uncommitted_before = now.timestamp_micros().saturating_sub(micros(keep.uncommitted));
    let mut summary = VacuumSummary::default();
    for table in Table::ALL {
        for meta in lake.list_all(table).await? {
            let rel = lake.relative(&meta.location).to_string();
            let name = meta.location.filename().unwrap_or_default();
            let written_us = meta.last_modified.timestamp_micros();
            let removed = match state.removed.get(&rel) {
                // Written again after it was removed: another pipeline's new file.
                Some(_) if !state.removed_before(&rel, &meta) => continue,
                Some(at) if *at < removed_before => true,
                Some(_) => continue,
                None => false,
            };
            // A removed file re-added later (the same path) is live again.
            if state.live.contains_key(&rel) {
                continue;
            }
            let uncommitted = !removed
                && written_us < uncommitted_before
                && (is_owned_name(name) || name.ends_with(".parquet.inprogress"));
            if !removed && !uncommitted {
                continue;
            }
            match lake.store().delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            summary.bytes += meta.size;
            if removed {
                summary.removed_deleted += 1;
            } else {
                summary.uncommitted_deleted += 1;
            }
        }
    }
    Ok(summary)
}
