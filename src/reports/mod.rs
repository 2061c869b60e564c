//! The customer-success reports: table functions whose bodies are the SQL
//! templates of `sql/reports/`. A template either has `$n` placeholders (planned
//! once per session as a prepared statement, bound per call) or `{{name}}`
//! slots (rendered from the checked arguments per call, for reports whose
//! shape depends on them, such as a funnel's list of steps). Either way a call
//! returns a DataFusion plan, so filters push down into the Parquet scan and the
//! same plan runs in the CLI, the server and a Ballista cluster.

mod slots;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{Duration, NaiveDate};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList, SchemaProvider, Session, TableFunctionArgs, TableFunctionImpl,
    TableProvider,
};
use datafusion::common::{internal_err, plan_datafusion_err, plan_err, ScalarValue};
use datafusion::datasource::{MemTable, TableType, ViewTable};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::config::{sql_str, Config};
use crate::lake::live::LiveLake;
use crate::lake::tables::{session_snapshot, Scope};
use crate::lake::Table;
use crate::functions::{scalar_text, FunctionDoc};

/// What the lake holds, for defaults ("as of the latest day") and range checks.
#[derive(Debug, Clone, Default)]
pub struct LakeFacts {
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// The accounts table's org_ids the session may see (None when the lake has no accounts table).
    pub org_ids: Option<Arc<HashSet<String>>>,
    /// The event names in the lake, looked up the first time a report needs them.
    pub event_names: EventNames,
    /// The tables without any file in the lake (optional ones such as subscriptions).
    pub empty_tables: Vec<Table>,
}

/// The lake's event names, looked up the first time a report needs them.
type EventNames = Arc<OnceLock<Arc<HashSet<String>>>>;

/// Where a session's reports get their [`LakeFacts`]: from the snapshot the
/// query reads, so a default date moves as events arrive.
pub struct FactsSource {
    live: Arc<LiveLake>,
    scope: Option<Scope>,
    /// The event names, looked up once per set of events files (by its fingerprint).
    names: Mutex<(u64, EventNames)>,
    /// A scoped session's own first and last day, by the events' fingerprint
    /// they were read at: a token learns nothing of other accounts' dates.
    scoped_days: Mutex<Option<(u64, Option<NaiveDate>, Option<NaiveDate>)>>,
}

impl FactsSource {
    pub fn new(live: Arc<LiveLake>, scope: Option<Scope>) -> Self {
        FactsSource { live, scope, names: Mutex::new((0, Arc::default())), scoped_days: Mutex::new(None) }
    }

    /// Reads what a scoped session's facts need from its own rows (the first
    /// and last day of its events), once per set of events files. A session
    /// that sees every account reads them from the snapshot and needs nothing.
    pub async fn prepare(&self, ctx: &SessionContext) -> Result<()> {
        if self.scope.is_none() {
            return Ok(());
        }
        let events = session_snapshot(&ctx.state(), &self.live).fingerprint(Table::Events);
        let cached = self.scoped_days.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|c| c.0 == events);
        if cached {
            return Ok(());
        }
        let batches = ctx.sql("SELECT CAST(min(event_time) AS DATE), CAST(max(event_time) AS DATE) FROM events").await?.collect().await?;
        let day = |col: usize| -> Option<NaiveDate> {
            let b = batches.first()?;
            let v = ScalarValue::try_from_array(b.column(col), 0).ok()?;
            let ScalarValue::Date32(Some(d)) = v else { return None };
            NaiveDate::default().checked_add_signed(Duration::try_days(i64::from(d))?)
        };
        *self.scoped_days.lock().unwrap_or_else(|p| p.into_inner()) = Some((events, day(0), day(1)));
        Ok(())
    }

    /// The facts of the snapshot `session` reads, limited to its scope.
    pub fn facts(&self, session: &dyn Session) -> LakeFacts {
        let snapshot = session_snapshot(session, &self.live);
        let events = snapshot.fingerprint(Table::Events);
        let event_names = {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            if names.0 != events {
                *names = (events, Arc::default());
            }
            Arc::clone(&names.1)
        };
        let org_ids = snapshot.org_ids.as_ref().map(|ids| match &self.scope {
            Some(scope) => Arc::new(ids.iter().filter(|o| scope.contains(*o)).cloned().collect()),
            None => Arc::clone(ids),
        });
        let (first_day, last_day) = match &self.scope {
            None => (snapshot.first_day, snapshot.last_day),
            // Not prepared for this session: no dates rather than the whole lake's.
            Some(_) => self.scoped_days.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or((None, None), |c| (c.1, c.2)),
        };
        let empty_tables = Table::ALL.into_iter().filter(|t| snapshot.files(*t).is_empty()).collect();
        LakeFacts { first_day, last_day, org_ids, event_names, empty_tables }
    }
}

/// A date moved by a number of days, or an error naming the argument when that leaves the calendar.
fn shift(f: &str, name: &str, d: NaiveDate, days: i64) -> Result<NaiveDate> {
    Duration::try_days(days)
        .and_then(|delta| d.checked_add_signed(delta))
        .ok_or_else(|| plan_datafusion_err!("{f}: {name} is out of range: {d} moved by {days} days leaves the calendar"))
}

/// A date far from the data is still a mistake: outside 1900..2200 it is refused.
fn check_plausible(f: &str, name: &str, d: NaiveDate) -> Result<()> {
    let (lo, hi) = (NaiveDate::from_ymd_opt(1900, 1, 1), NaiveDate::from_ymd_opt(2200, 12, 31));
    match (lo, hi) {
        (Some(lo), Some(hi)) if d < lo || d > hi => plan_err!("{f}: {name} {d} is not between {lo} and {hi}"),
        _ => Ok(()),
    }
}

/// Days since 1970-01-01, as Date32 holds them.
fn date32(f: &str, d: NaiveDate) -> Result<i32> {
    i32::try_from((d - NaiveDate::default()).num_days()).map_err(|_| plan_datafusion_err!("{f}: the date {d} is out of range"))
}

/// The longest interval argument: a funnel or window longer than a century means nothing.
const MAX_INTERVAL_SECONDS: i64 = 36_500 * 86_400;

/// One argument of a report: name, type, and the default when it is left out.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: ArgType,
    /// The default as written after `=` in the header, if any.
    pub default: Option<String>,
}

/// The argument types a template may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Date,
    Int,
    Text,
    /// An event name that must occur in the lake.
    Event,
    /// A list of event names (an array or a comma-separated string).
    Events,
    /// A time span: an INTERVAL, text such as '7 days', or whole seconds.
    Interval,
}

impl ArgType {
    const ALL: [ArgType; 6] = [ArgType::Date, ArgType::Int, ArgType::Text, ArgType::Event, ArgType::Events, ArgType::Interval];

    fn parse(file: &str, ty: &str) -> Result<ArgType> {
        match ArgType::ALL.into_iter().find(|t| t.name() == ty) {
            Some(t) => Ok(t),
            None => plan_err!("sql/reports/{file}: unsupported argument type {ty}"),
        }
    }

    /// The type as a template's header declares it.
    pub fn name(self) -> &'static str {
        match self {
            ArgType::Date => "DATE",
            ArgType::Int => "BIGINT",
            ArgType::Text => "VARCHAR",
            ArgType::Event => "EVENT",
            ArgType::Events => "EVENTS",
            ArgType::Interval => "INTERVAL",
        }
    }

    /// The SQL type of a `$n` placeholder of this type.
    fn sql(self) -> &'static str {
        match self {
            ArgType::Date => "DATE",
            ArgType::Int | ArgType::Interval => "BIGINT",
            _ => "VARCHAR",
        }
    }
}

/// A parsed `sql/reports/NAME.sql` file.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    /// The arguments a caller passes.
    pub args: Vec<Param>,
    /// The `$1..$n` placeholders of a prepared template (empty for a rendered one).
    pub params: Vec<Param>,
    pub description: String,
    /// How the CLI and the report service order rows (`-- order: ...`): SQL
    /// drops an ORDER BY inside a table function, so the caller sorts.
    pub order: Option<String>,
    pub sql: String,
    /// The file it came from, for messages.
    pub file: String,
    /// The output columns, learned once (from the plan of a prepared
    /// template, or by planning a rendered one the first time they are
    /// asked for) and shared by every session's copy of the template.
    pub columns: Arc<OnceLock<arrow::datatypes::SchemaRef>>,
    /// The values `period` may take (`-- periods: ...`; day, week, month by default).
    pub periods: Vec<String>,
    /// `-- dates: any`: its dates may lie outside the events' days (revenue history is not events).
    pub dates_anywhere: bool,
    /// `-- needs: TABLE`: a table the report cannot answer without.
    pub needs: Option<Table>,
}

impl Template {
    /// Reads the header lines: `-- name(arg TYPE [= default], ...): description`,
    /// for a prepared template `-- params: name TYPE, ...`, and `-- order: ...`.
    pub fn parse(file: &str, text: &str) -> Result<Template> {
        let bad = |what: &str| plan_datafusion_err!("sql/reports/{file}: {what}");
        let mut lines = text.lines();
        let head = lines.next().and_then(|l| l.strip_prefix("-- ")).ok_or_else(|| bad("first line must be `-- name(args): description`"))?;
        let (sig, description) = head.split_once("): ").ok_or_else(|| bad("first line lacks `): `"))?;
        let (name, args) = sig.split_once('(').ok_or_else(|| bad("first line lacks `(`"))?;
        let params = text.lines().find_map(|l| l.strip_prefix("-- params:"));
        let order = text.lines().find_map(|l| l.strip_prefix("-- order:")).map(|o| o.trim().to_string());
        let periods = text
            .lines()
            .find_map(|l| l.strip_prefix("-- periods:"))
            .unwrap_or("day, week, month")
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        let dates_anywhere = text.lines().any(|l| l.trim() == "-- dates: any");
        let needs = match text.lines().find_map(|l| l.strip_prefix("-- needs:")) {
            Some(t) => Some(Table::parse(t.trim()).ok_or_else(|| bad(&format!("unknown table in `-- needs:{t}`")))?),
            None => None,
        };
        let pairs = |s: &str| -> Result<Vec<Param>> {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (decl, default) = match p.split_once('=') {
                        Some((d, v)) => (d.trim(), Some(v.trim().trim_matches('\'').to_string())),
                        None => (p, None),
                    };
                    let (n, t) = decl.split_once(' ').ok_or_else(|| bad(&format!("cannot read '{p}' as `name TYPE`")))?;
                    Ok(Param { name: n.trim().to_string(), ty: ArgType::parse(file, t.trim())?, default })
                })
                .collect()
        };
        Ok(Template {
            name: name.trim().to_string(),
            args: pairs(args)?,
            params: params.map(pairs).transpose()?.unwrap_or_default(),
            description: description.trim().to_string(),
            order,
            sql: text.to_string(),
            file: file.to_string(),
            columns: Arc::default(),
            periods,
            dates_anywhere,
            needs,
        })
    }

    /// One call of the report with `args` (SQL literals, in its order), rows in the report's order.
    pub fn call_sql(&self, args: &[String]) -> String {
        let order = self.order.as_ref().map(|o| format!(" ORDER BY {o}")).unwrap_or_default();
        format!("SELECT * FROM {}({}){order}", self.name, args.join(", "))
    }

    pub fn signature(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|p| p.name.as_str()).collect();
        format!("{}({})", self.name, args.join(", "))
    }

    /// The SQL without the header comments.
    fn body(&self) -> String {
        self.sql.lines().filter(|l| !l.starts_with("-- ") || l.starts_with("-- stage ")).collect::<Vec<_>>().join("\n")
    }
}

/// Folds a constant argument expression (a literal, a cast of one, a negation) to a value.
pub fn const_value(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => const_value(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => const_value(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::Negative(e) => const_value(e)?.arithmetic_negate().ok(),
        Expr::Alias(a) => const_value(&a.expr),
        Expr::ScalarFunction(f) if f.name() == "make_array" => {
            let items: Option<Vec<ScalarValue>> = f.args.iter().map(const_value).collect();
            Some(ScalarValue::List(ScalarValue::new_list_nullable(&items?, &DataType::Utf8)))
        }
        _ => None,
    }
}

/// The value a caller gave (or the default) for one argument.
#[derive(Debug, Clone)]
pub enum Arg {
    Date(NaiveDate),
    Int(i64),
    Text(String),
    List(Vec<String>),
}

impl Arg {
    /// The value as SQL text, for a rendered template.
    fn sql(&self) -> String {
        match self {
            Arg::Date(d) => format!("DATE '{d}'"),
            Arg::Int(v) => v.to_string(),
            Arg::Text(s) => sql_str(s),
            Arg::List(items) => items.iter().map(|s| sql_str(s)).collect::<Vec<_>>().join(", "),
        }
    }
}

/// A call's checked arguments by name.
#[derive(Debug, Clone, Default)]
pub struct Args(HashMap<String, Arg>);

impl Args {
    pub fn date(&self, name: &str) -> Result<NaiveDate> {
        match self.0.get(name) {
            Some(Arg::Date(d)) => Ok(*d),
            _ => internal_err!("no date argument {name}"),
        }
    }
    pub fn int(&self, name: &str) -> Result<i64> {
        match self.0.get(name) {
            Some(Arg::Int(v)) => Ok(*v),
            _ => internal_err!("no whole-number argument {name}"),
        }
    }
    pub fn text(&self, name: &str) -> Result<&str> {
        match self.0.get(name) {
            Some(Arg::Text(s)) => Ok(s),
            _ => internal_err!("no text argument {name}"),
        }
    }
    pub fn list(&self, name: &str) -> Result<&[String]> {
        match self.0.get(name) {
            Some(Arg::List(v)) => Ok(v),
            _ => internal_err!("no list argument {name}"),
        }
    }
}

/// How a template becomes a plan.
enum Body {
    /// Planned once; a call binds the placeholders.
    Prepared(LogicalPlan),
    /// Rendered per call, then planned in the caller's session.
    Rendered(String),
}

/// A table function backed by a template.
struct ReportFunction {
    template: Template,
    body: Body,
    facts: Arc<FactsSource>,
    config: Arc<Config>,
}

impl fmt::Debug for ReportFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportFunction").field("name", &self.template.name).finish()
    }
}

/// What a text interval means: seconds, or a reason it means nothing.
enum Interval {
    Seconds(i64),
    /// A number too large for any clock.
    Overflow,
    Unreadable,
}

/// Seconds in a text interval such as '7 days', '2 weeks', '36 hours' or '3600' (seconds).
fn interval_seconds(text: &str) -> Interval {
    let t = text.trim().to_ascii_lowercase();
    if let Ok(s) = t.parse::<i64>() {
        return Interval::Seconds(s);
    }
    let Some((n, unit)) = t.split_once(' ') else { return Interval::Unreadable };
    let n: i64 = match n.trim().parse() {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow) => return Interval::Overflow,
        Err(_) => return Interval::Unreadable,
    };
    let per: i64 = match unit.trim().trim_end_matches('s') {
        "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        _ => return Interval::Unreadable,
    };
    n.checked_mul(per).map_or(Interval::Overflow, Interval::Seconds)
}

impl ReportFunction {
    fn arg(&self, facts: &LakeFacts, p: &Param, value: Option<ScalarValue>) -> Result<Arg> {
        let f = &self.template.name;
        let name = &p.name;
        let value = match value.filter(|v| !v.is_null()) {
            Some(v) => v,
            None => match &p.default {
                Some(d) if p.ty == ArgType::Int => ScalarValue::Int64(d.parse().ok()),
                Some(d) => ScalarValue::Utf8(Some(d.clone())),
                None => return self.default_arg(facts, name),
            },
        };
        match p.ty {
            ArgType::Date => {
                if let ScalarValue::Date32(Some(d)) = value {
                    return shift(f, name, NaiveDate::default(), i64::from(d)).map(Arg::Date);
                }
                let text = scalar_text(&value).map_or_else(|| value.to_string(), str::to_string);
                match text.trim() {
                    "first" => return self.default_arg(facts, "first"),
                    "last" => return self.default_arg(facts, "as_of"),
                    _ => {}
                }
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map(Arg::Date)
                    .map_err(|_| plan_datafusion_err!("{f}: {name} must be a date such as '2024-05-31', got {value}"))
            }
            ArgType::Int => match value.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(v))) if !matches!(value, ScalarValue::Utf8(_) | ScalarValue::Utf8View(_) | ScalarValue::Float64(_) | ScalarValue::Float32(_)) => Ok(Arg::Int(v)),
                _ => plan_err!("{f}: {name} must be a whole number, got {value}"),
            },
            ArgType::Interval => {
                let days_secs = |days: i32, secs: i64| i64::from(days).checked_mul(86_400).and_then(|d| d.checked_add(secs));
                let secs = match &value {
                    ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
                        days_secs(v.days, v.nanoseconds / 1_000_000_000).map_or(Interval::Overflow, Interval::Seconds)
                    }
                    ScalarValue::IntervalDayTime(Some(v)) => {
                        days_secs(v.days, i64::from(v.milliseconds) / 1000).map_or(Interval::Overflow, Interval::Seconds)
                    }
                    v if scalar_text(v).is_some() => scalar_text(v).map_or(Interval::Unreadable, interval_seconds),
                    v => match v.cast_to(&DataType::Int64) {
                        Ok(ScalarValue::Int64(Some(s))) => Interval::Seconds(s),
                        _ => Interval::Unreadable,
                    },
                };
                match secs {
                    Interval::Seconds(s) if (0..=MAX_INTERVAL_SECONDS).contains(&s) => Ok(Arg::Int(s)),
                    Interval::Seconds(s) if s < 0 => plan_err!("{f}: {name} must not be negative, got {s} seconds"),
                    Interval::Seconds(_) | Interval::Overflow => {
                        plan_err!("{f}: {name} must be at most 36500 days ({MAX_INTERVAL_SECONDS} seconds), got {value}")
                    }
                    Interval::Unreadable => plan_err!("{f}: {name} must be an interval such as '7 days' or a number of seconds (months are not a fixed length), got {value}"),
                }
            }
            ArgType::Events => {
                let items: Vec<String> = match &value {
                    ScalarValue::List(l) => {
                        let strings = arrow::compute::cast(l.values(), &DataType::Utf8)?;
                        strings.as_string::<i32>().iter().map(|s| s.unwrap_or_default().trim().to_string()).collect()
                    }
                    v => match scalar_text(v) {
                        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
                        None => return plan_err!("{f}: {name} must be a list of event names, such as ['signup', 'login'] or 'signup,login', got {value}"),
                    },
                };
                if items.is_empty() || items.iter().any(String::is_empty) {
                    return plan_err!("{f}: {name} must be a list of event names without empty ones, got {value}");
                }
                if items.len() > crate::functions::behaviour::MAX_CONDITIONS {
                    return plan_err!("{f}: {name} takes at most {} events, got {}", crate::functions::behaviour::MAX_CONDITIONS, items.len());
                }
                Ok(Arg::List(items))
            }
            ArgType::Text | ArgType::Event => match (scalar_text(&value), name.as_str()) {
                (Some(s), "period") => {
                    let p = s.trim().to_ascii_lowercase();
                    let allowed = &self.template.periods;
                    if allowed.contains(&p) {
                        Ok(Arg::Text(p))
                    } else {
                        let (last, rest) = allowed.split_last().map_or(("", &[][..]), |(l, r)| (l.as_str(), r));
                        plan_err!("{f}: unknown period '{s}'; use {} or {last}", rest.join(", "))
                    }
                }
                (Some(s), _) => Ok(Arg::Text(s.trim().to_string())),
                (None, _) => plan_err!("{f}: {name} must be a string, got {value}"),
            },
        }
    }

    /// Arguments a report's columns can be learned with where its defaults do
    /// not plan (a required account or event, or a whole number this lake
    /// refuses, such as a horizon longer than its history): an account of the
    /// lake, a made-up user or event name (names are checked when a report
    /// runs), 1 for a whole number; NULL (the default) for the rest, and with
    /// `keep_defaults`, for every argument with a default of its own too
    /// (funnel_time_to_convert's steps 1 and 1 do not plan; its defaults do).
    /// The columns do not depend on the values.
    fn stand_ins(&self, facts: &LakeFacts, keep_defaults: bool) -> Vec<Expr> {
        let org = facts.org_ids.as_ref().and_then(|ids| ids.iter().min().cloned()).unwrap_or_default();
        self.template
            .args
            .iter()
            .map(|p| {
                let v = match (p.ty, p.name.as_str()) {
                    _ if keep_defaults && p.default.is_some() => ScalarValue::Null,
                    (ArgType::Text, "org_id") => ScalarValue::Utf8(Some(org.clone())),
                    // Any user: an unknown one has no rows, and the same columns.
                    (ArgType::Text, "user_id") => ScalarValue::Utf8(Some("x".into())),
                    (ArgType::Event, _) => ScalarValue::Utf8(Some("x".into())),
                    (ArgType::Events, _) => ScalarValue::Utf8(Some("x,y".into())),
                    (ArgType::Int, _) => ScalarValue::Int64(Some(1)),
                    _ => ScalarValue::Null,
                };
                Expr::Literal(v, None)
            })
            .collect()
    }

    /// Whether every argument has a default (in the header, or from the lake's dates).
    fn needs_no_arguments(&self) -> bool {
        let day = NaiveDate::from_ymd_opt(2000, 1, 1);
        let probe = LakeFacts { first_day: day, last_day: day, ..LakeFacts::default() };
        self.template.args.iter().all(|p| p.default.is_some() || self.default_arg(&probe, &p.name).is_ok())
    }

    /// Defaults by name: dates are the latest day with events (`from` four
    /// weeks before it), `days` is 7, `period` is a week.
    fn default_arg(&self, facts: &LakeFacts, name: &str) -> Result<Arg> {
        let f = &self.template.name;
        let last = || facts.last_day.ok_or_else(|| plan_datafusion_err!("{f}: the lake has no events, so {name} has no default"));
        match name {
            "as_of" | "to" => Ok(Arg::Date(last()?)),
            "from" => Ok(Arg::Date(shift(f, name, last()?, -27)?)),
            "first" => Ok(Arg::Date(facts.first_day.ok_or_else(|| plan_datafusion_err!("{f}: the lake has no events"))?)),
            "days" => Ok(Arg::Int(7)),
            "period" => Ok(Arg::Text("week".into())),
            _ => plan_err!("{f}: argument {name} is required: {}", self.template.signature()),
        }
    }

    /// Checks the arguments a caller gave.
    fn args(&self, facts: &LakeFacts, exprs: &[Expr]) -> Result<Args> {
        let t = &self.template;
        let f = &t.name;
        if exprs.len() > t.args.len() {
            return plan_err!("{f} takes at most {} arguments: {}", t.args.len(), t.signature());
        }
        let mut args = HashMap::new();
        for (i, p) in t.args.iter().enumerate() {
            let value = match exprs.get(i) {
                Some(e) => Some(const_value(e).ok_or_else(|| plan_datafusion_err!("{f}: {} must be a constant, got {e}", p.name))?),
                None => None,
            };
            args.insert(p.name.clone(), self.arg(facts, p, value)?);
        }
        for key in ["days", "periods", "window_days", "max_n", "csms", "per_csm"] {
            if let Some(Arg::Int(v)) = args.get(key) {
                let max = match key {
                    "days" | "window_days" => 3660,
                    "max_n" => 100,
                    _ => 1000,
                };
                if *v < 1 || *v > max {
                    return plan_err!("{f}: {key} must be between 1 and {max}, got {v}");
                }
            }
        }
        for key in ["as_of", "from", "to"] {
            if let Some(Arg::Date(d)) = args.get(key) {
                if t.dates_anywhere {
                    check_plausible(f, key, *d)?;
                } else {
                    self.check_in_data(facts, key, *d)?;
                }
            }
        }
        if let (Some(Arg::Text(org)), Some(known)) = (args.get("org_id"), &facts.org_ids) {
            // '' is "every account" where that is the argument's default.
            let every = org.is_empty() && t.args.iter().any(|p| p.name == "org_id" && p.default.as_deref() == Some(""));
            if !every && !known.contains(org) {
                return plan_err!("{f}: unknown org_id '{org}': no such account in the accounts table");
            }
        }
        if let (Some(Arg::Date(from)), Some(Arg::Date(to))) = (args.get("from"), args.get("to")) {
            if from > to {
                return plan_err!("{f}: from ({from}) is after to ({to})");
            }
        }
        Ok(Args(args))
    }

    /// The placeholder values of a prepared template.
    fn bind(&self, args: &Args) -> Result<Vec<ScalarValue>> {
        let f = &self.template.name;
        let date = |d: NaiveDate| -> Result<ScalarValue> { Ok(ScalarValue::Date32(Some(date32(f, d)?))) };
        // `days` back from as_of, k periods of it: days is checked to 1..=3660 first.
        let back = |k: i64, less: i64| -> Result<ScalarValue> {
            let days = args.int("days")?;
            let n = days.checked_mul(k).and_then(|n| n.checked_sub(less)).ok_or_else(|| plan_datafusion_err!("{f}: days is out of range"))?;
            date(shift(f, "as_of", args.date("as_of")?, -n)?)
        };
        self.template
            .params
            .iter()
            .map(|p| -> Result<ScalarValue> {
                Ok(match p.name.as_str() {
                    "cur_end" => date(args.date("as_of")?)?,
                    "cur_start" => back(1, 1)?,
                    "prev_start" => back(2, 1)?,
                    "prev_end" => back(1, 0)?,
                    "prev2_start" => back(3, 1)?,
                    other => match args.0.get(other) {
                        Some(Arg::Date(d)) => date(*d)?,
                        Some(Arg::Int(v)) => ScalarValue::Int64(Some(*v)),
                        // SQL's VARCHAR is Utf8View in DataFusion's planner.
                        Some(Arg::Text(s)) => ScalarValue::Utf8View(Some(s.clone())),
                        Some(Arg::List(v)) => ScalarValue::Utf8View(Some(v.join(","))),
                        None => return internal_err!("{}: no value for parameter {other}", self.template.name),
                    },
                })
            })
            .collect()
    }

    /// Fills the `{{name}}` slots of a rendered template.
    fn render(&self, facts: &LakeFacts, body: &str, args: &Args) -> Result<String> {
        let f = &self.template.name;
        let mut values: HashMap<String, String> = args.0.iter().map(|(k, v)| (k.clone(), v.sql())).collect();
        // A report over other tables (subscriptions) may run on a lake without events.
        if let Ok(first) = self.default_arg(facts, "first") {
            values.insert("first_day".into(), first.sql());
        }
        if let Ok(last) = self.default_arg(facts, "as_of") {
            values.insert("last_day".into(), last.sql());
        }
        values.extend(slots::slots(f, args, &self.config, facts)?);
        let mut out = String::with_capacity(body.len() + 256);
        let mut rest = body;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let j = rest[i..].find("}}").ok_or_else(|| plan_datafusion_err!("sql/reports/{f}.sql: unclosed {{{{"))?;
            let key = rest[i + 2..i + j].trim();
            let v = values.get(key).ok_or_else(|| plan_datafusion_err!("sql/reports/{f}.sql: unknown slot {{{{{key}}}}}"))?;
            out.push_str(v);
            rest = &rest[i + j + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn check_in_data(&self, facts: &LakeFacts, name: &str, d: NaiveDate) -> Result<()> {
        let f = &self.template.name;
        match (facts.first_day, facts.last_day) {
            (Some(first), Some(last)) if d < first || d > last => {
                plan_err!("{f}: {name} {d} is outside the data, which has events from {first} to {last}")
            }
            (None, _) | (_, None) => plan_err!("{f}: the lake has no events"),
            _ => Ok(()),
        }
    }

    /// The event names among the arguments, which must occur in the lake.
    fn events_to_check(&self, args: &Args) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.template.args {
            match (p.ty, args.0.get(&p.name)) {
                // '' is "no such event" where that is the argument's default (paths' start and end).
                (ArgType::Event, Some(Arg::Text(e))) if e.is_empty() && p.default.as_deref() == Some("") => {}
                (ArgType::Event, Some(Arg::Text(e))) => out.push((p.name.clone(), e.clone())),
                (ArgType::Events, Some(Arg::List(v))) => out.extend(v.iter().map(|e| (p.name.clone(), e.clone()))),
                _ => {}
            }
        }
        // A target such as 'event:invite_user' names an event too.
        if let Some((name, _)) = args.0.get("target").and_then(|t| if let Arg::Text(t) = t { slots::event_target(t) } else { None }) {
            out.push(("target".into(), name.to_string()));
        }
        out
    }
}

impl TableFunctionImpl for ReportFunction {
    fn call_with_args(&self, call: datafusion::catalog::TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let facts = self.facts.facts(call.session());
        // Planned all the same (the table is registered, empty), so its columns
        // are known; running it says what is missing.
        let refusal = self.template.needs.filter(|t| facts.empty_tables.contains(t)).map(|t| {
            let columns: Vec<String> = t.schema().fields().iter().map(|c| c.name().clone()).collect();
            format!(
                "{}: the lake has no {table}; load them with `vitals ingest --table {table} FILE` (columns {})",
                self.template.name,
                columns.join(", "),
                table = t.name()
            )
        });
        let args = self.args(&facts, call.exprs())?;
        let events = self.events_to_check(&args);
        let (plan, stages) = match &self.body {
            Body::Prepared(plan) => (plan.clone().with_param_values(self.bind(&args)?)?, Vec::new()),
            Body::Rendered(body) => {
                let sql = self.render(&facts, body, &args)?;
                let state = call
                    .session()
                    .as_any()
                    .downcast_ref::<SessionState>()
                    .ok_or_else(|| DataFusionError::Internal("report functions need a SessionState".into()))?;
                self.plan_stages(state, &sql)?
            }
        };
        let view = ViewTable::new(plan, None);
        if events.is_empty() && stages.is_empty() && refusal.is_none() {
            return Ok(Arc::new(view));
        }
        Ok(Arc::new(CheckedReport { name: self.template.name.clone(), view, events, known: facts.event_names.clone(), stages, refusal }))
    }
}

impl ReportFunction {
    /// Plans a rendered report. Its SQL may first name intermediate results
    /// (`-- stage NAME` before a query ending in `;`): each is computed once
    /// when the report runs and read from memory by the later queries, so a
    /// result several parts of the report use is not recomputed from the
    /// events for each (SQL would inline it at every use). A stage holds
    /// aggregates (per user or account), never the events themselves.
    fn plan_stages(&self, state: &SessionState, sql: &str) -> Result<(LogicalPlan, Vec<Stage>)> {
        let name = &self.template.name;
        let ctx = SessionContext::new_with_state(stage_state(state)?);
        let plan = |sql: &str| -> Result<LogicalPlan> {
            // Planning resolves tables from the in-memory catalog and does no I/O,
            // so it completes on its first poll; polled here without an executor,
            // so that a report whose SQL calls another staged report plans too.
            let planned = futures::FutureExt::now_or_never(ctx.state().create_logical_plan(sql))
                .ok_or_else(|| DataFusionError::Internal(format!("planning {name} waited on I/O")))?;
            planned.map_err(|e| DataFusionError::Context(format!("{name} (rendered sql/reports/{name}.sql)"), Box::new(e)))
        };
        let mut stages = Vec::new();
        let mut rest = sql;
        while let Some(i) = rest.find("-- stage ") {
            let after = &rest[i + "-- stage ".len()..];
            let (stage_name, body) = after.split_once('\n').ok_or_else(|| plan_datafusion_err!("sql/reports/{name}.sql: empty stage"))?;
            let stage_name = stage_name.trim();
            let end = body.find(";\n").or_else(|| body.rfind(';')).ok_or_else(|| plan_datafusion_err!("sql/reports/{name}.sql: stage {stage_name} lacks its closing `;`"))?;
            let stage_plan = plan(&body[..end]).map_err(|e| DataFusionError::Context(format!("stage {stage_name}"), Box::new(e)))?;
            // Every column nullable: a planner may prove a column non-null that
            // execution reports as nullable (coalesce(x, FALSE)), and a result held
            // in memory must accept the batches as they come.
            let fields: Vec<arrow::datatypes::Field> = stage_plan.schema().as_arrow().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
            let table = Arc::new(Materialized { schema: Arc::new(arrow::datatypes::Schema::new(fields)), data: OnceLock::new() });
            ctx.register_table(stage_name, table.clone())?;
            stages.push(Stage { name: stage_name.to_string(), plan: stage_plan, table, ctx: ctx.clone() });
            rest = &body[end + 1..];
        }
        Ok((plan(rest)?, stages))
    }
}

/// A copy of the caller's session in which a report's stages can be named
/// without touching the caller's catalog (which other queries share): its
/// default schema resolves stage names first, then the session's own tables.
fn stage_state(state: &SessionState) -> Result<SessionState> {
    let options = state.config().options();
    let (catalog_name, schema_name) = (options.catalog.default_catalog.clone(), options.catalog.default_schema.clone());
    let inner = state
        .catalog_list()
        .catalog(&catalog_name)
        .and_then(|c| c.schema(&schema_name))
        .ok_or_else(|| DataFusionError::Internal("no default schema".into()))?;
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(&schema_name, Arc::new(StageSchema { inner, stages: Default::default() }))?;
    let list = MemoryCatalogProviderList::new();
    list.register_catalog(catalog_name, Arc::new(catalog));
    Ok(SessionStateBuilder::new_from_existing(state.clone()).with_catalog_list(Arc::new(list)).build())
}

/// The default schema of a staged report's session.
#[derive(Debug)]
struct StageSchema {
    inner: Arc<dyn SchemaProvider>,
    stages: std::sync::RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

#[async_trait]
impl SchemaProvider for StageSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(self.stages.read().map(|s| s.keys().cloned().collect::<Vec<_>>()).unwrap_or_default());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let stage = self.stages.read().ok().and_then(|s| s.get(name).cloned());
        match stage {
            Some(t) => Ok(Some(t)),
            None => self.inner.table(name).await,
        }
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut stages = self.stages.write().map_err(|_| DataFusionError::Internal("stage schema lock".into()))?;
        Ok(stages.insert(name, table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.stages.read().is_ok_and(|s| s.contains_key(name)) || self.inner.table_exist(name)
    }
}

/// One intermediate result of a staged report.
struct Stage {
    name: String,
    plan: LogicalPlan,
    table: Arc<Materialized>,
    ctx: SessionContext,
}

/// A stage's result, filled when the report runs.
#[derive(Debug)]
struct Materialized {
    schema: SchemaRef,
    data: OnceLock<Vec<RecordBatch>>,
}

/// Whether a table is a report stage's result.
pub fn is_stage_result(table: &dyn TableProvider) -> bool {
    let any: &dyn std::any::Any = table;
    any.is::<Materialized>()
}

/// The rows of a report stage's result, once it has run.
pub fn stage_result(table: &dyn TableProvider) -> Option<&[RecordBatch]> {
    let any: &dyn std::any::Any = table;
    any.downcast_ref::<Materialized>()?.data.get().map(Vec::as_slice)
}

#[async_trait]
impl TableProvider for Materialized {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.data.get().ok_or_else(|| DataFusionError::Internal("a report stage was read before it ran".into()))?;
        MemTable::try_new(self.schema.clone(), vec![batches.clone()])?.scan(state, projection, filters, limit).await
    }
}

/// A report that does work before its plan runs: event names among its
/// arguments are checked against the lake (the lookup reads the event column
/// once per session, so it is not paid by queries that use no such report),
/// and its stages are computed in order.
struct CheckedReport {
    name: String,
    view: ViewTable,
    events: Vec<(String, String)>,
    known: Arc<OnceLock<Arc<HashSet<String>>>>,
    stages: Vec<Stage>,
    /// Why it cannot run on this lake, said when it is run.
    refusal: Option<String>,
}

impl fmt::Debug for CheckedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedReport").field("name", &self.name).finish()
    }
}

async fn event_names(state: &dyn Session) -> Result<Arc<HashSet<String>>> {
    let state = state.as_any().downcast_ref::<SessionState>().ok_or_else(|| DataFusionError::Internal("need a SessionState".into()))?;
    let ctx = SessionContext::new_with_state(state.clone());
    Ok(Arc::new(distinct_strings(&ctx, "SELECT DISTINCT CAST(event AS VARCHAR) FROM events").await?))
}

/// The values of a query's single text column, for lookups such as "is this a known event".
pub async fn distinct_strings(ctx: &SessionContext, sql: &str) -> Result<HashSet<String>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut values = HashSet::new();
    for b in &batches {
        let col = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        values.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    Ok(values)
}

#[async_trait]
impl TableProvider for CheckedReport {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.view.supports_filters_pushdown(filters)
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        self.ready(state).await?;
        // The view's plan is optimised here and again as part of the query's
        // plan. Planned here without dynamic filters, the second pass may
        // still reorder its joins (DataFusion refuses to swap a join whose
        // dynamic filter exists) and then adds the dynamic filters itself.
        let session = state.as_any().downcast_ref::<SessionState>().ok_or_else(|| DataFusionError::Internal("need a SessionState".into()))?;
        let mut config = session.config().clone();
        config.options_mut().optimizer.enable_dynamic_filter_pushdown = false;
        config.options_mut().optimizer.enable_join_dynamic_filter_pushdown = false;
        config.options_mut().optimizer.enable_topk_dynamic_filter_pushdown = false;
        config.options_mut().optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        // The catalog exists: building must not register a fresh, empty one over it.
        config.options_mut().catalog.create_default_catalog_and_schema = false;
        let inner = SessionStateBuilder::new_from_existing(session.clone()).with_config(config).build();
        self.view.scan(&inner, projection, filters, limit).await
    }
}

impl CheckedReport {
    /// Says why the report cannot run, checks its event names and runs its
    /// stages (once: a report read twice in a query shares them).
    async fn ready(&self, state: &dyn Session) -> Result<()> {
        if let Some(why) = &self.refusal {
            return plan_err!("{why}");
        }
        let known = match self.known.get() {
            Some(k) => k.clone(),
            None => {
                let k = event_names(state).await?;
                let _ = self.known.set(k.clone());
                k
            }
        };
        for (arg, e) in &self.events {
            if !known.contains(e) {
                let mut sample: Vec<&String> = known.iter().collect();
                sample.sort();
                let list: Vec<&str> = sample.iter().take(12).map(|s| s.as_str()).collect();
                return plan_err!("{}: unknown event '{e}' in {arg}; the lake's events include: {}", self.name, list.join(", "));
            }
        }
        for stage in &self.stages {
            if stage.table.data.get().is_none() {
                let started = std::time::Instant::now();
                let batches = stage.ctx.execute_logical_plan(stage.plan.clone()).await?.collect().await?;
                let batches = batches.iter().map(compact_views).collect::<Result<Vec<_>>>()?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                tracing::debug!(report = %self.name, stage = %stage.name, rows, elapsed_ms = started.elapsed().as_millis(), "report stage");
                let _ = stage.table.data.set(batches);
            }
        }
        Ok(())
    }
}

/// A stage's batch with its string and binary views holding only the bytes
/// they show. A view column that went through joins can hold every data
/// buffer of the join's build side; kept as it is, each later join and sort
/// of the stage carries (and counts against the memory limit) all of them
/// again, at a cost that grows with the square of the rows.
fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch.columns().iter().any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView)) {
        return Ok(batch.clone());
    }
    let columns: Vec<arrow::array::ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as arrow::array::ArrayRef,
            DataType::BinaryView => Arc::new(c.as_binary_view().gc()) as arrow::array::ArrayRef,
            _ => Arc::clone(c),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// A plan whose reports are made ready to run elsewhere (on a cluster): each
/// report's checks and stages are run (the stages as queries of the session
/// `state`), and the report is replaced by its SQL's plan, as a view, with the
/// stages' results in it. `reports.NAME` is called with its defaults first.
/// Reports inside reports are made ready the same way.
pub fn inline_reports(plan: LogicalPlan, state: &SessionState) -> futures::future::BoxFuture<'_, Result<LogicalPlan>> {
    use datafusion::datasource::provider_as_source;
    use futures::FutureExt;
    async move {
        let found = tables_scanned(&plan, |t| {
            let any: &dyn std::any::Any = t;
            any.is::<CheckedReport>() || any.is::<ReportView>()
        })?;
        if found.is_empty() {
            return Ok(plan);
        }
        let mut views: Vec<(Arc<dyn TableProvider>, Arc<dyn datafusion::logical_expr::TableSource>)> = Vec::new();
        for provider in found {
            let any: &dyn std::any::Any = provider.as_ref();
            let called;
            let report: Arc<dyn TableProvider> = match any.downcast_ref::<ReportView>() {
                Some(view) => {
                    called = view.func.call_with_args(TableFunctionArgs::new(&[], state))?;
                    Arc::clone(&called)
                }
                None => Arc::clone(&provider),
            };
            let any: &dyn std::any::Any = report.as_ref();
            let body = if let Some(checked) = any.downcast_ref::<CheckedReport>() {
                checked.ready(state).await?;
                checked.view.logical_plan().clone()
            } else if let Some(view) = any.downcast_ref::<ViewTable>() {
                view.logical_plan().clone()
            } else {
                return Err(DataFusionError::Internal("a report that is neither a view nor a checked report".into()));
            };
            let body = inline_reports(body, state).await?;
            views.push((provider, provider_as_source(Arc::new(ViewTable::new(body, None)))));
        }
        with_tables_replaced(plan, &views)
    }
    .boxed()
}

/// The tables a plan (its subqueries included) scans that `wanted` picks, each once.
pub fn tables_scanned(plan: &LogicalPlan, wanted: impl Fn(&dyn TableProvider) -> bool) -> Result<Vec<Arc<dyn TableProvider>>> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::source_as_provider;
    let mut found: Vec<Arc<dyn TableProvider>> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(p) = source_as_provider(&scan.source) {
                if wanted(p.as_ref()) && !found.iter().any(|f| Arc::ptr_eq(f, &p)) {
                    found.push(p);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// `plan` with each scan of a table in `replacements` reading its replacement instead.
pub fn with_tables_replaced(
    plan: LogicalPlan,
    replacements: &[(Arc<dyn TableProvider>, Arc<dyn datafusion::logical_expr::TableSource>)],
) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::datasource::source_as_provider;
    let rewritten = plan.transform_up_with_subqueries(|node| {
        if let LogicalPlan::TableScan(mut scan) = node {
            if let Ok(p) = source_as_provider(&scan.source) {
                if let Some((_, source)) = replacements.iter().find(|(f, _)| Arc::ptr_eq(f, &p)) {
                    scan.source = Arc::clone(source);
                    return Ok(Transformed::yes(LogicalPlan::TableScan(scan)));
                }
            }
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        Ok(Transformed::no(node))
    })?;
    Ok(rewritten.data)
}

/// Reads the report templates (`sql/reports/*.sql`): each `${part:NAME}` is
/// replaced by `sql/parts/NAME.sql` (SQL several reports share, without its
/// header comments), then the config's values are filled in.
pub fn templates(config: &Config, files: &[(&str, &str)], parts: &[(&str, &str)]) -> Result<Vec<Template>> {
    files
        .iter()
        .map(|(file, text)| {
            let mut text = text.to_string();
            while let Some(i) = text.find("${part:") {
                let end = text[i..].find('}').ok_or_else(|| plan_datafusion_err!("sql/reports/{file}: unclosed ${{part:"))?;
                let name = &text[i + "${part:".len()..i + end];
                let part = parts
                    .iter()
                    .find(|(f, _)| f.strip_suffix(".sql") == Some(name))
                    .ok_or_else(|| plan_datafusion_err!("sql/reports/{file}: no sql/parts/{name}.sql"))?;
                let body: Vec<&str> = part.1.lines().skip_while(|l| l.starts_with("--")).collect();
                text.replace_range(i..i + end + 1, body.join("\n").trim_end());
            }
            let expanded = config.expand_sql(&text).map_err(|e| plan_datafusion_err!("sql/reports/{file}: {e}"))?;
            Template::parse(file, &expanded)
        })
        .collect()
}

/// Plans every template and registers it as a table function. A prepared
/// template's output columns come from its plan; a rendered one's are
/// learned when first asked for ([`ReportFunction::columns`]): planning
/// every report at start-up would cost each CLI call a third of a second.
pub async fn register(ctx: &SessionContext, config: &Config, facts: Arc<FactsSource>, templates: &mut [Template]) -> Result<Vec<FunctionDoc>> {
    let config = Arc::new(config.clone());
    let mut docs = Vec::new();
    let mut views = Vec::new();
    for known in templates.iter_mut() {
        let template = known.clone();
        let file = &known.file;
        let body = if template.params.is_empty() && template.sql.contains("{{") {
            Body::Rendered(template.body())
        } else {
            let types: Vec<&str> = template.params.iter().map(|p| p.ty.sql()).collect();
            let prepare = format!("PREPARE vitals_{}({}) AS {}", template.name, types.join(", "), template.body());
            let prepared = ctx
                .state()
                .create_logical_plan(&prepare)
                .await
                .map_err(|e| DataFusionError::Context(format!("planning sql/reports/{file}"), Box::new(e)))?;
            if let LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(p)) = &prepared {
                let _ = known.columns.get_or_init(|| Arc::new(p.input.schema().as_arrow().clone()));
            }
            Body::Prepared(prepared)
        };
        docs.push(FunctionDoc { kind: "table", signature: template.signature(), description: template.description.clone(), order: template.order.clone() });
        let name = template.name.clone();
        let func = Arc::new(ReportFunction { template, body, facts: Arc::clone(&facts), config: config.clone() });
        ctx.register_udtf(&name, func.clone());
        // Browsable as `reports.NAME` when it needs no argument.
        if func.needs_no_arguments() {
            views.push(func);
        }
    }
    // Every report registered first: a staged report may call another.
    let schema: Arc<dyn SchemaProvider> = Arc::new(ReportViews { state: ctx.state(), views });
    let catalog = ctx.catalog("datafusion").ok_or_else(|| DataFusionError::Internal("no datafusion catalog".into()))?;
    catalog.register_schema("reports", schema)?;
    Ok(docs)
}

impl ReportFunction {
    /// The report's output columns: learned once by planning (not running) it
    /// with its defaults, or where they do not plan, with stand-ins for the
    /// arguments; None when neither plans here (a lake without events).
    fn columns(&self, state: &SessionState) -> Option<SchemaRef> {
        if let Some(known) = self.template.columns.get() {
            return Some(known.clone());
        }
        let facts = self.facts.facts(state);
        let planned = self
            .call_with_args(TableFunctionArgs::new(&[], state))
            .or_else(|_| self.call_with_args(TableFunctionArgs::new(&self.stand_ins(&facts, true), state)))
            .or_else(|_| self.call_with_args(TableFunctionArgs::new(&self.stand_ins(&facts, false), state)));
        let schema = planned.ok()?.schema();
        Some(self.template.columns.get_or_init(|| schema).clone())
    }
}

/// The `reports` schema: every report that needs no argument, as a view.
/// The session state it plans with is the one the reports were registered in.
struct ReportViews {
    state: SessionState,
    views: Vec<Arc<ReportFunction>>,
}

impl fmt::Debug for ReportViews {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportViews").field("views", &self.views.len()).finish()
    }
}

#[async_trait]
impl SchemaProvider for ReportViews {
    fn table_names(&self) -> Vec<String> {
        self.views.iter().map(|f| f.template.name.clone()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(func) = self.views.iter().find(|f| f.template.name == name) else { return Ok(None) };
        Ok(func.columns(&self.state).map(|schema| Arc::new(ReportView { func: Arc::clone(func), schema }) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.views.iter().any(|f| f.template.name == name)
    }
}

/// The output columns of report `name` registered in `state` (learned once,
/// by planning it there), or None when it is no report or does not plan.
pub fn report_columns(state: &SessionState, name: &str) -> Option<SchemaRef> {
    let func = state.table_functions().get(name)?;
    let any: &dyn std::any::Any = func.function().as_ref();
    any.downcast_ref::<ReportFunction>()?.columns(state)
}

/// `reports.NAME`: a report with its default arguments as a view, for BI
/// tools that browse tables instead of calling functions. Each scan calls the
/// report afresh, so its defaults ("the last 7 days") follow the lake, in the
/// session's scope.
#[derive(Debug)]
struct ReportView {
    func: Arc<ReportFunction>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for ReportView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let report = self.func.call_with_args(TableFunctionArgs::new(&[], state))?;
        report.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Array, StringViewArray};
    use arrow::datatypes::{Field, Schema};

    /// A column gathered by concatenation from many batches carries each
    /// batch's data buffers; compacted, it holds one buffer of the bytes it
    /// shows, and the same values.
    #[test]
    fn compacted_views_keep_their_values_and_drop_other_buffers() {
        let long = |i: usize| format!("an account name longer than twelve bytes {i}");
        let parts: Vec<StringViewArray> = (0..50).map(|b| StringViewArray::from_iter_values((0..100).map(|i| long(b * 100 + i)))).collect();
        let refs: Vec<&dyn Array> = parts.iter().map(|p| p as &dyn Array).collect();
        let gathered = arrow::compute::concat(&refs).unwrap();
        // Two rows, as a join's output would take them from its build side.
        let taken = arrow::compute::take(&gathered, &arrow::array::UInt32Array::from(vec![7, 4321]), None).unwrap();
        assert_eq!(taken.as_string_view().data_buffers().len(), 50);
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8View, false), Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![taken, Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef]).unwrap();
        let compacted = compact_views(&batch).unwrap();
        let names = compacted.column(0).as_string_view();
        assert!(names.data_buffers().len() <= 1, "{} buffers", names.data_buffers().len());
        assert_eq!(names.value(0), long(7));
        assert_eq!(names.value(1), long(4321));
        assert_eq!(compacted.column(1).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec(), vec![1, 2]);
        assert!(compacted.get_array_memory_size() * 20 < batch.get_array_memory_size());
    }
}
