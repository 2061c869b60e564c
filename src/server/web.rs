//! The web side of `vitals serve`, on the same port as gRPC: the JSON API
//! under `/api/v1`. The same tokens, scopes and limits as Flight SQL: a report
//! is the same table function call, admitted, planned and run by
//! `ServerState::start`, so a scoped token sees only its accounts here too.
//!
//! - `GET /api/v1/reports`: every report with its arguments and columns.
//! - `GET /api/v1/reports/{name}?{argument}={value}&...`: the report's rows,
//!   as JSON (numbers as numbers, NULL as `null`, dates and times in ISO 8601)
//!   or, with `Accept: text/csv`, as CSV.
//! - Errors: `{"error", "code"}` with the HTTP status of the gRPC code (400,
//!   401, 403, 404, 429, 503 for a full queue, 504 for a timeout, 500).
//! - `GET /api/v1/me`: who the token is, the days its lake holds, the CSMs it
//!   may pick, and the settings the dashboard draws with.
//! - `GET /`: the customer-success dashboard (`web/`), with its charting
//!   library built in; it calls the JSON API with a Bearer token kept in the
//!   browser's storage (no cookie, so no request can be forged through one).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use tonic::{Code, Status};

use super::auth::Principal;
use super::query::BUSY_MARK;
use super::reports::{check_org, report_sql};
use super::{RequestLog, ServerState};
use crate::config::sql_str;
use crate::reports::{ArgType, Template};

/// What the web handlers share.
pub struct Web {
    state: Arc<ServerState>,
}

/// The JSON API's routes, compressed where the client asks for it.
pub fn router(state: Arc<ServerState>) -> Router {
    let web = Arc::new(Web { state });
    Router::new()
        .route("/api/v1/reports", get(list))
        .route("/api/v1/reports/{name}", get(report))
        .route("/api/v1/me", get(me))
        .route("/", get(|| async { asset("index.html") }))
        .route("/assets/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
        .route("/favicon.svg", get(|| async { asset("favicon.svg") }))
        .fallback(not_found)
        .with_state(web)
        .layer(tower_http::compression::CompressionLayer::new())
}

/// A failure as the web API answers it.
pub struct WebError(Status);

impl From<Status> for WebError {
    fn from(s: Status) -> Self {
        WebError(s)
    }
}

/// The HTTP status of a gRPC status.
pub fn http_status(s: &Status) -> StatusCode {
    match s.code() {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted if s.metadata().contains_key(BUSY_MARK) => StatusCode::SERVICE_UNAVAILABLE,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `invalid_argument`, `permission_denied`, ...: the gRPC code's name.
fn code_name(code: Code) -> String {
    let words = format!("{code:?}");
    let mut out = String::with_capacity(words.len() + 4);
    for (i, c) in words.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = http_status(&self.0);
        let body = json!({ "error": self.0.message(), "code": code_name(self.0.code()) });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type WebResult<T> = Result<T, WebError>;

fn authenticate(web: &Web, headers: &HeaderMap) -> Result<Principal, Status> {
    let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    web.state.auth.authenticate(header).inspect_err(|s| tracing::info!(status = ?s.code(), reason = s.message(), "refused a web call"))
}

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The dashboard's files: the page, its script and style, and the charting library.
fn asset(file: &str) -> Response {
    let (body, ty): (&'static [u8], &str) = match file {
        "index.html" => (include_bytes!("../../web/index.html"), "text/html; charset=utf-8"),
        "app.js" => (include_bytes!("../../web/app.js"), "text/javascript; charset=utf-8"),
        "app.css" => (include_bytes!("../../web/app.css"), "text/css; charset=utf-8"),
        "favicon.svg" => (include_bytes!("../../web/favicon.svg"), "image/svg+xml"),
        "echarts.min.js" => (assets::ECHARTS_JS, "text/javascript; charset=utf-8"),
        _ => return WebError(Status::not_found(format!("no asset named '{file}'"))).into_response(),
    };
    let mut response = ([(header::CONTENT_TYPE, ty)], body).into_response();
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if file == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Runs a small query as `who` and gives its rows' first column as text.
async fn strings(web: &Web, who: &Principal, sql: &str) -> Result<Vec<Option<String>>, Status> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (_, mut stream) = web.state.start(who, id, sql, None, Default::default()).await?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let col = arrow::compute::cast(batch.column(0), &DataType::Utf8).map_err(|e| Status::internal(e.to_string()))?;
        let col = arrow::array::AsArray::as_string::<i32>(&col);
        out.extend(col.iter().map(|v| v.map(str::to_string)));
    }
    Ok(out)
}

/// `GET /api/v1/me`.
async fn me(State(web): State<Arc<Web>>, headers: HeaderMap) -> WebResult<Response> {
    let who = authenticate(&web, &headers)?;
    let log = RequestLog::new(&who, "GET /api/v1/me");
    let result = about(&web, &who).await;
    if let Err(s) = &result {
        log.fail(s);
    }
    Ok(axum::Json(result?).into_response())
}

async fn about(web: &Web, who: &Principal) -> Result<Value, Status> {
    // One row, so that the two days cannot come back in either order.
    let days = strings(web, who, "SELECT concat(CAST(min(event_date) AS VARCHAR), ' ', CAST(max(event_date) AS VARCHAR)) FROM events").await?;
    let (first, last) = match days.first().and_then(|d| d.as_deref()).and_then(|d| d.split_once(' ')) {
        Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
        None => (None, None),
    };
    let csms: Vec<String> = match who.role {
        crate::config::Role::Csm => vec![who.name.clone()],
        crate::config::Role::Account => Vec::new(),
        _ => strings(web, who, "SELECT DISTINCT CAST(csm AS VARCHAR) FROM accounts WHERE csm IS NOT NULL ORDER BY 1").await?.into_iter().flatten().collect(),
    };
    let config = web.state.sessions.all_engine().config();
    Ok(json!({
        "name": who.name,
        "role": who.role.name(),
        "org_id": who.org_id,
        "sees_all": who.sees_all(),
        "first_day": first,
        "last_day": last,
        "csms": csms,
        "settings": {
            "events": {
                "signup": config.events.signup,
                "login": config.events.login,
                "page_view": config.events.page_view,
                "conversion": config.events.conversion,
            },
            "milestones": config.lifecycle.milestones,
            "paths_ignore": config.paths.ignore,
            "healthy_from": config.health.healthy_from,
            "red_below": config.health.red_below,
            "green_from": config.health.green_from,
            "warm_from": config.temperature.warm_from,
        },
    }))
}

async fn not_found() -> WebError {
    WebError(Status::not_found("no such page: the JSON API is under /api/v1/reports"))
}

/// A column's type as the API lists it: the SQL name of the Arrow type.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
        DataType::Dictionary(_, v) => type_name(v),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "INTEGER".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(..) => "TIMESTAMP".into(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::FixedSizeList(f, _) => format!("{}[]", type_name(f.data_type())),
        other => other.to_string(),
    }
}

fn columns_of(schema: &Schema) -> Vec<(String, String)> {
    schema.fields().iter().map(|f| (f.name().clone(), type_name(f.data_type()))).collect()
}

impl Web {
    /// A report's output columns: planned once (not run) with its defaults,
    /// or stand-ins for arguments without one; the same in every scope.
    fn columns(&self, t: &Template) -> Option<Vec<(String, String)>> {
        let columns = self.state.sessions.all_engine().report_columns(&t.name);
        if columns.is_none() {
            tracing::info!(report = %t.name, "cannot list a report's columns: it does not plan on this lake");
        }
        columns.map(|c| columns_of(&c))
    }
}

/// `GET /api/v1/reports`.
async fn list(State(web): State<Arc<Web>>, headers: HeaderMap) -> WebResult<Response> {
    // Any signed-in caller may list the reports (their columns are the same in every scope).
    authenticate(&web, &headers)?;
    let mut reports = Vec::new();
    for t in web.state.sessions.all_engine().reports() {
        let args: Vec<Value> = t.args.iter().map(|p| json!({ "name": p.name, "type": p.ty.name(), "default": p.default })).collect();
        let columns = web.columns(t).map(|c| c.into_iter().map(|(name, ty)| json!({ "name": name, "type": ty })).collect::<Vec<_>>());
        reports.push(json!({ "name": t.name, "description": t.description, "arguments": args, "columns": columns, "order": t.order }));
    }
    Ok(axum::Json(json!({ "reports": reports })).into_response())
}

/// One query-string value as a SQL literal of the argument's type.
fn literal(report: &str, name: &str, ty: ArgType, value: &str) -> Result<String, Status> {
    match ty {
        ArgType::Int => value
            .trim()
            .parse::<i64>()
            .map(|v| v.to_string())
            .map_err(|_| Status::invalid_argument(format!("{report}: argument {name} must be a whole number, not '{value}'"))),
        ArgType::Date | ArgType::Text | ArgType::Event | ArgType::Events | ArgType::Interval => Ok(sql_str(value)),
    }
}

/// The report's arguments from the query string, in the report's order.
fn arguments(t: &Template, query: Option<&str>) -> Result<(Vec<String>, Option<String>), Status> {
    let mut given: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !t.args.iter().any(|p| p.name == k) {
            let names: Vec<&str> = t.args.iter().map(|p| p.name.as_str()).collect();
            return Err(Status::invalid_argument(format!("{}: no argument named '{k}' (it takes {})", t.name, names.join(", "))));
        }
        if given.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Status::invalid_argument(format!("{}: argument {k} is given more than once", t.name)));
        }
    }
    let mut args = Vec::with_capacity(t.args.len());
    for p in &t.args {
        match given.get(&p.name).filter(|v| !v.is_empty()) {
            Some(v) => args.push(literal(&t.name, &p.name, p.ty, v)?),
            None => args.push("NULL".into()),
        }
    }
    Ok((args, given.remove("org_id").filter(|v| !v.is_empty())))
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/csv")))
}

/// `GET /api/v1/reports/{name}`.
async fn report(State(web): State<Arc<Web>>, Path(name): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> WebResult<Response> {
    let who = authenticate(&web, &headers)?;
    let log = RequestLog::new(&who, "GET /api/v1/reports");
    let result = answer(&web, &who, &name, query.as_deref(), wants_csv(&headers), &log).await;
    if let Err(s) = &result {
        log.fail(s);
    }
    Ok(result?)
}

async fn answer(web: &Web, who: &Principal, name: &str, query: Option<&str>, csv: bool, log: &RequestLog) -> Result<Response, Status> {
    let t = web.state.sessions.all_engine().report(name).ok_or_else(|| Status::not_found(format!("no report named '{name}': GET /api/v1/reports lists them")))?;
    let (args, org) = arguments(t, query)?;
    if let Some(org) = org {
        check_org(&web.state, who, &org).await?;
    }
    let sql = report_sql(t, args);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (schema, mut stream) = web.state.start(who, id, &sql, None, log.tally()).await?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    let encode = |e: arrow::error::ArrowError| Status::internal(format!("encoding the answer: {e}"));
    if csv {
        let mut out = Vec::new();
        {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone())).map_err(encode)?;
            }
            for b in &batches {
                w.write(b).map_err(encode)?;
            }
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    let mut rows = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            // Times without a zone are UTC in the lake's contract.
            .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.6fZ".into())
            .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6f%:z".into())
            .build::<_, arrow::json::writer::JsonArray>(&mut rows);
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        w.write_batches(&refs).map_err(encode)?;
        w.finish().map_err(encode)?;
    }
    if rows.is_empty() {
        rows.extend_from_slice(b"[]");
    }
    let columns: Vec<Value> = columns_of(&schema).into_iter().map(|(name, ty)| json!({ "name": name, "type": ty })).collect();
    // The rows are already JSON: the envelope is written around them.
    let head = json!({ "report": t.name, "sql": sql, "columns": columns }).to_string();
    let mut body = Vec::with_capacity(head.len() + rows.len() + 10);
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"rows\":");
    body.extend_from_slice(&rows);
    body.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_grpc_code() {
        assert_eq!(http_status(&Status::invalid_argument("x")), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(&Status::resource_exhausted("memory")), StatusCode::TOO_MANY_REQUESTS);
        let mut marks = tonic::metadata::MetadataMap::new();
        marks.insert(BUSY_MARK, tonic::metadata::MetadataValue::from_static("1"));
        assert_eq!(http_status(&Status::with_metadata(Code::ResourceExhausted, "busy", marks)), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http_status(&Status::deadline_exceeded("slow")), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(code_name(Code::PermissionDenied), "permission_denied");
        assert_eq!(code_name(Code::Ok), "ok");
    }
}
