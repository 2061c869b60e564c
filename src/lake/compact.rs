//! Compaction: rewrites the events files of a day that are not yet one file
//! in vitals' layout (another pipeline's files, files partitioned by load date
//! or local date, the many small files of frequent ingests) into one file per
//! UTC day in the writer's layout (sorted by org, user and time; `event` as a
//! dictionary; plain event_time; page statistics), in one commit that adds the
//! new files and removes the old ones. Readers see either the old files or the
//! new ones, never both and never neither; a reader still using the old files
//! under an older snapshot keeps them until vacuum deletes them after the
//! retention. The rows are the same rows: nothing is de-duplicated, dated
//! differently or converted beyond what every query already sees.
//! Owns the choice of files; the writing is [`Transaction`]'s.

// ParquetObjectReader is deprecated upstream in favour of hand-written readers;
// it is still the shortest correct way to read a whole file from any object store.
#![allow(deprecated)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::NaiveDate;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::cache::default_cache::DefaultCache;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::ingest::conform;
use super::log::{is_owned_name, LogState};
use super::snapshot::{folder_day, LakeFile, Snapshot, DAY_US};
use super::writer::{sort_batch, Transaction};
use super::{Lake, LakeError, Result, Table};

/// A file whose rows span more days than this is left as it is (its times
/// are likely wrong, and its rows would be read once per group of days).
const MAX_FILE_DAYS: i64 = 3_660;

/// Rows read into memory before the days they cover are written out: about
/// 1.5 GiB of decoded events at most, whatever the lake's size.
const ROWS_IN_MEMORY: u64 = 8_000_000;

/// Which days to compact.
#[derive(Debug, Clone, Default)]
pub struct CompactArgs {
    /// Only days from this one (UTC), inclusive.
    pub from: Option<NaiveDate>,
    /// Only days up to this one (UTC), inclusive.
    pub to: Option<NaiveDate>,
    /// Say what would be done; write nothing.
    pub dry_run: bool,
}

/// What a compaction did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactSummary {
    /// The UTC days rewritten.
    pub days: usize,
    /// Files taken out of the lake, and their bytes.
    pub files_removed: usize,
    pub bytes_removed: u64,
    /// Files written, and their bytes.
    pub files_written: usize,
    pub bytes_written: u64,
    pub rows: u64,
    /// Files left as they are, with why (columns outside the contract, which
    /// a rewrite would drop).
    pub skipped: Vec<(String, String)>,
    /// The log version of the commit (None on a dry run or when nothing needed doing).
    pub version: Option<u64>,
}

/// The UTC days (days since 1970-01-01) a file's rows fall on; empty for an empty file.
#[allow(clippy::reversed_empty_ranges)] // the empty range is the point
fn days_of(f: &LakeFile) -> std::ops::RangeInclusive<i64> {
    match f.time {
        Some((lo, hi)) => lo.div_euclid(DAY_US)..=hi.div_euclid(DAY_US),
        // An empty range: the file has no rows to place.
        None => 1..=0,
    }
}

fn date(day: i64) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::TimeDelta::try_days(day)?)
}

fn day_number(d: NaiveDate) -> i64 {
    (d - NaiveDate::default()).num_days()
}

/// The plan: which files go and which days are written.
struct Plan {
    /// Indexes into the snapshot's events files.
    files: Vec<usize>,
    days: BTreeSet<i64>,
    skipped: Vec<(String, String)>,
}

/// Chooses the files to rewrite. A day is settled when one file holds it, a
/// file vitals wrote, sorted, with no row of another day, in the day's own
/// folder; every file of an unsettled day (within the window) is rewritten,
/// and so is every file sharing a day with one that is (a file of several days
/// brings them all in, since its rows leave it together).
fn plan(files: &[Arc<LakeFile>], args: &CompactArgs) -> Plan {
    let mut skipped = Vec::new();
    let mut usable = vec![true; files.len()];
    for (i, f) in files.iter().enumerate() {
        let span = days_of(f);
        if !span.is_empty() && span.end().saturating_sub(*span.start()) >= MAX_FILE_DAYS {
            usable[i] = false;
            skipped.push((f.rel.clone(), format!("its event_time values span more than {MAX_FILE_DAYS} days")));
            continue;
        }
        if !f.undeclared.is_empty() {
            usable[i] = false;
            skipped.push((f.rel.clone(), format!("has columns outside the contract ({}), which a rewrite would drop", f.undeclared.join(", "))));
        }
    }
    let mut by_day: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        for d in days_of(f) {
            by_day.entry(d).or_default().push(i);
        }
    }
    // A file left as it is does not count against a day: its other file is settled alone.
    let settled = |day: i64, holders: &[usize]| -> bool {
        let kept: Vec<usize> = holders.iter().copied().filter(|i| usable[*i]).collect();
        let [only] = kept.as_slice() else { return false };
        let f = &files[*only];
        let owned = f.meta.location.filename().is_some_and(is_owned_name);
        owned && f.sorted && f.day().map(i64::from) == Some(day) && folder_day(&f.rel).map(day_number) == Some(day)
    };
    let in_window = |day: i64| {
        args.from.is_none_or(|d| day >= day_number(d)) && args.to.is_none_or(|d| day <= day_number(d))
    };
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    let mut queue: Vec<i64> = Vec::new();
    for (day, holders) in &by_day {
        if in_window(*day) && !settled(*day, holders) && holders.iter().any(|i| usable[*i]) {
            queue.push(*day);
        }
    }
    // Empty files hold no day: they go with any rewrite in the window.
    for (i, f) in files.iter().enumerate() {
        if f.time.is_none() && usable[i] {
            chosen.insert(i);
        }
    }
    let mut days = BTreeSet::new();
    while let Some(day) = queue.pop() {
        if !days.insert(day) {
            continue;
        }
        for &i in by_day.get(&day).map(Vec::as_slice).unwrap_or_default() {
            if usable[i] && chosen.insert(i) {
                queue.extend(days_of(&files[i]).filter(|d| !days.contains(d)));
            }
        }
    }
    // A day whose only usable file is already the settled one gains nothing.
    days.retain(|d| by_day.get(d).is_some_and(|h| h.iter().any(|i| chosen.contains(i))));
    Plan { files: chosen.into_iter().collect(), days, skipped }
}

/// Rewrites the events of the days that are not in vitals' layout; see the module's comment.
pub async fn compact(lake: &Lake, args: &CompactArgs) -> Result<CompactSummary> {
    let log = LogState::load(lake).await?;
    let cache: Arc<FileMetadataCache> = Arc::new(DefaultCache::new(16 << 20));
    let snapshot = Snapshot::build(lake, &log, None, &cache).await?;
    let files = snapshot.files(Table::Events);
    let plan = plan(files, args);
    let mut summary = CompactSummary {
        days: plan.days.len(),
        files_removed: plan.files.len(),
        bytes_removed: plan.files.iter().map(|i| files[*i].meta.size).sum(),
        skipped: plan.skipped.clone(),
        ..Default::default()
    };
    if args.dry_run || plan.files.is_empty() {
        return Ok(summary);
    }
    let mut tx = Transaction::new(lake, log.version, "compact events");
    match rewrite(lake, files, &plan, &mut tx).await {
        Ok(rows) => summary.rows = rows,
        Err(e) => {
            tx.abort().await?;
            return Err(e);
        }
    }
    // Another pipeline may have replaced a file in place while it was read.
    for &i in &plan.files {
        let f = &files[i];
        let now = lake.store().head(&f.meta.location).await;
        let same = now.as_ref().is_ok_and(|m| unchanged(&f.meta, m));
        if !same {
            tx.abort().await?;
            return Err(LakeError::Conflict(format!("{} changed while it was compacted; nothing was changed, run compact again", f.rel)));
        }
    }
    summary.files_written = tx.added().len();
    summary.bytes_written = tx.added().iter().map(|a| a.size).sum();
    let removed: HashSet<String> = plan.files.iter().map(|i| files[*i].rel.clone()).collect();
    tx.retire(removed.iter().cloned());
    // Another commit that took one of these files out first (a compaction
    // running at the same time) would make their rows count twice.
    let conflicts = |other: &super::log::Commit| other.remove.iter().any(|r| removed.contains(r));
    summary.version = Some(tx.commit(conflicts).await?);
    Ok(summary)
}

/// Whether an object is the one listed before. A listing and a HEAD may give
/// its time at different precisions (S3: milliseconds against seconds), so the
/// entity tag decides where both have one.
fn unchanged(listed: &object_store::ObjectMeta, now: &object_store::ObjectMeta) -> bool {
    listed.size == now.size
        && match (&listed.e_tag, &now.e_tag) {
            (Some(a), Some(b)) => a == b,
            _ => listed.last_modified.timestamp() == now.last_modified.timestamp(),
        }
}

/// Reads the chosen files a group of days at a time and writes each day as
/// one sorted file; returns the rows written (equal to the rows read).
async fn rewrite(lake: &Lake, files: &[Arc<LakeFile>], plan: &Plan, tx: &mut Transaction) -> Result<u64> {
    let chosen: Vec<&Arc<LakeFile>> = plan.files.iter().map(|i| &files[*i]).collect();
    // Rows per day, estimated by spreading each file's rows over its days.
    let mut estimate: BTreeMap<i64, u64> = BTreeMap::new();
    for f in &chosen {
        let span = days_of(f);
        let n = u64::try_from(span.clone().count()).unwrap_or(1).max(1);
        for d in span {
            let e = estimate.entry(d).or_default();
            *e = e.saturating_add(f.rows / n + 1);
        }
    }
    let mut groups: Vec<(i64, i64)> = Vec::new();
    let mut acc = 0u64;
    for &d in &plan.days {
        let rows = estimate.get(&d).copied().unwrap_or_default();
        match groups.last_mut() {
            Some(g) if acc.saturating_add(rows) <= ROWS_IN_MEMORY => {
                g.1 = d;
                acc = acc.saturating_add(rows);
            }
            _ => {
                groups.push((d, d));
                acc = rows;
            }
        }
    }
    let rows_in = chosen.iter().fold(0u64, |a, f| a.saturating_add(f.rows));
    let mut rows_out = 0u64;
    for (first, last) in groups {
        let mut parts: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        for f in chosen.iter().filter(|f| {
            let span = days_of(f);
            !span.is_empty() && *span.start() <= last && *span.end() >= first
        }) {
            read_days(lake, f, first, last, &mut parts).await?;
        }
        for (day, batches) in parts {
            let schema = Table::Events.schema();
            let all = arrow::compute::concat_batches(&schema, &batches)?;
            let sorted = sort_batch(Table::Events, &all)?;
            rows_out = rows_out.saturating_add(u64::try_from(sorted.num_rows()).unwrap_or(u64::MAX));
            let d = date(day).ok_or_else(|| LakeError::Input(format!("day {day} is out of range")))?;
            tx.stage(Table::Events, Some(d), &[sorted]).await?;
        }
    }
    if rows_out != rows_in {
        return Err(LakeError::Input(format!(
            "the files to compact hold {rows_in} rows by their footers but {rows_out} were read; nothing was changed"
        )));
    }
    Ok(rows_out)
}

/// Adds the rows of `f` on days `first..=last` to `parts`, by day, in the table's schema.
async fn read_days(lake: &Lake, f: &LakeFile, first: i64, last: i64, parts: &mut BTreeMap<i64, Vec<RecordBatch>>) -> Result<()> {
    let reader = ParquetObjectReader::new(lake.store().clone(), f.meta.location.clone()).with_file_size(f.meta.size);
    let mut stream = ParquetRecordBatchStreamBuilder::new(reader).await?.with_batch_size(64 * 1024).build()?;
    while let Some(batch) = stream.try_next().await? {
        let batch = conform(&batch, Table::Events, &f.rel)?;
        let idx = batch.schema().index_of("event_time")?;
        let times = batch.column(idx).as_primitive::<TimestampMicrosecondType>();
        if times.null_count() > 0 {
            return Err(LakeError::IncompatibleFile { file: f.rel.clone(), column: "event_time".into(), reason: "has NULL values".into() });
        }
        let days: Vec<Option<i64>> = times.iter().map(|t| t.map(|t| t.div_euclid(DAY_US))).collect();
        let present: BTreeSet<i64> = days.iter().flatten().copied().filter(|d| (first..=last).contains(d)).collect();
        for d in present {
            let keep: BooleanArray = days.iter().map(|x| Some(*x == Some(d))).collect();
            parts.entry(d).or_default().push(filter_record_batch(&batch, &keep)?);
        }
    }
    Ok(())
}
