//! The one Parquet writer of the lake. Every file is staged under a name that
//! queries do not list (`*.parquet.inprogress`), and becomes visible only when
//! the whole batch of files is committed by renames; an aborted write deletes
//! its staged files, so a failed ingest leaves the lake as it was.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::schema::{Table, EVENT_DATE};
use super::{Lake, Result};

/// Rows per row group: inside the 128k–512k range the contract asks for.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;
const STAGED_SUFFIX: &str = ".inprogress";

/// The columns each table's files are sorted by.
pub fn sort_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Events => &["org_id", "user_id", "event_time"],
        Table::Accounts => &["org_id"],
        Table::Users => &["org_id", "user_id"],
        Table::Interventions => &["org_id", "at"],
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

/// A file written under its staged name, not yet visible.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub staged: Path,
    pub target: Path,
    pub rows: usize,
}

/// A set of files that become visible together.
pub struct Transaction {
    store: Arc<dyn ObjectStore>,
    lake: Lake,
    id: String,
    staged: Vec<StagedFile>,
    /// Committed files this transaction replaces, deleted after the commit.
    retired: Vec<Path>,
    seq: usize,
}

impl Transaction {
    pub fn new(lake: &Lake) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!("{:x}-{:04x}", nanos, std::process::id() & 0xffff);
        Self { store: lake.store().clone(), lake: lake.clone(), id, staged: Vec::new(), retired: Vec::new(), seq: 0 }
    }

    /// The folder a file of `table` goes to (an events file to its day).
    fn folder(&self, table: Table, day: Option<NaiveDate>) -> Path {
        let base = self.lake.table_path(table);
        match (table, day) {
            (Table::Events, Some(d)) => base.clone().join(format!("{EVENT_DATE}={}", d.format("%Y-%m-%d"))),
            _ => base,
        }
    }

    /// Stages one file. `batches` must already be in the table's schema and
    /// sorted (see [`sort_batch`]).
    pub async fn stage(&mut self, table: Table, day: Option<NaiveDate>, batches: &[RecordBatch]) -> Result<()> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(());
        }
        let bytes = encode(table, batches)?;
        self.stage_encoded(table, day, bytes, rows).await
    }

    /// Stages a file already encoded by [`encode`].
    pub async fn stage_encoded(&mut self, table: Table, day: Option<NaiveDate>, bytes: Bytes, rows: usize) -> Result<()> {
        self.seq += 1;
        let name = format!("part-{}-{:05}.parquet", self.id, self.seq);
        let folder = self.folder(table, day);
        let target = folder.clone().join(name.as_str());
        let staged = folder.clone().join(format!("{name}{STAGED_SUFFIX}"));
        self.store.put(&staged, PutPayload::from_bytes(bytes)).await?;
        self.staged.push(StagedFile { staged, target, rows });
        Ok(())
    }

    /// Marks committed files that the staged ones replace.
    pub fn retire(&mut self, files: impl IntoIterator<Item = Path>) {
        self.retired.extend(files);
    }

    pub fn staged(&self) -> &[StagedFile] {
        &self.staged
    }

    /// Makes every staged file visible. `after_each` runs after each rename
    /// (a hook for progress and for fault-injection tests).
    pub async fn commit(self, mut after_each: impl FnMut(usize)) -> Result<Vec<StagedFile>> {
        for (i, f) in self.staged.iter().enumerate() {
            self.store.rename(&f.staged, &f.target).await?;
            after_each(i);
        }
        for old in &self.retired {
            self.store.delete(old).await?;
        }
        Ok(self.staged)
    }

    /// Deletes every staged file; the lake is as it was.
    pub async fn abort(self) -> Result<()> {
        for f in &self.staged {
            match self.store.delete(&f.staged).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Removes staged files that an interrupted process left behind.
pub async fn sweep_staged(lake: &Lake, table: Table) -> Result<usize> {
    use futures::TryStreamExt;
    let prefix = lake.table_path(table);
    let all: Vec<_> = match lake.store().list(Some(&prefix)).try_collect().await {
        Ok(v) => v,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut n = 0;
    for m in all.into_iter().filter(|m| m.location.as_ref().ends_with(STAGED_SUFFIX)) {
        lake.store().delete(&m.location).await?;
        n += 1;
    }
    Ok(n)
}
