//! Table functions whose bodies are SQL templates (`sql/reports/*.sql`). Each
//! template is planned once per session as a prepared statement; a call binds
//! its arguments into the placeholders and hands DataFusion the plan as a
//! view, so filters and projections still push down into the Parquet scan.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use chrono::{Duration, NaiveDate};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_datafusion_err, plan_err, ScalarValue};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;

use super::{scalar_text, FunctionDoc};
use crate::config::Config;

/// What the lake holds, for defaults ("as of the latest day") and range checks.
#[derive(Debug, Clone, Default)]
pub struct LakeFacts {
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// The accounts table's org_ids (None when the lake has no accounts table).
    pub org_ids: Option<Arc<std::collections::HashSet<String>>>,
}

/// A parsed `sql/reports/NAME.sql` file.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    /// The arguments a caller passes: (name, type).
    pub args: Vec<(String, String)>,
    /// The placeholders $1..$n: (name, type).
    pub params: Vec<(String, String)>,
    pub description: String,
    pub sql: String,
}

impl Template {
    /// Reads the two header lines:
    /// `-- name(arg TYPE, ...): description` and `-- params: name TYPE, ...`.
    pub fn parse(file: &str, text: &str) -> Result<Template> {
        let bad = |what: &str| plan_datafusion_err!("sql/reports/{file}: {what}");
        let mut lines = text.lines();
        let head = lines.next().and_then(|l| l.strip_prefix("-- ")).ok_or_else(|| bad("first line must be `-- name(args): description`"))?;
        let (sig, description) = head.split_once("): ").ok_or_else(|| bad("first line lacks `): `"))?;
        let (name, args) = sig.split_once('(').ok_or_else(|| bad("first line lacks `(`"))?;
        let params = lines
            .next()
            .and_then(|l| l.strip_prefix("-- params:"))
            .ok_or_else(|| bad("second line must be `-- params: name TYPE, ...`"))?;
        let pairs = |s: &str| -> Result<Vec<(String, String)>> {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.split_once(' ')
                        .map(|(n, t)| (n.trim().to_string(), t.trim().to_string()))
                        .ok_or_else(|| bad(&format!("cannot read '{p}' as `name TYPE`")))
                })
                .collect()
        };
        Ok(Template {
            name: name.trim().to_string(),
            args: pairs(args)?,
            params: pairs(params)?,
            description: description.trim().to_string(),
            sql: text.to_string(),
        })
    }

    pub fn signature(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|(n, _)| n.as_str()).collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

/// A table function backed by a planned template.
struct SqlTableFunction {
    template: Template,
    prepared: LogicalPlan,
    facts: LakeFacts,
}

impl fmt::Debug for SqlTableFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTableFunction").field("name", &self.template.name).finish()
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
        _ => None,
    }
}

/// The value a caller gave for one argument.
#[derive(Debug, Clone)]
enum Arg {
    Date(NaiveDate),
    Int(i64),
    Text(String),
}

impl SqlTableFunction {
    fn arg(&self, name: &str, ty: &str, value: Option<ScalarValue>) -> Result<Arg> {
        let f = &self.template.name;
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return self.default_arg(name);
        };
        match ty {
            "DATE" => {
                if let ScalarValue::Date32(Some(d)) = value {
                    return Ok(Arg::Date(NaiveDate::default() + Duration::days(d as i64)));
                }
                let text = scalar_text(&value).map_or_else(|| value.to_string(), str::to_string);
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map(Arg::Date)
                    .map_err(|_| plan_datafusion_err!("{f}: {name} must be a date such as '2024-05-31', got {value}"))
            }
            "BIGINT" => match value.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(v))) if !matches!(value, ScalarValue::Utf8(_) | ScalarValue::Float64(_) | ScalarValue::Float32(_)) => Ok(Arg::Int(v)),
                _ => plan_err!("{f}: {name} must be a whole number, got {value}"),
            },
            _ => match (scalar_text(&value), name) {
                (Some(s), "period") => match s.trim().to_ascii_lowercase().as_str() {
                    p @ ("day" | "week" | "month") => Ok(Arg::Text(p.to_string())),
                    _ => plan_err!("{f}: unknown period '{s}'; use day, week or month"),
                },
                (Some(s), _) => Ok(Arg::Text(s.to_string())),
                (None, _) => plan_err!("{f}: {name} must be a string, got {value}"),
            },
        }
    }

    /// Defaults: dates are the latest day with events, `days` is 7, `from`
    /// is four weeks before the latest day, `period` is a week.
    fn default_arg(&self, name: &str) -> Result<Arg> {
        let f = &self.template.name;
        let last = || self.facts.last_day.ok_or_else(|| plan_datafusion_err!("{f}: the lake has no events, so {name} has no default"));
        match name {
            "as_of" | "to" => Ok(Arg::Date(last()?)),
            "from" => Ok(Arg::Date(last()? - Duration::days(27))),
            "days" => Ok(Arg::Int(7)),
            "period" => Ok(Arg::Text("week".into())),
            _ => plan_err!("{f}: argument {name} is required: {}", self.template.signature()),
        }
    }

    /// Checks the arguments and derives the placeholder values.
    fn bind(&self, exprs: &[Expr]) -> Result<Vec<ScalarValue>> {
        let t = &self.template;
        let f = &t.name;
        if exprs.len() > t.args.len() {
            return plan_err!("{f} takes at most {} arguments: {}", t.args.len(), t.signature());
        }
        let mut args: HashMap<&str, Arg> = HashMap::new();
        for (i, (name, ty)) in t.args.iter().enumerate() {
            let value = match exprs.get(i) {
                Some(e) => Some(const_value(e).ok_or_else(|| plan_datafusion_err!("{f}: {name} must be a constant, got {e}"))?),
                None => None,
            };
            args.insert(name.as_str(), self.arg(name, ty, value)?);
        }
        if let Some(Arg::Int(days)) = args.get("days") {
            if *days < 1 || *days > 3660 {
                return plan_err!("{f}: days must be between 1 and 3660, got {days}");
            }
        }
        for key in ["as_of", "from", "to"] {
            if let Some(Arg::Date(d)) = args.get(key) {
                self.check_in_data(key, *d)?;
            }
        }
        if let (Some(Arg::Text(org)), Some(known)) = (args.get("org_id"), &self.facts.org_ids) {
            if !known.contains(org) {
                return plan_err!("{f}: unknown org_id '{org}': no such account in the accounts table");
            }
        }
        if let (Some(Arg::Date(from)), Some(Arg::Date(to))) = (args.get("from"), args.get("to")) {
            if from > to {
                return plan_err!("{f}: from ({from}) is after to ({to})");
            }
        }
        let date = |d: NaiveDate| ScalarValue::Date32(Some((d - NaiveDate::default()).num_days() as i32));
        let as_of = || match args.get("as_of") {
            Some(Arg::Date(d)) => Ok(*d),
            _ => plan_err!("{f}: internal: no as_of"),
        };
        let days = || match args.get("days") {
            Some(Arg::Int(d)) => Ok(*d),
            _ => plan_err!("{f}: internal: no days"),
        };
        t.params
            .iter()
            .map(|(name, _)| -> Result<ScalarValue> {
                Ok(match name.as_str() {
                    "cur_end" => date(as_of()?),
                    "cur_start" => date(as_of()? - Duration::days(days()? - 1)),
                    "prev_start" => date(as_of()? - Duration::days(2 * days()? - 1)),
                    other => match args.get(other) {
                        Some(Arg::Date(d)) => date(*d),
                        Some(Arg::Int(v)) => ScalarValue::Int64(Some(*v)),
                        // SQL's VARCHAR is Utf8View in DataFusion's planner.
                        Some(Arg::Text(s)) => ScalarValue::Utf8View(Some(s.clone())),
                        None => return plan_err!("{f}: internal: no value for parameter {other}"),
                    },
                })
            })
            .collect()
    }

    fn check_in_data(&self, name: &str, d: NaiveDate) -> Result<()> {
        let f = &self.template.name;
        match (self.facts.first_day, self.facts.last_day) {
            (Some(first), Some(last)) if d < first || d > last => {
                plan_err!("{f}: {name} {d} is outside the data, which has events from {first} to {last}")
            }
            (None, _) | (_, None) => plan_err!("{f}: the lake has no events"),
            _ => Ok(()),
        }
    }
}

impl TableFunctionImpl for SqlTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let values = self.bind(args.exprs())?;
        let plan = self.prepared.clone().with_param_values(values)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The SQL type names a template may declare.
fn sql_type(file: &str, ty: &str) -> Result<&'static str> {
    match ty {
        "DATE" => Ok("DATE"),
        "BIGINT" => Ok("BIGINT"),
        "VARCHAR" => Ok("VARCHAR"),
        other => plan_err!("sql/reports/{file}: unsupported parameter type {other}"),
    }
}

/// Plans every template and registers it as a table function.
pub async fn register(
    ctx: &SessionContext,
    config: &Config,
    facts: LakeFacts,
    files: &[(&str, &str)],
) -> Result<Vec<FunctionDoc>> {
    let mut docs = Vec::new();
    for (file, text) in files {
        let template = Template::parse(file, &config.expand_sql(text))?;
        let types: Vec<&str> = template.params.iter().map(|(_, t)| sql_type(file, t)).collect::<Result<_>>()?;
        let body: String = template.sql.lines().filter(|l| !l.starts_with("-- ")).collect::<Vec<_>>().join("\n");
        let prepare = format!("PREPARE vitals_{}({}) AS {}", template.name, types.join(", "), body);
        let prepared = ctx
            .state()
            .create_logical_plan(&prepare)
            .await
            .map_err(|e| DataFusionError::Context(format!("planning sql/reports/{file}"), Box::new(e)))?;
        docs.push(FunctionDoc { kind: "table", signature: template.signature(), description: template.description.clone() });
        let name = template.name.clone();
        ctx.register_udtf(&name, Arc::new(SqlTableFunction { template, prepared, facts: facts.clone() }));
    }
    Ok(docs)
}
