//! Ingest: good input in three formats, bad input rejected whole or row by row,
//! duplicates dropped, and interrupted ingests that converge when run again.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::{self, lake_files, run, vitals};

const HEADER: &str = "event_id,event_time,org_id,user_id,event,session_id,module,page,duration_ms";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write input");
}

fn parquet_files(root: &Path) -> Vec<String> {
    lake_files(root).into_iter().filter(|f| f.ends_with(".parquet")).collect()
}

async fn count(lake: &vitals::lake::Lake, sql: &str) -> Vec<String> {
    common::rows(&common::engine(lake).await, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_partitioned_sorted_and_compressed() {
    let (dir, _lake) = common::fixture_lake().await;
    let files = parquet_files(dir.path());
    let event_files: Vec<_> = files.iter().filter(|f| f.starts_with("events/")).collect();
    // 26 events on 12 distinct days, one file per day for one ingest.
    assert_eq!(event_files.len(), 12, "{event_files:?}");
    assert!(event_files.iter().any(|f| f.starts_with("events/event_date=2024-01-02/vitals-")));
    let mut total = 0;
    for f in &event_files {
        let reader = SerializedFileReader::new(std::fs::File::open(dir.path().join(f)).expect("open")).expect("parquet");
        let meta = reader.metadata();
        let rg = meta.row_group(0);
        // user_id: zstd over dictionary keys; event_time: plain values, nothing to decompress or decode to skip.
        assert_eq!(rg.column(3).compression(), parquet::basic::Compression::ZSTD(Default::default()), "{f}");
        assert_eq!(rg.column(1).compression(), parquet::basic::Compression::UNCOMPRESSED, "{f}");
        assert!(rg.column(1).encodings().any(|e| e == parquet::basic::Encoding::PLAIN), "{f}");
        assert!(!rg.column(1).encodings().any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY), "{f}");
        assert!(rg.column(1).dictionary_page_offset().is_none(), "{f}");
        let sorting = rg.sorting_columns().expect("sorting columns recorded");
        let idx: Vec<i32> = sorting.iter().map(|s| s.column_idx).collect();
        assert_eq!(idx, vec![2, 3, 1], "sorted by org_id, user_id, event_time");
        assert!(rg.column(1).offset_index_offset().is_some(), "page index written");
        total += meta.file_metadata().num_rows();
        // Rows inside the file really are in that order.
        let file = std::fs::File::open(dir.path().join(f)).expect("open");
        let batches: Vec<RecordBatch> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read");
        let mut keys = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let k: Vec<String> =
                    [2, 3, 1].iter().map(|c| arrow::util::display::array_value_to_string(b.column(*c), r).expect("cell")).collect();
                keys.push(k);
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{f} is not sorted");
    }
    assert_eq!(total, 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_reject_the_whole_ingest_and_change_nothing() {
    let (dir, lake) = common::fixture_lake().await;
    let before_files = lake_files(dir.path());
    let before = count(&lake, "SELECT count(*), sum(duration_ms) FROM events").await;
    let input = tempfile::tempdir().expect("tmp");
    let cases = [
        ("bad_time.csv", format!("{HEADER}\nn1,2024-01-20T10:00:00Z,acme,a1,login,s,,,\nn2,2024-01-21T10:00:00Z,acme,a1,login,s,,,\nn3,2024-01-3x,acme,a1,login,s,,,\n"), "line 4", "event_time"),
        ("empty_user.csv", format!("{HEADER}\nn1,2024-01-20T10:00:00Z,acme,,login,s,,,\n"), "line 2", "user_id"),
        ("bad_int.csv", format!("{HEADER}\nn1,2024-01-20T10:00:00Z,acme,a1,page_view,s,,,12s\n"), "line 2", "duration_ms"),
        ("short_row.csv", format!("{HEADER}\nn1,2024-01-20T10:00:00Z,acme\n"), "line 2", "3 fields"),
        ("no_org.csv", "event_time,user_id,event\n2024-01-20T10:00:00Z,a1,login\n".to_string(), "org_id", "missing from the header"),
        ("typo.csv", "event_time,org_id,userid,event\n2024-01-20T10:00:00Z,acme,a1,login\n".to_string(), "unknown column 'userid'", "user_id"),
    ];
    for (name, text, place, column) in cases {
        let path = input.path().join(name);
        write(&path, &text);
        let (code, _out, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg(&path));
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(name), "{name}: the message names the file: {err}");
        assert!(err.contains(place), "{name}: names {place}: {err}");
        assert!(err.contains(column), "{name}: names {column}: {err}");
        assert_eq!(lake_files(dir.path()), before_files, "{name}: the lake is unchanged");
    }
    assert_eq!(count(&lake, "SELECT count(*), sum(duration_ms) FROM events").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_past_its_column_is_refused_in_every_format() {
    let (dir, lake) = common::fixture_lake().await;
    let before = lake_files(dir.path());
    let input = tempfile::tempdir().expect("tmp");
    // seats is an Int32: 3000000000 does not fit, and must not wrap to a negative number.
    let cases = [
        ("big.jsonl", "{\"org_id\":\"acme\",\"seats\":12}\n{\"org_id\":\"zeta\",\"seats\":3000000000}\n", "line 2"),
        ("big.csv", "org_id,seats\nacme,12\nzeta,3000000000\n", "line 3"),
        ("neg.jsonl", "{\"org_id\":\"zeta\",\"seats\":-2147483649}\n", "line 1"),
    ];
    for (name, text, place) in cases {
        let path = input.path().join(name);
        write(&path, text);
        let (code, _, err) = run(vitals().args(["ingest", "--table", "accounts", "--lake"]).arg(dir.path()).arg(&path));
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(name) && err.contains(place) && err.contains("seats") && err.contains("2147483647"), "{name}: {err}");
        assert_eq!(lake_files(dir.path()), before, "{name}: the lake is unchanged");
    }
    // The largest value that fits is taken as it is.
    let path = input.path().join("max.jsonl");
    write(&path, "{\"org_id\":\"zeta\",\"seats\":2147483647}\n");
    let (code, _, err) = run(vitals().args(["ingest", "--table", "accounts", "--lake"]).arg(dir.path()).arg(&path));
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&lake, "SELECT seats FROM accounts WHERE org_id = 'zeta'").await, vec!["2147483647"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_file_takes_the_bad_rows_and_the_good_ones_land() {
    let (dir, lake) = common::fixture_lake().await;
    let input = tempfile::tempdir().expect("tmp");
    let path = input.path().join("mixed.csv");
    write(&path, &format!("{HEADER}\nm1,2024-01-20T10:00:00Z,acme,a1,login,s,,,\nm2,not-a-time,acme,a1,login,s,,,\nm3,2024-01-21T10:00:00Z,beta,b1,page_view,s,,,1000\n"));
    let rejects = input.path().join("rejects.jsonl");
    let (code, out, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg("--reject-file").arg(&rejects).arg(&path));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 rows read, 2 written, 1 rejected"), "{out}");
    let text = std::fs::read_to_string(&rejects).expect("reject file");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_id"], "m2");
    assert_eq!(lines[0]["_place"], "line 3");
    assert_eq!(lines[0]["_column"], "event_time");
    assert!(lines[0]["_error"].as_str().unwrap_or("").contains("not-a-time"));
    assert_eq!(count(&lake, "SELECT event_id FROM events WHERE event_id LIKE 'm%' ORDER BY 1").await, vec!["m1", "m3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_are_dropped_by_id_or_by_content() {
    let (dir, lake) = common::fixture_lake().await;
    let fixture = common::repo().join("data/fixture/events.csv");
    let (code, out, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg(&fixture));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("26 rows read, 0 written, 0 rejected, 26 duplicates dropped, 0 files"), "{out}");
    // Newline-delimited JSON without event ids: the same content is the same event.
    let input = tempfile::tempdir().expect("tmp");
    let path = input.path().join("noid.jsonl");
    write(
        &path,
        "{\"event_time\":\"2024-01-20T10:00:00Z\",\"org_id\":\"acme\",\"user_id\":\"a1\",\"event\":\"login\"}\n\
         {\"event_time\":1705744860,\"org_id\":\"acme\",\"user_id\":\"a1\",\"event\":\"page_view\",\"duration_ms\":5000}\n\
         {\"event_time\":1705744860,\"org_id\":\"acme\",\"user_id\":\"a1\",\"event\":\"page_view\",\"duration_ms\":5000}\n",
    );
    for (round, expect) in [(1, "3 rows read, 2 written, 0 rejected, 1 duplicates dropped"), (2, "3 rows read, 0 written, 0 rejected, 3 duplicates dropped")] {
        let (code, out, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg(&path));
        assert_eq!(code, 0, "round {round}: {err}");
        assert!(out.contains(expect), "round {round}: {out}");
    }
    // 1705744860 is 2024-01-20T10:01:00Z: epoch seconds are read as such.
    assert_eq!(
        count(&lake, "SELECT event, CAST(event_time AS VARCHAR) AS t, duration_ms FROM events WHERE event_date = '2024-01-20' ORDER BY event_time").await,
        vec!["login|2024-01-20T10:00:00Z|", "page_view|2024-01-20T10:01:00Z|5000"]
    );
    assert_eq!(count(&lake, "SELECT count(*) - count(DISTINCT event_id) FROM events").await, vec!["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_an_uncommitted_transaction_stay_invisible_until_vacuumed() {
    use vitals::lake::log::LogState;
    use vitals::lake::vacuum::{vacuum, Retention};
    use vitals::lake::writer::{sort_batch, Transaction};
    let (dir, lake) = common::fixture_lake().await;
    let total = "SELECT count(*), count(DISTINCT event_id) FROM events";
    assert_eq!(count(&lake, total).await, vec!["26|26"]);
    // A transaction that wrote its files (events on three days, a new accounts
    // file replacing the old one) and was never committed, as after kill -9.
    let before = LogState::load(&lake).await.expect("log");
    let engine = common::engine(&lake).await;
    let events = common::query(&engine, "SELECT * EXCLUDE (event_date) FROM events").await;
    let mut tx = Transaction::new(&lake, before.version, "test");
    for b in &events {
        let b = arrow::record_batch::RecordBatch::try_new(vitals::lake::Table::Events.schema(), cast_all(b)).expect("batch");
        tx.stage(vitals::lake::Table::Events, chrono::NaiveDate::from_ymd_opt(2024, 1, 25), &[sort_batch(vitals::lake::Table::Events, &b).expect("sort")]).await.expect("stage");
    }
    let staged: Vec<String> = tx.added().iter().map(|a| a.path.clone()).collect();
    assert!(!staged.is_empty());
    drop(tx);
    for f in &staged {
        assert!(dir.path().join(f).is_file(), "{f} was written");
    }
    assert_eq!(count(&lake, total).await, vec!["26|26"], "written but not committed: not counted");
    // An ingest after the crash commits normally and counts once.
    let input = tempfile::tempdir().expect("tmp");
    let path = input.path().join("three_days.csv");
    let mut text = String::from(HEADER);
    for i in 0..30 {
        text.push_str(&format!("\nx{i},2024-01-2{}T10:{:02}:00Z,acme,a{},login,s{i},,,", i % 3, i, 1 + i % 3));
    }
    write(&path, &text);
    for _ in 0..2 {
        let (code, _, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg(&path));
        assert_eq!(code, 0, "{err}");
        assert_eq!(count(&lake, total).await, vec!["56|56"]);
    }
    // The crashed transaction's files go at the first vacuum past their retention.
    let kept = vacuum(&lake, Retention::default()).await.expect("vacuum");
    assert_eq!(kept.uncommitted_deleted, 0, "a day has not passed");
    let now = std::time::Duration::ZERO;
    let swept = vacuum(&lake, Retention { removed: now, uncommitted: now }).await.expect("vacuum");
    assert_eq!(swept.uncommitted_deleted, staged.len());
    for f in &staged {
        assert!(!dir.path().join(f).exists(), "{f} deleted");
    }
    assert_eq!(count(&lake, total).await, vec!["56|56"]);
}

/// A batch read back from SQL in the declared types (views as plain strings).
fn cast_all(b: &arrow::record_batch::RecordBatch) -> Vec<arrow::array::ArrayRef> {
    let schema = vitals::lake::Table::Events.schema();
    schema.fields().iter().map(|f| arrow::compute::cast(b.column_by_name(f.name()).expect("column"), f.data_type()).expect("cast")).collect()
}

/// A file another tool wrote: nanosecond timestamps without a zone, Int32
/// durations, no optional columns.
fn foreign_file(path: &Path, time_type: DataType, times: Vec<i64>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_time", time_type.clone(), false),
        Field::new("org_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("duration_ms", DataType::Int32, true),
    ]));
    let n = times.len();
    let time_col: arrow::array::ArrayRef = match time_type {
        DataType::Timestamp(TimeUnit::Nanosecond, None) => Arc::new(TimestampNanosecondArray::from(times)),
        _ => Arc::new(StringArray::from(times.iter().map(|t| t.to_string()).collect::<Vec<_>>())),
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            time_col,
            Arc::new(StringArray::from(vec!["acme"; n])),
            Arc::new(StringArray::from(vec!["a9"; n])),
            Arc::new(StringArray::from(vec!["page_view"; n])),
            Arc::new(Int32Array::from(vec![Some(1500); n])),
        ],
    )
    .expect("batch");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).expect("create"), schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_from_other_writers_are_read_through_the_contract() {
    let (dir, lake) = common::fixture_lake().await;
    // 2024-01-20T10:00:00.000000001Z and +1 s, as naive nanoseconds.
    let t0 = 1_705_744_800_000_000_001i64;
    let path = dir.path().join("events/event_date=2024-01-20/other-tool.parquet");
    foreign_file(&path, DataType::Timestamp(TimeUnit::Nanosecond, None), vec![t0, t0 + 1_000_000_000]);
    let got = count(&lake, "SELECT CAST(event_time AS VARCHAR) AS t, duration_ms, event_id IS NULL, event_date FROM events WHERE user_id = 'a9' ORDER BY event_time").await;
    assert_eq!(got, vec!["2024-01-20T10:00:00Z|1500|true|2024-01-20", "2024-01-20T10:00:01Z|1500|true|2024-01-20"]);
    // The same file ingested goes through the writer and keeps the same values.
    let (code, _, err) = run(vitals().args(["ingest", "--lake"]).arg(dir.path()).arg(&path));
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_file_is_named_with_its_column() {
    let (dir, lake) = common::fixture_lake().await;
    let path = dir.path().join("events/event_date=2024-01-21/broken.parquet");
    foreign_file(&path, DataType::Utf8, vec![1, 2]);
    let err = vitals::engine::Engine::open(vitals::engine::EngineArgs::new(lake.clone())).await.err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("events/event_date=2024-01-21/broken.parquet"), "{msg}");
    assert!(msg.contains("event_time"), "{msg}");
    assert!(!msg.contains(dir.path().to_str().expect("utf-8")), "no absolute path leaks: {msg}");
}
