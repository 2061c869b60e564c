//! Turns query results into aligned tables, CSV or JSON for the terminal.
//! Streams CSV and JSON batch by batch; a table is aligned, so it is bounded.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table as Grid};
use datafusion::error::Result;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// Output formats of `vitals sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// View string types become plain strings for writers that predate them;
/// with `flatten`, list, struct and map columns become their text (for CSV,
/// which has no nested values).
fn plain(batch: &RecordBatch, flatten: bool) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(f.data_type(), DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _)) {
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(cast(c, &DataType::Utf8)?);
        } else if flatten && is_nested(f.data_type()) {
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            let text: Vec<Option<String>> = (0..c.len()).map(|r| c.is_valid(r).then(|| nested_text(c.as_ref(), r)).transpose()).collect::<Result<_>>()?;
            cols.push(Arc::new(arrow::array::StringArray::from(text)));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Struct(_)
            | DataType::Map(_, _)
    )
}

/// One value as ClickHouse writes it in text formats: `[1,0,1]`, `['a','b']`,
/// tuples as `(1,'x')`, maps as `{'k':1}`, NULL inside a value as `NULL`.
pub fn nested_text(array: &dyn Array, row: usize) -> Result<String> {
    let mut out = String::new();
    write_value(array, row, &mut out)?;
    Ok(out)
}

fn write_value(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    if array.is_null(row) {
        out.push_str("NULL");
        return Ok(());
    }
    let items = |values: &dyn Array, range: std::ops::Range<usize>, out: &mut String| -> Result<()> {
        out.push('[');
        for (k, i) in range.enumerate() {
            if k > 0 {
                out.push(',');
            }
            write_value(values, i, out)?;
        }
        out.push(']');
        Ok(())
    };
    match array.data_type() {
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let (a, b) = (l.value_offsets()[row], l.value_offsets()[row + 1]);
            items(l.values().as_ref(), usize::try_from(a).unwrap_or(0)..usize::try_from(b).unwrap_or(0), out)
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            let (a, b) = (l.value_offsets()[row], l.value_offsets()[row + 1]);
            items(l.values().as_ref(), usize::try_from(a).unwrap_or(0)..usize::try_from(b).unwrap_or(0), out)
        }
        DataType::FixedSizeList(_, _) => {
            let l = array.as_fixed_size_list();
            let n = usize::try_from(l.value_length()).unwrap_or(0);
            items(l.values().as_ref(), row * n..(row + 1) * n, out)
        }
        DataType::Struct(_) => {
            let st = array.as_struct();
            out.push('(');
            for (k, c) in st.columns().iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_value(c.as_ref(), row, out)?;
            }
            out.push(')');
            Ok(())
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let (a, b) = (m.value_offsets()[row], m.value_offsets()[row + 1]);
            out.push('{');
            for (k, i) in (usize::try_from(a).unwrap_or(0)..usize::try_from(b).unwrap_or(0)).enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_value(m.keys().as_ref(), i, out)?;
                out.push(':');
                write_value(m.values().as_ref(), i, out)?;
            }
            out.push('}');
            Ok(())
        }
        DataType::ListView(_) | DataType::LargeListView(_) => {
            let as_list = cast(&array.slice(row, 1), &DataType::List(Arc::new(Field::new_list_field(list_item(array.data_type()), true))))?;
            write_value(as_list.as_ref(), 0, out)
        }
        t => {
            let text = ArrayFormatter::try_new(array, &FormatOptions::default())?.value(row).to_string();
            let quoted = t.is_temporal() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) | DataType::Binary | DataType::LargeBinary | DataType::BinaryView);
            if quoted {
                out.push('\'');
                for ch in text.chars() {
                    if ch == '\'' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('\'');
            } else {
                let _ = write!(out, "{text}");
            }
            Ok(())
        }
    }
}

fn list_item(t: &DataType) -> DataType {
    match t {
        DataType::ListView(f) | DataType::LargeListView(f) => f.data_type().clone(),
        other => other.clone(),
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

/// A cell as a person reads it: floats with two decimals, NULL as blank.
fn cell_text(col: &ArrayRef, fmt: &ArrayFormatter<'_>, row: usize) -> String {
    if col.is_null(row) {
        return String::new();
    }
    match col.data_type() {
        DataType::Float64 => format_float(col.as_primitive::<arrow::datatypes::Float64Type>().value(row)),
        DataType::Float32 => format_float(f64::from(col.as_primitive::<arrow::datatypes::Float32Type>().value(row))),
        t if is_nested(t) => nested_text(col.as_ref(), row).unwrap_or_else(|_| fmt.value(row).to_string()),
        _ => fmt.value(row).to_string(),
    }
}

pub fn format_float(v: f64) -> String {
    if v.is_finite() && v.abs() < 1e12 {
        format!("{v:.2}")
    } else {
        format!("{v}")
    }
}

/// Writes a stream in `format`; returns the number of rows.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    format: Format,
    max_rows: usize,
    out: &mut dyn Write,
) -> Result<usize> {
    let schema = stream.schema();
    match format {
        Format::Table => {
            let mut batches = Vec::new();
            let mut rows = 0usize;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                if rows - b.num_rows() < max_rows {
                    batches.push(b);
                }
            }
            write!(out, "{}", table(&schema, &batches, max_rows)?)?;
            if rows > max_rows {
                writeln!(out, "({rows} rows, the first {max_rows} shown; use --max-rows or --format csv for all)")?;
            } else {
                writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
            }
            Ok(rows)
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
            let mut rows = 0;
            let mut wrote = false;
            while let Some(b) = stream.next().await {
                let b = plain(&b?, true)?;
                rows += b.num_rows();
                writer.write(&b)?;
                wrote = true;
            }
            if !wrote {
                let empty = plain(&RecordBatch::new_empty(schema.clone()), true)?;
                writer.write(&empty)?;
            }
            Ok(rows)
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            let mut rows = 0;
            while let Some(b) = stream.next().await {
                let b = plain(&b?, false)?;
                rows += b.num_rows();
                writer.write(&b)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
            Ok(rows)
        }
    }
}

/// An aligned table of at most `max_rows` rows.
pub fn table(schema: &SchemaRef, batches: &[RecordBatch], max_rows: usize) -> Result<String> {
    let mut grid = Grid::new();
    grid.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    grid.set_header(schema.fields().iter().map(|f| Cell::new(f.name())));
    let options = FormatOptions::default().with_null("");
    let mut shown = 0;
    'outer: for b in batches {
        let formatters: Vec<ArrayFormatter<'_>> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<std::result::Result<_, _>>()?;
        for row in 0..b.num_rows() {
            if shown >= max_rows {
                break 'outer;
            }
            grid.add_row(b.columns().iter().zip(&formatters).map(|(c, f)| {
                let cell = Cell::new(cell_text(c, f, row));
                if is_numeric(c.data_type()) { cell.set_alignment(CellAlignment::Right) } else { cell }
            }));
            shown += 1;
        }
    }
    Ok(format!("{grid}\n"))
}
