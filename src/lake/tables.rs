//! Registers the lake's tables with a DataFusion session: listing tables with
//! the declared schema, the `event_date` partition and the writer's sort
//! order. Before registering, every file's footer is checked against the
//! contract, so an incompatible file is named here, not deep inside a query.

// ParquetObjectReader is deprecated upstream in favour of hand-written readers; it
// is still the shortest correct way to read a footer from any object store.
#![allow(deprecated)]

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{provider_as_source, TableType, ViewTable};
use datafusion::logical_expr::{col, lit, Expr, LogicalPlanBuilder, SortExpr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

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

/// The schema SQL sees: strings as Utf8View, which the Parquet reader
/// produces without a copy.
pub fn sql_schema(table: Table) -> SchemaRef {
    let fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
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
            check_compatible(lake, table, &files).await?;
        }
        if table == Table::Events {
            let days = files.iter().filter_map(|m| partition_day(m.location.as_ref()));
            for d in days {
                summary.first_day = Some(summary.first_day.map_or(d, |f| f.min(d)));
                summary.last_day = Some(summary.last_day.map_or(d, |l| l.max(d)));
            }
        }
        summary.files.push((table, files.len()));
        let listing: Arc<dyn TableProvider> = listing_table(ctx, lake, table)?;
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
    let format = ParquetFormat::default().with_options(parquet_opts);
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

/// The day of an `events/event_date=YYYY-MM-DD/...` path.
pub fn partition_day(path: &str) -> Option<NaiveDate> {
    let seg = path.split('/').find_map(|s| s.strip_prefix("event_date="))?;
    NaiveDate::parse_from_str(seg, "%Y-%m-%d").ok()
}

/// Reads every file's footer and checks its columns against the contract.
async fn check_compatible(lake: &Lake, table: Table, files: &[ObjectMeta]) -> Result<()> {
    let declared = table.schema();
    let required = table.required();
    futures::stream::iter(files.iter().cloned())
        .map(|meta| {
            let store = lake.store().clone();
            let declared = declared.clone();
            let required = required.clone();
            async move {
                let name = lake.relative(&meta.location).to_string();
                let reader = ParquetObjectReader::new(store, meta.location.clone()).with_file_size(meta.size);
                let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| {
                    LakeError::IncompatibleFile { file: name.clone(), column: "-".into(), reason: format!("not a readable Parquet file: {e}") }
                })?;
                let found = builder.schema().clone();
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
