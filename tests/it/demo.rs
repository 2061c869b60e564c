//! The demo lake: deterministic for a seed, and account_usage on it agrees
//! with a plain computation over the raw events.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray};
use chrono::{Duration, NaiveDate};
use vitals::lake::demo::{generate, DemoArgs};
use vitals::lake::Lake;

use crate::common;

fn small(seed: u64) -> DemoArgs {
    DemoArgs { accounts: 12, days: 35, seed, ..DemoArgs::default() }
}

async fn demo_lake(args: &DemoArgs) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("tmp");
    let lake = Lake::open(dir.path().to_str().expect("utf-8"), true).expect("lake");
    generate(&lake, args).await.expect("demo");
    (dir, lake)
}

const FINGERPRINT: &str = "SELECT event_date, count(*), count(DISTINCT user_id), sum(duration_ms), count(DISTINCT session_id), min(event_id) \
                           FROM events GROUP BY event_date ORDER BY event_date";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_lake() {
    let (_a, lake_a) = demo_lake(&small(7)).await;
    let (_b, lake_b) = demo_lake(&small(7)).await;
    let (_c, lake_c) = demo_lake(&small(8)).await;
    let fa = common::rows(&common::engine(&lake_a).await, FINGERPRINT).await;
    assert_eq!(fa.len(), 35, "one partition per day");
    assert_eq!(fa, common::rows(&common::engine(&lake_b).await, FINGERPRINT).await);
    assert_ne!(fa, common::rows(&common::engine(&lake_c).await, FINGERPRINT).await);
    // A second run refuses to overwrite without --force.
    assert!(generate(&lake_a, &small(7)).await.is_err());
}

#[derive(Default)]
struct Period {
    login_users: HashSet<String>,
    visits: HashSet<String>,
    page_views: i64,
    duration_ms: i64,
}

fn change(cur: f64, prev: f64) -> Option<f64> {
    (prev != 0.0).then(|| 100.0 * (cur - prev) / prev)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_usage_agrees_with_a_plain_computation() {
    let args = DemoArgs { accounts: 25, days: 40, seed: 3, ..DemoArgs::default() };
    let (_d, lake) = demo_lake(&args).await;
    let engine = common::engine(&lake).await;
    let as_of = args.end_date - Duration::days(3);
    let days = 7;
    let cur_start = as_of - Duration::days(days - 1);
    let prev_start = as_of - Duration::days(2 * days - 1);
    // Raw events, aggregated here with plain loops.
    let raw = common::query(&engine, "SELECT org_id, user_id, arrow_cast(event, 'Utf8View') AS event, session_id, event_date, duration_ms FROM events").await;
    let mut per: BTreeMap<(String, bool), Period> = BTreeMap::new();
    let epoch = NaiveDate::default();
    for b in &raw {
        let (org, user, event, session) =
            (b.column(0).as_string_view(), b.column(1).as_string_view(), b.column(2).as_string_view(), b.column(3).as_string_view());
        let day = b.column(4).as_primitive::<arrow::datatypes::Date32Type>();
        let dur = b.column(5).as_primitive::<arrow::datatypes::Int64Type>();
        for r in 0..b.num_rows() {
            let d = epoch + Duration::days(day.value(r) as i64);
            if d < prev_start || d > as_of {
                continue;
            }
            let p = per.entry((org.value(r).to_string(), d >= cur_start)).or_default();
            if event.value(r) == "login" {
                p.login_users.insert(user.value(r).to_string());
            }
            if session.is_valid(r) {
                p.visits.insert(session.value(r).to_string());
            }
            if event.value(r) == "page_view" {
                p.page_views += 1;
            }
            if dur.is_valid(r) {
                p.duration_ms += dur.value(r);
            }
        }
    }
    let got = common::query(
        &engine,
        &format!("SELECT org_id, login_users, login_users_change_pct, visits, visits_change_pct, page_views, page_views_change_pct, duration_min, duration_min_change_pct, pages_per_visit_change_pct FROM account_usage('{as_of}', {days})"),
    )
    .await;
    let mut checked = 0;
    let empty = Period::default();
    for b in &got {
        for r in 0..b.num_rows() {
            let org = b.column(0).as_string_view().value(r).to_string();
            let cur = per.get(&(org.clone(), true)).unwrap_or(&empty);
            let prev = per.get(&(org.clone(), false)).unwrap_or(&empty);
            let int = |c: usize| b.column(c).as_primitive::<arrow::datatypes::Int64Type>().value(r) as f64;
            let float = |c: usize| {
                let a = b.column(c).as_primitive::<arrow::datatypes::Float64Type>();
                a.is_valid(r).then(|| a.value(r))
            };
            let (lu, lp) = (cur.login_users.len() as f64, prev.login_users.len() as f64);
            let (vu, vp) = (cur.visits.len() as f64, prev.visits.len() as f64);
            let (pu, pp) = (cur.page_views as f64, prev.page_views as f64);
            let (du, dp) = (cur.duration_ms as f64 / 60000.0, prev.duration_ms as f64 / 60000.0);
            assert_eq!(int(1), lu, "{org} login users");
            assert!(close(float(2), change(lu, lp)), "{org} login change {:?} vs {:?}", float(2), change(lu, lp));
            assert_eq!(int(3), vu, "{org} visits");
            assert!(close(float(4), change(vu, vp)), "{org} visits change");
            assert_eq!(int(5), pu, "{org} page views");
            assert!(close(float(6), change(pu, pp)), "{org} page views change");
            assert!(close(float(7), Some(du)), "{org} minutes");
            assert!(close(float(8), change(du, dp)), "{org} minutes change");
            let ppv = |p: f64, v: f64| (v != 0.0).then(|| p / v);
            let want = match (ppv(pu, vu), ppv(pp, vp)) {
                (Some(c), Some(p)) => change(c, p),
                _ => None,
            };
            assert!(close(float(9), want), "{org} pages per visit change");
            checked += 1;
        }
    }
    assert_eq!(checked, 25, "every account has a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planted_broad_declines_lead_the_account_usage_drops() {
    let args = DemoArgs { accounts: 60, days: 42, seed: 11, ..DemoArgs::default() };
    let (_d, lake) = demo_lake(&args).await;
    let planted = vitals::lake::demo::planted(&args).expect("planted");
    assert!(planted.declining.len() >= 3);
    let engine = common::engine(&lake).await;
    let worst = common::rows(
        &engine,
        &format!(
            // Accounts with fewer than five active users swing by chance; a CSM ranks the rest.
            "SELECT org_id FROM account_usage(NULL, 14) WHERE is_paid AND login_users_prev >= 5 ORDER BY visits_change_pct ASC NULLS LAST LIMIT {}",
            planted.declining.len()
        ),
    )
    .await;
    // Broad declines are the steepest visit drops; a concentrated one (key users
    // gone, the others slower) may drop less than an account's ordinary swing.
    for id in planted.declining.iter().filter(|d| !planted.concentrated.contains(d)) {
        assert!(worst.contains(id), "{id} is among the {} steepest drops {worst:?}", planted.declining.len());
    }
}

/// One column of a query's rows as text.
async fn column(engine: &vitals::engine::Engine, sql: &str) -> Vec<Vec<String>> {
    let batches = common::query(engine, sql).await;
    let mut rows = Vec::new();
    for b in &batches {
        let cols: Vec<_> = b.columns().iter().map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("cast")).collect();
        for r in 0..b.num_rows() {
            rows.push(cols.iter().map(|c| if c.is_null(r) { "NULL".into() } else { c.as_string::<i32>().value(r).to_string() }).collect());
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planted_behaviour_shows_in_the_reports() {
    let args = DemoArgs::default();
    let (_d, lake) = demo_lake(&args).await;
    let planted = vitals::lake::demo::planted(&args).expect("planted");
    let engine = common::engine(&lake).await;

    // The planted declines are the top of declining_accounts, each with its pattern.
    let n = planted.declining.len();
    let top = column(&engine, &format!("SELECT org_id, pattern FROM declining_accounts(1, {n}, {}) ORDER BY rank", planted.decline_days)).await;
    let mut ids: Vec<String> = top.iter().map(|r| r[0].clone()).collect();
    ids.sort();
    assert_eq!(ids, planted.declining, "declining_accounts' top {n} are the planted accounts");
    for r in &top {
        let want = if planted.concentrated.contains(&r[0]) { "concentrated" } else { "broad" };
        assert_eq!(r[1], want, "pattern of {}", r[0]);
    }

    // magic_number ranks the planted event and count first.
    let best = column(&engine, "SELECT event, n, label FROM magic_number() WHERE section = 'best' ORDER BY phi DESC NULLS LAST LIMIT 1").await;
    assert_eq!(best[0][0], planted.magic_event);
    assert_eq!(best[0][1], planted.magic_count.to_string());
    assert_eq!(best[0][2], "strong");

    // Retention after sign-up falls in three phases: fast in the first two
    // weeks, slower over the next three, slowest after that.
    let curve: Vec<f64> = column(&engine, "SELECT retained_pct FROM retention_matrix('signup', 'login', 'week', 8) WHERE cohort_start IS NULL ORDER BY period_k")
        .await
        .iter()
        .map(|r| r[0].parse().expect("number"))
        .collect();
    assert_eq!(curve.len(), 9);
    let slope = |a: usize, b: usize| (curve[a] - curve[b]) / (b - a) as f64;
    let (early, middle, late) = (slope(0, 2), slope(2, 5), slope(5, 8));
    assert!(early > 2.0 * middle && middle > late && late >= 0.0, "three phases in {curve:?}");
    assert!(curve[8] > 10.0, "a core of users stays: {curve:?}");
}
