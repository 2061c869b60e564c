//! `logistic_regression(label, features)`: an aggregate that fits an
//! L2-regularised logistic regression (linfa's) of a boolean label on a list
//! of numeric features, standardised first, and returns the model as a
//! struct. The churn reports fit it in SQL; scoring is SQL over the struct.
//! The rows are put in one canonical order before fitting, so the same rows
//! give the same model whatever order the partitions deliver them in.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, Signature, Volatility};
use datafusion::prelude::SessionContext;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use super::FunctionDoc;

const SIGNATURE: &str = "logistic_regression(label BOOLEAN, features DOUBLE[])";
const DESCRIPTION: &str = "Fits P(label) = 1 / (1 + exp(-(intercept + sum(coefficients[i] * (features[i] - means[i]) / stds[i])))) by L2-regularised \
    logistic regression (linfa, alpha 1) over the rows whose label and features are all set and finite; every row needs the same number of features. \
    Returns {intercept, coefficients, means, stds, rows, positives}: a coefficient is the change in log-odds per standard deviation of its feature. \
    Fails when the rows hold only one label.";
/// The most features one call takes, and the most rows it holds.
const MAX_FEATURES: usize = 256;
const MAX_ROWS: usize = 5_000_000;

/// The UDAF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LogisticRegressionUdaf {
    signature: Signature,
    doc: Documentation,
}

impl LogisticRegressionUdaf {
    pub fn new() -> Self {
        let section = DocSection { include: true, label: "vitals models", description: None };
        LogisticRegressionUdaf {
            signature: Signature::any(2, Volatility::Immutable),
            doc: Documentation::builder(section, DESCRIPTION, SIGNATURE).build(),
        }
    }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// The fields of the result.
fn model_fields() -> Fields {
    Fields::from(vec![
        Field::new("intercept", DataType::Float64, true),
        Field::new("coefficients", list_of(DataType::Float64), true),
        Field::new("means", list_of(DataType::Float64), true),
        Field::new("stds", list_of(DataType::Float64), true),
        Field::new("rows", DataType::Int64, true),
        Field::new("positives", DataType::Int64, true),
    ])
}

impl AggregateUDFImpl for LogisticRegressionUdaf {
    fn name(&self) -> &str {
        "logistic_regression"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Boolean | DataType::Null, t] if matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)) => {
                Ok(vec![DataType::Boolean, list_of(DataType::Float64)])
            }
            _ => plan_err!("logistic_regression takes (BOOLEAN, a list of numbers such as make_array(x1, x2)), got {arg_types:?}"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(model_fields()))
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Rows>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[labels]", args.name), list_of(DataType::Boolean), true)),
            Arc::new(Field::new(format!("{}[values]", args.name), list_of(DataType::Float64), true)),
            Arc::new(Field::new(format!("{}[width]", args.name), DataType::Int64, true)),
        ])
    }
}

/// The rows seen so far: labels, and the features row after row.
#[derive(Debug, Default)]
struct Rows {
    labels: Vec<bool>,
    values: Vec<f64>,
    width: Option<usize>,
}

impl Rows {
    fn push(&mut self, label: bool, features: &[f64]) -> Result<()> {
        match self.width {
            None if features.len() > MAX_FEATURES => return exec_err!("logistic_regression takes at most {MAX_FEATURES} features, got {}", features.len()),
            None => self.width = Some(features.len()),
            Some(w) if w != features.len() => {
                return exec_err!("logistic_regression: every row needs the same number of features, got {w} and {}", features.len())
            }
            Some(_) => {}
        }
        if self.labels.len() >= MAX_ROWS {
            return exec_err!("logistic_regression takes at most {MAX_ROWS} rows");
        }
        self.labels.push(label);
        self.values.extend_from_slice(features);
        Ok(())
    }

    fn fit(&self) -> Result<ScalarValue> {
        let fields = model_fields();
        let n = self.labels.len();
        let width = self.width.unwrap_or(0);
        if n == 0 {
            return ScalarValue::try_from(DataType::Struct(fields));
        }
        let positives = self.labels.iter().filter(|l| **l).count();
        if positives == 0 || positives == n {
            let which = if positives == 0 { "false" } else { "true" };
            return exec_err!("logistic_regression: all {n} rows have the label {which}; a model needs rows of both labels");
        }
        if width == 0 {
            return exec_err!("logistic_regression needs at least one feature");
        }
        // One canonical order: by label, then the features in turn.
        let mut order: Vec<usize> = (0..n).collect();
        let row = |i: usize| &self.values[i * width..(i + 1) * width];
        order.sort_by(|&a, &b| {
            self.labels[a].cmp(&self.labels[b]).then_with(|| row(a).iter().zip(row(b)).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal))
        });
        // n is at most MAX_ROWS, well inside u32.
        let count = f64::from(u32::try_from(n).unwrap_or(u32::MAX));
        let mut means = vec![0.0; width];
        let mut stds = vec![0.0; width];
        for j in 0..width {
            let mean = order.iter().map(|&i| row(i)[j]).sum::<f64>() / count;
            let var = order.iter().map(|&i| (row(i)[j] - mean).powi(2)).sum::<f64>() / count;
            means[j] = mean;
            // A constant feature explains nothing; keep it from dividing by zero.
            stds[j] = if var > 0.0 { var.sqrt() } else { 1.0 };
        }
        let x = Array2::from_shape_fn((n, width), |(r, j)| (row(order[r])[j] - means[j]) / stds[j]);
        let y: Array1<bool> = order.iter().map(|&i| self.labels[i]).collect();
        let model = LogisticRegression::default()
            .alpha(1.0)
            .max_iterations(500)
            .gradient_tolerance(1e-8)
            .fit(&Dataset::new(x, y))
            .map_err(|e| datafusion::common::DataFusionError::Execution(format!("logistic_regression: {e}")))?;
        // linfa models the more frequent label: turn it round where that is false.
        let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
        let coefficients: Vec<f64> = model.params().iter().map(|c| sign * c).collect();
        let intercept = sign * model.intercept();
        let list = |v: &[f64]| -> ArrayRef {
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", DataType::Float64, true)),
                OffsetBuffer::from_lengths([v.len()]),
                Arc::new(Float64Array::from(v.to_vec())),
                None,
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![intercept])),
            list(&coefficients),
            list(&means),
            list(&stds),
            Arc::new(Int64Array::from(vec![i64::try_from(n).unwrap_or(i64::MAX)])),
            Arc::new(Int64Array::from(vec![i64::try_from(positives).unwrap_or(i64::MAX)])),
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(fields, columns, None)?)))
    }
}

/// Each row of a list column as its values (None for a NULL row or one with a NULL or non-finite value).
fn each_row(features: &ListArray, row: usize) -> Option<Vec<f64>> {
    if features.is_null(row) {
        return None;
    }
    let v = features.value(row);
    let v = v.as_primitive_opt::<Float64Type>()?;
    if v.null_count() > 0 || v.values().iter().any(|x| !x.is_finite()) {
        return None;
    }
    Some(v.values().to_vec())
}

impl Accumulator for Rows {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [labels, features] = values else { return exec_err!("logistic_regression takes two arguments") };
        let labels: &BooleanArray = labels.as_boolean();
        let features = features.as_list::<i32>();
        for r in 0..labels.len() {
            if labels.is_null(r) {
                continue;
            }
            if let Some(f) = each_row(features, r) {
                self.push(labels.value(r), &f)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [labels, values, widths] = states else { return exec_err!("logistic_regression: a state has three parts") };
        let (labels, values, widths) = (labels.as_list::<i32>(), values.as_list::<i32>(), widths.as_primitive::<Int64Type>());
        for s in 0..labels.len() {
            if labels.is_null(s) || widths.is_null(s) {
                continue;
            }
            let width = usize::try_from(widths.value(s)).unwrap_or(0);
            let l = labels.value(s);
            let l = l.as_boolean();
            let v = values.value(s);
            let v = v.as_primitive::<Float64Type>().values();
            if width == 0 || v.len() != l.len() * width {
                continue;
            }
            for (i, chunk) in v.chunks(width).enumerate() {
                self.push(l.value(i), chunk)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let labels = ScalarValue::List(Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Boolean, true)),
            OffsetBuffer::from_lengths([self.labels.len()]),
            Arc::new(BooleanArray::from(std::mem::take(&mut self.labels))),
            None,
        )));
        let values = ScalarValue::List(Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Float64, true)),
            OffsetBuffer::from_lengths([self.values.len()]),
            Arc::new(Float64Array::from(std::mem::take(&mut self.values))),
            None,
        )));
        let width = ScalarValue::Int64(self.width.and_then(|w| i64::try_from(w).ok()));
        Ok(vec![labels, values, width])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.fit()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.labels.capacity() + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

pub fn register(ctx: &SessionContext) -> Vec<FunctionDoc> {
    ctx.register_udaf(AggregateUDF::from(LogisticRegressionUdaf::new()));
    vec![FunctionDoc { kind: "aggregate", signature: SIGNATURE.into(), description: DESCRIPTION.into(), order: None }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows where the label is true exactly when x > 0, with noise in y: the
    /// coefficient of x is positive, that of the noise near 0, and scoring the
    /// rows by the model ranks every positive above every negative.
    #[test]
    fn a_separating_feature_gets_the_weight() {
        let mut rows = Rows::default();
        for i in 0..200 {
            let x = f64::from(i - 100) / 10.0;
            let noise = f64::from((i * 37) % 11) - 5.0;
            rows.push(x > 0.0, &[x, noise]).unwrap();
        }
        let ScalarValue::Struct(model) = rows.fit().unwrap() else { panic!("a struct") };
        let coef = model.column(1).as_list::<i32>().value(0);
        let coef = coef.as_primitive::<Float64Type>().values().to_vec();
        assert!(coef[0] > 2.0, "{coef:?}");
        assert!(coef[1].abs() < coef[0] / 10.0, "{coef:?}");
        assert_eq!(model.column(4).as_primitive::<Int64Type>().value(0), 200);
        assert_eq!(model.column(5).as_primitive::<Int64Type>().value(0), 99);
    }

    /// The label of the minority true: the coefficients still give P(true).
    #[test]
    fn a_rare_true_label_is_modelled_as_true() {
        let mut rows = Rows::default();
        for i in 0..100 {
            let x = f64::from(i);
            rows.push(i >= 90, &[x]).unwrap();
        }
        let ScalarValue::Struct(model) = rows.fit().unwrap() else { panic!("a struct") };
        let coef = model.column(1).as_list::<i32>().value(0);
        assert!(coef.as_primitive::<Float64Type>().value(0) > 0.0);
        assert!(model.column(0).as_primitive::<Float64Type>().value(0) < 0.0, "most rows are false: a negative intercept");
    }

    #[test]
    fn the_same_rows_in_another_order_give_the_same_model() {
        let data: Vec<(bool, [f64; 2])> = (0..120).map(|i| (i % 3 == 0, [f64::from(i % 7), f64::from((i * 13) % 17)])).collect();
        let fit = |rows: &[(bool, [f64; 2])]| {
            let mut acc = Rows::default();
            for (l, f) in rows {
                acc.push(*l, f).unwrap();
            }
            acc.fit().unwrap()
        };
        let mut reversed = data.clone();
        reversed.reverse();
        assert_eq!(fit(&data), fit(&reversed));
    }

    #[test]
    fn one_label_only_or_ragged_rows_are_errors() {
        let mut rows = Rows::default();
        rows.push(false, &[1.0]).unwrap();
        rows.push(false, &[2.0]).unwrap();
        let e = rows.fit().unwrap_err().to_string();
        assert!(e.contains("all 2 rows have the label false"), "{e}");
        let e = rows.push(true, &[1.0, 2.0]).unwrap_err().to_string();
        assert!(e.contains("same number of features, got 1 and 2"), "{e}");
    }
}
