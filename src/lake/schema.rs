//! The event contract: the declared Arrow schema of each lake table, and the
//! rule for which column types written by other tools can be read through it.
//! Owns no I/O.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Time zone of every timestamp the lake declares.
pub const UTC: &str = "UTC";

/// The name of the hive partition column of the events table.
pub const EVENT_DATE: &str = "event_date";

/// Microsecond UTC timestamps, the lake's one timestamp type.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// The tables of the lake, in the order they are registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Events,
    Accounts,
    Users,
    Interventions,
    Subscriptions,
}

impl Table {
    pub const ALL: [Table; 5] = [Table::Events, Table::Accounts, Table::Users, Table::Interventions, Table::Subscriptions];

    /// The SQL name, which is also the folder under the lake root.
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Accounts => "accounts",
            Table::Users => "users",
            Table::Interventions => "interventions",
            Table::Subscriptions => "subscriptions",
        }
    }

    /// One line for `vitals tables`.
    pub fn description(self) -> &'static str {
        match self {
            Table::Events => "one row per product event, partitioned by event_date",
            Table::Accounts => "customer accounts: plan, paid status, CSM, seats, ARR, renewal date",
            Table::Users => "people, each in one account, with role and key-user flag",
            Table::Interventions => "CSM actions on accounts (calls, trainings, QBRs)",
            Table::Subscriptions => "what each account pays: one row per span of constant MRR (starts_on inclusive, ends_on exclusive)",
        }
    }

    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The declared schema (without the events partition column).
    pub fn schema(self) -> SchemaRef {
        let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
        let fields = match self {
            Table::Events => vec![
                s("event_id", true),
                Field::new("event_time", ts_type(), false),
                s("org_id", false),
                s("user_id", false),
                s("event", false),
                s("session_id", true),
                s("module", true),
                s("page", true),
                Field::new("duration_ms", DataType::Int64, true),
                s("utm_source", true),
                s("utm_medium", true),
                s("utm_campaign", true),
                s("utm_content", true),
                s("utm_term", true),
                s("browser", true),
                s("os", true),
                s("region", true),
                s("properties", true),
            ],
            Table::Accounts => vec![
                s("org_id", false),
                s("name", true),
                s("plan", true),
                Field::new("is_paid", DataType::Boolean, true),
                s("csm", true),
                Field::new("seats", DataType::Int32, true),
                Field::new("arr", DataType::Float64, true),
                Field::new("signup_time", ts_type(), true),
                Field::new("contract_start", DataType::Date32, true),
                Field::new("renewal_date", DataType::Date32, true),
                s("industry", true),
                s("region", true),
            ],
            Table::Users => vec![
                s("user_id", false),
                s("org_id", false),
                s("name", true),
                s("role", true),
                Field::new("is_key_user", DataType::Boolean, true),
                Field::new("signup_time", ts_type(), true),
            ],
            Table::Interventions => vec![
                s("org_id", false),
                s("csm", true),
                Field::new("at", ts_type(), false),
                s("kind", true),
                s("note", true),
            ],
            Table::Subscriptions => vec![
                s("org_id", false),
                s("subscription_id", false),
                s("plan", true),
                Field::new("mrr", DataType::Float64, false),
                Field::new("starts_on", DataType::Date32, false),
                Field::new("ends_on", DataType::Date32, true),
                Field::new("seats", DataType::Int32, true),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// Columns every row must have (non-empty, for strings).
    pub fn required(self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .filter(|f| !f.is_nullable())
            .map(|f| f.name().clone())
            .collect()
    }
}

/// Whether a column of type `found` in a file can be read as the declared
/// type `declared`. Timestamps of any unit and zone, narrower integers and
/// every string encoding are accepted; anything else is an error.
pub fn compatible(found: &DataType, declared: &DataType) -> bool {
    use DataType::*;
    if found == declared || *found == Null {
        return true;
    }
    let stringy = |t: &DataType| match t {
        Utf8 | LargeUtf8 | Utf8View => true,
        Dictionary(_, v) => matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View),
        _ => false,
    };
    match declared {
        Utf8 => stringy(found),
        Int64 => matches!(found, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32),
        Int32 => matches!(found, Int8 | Int16 | Int32 | UInt8 | UInt16),
        Float64 => matches!(found, Float16 | Float32 | Float64 | Int32 | Int64),
        Timestamp(_, _) => matches!(found, Timestamp(_, _)),
        Date32 => matches!(found, Date32 | Date64 | Timestamp(_, _)),
        Boolean => matches!(found, Boolean),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_any_unit_read_as_declared() {
        let decl = ts_type();
        assert!(compatible(&DataType::Timestamp(TimeUnit::Nanosecond, None), &decl));
        assert!(compatible(&DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())), &decl));
        assert!(!compatible(&DataType::Utf8, &decl));
        assert!(!compatible(&DataType::Int64, &DataType::Utf8));
        assert!(compatible(&DataType::Int32, &DataType::Int64));
        assert!(!compatible(&DataType::Float64, &DataType::Int64));
    }

    #[test]
    fn required_columns_follow_nullability() {
        assert_eq!(Table::Events.required(), vec!["event_time", "org_id", "user_id", "event"]);
        assert_eq!(Table::Interventions.required(), vec!["org_id", "at"]);
        assert_eq!(Table::Subscriptions.required(), vec!["org_id", "subscription_id", "mrr", "starts_on"]);
    }
}
