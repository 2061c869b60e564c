//! The `vitals.v1.Reports` service: one RPC per report, each running the same
//! SQL table function as `vitals report` (one source of truth). Requests map
//! to the function's arguments by field order; response rows are filled from
//! the result's columns by name through the proto's descriptors, so adding a
//! column means adding a field, not code.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use futures::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use tonic::{Request, Response, Status};

use super::query;
use super::{principal, proto, RequestLog, ServerState};
use crate::config::sql_str;
use crate::reports::Template;

/// The report service.
pub struct ReportService {
    state: Arc<ServerState>,
    pool: DescriptorPool,
}

impl ReportService {
    pub fn new(state: Arc<ServerState>) -> Result<ReportService, String> {
        let pool = DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).map_err(|e| format!("reading the report descriptors: {e}"))?;
        Ok(ReportService { state, pool })
    }

    fn message(&self, name: &str) -> Result<MessageDescriptor, Status> {
        self.pool.get_message_by_name(&format!("vitals.v1.{name}")).ok_or_else(|| Status::internal(format!("no message vitals.v1.{name}")))
    }

    /// Runs report `report` for the RPC `rpc`: request -> SQL -> rows.
    async fn run<Req: Message, Resp: Message + Default>(&self, report: &str, rpc: &'static str, request: Request<Req>) -> Result<Response<Resp>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, rpc);
        let result = self.answer(report, rpc, &who, request.get_ref(), &log).await;
        if let Err(s) = &result {
            log.fail(s);
        }
        let bytes = result?;
        Resp::decode(bytes.as_slice()).map(Response::new).map_err(|e| Status::internal(format!("encoding the answer: {e}")))
    }

    async fn answer<Req: Message>(&self, report: &str, rpc: &str, who: &super::Principal, req: &Req, log: &RequestLog) -> Result<Vec<u8>, Status> {
        let req_desc = self.message(&format!("{rpc}Request"))?;
        let resp_desc = self.message(&format!("{rpc}Response"))?;
        let dynamic = DynamicMessage::decode(req_desc.clone(), req.encode_to_vec().as_slice()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut fields: Vec<FieldDescriptor> = req_desc.fields().collect();
        fields.sort_by_key(|f| f.number());
        let mut args = Vec::with_capacity(fields.len());
        for f in &fields {
            args.push(literal(&dynamic, f)?);
            if f.name() == "org_id" {
                if let Some(Value::String(org)) = dynamic.has_field(f).then(|| dynamic.get_field(f).into_owned()) {
                    check_org(&self.state, who, &org).await?;
                }
            }
        }
        let template = self.state.sessions.all_engine().report(report).ok_or_else(|| Status::internal(format!("no report {report}")))?;
        let sql = report_sql(template, args);

        let id = uuid::Uuid::new_v4().simple().to_string();
        let (_, mut stream) = self.state.start(who, id, &sql, None, log.tally()).await?;

        let rows_field = resp_desc.get_field_by_name("rows").ok_or_else(|| Status::internal(format!("{rpc}Response has no rows")))?;
        let Kind::Message(row_desc) = rows_field.kind() else { return Err(Status::internal("rows is not a message")) };
        let mut rows: Vec<Value> = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            fill_rows(&batch, &row_desc, &mut rows)?;
        }
        let mut resp = DynamicMessage::new(resp_desc.clone());
        resp.set_field(&rows_field, Value::List(rows));
        if let Some(f) = resp_desc.get_field_by_name("sql") {
            resp.set_field(&f, Value::String(sql));
        }
        Ok(resp.encode_to_vec())
    }
}

/// A scoped token may name only its own accounts.
pub(super) async fn check_org(state: &ServerState, who: &super::Principal, org: &str) -> Result<(), Status> {
    if who.sees_all() {
        return Ok(());
    }
    let engine = state.sessions.engine_for(who).await?;
    let sql = format!("SELECT CAST(org_id AS VARCHAR) FROM accounts WHERE org_id = {}", sql_str(org));
    let found = crate::reports::distinct_strings(engine.ctx(), &sql).await.map_err(|e| query::df_status(&e, &state.limits))?;
    if found.is_empty() {
        return Err(Status::permission_denied(format!("org_id '{org}' is not among this token's accounts")));
    }
    Ok(())
}

/// The query of one report call: arguments as SQL literals in the report's
/// order (`NULL` for the default; trailing defaults left out), rows in the report's order.
pub(super) fn report_sql(report: &Template, mut args: Vec<String>) -> String {
    while args.last().is_some_and(|a| a == "NULL") {
        args.pop();
    }
    report.call_sql(&args)
}

/// One request field as a SQL argument: NULL when unset (the report's
/// default), a list as a comma-separated string.
fn literal(msg: &DynamicMessage, f: &FieldDescriptor) -> Result<String, Status> {
    if f.is_list() {
        let Value::List(items) = msg.get_field(f).into_owned() else { return Ok("NULL".into()) };
        if items.is_empty() {
            return Ok("NULL".into());
        }
        let parts: Vec<String> = items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect();
        return Ok(sql_str(&parts.join(",")));
    }
    if !msg.has_field(f) {
        return Ok("NULL".into());
    }
    Ok(match msg.get_field(f).into_owned() {
        Value::String(s) => sql_str(&s),
        Value::I64(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        other => return Err(Status::internal(format!("request field {} has an unsupported type {other:?}", f.name()))),
    })
}

/// Converts a column to what a field holds.
fn column_for(col: &ArrayRef, kind: &Kind, name: &str) -> Result<ArrayRef, Status> {
    let target = match kind {
        Kind::String => DataType::Utf8,
        Kind::Int64 => DataType::Int64,
        Kind::Int32 => DataType::Int32,
        Kind::Double => DataType::Float64,
        Kind::Bool => DataType::Boolean,
        other => return Err(Status::internal(format!("field {name}: unsupported kind {other:?}"))),
    };
    arrow::compute::cast(col, &target).map_err(|e| Status::internal(format!("column {name}: {e}")))
}

fn value_at(col: &ArrayRef, i: usize) -> Option<Value> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(i).to_string()),
        DataType::Int64 => Value::I64(col.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => Value::I32(col.as_primitive::<Int32Type>().value(i)),
        DataType::Float64 => Value::F64(col.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
        _ => return None,
    })
}

/// Appends one message per row, each field from the column of its name.
fn fill_rows(batch: &RecordBatch, row: &MessageDescriptor, out: &mut Vec<Value>) -> Result<(), Status> {
    let schema = batch.schema();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let Some(f) = row.get_field_by_name(field.name()) else {
            return Err(Status::internal(format!("{} has no field for column {}", row.full_name(), field.name())));
        };
        let col = batch.column(i);
        let converted = if f.is_list() {
            let DataType::List(_) = col.data_type() else { return Err(Status::internal(format!("column {} is not a list", field.name()))) };
            let list = col.as_list::<i32>();
            let values = column_for(list.values(), &f.kind(), field.name())?;
            (Some(list.clone()), values)
        } else {
            (None, column_for(col, &f.kind(), field.name())?)
        };
        columns.push((f, converted));
    }
    for r in 0..batch.num_rows() {
        let mut msg = DynamicMessage::new(row.clone());
        for (f, (list, values)) in &columns {
            match list {
                Some(l) if !l.is_null(r) => {
                    let (start, end) = (l.value_offsets()[r] as usize, l.value_offsets()[r + 1] as usize);
                    let items: Vec<Value> = (start..end).filter_map(|j| value_at(values, j)).collect();
                    msg.set_field(f, Value::List(items));
                }
                Some(_) => {}
                None => {
                    if let Some(v) = value_at(values, r) {
                        msg.set_field(f, v);
                    }
                }
            }
        }
        out.push(Value::Message(msg));
    }
    Ok(())
}

#[tonic::async_trait]
impl proto::reports_server::Reports for ReportService {
    async fn account_usage(&self, r: Request<proto::AccountUsageRequest>) -> Result<Response<proto::AccountUsageResponse>, Status> {
        self.run("account_usage", "AccountUsage", r).await
    }
    async fn key_user_usage(&self, r: Request<proto::KeyUserUsageRequest>) -> Result<Response<proto::KeyUserUsageResponse>, Status> {
        self.run("key_user_usage", "KeyUserUsage", r).await
    }
    async fn module_usage_share(&self, r: Request<proto::ModuleUsageShareRequest>) -> Result<Response<proto::ModuleUsageShareResponse>, Status> {
        self.run("module_usage_share", "ModuleUsageShare", r).await
    }
    async fn channel_quality(&self, r: Request<proto::ChannelQualityRequest>) -> Result<Response<proto::ChannelQualityResponse>, Status> {
        self.run("channel_quality", "ChannelQuality", r).await
    }
    async fn funnel(&self, r: Request<proto::FunnelRequest>) -> Result<Response<proto::FunnelResponse>, Status> {
        self.run("funnel", "Funnel", r).await
    }
    async fn retention_matrix(&self, r: Request<proto::RetentionMatrixRequest>) -> Result<Response<proto::RetentionMatrixResponse>, Status> {
        self.run("retention_matrix", "RetentionMatrix", r).await
    }
    async fn feature_retention(&self, r: Request<proto::FeatureRetentionRequest>) -> Result<Response<proto::FeatureRetentionResponse>, Status> {
        self.run("feature_retention", "FeatureRetention", r).await
    }
    async fn magic_number(&self, r: Request<proto::MagicNumberRequest>) -> Result<Response<proto::MagicNumberResponse>, Status> {
        self.run("magic_number", "MagicNumber", r).await
    }
    async fn health_scores(&self, r: Request<proto::HealthScoresRequest>) -> Result<Response<proto::HealthScoresResponse>, Status> {
        self.run("health_scores", "HealthScores", r).await
    }
    async fn declining_accounts(&self, r: Request<proto::DecliningAccountsRequest>) -> Result<Response<proto::DecliningAccountsResponse>, Status> {
        self.run("declining_accounts", "DecliningAccounts", r).await
    }
    async fn intervention_effect(&self, r: Request<proto::InterventionEffectRequest>) -> Result<Response<proto::InterventionEffectResponse>, Status> {
        self.run("intervention_effect", "InterventionEffect", r).await
    }
    async fn account_lifecycle(&self, r: Request<proto::AccountLifecycleRequest>) -> Result<Response<proto::AccountLifecycleResponse>, Status> {
        self.run("account_lifecycle", "AccountLifecycle", r).await
    }
    async fn user_lifecycle(&self, r: Request<proto::UserLifecycleRequest>) -> Result<Response<proto::UserLifecycleResponse>, Status> {
        self.run("user_lifecycle", "UserLifecycle", r).await
    }
    async fn activity_trend(&self, r: Request<proto::ActivityTrendRequest>) -> Result<Response<proto::ActivityTrendResponse>, Status> {
        self.run("activity_trend", "ActivityTrend", r).await
    }
    async fn health_history(&self, r: Request<proto::HealthHistoryRequest>) -> Result<Response<proto::HealthHistoryResponse>, Status> {
        self.run("health_history", "HealthHistory", r).await
    }
    async fn alerts(&self, r: Request<proto::AlertsRequest>) -> Result<Response<proto::AlertsResponse>, Status> {
        self.run("alerts", "Alerts", r).await
    }
    async fn revenue_retention(&self, r: Request<proto::RevenueRetentionRequest>) -> Result<Response<proto::RevenueRetentionResponse>, Status> {
        self.run("revenue_retention", "RevenueRetention", r).await
    }
    async fn revenue_movements(&self, r: Request<proto::RevenueMovementsRequest>) -> Result<Response<proto::RevenueMovementsResponse>, Status> {
        self.run("revenue_movements", "RevenueMovements", r).await
    }
    async fn account_timeline(&self, r: Request<proto::AccountTimelineRequest>) -> Result<Response<proto::AccountTimelineResponse>, Status> {
        self.run("account_timeline", "AccountTimeline", r).await
    }
    async fn churn_risk(&self, r: Request<proto::ChurnRiskRequest>) -> Result<Response<proto::ChurnRiskResponse>, Status> {
        self.run("churn_risk", "ChurnRisk", r).await
    }
    async fn churn_model(&self, r: Request<proto::ChurnModelRequest>) -> Result<Response<proto::ChurnModelResponse>, Status> {
        self.run("churn_model", "ChurnModel", r).await
    }
    async fn paths(&self, r: Request<proto::PathsRequest>) -> Result<Response<proto::PathsResponse>, Status> {
        self.run("paths", "Paths", r).await
    }
    async fn path_edges(&self, r: Request<proto::PathEdgesRequest>) -> Result<Response<proto::PathEdgesResponse>, Status> {
        self.run("path_edges", "PathEdges", r).await
    }
    async fn funnel_dropoffs(&self, r: Request<proto::FunnelDropoffsRequest>) -> Result<Response<proto::FunnelDropoffsResponse>, Status> {
        self.run("funnel_dropoffs", "FunnelDropoffs", r).await
    }
    async fn account_feature_usage(&self, r: Request<proto::AccountFeatureUsageRequest>) -> Result<Response<proto::AccountFeatureUsageResponse>, Status> {
        self.run("account_feature_usage", "AccountFeatureUsage", r).await
    }
    async fn funnel_correlation(&self, r: Request<proto::FunnelCorrelationRequest>) -> Result<Response<proto::FunnelCorrelationResponse>, Status> {
        self.run("funnel_correlation", "FunnelCorrelation", r).await
    }
    async fn funnel_time_to_convert(&self, r: Request<proto::FunnelTimeToConvertRequest>) -> Result<Response<proto::FunnelTimeToConvertResponse>, Status> {
        self.run("funnel_time_to_convert", "FunnelTimeToConvert", r).await
    }
    async fn user_events(&self, r: Request<proto::UserEventsRequest>) -> Result<Response<proto::UserEventsResponse>, Status> {
        self.run("user_events", "UserEvents", r).await
    }
}
