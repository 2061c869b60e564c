//! The columnar state shared by the event-sequence aggregates: one flat
//! buffer of (group, timestamp, condition mask) for every group, sorted per
//! group only when a result is asked for. 16 bytes per stored event and no
//! per-group allocation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, UInt32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt32Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::EmitTo;

/// One stored event: its timestamp and the conditions it met (bit i = condition i+1).
pub type Event = (i64, u32);

/// Where the timestamp and the conditions sit among an aggregate's arguments.
#[derive(Debug, Clone)]
pub struct Layout {
    pub ts: usize,
    pub conds: std::ops::Range<usize>,
    /// Keep rows that meet no condition (window_funnel's strict_order needs them).
    pub keep_empty: bool,
}

impl Layout {
    /// Calls `f(row, event)` for each row that counts: not filtered out and
    /// with no NULL argument (as ClickHouse does, a row with a NULL timestamp
    /// or condition is skipped). `event` is None for a row that meets no
    /// condition and need not be stored (unless `keep_empty`).
    pub fn for_each(&self, values: &[ArrayRef], filter: Option<&BooleanArray>, mut f: impl FnMut(usize, Option<Event>)) -> Result<()> {
        let ts = timestamps(&values[self.ts])?;
        let (masks, valid) = condition_masks(&values[self.conds.clone()])?;
        let keep = filter.map(truthy);
        for (i, mask) in masks.into_iter().enumerate() {
            if ts.is_null(i) || valid.as_ref().is_some_and(|v| !v.is_valid(i)) || keep.as_ref().is_some_and(|k| !k.value(i)) {
                continue;
            }
            f(i, (mask != 0 || self.keep_empty).then(|| (ts.value(i), mask)));
        }
        Ok(())
    }
}

/// Each row's conditions as a mask (bit i = condition i+1), and where any
/// condition is NULL.
pub fn condition_masks(conds: &[ArrayRef]) -> Result<(Vec<u32>, Option<NullBuffer>)> {
    let n = conds.first().map_or(0, |c| c.len());
    let mut masks = vec![0u32; n];
    let mut valid: Option<NullBuffer> = None;
    for (bit, c) in conds.iter().enumerate() {
        let Some(cond) = c.as_boolean_opt() else {
            return exec_err!("condition {} is {}, not boolean", bit + 1, c.data_type());
        };
        for i in cond.values().set_indices() {
            masks[i] |= 1 << bit;
        }
        valid = NullBuffer::union(valid.as_ref(), cond.nulls());
    }
    Ok((masks, valid))
}

/// True where a boolean array is non-null and true.
pub fn truthy(b: &BooleanArray) -> BooleanBuffer {
    match b.nulls() {
        Some(n) => b.values() & n.inner(),
        None => b.values().clone(),
    }
}

/// A timestamp, date or integer column as raw i64 values in its own unit.
pub fn timestamps(a: &ArrayRef) -> Result<Int64Array> {
    let raw = match a.data_type() {
        DataType::Date32 => arrow::compute::cast(&arrow::compute::cast(a, &DataType::Int32)?, &DataType::Int64)?,
        _ => arrow::compute::cast(a, &DataType::Int64)?,
    };
    Ok(raw.as_primitive::<Int64Type>().clone())
}

/// The state fields: every stored event's timestamp and mask, as two lists,
/// and whether the group had a row without NULL arguments.
pub fn state_fields(name: &str) -> Vec<FieldRef> {
    let item = |t: DataType| Arc::new(Field::new_list_field(t, false));
    vec![
        Arc::new(Field::new(format!("{name}_ts"), DataType::List(item(DataType::Int64)), true)),
        Arc::new(Field::new(format!("{name}_mask"), DataType::List(item(DataType::UInt32)), true)),
        Arc::new(Field::new(format!("{name}_seen"), DataType::Boolean, true)),
    ]
}

/// Builds the state arrays from per-group event slices and seen flags.
pub fn state_arrays<'a>(groups: impl Iterator<Item = &'a [Event]>, seen: &[bool]) -> Vec<ArrayRef> {
    let mut offsets = vec![0i32];
    let mut ts = Vec::new();
    let mut masks = Vec::new();
    for g in groups {
        for &(t, m) in g {
            ts.push(t);
            masks.push(m);
        }
        offsets.push(ts.len() as i32);
    }
    let offsets = OffsetBuffer::new(offsets.into());
    let item = |t: DataType| Arc::new(Field::new_list_field(t, false));
    vec![
        Arc::new(ListArray::new(item(DataType::Int64), offsets.clone(), Arc::new(Int64Array::from(ts)), None)),
        Arc::new(ListArray::new(item(DataType::UInt32), offsets, Arc::new(UInt32Array::from(masks)), None)),
        Arc::new(BooleanArray::from(seen.to_vec())),
    ]
}

/// Reads states back: calls `f(state_row, None)` for a group that saw a row,
/// and `f(state_row, Some(event))` for each stored event.
pub fn for_each_state_event(values: &[ArrayRef], filter: Option<&BooleanArray>, mut f: impl FnMut(usize, Option<Event>)) -> Result<()> {
    let (Some(ts), Some(masks), Some(seen)) = (values[0].as_list_opt::<i32>(), values[1].as_list_opt::<i32>(), values[2].as_boolean_opt()) else {
        return exec_err!("event aggregate state must be two lists and a flag");
    };
    let keep = filter.map(truthy);
    let tv = ts.values().as_primitive::<Int64Type>();
    let mv = masks.values().as_primitive::<UInt32Type>();
    for row in 0..ts.len() {
        if ts.is_null(row) || keep.as_ref().is_some_and(|k| !k.value(row)) {
            continue;
        }
        if seen.is_valid(row) && seen.value(row) {
            f(row, None);
        }
        let (a, b) = (ts.value_offsets()[row] as usize, ts.value_offsets()[row + 1] as usize);
        let m0 = masks.value_offsets()[row] as usize;
        for k in a..b {
            f(row, Some((tv.value(k), mv.value(m0 + (k - a)))));
        }
    }
    Ok(())
}

/// Sorts one group's events by (timestamp, mask) unless they already are.
pub fn sort_events(events: &mut [Event]) {
    if !events.windows(2).all(|w| w[0] <= w[1]) {
        events.sort_unstable();
    }
}

/// The flat state of all groups.
#[derive(Debug, Default)]
pub struct EventBuffer {
    groups: Vec<u32>,
    ts: Vec<i64>,
    masks: Vec<u32>,
    num_groups: usize,
}

impl EventBuffer {
    pub fn push(&mut self, group: usize, ts: i64, mask: u32) {
        self.groups.push(group as u32);
        self.ts.push(ts);
        self.masks.push(mask);
    }

    pub fn set_num_groups(&mut self, n: usize) {
        self.num_groups = self.num_groups.max(n);
    }

    pub fn size(&self) -> usize {
        self.groups.capacity() * 4 + self.ts.capacity() * 8 + self.masks.capacity() * 4 + std::mem::size_of::<Self>()
    }

    /// Takes the groups `emit_to` names out of the buffer, each with its
    /// events grouped together (in arrival order), renumbering what stays.
    /// Returns the events and the offsets of each emitted group.
    pub fn take(&mut self, emit_to: EmitTo) -> (Vec<Event>, Vec<usize>) {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(n) => n.min(self.num_groups),
        };
        // A counting sort by group: O(events + groups).
        let mut offsets = vec![0usize; n + 1];
        for &g in &self.groups {
            if (g as usize) < n {
                offsets[g as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut out: Vec<Event> = vec![(0, 0); offsets[n]];
        let mut next = offsets.clone();
        let mut kept = 0;
        for i in 0..self.groups.len() {
            let g = self.groups[i] as usize;
            if g < n {
                out[next[g]] = (self.ts[i], self.masks[i]);
                next[g] += 1;
            } else {
                self.groups[kept] = (g - n) as u32;
                self.ts[kept] = self.ts[i];
                self.masks[kept] = self.masks[i];
                kept += 1;
            }
        }
        self.groups.truncate(kept);
        self.ts.truncate(kept);
        self.masks.truncate(kept);
        self.num_groups -= n;
        if self.num_groups == 0 {
            self.groups.shrink_to_fit();
            self.ts.shrink_to_fit();
            self.masks.shrink_to_fit();
        }
        (out, offsets)
    }
}
