//! The `{{name}}` slots a rendered report needs beyond its own arguments:
//! SQL fragments built from checked arguments (a funnel's conditions, a
//! breakdown column, a period's index expression, a magic-number target).
//! Every value that reaches SQL text is either a checked identifier from a
//! fixed list or a quoted literal.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{Args, LakeFacts};
use crate::config::{sql_str, Config};

/// Columns of `events` a funnel can be broken down by.
const EVENT_COLUMNS: [&str; 12] =
    ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "browser", "os", "region", "module", "page", "org_id", "event_date"];
/// Columns of `accounts` (also as `accounts.NAME`).
const ACCOUNT_COLUMNS: [&str; 5] = ["plan", "industry", "csm", "is_paid", "region"];
/// Columns of `users` (also as `users.NAME`).
const USER_COLUMNS: [&str; 2] = ["role", "is_key_user"];

/// The table a column named in a report's argument is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Events,
    Accounts,
    Users,
}

/// Resolves `column` or `table.column` among the columns a report may read
/// (a bare name: events first, then accounts, then users).
fn column_source(name: &str) -> Option<(Source, &str)> {
    let (table, column) = match name.split_once('.') {
        Some((t, c)) => (Some(t), c),
        None => (None, name),
    };
    match (table, column) {
        (None | Some("events"), c) if EVENT_COLUMNS.contains(&c) => Some((Source::Events, c)),
        (None | Some("accounts"), c) if ACCOUNT_COLUMNS.contains(&c) => Some((Source::Accounts, c)),
        (None | Some("users"), c) if USER_COLUMNS.contains(&c) => Some((Source::Users, c)),
        _ => None,
    }
}

/// The columns [`column_source`] knows, for messages.
fn known_columns() -> String {
    format!("the events columns {}, the accounts columns {} or the users columns {}", EVENT_COLUMNS.join(", "), ACCOUNT_COLUMNS.join(", "), USER_COLUMNS.join(", "))
}

/// A window argument (seconds, checked to at most 36500 days) in microseconds, which fit an i64.
fn window_us(args: &Args) -> Result<i64> {
    Ok(args.int("window")?.saturating_mul(1_000_000))
}

/// The slots of report `name`.
pub fn slots(name: &str, args: &Args, config: &Config, facts: &LakeFacts) -> Result<HashMap<String, String>> {
    let mut s = HashMap::new();
    if let Ok(unit) = args.text("unit") {
        let column = unit_column(name, unit)?;
        s.insert("unit_col".into(), column.into());
        s.insert("signup_table".into(), if column == "org_id" { "accounts" } else { "users" }.into());
    }
    match name {
        "funnel" => funnel(args, config, &mut s)?,
        "funnel_correlation" => {
            funnel(args, config, &mut s)?;
            correlation(args, &mut s)?;
        }
        "funnel_dropoffs" => {
            funnel(args, config, &mut s)?;
            dropoffs(args, &mut s)?;
        }
        "funnel_time_to_convert" => {
            funnel(args, config, &mut s)?;
            time_to_convert(args, &mut s)?;
        }
        "retention_matrix" => {
            periods(args, facts, &mut s)?;
            s.insert("from_idx".into(), period_number(args.text("period")?, args.date("from")?).to_string());
            let mode = args.text("mode")?.to_ascii_lowercase();
            let recurring = match mode.as_str() {
                "first_time" | "first" => false,
                "recurring" => true,
                other => return plan_err!("retention_matrix: unknown mode '{other}'; use first_time or recurring"),
            };
            s.insert("recurring".into(), recurring.to_string().to_uppercase());
        }
        "feature_retention" => periods(args, facts, &mut s)?,
        "magic_number" => {
            magic(args, config, &mut s)?;
            let us = |d: NaiveDate| (d - NaiveDate::default()).num_days() * 86_400_000_000;
            s.insert("first_day_us".into(), us(facts.first_day.unwrap_or_default()).to_string());
            s.insert("end_us".into(), (us(facts.last_day.unwrap_or_default()) + 86_400_000_000).to_string());
        }
        "health_scores" => {
            // The first day of the two periods before: days is checked to 1..=3660.
            let days = args.int("days")?;
            s.insert("prev2_start".into(), format!("DATE '{}'", super::shift(name, "as_of", args.date("as_of")?, 1 - 3 * days)?));
        }
        "health_history" => {
            let every_days = whole_days(name, "every", args.int("every")?)?;
            let (from, to, days) = (args.date("from")?, args.date("to")?, args.int("days")?);
            // days is checked to 1..=3660 and the dates lie in the data.
            let points = (to - from).num_days() / every_days + 1;
            s.insert("from_day".into(), (from - NaiveDate::default()).num_days().to_string());
            s.insert("every_days".into(), every_days.to_string());
            s.insert("points".into(), points.to_string());
            let first = super::shift(name, "from", from, 1 - 3 * days)?;
            s.insert("history_first_day".into(), format!("DATE '{first}'"));
            // The day sets of the events (day_bits) count days from `first`.
            s.insert("first_day_number".into(), (first - NaiveDate::default()).num_days().to_string());
            s.insert("span".into(), ((to - first).num_days() + 1).to_string());
        }
        "alerts" => {
            let days = whole_days(name, "lookback", args.int("lookback")?)?;
            let as_of = args.date("as_of")?;
            // The lookback starts no earlier than the data.
            let from = super::shift(name, "as_of", as_of, -days)?;
            let from = facts.first_day.map_or(from, |first| from.max(first));
            s.insert("lookback_days".into(), days.to_string());
            s.insert("lookback_from".into(), format!("DATE '{from}'"));
        }
        "churn_model" | "churn_risk" => churn(name, args, facts, &mut s)?,
        "user_events" => {
            if args.text("user_id")?.is_empty() {
                return plan_err!("user_events: user_id is required: the person whose events to list");
            }
            let limit = args.int("limit")?;
            if !(1..=100_000).contains(&limit) {
                return plan_err!("user_events: limit must be between 1 and 100000, got {limit}");
            }
        }
        "paths" | "path_edges" => paths(name, args, config, &mut s)?,
        "revenue_retention" | "revenue_movements" => {
            let interval = match args.text("period")? {
                "week" => "INTERVAL '7 days'",
                "month" => "INTERVAL '1 month'",
                "quarter" => "INTERVAL '3 months'",
                _ => "INTERVAL '12 months'",
            };
            s.insert("period_interval".into(), interval.into());
        }
        _ => {}
    }
    Ok(s)
}

/// The churn model's features: (name, SQL over a `health_history` row `p`
/// and its MRR). Only what was known on the day: usage measures and MRR, not
/// the accounts table's paid status or renewal date, which are today's.
const CHURN_FEATURES: [(&str, &str); 10] = [
    ("active_seat_share", "p.active_seat_share"),
    ("visits_percentile", "p.visits_percentile"),
    ("minutes_percentile", "p.minutes_percentile"),
    ("breadth_share", "p.breadth_share"),
    ("key_user_share", "p.key_user_share"),
    ("visit_trend", "p.trend_score"),
    ("user_growth", "p.growth_score"),
    ("admins_active", "p.admins_score"),
    ("health_change", "coalesce(p.health_change, 0.0)"),
    ("log_mrr", "ln(1.0 + p.mrr)"),
];

/// The days between scored dates, and the length of each scoring period.
const CHURN_STEP_DAYS: i64 = 7;

/// The dates the churn model learns from, one every week back from as_of (so
/// that as_of is one of them), the first with three full periods of events
/// before it; a date is labelled when horizon_days after it have passed by
/// as_of; the last third of the labelled dates (at least one) is held out.
fn churn(name: &str, args: &Args, facts: &LakeFacts, s: &mut HashMap<String, String>) -> Result<()> {
    let horizon = args.int("horizon_days")?;
    if !(1..=3660).contains(&horizon) {
        return plan_err!("{name}: horizon_days must be between 1 and 3660, got {horizon}");
    }
    let as_of = args.date("as_of")?;
    let Some(first_day) = facts.first_day else { return plan_err!("{name}: the lake has no events") };
    // The first day scored over three full weeks of events.
    let earliest = super::shift(name, "as_of", first_day, 3 * CHURN_STEP_DAYS - 1)?;
    let span = (as_of - earliest).num_days();
    let labelled = if span < horizon { 0 } else { (span - horizon) / CHURN_STEP_DAYS + 1 };
    if labelled < 3 {
        let need = 3 * CHURN_STEP_DAYS + 2 * CHURN_STEP_DAYS + horizon;
        return plan_err!(
            "{name}: too little history: with horizon_days {horizon} the model needs at least {need} days of events up to as_of \
             (three weeks before the first scored day, three weekly dates to train and test on, and {horizon} days after the last of them to see who stopped paying); \
             the lake has {} days from {first_day} to {as_of}",
            (as_of - first_day).num_days() + 1
        );
    }
    let points = span / CHURN_STEP_DAYS + 1;
    let from = super::shift(name, "as_of", as_of, -(points - 1) * CHURN_STEP_DAYS)?;
    let last_labelled = super::shift(name, "as_of", from, (labelled - 1) * CHURN_STEP_DAYS)?;
    let held_out = (labelled / 3).max(1);
    let first_held_out = super::shift(name, "as_of", from, (labelled - held_out) * CHURN_STEP_DAYS)?;
    s.insert("hist_from".into(), format!("DATE '{from}'"));
    s.insert("step".into(), format!("'{CHURN_STEP_DAYS} days'"));
    s.insert("period_days".into(), CHURN_STEP_DAYS.to_string());
    s.insert("last_labelled".into(), format!("DATE '{last_labelled}'"));
    s.insert("first_held_out".into(), format!("DATE '{first_held_out}'"));
    s.insert("horizon".into(), horizon.to_string());
    let columns: Vec<String> = CHURN_FEATURES.iter().map(|(n, e)| format!("{e} AS {n}")).collect();
    s.insert("feature_columns".into(), columns.join(", "));
    let names: Vec<&str> = CHURN_FEATURES.iter().map(|(n, _)| *n).collect();
    s.insert("features".into(), format!("make_array({})", names.join(", ")));
    let rows: Vec<String> = CHURN_FEATURES.iter().enumerate().map(|(i, (n, _))| format!("({}, '{n}')", i + 1)).collect();
    s.insert("feature_rows".into(), rows.join(", "));
    // The log-odds of churn: the intercept plus each standardised feature times its coefficient.
    let terms: Vec<String> = (1..=CHURN_FEATURES.len()).zip(names).map(|(i, n)| format!("m.w[{i}] * ({n} - m.mu[{i}]) / m.sd[{i}]")).collect();
    s.insert("log_odds".into(), format!("m.b0 + {}", terms.join(" + ")));
    Ok(())
}

/// The events column a report counts by: each user, or each account (any
/// member's event counts for it).
fn unit_column(name: &str, unit: &str) -> Result<&'static str> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "user" => Ok("user_id"),
        "account" => Ok("org_id"),
        other => plan_err!("{name}: unknown unit '{other}'; use 'user' or 'account'"),
    }
}

/// The most steps a path lists.
const MAX_PATH_STEPS: i64 = 20;

/// The slots of `paths` and `path_edges` (sql/parts/path_steps.sql): the
/// unit's column, the anchor, which events fall in the window, the ignored events.
fn paths(name: &str, args: &Args, config: &Config, s: &mut HashMap<String, String>) -> Result<()> {
    let (start, end) = (args.text("start_event")?, args.text("end_event")?);
    if !start.is_empty() && start == end {
        return plan_err!("{name}: start_event and end_event are both '{start}'; give two different events, or only one");
    }
    let steps = args.int("steps")?;
    if !(1..=MAX_PATH_STEPS).contains(&steps) {
        return plan_err!("{name}: steps must be between 1 and {MAX_PATH_STEPS}, got {steps}");
    }
    if let Ok(top) = args.int("top") {
        if !(1..=1000).contains(&top) {
            return plan_err!("{name}: top must be between 1 and 1000, got {top}");
        }
    }
    let window_us = window_us(args)?;
    let ignore: Vec<String> = match args.text("ignore")?.trim() {
        "" => config.paths.ignore.clone(),
        list => list.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
    };
    for (arg, event) in [("start_event", start), ("end_event", end)] {
        if !event.is_empty() && ignore.iter().any(|i| i == event) {
            return plan_err!("{name}: {arg} '{event}' is among the ignored events ({}); it cannot be left out and followed", ignore.join(", "));
        }
    }
    let listed: Vec<String> = ignore.iter().map(|e| sql_str(e)).collect();
    s.insert("ignore_filter".into(), if listed.is_empty() { String::new() } else { format!("AND event NOT IN ({})", listed.join(", ")) });
    s.insert("window_us".into(), window_us.to_string());
    s.insert("start_event".into(), sql_str(start));
    s.insert("end_event".into(), sql_str(end));
    s.insert("has_both".into(), (!start.is_empty() && !end.is_empty()).to_string().to_uppercase());
    s.insert("has_end".into(), (!end.is_empty()).to_string().to_uppercase());
    let (anchor_filter, window_filter, direction) = match (start.is_empty(), end.is_empty()) {
        // From the start event (or the first event) forward.
        (false, _) => (
            format!("event = {}", sql_str(start)),
            format!("(e.t > a.t0 OR (e.t = a.t0 AND e.event >= {})) AND e.t <= a.t0 + {window_us}", sql_str(start)),
            "ASC",
        ),
        (true, true) => ("TRUE".to_string(), format!("e.t >= a.t0 AND e.t <= a.t0 + {window_us}"), "ASC"),
        // Back from the end event.
        (true, false) => (
            format!("event = {}", sql_str(end)),
            format!("(e.t < a.t0 OR (e.t = a.t0 AND e.event <= {})) AND e.t >= a.t0 - {window_us}", sql_str(end)),
            "DESC",
        ),
    };
    s.insert("anchor_filter".into(), anchor_filter);
    s.insert("window_filter".into(), window_filter);
    s.insert("direction".into(), direction.into());
    Ok(())
}

/// An interval argument (in seconds) that must be whole days, at least one: the days.
fn whole_days(f: &str, name: &str, seconds: i64) -> Result<i64> {
    if seconds < 86_400 || seconds % 86_400 != 0 {
        return plan_err!("{f}: {name} must be a whole number of days, at least 1, got {seconds} seconds");
    }
    Ok(seconds / 86_400)
}

fn funnel(args: &Args, config: &Config, s: &mut HashMap<String, String>) -> Result<()> {
    let steps = args.list("steps")?;
    s.insert("step1".into(), sql_str(&steps[0]));
    let conditions: Vec<String> = steps.iter().map(|e| format!("event = {}", sql_str(e))).collect();
    s.insert("conditions".into(), conditions.join(", "));
    let rows: Vec<String> = steps.iter().enumerate().map(|(i, e)| format!("({}, {})", i + 1, sql_str(e))).collect();
    s.insert("step_rows".into(), rows.join(", "));
    s.insert("top_values".into(), config.funnel.top_values.max(1).to_string());
    // strict_order looks at every event between steps, so it must see them all.
    let strict = args.text("mode")?.split(',').any(|m| m.trim() == "strict_order");
    let listed: Vec<String> = steps.iter().map(|e| sql_str(e)).collect();
    s.insert("event_filter".into(), if strict { "TRUE".into() } else { format!("e.event IN ({})", listed.join(", ")) });
    // funnel_dropoffs has no breakdown: it lists the columns instead.
    let breakdown = args.text("breakdown").unwrap_or("").trim().to_ascii_lowercase();
    let (expr, join) = match column_source(&breakdown) {
        _ if breakdown.is_empty() => ("CAST(NULL AS VARCHAR)".to_string(), String::new()),
        Some((Source::Events, c)) => (format!("CAST(e.{c} AS VARCHAR)"), String::new()),
        Some((Source::Accounts, c)) => (format!("CAST(a.{c} AS VARCHAR)"), "LEFT JOIN accounts a ON a.org_id = e.org_id".to_string()),
        Some((Source::Users, c)) => (format!("CAST(u.{c} AS VARCHAR)"), "LEFT JOIN users u ON u.user_id = e.user_id".to_string()),
        None => return plan_err!("funnel: unknown breakdown column '{breakdown}'; use one of {}", known_columns()),
    };
    s.insert("has_breakdown".into(), (!breakdown.is_empty()).to_string().to_uppercase());
    s.insert("breakdown_expr".into(), expr);
    s.insert("breakdown_join".into(), join);
    Ok(())
}

/// The slots of funnel_dropoffs: the step (between 1 and the last but one), its event and the next.
fn dropoffs(args: &Args, s: &mut HashMap<String, String>) -> Result<()> {
    let steps = args.list("steps")?;
    let step = args.int("step")?;
    let last = i64::try_from(steps.len()).unwrap_or(i64::MAX) - 1;
    if steps.len() < 2 {
        return plan_err!("funnel_dropoffs: steps needs at least two events: users drop out between a step and the next");
    }
    if !(1..=last).contains(&step) {
        return plan_err!("funnel_dropoffs: step must be between 1 and {last} (users drop out between a step and the next), got {step}");
    }
    let limit = args.int("limit")?;
    if !(1..=100_000).contains(&limit) {
        return plan_err!("funnel_dropoffs: limit must be between 1 and 100000, got {limit}");
    }
    // step is checked to 1..=len-1, so both indexes are in range.
    let k = usize::try_from(step).unwrap_or(1);
    s.insert("step_event".into(), sql_str(&steps[k - 1]));
    s.insert("next_step_event".into(), sql_str(&steps[k]));
    Ok(())
}

/// The most bins a time-to-convert histogram has.
const MAX_BINS: i64 = 200;

/// The slots of funnel_time_to_convert: the two steps (to_step 0 is the last) and the bins.
fn time_to_convert(args: &Args, s: &mut HashMap<String, String>) -> Result<()> {
    const F: &str = "funnel_time_to_convert";
    let n = i64::try_from(args.list("steps")?.len()).unwrap_or(i64::MAX);
    if n < 2 {
        return plan_err!("{F}: steps needs at least two events: the time to convert runs from one step to a later one");
    }
    let from_step = args.int("from_step")?;
    let to_step = match args.int("to_step")? {
        0 => n,
        k => k,
    };
    if !(1..n).contains(&from_step) {
        return plan_err!("{F}: from_step must be between 1 and {} (a step before the last), got {from_step}", n - 1);
    }
    if !(2..=n).contains(&to_step) || to_step <= from_step {
        return plan_err!("{F}: to_step must be after from_step ({from_step}) and at most {n}, the funnel's last step (0 means the last), got {to_step}");
    }
    let bins = args.int("bins")?;
    if !(1..=MAX_BINS).contains(&bins) {
        return plan_err!("{F}: bins must be between 1 and {MAX_BINS}, got {bins}");
    }
    s.insert("from_step".into(), from_step.to_string());
    s.insert("to_step".into(), to_step.to_string());
    Ok(())
}

/// The properties funnel_correlation looks at unless a call names its own.
const DEFAULT_PROPERTIES: &str = "utm_source,browser,os,plan,industry,role";

/// The slots of funnel_correlation: the steps, the window and one row set per property.
fn correlation(args: &Args, s: &mut HashMap<String, String>) -> Result<()> {
    let steps = args.list("steps")?;
    if steps.len() < 2 {
        return plan_err!("funnel_correlation: steps needs at least two events: entrants convert by reaching the last");
    }
    s.insert("n_steps".into(), steps.len().to_string());
    s.insert("window_us".into(), window_us(args)?.to_string());
    s.insert("step_list".into(), steps.iter().map(|e| sql_str(e)).collect::<Vec<_>>().join(", "));
    let mut entering = String::new();
    let mut cases = Vec::new();
    let mut names = Vec::new();
    let properties = match args.text("properties")?.trim() {
        "" => DEFAULT_PROPERTIES,
        list => list,
    };
    for p in properties.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()) {
        let label = sql_str(&p);
        if names.contains(&label) {
            continue;
        }
        let expr = match column_source(&p) {
            Some((Source::Events, c)) => {
                // org_id is in `entering` already.
                if c != "org_id" {
                    entering.push_str(&format!(", first_value(e.{c} ORDER BY e.event) AS {c}"));
                }
                format!("n.{c}")
            }
            Some((Source::Accounts, c)) => format!("a.{c}"),
            Some((Source::Users, c)) => format!("u.{c}"),
            None => return plan_err!("funnel_correlation: unknown property '{p}'; use {}", known_columns()),
        };
        cases.push(format!("WHEN {label} THEN CAST({expr} AS VARCHAR)"));
        names.push(label);
    }
    // One row per entrant and property, from one join (a UNION per property
    // trips a DataFusion 55 planner assertion on interleaving unions).
    let rows = if names.is_empty() {
        String::new()
    } else {
        let values: Vec<String> = names.iter().map(|n| format!("({n})")).collect();
        format!(
            "UNION ALL\n    SELECT user_id, 'property', name, value FROM (\n        SELECT n.user_id, p.name, CASE p.name {} END AS value\n        FROM entering n\n        LEFT JOIN accounts a ON a.org_id = n.org_id\n        LEFT JOIN users u ON u.user_id = n.user_id\n        CROSS JOIN (VALUES {}) AS p(name)\n    ) pv WHERE value IS NOT NULL",
            cases.join(" "),
            values.join(", ")
        )
    };
    s.insert("entering_columns".into(), entering);
    s.insert("property_rows".into(), rows);
    Ok(())
}

/// Splits a magic-number target `event:NAME[:D]` into the event name and
/// the text of D, if given; None for any other target.
pub(super) fn event_target(target: &str) -> Option<(&str, Option<&str>)> {
    let target = target.trim();
    let rest = target.get(..6).filter(|p| p.eq_ignore_ascii_case("event:")).and(target.get(6..))?;
    Some(match rest.rsplit_once(':') {
        Some((name, days)) => (name.trim(), Some(days.trim())),
        None => (rest.trim(), None),
    })
}

/// Period numbers: `idx` (SQL over event_date), `first_idx` (the data's first
/// period), `last_idx` (the period of `to`), and `period_start` (SQL for the
/// first day of period number `p`).
fn periods(args: &Args, facts: &LakeFacts, s: &mut HashMap<String, String>) -> Result<()> {
    let period = args.text("period")?;
    s.insert("idx".into(), period_index(period, "event_date"));
    s.insert("last_idx".into(), period_number(period, args.date("to")?).to_string());
    let first = facts.first_day.unwrap_or_default();
    s.insert("first_idx".into(), period_number(period, first).to_string());
    let start = match period {
        "day" => "CAST(CAST(p AS INT) AS DATE)".to_string(),
        "week" => "CAST(CAST(p * 7 - 3 AS INT) AS DATE)".to_string(),
        _ => "make_date(CAST(p / 12 AS INT), CAST(p % 12 + 1 AS INT), 1)".to_string(),
    };
    s.insert("period_start".into(), start);
    Ok(())
}

/// SQL for the number of the period a date column falls in: days since
/// 1970-01-01, weeks (Monday first) since then, or months since year 0.
fn period_index(period: &str, col: &str) -> String {
    match period {
        "day" => format!("CAST(CAST({col} AS INT) AS BIGINT)"),
        // 1970-01-01 was a Thursday: Monday-based weeks start 3 days earlier.
        "week" => format!("CAST(floor((CAST({col} AS INT) + 3) / 7.0) AS BIGINT)"),
        _ => format!("CAST(date_part('year', {col}) * 12 + date_part('month', {col}) - 1 AS BIGINT)"),
    }
}

/// The same number computed here, for a date argument.
fn period_number(period: &str, d: NaiveDate) -> i64 {
    let days = (d - NaiveDate::default()).num_days();
    match period {
        "day" => days,
        "week" => (days + 3).div_euclid(7),
        _ => i64::from(d.year()) * 12 + i64::from(d.month0()),
    }
}

fn magic(args: &Args, config: &Config, s: &mut HashMap<String, String>) -> Result<()> {
    let target = args.text("target")?.trim().to_ascii_lowercase();
    // (first day, last day) after sign-up, counting the sign-up day as day 1, and an event filter.
    let (from_day, to_day, filter) = if target == "week2" || target.is_empty() {
        (8, 14, "TRUE".to_string())
    } else if let Some(k) = target.strip_prefix("week:") {
        match k.trim().parse::<i64>() {
            Ok(k) if (1..=52).contains(&k) => (7 * (k - 1) + 1, 7 * k, "TRUE".to_string()),
            _ => return plan_err!("magic_number: target '{target}': the week must be a number from 1 to 52"),
        }
    } else if let Some(range) = target.strip_prefix("days:") {
        let parsed = range.split_once('-').and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)));
        match parsed {
            Some((a, b)) if 1 <= a && a <= b && b <= 3660 => (a, b, "TRUE".to_string()),
            _ => return plan_err!("magic_number: target '{target}': write days:A-B with 1 <= A <= B"),
        }
    } else if let Some((name, days)) = event_target(args.text("target")?) {
        // event:NAME[:D]: did NAME within D days of signing up (default 28).
        let days = match days {
            None => 28,
            Some(d) => match d.parse::<i64>() {
                Ok(d) if (1..=3660).contains(&d) => d,
                _ => return plan_err!("magic_number: target '{target}': the days after the event name must be a number from 1 to 3660"),
            },
        };
        (1, days, format!("e.event = {}", sql_str(name)))
    } else {
        return plan_err!("magic_number: unknown target '{target}'; use week2, week:K (active in week K after sign-up), days:A-B (active on days A to B), or event:NAME[:D] (did NAME within D days, default 28)");
    };
    let window = args.int("window_days")?;
    s.insert("target_from_us".into(), ((from_day - 1) * 86_400_000_000).to_string());
    s.insert("target_to_us".into(), (to_day * 86_400_000_000).to_string());
    s.insert("target_filter".into(), filter);
    s.insert("window_us".into(), (window * 86_400_000_000).to_string());
    s.insert("horizon_us".into(), (window.max(to_day) * 86_400_000_000).to_string());
    let m = &config.magic_number;
    s.insert("strong".into(), format!("{:?}", m.strong));
    s.insert("positive".into(), format!("{:?}", m.positive));
    s.insert("weak".into(), format!("{:?}", m.weak));
    s.insert("pair_candidates".into(), m.pair_candidates.to_string());
    s.insert("pairs".into(), m.pairs.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_numbers_step_on_period_starts() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        // 2024-01-08 is a Monday: it starts a new week, the Sunday before does not.
        assert_eq!(period_number("week", d(2024, 1, 8)), period_number("week", d(2024, 1, 7)) + 1);
        assert_eq!(period_number("week", d(2024, 1, 8)), period_number("week", d(2024, 1, 14)));
        assert_eq!(period_number("month", d(2024, 2, 1)), period_number("month", d(2024, 1, 31)) + 1);
        assert_eq!(period_number("day", d(1970, 1, 2)), 1);
    }
}
