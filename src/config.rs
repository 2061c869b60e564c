//! What a customer-success team tunes without code: the names of the events
//! with a meaning of their own, scoring weights, thresholds, colour bands and
//! lifecycle milestones. Read from a TOML file; every key has a documented
//! default (README, "Configuration"), and an unknown key is an error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub events: EventNames,
    pub funnel: FunnelConfig,
    pub paths: PathsConfig,
    pub magic_number: MagicConfig,
    pub health: HealthConfig,
    pub temperature: TemperatureConfig,
    pub declining: DecliningConfig,
    pub lifecycle: LifecycleConfig,
    /// `[[tokens]]`: who may call `vitals serve`, each with a role.
    pub tokens: Vec<TokenConfig>,
    /// `[[alerts]]`: the rules of the `alerts` report; without any, [`default_alerts`].
    /// `alerts = []` turns them all off.
    pub alerts: Option<Vec<AlertRule>>,
}

/// One `[[alerts]]` rule: when it holds for an account on a day, the account
/// needs its CSM. `when` and `reason` are SQL expressions over the columns of
/// `health_history` and the alert facts (README, "Alerts").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    /// high, medium or low.
    pub severity: String,
    /// A condition (SQL, true = the rule holds).
    pub when: String,
    /// Text (SQL) that says why, with the numbers.
    pub reason: String,
}

/// The rules used when the config has no `[[alerts]]`.
pub fn default_alerts() -> Vec<AlertRule> {
    let rule = |name: &str, severity: &str, when: &str, reason: &str| AlertRule {
        name: name.into(),
        severity: severity.into(),
        when: when.into(),
        reason: reason.into(),
    };
    vec![
        rule(
            "red_health",
            "high",
            "is_paid AND band = 'red'",
            "concat('health ', round(health, 1), ' is in the red band (', CASE WHEN health_change >= 0 THEN '+' ELSE '' END, round(health_change, 1), ' against the ', period_days, ' days before)')",
        ),
        rule(
            "key_users_inactive",
            "high",
            "is_paid AND key_users > 0 AND key_users_active = 0",
            "concat('none of its ', key_users, ' key users was active in the last ', period_days, ' days')",
        ),
        rule(
            "renewal_at_risk",
            "high",
            "is_paid AND days_to_renewal BETWEEN 0 AND 90 AND health < 50",
            "concat('renews in ', days_to_renewal, ' days with health ', round(health, 1))",
        ),
        rule(
            "health_dropped",
            "medium",
            "is_paid AND health_change <= -20",
            "concat('health fell ', round(-health_change, 1), ' points to ', round(health, 1), '; ', coalesce(moved_most, 'no single measure'), ' moved most')",
        ),
        rule(
            "mrr_contracted",
            "medium",
            "mrr_change < 0",
            "concat('MRR ', round(mrr, 2), ', ', round(mrr_change, 2), ' against ', lookback_days, ' days before')",
        ),
    ]
}

impl Config {
    /// The alert rules in force.
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.alerts.clone().unwrap_or_else(default_alerts)
    }
}

/// What a token may see.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every account, read-only SQL, and the server's own settings.
    Admin,
    /// Every account, read-only SQL.
    Analyst,
    /// The accounts whose accounts.csm equals the token's name.
    Csm,
    /// One account (`org_id`): the reports a vendor embeds for its own customer.
    Account,
}

impl Role {
    /// The role as the config file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Csm => "csm",
            Role::Account => "account",
        }
    }
}

/// One `[[tokens]]` entry. The secret itself is never stored: `sha256` is its
/// SHA-256 in hex (`vitals hash-token SECRET` prints it).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The principal's name in logs; for role csm, the CSM's name in accounts.csm;
    /// the user name of Basic credentials.
    pub name: String,
    pub role: Role,
    pub sha256: String,
    /// The account of a token with role `account`.
    #[serde(default)]
    pub org_id: Option<String>,
    /// When the token stops working: RFC 3339 (`2026-12-31T00:00:00Z`) or a date (midnight UTC).
    #[serde(default)]
    pub expires: Option<String>,
}

impl TokenConfig {
    /// The expiry as microseconds since the epoch, if set.
    pub fn expires_micros(&self) -> Result<Option<i64>, String> {
        let Some(text) = &self.expires else { return Ok(None) };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(Some(t.timestamp_micros()));
        }
        match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Ok(Some(d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_micros()))),
            Err(_) => Err(format!("token {}: expires '{text}' is neither RFC 3339 nor a date", self.name)),
        }
    }
}

/// `[events]`: which event names mean sign-up, login, page view and conversion.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventNames {
    /// Default "signup".
    pub signup: String,
    /// Default "login": login users are distinct users with this event.
    pub login: String,
    /// Default "page_view": page views count this event, duration comes from its duration_ms.
    pub page_view: String,
    /// Default "upgrade": the event that counts as converting to paid.
    pub conversion: String,
}

impl Default for EventNames {
    fn default() -> Self {
        Self { signup: "signup".into(), login: "login".into(), page_view: "page_view".into(), conversion: "upgrade".into() }
    }
}

/// `[funnel]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FunnelConfig {
    /// Breakdown values shown by name (the most entrants first); the rest are "other". Default 8.
    pub top_values: u32,
}

impl Default for FunnelConfig {
    fn default() -> Self {
        Self { top_values: 8 }
    }
}

/// `[paths]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Events `paths` and `path_edges` leave out unless a call names its own
    /// (page views or heartbeats between every action, say). Default none.
    pub ignore: Vec<String>,
}

/// `[magic_number]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MagicConfig {
    /// phi above this is "strong". Default 0.6.
    pub strong: f64,
    /// phi from this up to `strong` is "positive". Default 0.4.
    pub positive: f64,
    /// phi from this up to `positive` is "weak"; between -weak and weak "none"; below "negative". Default 0.2.
    pub weak: f64,
    /// How many of the best single conditions are combined into pairs. Default 8.
    pub pair_candidates: u32,
    /// How many pairs are listed. Default 10.
    pub pairs: u32,
}

impl Default for MagicConfig {
    fn default() -> Self {
        Self { strong: 0.6, positive: 0.4, weak: 0.2, pair_candidates: 8, pairs: 10 }
    }
}

/// Weights of the health index's measures; each measure is 0..1.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthWeights {
    /// Share of seats with an active user. Default 0.3.
    pub active_seats: f64,
    /// Visits, as a percentile among accounts. Default 0.2.
    pub visits: f64,
    /// Minutes of use, as a percentile among accounts. Default 0.15.
    pub duration: f64,
    /// Share of the core modules used. Default 0.2.
    pub breadth: f64,
    /// Share of key users active. Default 0.15.
    pub key_users: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        Self { active_seats: 0.3, visits: 0.2, duration: 0.15, breadth: 0.2, key_users: 0.15 }
    }
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    pub weights: HealthWeights,
    /// Weights for accounts of one plan, replacing `weights` (e.g. `[health.plan.enterprise]`).
    pub plan: BTreeMap<String, HealthWeights>,
    /// The modules whose use counts as breadth. Default: every module seen in the lake.
    pub core_modules: Vec<String>,
    /// Health at or above this is "healthy" (quadrants). Default 50.
    pub healthy_from: f64,
    /// Health below this is red. Default 40.
    pub red_below: f64,
    /// Health at or above this is green (between red and green: yellow). Default 70.
    pub green_from: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { weights: HealthWeights::default(), plan: BTreeMap::new(), core_modules: Vec::new(), healthy_from: 50.0, red_below: 40.0, green_from: 70.0 }
    }
}

/// Weights of the temperature index's measures; each measure is 0..1.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TemperatureWeights {
    /// Visits against the previous period: -100% is 0, unchanged 0.5, +100% or more 1. Default 0.3.
    pub trend: f64,
    /// Paying now. Default 0.2.
    pub paid: f64,
    /// Time to renewal: 0 when due, 1 at `renewal_horizon_days` or more; 0.5 without a renewal date. Default 0.15.
    pub renewal: f64,
    /// Active users against the previous period, scaled as trend. Default 0.15.
    pub seat_growth: f64,
    /// Share of admins and key users active. Default 0.2.
    pub admins: f64,
}

impl Default for TemperatureWeights {
    fn default() -> Self {
        Self { trend: 0.3, paid: 0.2, renewal: 0.15, seat_growth: 0.15, admins: 0.2 }
    }
}

/// `[temperature]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TemperatureConfig {
    pub weights: TemperatureWeights,
    /// Weights for accounts of one plan, replacing `weights`.
    pub plan: BTreeMap<String, TemperatureWeights>,
    /// Temperature at or above this is "warm" (quadrants). Default 50.
    pub warm_from: f64,
    /// Days to renewal at which the renewal measure reaches 1. Default 180.
    pub renewal_horizon_days: u32,
}

impl Default for TemperatureConfig {
    fn default() -> Self {
        Self { weights: TemperatureWeights::default(), plan: BTreeMap::new(), warm_from: 50.0, renewal_horizon_days: 180 }
    }
}

/// `[declining]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DecliningConfig {
    /// Accounts with fewer active users than this in the previous period are too small to rank. Default 5.
    pub min_prev_users: u32,
    /// A drop is "broad" when at least this share of the previously active non-key users stopped, "concentrated" when at least this share of key users stopped and the others did not. Default 0.5.
    pub lost_share: f64,
}

impl Default for DecliningConfig {
    fn default() -> Self {
        Self { min_prev_users: 5, lost_share: 0.5 }
    }
}

/// `[lifecycle]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// The events an account must each have done once to have had its first value, in order.
    /// Default ["create_project", "invite_user", "create_dashboard"].
    pub milestones: Vec<String>,
    /// An account whose renewal is at most this many days ahead is in "renewal". Default 60.
    pub renewal_days: u32,
    /// For this many days after first value an account is in "adoption", then "growth". Default 90.
    pub adoption_days: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            milestones: vec!["create_project".into(), "invite_user".into(), "create_dashboard".into()],
            renewal_days: 60,
            adoption_days: 90,
        }
    }
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

/// The alert rules as report stages over `facts` (`alerts.stages`: one stage
/// per rule, `alert_rule_NAME`, a row per account and day) and the union of
/// their rows (`alerts.union`). No rules: a union without rows.
pub fn alert_sql(rules: &[AlertRule]) -> (String, String) {
    let rank = |s: &str| match s {
        "high" => 1,
        "medium" => 2,
        _ => 3,
    };
    let mut stages = String::new();
    let mut union = Vec::new();
    for r in rules {
        stages.push_str(&format!(
            "-- stage alert_rule_{}\nSELECT {} AS rule, {} AS severity, {} AS severity_rank, org_id, as_of, coalesce(CAST(({}) AS BOOLEAN), FALSE) AS hit, CAST(({}) AS VARCHAR) AS reason FROM facts;\n",
            r.name,
            sql_str(&r.name),
            sql_str(&r.severity),
            rank(&r.severity),
            r.when.replace(['\n', '\r'], " "),
            r.reason.replace(['\n', '\r'], " ")
        ));
        union.push(format!("SELECT * FROM alert_rule_{}", r.name));
    }
    if union.is_empty() {
        union.push("SELECT CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS VARCHAR) AS severity, 3 AS severity_rank, org_id, as_of, FALSE AS hit, CAST(NULL AS VARCHAR) AS reason FROM facts WHERE FALSE".into());
    }
    (stages, union.join("\n    UNION ALL\n    "))
}

/// A string as a SQL literal.
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A number as a SQL DOUBLE literal.
fn sql_f64(v: f64) -> String {
    format!("CAST({v:?} AS DOUBLE)")
}

impl Config {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |reason: String| ConfigError { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: Config = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        config.check().map_err(err)?;
        Ok(config)
    }

    /// Checks what TOML types cannot: ranges and orders.
    pub fn check(&self) -> Result<(), String> {
        let h = &self.health;
        if !(0.0..=100.0).contains(&h.red_below) || h.red_below > h.green_from || h.green_from > 100.0 {
            return Err(format!("health: need 0 <= red_below ({}) <= green_from ({}) <= 100", h.red_below, h.green_from));
        }
        let m = &self.magic_number;
        if !(m.weak <= m.positive && m.positive <= m.strong) {
            return Err(format!("magic_number: need weak ({}) <= positive ({}) <= strong ({})", m.weak, m.positive, m.strong));
        }
        let usable = |v: [f64; 5]| v.iter().all(|x| *x >= 0.0) && v.iter().sum::<f64>() > 0.0;
        if !std::iter::once(&h.weights).chain(h.plan.values()).all(|w| usable([w.active_seats, w.visits, w.duration, w.breadth, w.key_users])) {
            return Err("health weights must be >= 0 with a positive sum".into());
        }
        let t = &self.temperature;
        if !std::iter::once(&t.weights).chain(t.plan.values()).all(|w| usable([w.trend, w.paid, w.renewal, w.seat_growth, w.admins])) {
            return Err("temperature weights must be >= 0 with a positive sum".into());
        }
        if self.lifecycle.milestones.is_empty() {
            return Err("lifecycle.milestones must name at least one event".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tokens {
            if !names.insert(t.name.as_str()) {
                return Err(format!("tokens: the name '{}' is used twice", t.name));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("token {}: sha256 must be 64 hex digits (vitals hash-token SECRET prints it)", t.name));
            }
            match (t.role, &t.org_id) {
                (Role::Account, None) => return Err(format!("token {}: role account needs an org_id", t.name)),
                (Role::Account, Some(_)) | (_, None) => {}
                (_, Some(_)) => return Err(format!("token {}: org_id is only for role account", t.name)),
            }
            t.expires_micros()?;
        }
        let mut rules = std::collections::HashSet::new();
        for r in self.alert_rules() {
            let named = !r.name.is_empty() && r.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !named {
                return Err(format!("alerts: rule name '{}' must be lower-case letters, digits and _", r.name));
            }
            if !rules.insert(r.name.clone()) {
                return Err(format!("alerts: the rule name '{}' is used twice", r.name));
            }
            if !["high", "medium", "low"].contains(&r.severity.as_str()) {
                return Err(format!("alert rule {}: severity '{}' must be high, medium or low", r.name, r.severity));
            }
            let both = format!("{} {}", r.when, r.reason);
            if r.when.trim().is_empty() || r.reason.trim().is_empty() || both.contains(['{', '}']) || both.contains("--") {
                return Err(format!("alert rule {}: when and reason must be SQL expressions (not empty, without {{, }} or --)", r.name));
            }
        }
        Ok(())
    }

    /// The value of each `${key}` predefined SQL may use, as SQL text.
    fn sql_values(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        let e = &self.events;
        for (k, s) in [("signup", &e.signup), ("login", &e.login), ("page_view", &e.page_view), ("conversion", &e.conversion)] {
            v.insert(k.to_string(), sql_str(s));
        }
        // A weight per plan: a CASE over the `plan` column when any plan has its own.
        fn weight<W>(default: &W, plans: &BTreeMap<String, W>, get: fn(&W) -> f64) -> String {
            if plans.is_empty() {
                return sql_f64(get(default));
            }
            let arms: String = plans.iter().map(|(p, w)| format!(" WHEN {} THEN {}", sql_str(p), sql_f64(get(w)))).collect();
            format!("(CASE plan{arms} ELSE {} END)", sql_f64(get(default)))
        }
        let h = &self.health;
        let hw: [(&str, fn(&HealthWeights) -> f64); 5] = [
            ("active_seats", |w| w.active_seats),
            ("visits", |w| w.visits),
            ("duration", |w| w.duration),
            ("breadth", |w| w.breadth),
            ("key_users", |w| w.key_users),
        ];
        for (k, get) in hw {
            v.insert(format!("health.weights.{k}"), weight(&h.weights, &h.plan, get));
        }
        let t = &self.temperature;
        let tw: [(&str, fn(&TemperatureWeights) -> f64); 5] =
            [("trend", |w| w.trend), ("paid", |w| w.paid), ("renewal", |w| w.renewal), ("seat_growth", |w| w.seat_growth), ("admins", |w| w.admins)];
        for (k, get) in tw {
            v.insert(format!("temperature.weights.{k}"), weight(&t.weights, &t.plan, get));
        }
        let list = |items: &[String]| -> String {
            if items.is_empty() { "NULL".into() } else { items.iter().map(|s| sql_str(s)).collect::<Vec<_>>().join(", ") }
        };
        v.insert("health.core_modules".into(), list(&h.core_modules));
        v.insert("health.core_module_count".into(), h.core_modules.len().to_string());
        v.insert("health.all_modules".into(), if h.core_modules.is_empty() { "TRUE" } else { "FALSE" }.into());
        v.insert("health.healthy_from".into(), sql_f64(h.healthy_from));
        v.insert("health.red_below".into(), sql_f64(h.red_below));
        v.insert("health.green_from".into(), sql_f64(h.green_from));
        v.insert("temperature.warm_from".into(), sql_f64(t.warm_from));
        v.insert("temperature.renewal_horizon_days".into(), sql_f64(t.renewal_horizon_days as f64));
        v.insert("declining.min_prev_users".into(), self.declining.min_prev_users.to_string());
        v.insert("declining.lost_share".into(), sql_f64(self.declining.lost_share));
        let l = &self.lifecycle;
        v.insert("lifecycle.renewal_days".into(), l.renewal_days.to_string());
        v.insert("lifecycle.adoption_days".into(), l.adoption_days.to_string());
        // (position, event) rows for a VALUES list.
        let rows: Vec<String> = l.milestones.iter().enumerate().map(|(i, m)| format!("({}, {})", i + 1, sql_str(m))).collect();
        v.insert("lifecycle.milestone_rows".into(), rows.join(", "));
        let (stages, union) = alert_sql(&self.alert_rules());
        v.insert("alerts.stages".into(), stages);
        v.insert("alerts.union".into(), union);
        v
    }

    /// Replaces every `${key}` in predefined SQL with the configured value as
    /// SQL text; a key that does not exist is an error naming it.
    pub fn expand_sql(&self, sql: &str) -> Result<String, String> {
        let values = self.sql_values();
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find('}') else { return Err("unclosed ${ in SQL".into()) };
            let key = &rest[i + 2..i + j];
            let value = values.get(key).ok_or_else(|| format!("unknown config key ${{{key}}}"))?;
            out.push_str(value);
            rest = &rest[i + j + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_and_names_are_quoted() {
        assert!(toml::from_str::<Config>("[events]\nlogn = 'x'").is_err());
        let c: Config = toml::from_str("[events]\nlogin = \"sign'in\"").unwrap();
        assert_eq!(c.events.page_view, "page_view");
        assert_eq!(c.expand_sql("event = ${login}").unwrap(), "event = 'sign''in'");
        assert!(c.expand_sql("${nope}").unwrap_err().contains("nope"));
    }

    #[test]
    fn alert_rules_are_checked_and_become_one_stage_each() {
        assert!(Config::default().check().is_ok(), "the default rules pass the check");
        let bad = |toml: &str| toml::from_str::<Config>(toml).unwrap().check().unwrap_err();
        assert!(bad("[[alerts]]\nname = 'a'\nseverity = 'urgent'\nwhen = 'true'\nreason = 'x'").contains("severity 'urgent'"));
        assert!(bad("[[alerts]]\nname = 'A b'\nseverity = 'low'\nwhen = 'true'\nreason = 'x'").contains("lower-case"));
        assert!(bad("[[alerts]]\nname = 'a'\nseverity = 'low'\nwhen = 'true -- x'\nreason = 'x'").contains("without"));
        let two = "[[alerts]]\nname = 'a'\nseverity = 'low'\nwhen = 'true'\nreason = 'x'\n";
        assert!(bad(&format!("{two}{two}")).contains("used twice"));
        let c: Config = toml::from_str("[[alerts]]\nname = 'few'\nseverity = 'high'\nwhen = \"health < 1\"\nreason = \"'a; b'\"").unwrap();
        let (stages, union) = alert_sql(&c.alert_rules());
        assert_eq!(stages.matches("-- stage alert_rule_").count(), 1);
        assert!(stages.contains("coalesce(CAST((health < 1) AS BOOLEAN), FALSE)") && stages.contains("'few' AS rule") && stages.contains("1 AS severity_rank"));
        assert_eq!(union, "SELECT * FROM alert_rule_few");
        let off: Config = toml::from_str("alerts = []").unwrap();
        assert!(alert_sql(&off.alert_rules()).1.contains("WHERE FALSE"));
    }

    #[test]
    fn plan_weights_become_a_case_and_bad_bands_are_refused() {
        let c: Config = toml::from_str("[health.plan.pro]\nvisits = 0.5").unwrap();
        let sql = c.expand_sql("${health.weights.visits}").unwrap();
        assert_eq!(sql, "(CASE plan WHEN 'pro' THEN CAST(0.5 AS DOUBLE) ELSE CAST(0.2 AS DOUBLE) END)");
        let bad: Config = toml::from_str("[health]\nred_below = 80.0\ngreen_from = 70.0").unwrap();
        assert!(bad.check().unwrap_err().contains("red_below"));
    }
}
