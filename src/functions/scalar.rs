//! Scalar helpers the reports use and analysts may too: `change_pct(cur, prev)`
//! and `ratio(num, den)`, both NULL where the division is undefined.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;

use super::FunctionDoc;

/// Applies `f` to two Float64 columns; a None result is NULL.
fn binary(args: &[ColumnarValue], f: impl Fn(f64, f64) -> Option<f64>) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let a = cast(&arrays[0], &DataType::Float64)?;
    let b = cast(&arrays[1], &DataType::Float64)?;
    let (a, b) = (a.as_any().downcast_ref::<Float64Array>(), b.as_any().downcast_ref::<Float64Array>());
    let (Some(a), Some(b)) = (a, b) else {
        return datafusion::common::internal_err!("cast to Float64 did not give Float64");
    };
    let out: Float64Array = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => f(x, y),
            _ => None,
        })
        .collect();
    let scalar_in = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let out: ArrayRef = Arc::new(out);
    Ok(if scalar_in {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// The change from `prev` to `cur` in percent; NULL when `prev` is 0 or NULL.
pub fn change_pct(cur: f64, prev: f64) -> Option<f64> {
    (prev != 0.0).then(|| 100.0 * (cur - prev) / prev)
}

pub fn register(ctx: &SessionContext) -> Vec<FunctionDoc> {
    let f64s = vec![DataType::Float64, DataType::Float64];
    ctx.register_udf(create_udf(
        "change_pct",
        f64s.clone(),
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| binary(args, change_pct)),
    ));
    ctx.register_udf(create_udf(
        "ratio",
        f64s,
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| binary(args, |n, d| (d != 0.0).then(|| n / d))),
    ));
    // Fault injection for the server's tests: a function that panics while a
    // query runs, to show that a panic fails one query and nothing else.
    if std::env::var("VITALS_FAILPOINT").is_ok_and(|v| v == "panic-function") {
        ctx.register_udf(create_udf(
            "vitals_panic",
            vec![DataType::Int64],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(|_: &[ColumnarValue]| -> Result<ColumnarValue> { panic!("vitals_panic() was called (VITALS_FAILPOINT=panic-function)") }),
        ));
    }
    vec![
        FunctionDoc {
            kind: "scalar",
            signature: "change_pct(cur, prev)".into(),
            description: "change from prev to cur in percent; NULL when prev is 0".into(),
            order: None,
        },
        FunctionDoc { kind: "scalar", signature: "ratio(num, den)".into(), description: "num / den; NULL when den is 0".into(), order: None },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_relative_to_the_previous_value() {
        assert_eq!(change_pct(150.0, 100.0), Some(50.0));
        assert_eq!(change_pct(0.0, 4.0), Some(-100.0));
        assert_eq!(change_pct(3.0, 0.0), None);
    }
}
