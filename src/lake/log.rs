//! The lake's commit log: which files vitals wrote are committed, and which
//! files (its own or another pipeline's) a commit replaced. One JSON object per
//! commit at `_vitals/log/<version>.json`, created with a put that fails when
//! the version exists (a hard link locally, `If-None-Match: *` on S3), so a
//! commit is one atomic step and two writers never both take a version.
//! Owns no data files and no reading of Parquet.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::schema::Table;
use super::{Lake, LakeError, Result};

/// The folder of the log under the lake root (hidden from table listings).
pub const LOG_DIR: &str = "_vitals/log";
/// A checkpoint (the whole state) is written after every this many commits,
/// so a reader starting up reads one checkpoint and a few commits.
const CHECKPOINT_EVERY: u64 = 64;
/// Digits of a version in a file name: names sort in version order.
const VERSION_DIGITS: usize = 20;

/// A data file a commit made visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFile {
    /// Relative to the lake root, such as `events/event_date=2026-01-06/vitals-<txn>-00001.parquet`.
    pub path: String,
    pub size: u64,
    pub rows: u64,
    /// The first and last event_time (microseconds) of an events file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<i64>,
}

impl AddFile {
    /// The table a path belongs to (its first folder).
    pub fn table(&self) -> Option<Table> {
        table_of(&self.path)
    }
}

/// The table of a path relative to the lake root.
pub fn table_of(path: &str) -> Option<Table> {
    path.split('/').next().and_then(Table::parse)
}

/// One commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub version: u64,
    /// The transaction that wrote the added files (their names carry it).
    pub txn: String,
    /// When it was committed, microseconds since the epoch.
    pub at_us: i64,
    /// What made it, for people reading the log: "ingest events", "demo".
    pub operation: String,
    #[serde(default)]
    pub add: Vec<AddFile>,
    /// Files this commit takes out of the lake (relative paths); they are
    /// deleted later, when no reader can still be using them.
    #[serde(default)]
    pub remove: Vec<String>,
}

impl Commit {
    /// Whether the commit adds or removes files of `table`.
    pub fn touches(&self, table: Table) -> bool {
        self.add.iter().any(|a| a.table() == Some(table)) || self.remove.iter().any(|r| table_of(r) == Some(table))
    }
}

/// The whole log replayed up to `version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogState {
    pub version: u64,
    /// Files vitals wrote that are committed and not removed, by relative path.
    pub live: BTreeMap<String, AddFile>,
    /// Every file a commit removed, with the time of that commit.
    pub removed: BTreeMap<String, i64>,
}

impl LogState {
    /// Reads the whole log (from its latest checkpoint on).
    pub async fn load(lake: &Lake) -> Result<LogState> {
        let mut state = LogState::default();
        state.catch_up(lake).await?;
        Ok(state)
    }

    /// Reads the commits after `self.version` and applies them; returns them.
    pub async fn catch_up(&mut self, lake: &Lake) -> Result<Vec<Commit>> {
        let names = list(lake).await?;
        if self.version == 0 {
            let latest = names.iter().filter(|n| n.checkpoint).map(|n| n.version).max();
            if let Some(v) = latest {
                let bytes = read(lake, &checkpoint_path(lake, v)).await?;
                *self = serde_json::from_slice(&bytes).map_err(|e| corrupt(&format!("checkpoint {v}"), e))?;
            }
        }
        let mut newer: Vec<u64> = names.iter().filter(|n| !n.checkpoint && n.version > self.version).map(|n| n.version).collect();
        newer.sort_unstable();
        let mut commits = Vec::with_capacity(newer.len());
        for v in newer {
            if v != self.version + 1 {
                return Err(LakeError::Log(format!(
                    "commit {} is missing from {LOG_DIR} (the next one found is {v}); the log was changed by hand",
                    self.version + 1
                )));
            }
            let commit = read_commit(lake, v).await?.ok_or_else(|| LakeError::Log(format!("commit {v} vanished while it was read")))?;
            self.apply(&commit);
            commits.push(commit);
        }
        Ok(commits)
    }

    /// Whether a commit removed the file at `path` as it is now: it was
    /// removed, and not written again after that commit.
    pub fn removed_before(&self, path: &str, meta: &object_store::ObjectMeta) -> bool {
        self.removed.get(path).is_some_and(|at| meta.last_modified.timestamp_micros() <= *at)
    }

    /// Applies one commit (its version must be the next one).
    pub fn apply(&mut self, c: &Commit) {
        for a in &c.add {
            self.live.insert(a.path.clone(), a.clone());
        }
        for r in &c.remove {
            self.live.remove(r);
            self.removed.insert(r.clone(), c.at_us);
        }
        self.version = c.version;
    }
}

fn corrupt(what: &str, e: serde_json::Error) -> LakeError {
    LakeError::Log(format!("{LOG_DIR}: {what} is not a valid log entry: {e}"))
}

/// A log file's version and kind.
struct LogName {
    version: u64,
    checkpoint: bool,
}

fn parse_name(name: &str) -> Option<LogName> {
    let (digits, checkpoint) = match name.strip_suffix(".checkpoint.json") {
        Some(d) => (d, true),
        None => (name.strip_suffix(".json")?, false),
    };
    if digits.len() != VERSION_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(LogName { version: digits.parse().ok()?, checkpoint })
}

fn log_prefix(lake: &Lake) -> Path {
    lake.child(LOG_DIR)
}

fn commit_path(lake: &Lake, version: u64) -> Path {
    log_prefix(lake).join(format!("{version:0width$}.json", width = VERSION_DIGITS))
}

fn checkpoint_path(lake: &Lake, version: u64) -> Path {
    log_prefix(lake).join(format!("{version:0width$}.checkpoint.json", width = VERSION_DIGITS))
}

/// The log's files. Anything else in the folder (a writer's temporary file
/// left by a crash) is not part of the log.
async fn list(lake: &Lake) -> Result<Vec<LogName>> {
    let prefix = log_prefix(lake);
    let found: Vec<_> = match lake.store().list(Some(&prefix)).try_collect().await {
        Ok(v) => v,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(found.iter().filter_map(|m| m.location.filename().and_then(parse_name)).collect())
}

async fn read(lake: &Lake, path: &Path) -> Result<Bytes> {
    Ok(lake.store().get(path).await?.bytes().await?)
}

/// One commit, or None when that version does not exist.
pub async fn read_commit(lake: &Lake, version: u64) -> Result<Option<Commit>> {
    match lake.store().get(&commit_path(lake, version)).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            let c: Commit = serde_json::from_slice(&bytes).map_err(|e| corrupt(&format!("commit {version}"), e))?;
            Ok(Some(c))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a commit attempt came to.
#[derive(Debug)]
pub enum Put {
    /// The version is ours.
    Done,
    /// Another commit took the version first; it is returned.
    Taken(Commit),
}

/// Writes `commit` as its version unless that version exists. An error whose
/// outcome is unknown (the store may have written it) is settled by reading
/// the version back: a commit with our transaction id is ours.
pub async fn put_commit(lake: &Lake, commit: &Commit) -> Result<Put> {
    let path = commit_path(lake, commit.version);
    let body = serde_json::to_vec(commit).map_err(|e| LakeError::Log(format!("encoding commit {}: {e}", commit.version)))?;
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    let outcome = lake.store().put_opts(&path, PutPayload::from(body), opts).await;
    match outcome {
        Ok(_) => Ok(Put::Done),
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
            let other = read_commit(lake, commit.version)
                .await?
                .ok_or_else(|| LakeError::Log(format!("commit {} was reported taken but cannot be read", commit.version)))?;
            if other.txn == commit.txn {
                Ok(Put::Done)
            } else {
                Ok(Put::Taken(other))
            }
        }
        Err(e) => match read_commit(lake, commit.version).await {
            Ok(Some(other)) if other.txn == commit.txn => Ok(Put::Done),
            Ok(Some(other)) => Ok(Put::Taken(other)),
            _ => Err(LakeError::Uncertain(format!("writing commit {}: {e}", commit.version))),
        },
    }
}

/// Whether a checkpoint is written after this version.
pub fn checkpoint_due(version: u64) -> bool {
    version > 0 && version.is_multiple_of(CHECKPOINT_EVERY)
}

/// Writes a checkpoint of `state` when its version is due one. Best effort:
/// a reader without it reads the commits instead.
pub async fn maybe_checkpoint(lake: &Lake, state: &LogState) {
    if !checkpoint_due(state.version) {
        return;
    }
    let Ok(body) = serde_json::to_vec(state) else { return };
    if let Err(e) = lake.store().put(&checkpoint_path(lake, state.version), PutPayload::from(body)).await {
        tracing::warn!("writing the log checkpoint at version {}: {e}", state.version);
    }
}

/// The name of a data file of transaction `txn`: `vitals-<txn>-<seq>.parquet`.
pub fn data_file_name(txn: &str, seq: usize) -> String {
    format!("vitals-{txn}-{seq:05}.parquet")
}

/// Whether a file name is one vitals' writer gives its data files. Such a
/// file is visible only once its commit is in the log, and is never changed
/// after it is written.
pub fn is_owned_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("vitals-").and_then(|r| r.strip_suffix(".parquet")) else { return false };
    let Some((txn, seq)) = rest.rsplit_once('-') else { return false };
    txn.len() == 32 && txn.bytes().all(|b| b.is_ascii_hexdigit()) && seq.len() == 5 && seq.bytes().all(|b| b.is_ascii_digit())
}

/// A fresh transaction id: 32 hex digits.
pub fn new_txn() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_parse_and_sort_in_version_order() {
        assert!(matches!(parse_name("00000000000000000007.json"), Some(LogName { version: 7, checkpoint: false })));
        assert!(matches!(parse_name("00000000000000000064.checkpoint.json"), Some(LogName { version: 64, checkpoint: true })));
        // A local store's temporary file, a short name, a stray file: not the log.
        for bad in ["00000000000000000007.json#1", "7.json", "00000000000000000007.txt", "0000000000000000000x.json"] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
        let a = format!("{:020}.json", 9u64);
        let b = format!("{:020}.json", 10u64);
        assert!(a < b);
    }

    #[test]
    fn owned_names_are_exactly_the_writers() {
        let txn = new_txn();
        assert!(is_owned_name(&data_file_name(&txn, 1)));
        for foreign in [
            "part-00000-6c1e2f1a-1b2c-4d5e-8f90-123456789abc-c000.snappy.parquet",
            "vitals-abc-00001.parquet",
            "data.parquet",
            &format!("vitals-{txn}-1.parquet"),
            &format!("vitals-{txn}-00001.parquet.tmp"),
        ] {
            assert!(!is_owned_name(foreign), "{foreign}");
        }
    }

    #[test]
    fn replaying_commits_tracks_live_and_removed_files() {
        let add = |p: &str| AddFile { path: p.into(), size: 1, rows: 1, min_time: None, max_time: None };
        let mut s = LogState::default();
        s.apply(&Commit { version: 1, txn: "a".into(), at_us: 10, operation: "x".into(), add: vec![add("accounts/a.parquet")], remove: vec![] });
        s.apply(&Commit {
            version: 2,
            txn: "b".into(),
            at_us: 20,
            operation: "x".into(),
            add: vec![add("accounts/b.parquet")],
            remove: vec!["accounts/a.parquet".into(), "accounts/other-tool.parquet".into()],
        });
        assert_eq!(s.version, 2);
        assert_eq!(s.live.keys().collect::<Vec<_>>(), vec!["accounts/b.parquet"]);
        assert_eq!(s.removed.get("accounts/a.parquet"), Some(&20));
        assert_eq!(s.removed.get("accounts/other-tool.parquet"), Some(&20));
        // A file at a removed path counts again when it was written after the removal.
        let at = |us: i64| object_store::ObjectMeta {
            location: Path::from("accounts/other-tool.parquet"),
            last_modified: chrono::DateTime::from_timestamp_micros(us).unwrap_or_default(),
            size: 1,
            e_tag: None,
            version: None,
        };
        assert!(s.removed_before("accounts/other-tool.parquet", &at(19)));
        assert!(s.removed_before("accounts/other-tool.parquet", &at(20)));
        assert!(!s.removed_before("accounts/other-tool.parquet", &at(21)));
        assert!(!s.removed_before("accounts/never-removed.parquet", &at(1)));
    }
}
