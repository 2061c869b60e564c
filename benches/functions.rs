//! Events per second through the behavioural aggregates' group accumulators,
//! with input already in time order and shuffled:
//!
//!     cargo bench --bench functions
//!
//! 1M events over 100k groups (users), 4 conditions, as a GROUP BY user_id sees them.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDFImpl, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::expressions::{col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::scalar::ScalarValue;
use vitals::functions::behaviour::retention::Retention;
use vitals::functions::behaviour::{EventAggregate, Kind};

const EVENTS: usize = 1_000_000;
const GROUPS: usize = 100_000;
const BATCH: usize = 8192;

struct Input {
    groups: Vec<usize>,
    ts: ArrayRef,
    conds: Vec<ArrayRef>,
}

/// Users in order, each user's events in time order (`sorted`) or shuffled.
fn input(sorted: bool) -> Input {
    let mut x: u64 = 0x1234_5678;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut rows: Vec<(usize, i64, u64)> = (0..EVENTS).map(|i| (i * GROUPS / EVENTS, (i % 97) as i64 * 60_000_000, next())).collect();
    if !sorted {
        rows.sort_by_key(|r| r.2);
    }
    let kinds: Vec<u64> = rows.iter().map(|r| r.2 % 5).collect();
    let conds = (0..4u64).map(|k| Arc::new(BooleanArray::from(kinds.iter().map(|&c| c == k).collect::<Vec<_>>())) as ArrayRef).collect();
    Input {
        groups: rows.iter().map(|r| r.0).collect(),
        ts: Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone("UTC")),
        conds,
    }
}

fn schema() -> Schema {
    let mut fields = vec![Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false)];
    for i in 0..4 {
        fields.push(Field::new(format!("c{i}"), DataType::Boolean, false));
    }
    Schema::new(fields)
}

fn run(udaf: &dyn AggregateUDFImpl, leading: Vec<Arc<dyn PhysicalExpr>>, input: &Input) -> usize {
    let schema = schema();
    let mut exprs = leading.clone();
    exprs.push(col("ts", &schema).expect("ts"));
    for i in 0..4 {
        exprs.push(col(&format!("c{i}"), &schema).expect("cond"));
    }
    let mut acc = accumulator(udaf, &exprs, &schema);
    for start in (0..EVENTS).step_by(BATCH) {
        let len = BATCH.min(EVENTS - start);
        let mut values: Vec<ArrayRef> = leading.iter().map(|_| Arc::new(Int64Array::from(vec![0; len])) as ArrayRef).collect();
        if leading.len() == 1 {
            // The constant argument's value is read from the expression, not the column.
            values[0] = Arc::new(StringArray::from(vec!["x"; len]));
        }
        values.push(input.ts.slice(start, len));
        values.extend(input.conds.iter().map(|c| c.slice(start, len)));
        acc.update_batch(&values, &input.groups[start..start + len], None, GROUPS).expect("update");
    }
    acc.evaluate(EmitTo::All).expect("evaluate").len()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("aggregates");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    let window = || -> Arc<dyn PhysicalExpr> { lit(ScalarValue::Int64(Some(3600))) };
    let pattern = |p: &str| -> Arc<dyn PhysicalExpr> { lit(ScalarValue::Utf8(Some(p.into()))) };
    for sorted in [true, false] {
        let data = input(sorted);
        let order = if sorted { "sorted" } else { "shuffled" };
        let funnel = EventAggregate::new(Kind::WindowFunnel);
        group.bench_with_input(BenchmarkId::new("window_funnel", order), &data, |b, d| b.iter(|| run(&funnel, vec![window()], d)));
        let retention = Retention::new();
        group.bench_with_input(BenchmarkId::new("retention", order), &data, |b, d| b.iter(|| run_retention(&retention, d)));
        let matcher = EventAggregate::new(Kind::SequenceMatch);
        group.bench_with_input(BenchmarkId::new("sequence_match", order), &data, |b, d| {
            b.iter(|| run(&matcher, vec![pattern("(?1).*(?2)(?t<=3600)(?3)")], d))
        });
        let counter = EventAggregate::new(Kind::SequenceCount);
        group.bench_with_input(BenchmarkId::new("sequence_count", order), &data, |b, d| b.iter(|| run(&counter, vec![pattern("(?1).*(?2)")], d)));
    }
    group.finish();
}

fn run_retention(udaf: &Retention, input: &Input) -> usize {
    let schema = Schema::new((0..4).map(|i| Field::new(format!("c{i}"), DataType::Boolean, false)).collect::<Vec<_>>());
    let exprs: Vec<Arc<dyn PhysicalExpr>> = (0..4).map(|i| col(&format!("c{i}"), &schema).expect("cond")).collect();
    let mut acc = accumulator(udaf, &exprs, &schema);
    for start in (0..EVENTS).step_by(BATCH) {
        let len = BATCH.min(EVENTS - start);
        let values: Vec<ArrayRef> = input.conds.iter().map(|c| c.slice(start, len)).collect();
        acc.update_batch(&values, &input.groups[start..start + len], None, GROUPS).expect("update");
    }
    acc.evaluate(EmitTo::All).expect("evaluate").len()
}

/// A group accumulator for a call with these argument expressions.
fn accumulator(udaf: &dyn AggregateUDFImpl, exprs: &[Arc<dyn PhysicalExpr>], schema: &Schema) -> Box<dyn GroupsAccumulator> {
    let types: Vec<DataType> = exprs.iter().map(|e| e.data_type(schema).expect("type")).collect();
    let expr_fields: Vec<_> = exprs.iter().map(|e| e.return_field(schema).expect("field")).collect();
    let args = AccumulatorArgs {
        return_field: Arc::new(Field::new("out", udaf.return_type(&types).expect("return type"), true)),
        expr_fields: &expr_fields,
        schema,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: "bench",
        is_distinct: false,
        exprs,
    };
    udaf.create_groups_accumulator(args).expect("accumulator")
}

criterion_group!(benches, bench);
criterion_main!(benches);
