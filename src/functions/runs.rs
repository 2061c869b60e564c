//! `first_of_run(cond, key, ...)`: true for a row where `cond` holds unless
//! the row just before it in the same batch also met `cond` and has the same
//! keys (NULLs equal). Files sorted by account, user and time hand a reader
//! long runs of rows with the same account, visit and day; a filter with it
//! in front of an aggregation that ignores repeats (a set of days, DISTINCT,
//! min, max) lets that aggregation hash one row per run instead of every row.
//!
//! It never drops the first row of a run, wherever a batch starts or which
//! rows other filters removed before it, so every distinct key tuple among
//! the rows meeting `cond` keeps at least one row: the aggregation's answer
//! is the same, however the rows are split into batches. It may keep more
//! than one row of a tuple (it looks at one neighbour only); an aggregation
//! that counts rows (count(*), sum) gets a different answer and must not be
//! fed by it. Put the whole filter of the rows in `cond`: a condition outside
//! it that is not implied by `cond` could drop a run's first row and keep the
//! repeats that it dropped.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::prep_null_mask_filter;
use arrow::datatypes::DataType;
use arrow::compute::kernels::cmp::not_distinct;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

use super::FunctionDoc;

const NAME: &str = "first_of_run";
const DOC: (&str, &str) = (
    "first_of_run(cond BOOLEAN, key, ...)",
    "True where cond is true and the row before it (in the order the rows are read) did not also meet cond with the same keys; \
     a filter that drops repeated rows before an aggregation that ignores repeats (GROUP BY keys, DISTINCT, min, max). \
     Keeps at least one row of every key tuple meeting cond; not for counts or sums.",
);

#[derive(Debug, PartialEq, Eq, Hash)]
struct FirstOfRun {
    signature: Signature,
}

impl FirstOfRun {
    fn new() -> Self {
        // Volatile: the answer for a row depends on the row before it, so the
        // optimiser must neither fold it nor move it below other filters.
        Self { signature: Signature::variadic_any(Volatility::Volatile) }
    }
}

/// The rows of `cond` that are true (NULL counts as false).
fn truths(cond: &BooleanArray) -> BooleanBuffer {
    if cond.null_count() > 0 {
        prep_null_mask_filter(cond).values().clone()
    } else {
        cond.values().clone()
    }
}

/// `first_of_run` over one batch: `cond` and the key columns, all of `rows` rows.
pub fn first_of_run(cond: &BooleanArray, keys: &[ArrayRef]) -> Result<BooleanArray> {
    let rows = cond.len();
    let meets = truths(cond);
    if rows < 2 {
        return Ok(BooleanArray::new(meets, None));
    }
    // repeat[i] (for row i + 1): row i met cond and rows i and i + 1 have the same keys.
    let mut repeat = meets.slice(0, rows - 1);
    for key in keys {
        if key.len() != rows {
            return exec_err!("{NAME}: a key has {} rows, the condition {rows}", key.len());
        }
        let same = not_distinct(&key.slice(1, rows - 1), &key.slice(0, rows - 1))
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("{NAME}: keys of type {} cannot be compared: {e}", key.data_type())))?;
        repeat = &repeat & same.values();
    }
    // Row 0 is never a repeat within this batch.
    let mut shifted = arrow::array::BooleanBufferBuilder::new(rows);
    shifted.append(false);
    shifted.append_buffer(&repeat);
    let keep = &meets & &!&shifted.finish();
    Ok(BooleanArray::new(keep, None))
}

impl ScalarUDFImpl for FirstOfRun {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            None => plan_err!("{NAME} takes a condition and at least one key, got no arguments"),
            Some(DataType::Boolean | DataType::Null) if args.len() >= 2 => Ok(DataType::Boolean),
            Some(DataType::Boolean | DataType::Null) => plan_err!("{NAME} takes a condition and at least one key, got only the condition"),
            Some(other) => plan_err!("{NAME}: the first argument is the condition and must be BOOLEAN, got {other}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut arrays = Vec::with_capacity(args.args.len());
        for a in &args.args {
            // A constant key is the same on every row: it never splits a run.
            if let ColumnarValue::Array(array) = a {
                arrays.push(Arc::clone(array));
            } else if arrays.is_empty() {
                arrays.push(a.to_array(rows)?);
            }
        }
        let Some((cond, keys)) = arrays.split_first() else {
            return exec_err!("{NAME}: no condition");
        };
        let cond = match cond.as_boolean_opt() {
            Some(c) => c.clone(),
            None if cond.data_type() == &DataType::Null => BooleanArray::new_null(rows),
            None => return exec_err!("{NAME}: the condition must be BOOLEAN, got {}", cond.data_type()),
        };
        let out: ArrayRef = Arc::new(first_of_run(&cond, keys)?);
        Ok(ColumnarValue::Array(out))
    }
}

pub fn register(ctx: &SessionContext) -> Vec<FunctionDoc> {
    ctx.register_udf(ScalarUDF::from(FirstOfRun::new()));
    vec![FunctionDoc { kind: "scalar", signature: DOC.0.into(), description: DOC.1.into(), order: None }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int32Array, StringArray, StringViewArray};
    use arrow::datatypes::Int32Type;

    fn keep(cond: &[Option<bool>], keys: Vec<ArrayRef>) -> Vec<bool> {
        let cond = BooleanArray::from(cond.to_vec());
        first_of_run(&cond, &keys).unwrap().iter().map(|v| v.unwrap()).collect()
    }

    #[test]
    fn a_row_like_the_one_before_is_dropped_only_when_that_one_met_the_condition() {
        let user: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a"), Some("a"), Some("a"), Some("b"), None, None, Some("b")]));
        let day: ArrayRef = Arc::new(Int32Array::from(vec![1, 1, 2, 2, 2, 2, 2]));
        let all = [Some(true); 7];
        assert_eq!(keep(&all, vec![Arc::clone(&user), Arc::clone(&day)]), [true, false, true, true, true, false, true]);
        // Row 1 fails cond; row 2 (a, 1 -> a, 2 differs anyway); row 5 follows a NULL cond: kept.
        let cond = [Some(true), Some(false), Some(true), Some(true), None, Some(true), Some(true)];
        assert_eq!(keep(&cond, vec![user, day]), [true, false, true, true, false, true, true]);
    }

    #[test]
    fn dictionary_keys_compare_by_value_and_short_batches_work() {
        let d: DictionaryArray<Int32Type> = vec!["x", "x", "y"].into_iter().collect();
        // Rows 0 and 1 have different dictionary keys for the same value.
        let other = DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![0, 1, 2]), Arc::new(StringArray::from(vec!["x", "x", "y"]))).unwrap();
        assert_eq!(keep(&[Some(true); 3], vec![Arc::new(d), Arc::new(other)]), [true, false, true]);
        assert_eq!(keep(&[Some(true)], vec![Arc::new(Int32Array::from(vec![1]))]), [true]);
        assert_eq!(keep(&[None], vec![Arc::new(Int32Array::from(vec![1]))]), [false]);
        assert!(keep(&[], vec![Arc::new(Int32Array::from(Vec::<i32>::new()))]).is_empty());
    }

    /// Every distinct tuple meeting the condition keeps a row, however the
    /// rows are cut into batches; and only such rows are kept.
    #[test]
    fn every_distinct_tuple_keeps_a_row_in_any_batching() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..200 {
            let rows = usize::try_from(next(60)).unwrap_or(0) + 1;
            let a: Vec<i32> = (0..rows).map(|_| i32::try_from(next(3)).unwrap_or(0)).collect();
            let b: Vec<Option<i32>> = (0..rows).map(|_| (next(4) > 0).then(|| i32::try_from(next(2)).unwrap_or(0))).collect();
            let c: Vec<Option<bool>> = (0..rows).map(|_| (next(5) > 0).then(|| next(3) > 0)).collect();
            let cut = usize::try_from(next(u64::try_from(rows).unwrap_or(1))).unwrap_or(0);
            let mut kept = Vec::new();
            for (lo, hi) in [(0, cut), (cut, rows)] {
                let keys: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(a[lo..hi].to_vec())), Arc::new(Int32Array::from(b[lo..hi].to_vec()))];
                let k = keep(&c[lo..hi], keys);
                kept.extend((lo..hi).filter(|&i| k[i - lo]));
            }
            let wanted: std::collections::BTreeSet<(i32, Option<i32>)> = (0..rows).filter(|&i| c[i] == Some(true)).map(|i| (a[i], b[i])).collect();
            let got: std::collections::BTreeSet<(i32, Option<i32>)> = kept.iter().map(|&i| (a[i], b[i])).collect();
            assert_eq!(got, wanted);
            assert!(kept.iter().all(|&i| c[i] == Some(true)));
            // Within one batch, no kept row repeats the kept row just before it in the input.
            for w in kept.windows(2) {
                if w[1] == w[0] + 1 && w[0] + 1 != cut {
                    assert_ne!((a[w[0]], b[w[0]]), (a[w[1]], b[w[1]]));
                }
            }
        }
    }
}
