//! Functions vitals adds to SQL: the behavioural aggregates (window_funnel,
//! window_funnel_path, retention, sequence_match, sequence_count,
//! sequence_next_node), day_bits and window_counts (distinct counts over
//! sliding windows of days), logistic_regression, first_of_run (drops a
//! sorted file's repeated rows before an aggregation that ignores them) and
//! small scalar helpers. Registered by the engine; they know nothing of reports or
//! of serving.

pub mod behaviour;
pub mod checked;
pub mod days;
pub mod guard;
pub mod logistic;
pub mod runs;
pub mod scalar;

use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;

/// The text of a string literal of any string type.
pub(crate) fn scalar_text(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

/// A function as `vitals tables` lists it.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub kind: &'static str,
    pub signature: String,
    pub description: String,
    /// For a report: the ORDER BY its rows are shown in.
    pub order: Option<String>,
}

/// Registers the scalar and aggregate functions.
pub fn register_scalar(ctx: &SessionContext) -> Vec<FunctionDoc> {
    guard::register(ctx);
    checked::register(ctx);
    let mut docs = scalar::register(ctx);
    docs.extend(behaviour::register(ctx));
    docs.extend(logistic::register(ctx));
    docs.extend(days::register(ctx));
    docs.extend(runs::register(ctx));
    docs
}
