//! `information_schema.routines` with vitals' descriptions. DataFusion fills
//! the column from each function's `documentation()` (vitals' aggregates carry
//! theirs), but never for table functions: BI tools that browse routines would
//! see the reports without a word. A plan that reads the table gets it through
//! a provider that fills each missing description from the engine's catalog
//! (the reports, and the helpers made with `create_udf`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::{provider_as_source, source_as_provider, MemTable, TableType};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::CatalogEntry;

/// Descriptions by function name, kept in the session's config.
#[derive(Debug, Default)]
pub struct RoutineDocs(HashMap<String, String>);

/// Keeps the descriptions of the catalog's functions (entries named `name(...)`) in the session.
pub fn attach(ctx: &SessionContext, catalog: &[CatalogEntry]) {
    let docs: HashMap<String, String> = catalog
        .iter()
        .filter_map(|e| e.name.split_once('(').map(|(name, _)| (name.trim().to_string(), e.description.clone())))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    let state = ctx.state_ref();
    let mut state = state.write();
    state.config_mut().set_extension(Arc::new(RoutineDocs(docs)));
}

/// The plan with each scan of `information_schema.routines` describing vitals' functions.
pub fn describe(state: &SessionState, plan: LogicalPlan) -> Result<LogicalPlan> {
    let Some(docs) = state.config().get_extension::<RoutineDocs>() else { return Ok(plan) };
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
        let is_routines = scan.table_name.table().eq_ignore_ascii_case("routines")
            && scan.table_name.schema().is_some_and(|s| s.eq_ignore_ascii_case("information_schema"));
        if !is_routines {
            return Ok(Transformed::no(node));
        }
        let mut scan = scan.clone();
        let inner = source_as_provider(&scan.source)?;
        scan.source = provider_as_source(Arc::new(DescribedRoutines { inner, docs: Arc::clone(&docs) }));
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })
    .map(|t| t.data)
}

#[derive(Debug)]
struct DescribedRoutines {
    inner: Arc<dyn TableProvider>,
    docs: Arc<RoutineDocs>,
}

#[async_trait]
impl TableProvider for DescribedRoutines {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        // A few hundred rows: read whole, described, then scanned as asked.
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let schema = self.inner.schema();
        let (name, description) = (schema.index_of("routine_name")?, schema.index_of("description")?);
        let mut described = Vec::with_capacity(batches.len());
        for batch in batches {
            let names = batch.column(name).as_string::<i32>();
            let given = batch.column(description).as_string::<i32>();
            let filled: StringArray = names
                .iter()
                .zip(given.iter())
                .map(|(n, d)| d.map(str::to_string).or_else(|| n.and_then(|n| self.docs.0.get(n).cloned())))
                .collect();
            let mut columns = batch.columns().to_vec();
            columns[description] = Arc::new(filled);
            described.push(RecordBatch::try_new(batch.schema(), columns)?);
        }
        MemTable::try_new(schema, vec![described])?.scan(state, projection, filters, limit).await
    }
}
