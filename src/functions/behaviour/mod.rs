//! Behavioural aggregates with ClickHouse's semantics: window_funnel,
//! retention, sequence_match, sequence_count and sequence_next_node. Each works per group with one
//! columnar state for all groups (GroupsAccumulator), merges partial states
//! across partitions, and reports its memory to DataFusion's pool. Constant
//! arguments (window, mode, pattern) are checked when the query is planned.

pub mod buffer;
pub mod funnel;
pub mod next_node;
pub mod retention;
pub mod sequence;

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, BooleanBuilder, Int64Builder, ListBuilder, UInt64Builder, UInt8Builder};
use arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;

use buffer::{sort_events, state_arrays, Event, EventBuffer, Layout};
use funnel::Modes;
use sequence::Pattern;

use super::{scalar_text, FunctionDoc};

/// The most conditions one call takes (a bit each in a u32 mask).
pub const MAX_CONDITIONS: usize = 32;

/// Which event aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    WindowFunnel,
    WindowFunnelPath,
    SequenceMatch,
    SequenceCount,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::WindowFunnel => "window_funnel",
            Kind::WindowFunnelPath => "window_funnel_path",
            Kind::SequenceMatch => "sequence_match",
            Kind::SequenceCount => "sequence_count",
        }
    }

    /// The call's shape and what it gives, for `vitals tables` and `information_schema.routines`.
    fn doc(self) -> (&'static str, &'static str) {
        match self {
            Kind::WindowFunnel => (
                "window_funnel(window, [mode,] ts, cond1, ..., condN)",
                "highest funnel step reached within the window (ClickHouse windowFunnel); modes: strict_deduplication, strict_order, strict_increase, allow_reentry, strict_once",
            ),
            Kind::WindowFunnelPath => (
                "window_funnel_path(window, [mode,] ts, cond1, ..., condN)",
                "the timestamps (in ts's units) of the steps of the chain window_funnel counts, one per level reached",
            ),
            Kind::SequenceMatch => (
                "sequence_match(pattern, ts, cond1, ...)",
                "whether the events match a pattern such as '(?1).*(?2)(?t<=3600)(?3)' (ClickHouse sequenceMatch)",
            ),
            Kind::SequenceCount => ("sequence_count(pattern, ts, cond1, ...)", "non-overlapping matches of the pattern (ClickHouse sequenceCount)"),
        }
    }
}

/// The section vitals' own functions are documented in.
pub(super) fn documentation(signature: &str, description: &str) -> Documentation {
    let section = DocSection { include: true, label: "vitals behavioural aggregates", description: None };
    Documentation::builder(section, description, signature).build()
}

pub(super) fn stringy(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Timestamp units per second of a timestamp argument's type (1 for dates and integers:
/// their raw values are compared).
fn units_per_second(t: &DataType) -> i64 {
    match t {
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000_000,
        _ => 1,
    }
}

/// Whether a type can be a condition: boolean, or an integer as ClickHouse's
/// UInt8 conditions are (0 false, anything else true; coerced to boolean, so
/// NULL stays NULL and skips the row).
pub fn is_condition(t: &DataType) -> bool {
    matches!(t, DataType::Boolean | DataType::Null) || t.is_integer()
}

/// Checks argument types; returns the index of the timestamp argument.
fn check_types(kind: Kind, types: &[DataType]) -> Result<usize> {
    let name = kind.name();
    let usage = match kind {
        Kind::WindowFunnel | Kind::WindowFunnelPath => "(window, [mode,] timestamp, cond1, ..., condN)",
        _ => "(pattern, timestamp, cond1, ..., condN)",
    };
    let ts = match kind {
        Kind::WindowFunnel | Kind::WindowFunnelPath => {
            match types.first() {
                Some(t) if t.is_integer() || matches!(t, DataType::Interval(_)) => {}
                Some(t) => return plan_err!("{name}: the window must be an INTERVAL or a whole number of seconds, got {t}"),
                None => return plan_err!("{name} needs arguments: {name}{usage}"),
            }
            if types.get(1).is_some_and(stringy) { 2 } else { 1 }
        }
        _ => {
            if !types.first().is_some_and(stringy) {
                return plan_err!("{name}: the first argument must be the pattern string: {name}{usage}");
            }
            1
        }
    };
    let Some(ts_type) = types.get(ts) else { return plan_err!("{name} needs a timestamp and at least one condition") };
    if !(matches!(ts_type, DataType::Timestamp(_, _) | DataType::Date32) || ts_type.is_integer()) {
        return plan_err!("{name}: the timestamp argument must be a timestamp, date or integer, got {ts_type}");
    }
    let conds = types.len() - ts - 1;
    if conds == 0 || conds > MAX_CONDITIONS {
        return plan_err!("{name} takes 1 to {MAX_CONDITIONS} conditions, got {conds}");
    }
    for (i, t) in types[ts + 1..].iter().enumerate() {
        if !is_condition(t) {
            return plan_err!("{name}: condition {} must be boolean or an integer (0 is false), got {t}", i + 1);
        }
    }
    Ok(ts)
}

/// What a call computes per group, from its constant arguments.
#[derive(Debug, Clone)]
enum Eval {
    Funnel { steps: usize, window: i64, modes: Modes, path: bool },
    Match(Pattern),
    Count(Pattern),
}

/// A checked call: where its inputs are and what it computes.
#[derive(Debug, Clone)]
struct Spec {
    layout: Layout,
    eval: Eval,
}

/// The window in timestamp units; `ts_type` is None when only checking values.
fn window_units(value: &ScalarValue, ts_type: Option<&DataType>) -> Result<i64> {
    let name = "window_funnel";
    let per_second = ts_type.map_or(1, units_per_second);
    let nanos_to_units = |nanos: i128| -> Result<i64> {
        match ts_type {
            Some(DataType::Timestamp(_, _)) | None => i64::try_from(nanos * i128::from(per_second) / 1_000_000_000)
                .map_err(|_| plan_datafusion_err!("{name}: the window is too long")),
            Some(DataType::Date32) => i64::try_from(nanos / 86_400_000_000_000).map_err(|_| plan_datafusion_err!("{name}: the window is too long")),
            Some(t) => plan_err!("{name}: an INTERVAL window needs a timestamp column, not {t}; give the window as a number in the column's unit"),
        }
    };
    let units = match value {
        v if v.is_null() => return plan_err!("{name}: the window must not be NULL"),
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            if v.months != 0 {
                return plan_err!("{name}: a window in months or years has no fixed length; give it in days");
            }
            nanos_to_units(i128::from(v.days) * 86_400_000_000_000 + i128::from(v.nanoseconds))?
        }
        ScalarValue::IntervalDayTime(Some(v)) => nanos_to_units(i128::from(v.days) * 86_400_000_000_000 + i128::from(v.milliseconds) * 1_000_000)?,
        ScalarValue::IntervalYearMonth(_) => return plan_err!("{name}: a window in months or years has no fixed length; give it in days"),
        v => match v.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(w)) if w >= 0 => {
                if matches!(ts_type, Some(DataType::Timestamp(_, _))) { w.saturating_mul(per_second) } else { w }
            }
            ScalarValue::Int64(Some(w)) => return plan_err!("{name}: the window must not be negative, got {w}"),
            other => return plan_err!("{name}: cannot read {other} as a window"),
        },
    };
    if units < 0 {
        return plan_err!("{name}: the window must not be negative");
    }
    Ok(units)
}

/// Checks a call's constants: `consts[i]` is argument i's value when it is a
/// literal. `types` are the argument types (None when only checking values).
fn parse_spec(kind: Kind, consts: &[Option<ScalarValue>], types: Option<&[DataType]>) -> Result<Spec> {
    let name = kind.name();
    let n = consts.len();
    let ts = match types {
        Some(t) => check_types(kind, t)?,
        None => match kind {
            Kind::WindowFunnel | Kind::WindowFunnelPath => {
                if consts.get(1).and_then(|c| c.as_ref()).and_then(scalar_text).is_some() { 2 } else { 1 }
            }
            _ => 1,
        },
    };
    if ts >= n {
        return plan_err!("{name} needs a timestamp and at least one condition");
    }
    let conditions = n - ts - 1;
    let ts_type = types.map(|t| &t[ts]);
    let eval = match kind {
        Kind::WindowFunnel | Kind::WindowFunnelPath => {
            let window = consts[0].as_ref().ok_or_else(|| plan_datafusion_err!("{name}: the window must be a constant"))?;
            let window = window_units(window, ts_type)?;
            let modes = if ts == 2 {
                let m = consts[1].as_ref().and_then(scalar_text).ok_or_else(|| plan_datafusion_err!("{name}: the mode must be a constant string"))?;
                Modes::parse(&m).map_err(|e| plan_datafusion_err!("{name}: {e}"))?
            } else {
                Modes::default()
            };
            Eval::Funnel { steps: conditions, window, modes, path: kind == Kind::WindowFunnelPath }
        }
        Kind::SequenceMatch | Kind::SequenceCount => {
            let p = consts[0].as_ref().and_then(scalar_text).ok_or_else(|| plan_datafusion_err!("{name}: the pattern must be a constant string"))?;
            let pattern = Pattern::parse(&p, conditions, ts_type.map_or(1, units_per_second)).map_err(|e| plan_datafusion_err!("{name}: {e}"))?;
            if kind == Kind::SequenceMatch { Eval::Match(pattern) } else { Eval::Count(pattern) }
        }
    };
    let keep_empty = matches!(eval, Eval::Funnel { modes, .. } if modes.strict_order);
    Ok(Spec { layout: Layout { ts, conds: ts + 1..n, keep_empty }, eval })
}

fn spec_from_args(kind: Kind, args: &AccumulatorArgs) -> Result<Spec> {
    let consts: Vec<Option<ScalarValue>> =
        args.exprs.iter().map(|e| e.downcast_ref::<Literal>().map(|l| l.value().clone())).collect();
    let types: Vec<DataType> = args.exprs.iter().map(|e| e.data_type(args.schema)).collect::<Result<_>>()?;
    parse_spec(kind, &consts, Some(&types))
}

/// The UDAF of one event aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EventAggregate {
    kind: Kind,
    signature: Signature,
    doc: Documentation,
}

impl EventAggregate {
    pub fn new(kind: Kind) -> Self {
        let (signature, description) = kind.doc();
        Self { kind, signature: Signature::user_defined(Volatility::Immutable), doc: documentation(signature, description) }
    }
}

impl AggregateUDFImpl for EventAggregate {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let ts = check_types(self.kind, arg_types)?;
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| if i > ts { DataType::Boolean } else if stringy(t) { DataType::Utf8 } else { t.clone() })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_types(self.kind, arg_types)?;
        Ok(match self.kind {
            Kind::WindowFunnel => DataType::UInt8,
            Kind::WindowFunnelPath => DataType::new_list(DataType::Int64, true),
            Kind::SequenceMatch => DataType::Boolean,
            Kind::SequenceCount => DataType::UInt64,
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(buffer::state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup { spec: spec_from_args(self.kind, &args)?, events: Vec::new(), seen: false }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups { spec: spec_from_args(self.kind, &args)?, buffer: EventBuffer::default(), seen: Vec::new() }))
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let kind = self.kind;
        // Checks the constant arguments while the plan is optimised, so a bad
        // window, mode or pattern fails before any data is read.
        Some(Box::new(move |agg, _info| {
            parse_spec(kind, &literal_args(&agg.params.args), None)?;
            Ok(Expr::AggregateFunction(agg))
        }))
    }
}

/// Each argument's value where it is a literal (what a call's constants are
/// checked from while the plan is simplified).
pub(super) fn literal_args(args: &[Expr]) -> Vec<Option<ScalarValue>> {
    args.iter()
        .map(|e| match e {
            Expr::Literal(v, _) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Computes one group's result from its events (sorted by (timestamp, mask)).
fn finish(eval: &Eval, events: &[Event], out: &mut Out) -> Result<()> {
    let name_err = |e: String| DataFusionError::Execution(e);
    let v = match eval {
        Eval::Funnel { steps, window, modes, path: true } => {
            if let Out::List(b) = out {
                b.append_value(funnel::path(events, *steps, *window, *modes).into_iter().map(Some));
            }
            return Ok(());
        }
        Eval::Funnel { steps, window, modes, path: false } => funnel::level(events, *steps, *window, *modes) as u64,
        Eval::Match(p) => p.matches(events).map_err(name_err)? as u64,
        Eval::Count(p) => p.count(events).map_err(name_err)?,
    };
    out.push(Some(v));
    Ok(())
}

/// Collects results into the output type.
enum Out {
    U8(UInt8Builder),
    Bool(BooleanBuilder),
    U64(UInt64Builder),
    List(ListBuilder<Int64Builder>),
}

impl Out {
    fn new(eval: &Eval, n: usize) -> Out {
        match eval {
            Eval::Funnel { path: true, .. } => Out::List(ListBuilder::with_capacity(Int64Builder::new(), n)),
            Eval::Funnel { .. } => Out::U8(UInt8Builder::with_capacity(n)),
            Eval::Match(_) => Out::Bool(BooleanBuilder::with_capacity(n)),
            Eval::Count(_) => Out::U64(UInt64Builder::with_capacity(n)),
        }
    }
    fn push(&mut self, v: Option<u64>) {
        match self {
            Out::U8(b) => b.append_option(v.map(|v| v as u8)),
            Out::Bool(b) => b.append_option(v.map(|v| v != 0)),
            Out::U64(b) => b.append_option(v),
            Out::List(b) => b.append_null(),
        }
    }
    fn finish(self) -> ArrayRef {
        match self {
            Out::U8(mut b) => Arc::new(b.finish()),
            Out::Bool(mut b) => Arc::new(b.finish()),
            Out::U64(mut b) => Arc::new(b.finish()),
            Out::List(mut b) => Arc::new(b.finish()),
        }
    }
}

/// All groups' events in one flat buffer. A group none of whose rows had all
/// arguments non-NULL gives NULL, as in ClickHouse.
struct Groups {
    spec: Spec,
    buffer: EventBuffer,
    seen: Vec<bool>,
}

impl Groups {
    fn add(&mut self, group: usize, event: Option<Event>) {
        self.seen[group] = true;
        if let Some((ts, mask)) = event {
            self.buffer.push(group, ts, mask);
        }
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], opt_filter: Option<&BooleanArray>, total_num_groups: usize) -> Result<()> {
        self.buffer.set_num_groups(total_num_groups);
        self.seen.resize(total_num_groups, false);
        let layout = self.spec.layout.clone();
        layout.for_each(values, opt_filter, |row, event| self.add(group_indices[row], event))
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.buffer.set_num_groups(total_num_groups);
        self.seen.resize(total_num_groups, false);
        buffer::for_each_state_event(values, None, |row, event| self.add(group_indices[row], event))
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (mut events, offsets) = self.buffer.take(emit_to);
        let seen = emit_to.take_needed(&mut self.seen);
        let mut out = Out::new(&self.spec.eval, seen.len());
        for (g, seen) in seen.iter().enumerate() {
            if !seen {
                out.push(None);
                continue;
            }
            let slice = &mut events[offsets[g]..offsets[g + 1]];
            sort_events(slice);
            finish(&self.spec.eval, slice, &mut out)?;
        }
        Ok(out.finish())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (events, offsets) = self.buffer.take(emit_to);
        let seen = emit_to.take_needed(&mut self.seen);
        Ok(state_arrays(offsets.windows(2).map(|w| &events[w[0]..w[1]]), &seen))
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut per_row: Vec<Option<Event>> = vec![None; rows];
        let mut seen = vec![false; rows];
        self.spec.layout.for_each(values, opt_filter, |row, event| {
            seen[row] = true;
            per_row[row] = event;
        })?;
        Ok(state_arrays(per_row.iter().map(|e| e.as_ref().map_or(&[][..], std::slice::from_ref)), &seen))
    }

    fn size(&self) -> usize {
        self.buffer.size() + self.seen.capacity()
    }
}

/// The same for a query without GROUP BY.
struct SingleGroup {
    spec: Spec,
    events: Vec<Event>,
    seen: bool,
}

impl std::fmt::Debug for SingleGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleGroup").field("events", &self.events.len()).finish()
    }
}

impl SingleGroup {
    fn add(&mut self, event: Option<Event>) {
        self.seen = true;
        self.events.extend(event);
    }
}

impl Accumulator for SingleGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let layout = self.spec.layout.clone();
        layout.for_each(values, None, |_, event| self.add(event))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        buffer::for_each_state_event(states, None, |_, event| self.add(event))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        sort_events(&mut self.events);
        let mut out = Out::new(&self.spec.eval, 1);
        if self.seen {
            finish(&self.spec.eval, &self.events, &mut out)?;
        } else {
            out.push(None);
        }
        ScalarValue::try_from_array(&out.finish(), 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_arrays(std::iter::once(self.events.as_slice()), &[self.seen]).iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.events.capacity() * std::mem::size_of::<Event>()
    }
}

/// Registers the behavioural aggregates.
pub fn register(ctx: &SessionContext) -> Vec<FunctionDoc> {
    for kind in [Kind::WindowFunnel, Kind::WindowFunnelPath, Kind::SequenceMatch, Kind::SequenceCount] {
        ctx.register_udaf(AggregateUDF::from(EventAggregate::new(kind)));
    }
    ctx.register_udaf(AggregateUDF::from(retention::Retention::new()));
    ctx.register_udaf(AggregateUDF::from(next_node::SequenceNextNode::new()));
    let doc = |(signature, description): (&str, &str)| FunctionDoc { kind: "aggregate", signature: signature.into(), description: description.into(), order: None };
    vec![
        doc(Kind::WindowFunnel.doc()),
        doc(Kind::WindowFunnelPath.doc()),
        doc(retention::DOC),
        doc(Kind::SequenceMatch.doc()),
        doc(Kind::SequenceCount.doc()),
        doc(next_node::DOC),
    ]
}

