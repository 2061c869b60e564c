//! Arrow Flight SQL for BI tools: statements, prepared statements with
//! parameters, catalog metadata, SqlInfo, type info, handshake and cancel.
//! Every query runs through `query::execute`, so the limits apply alike.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, Nullable, ProstMessageExt, Searchable, SqlInfo, SqlNullOrdering,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, TicketStatementQuery, XdbcDataType,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Principal;
use super::query::{self, wire_schema, ResultStream};
use super::{principal, RequestLog, ServerState};

/// The Flight SQL service.
#[derive(Clone)]
pub struct FlightSql {
    pub state: Arc<ServerState>,
}

/// Prepared statements live at most this long, and at most this many at once (all principals together).
const PREPARED_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const MAX_PREPARED: usize = 10_000;

type DataStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// A prepared statement: its SQL, owner and bound parameters.
pub struct Prepared {
    pub created: std::time::Instant,
    pub owner: String,
    pub sql: String,
    pub params: Option<RecordBatch>,
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(b) = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into().map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(b)
}

fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// Encodes a result stream; the schema goes first even when no batch follows.
fn encode(schema: SchemaRef, batches: ResultStream, log: RequestLog) -> DataStream {
    let log = Arc::new(log);
    let input = batches.map_err(|s| FlightError::Tonic(Box::new(s)));
    let out = FlightDataEncoderBuilder::new().with_schema(schema).build(input).map(move |r| {
        let r = r.map_err(Status::from);
        if let Err(s) = &r {
            log.fail(s);
        }
        r
    });
    Box::pin(out)
}

/// The FlightInfo of a metadata command: its fixed schema, and the command itself as the ticket.
fn command_info(request: Request<FlightDescriptor>, schema: SchemaRef, command: Vec<u8>) -> Result<Response<FlightInfo>, Status> {
    principal(&request)?;
    Ok(Response::new(flight_info(&schema, command, request.into_inner())?))
}

fn one_batch(batch: RecordBatch) -> ResultStream {
    Box::pin(futures::stream::once(async move { Ok(batch) }))
}

fn arrow_status(e: FlightError) -> Status {
    Status::internal(format!("cannot build the answer: {e}"))
}

/// The Flight SQL handle of a statement ticket: `query id` newline `sql`.
fn statement_handle(id: &str, sql: &str) -> Vec<u8> {
    format!("{id}\n{sql}").into_bytes()
}

fn parse_handle(handle: &[u8]) -> Result<(String, String), Status> {
    let text = std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("malformed statement handle"))?;
    let (id, rest) = text.split_once('\n').ok_or_else(|| Status::invalid_argument("malformed statement handle"))?;
    Ok((id.to_string(), rest.to_string()))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The query id of a ticket, for cancellation.
fn ticket_query_id(ticket: &[u8]) -> Option<String> {
    let any = Any::decode(ticket).ok()?;
    if let Ok(Some(t)) = any.unpack::<TicketStatementQuery>() {
        return parse_handle(&t.statement_handle).ok().map(|(id, _)| id);
    }
    if let Ok(Some(p)) = any.unpack::<CommandPreparedStatementQuery>() {
        let text = String::from_utf8(p.prepared_statement_handle.to_vec()).ok()?;
        return text.split_once('#').map(|(_, exec)| exec.to_string());
    }
    None
}

impl FlightSql {
    /// Plans SQL for a principal and returns the schema a client will get.
    async fn plan_schema(&self, who: &Principal, sql: &str, params: Option<&RecordBatch>) -> Result<SchemaRef, Status> {
        let (_, plan) = self.state.plan(who, sql, params, false).await?;
        Ok(wire_schema(plan.schema().as_arrow()))
    }

    /// Admits, plans and starts one query; its batches stream to the client.
    async fn run(&self, who: &Principal, id: String, sql: &str, params: Option<&RecordBatch>, log: RequestLog) -> Result<Response<DataStream>, Status> {
        match self.state.start(who, id, sql, params, log.tally()).await {
            Ok((schema, stream)) => Ok(Response::new(encode(schema, stream, log))),
            Err(s) => {
                log.fail(&s);
                Err(s)
            }
        }
    }

    /// Metadata answers are small: one batch.
    fn answer(&self, batch: RecordBatch, log: RequestLog) -> Response<DataStream> {
        let schema = batch.schema();
        Response::new(encode(schema, one_batch(batch), log))
    }

    fn prepared(&self, who: &Principal, handle: &[u8]) -> Result<(String, String, Option<RecordBatch>), Status> {
        let text = std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("malformed prepared statement handle"))?;
        let base = text.split('#').next().unwrap_or_default();
        let map = self.state.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let p = map.get(base).ok_or_else(|| Status::not_found("no such prepared statement (closed, or the server restarted)"))?;
        if p.owner != who.name {
            return Err(Status::permission_denied("that prepared statement belongs to another principal"));
        }
        Ok((base.to_string(), p.sql.clone(), p.params.clone()))
    }

    async fn tables_batch(&self, who: &Principal, cmd: CommandGetTables) -> Result<RecordBatch, Status> {
        let engine = self.state.sessions.engine_for(who).await?;
        let ctx = engine.ctx();
        let include_schema = cmd.include_schema;
        let mut builder = cmd.into_builder();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut names = schema.table_names();
                names.sort();
                for name in names {
                    let Ok(Some(table)) = schema.table(&name).await else { continue };
                    let kind = table_kind(table.as_ref());
                    let fields = if include_schema { wire_schema(&table.schema()) } else { Arc::new(Schema::empty()) };
                    builder.append(&catalog_name, &schema_name, &name, kind, &fields).map_err(arrow_status)?;
                }
            }
        }
        builder.build().map_err(arrow_status)
    }
}

fn table_kind(t: &dyn TableProvider) -> &'static str {
    match t.table_type() {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// What the server answers to GetSqlInfo.
pub fn sql_info(limits: &query::Limits) -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "vitals");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, limits.query_timeout.as_millis().min(i32::MAX as u128) as i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlMaxColumnNameLength, 255_i64);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlKeywords, &["window_funnel", "retention", "sequence_match", "sequence_count"][..]);
    b.append(SqlInfo::SqlNumericFunctions, &["abs", "ceil", "floor", "round", "power", "sqrt", "ln", "log10"][..]);
    b.append(SqlInfo::SqlStringFunctions, &["lower", "upper", "trim", "substr", "concat", "length", "replace"][..]);
    b.append(SqlInfo::SqlDatetimeFunctions, &["now", "date_trunc", "date_part", "to_timestamp", "current_date"][..]);
    b.build()
}

/// The SQL types GetXdbcTypeInfo lists.
pub fn xdbc_info() -> Result<XdbcTypeInfoData, FlightError> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let ty = |name: &str, data_type: XdbcDataType, prefix: Option<&str>, searchable: Searchable| XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size: None,
        literal_prefix: prefix.map(str::to_string),
        literal_suffix: prefix.map(str::to_string),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable,
        unsigned_attribute: Some(false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    };
    b.append(ty("BOOLEAN", XdbcDataType::XdbcBit, None, Searchable::Basic));
    b.append(ty("INT", XdbcDataType::XdbcInteger, None, Searchable::Basic));
    b.append(ty("BIGINT", XdbcDataType::XdbcBigint, None, Searchable::Basic));
    b.append(ty("DOUBLE", XdbcDataType::XdbcDouble, None, Searchable::Basic));
    b.append(ty("VARCHAR", XdbcDataType::XdbcVarchar, Some("'"), Searchable::Full));
    b.append(ty("DATE", XdbcDataType::XdbcDate, Some("'"), Searchable::Basic));
    b.append(ty("TIMESTAMP", XdbcDataType::XdbcTimestamp, Some("'"), Searchable::Basic));
    b.build()
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "Handshake");
        let token = self.state.auth.open_session(&who)?;
        let payload = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::once(async { Ok(payload) })));
        let header = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| Status::internal("cannot encode the session token"))?;
        response.metadata_mut().insert("authorization", header);
        drop(log);
        Ok(response)
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "GetFlightInfo/Statement");
        let schema = self.plan_schema(&who, &query.query, None).await.inspect_err(|s| log.fail(s))?;
        let ticket = TicketStatementQuery { statement_handle: statement_handle(&new_id(), &query.query).into() };
        Ok(Response::new(flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/Statement");
        let (id, sql) = parse_handle(&ticket.statement_handle)?;
        self.run(&who, id, &sql, None, log).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "CreatePreparedStatement");
        let (_, planned) = self.state.plan(&who, &query.query, None, false).await.inspect_err(|s| log.fail(s))?;
        let types = planned.get_parameter_types().map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut names: Vec<(usize, String)> =
            types.keys().map(|k| (k.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX), k.clone())).collect();
        names.sort();
        let params: Vec<Field> = names
            .iter()
            .map(|(_, k)| Field::new(k, query::wire_type(&types.get(k).cloned().flatten().unwrap_or(DataType::Utf8)), true))
            .collect();
        let dataset = wire_schema(planned.schema().as_arrow());
        let handle = new_id();
        let mut map = self.state.prepared.lock().unwrap_or_else(|p| p.into_inner());
        // Clients that never close their statements must not grow the server
        // without bound, and one principal cannot push out another's.
        map.retain(|_, p| p.created.elapsed() < PREPARED_TTL);
        let limit = self.state.limits.max_prepared_per_principal;
        if map.values().filter(|p| p.owner == who.name).count() >= limit {
            return Err(Status::resource_exhausted(format!(
                "this token holds {limit} open prepared statements (--max-prepared-statements): close some with ClosePreparedStatement"
            )));
        }
        if map.len() >= MAX_PREPARED {
            return Err(Status::resource_exhausted(format!("the server holds {MAX_PREPARED} open prepared statements; try again later")));
        }
        map.insert(handle.clone(), Prepared { created: std::time::Instant::now(), owner: who.name.clone(), sql: query.query.clone(), params: None });
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&Schema::new(params))?,
        })
    }

    async fn do_action_close_prepared_statement(&self, query: ActionClosePreparedStatementRequest, request: Request<Action>) -> Result<(), Status> {
        let who = principal(&request)?;
        let _log = RequestLog::new(&who, "ClosePreparedStatement");
        let (base, _, _) = self.prepared(&who, &query.prepared_statement_handle)?;
        self.state.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(&base);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoPut/BindParameters");
        let (base, _, _) = self.prepared(&who, &query.prepared_statement_handle)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let mut decoded = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream);
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut bytes = 0usize;
        // Parameters are one row: as much as a query's text may be, no more.
        let cap = self.state.limits.max_query_bytes;
        while let Some(b) = decoded.next().await {
            let b = b.map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}"))).inspect_err(|s| log.fail(s))?;
            bytes = bytes.saturating_add(b.get_array_memory_size());
            if bytes > cap {
                let s = Status::invalid_argument(format!("the parameters are larger than {} (--max-query-size)", query::human_bytes(cap)));
                log.fail(&s);
                return Err(s);
            }
            batches.push(b);
        }
        let batch = match batches.len() {
            0 => None,
            _ => Some(arrow::compute::concat_batches(&batches[0].schema(), &batches).map_err(|e| Status::invalid_argument(e.to_string()))?),
        };
        if let Some(b) = &batch {
            if b.num_rows() > 1 {
                return Err(Status::invalid_argument(format!("bind exactly one row of parameters to a query, got {}", b.num_rows())));
            }
        }
        let mut map = self.state.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get_mut(&base) {
            p.params = batch;
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(base.into_bytes().into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "GetFlightInfo/Prepared");
        let (base, sql, params) = self.prepared(&who, &cmd.prepared_statement_handle)?;
        let schema = self.plan_schema(&who, &sql, params.as_ref()).await.inspect_err(|s| log.fail(s))?;
        let ticket = CommandPreparedStatementQuery { prepared_statement_handle: format!("{base}#{}", new_id()).into_bytes().into() };
        Ok(Response::new(flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_prepared_statement(&self, cmd: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/Prepared");
        let (_, sql, params) = self.prepared(&who, &cmd.prepared_statement_handle)?;
        let text = String::from_utf8_lossy(&cmd.prepared_statement_handle).to_string();
        let id = text.split_once('#').map_or_else(new_id, |(_, e)| e.to_string());
        self.run(&who, id, &sql, params.as_ref(), log).await
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/Catalogs");
        let engine = self.state.sessions.engine_for(&who).await?;
        let mut b = query.into_builder();
        for c in engine.ctx().catalog_names() {
            b.append(c);
        }
        Ok(self.answer(b.build().map_err(arrow_status)?, log))
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/DbSchemas");
        let engine = self.state.sessions.engine_for(&who).await?;
        let ctx = engine.ctx();
        let mut b = query.into_builder();
        for c in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&c) {
                for s in catalog.schema_names() {
                    b.append(&c, s);
                }
            }
        }
        Ok(self.answer(b.build().map_err(arrow_status)?, log))
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/Tables");
        let batch = self.tables_batch(&who, query).await.inspect_err(|s| log.fail(s))?;
        Ok(self.answer(batch, log))
    }

    async fn get_flight_info_table_types(&self, query: CommandGetTableTypes, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/TableTypes");
        let mut b = query.into_builder();
        for t in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
            b.append(t);
        }
        Ok(self.answer(b.build().map_err(arrow_status)?, log))
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.state.sql_info).schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/SqlInfo");
        let batch = query.into_builder(&self.state.sql_info).build().map_err(arrow_status)?;
        Ok(self.answer(batch, log))
    }

    async fn get_flight_info_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.state.xdbc).schema();
        command_info(request, schema, query.as_any().encode_to_vec())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<DataStream>, Status> {
        let who = principal(&request)?;
        let log = RequestLog::new(&who, "DoGet/XdbcTypeInfo");
        let batch = query.into_builder(&self.state.xdbc).build().map_err(arrow_status)?;
        Ok(self.answer(batch, log))
    }

    async fn do_action_cancel_query(&self, query: ActionCancelQueryRequest, request: Request<Action>) -> Result<ActionCancelQueryResult, Status> {
        let who = principal(&request)?;
        let _log = RequestLog::new(&who, "CancelQuery");
        let info = FlightInfo::decode(query.info).map_err(|e| Status::invalid_argument(format!("CancelQuery needs a FlightInfo: {e}")))?;
        self.cancel_info(&who, &info)?;
        // 1 is CancelResult::Cancelled; arrow-flight does not export the enum.
        Ok(ActionCancelQueryResult { result: 1 })
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let who = principal(&request)?;
        let action = request.into_inner();
        match action.r#type.as_str() {
            "CancelFlightInfo" => {
                let _log = RequestLog::new(&who, "CancelFlightInfo");
                let req = CancelFlightInfoRequest::decode(action.body).map_err(|e| Status::invalid_argument(format!("CancelFlightInfo: {e}")))?;
                let info = req.info.ok_or_else(|| Status::invalid_argument("CancelFlightInfo needs a FlightInfo"))?;
                self.cancel_info(&who, &info)?;
                let body = CancelFlightInfoResult { status: CancelStatus::Cancelled as i32 }.encode_to_vec();
                Ok(Response::new(Box::pin(futures::stream::once(async move { Ok(arrow_flight::Result { body: body.into() }) }))))
            }
            "vitals.ListQueries" => {
                let _log = RequestLog::new(&who, "ListQueries");
                if who.role != crate::config::Role::Admin {
                    return Err(Status::permission_denied("listing the running queries needs role admin"));
                }
                let lines: Vec<_> = self
                    .state
                    .registry
                    .list()
                    .into_iter()
                    .filter(|(_, r)| !r.sql.is_empty())
                    .map(|(id, r)| {
                        let text = serde_json::json!({"id": id, "principal": r.principal, "sql": r.sql, "running_ms": r.started.elapsed().as_millis() as u64});
                        Ok(arrow_flight::Result { body: text.to_string().into_bytes().into() })
                    })
                    .collect();
                Ok(Response::new(Box::pin(futures::stream::iter(lines))))
            }
            other => Err(Status::invalid_argument(format!("unknown action '{other}'"))),
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![
            Ok(ActionType { r#type: "CancelFlightInfo".into(), description: "Cancel the query of a FlightInfo".into() }),
            Ok(ActionType { r#type: "vitals.ListQueries".into(), description: "The running queries (role admin)".into() }),
        ])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl FlightSql {
    fn cancel_info(&self, who: &Principal, info: &FlightInfo) -> Result<(), Status> {
        let ids: Vec<String> = info.endpoint.iter().filter_map(|e| e.ticket.as_ref()).filter_map(|t| ticket_query_id(&t.ticket)).collect();
        if ids.is_empty() {
            return Err(Status::not_found("that FlightInfo names no query of this server"));
        }
        for id in ids {
            self.state.registry.cancel(&id, who)?;
        }
        Ok(())
    }
}
