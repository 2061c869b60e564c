//! Registers the lake's tables with a DataFusion session: listing tables with
//! the declared schema, the `event_date` partition and the writer's sort
//! order. Before registering, every file's footer is checked against the
//! contract, so an incompatible file is named here, not deep inside a query.

// ParquetObjectReader is deprecated upstream in favour of hand-written readers; it
// is still the shortest correct way to read a footer from any object store.
#![allow(deprecated)]

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::physical_plan::parquet::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::datasource::{provider_as_source, TableType, ViewTable};
use datafusion::logical_expr::{col, lit, Expr, LogicalPlanBuilder, SortExpr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use super::scan::{dictionary_type, LakeFormat};
use super::schema::{compatible, Table, EVENT_DATE};
use super::writer::sort_columns;
use super::{Lake, LakeError, Result};

/// What registration found in the lake.
#[derive(Debug, Clone, Default)]
pub struct LakeSummary {
    /// Committed Parquet files per table, in [`Table::ALL`] order.
    pub files: Vec<(Table, usize)>,
    /// The first and last `event_date` partitions holding files.
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
}

/// The string columns read as dictionaries (see [`scan`](super::scan)): few
/// distinct values, filtered and grouped on by most reports.
pub fn dictionary_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Events => &["event"],
        _ => &[],
    }
}

/// The schema SQL sees: dictionary columns as dictionaries, other strings as
/// Utf8View, both of which the Parquet reader produces without a copy.
pub fn sql_schema(table: Table) -> SchemaRef {
    let dictionary = dictionary_columns(table);
    let fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if dictionary.contains(&f.name().as_str()) => f.as_ref().clone().with_data_type(dictionary_type()),
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The accounts a session may see: every table's rows are limited to these
/// org_ids below SQL, so no query, view or report can reach other rows.
pub type Scope = Arc<Vec<String>>;

/// Registers events, accounts, users and interventions (empty when absent),
/// each limited to the `scope`'s accounts when there is one.
pub async fn register(ctx: &SessionContext, lake: &Lake, check_files: bool, scope: Option<&Scope>) -> Result<LakeSummary> {
    lake.register_store(ctx);
    let mut summary = LakeSummary::default();
    for table in Table::ALL {
        let files = lake.list_files(table).await?;
        if check_files {
            check_compatible(ctx, lake, table, &files).await?;
        }
        if table == Table::Events {
            let days = files.iter().filter_map(|m| partition_day(m.location.as_ref()));
            for d in days {
                summary.first_day = Some(summary.first_day.map_or(d, |f| f.min(d)));
                summary.last_day = Some(summary.last_day.map_or(d, |l| l.max(d)));
            }
        }
        summary.files.push((table, files.len()));
        let listing: Arc<dyn TableProvider> = match table {
            Table::Events => Arc::new(EventsTable { listing: listing_table(ctx, lake, table)? }),
            _ => listing_table(ctx, lake, table)?,
        };
        let provider = match scope {
            Some(orgs) => scoped(table, listing, orgs)?,
            None => listing,
        };
        ctx.register_table(table.name(), provider)
            .map_err(|e| LakeError::datafusion(format!("registering {}", table.name()), e))?;
    }
    Ok(summary)
}

/// The listing table of one lake table.
pub fn listing_table(ctx: &SessionContext, lake: &Lake, table: Table) -> Result<Arc<ListingTable>> {
    let parquet_opts = ctx.state().table_options().parquet.clone();
    let format = LakeFormat::new(ParquetFormat::default().with_options(parquet_opts), dictionary_columns(table));
    let order: Vec<SortExpr> = sort_columns(table).iter().map(|c| col(*c).sort(true, false)).collect();
    let mut options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_file_sort_order(vec![order]);
    if table == Table::Events {
        options = options.with_table_partition_cols(vec![(EVENT_DATE.to_string(), DataType::Date32)]);
    }
    let config = ListingTableConfig::new(lake.table_url(table)?)
        .with_listing_options(options)
        .with_schema(sql_schema(table));
    let provider = ListingTable::try_new(config)
        .map_err(|e| LakeError::datafusion(format!("table {}", table.name()), e))?;
    Ok(Arc::new(provider))
}

/// The events listing table, which also prunes `event_date` partitions by
/// the scan's `event_time` filters.
///
/// A file in partition `event_date=D` holds only events whose UTC day is D (the
/// lake's writer puts them there; the contract says so), so a filter such as
/// `event_time >= T` implies `event_date >= day(T)`. DataFusion prunes
/// partitions only by filters on the partition column itself, and a report
/// filters on event_time; without the implied filter every file is listed and
/// opened, and since files are split between cores in date order, the files
/// a recent window needs all land on one core while the other finds nothing.
#[derive(Debug)]
pub struct EventsTable {
    listing: Arc<ListingTable>,
}

/// Microseconds in a UTC day: partition days and event_time compared.
const DAY_US: i64 = 86_400_000_000;

/// The `event_date` filters implied by `event_time` filters (none for the rest).
pub fn implied_date_filters(filters: &[Expr]) -> Vec<Expr> {
    use datafusion::logical_expr::{expr::BinaryExpr, Between, Operator};
    let day = |us: i64| lit(ScalarValue::Date32(Some(us.div_euclid(DAY_US) as i32)));
    let date = || col(EVENT_DATE);
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "event_time");
    let mut out = Vec::new();
    for filter in filters {
        for conjunct in datafusion::logical_expr::utils::split_conjunction(filter) {
            match conjunct {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    // Put the column on the left.
                    let (value, op) = if is_time(left) {
                        (timestamp_us(right), *op)
                    } else if is_time(right) {
                        match op.swap() {
                            Some(swapped) => (timestamp_us(left), swapped),
                            None => continue,
                        }
                    } else {
                        continue;
                    };
                    let Some(t) = value else { continue };
                    match op {
                        Operator::Gt | Operator::GtEq => out.push(date().gt_eq(day(t))),
                        Operator::LtEq => out.push(date().lt_eq(day(t))),
                        Operator::Lt => out.push(date().lt_eq(day(t.saturating_sub(1)))),
                        Operator::Eq => out.push(date().eq(day(t))),
                        _ => {}
                    }
                }
                Expr::Between(Between { expr, negated: false, low, high }) if is_time(expr) => {
                    if let Some(t) = timestamp_us(low) {
                        out.push(date().gt_eq(day(t)));
                    }
                    if let Some(t) = timestamp_us(high) {
                        out.push(date().lt_eq(day(t)));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// A timestamp literal as UTC microseconds (any unit; a literal without a zone
/// is taken as UTC, which is how DataFusion compares it with event_time).
fn timestamp_us(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => micros(TimeUnit::Second, *x),
        ScalarValue::TimestampMillisecond(Some(x), _) => micros(TimeUnit::Millisecond, *x),
        ScalarValue::TimestampMicrosecond(Some(x), _) => micros(TimeUnit::Microsecond, *x),
        ScalarValue::TimestampNanosecond(Some(x), _) => micros(TimeUnit::Nanosecond, *x),
        _ => None,
    }
}

/// A timestamp of any unit in microseconds; None past the i64 range.
/// Nanoseconds round down: a bound a fraction of a microsecond early only
/// keeps a day more, and a file's first time a fraction early stays in its day.
fn micros(unit: TimeUnit, v: i64) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
    }
}

#[async_trait::async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.listing.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default().with_projection(projection.map(|p| p.as_slice())).with_filters(Some(filters)).with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> datafusion::error::Result<ScanResult> {
        let given = args.filters().unwrap_or(&[]);
        let implied = implied_date_filters(given);
        if implied.is_empty() {
            return self.listing.scan_with_args(state, args).await;
        }
        let all: Vec<Expr> = given.iter().cloned().chain(implied).collect();
        self.listing.scan_with_args(state, args.with_filters(Some(&all))).await
    }
}

/// One lake table limited to some accounts: a plan that filters on org_id
/// above the table's scan (DataFusion pushes the filter into the Parquet
/// reader, so other accounts' row groups are skipped, not read and dropped).
#[derive(Debug)]
pub struct ScopedTable {
    view: ViewTable,
}

fn scoped(table: Table, inner: Arc<dyn TableProvider>, orgs: &Scope) -> Result<Arc<dyn TableProvider>> {
    let list: Vec<Expr> = orgs.iter().map(|o| lit(o.as_str())).collect();
    // An empty scope sees nothing; IN () is not valid SQL, so say it directly.
    let predicate = if list.is_empty() { lit(false) } else { col("org_id").in_list(list, false) };
    let plan = LogicalPlanBuilder::scan(table.name(), provider_as_source(inner), None)
        .and_then(|b| b.filter(predicate))
        .and_then(|b| b.build())
        .map_err(|e| LakeError::datafusion(format!("scoping {}", table.name()), e))?;
    Ok(Arc::new(ScopedTable { view: ViewTable::new(plan, None) }))
}

#[async_trait::async_trait]
impl TableProvider for ScopedTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    /// Still a base table to the catalog: clients see the same names and kinds.
    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.view.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }
}

/// A file in partition `event_date=D` must hold only times of UTC day D, since
/// filters on event_time skip partitions by that rule ([`EventsTable`]).
/// Checked by the row groups' statistics; a file without them is taken on trust.
fn check_partition_day(file: &str, day: NaiveDate, metadata: &ParquetMetaData, schema: &Schema) -> Result<()> {
    let Ok(field) = schema.field_with_name("event_time") else { return Ok(()) };
    let DataType::Timestamp(unit, _) = field.data_type() else { return Ok(()) };
    let columns = metadata.file_metadata().schema_descr().columns();
    let Some(idx) = columns.iter().position(|c| c.name() == "event_time") else { return Ok(()) };
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for rg in metadata.row_groups() {
        match rg.column(idx).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt().and_then(|v| micros(*unit, *v)), s.max_opt().and_then(|v| micros(*unit, *v))) {
                (Some(lo), Some(hi)) => {
                    first = first.min(lo);
                    last = last.max(hi);
                }
                _ => return Ok(()),
            },
            _ => return Ok(()),
        }
    }
    if first > last {
        return Ok(());
    }
    let start = (day - NaiveDate::default()).num_days() * DAY_US;
    if first < start || last >= start + DAY_US {
        let at = |us: i64| chrono::DateTime::from_timestamp_micros(us).map_or_else(|| us.to_string(), |t| t.to_rfc3339());
        return Err(LakeError::IncompatibleFile {
            file: file.to_string(),
            column: "event_time".into(),
            reason: format!(
                "holds times from {} to {} in partition event_date={day}; every time in a partition must fall on its UTC day (filters on event_time skip other days' partitions)",
                at(first),
                at(last)
            ),
        });
    }
    Ok(())
}

/// The day of an `events/event_date=YYYY-MM-DD/...` path.
pub fn partition_day(path: &str) -> Option<NaiveDate> {
    let seg = path.split('/').find_map(|s| s.strip_prefix("event_date="))?;
    NaiveDate::parse_from_str(seg, "%Y-%m-%d").ok()
}

/// Reads every file's footer and checks its columns against the contract.
/// The footers read are left in the session's metadata cache, where planning
/// and the Parquet reader look first, so no footer is read twice.
async fn check_compatible(ctx: &SessionContext, lake: &Lake, table: Table, files: &[ObjectMeta]) -> Result<()> {
    let declared = table.schema();
    let required = table.required();
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    futures::stream::iter(files.iter().cloned())
        .map(|meta| {
            let store = lake.store().clone();
            let declared = declared.clone();
            let required = required.clone();
            let cache = cache.clone();
            async move {
                let name = lake.relative(&meta.location).to_string();
                let reader = ParquetObjectReader::new(store, meta.location.clone()).with_file_size(meta.size);
                let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| {
                    LakeError::IncompatibleFile { file: name.clone(), column: "-".into(), reason: format!("not a readable Parquet file: {e}") }
                })?;
                let found = builder.schema().clone();
                if table == Table::Events {
                    if let Some(day) = partition_day(meta.location.as_ref()) {
                        check_partition_day(&name, day, builder.metadata(), &found)?;
                    }
                }
                cache.put(
                    &meta.location,
                    CachedFileMetadataEntry::new(meta.clone(), Arc::new(CachedParquetMetaData::new(builder.metadata().clone()))),
                );
                // Nulls in a required column would break queries later: name them now.
                let parquet_schema = builder.parquet_schema();
                for column in &required {
                    let Some(idx) = parquet_schema.columns().iter().position(|c| c.name() == column.as_str()) else { continue };
                    let nulls: u64 = builder
                        .metadata()
                        .row_groups()
                        .iter()
                        .filter_map(|rg| rg.column(idx).statistics().and_then(|s| s.null_count_opt()))
                        .sum();
                    if nulls > 0 {
                        return Err(LakeError::IncompatibleFile {
                            file: name,
                            column: column.clone(),
                            reason: format!("has {nulls} NULL values; the contract requires a value in every row"),
                        });
                    }
                }
                for field in declared.fields() {
                    match found.field_with_name(field.name()) {
                        Ok(f) if !compatible(f.data_type(), field.data_type()) => {
                            return Err(LakeError::IncompatibleFile {
                                file: name,
                                column: field.name().clone(),
                                reason: format!("has type {}, the contract declares {}", f.data_type(), field.data_type()),
                            })
                        }
                        Ok(_) => {}
                        Err(_) if required.contains(field.name()) => {
                            return Err(LakeError::IncompatibleFile {
                                file: name,
                                column: field.name().clone(),
                                reason: "required column is missing".into(),
                            })
                        }
                        Err(_) => {}
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())))
    }

    fn date(days: i32) -> Expr {
        lit(ScalarValue::Date32(Some(days)))
    }

    const DAY: i64 = DAY_US;

    #[test]
    fn event_time_bounds_imply_whole_days() {
        let t = col("event_time");
        let d = || col(EVENT_DATE);
        // Day 100 at 08:00, and day 100 at midnight.
        let noon = 100 * DAY + 8 * 3_600_000_000;
        let midnight = 100 * DAY;
        let cases = vec![
            (t.clone().gt_eq(ts(noon)), vec![d().gt_eq(date(100))]),
            (t.clone().gt(ts(noon)), vec![d().gt_eq(date(100))]),
            (t.clone().lt_eq(ts(noon)), vec![d().lt_eq(date(100))]),
            (t.clone().lt(ts(noon)), vec![d().lt_eq(date(100))]),
            // Strictly before midnight: the day before is the last one.
            (t.clone().lt(ts(midnight)), vec![d().lt_eq(date(99))]),
            (t.clone().eq(ts(noon)), vec![d().eq(date(100))]),
            // The literal first: the operator turns round.
            (ts(noon).lt_eq(t.clone()), vec![d().gt_eq(date(100))]),
            (ts(midnight).gt(t.clone()), vec![d().lt_eq(date(99))]),
            (t.clone().between(ts(noon), ts(noon + 2 * DAY)), vec![d().gt_eq(date(100)), d().lt_eq(date(102))]),
            (t.clone().gt_eq(ts(noon)).and(t.clone().lt(ts(midnight + 7 * DAY))), vec![d().gt_eq(date(100)), d().lt_eq(date(106))]),
            // Before 1970: days round down.
            (t.clone().gt_eq(ts(-1)), vec![d().gt_eq(date(-1))]),
            // Seconds, milliseconds and nanoseconds are the same instants.
            (t.clone().gt_eq(lit(ScalarValue::TimestampSecond(Some(noon / 1_000_000), None))), vec![d().gt_eq(date(100))]),
            (t.clone().gt_eq(lit(ScalarValue::TimestampMillisecond(Some(noon / 1_000), None))), vec![d().gt_eq(date(100))]),
            (t.clone().lt(lit(ScalarValue::TimestampNanosecond(Some(midnight * 1_000), None))), vec![d().lt_eq(date(99))]),
        ];
        for (filter, expected) in cases {
            assert_eq!(implied_date_filters(std::slice::from_ref(&filter)), expected, "{filter}");
        }
    }

    #[test]
    fn nothing_is_implied_where_a_day_range_would_be_wrong() {
        let t = col("event_time");
        let none = vec![
            // Either side of a range: no one range of days.
            t.clone().lt(ts(DAY)).or(t.clone().gt(ts(5 * DAY))),
            t.clone().not_between(ts(DAY), ts(5 * DAY)),
            t.clone().not_eq(ts(DAY)),
            // Another column, or a value that is not a literal.
            col("signup_time").gt_eq(ts(DAY)),
            t.clone().gt_eq(col("signup_time")),
            t.clone().gt_eq(lit(ScalarValue::TimestampMicrosecond(None, None))),
            col("event").eq(lit("login")),
        ];
        for filter in none {
            assert!(implied_date_filters(std::slice::from_ref(&filter)).is_empty(), "{filter}");
        }
    }
}
