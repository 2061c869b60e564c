//! Counting distinct things over sliding windows of days, without one row
//! per thing and window.
//!
//! `day_bits(offset, span)` gathers the days a group (say one user of one
//! account) was seen on as a bit set: bit `offset` for each row, offsets
//! `0 .. span`, as little-endian 64-bit words in a binary value.
//!
//! `window_counts(bits, span, days)` then counts, for every offset `j` in
//! `0 .. span`, how many rows' sets hold a day in the window of `days` days
//! ending on `j` (offsets `j - days + 1 ..= j`). Grouped by account over
//! one row per user, that is each window's count of distinct active users:
//! health_history's counts for every period end at once.
//!
//! Each group of `day_bits` holds span / 8 bytes; each group of
//! `window_counts` holds 8 bytes per offset.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility};
use datafusion::prelude::SessionContext;

use super::FunctionDoc;

/// The most days a set spans (about 270 years).
pub const MAX_SPAN: i64 = 100_000;

const DAY_BITS: (&str, &str) = (
    "day_bits(offset BIGINT, span BIGINT), day_bits(set BINARY, span BIGINT)",
    "The set of day offsets (0 to span - 1) of the group's rows, as little-endian 64-bit words (bit k of the set is offset k); \
     NULL offsets are skipped; span must be the same in every row and at most 100000. Given sets of the same span instead of offsets, their union.",
);
const WINDOW_COUNTS: (&str, &str) = (
    "window_counts(bits BINARY, span BIGINT, days BIGINT)",
    "For each offset j from 0 to span - 1, how many rows' day sets (from day_bits) hold a day in j - days + 1 ..= j: \
     a list of span counts. With one row per user, the distinct users of every window of `days` days; NULL sets are skipped.",
);

fn documentation((signature, description): (&str, &str)) -> Documentation {
    let section = DocSection { include: true, label: "vitals day windows", description: None };
    Documentation::builder(section, description, signature).build()
}

/// The one value of a constant argument in a batch (NULLs and differing values are errors).
fn constant(name: &str, what: &str, values: &ArrayRef, low: i64, high: i64) -> Result<Option<i64>> {
    let Some(a) = values.as_primitive_opt::<Int64Type>() else {
        return exec_err!("{name}: {what} must be an integer, got {}", values.data_type());
    };
    if a.is_empty() {
        return Ok(None);
    }
    if a.null_count() > 0 {
        return exec_err!("{name}: {what} must not be NULL");
    }
    let v = a.value(0);
    if a.values().iter().any(|&x| x != v) {
        return exec_err!("{name}: {what} must be the same in every row");
    }
    if !(low..=high).contains(&v) {
        return exec_err!("{name}: {what} must be between {low} and {high}, got {v}");
    }
    Ok(Some(v))
}

/// A count of days that `constant` has bounded to 1..=MAX_SPAN, as usize.
fn days_usize(v: i64) -> usize {
    usize::try_from(v).unwrap_or(0)
}

fn words_for(span: usize) -> usize {
    span.div_ceil(64)
}

/// The words of a binary value (its length must be a multiple of 8).
fn words_of<'a>(name: &str, bytes: &'a [u8]) -> Result<impl Iterator<Item = u64> + 'a> {
    if bytes.len() % 8 != 0 {
        return exec_err!("{name}: a set of {} bytes is not whole 64-bit words", bytes.len());
    }
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])))
}

fn check_arg_count(name: &str, arg_types: &[DataType], n: usize) -> Result<()> {
    if arg_types.len() != n {
        return plan_err!("{name} takes {n} arguments, got {}", arg_types.len());
    }
    Ok(())
}

fn integer_or_null(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Null)
}

/// Groups' rows of `width` 64-bit words each, one after another: the state
/// of both aggregates. The first non-empty width fixes it (groups seen
/// before held nothing); another width is an error.
#[derive(Debug, Default)]
struct Rows {
    width: usize,
    words: Vec<u64>,
    groups: usize,
}

impl Rows {
    fn set_width(&mut self, name: &str, width: usize) -> Result<()> {
        if width == 0 || width == self.width {
            return Ok(());
        }
        if self.width != 0 {
            return exec_err!("{name}: rows of {} and {width} words: span must be the same in every row", self.width);
        }
        self.width = width;
        self.words = vec![0; self.groups.saturating_mul(width)];
        Ok(())
    }

    fn resize(&mut self, groups: usize) {
        self.groups = groups;
        self.words.resize(groups.saturating_mul(self.width), 0);
    }

    fn row_mut(&mut self, group: usize) -> &mut [u64] {
        let at = group * self.width;
        &mut self.words[at..at + self.width]
    }

    /// Folds each state (a row as little-endian bytes) into its group's row.
    fn merge(&mut self, name: &str, states: &ArrayRef, group_of: impl Fn(usize) -> usize, fold: impl Fn(&mut u64, u64)) -> Result<()> {
        let states = states.as_binary::<i32>();
        for row in 0..states.len() {
            if states.is_null(row) || states.value(row).is_empty() {
                continue;
            }
            let bytes = states.value(row);
            self.set_width(name, bytes.len() / 8)?;
            if bytes.len() != self.width * 8 {
                return exec_err!("{name}: rows of {} and {} bytes: span must be the same in every row", self.width * 8, bytes.len());
            }
            let target = self.row_mut(group_of(row));
            for (w, v) in target.iter_mut().zip(words_of(name, bytes)?) {
                fold(w, v);
            }
        }
        Ok(())
    }

    /// The rows of the first groups, taken out: (how many, their words).
    fn take(&mut self, emit_to: EmitTo) -> (usize, Vec<u64>) {
        let n = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        let taken = self.words.drain(..n * self.width).collect();
        self.groups -= n;
        (n, taken)
    }

    /// The first groups' rows as binary values (the state, and day_bits' result).
    fn take_binary(&mut self, emit_to: EmitTo) -> ArrayRef {
        let (n, words) = self.take(emit_to);
        let mut out = BinaryBuilder::with_capacity(n, words.len() * 8);
        for g in 0..n {
            let bytes: Vec<u8> = words[g * self.width..(g + 1) * self.width].iter().flat_map(|w| w.to_le_bytes()).collect();
            out.append_value(bytes);
        }
        Arc::new(out.finish())
    }

    fn size(&self) -> usize {
        self.words.capacity() * 8 + std::mem::size_of::<Self>()
    }
}

// ---------------------------------------------------------------- day_bits

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DayBits {
    signature: Signature,
    doc: Documentation,
}

impl DayBits {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), doc: documentation(DAY_BITS) }
    }
}

impl Default for DayBits {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for DayBits {
    fn name(&self) -> &str {
        "day_bits"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arg_count("day_bits", arg_types, 2)?;
        if !integer_or_null(&arg_types[1]) {
            return plan_err!("day_bits: the span must be an integer, got {}", arg_types[1]);
        }
        match &arg_types[0] {
            DataType::Binary | DataType::BinaryView | DataType::LargeBinary => Ok(vec![DataType::Binary, DataType::Int64]),
            t if integer_or_null(t) => Ok(vec![DataType::Int64; 2]),
            t => plan_err!("day_bits: the first argument must be an integer offset or a set (BINARY), got {t}"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}_bits", args.name), DataType::Binary, true))])
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::<BitSets>::default()))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(BitSets::default()))
    }
}

/// Groups' day sets: bit k of a row is offset k.
#[derive(Debug, Default)]
struct BitSets {
    rows: Rows,
    span: Option<i64>,
}

impl BitSets {
    fn update(&mut self, values: &[ArrayRef], group_of: impl Fn(usize) -> usize, filter: Option<&BooleanArray>) -> Result<()> {
        let Some(span) = constant("day_bits", "span", &values[1], 1, MAX_SPAN)? else { return Ok(()) };
        if self.span.is_some_and(|s| s != span) {
            return exec_err!("day_bits: span must be the same in every row");
        }
        self.span = Some(span);
        self.rows.set_width("day_bits", words_for(days_usize(span)))?;
        let skipped = |row: usize| filter.is_some_and(|f| !f.is_valid(row) || !f.value(row));
        if let Some(sets) = values[0].as_binary_opt::<i32>() {
            // The union of sets made over the same span.
            let width = self.rows.width;
            let spare = width * 64 - days_usize(span);
            for row in 0..sets.len() {
                if sets.is_null(row) || skipped(row) {
                    continue;
                }
                let bytes = sets.value(row);
                if bytes.len() != width * 8 {
                    return exec_err!("day_bits: a set of {} bytes where span {span} needs {}", bytes.len(), width * 8);
                }
                let target = self.rows.row_mut(group_of(row));
                for (w, v) in target.iter_mut().zip(words_of("day_bits", bytes)?) {
                    *w |= v;
                }
                if spare > 0 && target[width - 1] >> (64 - spare) != 0 {
                    return exec_err!("day_bits: a set holds a day at or past offset {span}, outside its span {span}");
                }
            }
            return Ok(());
        }
        let Some(offsets) = values[0].as_primitive_opt::<Int64Type>() else {
            return exec_err!("day_bits: the offset must be an integer, got {}", values[0].data_type());
        };
        for row in 0..offsets.len() {
            if offsets.is_null(row) || skipped(row) {
                continue;
            }
            let off = offsets.value(row);
            let Some(bit) = usize::try_from(off).ok().filter(|_| off < span) else {
                return exec_err!("day_bits: offset {off} is outside 0 to {} (span {span})", span - 1);
            };
            self.rows.row_mut(group_of(row))[bit / 64] |= 1u64 << (bit % 64);
        }
        Ok(())
    }

    fn merge(&mut self, states: &ArrayRef, group_of: impl Fn(usize) -> usize) -> Result<()> {
        self.rows.merge("day_bits", states, group_of, |w, v| *w |= v)
    }
}

impl GroupsAccumulator for BitSets {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.rows.resize(total);
        self.update(values, |row| groups[row], filter)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> Result<()> {
        self.rows.resize(total);
        self.merge(&values[0], |row| groups[row])
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.rows.take_binary(emit_to))
    }
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut each = BitSets::default();
        each.rows.resize(values.first().map_or(0, |v| v.len()));
        each.update(values, |row| row, filter)?;
        Ok(vec![each.rows.take_binary(EmitTo::All)])
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.rows.take_binary(emit_to)])
    }
    fn size(&self) -> usize {
        self.rows.size()
    }
}

// ----------------------------------------------------------- window_counts

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowCounts {
    signature: Signature,
    doc: Documentation,
}

impl WindowCounts {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), doc: documentation(WINDOW_COUNTS) }
    }
}

impl Default for WindowCounts {
    fn default() -> Self {
        Self::new()
    }
}

fn count_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Int64, false))
}

impl AggregateUDFImpl for WindowCounts {
    fn name(&self) -> &str {
        "window_counts"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arg_count("window_counts", arg_types, 3)?;
        if !matches!(arg_types[0], DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null) {
            return plan_err!("window_counts: the set must be binary (from day_bits), got {}", arg_types[0]);
        }
        if let Some(t) = arg_types[1..].iter().find(|t| !integer_or_null(t)) {
            return plan_err!("window_counts: span and days must be integers, got {t}");
        }
        Ok(vec![DataType::Binary, DataType::Int64, DataType::Int64])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(count_item()))
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}_steps", args.name), DataType::Binary, true))])
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::<Counts>::default()))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Counts::default()))
    }
}

/// Groups' counts as steps: `steps[j]` is the change of the count at offset
/// j from j - 1, so that a set adds +1 where a covered stretch of windows
/// starts and -1 after it ends; the counts are the running sums.
#[derive(Debug, Default)]
struct Counts {
    /// Steps as two's-complement words (a step may be negative).
    rows: Rows,
}

impl Counts {
    fn update(&mut self, values: &[ArrayRef], group_of: impl Fn(usize) -> usize, filter: Option<&BooleanArray>) -> Result<()> {
        let Some(span) = constant("window_counts", "span", &values[1], 1, MAX_SPAN)? else { return Ok(()) };
        let Some(days) = constant("window_counts", "days", &values[2], 1, MAX_SPAN)? else { return Ok(()) };
        let (span, days) = (days_usize(span), days_usize(days));
        self.rows.set_width("window_counts", span)?;
        let sets = values[0].as_binary::<i32>();
        for row in 0..sets.len() {
            if sets.is_null(row) || filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let steps = self.rows.row_mut(group_of(row));
            // The windows ending on j cover day b for j in b ..= b + days - 1;
            // a set's days give stretches of such j, merged where they meet.
            let mut stretch: Option<(usize, usize)> = None;
            for (k, mut w) in words_of("window_counts", sets.value(row))?.enumerate() {
                while w != 0 {
                    let b = k * 64 + usize::try_from(w.trailing_zeros()).unwrap_or(0);
                    w &= w - 1;
                    if b >= span {
                        break;
                    }
                    let last = b.saturating_add(days - 1);
                    stretch = match stretch {
                        Some((first, end)) if b <= end.saturating_add(1) => Some((first, end.max(last))),
                        Some(done) => {
                            add_stretch(steps, done);
                            Some((b, last))
                        }
                        None => Some((b, last)),
                    };
                }
            }
            if let Some(done) = stretch {
                add_stretch(steps, done);
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &ArrayRef, group_of: impl Fn(usize) -> usize) -> Result<()> {
        self.rows.merge("window_counts", states, group_of, |w, v| *w = w.wrapping_add(v))
    }

    fn counts_array(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let span = self.rows.width;
        let (n, steps) = self.rows.take(emit_to);
        if i32::try_from(steps.len()).is_err() {
            return exec_err!("window_counts: {n} groups of {span} counts are too many for one list array");
        }
        let mut counts = Vec::with_capacity(steps.len());
        for g in 0..n {
            let mut running = 0u64;
            for s in &steps[g * span..(g + 1) * span] {
                running = running.wrapping_add(*s);
                counts.push(i64::from_le_bytes(running.to_le_bytes()));
            }
        }
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(span, n));
        Ok(Arc::new(ListArray::new(count_item(), offsets, Arc::new(Int64Array::from(counts)), None)))
    }
}

/// Adds one to the counts of windows `first ..= last` (those inside the span).
fn add_stretch(steps: &mut [u64], (first, last): (usize, usize)) {
    let Some(s) = steps.get_mut(first) else { return };
    *s = s.wrapping_add(1);
    if let Some(after) = last.checked_add(1).and_then(|a| steps.get_mut(a)) {
        *after = after.wrapping_sub(1);
    }
}

impl GroupsAccumulator for Counts {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.rows.resize(total);
        self.update(values, |row| groups[row], filter)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> Result<()> {
        self.rows.resize(total);
        self.merge(&values[0], |row| groups[row])
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.counts_array(emit_to)
    }
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut each = Counts::default();
        each.rows.resize(values.first().map_or(0, |v| v.len()));
        each.update(values, |row| row, filter)?;
        Ok(vec![each.rows.take_binary(EmitTo::All)])
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.rows.take_binary(emit_to)])
    }
    fn size(&self) -> usize {
        self.rows.size()
    }
}

/// Both aggregates' state lives in [`Rows`].
trait InRows: GroupsAccumulator + Default + Sync + std::fmt::Debug {
    fn rows(&mut self) -> &mut Rows;
}

impl InRows for BitSets {
    fn rows(&mut self) -> &mut Rows {
        &mut self.rows
    }
}

impl InRows for Counts {
    fn rows(&mut self) -> &mut Rows {
        &mut self.rows
    }
}

/// An aggregate without GROUP BY (or over a window): one group, whose state
/// stays after it is read.
#[derive(Debug, Default)]
struct Single<A>(A);

impl<A: InRows> Single<A> {
    fn read(&mut self, f: impl FnOnce(&mut A) -> Result<ArrayRef>) -> Result<ScalarValue> {
        self.0.rows().resize(1);
        let kept = self.0.rows().words.clone();
        let out = f(&mut self.0)?;
        let rows = self.0.rows();
        rows.words = kept;
        rows.groups = 1;
        ScalarValue::try_from_array(&out, 0)
    }
}

impl<A: InRows> Accumulator for Single<A> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; n], None, 1)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; n], 1)
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.read(|a| a.evaluate(EmitTo::All))
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.read(|a| Ok(a.state(EmitTo::All)?.remove(0)))?])
    }
    fn size(&self) -> usize {
        GroupsAccumulator::size(&self.0)
    }
}

/// Registers day_bits and window_counts.
pub fn register(ctx: &SessionContext) -> Vec<FunctionDoc> {
    ctx.register_udaf(AggregateUDF::from(DayBits::new()));
    ctx.register_udaf(AggregateUDF::from(WindowCounts::new()));
    let doc = |(signature, description): (&str, &str)| FunctionDoc { kind: "aggregate", signature: signature.into(), description: description.into(), order: None };
    vec![doc(DAY_BITS), doc(WINDOW_COUNTS)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::BinaryArray;

    fn set_of(days: &[usize], span: usize) -> Vec<u8> {
        let mut words = vec![0u64; words_for(span)];
        for &d in days {
            words[d / 64] |= 1 << (d % 64);
        }
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Counts through the groups accumulator, two groups, the rows split in
    /// two batches and the states merged into a second accumulator.
    fn counts(rows: &[(usize, Vec<usize>)], span: usize, days: usize) -> Vec<Vec<i64>> {
        let mut parts = Vec::new();
        for half in rows.chunks(rows.len().div_ceil(2).max(1)) {
            let mut acc = Counts::default();
            let sets: BinaryArray = half.iter().map(|(_, d)| Some(set_of(d, span))).collect();
            let values: Vec<ArrayRef> = vec![
                Arc::new(sets),
                Arc::new(Int64Array::from(vec![i64::try_from(span).unwrap(); half.len()])),
                Arc::new(Int64Array::from(vec![i64::try_from(days).unwrap(); half.len()])),
            ];
            let groups: Vec<usize> = half.iter().map(|(g, _)| *g).collect();
            acc.update_batch(&values, &groups, None, 2).unwrap();
            parts.push(acc.state(EmitTo::All).unwrap());
        }
        let mut total = Counts::default();
        for state in parts {
            total.merge_batch(&state, &[0, 1], 2).unwrap();
        }
        let out = total.evaluate(EmitTo::All).unwrap();
        let lists = out.as_list::<i32>();
        (0..2).map(|g| lists.value(g).as_primitive::<Int64Type>().values().to_vec()).collect()
    }

    fn brute(rows: &[(usize, Vec<usize>)], span: usize, days: usize) -> Vec<Vec<i64>> {
        (0..2)
            .map(|g| {
                (0..span)
                    .map(|j| {
                        let n = rows.iter().filter(|(rg, d)| *rg == g && d.iter().any(|&b| b <= j && j < b + days)).count();
                        i64::try_from(n).unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn window_counts_match_a_brute_force_count() {
        // A small deterministic generator: the sets, spans and windows vary.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % u64::try_from(m).unwrap()).unwrap()
        };
        for _ in 0..300 {
            let span = 1 + next(200);
            let days = 1 + next(40);
            let rows: Vec<(usize, Vec<usize>)> = (0..1 + next(12)).map(|_| (next(2), (0..next(8)).map(|_| next(span)).collect())).collect();
            assert_eq!(counts(&rows, span, days), brute(&rows, span, days), "span {span}, days {days}, rows {rows:?}");
        }
    }

    #[test]
    fn day_bits_sets_each_offset_and_refuses_one_outside_the_span() {
        let mut acc = BitSets::default();
        let values: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![Some(0), Some(63), Some(64), None, Some(70)])), Arc::new(Int64Array::from(vec![71; 5]))];
        acc.update_batch(&values, &[0, 0, 1, 1, 0], None, 2).unwrap();
        let out = acc.evaluate(EmitTo::All).unwrap();
        let sets = out.as_binary::<i32>();
        assert_eq!(sets.value(0), set_of(&[0, 63, 70], 71).as_slice());
        assert_eq!(sets.value(1), set_of(&[64], 71).as_slice());
        let bad: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![71])), Arc::new(Int64Array::from(vec![71]))];
        let err = BitSets::default().update_batch(&bad, &[0], None, 1).unwrap_err().to_string();
        assert!(err.contains("offset 71 is outside 0 to 70"), "{err}");
        let negative: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![-1])), Arc::new(Int64Array::from(vec![71]))];
        assert!(BitSets::default().update_batch(&negative, &[0], None, 1).is_err());
    }

    #[test]
    fn day_bits_of_sets_is_their_union_and_refuses_sets_of_another_span() {
        let mut acc = BitSets::default();
        let sets: BinaryArray = vec![Some(set_of(&[1, 70], 71)), None, Some(set_of(&[2], 71)), Some(set_of(&[64], 71))].into_iter().collect();
        let values: Vec<ArrayRef> = vec![Arc::new(sets), Arc::new(Int64Array::from(vec![71; 4]))];
        acc.update_batch(&values, &[0, 0, 0, 1], None, 2).unwrap();
        let out = acc.evaluate(EmitTo::All).unwrap();
        let out = out.as_binary::<i32>();
        assert_eq!(out.value(0), set_of(&[1, 2, 70], 71).as_slice());
        assert_eq!(out.value(1), set_of(&[64], 71).as_slice());
        // A set of 130 days is three words, not the two a span of 71 needs.
        let other: BinaryArray = vec![Some(set_of(&[0], 130))].into_iter().collect();
        let err = BitSets::default().update_batch(&[Arc::new(other) as ArrayRef, Arc::new(Int64Array::from(vec![71]))], &[0], None, 1).unwrap_err().to_string();
        assert!(err.contains("a set of 24 bytes where span 71 needs 16"), "{err}");
        // Two words, but with day 100 set: past a span of 71.
        let past: BinaryArray = vec![Some(set_of(&[100], 128))].into_iter().collect();
        let err = BitSets::default().update_batch(&[Arc::new(past) as ArrayRef, Arc::new(Int64Array::from(vec![71]))], &[0], None, 1).unwrap_err().to_string();
        assert!(err.contains("outside its span 71"), "{err}");
    }
}
