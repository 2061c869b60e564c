//! sequence_next_node(direction, base, ts, event_column, base_condition,
//! cond1, ..., condN): the value of the event that follows (or precedes) a
//! chain of events, with the semantics of ClickHouse's sequenceNextNode. The
//! state keeps every counted row as a timestamp, an interned value, a bit
//! mask of the conditions it met and whether it can be the base point.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array, ListArray, StringArray, StringBuilder, UInt64Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{exec_err, plan_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;

use super::buffer::{timestamps, truthy};
use super::{is_condition, stringy};
use crate::functions::scalar_text;

/// The most event conditions one call takes, as in ClickHouse.
pub const MAX_EVENTS: usize = 64;

/// The call's shape and what it gives.
pub const DOC: (&str, &str) = (
    "sequence_next_node(direction, base, ts, event_column, base_condition, event1, ..., eventN)",
    "the event_column value of the event after (forward) or before (backward) the chain event1..eventN, counted from the base point: \
     head, tail, first_match or last_match (ClickHouse sequenceNextNode); NULL when the chain does not match",
);

const NAME: &str = "sequence_next_node";
const USAGE: &str = "sequence_next_node('forward' | 'backward', 'head' | 'tail' | 'first_match' | 'last_match', ts, event_column, base_condition, event1, ...)";

// Argument positions.
const TS: usize = 2;
const VALUE: usize = 3;
const BASE_CONDITION: usize = 4;
const FIRST_EVENT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Head,
    Tail,
    FirstMatch,
    LastMatch,
}

/// A checked call: which way to look, from where, over how many events.
#[derive(Debug, Clone, Copy)]
struct Spec {
    direction: Direction,
    base: Base,
    events: usize,
}

fn check_types(types: &[DataType]) -> Result<()> {
    if types.len() < FIRST_EVENT {
        return plan_err!("{NAME} needs at least 5 arguments: {USAGE}");
    }
    if !stringy(&types[0]) || !stringy(&types[1]) {
        return plan_err!("{NAME}: the direction and the base must be constant strings: {USAGE}");
    }
    let ts = &types[TS];
    if !(matches!(ts, DataType::Timestamp(_, _) | DataType::Date32) || ts.is_integer()) {
        return plan_err!("{NAME}: the timestamp argument must be a timestamp, date or integer, got {ts}");
    }
    let value_ok = match &types[VALUE] {
        DataType::Dictionary(_, v) => stringy(v),
        t => stringy(t) || *t == DataType::Null,
    };
    if !value_ok {
        return plan_err!("{NAME}: the event column must be a string, got {}", types[VALUE]);
    }
    if !is_condition(&types[BASE_CONDITION]) {
        return plan_err!("{NAME}: the base condition must be boolean or an integer (0 is false), got {}", types[BASE_CONDITION]);
    }
    let events = types.len() - FIRST_EVENT;
    if events > MAX_EVENTS {
        return plan_err!("{NAME} takes at most {MAX_EVENTS} event conditions, got {events}");
    }
    for (i, t) in types[FIRST_EVENT..].iter().enumerate() {
        if !is_condition(t) {
            return plan_err!("{NAME}: event{} must be boolean or an integer (0 is false), got {t}", i + 1);
        }
    }
    Ok(())
}

/// Checks the constant arguments; `consts[i]` is argument i's value when it is a literal.
fn parse_spec(consts: &[Option<ScalarValue>]) -> Result<Spec> {
    if consts.len() < FIRST_EVENT {
        return plan_err!("{NAME} needs at least 5 arguments: {USAGE}");
    }
    let text = |i: usize, what: &str| {
        consts[i].as_ref().and_then(scalar_text).map(str::to_owned).ok_or_else(|| plan_datafusion_err!("{NAME}: the {what} must be a constant string: {USAGE}"))
    };
    let direction = match text(0, "direction")?.as_str() {
        "forward" => Direction::Forward,
        "backward" => Direction::Backward,
        other => return plan_err!("{NAME}: unknown direction '{other}'; directions are 'forward' and 'backward'"),
    };
    let base = match text(1, "base")?.as_str() {
        "head" => Base::Head,
        "tail" => Base::Tail,
        "first_match" => Base::FirstMatch,
        "last_match" => Base::LastMatch,
        other => return plan_err!("{NAME}: unknown base '{other}'; bases are 'head', 'tail', 'first_match' and 'last_match'"),
    };
    match (base, direction) {
        (Base::Head, Direction::Backward) => return plan_err!("{NAME}: base 'head' looks forward only (nothing comes before the first event)"),
        (Base::Tail, Direction::Forward) => return plan_err!("{NAME}: base 'tail' looks backward only (nothing comes after the last event)"),
        _ => {}
    }
    let events = consts.len() - FIRST_EVENT;
    if events > MAX_EVENTS {
        return plan_err!("{NAME} takes at most {MAX_EVENTS} event conditions, got {events}");
    }
    if events == 0 && matches!(base, Base::FirstMatch | Base::LastMatch) {
        return plan_err!("{NAME}: base 'first_match' and 'last_match' need at least one event condition (the base point matches event1)");
    }
    Ok(Spec { direction, base, events })
}

fn spec_from_args(args: &AccumulatorArgs) -> Result<Spec> {
    let consts: Vec<Option<ScalarValue>> = args.exprs.iter().map(|e| e.downcast_ref::<Literal>().map(|l| l.value().clone())).collect();
    parse_spec(&consts)
}

/// One counted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    ts: i64,
    /// The interned event_column value.
    value: u32,
    /// Bit i: the row met event i+1.
    mask: u64,
    /// The row met the base condition.
    base: bool,
}

/// The distinct event_column values seen, each stored once.
#[derive(Debug, Default)]
struct Values {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    bytes: usize,
}

impl Values {
    fn id(&mut self, s: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        let Ok(id) = u32::try_from(self.names.len()) else { return exec_err!("{NAME}: more than 2^32 distinct event values") };
        self.ids.insert(s.into(), id);
        self.names.push(s.into());
        self.bytes += 2 * s.len() + 48;
        Ok(id)
    }

    /// Each id's place in byte order of the values: ClickHouse orders rows
    /// with equal timestamps by their value.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.names.len()).filter_map(|i| u32::try_from(i).ok()).collect();
        order.sort_unstable_by(|a, b| self.names[*a as usize].as_bytes().cmp(self.names[*b as usize].as_bytes()));
        let mut rank = vec![0u32; order.len()];
        for (r, id) in order.into_iter().enumerate() {
            rank[id as usize] = u32::try_from(r).unwrap_or(u32::MAX);
        }
        rank
    }
}

/// A string column of any string type, read row by row.
enum Strings<'a> {
    Utf8(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    View(&'a arrow::array::StringViewArray),
    Null,
}

impl Strings<'_> {
    fn of(a: &ArrayRef) -> Result<Strings<'_>> {
        Ok(match a.data_type() {
            DataType::Utf8 => Strings::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => Strings::Large(a.as_string::<i64>()),
            DataType::Utf8View => Strings::View(a.as_string_view()),
            DataType::Null => Strings::Null,
            t => return exec_err!("{NAME}: the event column is {t}, not a string"),
        })
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Strings::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::View(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::Null => None,
        }
    }
}

/// Calls `f(row, node)` for each row that counts: not filtered out and with
/// no NULL argument (ClickHouse skips such rows).
fn for_each_row(values: &[ArrayRef], filter: Option<&BooleanArray>, interned: &mut Values, mut f: impl FnMut(usize, Node)) -> Result<()> {
    let ts = timestamps(&values[TS])?;
    let strings = Strings::of(&values[VALUE])?;
    let mut conds = Vec::with_capacity(values.len() - BASE_CONDITION);
    for (i, c) in values[BASE_CONDITION..].iter().enumerate() {
        let Some(b) = c.as_boolean_opt() else { return exec_err!("{NAME}: condition {} is {}, not boolean", i, c.data_type()) };
        conds.push(b);
    }
    let mut valid: Option<NullBuffer> = None;
    for c in &conds {
        valid = NullBuffer::union(valid.as_ref(), c.nulls());
    }
    let keep = filter.map(truthy);
    let mut last: Option<(&str, u32)> = None;
    for row in 0..ts.len() {
        if ts.is_null(row) || valid.as_ref().is_some_and(|v| !v.is_valid(row)) || keep.as_ref().is_some_and(|k| !k.value(row)) {
            continue;
        }
        let Some(s) = strings.get(row) else { continue };
        // Event values repeat in runs: skip the hash lookup for a repeat.
        let value = match last {
            Some((prev, id)) if prev == s => id,
            _ => {
                let id = interned.id(s)?;
                last = Some((s, id));
                id
            }
        };
        let mut mask = 0u64;
        for (bit, c) in conds[1..].iter().enumerate() {
            if c.value(row) {
                mask |= 1 << bit;
            }
        }
        f(row, Node { ts: ts.value(row), value, mask, base: conds[0].value(row) });
    }
    Ok(())
}

/// The index of the resulting row among a group's rows sorted by time
/// (ClickHouse's getNextNodeIndex): the base point, then the chain from it.
fn next_index(nodes: &[Node], spec: Spec) -> Option<usize> {
    let n = nodes.len();
    if n <= spec.events {
        return None;
    }
    let starts_chain = |x: &Node| x.base && x.mask & 1 != 0;
    let base = match spec.base {
        Base::Head => nodes[0].base.then_some(0)?,
        Base::Tail => nodes[n - 1].base.then_some(n - 1)?,
        Base::FirstMatch => nodes.iter().position(starts_chain)?,
        Base::LastMatch => nodes.iter().rposition(starts_chain)?,
    };
    if spec.events == 0 {
        return Some(base);
    }
    let met = |node: &Node, i: usize| node.mask >> i & 1 != 0;
    match spec.direction {
        Direction::Forward => {
            let mut i = 0;
            while i < spec.events && base + i < n && met(&nodes[base + i], i) {
                i += 1;
            }
            (i == spec.events && base + i < n).then_some(base + i)
        }
        Direction::Backward => {
            let mut i = 0;
            while i < spec.events && i < base && met(&nodes[base - i], i) {
                i += 1;
            }
            (i == spec.events).then(|| base - i)
        }
    }
}

/// Sorts one group's rows by (timestamp, value) as ClickHouse does; rows
/// equal in both are ordered by their conditions, so that the answer does not
/// depend on the order rows arrive in (ClickHouse keeps arrival order).
fn sort_nodes(nodes: &mut [Node], ranks: &[u32]) {
    let key = |x: &Node| (x.ts, ranks[x.value as usize], x.base, x.mask);
    if !nodes.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        nodes.sort_unstable_by_key(key);
    }
}

fn state_fields(name: &str) -> Vec<FieldRef> {
    let list = |suffix: &str, t: DataType| Arc::new(Field::new(format!("{name}_{suffix}"), DataType::List(Arc::new(Field::new_list_field(t, false))), true));
    vec![list("ts", DataType::Int64), list("value", DataType::Utf8), list("mask", DataType::UInt64), list("base", DataType::Boolean)]
}

/// The state of groups given as slices of rows: four lists with shared offsets.
fn state_arrays<'a>(groups: impl Iterator<Item = &'a [Node]>, interned: &Values) -> Result<Vec<ArrayRef>> {
    let mut offsets = vec![0i32];
    let (mut ts, mut masks, mut values) = (Vec::new(), Vec::new(), StringBuilder::new());
    let mut bases = BooleanBufferBuilder::new(0);
    for g in groups {
        for x in g {
            ts.push(x.ts);
            masks.push(x.mask);
            values.append_value(&interned.names[x.value as usize]);
            bases.append(x.base);
        }
        let Ok(end) = i32::try_from(ts.len()) else { return exec_err!("{NAME}: a state of more than 2^31 rows") };
        offsets.push(end);
    }
    let offsets = OffsetBuffer::new(offsets.into());
    let list = |t: DataType, a: ArrayRef| -> ArrayRef { Arc::new(ListArray::new(Arc::new(Field::new_list_field(t, false)), offsets.clone(), a, None)) };
    Ok(vec![
        list(DataType::Int64, Arc::new(Int64Array::from(ts))),
        list(DataType::Utf8, Arc::new(values.finish())),
        list(DataType::UInt64, Arc::new(UInt64Array::from(masks))),
        list(DataType::Boolean, Arc::new(BooleanArray::new(bases.finish(), None))),
    ])
}

/// Reads states back: `f(state_row, node)` for each stored row.
fn for_each_state_row(values: &[ArrayRef], interned: &mut Values, mut f: impl FnMut(usize, Node)) -> Result<()> {
    let lists: Vec<&ListArray> = values.iter().filter_map(|v| v.as_list_opt::<i32>()).collect();
    let [ts, value, mask, base] = lists[..] else { return exec_err!("{NAME}: the state must be four lists") };
    let (Some(tv), Some(vv), Some(mv), Some(bv)) = (
        ts.values().as_primitive_opt::<Int64Type>(),
        value.values().as_string_opt::<i32>(),
        mask.values().as_primitive_opt::<UInt64Type>(),
        base.values().as_boolean_opt(),
    ) else {
        return exec_err!("{NAME}: the state lists have the wrong types");
    };
    let vv: &StringArray = vv;
    for row in 0..ts.len() {
        if ts.is_null(row) {
            continue;
        }
        let offsets = ts.value_offsets();
        let (Ok(a), Ok(b)) = (usize::try_from(offsets[row]), usize::try_from(offsets[row + 1])) else { return exec_err!("{NAME}: bad state offsets") };
        for k in a..b {
            let id = interned.id(vv.value(k))?;
            f(row, Node { ts: tv.value(k), value: id, mask: mv.value(k), base: bv.value(k) });
        }
    }
    Ok(())
}

/// The results of groups given as slices of rows (sorted here).
fn results<'a>(groups: impl Iterator<Item = &'a mut [Node]>, interned: &Values, spec: Spec) -> ArrayRef {
    let ranks = interned.ranks();
    let mut out = StringBuilder::new();
    for nodes in groups {
        sort_nodes(nodes, &ranks);
        match next_index(nodes, spec) {
            Some(i) => out.append_value(&interned.names[nodes[i].value as usize]),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// The UDAF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SequenceNextNode {
    signature: Signature,
    doc: Documentation,
}

impl SequenceNextNode {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), doc: super::documentation(DOC.0, DOC.1) }
    }
}

impl Default for SequenceNextNode {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for SequenceNextNode {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_types(arg_types)?;
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match i {
                0 | 1 => DataType::Utf8,
                TS => t.clone(),
                VALUE => match t {
                    DataType::Utf8 | DataType::Utf8View => t.clone(),
                    _ => DataType::Utf8,
                },
                _ => DataType::Boolean,
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_types(arg_types)?;
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One { spec: spec_from_args(&args)?, nodes: Vec::new(), interned: Values::default() }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Many { spec: spec_from_args(&args)?, groups: Vec::new(), nodes: Vec::new(), interned: Values::default(), num_groups: 0 }))
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        // Checks the direction and base while the plan is optimised, before any data is read.
        Some(Box::new(|agg, _info| {
            parse_spec(&super::literal_args(&agg.params.args))?;
            Ok(Expr::AggregateFunction(agg))
        }))
    }
}

/// All groups' rows in one flat buffer.
struct Many {
    spec: Spec,
    groups: Vec<usize>,
    nodes: Vec<Node>,
    interned: Values,
    num_groups: usize,
}

impl Many {
    /// Takes the groups `emit_to` names out, each group's rows together,
    /// renumbering those that stay. Returns the rows and each group's offsets.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<Node>, Vec<usize>) {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(n) => n.min(self.num_groups),
        };
        let mut offsets = vec![0usize; n + 1];
        for &g in &self.groups {
            if g < n {
                offsets[g + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let empty = Node { ts: 0, value: 0, mask: 0, base: false };
        let mut out = vec![empty; offsets[n]];
        let mut next = offsets.clone();
        let mut kept = 0;
        for i in 0..self.groups.len() {
            let g = self.groups[i];
            if g < n {
                out[next[g]] = self.nodes[i];
                next[g] += 1;
            } else {
                self.groups[kept] = g - n;
                self.nodes[kept] = self.nodes[i];
                kept += 1;
            }
        }
        self.groups.truncate(kept);
        self.nodes.truncate(kept);
        self.num_groups -= n;
        (out, offsets)
    }
}

impl GroupsAccumulator for Many {
    fn update_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], opt_filter: Option<&BooleanArray>, total_num_groups: usize) -> Result<()> {
        self.num_groups = self.num_groups.max(total_num_groups);
        let (groups, nodes) = (&mut self.groups, &mut self.nodes);
        for_each_row(values, opt_filter, &mut self.interned, |row, node| {
            groups.push(group_indices[row]);
            nodes.push(node);
        })
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.num_groups = self.num_groups.max(total_num_groups);
        let (groups, nodes) = (&mut self.groups, &mut self.nodes);
        for_each_state_row(values, &mut self.interned, |row, node| {
            groups.push(group_indices[row]);
            nodes.push(node);
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (mut nodes, offsets) = self.take(emit_to);
        let mut rest = nodes.as_mut_slice();
        let mut slices = Vec::with_capacity(offsets.len().saturating_sub(1));
        for w in offsets.windows(2) {
            let (head, tail) = rest.split_at_mut(w[1] - w[0]);
            slices.push(head);
            rest = tail;
        }
        Ok(results(slices.into_iter(), &self.interned, self.spec))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (nodes, offsets) = self.take(emit_to);
        state_arrays(offsets.windows(2).map(|w| &nodes[w[0]..w[1]]), &self.interned)
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        // One state per row: its node, or none for a row that does not count.
        let rows = values.get(TS).map_or(0, |v| v.len());
        let mut per_row: Vec<Option<Node>> = vec![None; rows];
        let mut interned = Values::default();
        for_each_row(values, opt_filter, &mut interned, |row, node| per_row[row] = Some(node))?;
        state_arrays(per_row.iter().map(|n| n.as_ref().map_or(&[][..], std::slice::from_ref)), &interned)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<usize>() + self.nodes.capacity() * std::mem::size_of::<Node>() + self.interned.bytes + std::mem::size_of::<Self>()
    }
}

/// The same for a query without GROUP BY.
struct One {
    spec: Spec,
    nodes: Vec<Node>,
    interned: Values,
}

impl std::fmt::Debug for One {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceNextNode").field("rows", &self.nodes.len()).finish()
    }
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let nodes = &mut self.nodes;
        for_each_row(values, None, &mut self.interned, |_, node| nodes.push(node))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let nodes = &mut self.nodes;
        for_each_state_row(states, &mut self.interned, |_, node| nodes.push(node))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let out = results(std::iter::once(self.nodes.as_mut_slice()), &self.interned, self.spec);
        ScalarValue::try_from_array(&out, 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_arrays(std::iter::once(self.nodes.as_slice()), &self.interned)?.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.nodes.capacity() * std::mem::size_of::<Node>() + self.interned.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ts: i64, value: u32, mask: u64, base: bool) -> Node {
        Node { ts, value, mask, base }
    }

    fn spec(direction: Direction, base: Base, events: usize) -> Spec {
        Spec { direction, base, events }
    }

    #[test]
    fn forward_from_the_head_returns_the_event_after_the_chain() {
        // A B C E F with event1 = A, event2 = B: the answer is C (index 2).
        let nodes: Vec<Node> = (0..5).map(|i| node(i, i as u32, [1, 2, 0, 0, 0][i as usize], i == 0)).collect();
        assert_eq!(next_index(&nodes, spec(Direction::Forward, Base::Head, 2)), Some(2));
        // The head cannot be the base point: no answer.
        let mut no_base = nodes.clone();
        no_base[0].base = false;
        assert_eq!(next_index(&no_base, spec(Direction::Forward, Base::Head, 2)), None);
        // The chain ends with the last row: nothing follows it.
        assert_eq!(next_index(&nodes[..2], spec(Direction::Forward, Base::Head, 2)), None);
    }

    #[test]
    fn backward_needs_as_many_rows_before_the_base_as_events() {
        // Rows 0..3, the tail matches event1, row 2 event2: the answer is row 1.
        let nodes = vec![node(0, 0, 0, false), node(1, 1, 0, false), node(2, 2, 2, false), node(3, 3, 1, true)];
        assert_eq!(next_index(&nodes, spec(Direction::Backward, Base::Tail, 2)), Some(1));
        // With three events the chain needs base > 2 rows before: row 0 is never checked.
        let mut three = nodes.clone();
        three[1].mask = 4;
        assert_eq!(next_index(&three, spec(Direction::Backward, Base::Tail, 3)), Some(0));
        assert_eq!(next_index(&nodes[1..], spec(Direction::Backward, Base::Tail, 3)), None);
    }

    #[test]
    fn the_match_bases_pick_the_first_or_last_row_meeting_event1_and_the_base_condition() {
        let nodes = vec![node(0, 0, 1, false), node(1, 1, 1, true), node(2, 2, 0, true), node(3, 3, 1, true), node(4, 4, 0, false)];
        assert_eq!(next_index(&nodes, spec(Direction::Forward, Base::FirstMatch, 1)), Some(2));
        assert_eq!(next_index(&nodes, spec(Direction::Forward, Base::LastMatch, 1)), Some(4));
        assert_eq!(next_index(&nodes, spec(Direction::Backward, Base::LastMatch, 1)), Some(2));
        assert_eq!(next_index(&nodes, spec(Direction::Backward, Base::FirstMatch, 1)), Some(0));
    }

    #[test]
    fn with_no_events_the_base_point_itself_is_the_answer() {
        let nodes = vec![node(0, 0, 0, true), node(1, 1, 0, true)];
        assert_eq!(next_index(&nodes, spec(Direction::Forward, Base::Head, 0)), Some(0));
        assert_eq!(next_index(&nodes, spec(Direction::Backward, Base::Tail, 0)), Some(1));
    }

    #[test]
    fn equal_timestamps_are_ordered_by_value() {
        let mut v = Values::default();
        let (b, a) = (v.id("b").unwrap(), v.id("a").unwrap());
        let mut nodes = vec![node(5, b, 0, false), node(5, a, 0, false), node(1, b, 0, false)];
        sort_nodes(&mut nodes, &v.ranks());
        assert_eq!(nodes.iter().map(|x| (x.ts, &*v.names[x.value as usize])).collect::<Vec<_>>(), vec![(1, "b"), (5, "a"), (5, "b")]);
    }

    #[test]
    fn bad_constants_are_named() {
        let s = |x: &str| Some(ScalarValue::Utf8(Some(x.into())));
        let args = |d: &str, b: &str, events: usize| {
            let mut v = vec![s(d), s(b), None, None, None];
            v.extend(std::iter::repeat_n(None, events));
            v
        };
        let err = |v: Vec<Option<ScalarValue>>| parse_spec(&v).unwrap_err().to_string();
        assert!(err(args("sideways", "head", 1)).contains("unknown direction 'sideways'"));
        assert!(err(args("forward", "middle", 1)).contains("unknown base 'middle'"));
        assert!(err(args("backward", "head", 1)).contains("'head' looks forward only"));
        assert!(err(args("forward", "tail", 1)).contains("'tail' looks backward only"));
        assert!(err(args("forward", "first_match", 0)).contains("need at least one event condition"));
        assert!(err(args("forward", "head", 65)).contains("at most 64"));
        assert!(parse_spec(&args("forward", "head", 0)).is_ok());
    }
}
