//! The one Parquet writer of the lake. A transaction writes its files under
//! their final names (`vitals-<txn>-<seq>.parquet`), which no reader counts
//! until the transaction's commit is in the log (see [`log`](super::log)):
//! one conditional put makes every file of every table and day visible at
//! once, and a crash at any instant leaves either the whole ingest or none
//! of it. An aborted transaction deletes its files; a killed one leaves them
//! invisible until [`vacuum`](super::vacuum) deletes them.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::TimestampMicrosecondType;
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::log::{checkpoint_due, data_file_name, maybe_checkpoint, new_txn, put_commit, AddFile, Commit, LogState, Put};
use super::schema::{Table, EVENT_DATE};
use super::{Lake, LakeError, Result};

/// Rows per row group: inside the 128k–512k range the contract asks for.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// The columns each table's files are sorted by.
pub fn sort_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Events => &["org_id", "user_id", "event_time"],
        Table::Accounts => &["org_id"],
        Table::Users => &["org_id", "user_id"],
        Table::Interventions => &["org_id", "at"],
        Table::Subscriptions => &["org_id", "subscription_id", "starts_on"],
    }
}

/// Writer settings: zstd, page statistics, and the sort order recorded.
fn properties(table: Table) -> Result<WriterProperties> {
    let schema = table.schema();
    let mut sorting = Vec::new();
    for name in sort_columns(table) {
        let idx = schema.index_of(name)?;
        sorting.push(SortingColumn { column_idx: idx as i32, descending: false, nulls_first: false });
    }
    let mut builder = WriterProperties::builder();
    if table == Table::Events {
        // Unique or nearly unique per row: a dictionary costs time and saves little after zstd.
        for column in ["event_id", "session_id"] {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        // Plain 8-byte values, uncompressed, no dictionary (nearly every value
        // is distinct). Most queries filter on another column first and then
        // read event_time only for the rows kept: a plain column skips the
        // others by moving a pointer, where deltas or zstd must decode them all.
        let time = ColumnPath::from("event_time");
        builder = builder
            .set_column_dictionary_enabled(time.clone(), false)
            .set_column_encoding(time.clone(), Encoding::PLAIN)
            .set_column_compression(time, Compression::UNCOMPRESSED);
    }
    Ok(builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .build())
}

/// Sorts a batch by the table's sort columns.
pub fn sort_batch(table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let cols: Vec<SortColumn> = sort_columns(table)
        .iter()
        .map(|n| batch.schema().index_of(n).map(|i| SortColumn { values: batch.column(i).clone(), options: None }))
        .collect::<std::result::Result<_, _>>()?;
    let indices = lexsort_to_indices(&cols, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Encodes batches (already in the table's schema and sort order) as one Parquet file.
pub fn encode(table: Table, batches: &[RecordBatch]) -> Result<Bytes> {
    // Encoded events take about 10 bytes a row: reserve that, not a doubling series.
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut buf = Vec::with_capacity((rows * 12).max(1 << 16));
    let mut writer = ArrowWriter::try_new(&mut buf, table.schema(), Some(properties(table)?))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// The first and last event_time of an events batch, in microseconds.
pub fn time_range(table: Table, batches: &[RecordBatch]) -> Option<(i64, i64)> {
    if table != Table::Events {
        return None;
    }
    let mut range: Option<(i64, i64)> = None;
    for b in batches {
        let times = b.column_by_name("event_time")?.as_primitive_opt::<TimestampMicrosecondType>()?;
        if let (Some(lo), Some(hi)) = (arrow::compute::min(times), arrow::compute::max(times)) {
            range = Some(range.map_or((lo, hi), |(a, z)| (a.min(lo), z.max(hi))));
        }
    }
    range
}

/// A set of files that become visible together, in one commit.
pub struct Transaction {
    lake: Lake,
    txn: String,
    /// The log version this transaction's reads were made at.
    base: u64,
    operation: String,
    added: Vec<AddFile>,
    /// Files this transaction takes out of the lake (relative paths).
    retired: Vec<String>,
    seq: usize,
}

impl Transaction {
    /// A transaction whose reads (duplicates, rows it merges) were made at log version `base`.
    pub fn new(lake: &Lake, base: u64, operation: impl Into<String>) -> Self {
        Self { lake: lake.clone(), txn: new_txn(), base, operation: operation.into(), added: Vec::new(), retired: Vec::new(), seq: 0 }
    }

    /// The folder a file of `table` goes to (an events file to its UTC day), relative to the root.
    fn folder(table: Table, day: Option<NaiveDate>) -> String {
        match (table, day) {
            (Table::Events, Some(d)) => format!("{}/{EVENT_DATE}={}", table.name(), d.format("%Y-%m-%d")),
            _ => table.name().to_string(),
        }
    }

    /// Writes one file. `batches` must already be in the table's schema and
    /// sorted (see [`sort_batch`]). It is not visible until [`commit`](Self::commit).
    pub async fn stage(&mut self, table: Table, day: Option<NaiveDate>, batches: &[RecordBatch]) -> Result<()> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(());
        }
        let bytes = encode(table, batches)?;
        self.stage_encoded(table, day, bytes, rows, time_range(table, batches)).await
    }

    /// Writes a file already encoded by [`encode`]; `time` is an events file's event_time range.
    pub async fn stage_encoded(&mut self, table: Table, day: Option<NaiveDate>, bytes: Bytes, rows: usize, time: Option<(i64, i64)>) -> Result<()> {
        self.seq += 1;
        let path = format!("{}/{}", Self::folder(table, day), data_file_name(&self.txn, self.seq));
        let size = bytes.len() as u64;
        // Recorded before the put: if the put fails half-way, abort still deletes it.
        self.added.push(AddFile { path: path.clone(), size, rows: rows as u64, min_time: time.map(|t| t.0), max_time: time.map(|t| t.1) });
        self.lake.store().put(&self.lake.child(&path), PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Files (relative paths) the staged ones replace; they leave the lake at the commit.
    pub fn retire(&mut self, files: impl IntoIterator<Item = String>) {
        self.retired.extend(files);
    }

    pub fn added(&self) -> &[AddFile] {
        &self.added
    }

    /// Makes every staged file visible, and every retired one invisible, in
    /// one commit; returns its version (the base when there was nothing to do).
    ///
    /// If other commits came first, each is shown to `conflicts`: one that
    /// changes what this transaction read (a day it de-duplicated against, a
    /// table it merged) makes the commit fail with [`LakeError::Conflict`]
    /// after the staged files are deleted, so the caller can start again;
    /// the others are let through and the next version is tried.
    pub async fn commit(self, conflicts: impl Fn(&Commit) -> bool) -> Result<u64> {
        if self.added.is_empty() && self.retired.is_empty() {
            return Ok(self.base);
        }
        let mut version = self.base + 1;
        loop {
            let commit = Commit {
                version,
                txn: self.txn.clone(),
                at_us: chrono::Utc::now().timestamp_micros(),
                operation: self.operation.clone(),
                add: self.added.clone(),
                remove: self.retired.clone(),
            };
            // An error here may hide a commit that happened: the files stay
            // (vacuum removes them if they were never committed).
            match put_commit(&self.lake, &commit).await? {
                Put::Done => break,
                Put::Taken(other) if conflicts(&other) => {
                    let what = format!(
                        "commit {} ({}) changed what this {} read",
                        other.version, other.operation, self.operation
                    );
                    self.abort().await?;
                    return Err(LakeError::Conflict(what));
                }
                Put::Taken(_) => version += 1,
            }
        }
        if checkpoint_due(version) {
            match LogState::load(&self.lake).await {
                Ok(state) => maybe_checkpoint(&self.lake, &state).await,
                Err(e) => tracing::warn!("reading the log for a checkpoint: {e}"),
            }
        }
        Ok(version)
    }

    /// Deletes every staged file; the lake is as it was.
    pub async fn abort(self) -> Result<()> {
        for f in &self.added {
            match self.lake.store().delete(&self.lake.child(&f.path)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
