//! Runs every `tests/slt/*.slt` file against a fresh engine on the fixture lake.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use vitals::engine::Engine;

use crate::common;

struct Db {
    engine: Engine,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DbError {}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => DefaultColumnType::FloatingPoint,
        t if t.is_integer() => DefaultColumnType::Integer,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DefaultColumnType::Text,
        DataType::Dictionary(_, v) => column_type(v),
        _ => DefaultColumnType::Any,
    }
}

/// Floats to at most four decimals, without trailing zeros, so expected
/// values read as a person would write them.
fn cell(col: &dyn Array, fmt: &ArrayFormatter<'_>, row: usize) -> String {
    if col.is_null(row) {
        return "NULL".into();
    }
    let float = match col.data_type() {
        DataType::Float64 => Some(col.as_primitive::<arrow::datatypes::Float64Type>().value(row)),
        DataType::Float32 => Some(col.as_primitive::<arrow::datatypes::Float32Type>().value(row) as f64),
        _ => None,
    };
    match float {
        Some(v) => {
            let r = (v * 1e4).round() / 1e4;
            if r == 0.0 { "0".into() } else { format!("{r}") }
        }
        None => {
            let s = fmt.value(row).to_string();
            if s.is_empty() { "(empty)".into() } else { s }
        }
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let df = self.engine.ctx().sql(sql).await.map_err(|e| DbError(e.to_string()))?;
        let schema = df.schema().as_arrow().clone();
        let batches: Vec<RecordBatch> = df.collect().await.map_err(|e| DbError(e.to_string()))?;
        let types = schema.fields().iter().map(|f| column_type(f.data_type())).collect::<Vec<_>>();
        if types.is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default();
        let mut rows = Vec::new();
        for b in &batches {
            let fmts: Vec<ArrayFormatter<'_>> =
                b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>().map_err(|e| DbError(e.to_string()))?;
            for r in 0..b.num_rows() {
                rows.push(b.columns().iter().zip(&fmts).map(|(c, f)| cell(c.as_ref(), f, r)).collect());
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "vitals"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let (_dir, lake) = common::fixture_lake().await;
    let mut files: Vec<_> = std::fs::read_dir(common::repo().join("tests/slt"))
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in &files {
        let mut args = vitals::engine::EngineArgs::new(lake.clone());
        args.config = vitals::config::Config::load(&common::repo().join("data/fixture/vitals.toml")).expect("fixture config");
        let engine = vitals::engine::Engine::open(args).await.expect("engine");
        let mut slot = Some(Db { engine });
        let mut runner = sqllogictest::Runner::new(move || {
            let db = slot.take();
            async move { db.ok_or_else(|| DbError("one connection per file".into())) }
        });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} files failed:\n{}", failures.len(), files.len(), failures.join("\n\n"));
}
