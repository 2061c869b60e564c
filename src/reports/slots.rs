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

/// The slots of report `name`.
pub fn slots(name: &str, args: &Args, config: &Config, facts: &LakeFacts) -> Result<HashMap<String, String>> {
    let mut s = HashMap::new();
    match name {
        "funnel" => funnel(args, config, &mut s)?,
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
    let breakdown = args.text("breakdown")?.trim().to_ascii_lowercase();
    let (table, column) = match breakdown.split_once('.') {
        Some((t, c)) => (Some(t.to_string()), c.to_string()),
        None => (None, breakdown.clone()),
    };
    let (expr, join) = match (table.as_deref(), column.as_str()) {
        (None, "") => ("CAST(NULL AS VARCHAR)".to_string(), String::new()),
        (None | Some("events"), c) if EVENT_COLUMNS.contains(&c) => (format!("CAST(e.{c} AS VARCHAR)"), String::new()),
        (None | Some("accounts"), c) if ACCOUNT_COLUMNS.contains(&c) => {
            (format!("CAST(a.{c} AS VARCHAR)"), "LEFT JOIN accounts a ON a.org_id = e.org_id".to_string())
        }
        (None | Some("users"), c) if USER_COLUMNS.contains(&c) => {
            (format!("CAST(u.{c} AS VARCHAR)"), "LEFT JOIN users u ON u.user_id = e.user_id".to_string())
        }
        _ => {
            return plan_err!(
                "funnel: unknown breakdown column '{breakdown}'; use one of the events columns {}, the accounts columns {} or the users columns {}",
                EVENT_COLUMNS.join(", "),
                ACCOUNT_COLUMNS.join(", "),
                USER_COLUMNS.join(", ")
            )
        }
    };
    s.insert("has_breakdown".into(), (!breakdown.is_empty()).to_string().to_uppercase());
    s.insert("breakdown_expr".into(), expr);
    s.insert("breakdown_join".into(), join);
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
