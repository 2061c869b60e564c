//! What a customer-success team tunes without code: the names of the events
//! with a meaning of their own (and, as reports grow, scoring weights and
//! thresholds). Read from a TOML file; every key has a documented default.

use std::path::Path;

use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub events: EventNames,
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

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl Config {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |reason: String| ConfigError { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Replaces `${name}` in predefined SQL with the configured event name,
    /// quoted as a SQL string literal.
    pub fn expand_sql(&self, sql: &str) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        sql.replace("${signup}", &q(&self.events.signup))
            .replace("${login}", &q(&self.events.login))
            .replace("${page_view}", &q(&self.events.page_view))
            .replace("${conversion}", &q(&self.events.conversion))
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
        assert_eq!(c.expand_sql("event = ${login}"), "event = 'sign''in'");
    }
}
