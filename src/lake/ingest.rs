//! `vitals ingest`: CSV, newline-delimited JSON and Parquet files in, checked
//! row by row against the contract, de-duplicated by event_id, and written
//! through the lake writer as one transaction. A rejected ingest stages
//! nothing visible; with a reject file the bad rows go there with the reason.

// ParquetObjectReader is deprecated upstream in favour of hand-written readers; it
// is still the shortest correct way to read a footer from any object store.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Array,
};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, NaiveDate};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;

use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::cache::default_cache::DefaultCache;

use super::log::{table_of, Commit, LogState};
use super::schema::{compatible, ts_type, Table, UTC};
use super::snapshot::{Snapshot, DAY_US};
use super::vacuum::{vacuum, Retention};
use super::writer::{sort_batch, Transaction};
use super::{Lake, LakeError, Result};

/// Rows handled per chunk: bounds memory on large inputs.
const CHUNK_ROWS: usize = 1 << 20;

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Csv,
    Json,
    Parquet,
}

impl InputFormat {
    /// Guesses the format from a file name.
    pub fn from_path(path: &FsPath) -> Option<InputFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") {
            Some(InputFormat::Csv)
        } else if name.ends_with(".json") || name.ends_with(".ndjson") || name.ends_with(".jsonl") {
            Some(InputFormat::Json)
        } else if name.ends_with(".parquet") {
            Some(InputFormat::Parquet)
        } else {
            None
        }
    }
}

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestArgs {
    pub table: Table,
    pub files: Vec<PathBuf>,
    /// Overrides the format guessed from each file's name.
    pub format: Option<InputFormat>,
    /// Where bad rows go; without it one bad row rejects the whole ingest.
    pub reject_file: Option<PathBuf>,
    pub progress: bool,
}

/// The numbers printed at the end of an ingest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    pub rows_read: usize,
    pub rows_written: usize,
    pub rows_rejected: usize,
    pub duplicates_dropped: usize,
    pub files_written: usize,
    pub seconds: f64,
}

/// A row that broke the contract.
#[derive(Debug, Clone)]
struct BadRow {
    /// "line 7" for text input, "row 7" for Parquet.
    place: String,
    column: String,
    reason: String,
    raw: serde_json::Value,
}

/// How many times an ingest starts again after another writer committed to
/// the same days (or table) first.
const MAX_ATTEMPTS: u32 = 20;

/// Runs an ingest as one transaction: either every good row becomes visible,
/// or (on any error) nothing does. Ingests into one lake may run at once:
/// each reads the lake at one log version, and if another commits to the same
/// days (or the same dimension table) first, it starts again from the newer
/// version, so the same rows ingested twice at once land once.
pub async fn ingest(lake: &Lake, args: IngestArgs) -> Result<IngestSummary> {
    let started = Instant::now();
    if args.files.is_empty() {
        return Err(LakeError::Input("no input files given".into()));
    }
    let mut attempt = 0;
    let mut summary = loop {
        attempt += 1;
        match ingest_once(lake, &args).await {
            Err(LakeError::Conflict(why)) if attempt < MAX_ATTEMPTS => {
                tracing::info!("ingest attempt {attempt}: {why}; starting again");
                // Spread the retries of writers that collided.
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]);
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt) + jitter)).await;
            }
            Err(LakeError::Conflict(why)) => {
                return Err(LakeError::Conflict(format!("{why}; gave up after {attempt} attempts and ingested nothing; run it again")));
            }
            other => break other?,
        }
    };
    match vacuum(lake, Retention::default()).await {
        Ok(v) if v.removed_deleted + v.uncommitted_deleted > 0 => {
            tracing::info!("vacuum: deleted {} removed and {} uncommitted files", v.removed_deleted, v.uncommitted_deleted)
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("the ingest committed; deleting old files failed: {e}"),
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// One attempt: reads the lake at its current log version, stages, commits.
async fn ingest_once(lake: &Lake, args: &IngestArgs) -> Result<IngestSummary> {
    let log = LogState::load(lake).await?;
    let cache: Arc<FileMetadataCache> = Arc::new(DefaultCache::new(16 << 20));
    let snapshot = Snapshot::build(lake, &log, None, &cache).await?;
    let mut state = IngestState::new(lake, args.table, &snapshot);
    let mut rejects: Vec<(String, BadRow)> = Vec::new();
    let bar = progress_bar(args)?;
    let mut tx = Transaction::new(lake, log.version, format!("ingest {}", args.table.name()));
    let outcome = async {
        for file in &args.files {
            let name = file.display().to_string();
            let format = args.format.or_else(|| InputFormat::from_path(file)).ok_or_else(|| {
                LakeError::Input(format!("{name}: cannot tell the format from the name; pass --format csv|json|parquet"))
            })?;
            let mut sink = |batch: RecordBatch, bad: Vec<BadRow>| -> Result<()> {
                if let Some(first) = bad.first() {
                    if args.reject_file.is_none() {
                        return Err(LakeError::Input(format!(
                            "{name}: {}, column '{}': {} (nothing was ingested; fix the row or pass --reject-file PATH)",
                            first.place, first.column, first.reason
                        )));
                    }
                }
                rejects.extend(bad.into_iter().map(|b| (name.clone(), b)));
                state.pending.push(batch);
                Ok(())
            };
            match format {
                InputFormat::Csv => read_csv(file, args.table, &mut sink)?,
                InputFormat::Json => read_json(file, args.table, &mut sink)?,
                InputFormat::Parquet => read_parquet(file, args.table, &mut sink)?,
            }
            state.flush(&mut tx, false).await?;
            if let Some(bar) = &bar {
                bar.inc(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
            }
        }
        state.flush(&mut tx, true).await?;
        Ok::<(), LakeError>(())
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Err(e) = outcome {
        tx.abort().await?;
        return Err(e);
    }
    if let Some(path) = &args.reject_file {
        if let Err(e) = write_rejects(path, &rejects) {
            tx.abort().await?;
            return Err(e);
        }
    }
    let files_written = tx.added().len();
    let table = args.table;
    let days = state.days_read();
    let by_log = log.clone();
    tx.commit(move |other| conflicts(table, &days, &by_log, other)).await?;
    let mut summary = state.summary;
    summary.rows_rejected = rejects.len();
    summary.rows_read += rejects.len();
    summary.files_written = files_written;
    Ok(summary)
}

/// Whether `other`, committed after this ingest read the lake, changes what
/// it read: events on a day it de-duplicated against, or the dimension table it merged.
fn conflicts(table: Table, days: &HashSet<NaiveDate>, read_at: &LogState, other: &Commit) -> bool {
    if table != Table::Events {
        return other.touches(table);
    }
    let overlaps = |lo: Option<i64>, hi: Option<i64>| match (lo.and_then(day_of), hi.and_then(day_of)) {
        (Some(a), Some(b)) => days.iter().any(|d| a <= *d && *d <= b),
        _ => true,
    };
    other.add.iter().filter(|a| a.table() == Some(Table::Events)).any(|a| overlaps(a.min_time, a.max_time))
        || other.remove.iter().filter(|r| table_of(r) == Some(Table::Events)).any(|r| match read_at.live.get(r) {
            Some(a) => overlaps(a.min_time, a.max_time),
            None => true,
        })
}

fn progress_bar(args: &IngestArgs) -> Result<Option<indicatif::ProgressBar>> {
    let total: u64 = args.files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    if !args.progress || total < 64 << 20 {
        return Ok(None);
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .map_err(|e| LakeError::Input(e.to_string()))?;
    bar.set_style(style);
    Ok(Some(bar))
}

fn write_rejects(path: &FsPath, rejects: &[(String, BadRow)]) -> Result<()> {
    let mut out = std::io::BufWriter::new(File::create(path)?);
    for (file, bad) in rejects {
        let mut obj = match &bad.raw {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        obj.insert("_file".into(), file.clone().into());
        obj.insert("_place".into(), bad.place.clone().into());
        obj.insert("_column".into(), bad.column.clone().into());
        obj.insert("_error".into(), bad.reason.clone().into());
        serde_json::to_writer(&mut out, &obj).map_err(|e| LakeError::Input(e.to_string()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// De-duplication and staging across chunks.
struct IngestState<'a> {
    lake: &'a Lake,
    table: Table,
    /// The lake as this attempt read it.
    snapshot: &'a Snapshot,
    pending: Vec<RecordBatch>,
    /// event_ids already in the lake or in this ingest, per day loaded so far.
    seen: HashMap<NaiveDate, HashSet<String>>,
    /// Dimension tables: every good row, merged with the existing rows at the end.
    dims: Vec<RecordBatch>,
    summary: IngestSummary,
}

impl<'a> IngestState<'a> {
    fn new(lake: &'a Lake, table: Table, snapshot: &'a Snapshot) -> Self {
        Self { lake, table, snapshot, pending: Vec::new(), seen: HashMap::new(), dims: Vec::new(), summary: IngestSummary::default() }
    }

    /// The days whose committed events this ingest de-duplicated against.
    fn days_read(&self) -> HashSet<NaiveDate> {
        self.seen.keys().copied().collect()
    }

    async fn flush(&mut self, tx: &mut Transaction, last: bool) -> Result<()> {
        let pending_rows: usize = self.pending.iter().map(|b| b.num_rows()).sum();
        if pending_rows < CHUNK_ROWS && !last {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.pending);
        let schema = self.table.schema();
        let batch = arrow::compute::concat_batches(&schema, &batches)?;
        self.summary.rows_read += batch.num_rows();
        if self.table == Table::Events {
            self.stage_events(tx, batch).await
        } else {
            self.dims.push(batch);
            if last {
                self.stage_dimension(tx).await
            } else {
                Ok(())
            }
        }
    }

    async fn stage_events(&mut self, tx: &mut Transaction, batch: RecordBatch) -> Result<()> {
        let batch = fill_event_ids(batch)?;
        let ids = batch.column(0).as_string::<i32>();
        let times = batch.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let mut by_day: HashMap<NaiveDate, Vec<u32>> = HashMap::new();
        for row in 0..batch.num_rows() {
            let day = day_of(times.value(row))
                .ok_or_else(|| LakeError::Input(format!("event_time out of range in row {}", row + 1)))?;
            let seen = match self.seen.entry(day) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(existing_ids(self.lake, self.snapshot, day).await?),
            };
            if seen.insert(ids.value(row).to_string()) {
                by_day.entry(day).or_default().push(row as u32);
            } else {
                self.summary.duplicates_dropped += 1;
            }
        }
        let mut days: Vec<_> = by_day.into_iter().collect();
        days.sort_by_key(|(d, _)| *d);
        for (day, rows) in days {
            let part = take_record_batch(&batch, &UInt32Array::from(rows))?;
            let part = sort_batch(Table::Events, &part)?;
            self.summary.rows_written += part.num_rows();
            tx.stage(Table::Events, Some(day), &[part]).await?;
        }
        Ok(())
    }

    /// accounts and users are keyed (the new row wins), subscriptions by
    /// subscription_id and starts_on; interventions drop exact repeats.
    async fn stage_dimension(&mut self, tx: &mut Transaction) -> Result<()> {
        let schema = self.table.schema();
        let old_files = self.snapshot.files(self.table);
        let mut existing = Vec::new();
        for f in old_files {
            let reader = ParquetObjectReader::new(self.lake.store().clone(), f.meta.location.clone()).with_file_size(f.meta.size);
            let stream = ParquetRecordBatchStreamBuilder::new(reader).await?.build()?;
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            for b in batches {
                existing.push(conform(&b, self.table, &f.rel)?);
            }
        }
        let new_rows = arrow::compute::concat_batches(&schema, &self.dims)?;
        let old_rows = arrow::compute::concat_batches(&schema, &existing)?;
        let key_cols: Vec<usize> = match self.table {
            Table::Accounts => vec![schema.index_of("org_id")?],
            Table::Users => vec![schema.index_of("user_id")?],
            Table::Subscriptions => vec![schema.index_of("subscription_id")?, schema.index_of("starts_on")?],
            _ => (0..schema.fields().len()).collect(),
        };
        let mut keep_new = Vec::new();
        let mut keys = HashSet::new();
        // Newest first: the last occurrence of a key in the input wins.
        for row in (0..new_rows.num_rows()).rev() {
            if keys.insert(row_key(&new_rows, &key_cols, row)?) {
                keep_new.push(row as u32);
            } else {
                self.summary.duplicates_dropped += 1;
            }
        }
        keep_new.reverse();
        let mut keep_old = Vec::new();
        for row in 0..old_rows.num_rows() {
            if keys.insert(row_key(&old_rows, &key_cols, row)?) {
                keep_old.push(row as u32);
            } else if key_cols.len() == schema.fields().len() {
                self.summary.duplicates_dropped += 1;
            }
        }
        let merged = arrow::compute::concat_batches(
            &schema,
            &[take_record_batch(&old_rows, &UInt32Array::from(keep_old))?, take_record_batch(&new_rows, &UInt32Array::from(keep_new.clone()))?],
        )?;
        self.summary.rows_written = keep_new.len();
        if self.table == Table::Subscriptions {
            check_subscriptions(&merged)?;
        }
        let merged = sort_batch(self.table, &merged)?;
        tx.stage(self.table, None, &[merged]).await?;
        // The old files leave the lake with the commit that adds the merged one.
        tx.retire(old_files.iter().map(|f| f.rel.clone()));
        Ok(())
    }
}

/// The UTC day of a microsecond timestamp.
pub fn day_of(micros: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_micros(micros).map(|t| t.date_naive())
}

/// The event_ids of the committed files that hold events of one UTC day.
async fn existing_ids(lake: &Lake, snapshot: &Snapshot, day: NaiveDate) -> Result<HashSet<String>> {
    let start = (day - NaiveDate::default()).num_days().saturating_mul(DAY_US);
    let end = start.saturating_add(DAY_US);
    let mut ids = HashSet::new();
    for f in snapshot.files(Table::Events) {
        // A file without a known range may hold the day.
        if f.time.is_some_and(|(lo, hi)| hi < start || lo >= end) {
            continue;
        }
        let reader = ParquetObjectReader::new(lake.store().clone(), f.meta.location.clone()).with_file_size(f.meta.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        let Some(idx) = builder.parquet_schema().columns().iter().position(|c| c.name() == "event_id") else { continue };
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [idx]);
        let mut stream = builder.with_projection(mask).build()?;
        while let Some(batch) = stream.try_next().await? {
            let col = cast(batch.column(0), &DataType::Utf8)?;
            ids.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
        }
    }
    Ok(ids)
}

/// A stable 128-bit FNV-1a digest, so the same row gets the same id on every run.
fn content_id(parts: &[Option<String>]) -> String {
    let mut a: u64 = 0xcbf29ce484222325;
    let mut b: u64 = 0x6c62272e07bb0142;
    for p in parts {
        let bytes = p.as_deref().map(str::as_bytes).unwrap_or(b"\xff");
        for &x in bytes.iter().chain(std::iter::once(&0u8)) {
            a = (a ^ x as u64).wrapping_mul(0x100000001b3);
            b = (b ^ x as u64).wrapping_mul(0x100000001b3).rotate_left(5);
        }
    }
    format!("h{a:016x}{b:016x}")
}

/// Events without an event_id get one derived from their content, so that
/// ingesting the same file twice still keeps one copy.
fn fill_event_ids(batch: RecordBatch) -> Result<RecordBatch> {
    let ids = batch.column(0).as_string::<i32>();
    if ids.null_count() == 0 {
        return Ok(batch);
    }
    let texts: Vec<ArrayRef> =
        batch.columns().iter().map(|c| cast(c, &DataType::Utf8)).collect::<std::result::Result<_, _>>()?;
    let mut out = StringBuilder::new();
    for row in 0..batch.num_rows() {
        if ids.is_valid(row) {
            out.append_value(ids.value(row));
        } else {
            let parts: Vec<Option<String>> =
                texts[1..].iter().map(|c| c.as_string::<i32>().is_valid(row).then(|| c.as_string::<i32>().value(row).to_string())).collect();
            out.append_value(content_id(&parts));
        }
    }
    let mut cols = batch.columns().to_vec();
    cols[0] = Arc::new(out.finish());
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

fn row_key(batch: &RecordBatch, cols: &[usize], row: usize) -> Result<String> {
    let mut key = String::new();
    for &c in cols {
        let v = arrow::util::display::array_value_to_string(batch.column(c), row)?;
        key.push_str(&v);
        key.push('\u{1f}');
    }
    Ok(key)
}

/// Casts a batch read from a Parquet file to the table's declared schema,
/// naming the file and column when a type cannot be read as declared.
pub(super) fn conform(batch: &RecordBatch, table: Table, file: &str) -> Result<RecordBatch> {
    let declared = table.schema();
    let incoming = batch.schema();
    for f in incoming.fields() {
        if declared.field_with_name(f.name()).is_err() && !f.name().starts_with('_') {
            return Err(unknown_column(file, table, f.name()));
        }
    }
    let mut cols = Vec::with_capacity(declared.fields().len());
    for field in declared.fields() {
        let col = match incoming.index_of(field.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if !compatible(c.data_type(), field.data_type()) {
                    return Err(LakeError::IncompatibleFile {
                        file: file.to_string(),
                        column: field.name().clone(),
                        reason: format!("has type {}, the contract declares {}", c.data_type(), field.data_type()),
                    });
                }
                cast_declared(c, field.data_type())?
            }
            Err(_) if !field.is_nullable() => {
                return Err(LakeError::Input(format!("{file}: required column '{}' is missing", field.name())))
            }
            Err(_) => arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        cols.push(col);
    }
    let relaxed = relaxed(&declared);
    Ok(RecordBatch::try_new(relaxed, cols)?)
}

/// Casts a column to its declared type; a timestamp without a zone is taken as UTC.
fn cast_declared(c: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(match (c.data_type(), to) {
        (DataType::Timestamp(unit, _), DataType::Timestamp(_, _)) => {
            let with_utc = cast(c, &DataType::Timestamp(*unit, Some(UTC.into())))?;
            cast(&with_utc, &ts_type())?
        }
        (DataType::Timestamp(_, _), DataType::Date32) => {
            let ts = cast_declared(c, &ts_type())?;
            cast(&ts, &DataType::Date32)?
        }
        _ => cast(c, to)?,
    })
}

/// The declared schema with every column nullable: rows are checked by
/// [`validate`] before anything is staged.
fn relaxed(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Arc::new(arrow::datatypes::Schema::new(fields))
}

fn unknown_column(file: &str, table: Table, name: &str) -> LakeError {
    let known: Vec<_> = table.schema().fields().iter().map(|f| f.name().clone()).collect();
    LakeError::Input(format!(
        "{file}: unknown column '{name}' for table {}; its columns are: {}",
        table.name(),
        known.join(", ")
    ))
}

/// Splits a conformed batch into good rows (in the strict declared schema)
/// and the rows that break the contract: a missing or empty required value.
fn validate(batch: RecordBatch, table: Table, place: impl Fn(usize) -> String) -> Result<(RecordBatch, Vec<BadRow>)> {
    let schema = table.schema();
    let mut bad_rows: Vec<BadRow> = Vec::new();
    let mut bad_mask = vec![false; batch.num_rows()];
    for (i, field) in schema.fields().iter().enumerate() {
        if field.is_nullable() {
            continue;
        }
        let col = batch.column(i);
        for row in 0..batch.num_rows() {
            if bad_mask[row] {
                continue;
            }
            let reason = if col.is_null(row) {
                Some("missing value for a required column")
            } else if let Some(s) = col.as_string_opt::<i32>() {
                s.value(row).trim().is_empty().then_some("empty value for a required column")
            } else {
                None
            };
            if let Some(reason) = reason {
                bad_mask[row] = true;
                bad_rows.push(BadRow { place: place(row), column: field.name().clone(), reason: reason.into(), raw: row_json(&batch, row) });
            }
        }
    }
    if table == Table::Subscriptions {
        let mrr = batch.column(schema.index_of("mrr")?).as_primitive_opt::<arrow::datatypes::Float64Type>().cloned();
        let date = |name: &str| -> Result<Option<arrow::array::Date32Array>> {
            Ok(batch.column(schema.index_of(name)?).as_primitive_opt::<arrow::datatypes::Date32Type>().cloned())
        };
        let (starts, ends) = (date("starts_on")?, date("ends_on")?);
        for row in 0..batch.num_rows() {
            if bad_mask[row] {
                continue;
            }
            let value = |a: Option<&arrow::array::PrimitiveArray<_>>| a.filter(|a| a.is_valid(row)).map(|a| a.value(row));
            let problem = subscription_problem(
                mrr.as_ref().filter(|a| a.is_valid(row)).map(|a| a.value(row)),
                value(starts.as_ref()),
                value(ends.as_ref()),
            );
            if let Some((column, reason)) = problem {
                bad_mask[row] = true;
                bad_rows.push(BadRow { place: place(row), column: column.into(), reason, raw: row_json(&batch, row) });
            }
        }
    }
    bad_rows.sort_by_key(|b| b.place.split(' ').nth(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0));
    let good = if bad_rows.is_empty() {
        batch
    } else {
        let keep: Vec<u32> = (0..batch.num_rows()).filter(|r| !bad_mask[*r]).map(|r| r as u32).collect();
        take_record_batch(&batch, &UInt32Array::from(keep))?
    };
    let strict = RecordBatch::try_new(schema, good.columns().to_vec())?;
    Ok((strict, bad_rows))
}

/// A Date32 value as the date it is (the raw number when it leaves the calendar).
fn day(d: i32) -> String {
    NaiveDate::default().checked_add_signed(chrono::Duration::days(i64::from(d))).map_or_else(|| d.to_string(), |d| d.to_string())
}

/// What is wrong with one subscriptions row beyond missing values: MRR must
/// be a finite amount, not negative, and a span must end after it starts.
fn subscription_problem(mrr: Option<f64>, starts_on: Option<i32>, ends_on: Option<i32>) -> Option<(&'static str, String)> {
    if let Some(m) = mrr {
        if !m.is_finite() || m < 0.0 {
            return Some(("mrr", format!("mrr must be a finite amount of at least 0, got {m}")));
        }
    }
    match (starts_on, ends_on) {
        (Some(s), Some(e)) if e <= s => {
            Some(("ends_on", format!("ends_on ({}) must be after starts_on ({}): ends_on is the first day no longer paid for", day(e), day(s))))
        }
        _ => None,
    }
}

/// Subscriptions: the rows of one subscription must not overlap in time,
/// and a subscription belongs to one account. Names both rows when not.
fn check_subscriptions(batch: &RecordBatch) -> Result<()> {
    let schema = batch.schema();
    let string = |name: &str| -> Result<Vec<String>> {
        let c = arrow::compute::cast(batch.column(schema.index_of(name)?), &DataType::Utf8)?;
        Ok(c.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let (orgs, subs) = (string("org_id")?, string("subscription_id")?);
    let starts = batch.column(schema.index_of("starts_on")?).as_primitive::<arrow::datatypes::Date32Type>().clone();
    let ends = batch.column(schema.index_of("ends_on")?).as_primitive::<arrow::datatypes::Date32Type>().clone();
    let end_text = |row: usize| if ends.is_valid(row) { day(ends.value(row)) } else { "open".to_string() };
    let mut rows: Vec<usize> = (0..batch.num_rows()).collect();
    rows.sort_by(|&a, &b| subs[a].cmp(&subs[b]).then(starts.value(a).cmp(&starts.value(b))));
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if subs[a] != subs[b] {
            continue;
        }
        if orgs[a] != orgs[b] {
            return Err(LakeError::Input(format!(
                "subscriptions: subscription '{}' belongs to two accounts, '{}' and '{}' (nothing was ingested)",
                subs[a], orgs[a], orgs[b]
            )));
        }
        // Ends are exclusive: a row ending on the day the next starts does not overlap it.
        if ends.is_null(a) || ends.value(a) > starts.value(b) {
            return Err(LakeError::Input(format!(
                "subscriptions: rows of subscription '{}' overlap: starts_on {} ends_on {} and starts_on {} ends_on {} (nothing was ingested; end the first on or before the day the second starts)",
                subs[a],
                day(starts.value(a)),
                end_text(a),
                day(starts.value(b)),
                end_text(b)
            )));
        }
    }
    Ok(())
}

fn row_json(batch: &RecordBatch, row: usize) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for (i, f) in batch.schema().fields().iter().enumerate() {
        let c = batch.column(i);
        if c.is_valid(row) {
            let v = arrow::util::display::array_value_to_string(c, row).unwrap_or_default();
            obj.insert(f.name().clone(), v.into());
        }
    }
    serde_json::Value::Object(obj)
}

type Sink<'s> = dyn FnMut(RecordBatch, Vec<BadRow>) -> Result<()> + 's;

fn read_parquet(path: &FsPath, table: Table, sink: &mut Sink<'_>) -> Result<()> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| LakeError::Input(format!("{name}: {e}")))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| LakeError::Input(format!("{name}: not a readable Parquet file: {e}")))?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut offset = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| LakeError::Input(format!("{name}: {e}")))?;
        let n = batch.num_rows();
        let conformed = conform(&batch, table, &name)?;
        let base = offset;
        let (good, bad) = validate(conformed, table, |r| format!("row {}", base + r + 1))?;
        offset += n;
        sink(good, bad)?;
    }
    Ok(())
}

/// Row-at-a-time builders for text input, with a per-cell parser that says
/// what was wrong.
struct TextRows {
    table: Table,
    schema: SchemaRef,
    cols: Vec<ColBuilder>,
    rows: usize,
}

enum ColBuilder {
    Str(StringBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

/// One parsed cell.
enum Cell<'a> {
    Null,
    Str(&'a str),
    I64(i64),
    I32(i32),
    F64(f64),
    Bool(bool),
    Ts(i64),
    Date(i32),
}

/// A cell as it arrived: text (CSV, JSON strings) or a JSON scalar.
pub enum Raw<'a> {
    Missing,
    Text(&'a str),
    Json(&'a serde_json::Value),
}

impl TextRows {
    fn new(table: Table) -> Self {
        let schema = table.schema();
        let cols = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => ColBuilder::I64(Int64Builder::new()),
                DataType::Int32 => ColBuilder::I32(Int32Builder::new()),
                DataType::Float64 => ColBuilder::F64(Float64Builder::new()),
                DataType::Boolean => ColBuilder::Bool(BooleanBuilder::new()),
                DataType::Timestamp(_, _) => ColBuilder::Ts(TimestampMicrosecondBuilder::new().with_timezone(UTC)),
                DataType::Date32 => ColBuilder::Date(Date32Builder::new()),
                _ => ColBuilder::Str(StringBuilder::new()),
            })
            .collect();
        Self { table, schema, cols, rows: 0 }
    }

    /// Parses one row; on error returns (column, reason) and appends nothing.
    fn push(&mut self, raw: &[Raw<'_>]) -> std::result::Result<(), (String, String)> {
        let mut cells = Vec::with_capacity(raw.len());
        for (field, r) in self.schema.fields().iter().zip(raw) {
            let cell = parse_cell(field.data_type(), r).map_err(|e| (field.name().clone(), e))?;
            let empty = match &cell {
                Cell::Null => true,
                Cell::Str(s) => s.trim().is_empty(),
                _ => false,
            };
            if empty && !field.is_nullable() {
                let what = if matches!(cell, Cell::Null) { "missing" } else { "empty" };
                return Err((field.name().clone(), format!("{what} value for a required column")));
            }
            cells.push(cell);
        }
        if self.table == Table::Subscriptions {
            let at = |name: &str| self.schema.index_of(name).ok().and_then(|i| cells.get(i));
            let mrr = match at("mrr") {
                Some(Cell::F64(v)) => Some(*v),
                _ => None,
            };
            let date = |name: &str| match at(name) {
                Some(Cell::Date(d)) => Some(*d),
                _ => None,
            };
            if let Some((column, reason)) = subscription_problem(mrr, date("starts_on"), date("ends_on")) {
                return Err((column.to_string(), reason));
            }
        }
        for (b, c) in self.cols.iter_mut().zip(cells) {
            match (b, c) {
                (ColBuilder::Str(b), Cell::Str(s)) => b.append_value(s),
                (ColBuilder::I64(b), Cell::I64(v)) => b.append_value(v),
                (ColBuilder::I32(b), Cell::I32(v)) => b.append_value(v),
                (ColBuilder::F64(b), Cell::F64(v)) => b.append_value(v),
                (ColBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (ColBuilder::Ts(b), Cell::Ts(v)) => b.append_value(v),
                (ColBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
                (ColBuilder::Str(b), _) => b.append_null(),
                (ColBuilder::I64(b), _) => b.append_null(),
                (ColBuilder::I32(b), _) => b.append_null(),
                (ColBuilder::F64(b), _) => b.append_null(),
                (ColBuilder::Bool(b), _) => b.append_null(),
                (ColBuilder::Ts(b), _) => b.append_null(),
                (ColBuilder::Date(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColBuilder::Str(b) => Arc::new(b.finish()),
                    ColBuilder::I64(b) => Arc::new(b.finish()),
                    ColBuilder::I32(b) => Arc::new(b.finish()),
                    ColBuilder::F64(b) => Arc::new(b.finish()),
                    ColBuilder::Bool(b) => Arc::new(b.finish()),
                    ColBuilder::Ts(b) => Arc::new(b.finish()),
                    ColBuilder::Date(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.table.schema(), cols)?)
    }
}

fn parse_cell<'a>(ty: &DataType, raw: &'a Raw<'a>) -> std::result::Result<Cell<'a>, String> {
    use serde_json::Value as J;
    let text = match raw {
        Raw::Missing | Raw::Json(J::Null) => return Ok(Cell::Null),
        // CSV cannot tell an empty string from a missing value: both are NULL.
        Raw::Text(s) if s.is_empty() => return Ok(Cell::Null),
        Raw::Text(s) => *s,
        Raw::Json(J::String(s)) => s.as_str(),
        Raw::Json(v) => {
            return match (ty, v) {
                (DataType::Int64 | DataType::Int32, J::Number(n)) => {
                    n.as_i64().ok_or_else(|| format!("expected an integer, found {n}")).and_then(|v| integer_cell(ty, v, &n.to_string()))
                }
                (DataType::Float64, J::Number(n)) => n.as_f64().map(Cell::F64).ok_or_else(|| format!("expected a number, found {n}")),
                (DataType::Boolean, J::Bool(b)) => Ok(Cell::Bool(*b)),
                (DataType::Timestamp(_, _), J::Number(n)) => {
                    n.as_i64().and_then(epoch_to_micros).map(Cell::Ts).ok_or_else(|| format!("expected a timestamp, found {n}"))
                }
                _ => Err(format!("expected {}, found {}", type_word(ty), json_kind(v))),
            };
        }
    };
    match ty {
        DataType::Utf8 => Ok(Cell::Str(text)),
        DataType::Int64 | DataType::Int32 => match text.trim().parse::<i64>() {
            Ok(v) => integer_cell(ty, v, &format!("'{text}'")),
            Err(_) => Err(format!("expected an integer, found '{text}'")),
        },
        DataType::Float64 => text.trim().parse::<f64>().map(Cell::F64).map_err(|_| format!("expected a number, found '{text}'")),
        DataType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => Ok(Cell::Bool(true)),
            "false" | "f" | "0" | "no" => Ok(Cell::Bool(false)),
            _ => Err(format!("expected true or false, found '{text}'")),
        },
        DataType::Timestamp(_, _) => parse_timestamp(text).map(Cell::Ts).ok_or_else(|| {
            format!("cannot parse '{text}' as a timestamp (use RFC 3339 such as 2024-05-01T09:30:00Z, or epoch seconds/ms/us/ns)")
        }),
        DataType::Date32 => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| i32::try_from((d - NaiveDate::default()).num_days()).ok())
            .map(Cell::Date)
            .ok_or_else(|| format!("cannot parse '{text}' as a date (YYYY-MM-DD)")),
        other => Err(format!("unsupported column type {other}")),
    }
}

/// An integer cell of the column's width: a value past an Int32 column's range is an error, not truncated.
fn integer_cell(ty: &DataType, v: i64, shown: &str) -> std::result::Result<Cell<'static>, String> {
    if *ty == DataType::Int32 {
        return i32::try_from(v).map(Cell::I32).map_err(|_| format!("expected a whole number from {} to {}, found {shown}", i32::MIN, i32::MAX));
    }
    Ok(Cell::I64(v))
}

fn type_word(ty: &DataType) -> &'static str {
    match ty {
        DataType::Int64 | DataType::Int32 => "an integer",
        DataType::Float64 => "a number",
        DataType::Boolean => "true or false",
        DataType::Timestamp(_, _) => "a timestamp",
        DataType::Date32 => "a date",
        _ => "a string",
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses RFC 3339 and the common `YYYY-MM-DD HH:MM:SS[.f][zone]` forms (no zone
/// means UTC), or an integer epoch whose unit is told by its size.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return epoch_to_micros(n);
    }
    // RFC 3339 and the plain forms first, by the microsecond: nanoseconds
    // (arrow's parser) cover only the years 1677 to 2262.
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp_micros());
    }
    for form in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, form) {
            return Some(d.and_utc().timestamp_micros());
        }
    }
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(t).ok().map(|ns| ns.div_euclid(1000))
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.
fn epoch_to_micros(n: i64) -> Option<i64> {
    let a = n.unsigned_abs();
    if a < 100_000_000_000 {
        n.checked_mul(1_000_000)
    } else if a < 100_000_000_000_000 {
        n.checked_mul(1_000)
    } else if a < 100_000_000_000_000_000 {
        Some(n)
    } else {
        Some(n / 1000)
    }
}

fn read_csv(path: &FsPath, table: Table, sink: &mut Sink<'_>) -> Result<()> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| LakeError::Input(format!("{name}: {e}")))?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(BufReader::new(file));
    let headers = rdr.headers().map_err(|e| LakeError::Input(format!("{name}: cannot read the header line: {e}")))?.clone();
    let mapping = column_mapping(&name, table, headers.iter())?;
    let mut rows = TextRows::new(table);
    let mut bad = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(LakeError::Input(format!("{name}: line {line}: malformed CSV: {e}")));
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != headers.len() {
            let b = BadRow {
                place: format!("line {line}"),
                column: "-".into(),
                reason: format!("{} fields, the header has {}", record.len(), headers.len()),
                raw: csv_json(&headers, &record),
            };
            bad.push(b);
            continue;
        }
        let raw: Vec<Raw<'_>> = mapping.iter().map(|m| m.map_or(Raw::Missing, |i| Raw::Text(&record[i]))).collect();
        if let Err((column, reason)) = rows.push(&raw) {
            bad.push(BadRow { place: format!("line {line}"), column, reason, raw: csv_json(&headers, &record) });
        }
        if rows.rows >= 64 * 1024 {
            sink(rows.finish()?, std::mem::take(&mut bad))?;
        }
    }
    sink(rows.finish()?, bad)
}

fn csv_json(headers: &csv::StringRecord, record: &csv::StringRecord) -> serde_json::Value {
    let obj = headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), serde_json::Value::from(v))).collect();
    serde_json::Value::Object(obj)
}

/// For each declared column, the input column index that feeds it.
fn column_mapping<'h>(file: &str, table: Table, headers: impl Iterator<Item = &'h str>) -> Result<Vec<Option<usize>>> {
    let schema = table.schema();
    let mut mapping = vec![None; schema.fields().len()];
    for (i, h) in headers.enumerate() {
        let h = h.trim();
        match schema.index_of(h) {
            Ok(j) => mapping[j] = Some(i),
            Err(_) if h.starts_with('_') => {}
            Err(_) => return Err(unknown_column(file, table, h)),
        }
    }
    for (j, f) in schema.fields().iter().enumerate() {
        if mapping[j].is_none() && !f.is_nullable() {
            return Err(LakeError::Input(format!("{file}: required column '{}' is missing from the header", f.name())));
        }
    }
    Ok(mapping)
}

fn read_json(path: &FsPath, table: Table, sink: &mut Sink<'_>) -> Result<()> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| LakeError::Input(format!("{name}: {e}")))?;
    let schema = table.schema();
    let mut rows = TextRows::new(table);
    let mut bad = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| LakeError::Input(format!("{name}: line {line_no}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                bad.push(BadRow { place: format!("line {line_no}"), column: "-".into(), reason: format!("not JSON: {e}"), raw: line.into() });
                continue;
            }
        };
        let Some(obj) = value.as_object() else {
            bad.push(BadRow { place: format!("line {line_no}"), column: "-".into(), reason: "not a JSON object".into(), raw: value.clone() });
            continue;
        };
        if let Some(k) = obj.keys().find(|k| !k.starts_with('_') && schema.index_of(k).is_err()) {
            return Err(unknown_column(&format!("{name}: line {line_no}"), table, k));
        }
        let raw: Vec<Raw<'_>> =
            schema.fields().iter().map(|f| obj.get(f.name()).map_or(Raw::Missing, Raw::Json)).collect();
        if let Err((column, reason)) = rows.push(&raw) {
            bad.push(BadRow { place: format!("line {line_no}"), column, reason, raw: value.clone() });
        }
        if rows.rows >= 64 * 1024 {
            sink(rows.finish()?, std::mem::take(&mut bad))?;
        }
    }
    sink(rows.finish()?, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `bytes` as a file of `format` for `table`: rows or an error, never a panic.
    fn read_any(bytes: &[u8], format: InputFormat, table: Table) -> Result<usize> {
        let mut f = tempfile::NamedTempFile::new()?;
        f.write_all(bytes)?;
        let mut rows = 0;
        let mut sink = |b: RecordBatch, bad: Vec<BadRow>| -> Result<()> {
            rows += b.num_rows() + bad.len();
            Ok(())
        };
        match format {
            InputFormat::Csv => read_csv(f.path(), table, &mut sink)?,
            InputFormat::Json => read_json(f.path(), table, &mut sink)?,
            InputFormat::Parquet => read_parquet(f.path(), table, &mut sink)?,
        }
        Ok(rows)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn any_text_is_a_timestamp_or_none(text in "\\PC{0,40}|[0-9:TZ+ .-]{0,32}") {
            let _ = parse_timestamp(&text);
        }

        /// Every instant vitals can hold reads back from its RFC 3339 text and its epoch microseconds.
        #[test]
        fn timestamps_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_000_000i64) {
            let t = chrono::DateTime::from_timestamp_micros(us).expect("in range");
            proptest::prop_assert_eq!(parse_timestamp(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)), Some(us));
        }

        #[test]
        fn any_csv_is_rows_or_an_error(text in "(event_time,org_id,user_id,event,seats,duration_ms\n)?([a-z0-9,\":.\n -]{0,200})") {
            for table in [Table::Events, Table::Accounts] {
                let _ = read_any(text.as_bytes(), InputFormat::Csv, table);
            }
        }

        #[test]
        fn any_ndjson_is_rows_or_an_error(lines in proptest::collection::vec("\\{(\"[a-z_]{1,12}\": ?(-?[0-9]{1,22}|\"[^\"]{0,12}\"|null|true|\\[\\]|\\{\\}),? ?){0,5}\\}|\\PC{0,30}", 0..6)) {
            let text = lines.join("\n");
            for table in [Table::Events, Table::Accounts] {
                let _ = read_any(text.as_bytes(), InputFormat::Json, table);
            }
        }

        #[test]
        fn any_bytes_are_parquet_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = read_any(&bytes, InputFormat::Parquet, Table::Events);
        }
    }

    #[test]
    fn timestamps_parse_in_common_forms() {
        let want = 1_714_555_800_000_000; // 2024-05-01T09:30:00Z
        assert_eq!(parse_timestamp("2024-05-01T09:30:00Z"), Some(want));
        assert_eq!(parse_timestamp("2024-05-01 09:30:00"), Some(want));
        assert_eq!(parse_timestamp("2024-05-01T11:30:00+02:00"), Some(want));
        assert_eq!(parse_timestamp("1714555800"), Some(want));
        assert_eq!(parse_timestamp("1714555800000"), Some(want));
        assert_eq!(parse_timestamp("1714555800000000000"), Some(want));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn content_ids_are_stable_and_distinct() {
        let a = content_id(&[Some("x".into()), None]);
        assert_eq!(a, content_id(&[Some("x".into()), None]));
        assert_ne!(a, content_id(&[None, Some("x".into())]));
        assert_ne!(a, content_id(&[Some("x".into()), Some(String::new())]));
    }
}
