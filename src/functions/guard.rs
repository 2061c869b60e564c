//! Size guards on the built-in functions whose result a few bytes of SQL can
//! make enormous (`lpad('x', 2147483647)`, `array_repeat(1, 1e9)`,
//! `range(1, 3e8)`): each is replaced by the same function that first works
//! out how large its result would be from its arguments and refuses a call
//! past [`MAX_RESULT_BYTES`] before allocating anything. Such results are made
//! outside the query's memory pool, so a pool limit alone cannot stop them.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The most one call of a guarded function may produce for one batch of rows.
pub const MAX_RESULT_BYTES: u64 = 256 << 20;

/// A function call refused for the size of its result: a limit, not a mistake in the SQL.
#[derive(Debug)]
pub struct ResultTooLarge(pub String);

impl std::fmt::Display for ResultTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResultTooLarge {}

/// Works out a call's result size in bytes from its arguments.
type Estimate = fn(args: &[ColumnarValue], rows: usize) -> Result<u64>;

/// A built-in function behind a size check.
#[derive(Debug)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
}

// Two guards are the same when they guard the same function (each name has one estimate).
impl PartialEq for Guarded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Guarded {}

impl std::hash::Hash for Guarded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = (self.estimate)(&args.args, args.number_rows)?;
        if bytes > MAX_RESULT_BYTES {
            return Err(DataFusionError::External(Box::new(ResultTooLarge(format!(
                "{}: the result would take about {} MiB, past the limit of {} MiB for one call",
                self.inner.name(),
                bytes >> 20,
                MAX_RESULT_BYTES >> 20
            )))));
        }
        self.inner.invoke_with_args(args)
    }
}

/// An argument's values as Int64 for each row (NULL and uncastable as None).
fn ints(arg: Option<&ColumnarValue>, rows: usize) -> Result<Vec<Option<i64>>> {
    let Some(arg) = arg else { return Ok(vec![None; rows]) };
    let array: ArrayRef = match arg {
        ColumnarValue::Scalar(s) => {
            let v = s.cast_to(&DataType::Int64).ok().and_then(|v| if let ScalarValue::Int64(x) = v { x } else { None });
            return Ok(vec![v; rows.max(1)]);
        }
        ColumnarValue::Array(a) => Arc::clone(a),
    };
    let cast = arrow::compute::cast(&array, &DataType::Int64)?;
    Ok(cast.as_primitive::<Int64Type>().iter().collect())
}

/// The byte length of each row's string (scalars once per row).
fn text_lengths(arg: Option<&ColumnarValue>, rows: usize) -> Result<Vec<u64>> {
    let Some(arg) = arg else { return Ok(vec![1; rows]) };
    match arg {
        ColumnarValue::Scalar(s) => {
            let n = s.to_string().len();
            Ok(vec![u64::try_from(n).unwrap_or(u64::MAX); rows.max(1)])
        }
        ColumnarValue::Array(a) => {
            let len = |s: Option<&str>| s.map_or(0, |s| u64::try_from(s.len()).unwrap_or(u64::MAX));
            // Strings are measured where they are; other types as their text.
            Ok(match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().iter().map(len).collect(),
                DataType::LargeUtf8 => a.as_string::<i64>().iter().map(len).collect(),
                DataType::Utf8View => a.as_string_view().iter().map(len).collect(),
                _ => arrow::compute::cast(a, &DataType::Utf8)?.as_string::<i32>().iter().map(len).collect(),
            })
        }
    }
}

fn scalar_rows(args: &[ColumnarValue], rows: usize) -> usize {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) { 1 } else { rows.max(1) }
}

/// A count argument as a number of items: NULL and negative are none.
fn items(v: &Option<i64>) -> u64 {
    u64::try_from(v.unwrap_or(0)).unwrap_or(0)
}

/// lpad / rpad: `length` characters of up to 4 bytes each (1 for the default space).
fn pad(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let n = scalar_rows(args, rows);
    let per_char: u64 = if args.len() > 2 { 4 } else { 1 };
    let lengths = ints(args.get(1), n)?;
    Ok(lengths.iter().map(|l| items(l).saturating_mul(per_char)).fold(0, u64::saturating_add))
}

/// repeat(text, n): the text's bytes n times.
fn repeat(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let n = scalar_rows(args, rows);
    let texts = text_lengths(args.first(), n)?;
    let counts = ints(args.get(1), n)?;
    Ok(texts
        .iter()
        .zip(counts.iter().cycle())
        .map(|(t, c)| t.saturating_mul(items(c)))
        .fold(0, u64::saturating_add))
}

/// concat / concat_ws: the bytes of every argument (a repeated doubling grows past the limit here).
fn joined(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let n = scalar_rows(args, rows);
    let mut total = 0u64;
    for a in args {
        total = text_lengths(Some(a), n)?.iter().fold(total, |t, l| t.saturating_add(*l));
    }
    Ok(total)
}

/// array_repeat(element, count) and array_resize(array, size): count elements of at least 8 bytes.
fn counted(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let n = scalar_rows(args, rows);
    Ok(ints(args.get(1), n)?.iter().map(|c| items(c).saturating_mul(8)).fold(0, u64::saturating_add))
}

/// range / generate_series (the array functions): (stop - start) / step elements of 8 bytes.
/// Dates count in days and timestamps in their unit, stepped by their interval.
fn series(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let n = scalar_rows(args, rows);
    let ty = args.first().map(|a| a.data_type());
    let temporal = matches!(ty, Some(DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)));
    let (start, stop) = match args.len() {
        1 => (vec![Some(0); n], ints(args.first(), n)?),
        _ if temporal => (nanos(&args[0], n)?, nanos(&args[1], n)?),
        _ => (ints(args.first(), n)?, ints(args.get(1), n)?),
    };
    let steps: Vec<Option<i64>> = match args.get(2) {
        None => vec![Some(if temporal { 86_400_000_000_000 } else { 1 }); n],
        Some(ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(v)))) => {
            // A month counts as its shortest, 28 days: more elements, never fewer.
            let days = i64::from(v.months).saturating_mul(28).saturating_add(i64::from(v.days));
            vec![Some(days.saturating_mul(86_400_000_000_000).saturating_add(v.nanoseconds)); n]
        }
        Some(ColumnarValue::Scalar(ScalarValue::IntervalDayTime(Some(v)))) => {
            vec![Some(i64::from(v.days).saturating_mul(86_400_000_000_000).saturating_add(i64::from(v.milliseconds).saturating_mul(1_000_000))); n]
        }
        Some(ColumnarValue::Scalar(ScalarValue::IntervalYearMonth(Some(m)))) => vec![Some(i64::from(*m).saturating_mul(28 * 86_400_000_000_000)); n],
        Some(other) => ints(Some(other), n)?,
    };
    let mut total = 0u64;
    for i in 0..n {
        let (Some(a), Some(b)) = (start[i], stop[i]) else { continue };
        let step = steps.get(i).copied().flatten().unwrap_or(1);
        if step == 0 {
            continue;
        }
        let span = i128::from(b) - i128::from(a);
        let count = (span / i128::from(step)).max(0);
        total = total.saturating_add(u64::try_from(count).unwrap_or(u64::MAX).saturating_mul(8));
    }
    Ok(total)
}

/// A date or timestamp argument in nanoseconds since the epoch.
fn nanos(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let as_ns = DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None);
    let array = match arg {
        ColumnarValue::Scalar(s) => s.to_array_of_size(1)?,
        ColumnarValue::Array(a) => Arc::clone(a),
    };
    let ts = match array.data_type() {
        DataType::Timestamp(_, _) => arrow::compute::cast(&array, &as_ns)?,
        _ => arrow::compute::cast(&arrow::compute::cast(&array, &DataType::Date64)?, &as_ns)?,
    };
    let values: Vec<Option<i64>> = ts.as_primitive::<arrow::datatypes::TimestampNanosecondType>().iter().collect();
    Ok(if values.len() == 1 { vec![values[0]; rows.max(1)] } else { values })
}

/// Puts the guarded versions in place of the built-in functions.
pub fn register(ctx: &SessionContext) {
    let guards: [(&str, Estimate); 9] = [
        ("concat", joined),
        ("concat_ws", joined),
        ("lpad", pad),
        ("rpad", pad),
        ("repeat", repeat),
        ("array_repeat", counted),
        ("array_resize", counted),
        ("range", series),
        ("generate_series", series),
    ];
    for (name, estimate) in guards {
        let Some(inner) = ctx.state().scalar_functions().get(name).cloned() else { continue };
        ctx.register_udf(ScalarUDF::new_from_impl(Guarded { inner, estimate }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: ScalarValue) -> ColumnarValue {
        ColumnarValue::Scalar(v)
    }

    #[test]
    fn sizes_are_worked_out_from_the_arguments() {
        let s = |t: &str| lit(ScalarValue::Utf8(Some(t.into())));
        let i = |v: i64| lit(ScalarValue::Int64(Some(v)));
        assert_eq!(pad(&[s("x"), i(2_147_483_647), s("y")], 1).unwrap(), 4 * 2_147_483_647);
        assert_eq!(pad(&[s("x"), i(10)], 1).unwrap(), 10);
        assert_eq!(pad(&[s("x"), i(-5)], 1).unwrap(), 0);
        assert_eq!(repeat(&[s("abc"), i(1_000)], 1).unwrap(), 3_000);
        assert_eq!(joined(&[s("abc"), s("de"), i(7)], 1).unwrap(), 6);
        assert_eq!(counted(&[i(1), i(1_000_000_000)], 1).unwrap(), 8_000_000_000);
        assert_eq!(series(&[i(1), i(300_000_001)], 1).unwrap(), 8 * 300_000_000);
        assert_eq!(series(&[i(10)], 1).unwrap(), 80);
        assert_eq!(series(&[i(0), i(100), i(-1)], 1).unwrap(), 0);
        // A column of lengths: every row counts.
        let lengths = ColumnarValue::Array(Arc::new(arrow::array::Int64Array::from(vec![Some(100), None, Some(50)])));
        assert_eq!(pad(&[s("x"), lengths], 3).unwrap(), 150);
        // Dates by the day, unless a step says otherwise.
        let d = |v: i32| lit(ScalarValue::Date32(Some(v)));
        assert_eq!(series(&[d(0), d(10)], 1).unwrap(), 80);
        let second = lit(ScalarValue::IntervalMonthDayNano(Some(arrow::datatypes::IntervalMonthDayNano::new(0, 0, 1_000_000_000))));
        assert_eq!(series(&[d(0), d(1), second], 1).unwrap(), 8 * 86_400);
    }
}
