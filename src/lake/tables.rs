//! The lake's tables as DataFusion sees them: each scan plans over the files of
//! one snapshot (see [`snapshot`](super::snapshot)), skips files by their own
//! statistics, and spreads the rest evenly over the cores. `events` has the
//! column `event_date`, the UTC day of `event_time`: a file whose rows all fall
//! on one day gets it as a constant, any other file computes it per row, so the
//! folder a pipeline chose never changes an answer.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PrunableStatistics;
use datafusion::common::{project_schema, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::datasource::TableType;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{col, lit, Expr, SortExpr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::{create_lex_ordering, PhysicalExpr};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::live::LiveLake;
use super::scan::{dictionary_type, LakeFormat};
use super::scope::ScopeExec;
use super::schema::{Table, EVENT_DATE};
use super::snapshot::{LakeFile, Snapshot};
use super::writer::sort_columns;
use super::{LakeError, Result};

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

/// The schema SQL sees of a table: [`sql_schema`], and for events the `event_date` column last.
pub fn table_schema(table: Table) -> SchemaRef {
    let files = sql_schema(table);
    if table != Table::Events {
        return files;
    }
    let mut fields: Vec<Field> = files.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(event_date_field());
    Arc::new(Schema::new(fields))
}

fn event_date_field() -> Field {
    Field::new(EVENT_DATE, DataType::Date32, false)
}

/// The snapshot one query reads, set on its session by the engine, so that
/// every table a query touches shows the same commit.
#[derive(Debug)]
pub struct PinnedSnapshot(pub Arc<Snapshot>);

/// The snapshot a session reads: the one pinned on it, else the lake's current one.
pub fn session_snapshot(state: &dyn Session, live: &LiveLake) -> Arc<Snapshot> {
    state.config().get_extension::<PinnedSnapshot>().map_or_else(|| live.current(), |p| Arc::clone(&p.0))
}

/// The accounts a session may see: every table's rows are limited to these
/// org_ids below SQL, so no query, view or report can reach other rows.
pub type Scope = Arc<Vec<String>>;

/// Registers events, accounts, users and interventions (empty when absent),
/// each limited to the `scope`'s accounts when there is one.
pub fn register(ctx: &SessionContext, live: &Arc<LiveLake>, scope: Option<&Scope>) -> Result<()> {
    live.lake().register_store(ctx);
    for table in Table::ALL {
        let provider: Arc<dyn TableProvider> = Arc::new(LakeTable::new(table, live, scope.cloned())?);
        ctx.register_table(table.name(), provider).map_err(|e| LakeError::datafusion(format!("registering {}", table.name()), e))?;
    }
    Ok(())
}

/// One lake table: the files of a snapshot, read through [`LakeFormat`];
/// with a scope, only its accounts' rows, behind a [`ScopeExec`].
#[derive(Debug)]
pub struct LakeTable {
    table: Table,
    live: Arc<LiveLake>,
    scope: Option<Scope>,
    schema: SchemaRef,
    format: Arc<LakeFormat>,
    url: ObjectStoreUrl,
}

impl LakeTable {
    pub fn new(table: Table, live: &Arc<LiveLake>, scope: Option<Scope>) -> Result<Self> {
        let url = live.lake().table_url(table)?.object_store();
        let format = Arc::new(LakeFormat::new(ParquetFormat::default(), dictionary_columns(table)));
        Ok(Self { table, live: Arc::clone(live), scope, schema: table_schema(table), format, url })
    }

    /// Which table it is.
    pub fn table(&self) -> Table {
        self.table
    }

    /// The accounts it yields, when limited to some.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// `org_id IN (the scope's accounts)`; false for an empty scope.
    fn scope_predicate(&self) -> Option<Expr> {
        let orgs = self.scope.as_ref()?;
        let list: Vec<Expr> = orgs.iter().map(|o| lit(o.as_str())).collect();
        Some(if list.is_empty() { lit(false) } else { col("org_id").in_list(list, false) })
    }

    /// The files whose statistics do not rule out every row the filters keep.
    /// A file without statistics for a column is never skipped on it.
    fn prune(&self, state: &dyn Session, filters: &[Expr], files: &[Arc<LakeFile>]) -> Vec<Arc<LakeFile>> {
        let all = || files.to_vec();
        let Some(predicate) = conjunction(filters.iter().cloned()) else { return all() };
        let Ok(physical) = physical_over(state, &self.schema, predicate) else { return all() };
        let Some(pruning) = PruningPredicateBuilder::new().with_file_schema(Arc::clone(&self.schema)).build(physical) else { return all() };
        let stats: Vec<Arc<Statistics>> = files.iter().map(|f| self.pruning_stats(f)).collect();
        match pruning.prune(&PrunableStatistics::new(stats, Arc::clone(&self.schema))) {
            Ok(keep) => files.iter().zip(keep).filter(|(_, k)| *k).map(|(f, _)| Arc::clone(f)).collect(),
            Err(_) => all(),
        }
    }

    /// A file's statistics over the whole table schema (events: with event_date's range from event_time's).
    fn pruning_stats(&self, f: &LakeFile) -> Arc<Statistics> {
        if self.table != Table::Events {
            return Arc::clone(&f.stats);
        }
        let mut stats = f.stats.as_ref().clone();
        let mut date = datafusion::common::ColumnStatistics::new_unknown();
        if let Some((lo, hi)) = f.time {
            let day = |us: i64| i32::try_from(us.div_euclid(super::snapshot::DAY_US)).ok().map(|d| ScalarValue::Date32(Some(d)));
            if let (Some(a), Some(b)) = (day(lo), day(hi)) {
                date.min_value = datafusion::common::stats::Precision::Exact(a);
                date.max_value = datafusion::common::stats::Precision::Exact(b);
                date.null_count = datafusion::common::stats::Precision::Exact(0);
            }
        }
        stats.column_statistics.push(date);
        Arc::new(stats)
    }

    /// The files in `groups` groups of about equal bytes, largest first.
    fn balance(files: Vec<PartitionedFile>, groups: usize) -> Vec<FileGroup> {
        let groups = groups.clamp(1, files.len().max(1));
        let mut files = files;
        files.sort_by(|a, b| b.object_meta.size.cmp(&a.object_meta.size).then_with(|| a.object_meta.location.cmp(&b.object_meta.location)));
        let mut out: Vec<(u64, Vec<PartitionedFile>)> = (0..groups).map(|_| (0, Vec::new())).collect();
        for f in files {
            if let Some(g) = out.iter_mut().min_by_key(|g| g.0) {
                g.0 = g.0.saturating_add(f.object_meta.size);
                g.1.push(f);
            }
        }
        out.into_iter().filter(|g| !g.1.is_empty()).map(|g| FileGroup::new(g.1)).collect()
    }

    /// One Parquet scan of `files`; with `dated`, each file's day is the `event_date` partition value.
    async fn data_source(
        &self,
        state: &dyn Session,
        files: &[Arc<LakeFile>],
        dated: bool,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let partition_cols = if dated { vec![Arc::new(event_date_field())] } else { Vec::new() };
        let schema = TableSchema::builder(sql_schema(self.table)).with_table_partition_cols(partition_cols).build();
        let full = Arc::clone(schema.table_schema());
        let parts: Vec<PartitionedFile> = files
            .iter()
            .map(|f| {
                let mut p = PartitionedFile::new_from_meta(f.meta.clone());
                if dated {
                    p = p.with_partition_values(vec![ScalarValue::Date32(f.day())]);
                }
                // A scoped session learns nothing from the whole files' statistics.
                if self.scope.is_none() {
                    p = p.with_statistics(Arc::clone(&f.stats));
                }
                p
            })
            .collect();
        let statistics = if self.scope.is_some() {
            Statistics::new_unknown(&full)
        } else {
            Statistics::try_merge_iter(parts.iter().filter_map(|p| p.statistics.as_deref()), &full)?
        };
        let groups = Self::balance(parts, state.config().target_partitions());
        // The sort order only where every file's footer records it (another tool's files may be in any order).
        let ordering = if files.iter().all(|f| f.sorted) {
            let order: Vec<SortExpr> = sort_columns(self.table).iter().map(|c| col(*c).sort(true, false)).collect();
            create_lex_ordering(&full, &[order], state.execution_props())?
        } else {
            Vec::new()
        };
        let mut source = self.format.file_source(schema);
        if let Some(scope) = self.scope_predicate() {
            // The reader skips other accounts' row groups and rows; ScopeExec above is the boundary.
            let predicate = physical_over(state, &full, scope)?;
            if let Some(parquet) = source.downcast_ref::<ParquetSource>() {
                source = Arc::new(parquet.with_predicate(predicate));
            }
        }
        let config = FileScanConfigBuilder::new(self.url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(projection)?
            .with_limit(limit)
            .with_output_ordering(ordering)
            .build();
        self.format.create_physical_plan(state, config).await
    }

    /// The scan of a scoped session: the files of the scope's accounts (skipped
    /// by statistics with the scope and the query's filters), then ScopeExec;
    /// everything the query wrote runs above it. Filters on event_date are not
    /// worked out here per file, which could fail on a day only other accounts have.
    async fn scoped_scan(
        &self,
        state: &dyn Session,
        snapshot: &Snapshot,
        scope: Expr,
        filters: &[Expr],
        wanted: &[usize],
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut all_filters = filters.to_vec();
        all_filters.push(scope.clone());
        let files = self.prune(state, &all_filters, snapshot.files(self.table));
        let org = self.schema.index_of("org_id")?;
        let mut read = wanted.to_vec();
        if !read.contains(&org) {
            read.push(org);
        }
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema, Some(&wanted.to_vec()))?)));
        }
        let mut parts = Vec::new();
        if self.table != Table::Events {
            parts.push(self.data_source(state, &files, false, Some(read.clone()), None).await?);
        } else {
            let (dated, mixed): (Vec<Arc<LakeFile>>, Vec<Arc<LakeFile>>) = files.into_iter().partition(|f| f.day().is_some());
            if !dated.is_empty() {
                parts.push(self.data_source(state, &dated, true, Some(read.clone()), None).await?);
            }
            if !mixed.is_empty() {
                parts.push(self.per_row_dates(state, &mixed, &read, None, None).await?);
            }
        }
        let input = UnionExec::try_new(parts)?;
        let predicate = physical_over(state, &input.schema(), scope)?;
        let keep: Vec<usize> = (0..wanted.len()).collect();
        Ok(Arc::new(ScopeExec::try_new(input, predicate, keep)?))
    }

    /// Files whose rows span several UTC days: `event_date` computed from
    /// `event_time` per row, and the filters on it applied to those rows.
    async fn per_row_dates(
        &self,
        state: &dyn Session,
        files: &[Arc<LakeFile>],
        projection: &[usize],
        by_date: Option<Expr>,
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let file_columns = sql_schema(self.table).fields().len();
        let time = sql_schema(self.table).index_of("event_time")?;
        // The columns computed: those asked for, and event_date where a filter needs it.
        let mut out: Vec<usize> = projection.to_vec();
        if by_date.is_some() && !out.contains(&file_columns) {
            out.push(file_columns);
        }
        // Read the file columns among them, and event_time where event_date is.
        let mut read: Vec<usize> = out.iter().copied().filter(|i| *i < file_columns).collect();
        if out.contains(&file_columns) && !read.contains(&time) {
            read.push(time);
        }
        // A limit counts rows before a filter here: only without one.
        let limit = if by_date.is_some() { None } else { limit };
        let scan = self.data_source(state, files, false, Some(read.clone()), limit).await?;
        let position = |i: usize| read.iter().position(|r| *r == i).unwrap_or_default();
        let exprs: Vec<ProjectionExpr> = out
            .iter()
            .map(|&i| {
                let field = self.schema.field(i);
                let expr: Arc<dyn PhysicalExpr> = if i == file_columns {
                    let t = Arc::new(Column::new("event_time", position(time)));
                    Arc::new(CastExpr::new(t, DataType::Date32, None))
                } else {
                    Arc::new(Column::new(field.name(), position(i)))
                };
                ProjectionExpr { expr, alias: field.name().clone() }
            })
            .collect();
        let dated: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, scan)?);
        let Some(predicate) = by_date else { return Ok(dated) };
        let filter = physical_over(state, &dated.schema(), predicate)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(filter, dated)?);
        if out.len() == projection.len() {
            return Ok(filtered);
        }
        // Drop the event_date only the filter needed.
        let keep: Vec<ProjectionExpr> = projection
            .iter()
            .enumerate()
            .map(|(k, &i)| ProjectionExpr { expr: Arc::new(Column::new(self.schema.field(i).name(), k)), alias: self.schema.field(i).name().clone() })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(keep, filtered)?))
    }
}

/// Whether a filter reads `event_date` and nothing else (and gives the same answer every time).
fn date_only(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty() && columns.iter().all(|c| c.name == EVENT_DATE) && !filter.is_volatile()
}

/// A filter as a physical expression over `schema`, its columns matched by name
/// (a scan's filters may carry the table's or a view's qualifier).
fn physical_over(state: &dyn Session, schema: &SchemaRef, filter: Expr) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    let unqualified = filter
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => Transformed::yes(Expr::Column(datafusion::common::Column::new_unqualified(c.name))),
                other => Transformed::no(other),
            })
        })?
        .data;
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    state.create_physical_expr(unqualified, &df_schema)
}

#[async_trait::async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// A filter on `event_date` alone is applied here, exactly: a file of one
    /// day is kept or skipped whole by it, and the rows of other files are
    /// filtered as their dates are computed. Every other filter is applied
    /// again above the scan (files are only skipped here by statistics; the
    /// Parquet reader gets the filters from DataFusion).
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.table == Table::Events && self.scope.is_none() && date_only(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = session_snapshot(state, &self.live);
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        if let Some(scope) = self.scope_predicate() {
            return self.scoped_scan(state, &snapshot, scope, filters, &wanted).await;
        }
        let files = self.prune(state, filters, snapshot.files(self.table));
        if self.table != Table::Events {
            if files.is_empty() {
                return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema, projection)?)));
            }
            return self.data_source(state, &files, false, Some(wanted), limit).await;
        }
        // Filters on event_date alone are this scan's to apply, exactly (see supports_filters_pushdown).
        let by_date = conjunction(filters.iter().filter(|f| date_only(f)).cloned());
        let (mut dated, mixed): (Vec<Arc<LakeFile>>, Vec<Arc<LakeFile>>) = files.into_iter().partition(|f| f.day().is_some());
        if let Some(predicate) = &by_date {
            // A file of one day: every row has the same event_date, so the filter keeps all of it or none.
            let date_schema = Arc::new(Schema::new(vec![event_date_field()]));
            let physical = physical_over(state, &date_schema, predicate.clone())?;
            let mut kept = Vec::with_capacity(dated.len());
            for f in dated {
                let day = Arc::new(arrow::array::Date32Array::from(vec![f.day()]));
                let batch = arrow::record_batch::RecordBatch::try_new(Arc::clone(&date_schema), vec![day])?;
                let verdict = physical.evaluate(&batch)?.into_array(1)?;
                let verdict = verdict.as_boolean_opt().ok_or_else(|| datafusion::error::DataFusionError::Internal("a filter that is not boolean".into()))?;
                if verdict.is_valid(0) && verdict.value(0) {
                    kept.push(f);
                }
            }
            dated = kept;
        }
        let mut parts = Vec::new();
        if !dated.is_empty() {
            parts.push(self.data_source(state, &dated, true, Some(wanted.clone()), limit).await?);
        }
        if !mixed.is_empty() {
            parts.push(self.per_row_dates(state, &mixed, &wanted, by_date, limit).await?);
        }
        if parts.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema, projection)?)));
        }
        UnionExec::try_new(parts)
    }
}
