//! Integer arithmetic that fails on overflow. DataFusion's `+`, `-` and `*`
//! wrap around (`9223372036854775807 + 1` is `-9223372036854775808`); SQL
//! says an overflow is an error. An analyzer rule, run after type coercion,
//! puts `checked_add`, `checked_sub` and `checked_mul` in place of those
//! operators wherever both sides are integers of one type, keeping each
//! output column's name. Other types (floats, dates, intervals) are left alone.

use std::sync::Arc;

use arrow::array::Datum;
use arrow::compute::kernels::numeric;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::BinaryExpr;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

/// One checked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Op,
    signature: Signature,
}

impl Checked {
    fn udf(op: Op) -> ScalarUDF {
        ScalarUDF::new_from_impl(Checked { op, signature: Signature::any(2, Volatility::Immutable) })
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "checked_add",
            Op::Sub => "checked_sub",
            Op::Mul => "checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return datafusion::common::internal_err!("{} takes two arguments", self.name());
        };
        let side = |v: &ColumnarValue| -> Result<Box<dyn Datum>> {
            Ok(match v {
                ColumnarValue::Array(a) => Box::new(Arc::clone(a)),
                ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
            })
        };
        let (l, r) = (side(a)?, side(b)?);
        let out = match self.op {
            Op::Add => numeric::add(l.as_ref(), r.as_ref())?,
            Op::Sub => numeric::sub(l.as_ref(), r.as_ref())?,
            Op::Mul => numeric::mul(l.as_ref(), r.as_ref())?,
        };
        Ok(match (a, b) {
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
            _ => ColumnarValue::Array(out),
        })
    }
}

/// The analyzer rule that puts the checked functions in place of the operators.
#[derive(Debug)]
pub struct CheckedArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
}

impl Default for CheckedArithmetic {
    fn default() -> Self {
        CheckedArithmetic { add: Arc::new(Checked::udf(Op::Add)), sub: Arc::new(Checked::udf(Op::Sub)), mul: Arc::new(Checked::udf(Op::Mul)) }
    }
}

impl CheckedArithmetic {
    fn expr(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
        let udf = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.sub,
            Operator::Multiply => &self.mul,
            _ => return Ok(Transformed::no(e)),
        };
        // An expression whose type is unknown here (an outer column of a subquery) is left as it is.
        let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else { return Ok(Transformed::no(e)) };
        if !(lt.is_integer() && lt == rt) {
            return Ok(Transformed::no(e));
        }
        Ok(Transformed::yes(udf.call(vec![left.as_ref().clone(), right.as_ref().clone()])))
    }

    fn node(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        let mut schema = merge_schema(&plan.inputs());
        if let LogicalPlan::TableScan(ts) = &plan {
            schema.merge(&DFSchema::try_from_qualified_schema(ts.table_name.clone(), &ts.source.schema())?);
        }
        let names = NamePreserver::new(&plan);
        let rewritten = plan.map_expressions(|e| {
            let name = names.save(&e);
            e.transform_up(|x| self.expr(x, &schema)).map(|t| t.update_data(|e| name.restore(e)))
        })?;
        if rewritten.transformed {
            rewritten.map_data(|p| p.recompute_schema())
        } else {
            Ok(rewritten)
        }
    }
}

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| self.node(node)).data()
    }

    fn name(&self) -> &str {
        "checked_arithmetic"
    }
}

/// Adds the rule to a session (and the functions, so plans that name them resolve).
pub fn register(ctx: &SessionContext) {
    let rule = CheckedArithmetic::default();
    for f in [&rule.add, &rule.sub, &rule.mul] {
        ctx.register_udf(f.as_ref().clone());
    }
    ctx.add_analyzer_rule(Arc::new(rule));
}
