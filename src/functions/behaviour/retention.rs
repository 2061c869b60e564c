//! retention(cond1, ..., condN): over a group, [any c1, any c1 and any c2,
//! ..., any c1 and any cN] as 0/1 values, as ClickHouse's retention. The
//! state is one u32 of conditions seen per group.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, UInt32Array, UInt8Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, UInt32Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility};

use super::buffer::{condition_masks, truthy};
use super::MAX_CONDITIONS;

/// The call's shape and what it gives.
pub const DOC: (&str, &str) = ("retention(cond1, ..., condN)", "[c1, c1 and c2, ..., c1 and cN] as 0/1 over the group (ClickHouse retention)");

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Retention {
    signature: Signature,
    doc: Documentation,
}

impl Retention {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), doc: super::documentation(DOC.0, DOC.1) }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self::new()
    }
}

fn check(types: &[DataType]) -> Result<()> {
    if types.len() < 2 || types.len() > MAX_CONDITIONS {
        return plan_err!("retention takes 2 to {MAX_CONDITIONS} conditions, got {}", types.len());
    }
    for (i, t) in types.iter().enumerate() {
        if !super::is_condition(t) {
            return plan_err!("retention: condition {} must be boolean or an integer (0 is false), got {t}", i + 1);
        }
    }
    Ok(())
}

fn item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::UInt8, false))
}

/// The result lists for groups' masks.
fn lists(masks: &[u32], n: usize) -> ArrayRef {
    let mut values = Vec::with_capacity(masks.len() * n);
    for &m in masks {
        let first = m & 1;
        values.push(first as u8);
        for i in 1..n {
            values.push((first & (m >> i) & 1) as u8);
        }
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(n, masks.len()));
    Arc::new(ListArray::new(item(), offsets, Arc::new(UInt8Array::from(values)), None))
}

/// Calls `f(row, mask)` for rows meeting a condition; a row with a NULL
/// condition is skipped, as ClickHouse does.
fn for_each_mask(values: &[ArrayRef], filter: Option<&BooleanArray>, mut f: impl FnMut(usize, u32)) -> Result<()> {
    let (masks, valid) = condition_masks(values)?;
    let keep = filter.map(truthy);
    for (i, m) in masks.into_iter().enumerate() {
        if m != 0 && valid.as_ref().is_none_or(|v| v.is_valid(i)) && keep.as_ref().is_none_or(|k| k.value(i)) {
            f(i, m);
        }
    }
    Ok(())
}

impl AggregateUDFImpl for Retention {
    fn name(&self) -> &str {
        "retention"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check(arg_types)?;
        Ok(vec![DataType::Boolean; arg_types.len()])
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check(arg_types)?;
        Ok(DataType::List(item()))
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}_mask", args.name), DataType::UInt32, false))])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One { mask: 0, n: args.exprs.len() }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Many { masks: Vec::new(), n: args.exprs.len() }))
    }
}

struct Many {
    masks: Vec<u32>,
    n: usize,
}

impl Many {
    fn take(&mut self, emit_to: EmitTo) -> Vec<u32> {
        emit_to.take_needed(&mut self.masks)
    }
}

impl GroupsAccumulator for Many {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.masks.resize(total, 0);
        let masks = &mut self.masks;
        for_each_mask(values, filter, |row, m| masks[groups[row]] |= m)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> Result<()> {
        self.masks.resize(total, 0);
        let states = values[0].as_primitive::<UInt32Type>();
        for (row, &g) in groups.iter().enumerate() {
            if states.is_valid(row) {
                self.masks[g] |= states.value(row);
            }
        }
        Ok(())
    }
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut masks = vec![0u32; values.first().map_or(0, |v| v.len())];
        for_each_mask(values, filter, |row, m| masks[row] = m)?;
        Ok(vec![Arc::new(UInt32Array::from(masks))])
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let masks = self.take(emit_to);
        Ok(lists(&masks, self.n))
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(UInt32Array::from(self.take(emit_to)))])
    }
    fn size(&self) -> usize {
        self.masks.capacity() * 4 + std::mem::size_of::<Self>()
    }
}

#[derive(Debug)]
struct One {
    mask: u32,
    n: usize,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let mask = &mut self.mask;
        for_each_mask(values, None, |_, m| *mask |= m)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let s = states[0].as_primitive::<UInt32Type>();
        self.mask |= s.iter().flatten().fold(0, |a, b| a | b);
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&lists(&[self.mask], self.n), 0)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::UInt32(Some(self.mask))])
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
