//! Shared helpers: the fixture lake, a query runner, the CLI binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::RecordBatch;
use vitals::engine::{Engine, EngineArgs};
use vitals::lake::ingest::{ingest, IngestArgs};
use vitals::lake::{Lake, Table};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh lake holding `data/fixture/*.csv`.
pub async fn fixture_lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::open(dir.path().to_str().expect("utf-8 path"), true).expect("open lake");
    for t in [Table::Accounts, Table::Users, Table::Events, Table::Interventions, Table::Subscriptions] {
        let file = repo().join("data/fixture").join(format!("{}.csv", t.name()));
        let args = IngestArgs { table: t, files: vec![file], format: None, reject_file: None, progress: false };
        ingest(&lake, args).await.expect("fixture ingest");
    }
    (dir, lake)
}

pub async fn engine(lake: &Lake) -> Engine {
    Engine::open(EngineArgs::new(lake.clone())).await.expect("engine")
}

pub async fn query(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    engine.ctx().sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A whole result as text, one line a row, for comparisons.
pub async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let batches = query(engine, sql).await;
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, r).unwrap_or_default())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// The committed files of a lake folder, relative and sorted.
pub fn lake_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).expect("prefix").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The `vitals` binary built for these tests.
pub fn vitals() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vitals"));
    c.env_remove("VITALS_FAILPOINT");
    c
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run vitals");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
