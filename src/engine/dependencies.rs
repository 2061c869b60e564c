//! Keeps DataFusion's functional dependencies sound. DataFusion 55 gives an
//! aggregate every input dependency whose key columns are grouped by as if the
//! key determined *all* the output, so over a join of two grouped tables
//! `GROUP BY a.k, b.k` comes out keyed by `a.k` alone: optimize_projections
//! then drops `b.k` from a GROUP BY above it (groups merge) and
//! eliminate_duplicated_expr drops it from an ORDER BY (ties fall in any
//! order, so `ORDER BY ... LIMIT` picks different rows from run to run). This
//! optimizer rule runs before each rule that reads the dependencies and
//! leaves every aggregate only the one it is sure of, its own GROUP BY key.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{aggregate_functional_dependencies, FunctionalDependencies, Result};
use datafusion::logical_expr::{Aggregate, LogicalPlan};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The rules that decide by functional dependencies what may be left out.
const READERS: [&str; 4] = ["replace_distinct_aggregate", "eliminate_join", "eliminate_duplicated_expr", "optimize_projections"];

/// DataFusion's default optimizer rules, with [`GroupKeysOnly`] before each
/// rule that reads functional dependencies.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let rule: Arc<dyn OptimizerRule + Send + Sync> = Arc::new(GroupKeysOnly);
    let mut rules = Vec::new();
    for r in Optimizer::new().rules {
        if READERS.contains(&r.name()) {
            rules.push(Arc::clone(&rule));
        }
        rules.push(r);
    }
    rules
}

/// Gives each aggregate the functional dependencies of its GROUP BY key alone
/// (those of its input dropped), then recomputes the schemas above it.
#[derive(Debug, Default)]
pub struct GroupKeysOnly;

/// An aggregate's dependencies as they should be, or None when they already are.
fn sound(a: &Aggregate) -> Result<Option<FunctionalDependencies>> {
    if a.schema.functional_dependencies().is_empty() {
        return Ok(None);
    }
    let input = a.input.schema().as_ref().clone().with_functional_dependencies(FunctionalDependencies::empty())?;
    let names: Vec<String> = a.group_expr.iter().map(|e| e.schema_name().to_string()).collect();
    let own = aggregate_functional_dependencies(&input, &names, &a.schema);
    Ok((own != *a.schema.functional_dependencies()).then_some(own))
}

impl OptimizerRule for GroupKeysOnly {
    fn name(&self) -> &str {
        "vitals_group_keys_only"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let mut unsound = false;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(a) = node {
                unsound = sound(a)?.is_some();
            }
            Ok(if unsound { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if !unsound {
            return Ok(Transformed::no(plan));
        }
        // Bottom up, so that every schema above a corrected aggregate is
        // recomputed from its corrected input.
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Aggregate(a) => {
                let mut a = Aggregate::try_new(a.input, a.group_expr, a.aggr_expr)?;
                if let Some(deps) = sound(&a)? {
                    // (Every constructor derives the dependencies again: set the field.)
                    a.schema = Arc::new(a.schema.as_ref().clone().with_functional_dependencies(deps)?);
                }
                Ok(Transformed::yes(LogicalPlan::Aggregate(a)))
            }
            other => other.recompute_schema().map(Transformed::yes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// Four keys; `pairs` holds every (e, e2) with e < e2, grouped by both sides' keys.
    const PAIRS: &str = "WITH t AS (SELECT * FROM (VALUES ('c', 1), ('b', 1), ('a', 1), ('d', 1)) v(e, n)), \
        k AS (SELECT e, n, count(*) AS c FROM t GROUP BY e, n), \
        pairs AS (SELECT k1.e, k1.n, k2.e AS e2, k2.n AS n2, count(*) AS x FROM k k1 JOIN k k2 ON k1.e < k2.e GROUP BY k1.e, k1.n, k2.e, k2.n) ";

    async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(&format!("{PAIRS}{sql}")).await.unwrap().collect().await.unwrap()
    }

    fn texts(batches: &[RecordBatch], col: usize) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let c = datafusion::arrow::compute::cast(b.column(col), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
                c.as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn ctx() -> SessionContext {
        SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_optimizer_rules(optimizer_rules()).build())
    }

    #[tokio::test]
    async fn an_order_by_keeps_the_keys_of_both_sides_of_a_grouped_join() {
        let got = run(&ctx(), "SELECT e, e2 FROM pairs ORDER BY e, n, e2, n2").await;
        let pairs: Vec<String> = texts(&got, 0).into_iter().zip(texts(&got, 1)).map(|(a, b)| format!("{a}{b}")).collect();
        assert_eq!(pairs, ["ab", "ac", "ad", "bc", "bd", "cd"]);
    }

    #[tokio::test]
    async fn a_group_by_keeps_the_keys_of_both_sides_of_a_grouped_join() {
        let got = run(&ctx(), "SELECT e, count(*) AS groups FROM (SELECT e, n, e2 FROM pairs GROUP BY e, n, e2) GROUP BY e ORDER BY e").await;
        assert_eq!(texts(&got, 0), ["a", "b", "c"]);
        let counts: Vec<i64> = got.iter().flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(counts, [3, 2, 1]);
    }

    #[tokio::test]
    async fn a_real_key_still_serves() {
        // (e, n) is k's key: ORDER BY e, n, c needs no sort on c, and the answer is the same.
        let got = run(&ctx(), "SELECT e FROM k ORDER BY e, n, c").await;
        assert_eq!(texts(&got, 0), ["a", "b", "c", "d"]);
    }
}
