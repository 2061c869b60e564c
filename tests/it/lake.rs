//! Lake and engine start-up: user views and their errors, config overrides.

use crate::common::{self, run, vitals};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_view_file_fails_start_up_with_its_name() {
    let (dir, _lake) = common::fixture_lake().await;
    let views = tempfile::tempdir().expect("tmp");
    std::fs::write(views.path().join("10_ok.sql"), "CREATE VIEW paid AS SELECT org_id FROM accounts WHERE is_paid").expect("write");
    let (code, out, err) = run(vitals().args(["sql", "--lake"]).arg(dir.path()).arg("--views").arg(views.path()).args(["--format", "csv", "SELECT org_id FROM paid ORDER BY 1"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "org_id\nacme\nbeta\n");
    std::fs::write(views.path().join("20_bad.sql"), "CREATE VIEW oops AS SELECT no_such_column FROM events").expect("write");
    let (code, _, err) = run(vitals().args(["sql", "--lake"]).arg(dir.path()).arg("--views").arg(views.path()).arg("SELECT 1"));
    assert_eq!(code, 1);
    assert!(err.contains("20_bad.sql") && err.contains("no_such_column"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_names_come_from_the_config() {
    let (dir, _lake) = common::fixture_lake().await;
    let cfg = tempfile::NamedTempFile::new().expect("tmp");
    // Count page views as "logins": acme on 2024-01-02 then has 1 "login user" (a1's page views).
    std::fs::write(cfg.path(), "[events]\nlogin = \"page_view\"\n").expect("write");
    let q = "SELECT login_users FROM account_daily WHERE org_id = 'acme' AND day = '2024-01-10'";
    let (code, out, err) = run(vitals().args(["sql", "--format", "csv", "--lake"]).arg(dir.path()).arg("--config").arg(cfg.path()).arg(q));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "login_users\n1\n", "a1 viewed a page on 01-10 without logging in");
    std::fs::write(cfg.path(), "[events]\nlogn = \"x\"\n").expect("write");
    let (code, _, err) = run(vitals().args(["sql", "--lake"]).arg(dir.path()).arg("--config").arg(cfg.path()).arg("SELECT 1"));
    assert_eq!(code, 1);
    assert!(err.contains("logn"), "{err}");
}

#[test]
fn a_missing_lake_says_how_to_make_one() {
    let (code, _, err) = run(vitals().args(["sql", "--lake", "/nonexistent/lake", "SELECT 1"]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/lake") && err.contains("vitals demo"), "{err}");
}

#[test]
fn a_missing_input_file_makes_no_lake() {
    let dir = tempfile::tempdir().expect("tmp");
    let lake = dir.path().join("new-lake");
    let (code, _, err) = run(vitals().args(["ingest", "--lake"]).arg(&lake).arg(dir.path().join("absent.csv")));
    assert_eq!(code, 1);
    assert!(err.contains("absent.csv") && err.contains("no such file"), "{err}");
    assert!(!lake.exists(), "no lake folder was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_columns_print_in_every_output_format() {
    let (dir, _lake) = common::fixture_lake().await;
    // Per user: logged in; and viewed a page; and created a project (only b1).
    let q = "SELECT user_id, retention(event = 'login', event = 'page_view', event = 'create_project') AS r, ['x', 'it''s'] AS s FROM events GROUP BY user_id ORDER BY user_id";
    let (code, out, err) = run(vitals().args(["sql", "--format", "csv", "--lake"]).arg(dir.path()).arg(q));
    assert_eq!(code, 0, "{err}");
    let want = "user_id,r,s\n\
                a1,\"[1,1,0]\",\"['x','it\\'s']\"\n\
                a2,\"[1,1,0]\",\"['x','it\\'s']\"\n\
                a3,\"[1,1,0]\",\"['x','it\\'s']\"\n\
                b1,\"[1,1,1]\",\"['x','it\\'s']\"\n\
                b2,\"[1,1,0]\",\"['x','it\\'s']\"\n";
    assert_eq!(out, want);
    let (code, out, err) = run(vitals().args(["sql", "--format", "json", "--lake"]).arg(dir.path()).arg(q));
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[3], serde_json::json!({"user_id": "b1", "r": [1, 1, 1], "s": ["x", "it's"]}));
    let (code, out, err) = run(vitals().args(["sql", "--lake"]).arg(dir.path()).arg(q));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("│ b1      ┆ [1,1,1] ┆ ['x','it\\'s'] │"), "{out}");
}
