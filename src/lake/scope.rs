//! A token's boundary inside a plan: [`ScopeExec`] passes on only the rows of
//! the scope's accounts, and nothing a query's author wrote (a filter, a
//! projection, a join's dynamic filter) is evaluated below it, so an
//! expression can never run, fail or log on another account's values. It
//! lets no filter, projection or limit through, and tells nothing of the
//! files under it.

use std::fmt;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{apply_expression_roots, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::StreamExt;

/// The rows of one scope's accounts, out of the columns `keep` of its input.
#[derive(Debug)]
pub struct ScopeExec {
    input: Arc<dyn ExecutionPlan>,
    /// `org_id IN (the scope's accounts)`, over the input's schema.
    predicate: Arc<dyn PhysicalExpr>,
    keep: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ScopeExec {
    pub fn try_new(input: Arc<dyn ExecutionPlan>, predicate: Arc<dyn PhysicalExpr>, keep: Vec<usize>) -> Result<Self> {
        let schema = Arc::new(input.schema().project(&keep)?);
        let partitions = input.output_partitioning().partition_count();
        // No orderings or statistics are claimed: the boundary says nothing of what is under it.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(ScopeExec { input, predicate, keep, schema, properties: Arc::new(properties) })
    }

    /// `org_id IN (the scope's accounts)`, over the input's schema.
    pub fn predicate(&self) -> &Arc<dyn PhysicalExpr> {
        &self.predicate
    }

    /// The input's columns it passes on.
    pub fn keep(&self) -> &[usize] {
        &self.keep
    }
}

impl DisplayAs for ScopeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeExec: the accounts of this session")
    }
}

impl ExecutionPlan for ScopeExec {
    fn name(&self) -> &'static str {
        "ScopeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        apply_expression_roots([&self.predicate], f)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.into_iter().next().ok_or_else(|| DataFusionError::Internal("ScopeExec takes one input".into()))?;
        Ok(Arc::new(ScopeExec::try_new(input, Arc::clone(&self.predicate), self.keep.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let predicate = Arc::clone(&self.predicate);
        let keep = self.keep.clone();
        let rows = input
            .map(move |batch| {
                let batch = batch?;
                let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask.as_boolean_opt().ok_or_else(|| DataFusionError::Internal("the scope predicate is not boolean".into()))?;
                Ok(filter_record_batch(&batch, mask)?.project(&keep)?)
            })
            // No empty batches: where they fall would tell how other accounts'
            // rows lie, and an expression above may behave differently on one.
            .filter(|b: &Result<arrow::array::RecordBatch>| std::future::ready(b.as_ref().map_or(true, |b| b.num_rows() > 0)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), rows)))
    }
}
