//! The Flight service as clients reach it: the Flight SQL service behind a
//! check of each request's command, so a command that cannot be decoded (a
//! SQL string that is not UTF-8, a truncated message) is INVALID_ARGUMENT
//! naming what is wrong. arrow-flight's own dispatch reports those as INTERNAL.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo, SchemaResult, Ticket};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::flight::FlightSql;

/// The Flight SQL service with its inputs checked.
pub struct CheckedFlight(pub FlightSql);

/// A Flight SQL command in bytes must decode to one this server knows.
fn check_command(bytes: &[u8], what: &str) -> Result<(), Status> {
    let any = Any::decode(bytes).map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))?;
    Command::try_from(any).map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))?;
    Ok(())
}

/// An action body that is a Flight SQL message must decode as one. (Flight's
/// own actions, such as CancelFlightInfo, carry plain messages, checked where handled.)
fn check_action(action: &Action) -> Result<(), Status> {
    let sql_actions = ["CreatePreparedStatement", "ClosePreparedStatement", "CancelQuery"];
    if action.body.is_empty() || !sql_actions.contains(&action.r#type.as_str()) {
        return Ok(());
    }
    let any = Any::decode(action.body.as_ref()).map_err(|e| Status::invalid_argument(format!("malformed {} request: {e}", action.r#type)))?;
    if action.r#type == "CreatePreparedStatement" {
        any.unpack::<arrow_flight::sql::ActionCreatePreparedStatementRequest>()
            .map_err(|e| Status::invalid_argument(format!("malformed CreatePreparedStatement request: {e}")))?;
    }
    Ok(())
}

#[tonic::async_trait]
impl FlightService for CheckedFlight {
    type HandshakeStream = <FlightSql as FlightService>::HandshakeStream;
    type ListFlightsStream = <FlightSql as FlightService>::ListFlightsStream;
    type DoGetStream = <FlightSql as FlightService>::DoGetStream;
    type DoPutStream = <FlightSql as FlightService>::DoPutStream;
    type DoExchangeStream = <FlightSql as FlightService>::DoExchangeStream;
    type DoActionStream = <FlightSql as FlightService>::DoActionStream;
    type ListActionsStream = <FlightSql as FlightService>::ListActionsStream;

    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        self.0.handshake(request).await
    }

    async fn list_flights(&self, request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.0.list_flights(request).await
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        self.0.get_flight_info(request).await
    }

    async fn poll_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        self.0.poll_flight_info(request).await
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        self.0.get_schema(request).await
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        check_command(&request.get_ref().ticket, "ticket")?;
        self.0.do_get(request).await
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        self.0.do_put(request).await
    }

    async fn do_exchange(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.0.do_exchange(request).await
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        check_action(request.get_ref())?;
        self.0.do_action(request).await
    }

    async fn list_actions(&self, request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        self.0.list_actions(request).await
    }
}
