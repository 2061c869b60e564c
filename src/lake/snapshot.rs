//! What readers see of the lake at one moment: for each table, the files that
//! count (committed in the log, or dropped in by another pipeline; neither
//! hidden, nor removed, nor incompatible with the contract), each with what its
//! footer says (rows, statistics, the event_time range, the sort order), and
//! the facts reports default to. Files are looked at once: a later snapshot
//! reuses what an earlier one found for an unchanged file.

// ParquetObjectReader is deprecated upstream in favour of hand-written readers; it
// is still the shortest correct way to read one column from any object store.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use chrono::NaiveDate;
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectMeta;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{parquet_to_arrow_schema, ProjectionMask};
use parquet::file::metadata::ParquetMetaData;

use super::log::{is_owned_name, table_of, LogState};
use super::schema::{compatible, Table, UTC};
use super::tables::sql_schema;
use super::writer::sort_columns;
use super::{Lake, LakeError, Result};

/// Microseconds in a UTC day.
pub const DAY_US: i64 = 86_400_000_000;

/// Bytes read from a file's end in one request to get its footer.
const FOOTER_HINT: usize = 64 << 10;

/// One file that counts, and what its footer says.
#[derive(Debug)]
pub struct LakeFile {
    pub meta: ObjectMeta,
    /// Relative to the lake root, for messages.
    pub rel: String,
    pub rows: u64,
    /// DataFusion's statistics over the table's file columns ([`sql_schema`]).
    pub stats: Arc<Statistics>,
    /// An events file's first and last event_time in microseconds (None when empty).
    pub time: Option<(i64, i64)>,
    /// The footer says the rows are in the table's sort order.
    pub sorted: bool,
    /// Columns the file has that the table does not declare (read by no query).
    pub undeclared: Vec<String>,
}

impl LakeFile {
    /// The UTC day (days since 1970-01-01) every row of an events file falls on, if one does.
    pub fn day(&self) -> Option<i32> {
        let (lo, hi) = self.time?;
        let (a, b) = (lo.div_euclid(DAY_US), hi.div_euclid(DAY_US));
        if a == b { i32::try_from(a).ok() } else { None }
    }
}

/// A file that breaks the contract; it is left out and named.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    pub column: String,
    pub reason: String,
}

impl Problem {
    pub fn error(&self) -> LakeError {
        LakeError::IncompatibleFile { file: self.file.clone(), column: self.column.clone(), reason: self.reason.clone() }
    }
}

/// The lake at one log version.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The log version it was read at.
    pub version: u64,
    files: HashMap<Table, Vec<Arc<LakeFile>>>,
    /// Files left out, with the size and time they had when looked at.
    problems: Vec<(ObjectMeta, Problem)>,
    /// events files (relative paths) whose times are not all on their folder's UTC day.
    pub misplaced: Vec<String>,
    /// The UTC days of the first and last event.
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// The accounts table's org_ids (None when it has no files).
    pub org_ids: Option<Arc<HashSet<String>>>,
    /// Per table, a value that changes whenever its set of files does.
    fingerprints: HashMap<Table, u64>,
}

impl Snapshot {
    /// The files of a table, sorted by path.
    pub fn files(&self, table: Table) -> &[Arc<LakeFile>] {
        self.files.get(&table).map_or(&[], |v| v.as_slice())
    }

    /// The files left out for breaking the contract.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().map(|(_, p)| p)
    }

    /// Changes whenever the table's set of files changes.
    pub fn fingerprint(&self, table: Table) -> u64 {
        self.fingerprints.get(&table).copied().unwrap_or_default()
    }

    /// Reads the lake at `log`'s version. `previous` lends what it found for
    /// files that have not changed; `cache` keeps the footers for the scans.
    pub async fn build(lake: &Lake, log: &LogState, previous: Option<&Snapshot>, cache: &Arc<FileMetadataCache>) -> Result<Snapshot> {
        let mut snap = Snapshot { version: log.version, ..Default::default() };
        let known: HashMap<&str, &Arc<LakeFile>> =
            previous.map(|p| p.files.values().flatten().map(|f| (f.rel.as_str(), f)).collect()).unwrap_or_default();
        let known_bad: HashMap<&str, &(ObjectMeta, Problem)> =
            previous.map(|p| p.problems.iter().map(|e| (e.1.file.as_str(), e)).collect()).unwrap_or_default();
        for table in Table::ALL {
            let listed = lake.list_files(table).await?;
            let mut listed_paths = HashSet::new();
            let mut candidates = Vec::new();
            for meta in listed {
                let rel = lake.relative(&meta.location).to_string();
                listed_paths.insert(rel.clone());
                let owned = meta.location.filename().is_some_and(is_owned_name);
                // vitals' own files count once committed; any other file unless
                // a commit removed it (a file written to that path after the
                // removal, such as a pipeline's new export of the day, is a new file).
                let counts = if owned { log.live.contains_key(&rel) } else { !log.removed_before(&rel, &meta) };
                if counts {
                    candidates.push((rel, meta));
                }
            }
            for rel in log.live.keys().filter(|p| table_of(p) == Some(table) && !listed_paths.contains(*p)) {
                let meta = ObjectMeta { location: lake.child(rel), last_modified: chrono::DateTime::default(), size: 0, e_tag: None, version: None };
                let problem = Problem { file: rel.clone(), column: "-".into(), reason: "committed in the lake's log but missing from the store".into() };
                snap.problems.push((meta, problem));
            }
            let same = |a: &ObjectMeta, b: &ObjectMeta| a.size == b.size && a.last_modified == b.last_modified;
            let looked: Vec<std::result::Result<Arc<LakeFile>, (ObjectMeta, Problem)>> = futures::stream::iter(candidates)
                .map(|(rel, meta)| {
                    let reuse = known.get(rel.as_str()).filter(|f| same(&f.meta, &meta)).map(|f| Arc::clone(f));
                    let reuse_bad = known_bad.get(rel.as_str()).filter(|e| same(&e.0, &meta)).map(|e| (*e).clone());
                    async move {
                        if let Some(f) = reuse {
                            return Ok(f);
                        }
                        if let Some(bad) = reuse_bad {
                            return Err(bad);
                        }
                        inspect(lake, table, rel, meta.clone(), cache).await.map(Arc::new).map_err(|p| (meta, p))
                    }
                })
                .buffered(16)
                .collect()
                .await;
            let mut files = Vec::with_capacity(looked.len());
            for r in looked {
                match r {
                    Ok(f) => files.push(f),
                    Err(bad) => snap.problems.push(bad),
                }
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for f in &files {
                (&f.rel, f.meta.size, f.meta.last_modified).hash(&mut h);
            }
            snap.fingerprints.insert(table, h.finish());
            snap.files.insert(table, files);
        }
        snap.facts(lake, previous).await?;
        Ok(snap)
    }

    /// The first and last day, the misplaced events files and the org_ids.
    async fn facts(&mut self, lake: &Lake, previous: Option<&Snapshot>) -> Result<()> {
        let day = |us: i64| chrono::DateTime::from_timestamp_micros(us).map(|t| t.date_naive());
        let (mut first, mut last, mut misplaced) = (None::<NaiveDate>, None::<NaiveDate>, Vec::new());
        for f in self.files(Table::Events) {
            let Some((lo, hi)) = f.time else { continue };
            if let Some(d) = day(lo) {
                first = Some(first.map_or(d, |x| x.min(d)));
            }
            if let Some(d) = day(hi) {
                last = Some(last.map_or(d, |x| x.max(d)));
            }
            let folder = folder_day(&f.rel).map(|d| (d - NaiveDate::default()).num_days());
            if folder.is_some() && folder != f.day().map(i64::from) {
                misplaced.push(f.rel.clone());
            }
        }
        (self.first_day, self.last_day, self.misplaced) = (first, last, misplaced);
        let accounts = self.fingerprint(Table::Accounts);
        self.org_ids = match previous {
            Some(p) if p.fingerprint(Table::Accounts) == accounts && p.org_ids.is_some() => p.org_ids.clone(),
            _ if self.files(Table::Accounts).is_empty() => None,
            _ => Some(Arc::new(read_strings(lake, self.files(Table::Accounts), "org_id").await?)),
        };
        Ok(())
    }
}

/// The day of an `events/event_date=YYYY-MM-DD/...` path, if it has one.
pub fn folder_day(path: &str) -> Option<NaiveDate> {
    let seg = path.split('/').find_map(|s| s.strip_prefix("event_date="))?;
    NaiveDate::parse_from_str(seg, "%Y-%m-%d").ok()
}

/// Reads a file's footer and checks it against the contract.
async fn inspect(lake: &Lake, table: Table, rel: String, meta: ObjectMeta, cache: &Arc<FileMetadataCache>) -> std::result::Result<LakeFile, Problem> {
    let bad = |column: &str, reason: String| Problem { file: rel.clone(), column: column.to_string(), reason };
    let metadata = DFParquetMetadata::new(lake.store().as_ref(), &meta)
        .with_metadata_size_hint(Some(FOOTER_HINT))
        .with_file_metadata_cache(Some(Arc::clone(cache)))
        .fetch_metadata()
        .await
        .map_err(|e| bad("-", format!("not a readable Parquet file: {e}")))?;
    let file = metadata.file_metadata();
    let found = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).map_err(|e| bad("-", format!("cannot read its schema: {e}")))?;
    check_columns(table, &metadata, &found).map_err(|(c, r)| bad(&c, r))?;
    let schema = sql_schema(table);
    let rows = u64::try_from(file.num_rows()).unwrap_or_default();
    let mut stats = DFParquetMetadata::statistics_from_parquet_metadata(&metadata, &schema).unwrap_or_else(|_| {
        let mut s = Statistics::new_unknown(&schema);
        s.num_rows = Precision::Exact(usize::try_from(rows).unwrap_or(usize::MAX));
        s
    });
    let time = if table == Table::Events {
        match stats_time_range(&stats, &schema) {
            Some(range) => Some(range),
            // No usable statistics: read the column once, so the file can still be pruned and dated.
            None if rows > 0 => read_time_range(lake, &meta).await.map_err(|e| bad("event_time", e))?,
            None => None,
        }
    } else {
        None
    };
    // event_time's range as the table's type, whatever unit and zone the file stores.
    if let (Some((lo, hi)), Ok(idx)) = (time, schema.index_of("event_time")) {
        if let Some(col) = stats.column_statistics.get_mut(idx) {
            let at = |us: i64| Precision::Exact(ScalarValue::TimestampMicrosecond(Some(us), Some(UTC.into())));
            col.min_value = at(lo);
            col.max_value = at(hi);
        }
    }
    let declared = table.schema();
    let undeclared = found.fields().iter().filter(|f| declared.field_with_name(f.name()).is_err()).map(|f| f.name().clone()).collect();
    Ok(LakeFile { sorted: declares_sort_order(table, &metadata), rel, meta, rows, stats: Arc::new(stats), time, undeclared })
}

/// Checks the columns a file has against the table's declared ones: types, required columns present and without NULLs.
fn check_columns(table: Table, metadata: &ParquetMetaData, found: &Schema) -> std::result::Result<(), (String, String)> {
    let declared = table.schema();
    let required = table.required();
    for field in declared.fields() {
        match found.field_with_name(field.name()) {
            Ok(f) if !compatible(f.data_type(), field.data_type()) => {
                return Err((field.name().clone(), format!("has type {}, the contract declares {}", f.data_type(), field.data_type())));
            }
            Ok(_) => {}
            Err(_) if required.contains(field.name()) => return Err((field.name().clone(), "required column is missing".into())),
            Err(_) => {}
        }
    }
    let columns = metadata.file_metadata().schema_descr().columns();
    for column in &required {
        let Some(idx) = columns.iter().position(|c| c.name() == column.as_str()) else { continue };
        let nulls: u64 = metadata.row_groups().iter().filter_map(|rg| rg.column(idx).statistics().and_then(|s| s.null_count_opt())).sum();
        if nulls > 0 {
            return Err((column.clone(), format!("has {nulls} NULL values; the contract requires a value in every row")));
        }
    }
    Ok(())
}

/// Whether every row group records the table's sort order (ascending, nulls last).
fn declares_sort_order(table: Table, metadata: &ParquetMetaData) -> bool {
    let columns = metadata.file_metadata().schema_descr().columns();
    let want = sort_columns(table);
    !metadata.row_groups().is_empty()
        && metadata.row_groups().iter().all(|rg| {
            let Some(sorting) = rg.sorting_columns() else { return false };
            sorting.len() >= want.len()
                && want.iter().zip(sorting).all(|(name, s)| {
                    usize::try_from(s.column_idx).ok().and_then(|i| columns.get(i)).is_some_and(|c| c.name() == *name)
                        && !s.descending
                        && !s.nulls_first
                })
        })
}

/// A timestamp of any unit as microseconds; None past the i64 range.
pub fn micros(unit: TimeUnit, v: i64) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
    }
}

/// A timestamp scalar as microseconds.
pub fn scalar_micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => micros(TimeUnit::Second, *x),
        ScalarValue::TimestampMillisecond(Some(x), _) => micros(TimeUnit::Millisecond, *x),
        ScalarValue::TimestampMicrosecond(Some(x), _) => micros(TimeUnit::Microsecond, *x),
        ScalarValue::TimestampNanosecond(Some(x), _) => micros(TimeUnit::Nanosecond, *x),
        _ => None,
    }
}

/// event_time's range from a file's statistics, when both ends are known.
fn stats_time_range(stats: &Statistics, schema: &Schema) -> Option<(i64, i64)> {
    let idx = schema.index_of("event_time").ok()?;
    let col = stats.column_statistics.get(idx)?;
    let lo = scalar_micros(col.min_value.get_value()?)?;
    let hi = scalar_micros(col.max_value.get_value()?)?;
    (lo <= hi).then_some((lo, hi))
}

/// event_time's range read from the column itself.
async fn read_time_range(lake: &Lake, meta: &ObjectMeta) -> std::result::Result<Option<(i64, i64)>, String> {
    let reader = ParquetObjectReader::new(lake.store().clone(), meta.location.clone()).with_file_size(meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| e.to_string())?;
    let Some(idx) = builder.parquet_schema().columns().iter().position(|c| c.name() == "event_time") else { return Ok(None) };
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [idx]);
    let mut stream = builder.with_projection(mask).build().map_err(|e| e.to_string())?;
    let mut range: Option<(i64, i64)> = None;
    while let Some(batch) = stream.try_next().await.map_err(|e| e.to_string())? {
        let col = arrow::compute::cast(batch.column(0), &DataType::Timestamp(TimeUnit::Microsecond, None)).map_err(|e| e.to_string())?;
        let times = col.as_primitive::<TimestampMicrosecondType>();
        if let (Some(lo), Some(hi)) = (arrow::compute::min(times), arrow::compute::max(times)) {
            range = Some(range.map_or((lo, hi), |(a, z)| (a.min(lo), z.max(hi))));
        }
    }
    Ok(range)
}

/// The distinct values of a string column over some files.
async fn read_strings(lake: &Lake, files: &[Arc<LakeFile>], column: &str) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for f in files {
        let reader = ParquetObjectReader::new(lake.store().clone(), f.meta.location.clone()).with_file_size(f.meta.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        let Some(idx) = builder.parquet_schema().columns().iter().position(|c| c.name() == column) else { continue };
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [idx]);
        let mut stream = builder.with_projection(mask).build()?;
        while let Some(batch) = stream.try_next().await? {
            let col = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
            out.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
        }
    }
    Ok(out)
}

/// A store path's file name.
pub fn file_name(location: &Path) -> &str {
    location.filename().unwrap_or_default()
}
