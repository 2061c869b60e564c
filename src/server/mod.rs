//! `vitals serve`: one port for Arrow Flight SQL (BI tools), the
//! `vitals.v1.Reports` service (gRPC, and gRPC-Web for browsers), gRPC health
//! checking and server reflection over HTTP/2, and the JSON API (`web`) over
//! HTTP/1.1 and HTTP/2. It holds no analytics: every answer is SQL run in an engine
//! session whose tables yield only the caller's accounts (the engine scopes
//! them), under the limits of `query`.

pub mod auth;
mod flight;
mod flight_input;
pub mod proto;
mod query;
mod reports;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

use crate::config::Role;
use crate::engine::{Engine, EngineArgs};
use auth::{Auth, Principal};
pub use query::Limits;
use query::{Admission, Registry, Tally};

/// The stack of a planner thread (address space reserved; pages are used as planning recurses).
const PLANNER_STACK: usize = 256 << 20;

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{0}")]
    Setup(String),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// How to run the server.
pub struct ServeArgs {
    /// The engine every session is built from (its scope is set per token).
    pub engine: EngineArgs,
    /// The config file the tokens come from, re-read when it changes.
    pub config_path: Option<PathBuf>,
    pub limits: Limits,
    /// PEM certificate and key: serve TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// After SIGINT/SIGTERM, how long running queries may take before they are cancelled.
    pub shutdown_grace: Duration,
    /// Origins whose pages may call the server from a browser (CORS); none: same origin only.
    pub cors_origins: Vec<String>,
    /// Tokens of this run only (the first run's one-off admin token).
    pub own_tokens: Vec<crate::config::TokenConfig>,
    /// The file of the key session tokens are signed with (created if missing).
    /// None: `<config file>.session-key` beside a config file, else a key of this run.
    pub session_key_file: Option<PathBuf>,
}

/// The key session tokens are signed with: from `--session-key-file`, else
/// beside the config file (so that sessions outlive a restart), else (no
/// config file, or its folder cannot be written) one for this run.
fn session_key(args: &ServeArgs) -> Result<auth::SessionKey> {
    if let Some(path) = &args.session_key_file {
        return auth::SessionKey::load_or_create(path).map_err(ServerError::Setup);
    }
    let Some(config) = &args.config_path else { return Ok(auth::SessionKey::random()) };
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".session-key");
    let path = config.with_file_name(name);
    Ok(auth::SessionKey::load_or_create(&path).unwrap_or_else(|e| {
        tracing::warn!("{e}: sessions will end when the server stops (set --session-key-file to keep them)");
        auth::SessionKey::random()
    }))
}

/// Engines by scope: one for every account, one per distinct set of accounts,
/// all over the same live lake.
pub struct Sessions {
    all: Arc<Engine>,
    scoped: tokio::sync::Mutex<HashMap<Vec<String>, Arc<Engine>>>,
    /// Each CSM's accounts, looked up again only when the accounts table changes.
    csm_accounts: Mutex<HashMap<String, (u64, Vec<String>)>>,
}

impl Sessions {
    /// The engine that sees every account.
    pub fn all_engine(&self) -> &Engine {
        &self.all
    }

    async fn csm_accounts(&self, csm: &str) -> Result<Vec<String>, Status> {
        let accounts = self.all.live().current().fingerprint(crate::lake::Table::Accounts);
        let cached = self.csm_accounts.lock().unwrap_or_else(|p| p.into_inner()).get(csm).cloned();
        if let Some((seen, orgs)) = cached {
            if seen == accounts {
                return Ok(orgs);
            }
        }
        let sql = format!("SELECT DISTINCT CAST(org_id AS VARCHAR) FROM accounts WHERE csm = {}", crate::config::sql_str(csm));
        let set = crate::reports::distinct_strings(self.all.ctx(), &sql).await.map_err(|e| {
            tracing::error!("looking up the accounts of csm {csm}: {e}");
            Status::internal("cannot look up this token's accounts")
        })?;
        let mut orgs: Vec<String> = set.into_iter().collect();
        orgs.sort();
        self.csm_accounts.lock().unwrap_or_else(|p| p.into_inner()).insert(csm.to_string(), (accounts, orgs.clone()));
        Ok(orgs)
    }

    /// The engine whose tables yield exactly the rows `who` may see.
    pub async fn engine_for(&self, who: &Principal) -> Result<Arc<Engine>, Status> {
        let orgs: Vec<String> = match who.role {
            Role::Admin | Role::Analyst => return Ok(self.all.clone()),
            Role::Account => who.org_id.iter().cloned().collect(),
            Role::Csm => self.csm_accounts(&who.name).await?,
        };
        let mut map = self.scoped.lock().await;
        if let Some(e) = map.get(&orgs) {
            return Ok(e.clone());
        }
        let engine = Arc::new(self.all.scoped(Arc::new(orgs.clone())).await.map_err(|e| {
            tracing::error!("building a scoped session: {e}");
            Status::internal("cannot open a session for this token")
        })?);
        map.insert(orgs, engine.clone());
        Ok(engine)
    }
}

/// What every service shares.
pub struct ServerState {
    pub auth: Arc<Auth>,
    pub sessions: Sessions,
    pub limits: Limits,
    pub admission: Admission,
    /// Plans being made at once (planning runs off the threads that serve calls).
    pub planning: Admission,
    pub registry: Arc<Registry>,
    pub prepared: Mutex<HashMap<String, flight::Prepared>>,
    pub sql_info: arrow_flight::sql::metadata::SqlInfoData,
    pub xdbc: arrow_flight::sql::metadata::XdbcTypeInfoData,
}

impl ServerState {
    /// Plans client SQL in `who`'s scope with parameters bound. With
    /// `own_pool`, in a context with its own memory pool (to run it);
    /// without, in the shared one (to learn its schema).
    pub async fn plan(
        &self,
        who: &Principal,
        sql: &str,
        params: Option<&arrow::array::RecordBatch>,
        own_pool: bool,
    ) -> Result<(datafusion::prelude::SessionContext, datafusion::logical_expr::LogicalPlan), Status> {
        // What was committed since the last refresh, if that was longer ago than the refresh interval.
        self.sessions.all.refresh_if_stale().await;
        let engine = self.sessions.engine_for(who).await?;
        let memory = own_pool.then_some(self.limits.query_memory);
        let ctx = engine.query_context(memory).map_err(|e| Status::internal(e.to_string()))?;
        engine.prepare_facts(&ctx).await.map_err(|e| {
            tracing::error!("reading a scoped session's dates: {e}");
            Status::internal("cannot read this token's dates")
        })?;
        // Planning a hostile query can take long: it runs on a blocking thread,
        // not on the threads that serve other calls, and within the query's
        // time limit. Its planning slot is held until it really ends.
        let slot = self.planning.admit().await?;
        let (planner, text, limits) = (ctx.clone(), sql.to_string(), self.limits.clone());
        let runtime = tokio::runtime::Handle::current();
        let (done, job) = tokio::sync::oneshot::channel();
        // A thread of its own with a deep stack: planning recurses once per
        // nesting level of an expression (up to --max-expression-depth).
        std::thread::Builder::new()
            .name("vitals-planner".into())
            .stack_size(PLANNER_STACK)
            .spawn(move || {
                let planned = runtime.block_on(query::plan_sql(&planner, &text, &limits));
                // Free before answering: the caller's next query may plan at once.
                drop(slot);
                let _ = done.send(planned);
            })
            .map_err(|e| Status::internal(format!("cannot start a planner thread: {e}")))?;
        let planned = match tokio::time::timeout(self.limits.query_timeout, job).await {
            Ok(Ok(planned)) => planned?,
            Ok(Err(_)) => return Err(query::panic_status()),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "planning the query took longer than its timeout of {:?} (--query-timeout)",
                    self.limits.query_timeout
                )))
            }
        };
        let plan = query::bind(planned, params)?;
        // A plan shows the statistics, row counts and pruning of whole files,
        // which hold every account: a scoped token does not see plans.
        if !who.sees_all() && matches!(plan, datafusion::logical_expr::LogicalPlan::Explain(_) | datafusion::logical_expr::LogicalPlan::Analyze(_)) {
            return Err(Status::permission_denied(
                "EXPLAIN is for admin and analyst tokens: a plan carries statistics of files that hold every account",
            ));
        }
        Ok((ctx, plan))
    }

    /// Admits, plans and starts one query under the limits: its wire schema and batches.
    pub async fn start(
        &self,
        who: &Principal,
        id: String,
        sql: &str,
        params: Option<&arrow::array::RecordBatch>,
        tally: Arc<Tally>,
    ) -> Result<(arrow::datatypes::SchemaRef, query::ResultStream), Status> {
        let permit = self.admission.admit().await?;
        let (ctx, plan) = self.plan(who, sql, params, true).await?;
        let schema = query::wire_schema(plan.schema().as_arrow());
        let stream = query::execute(query::Execution {
            ctx,
            plan,
            id,
            principal: who.name.clone(),
            sql: sql.to_string(),
            permit,
            registry: self.registry.clone(),
            limits: self.limits.clone(),
            tally,
            schema: schema.clone(),
        })
        .await?;
        Ok((schema, stream))
    }
}

/// The principal the auth interceptor put on a request.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request.extensions().get::<Principal>().cloned().ok_or_else(|| Status::unauthenticated("no credentials"))
}

/// One log line per request, written when the request (or its stream) ends:
/// principal, method, rows, bytes, milliseconds and status.
pub struct RequestLog {
    principal: String,
    method: &'static str,
    start: Instant,
    tally: Arc<Tally>,
    /// The failure's status and reason (a status message never holds a secret).
    status: Mutex<Option<(tonic::Code, String)>>,
}

impl RequestLog {
    pub fn new(who: &Principal, method: &'static str) -> RequestLog {
        RequestLog { principal: who.name.clone(), method, start: Instant::now(), tally: Arc::default(), status: Mutex::new(None) }
    }
    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }
    pub fn fail(&self, s: &Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some((s.code(), s.message().to_string()));
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let (code, reason) = self.status.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or((tonic::Code::Ok, String::new()));
        tracing::info!(
            principal = %self.principal,
            method = self.method,
            rows = self.tally.rows.load(Ordering::Relaxed),
            bytes = self.tally.bytes.load(Ordering::Relaxed),
            ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            status = ?code,
            reason = %reason,
            "request"
        );
    }
}

/// Serves until `shutdown` resolves, then stops accepting, gives running
/// queries `shutdown_grace` to finish and cancels the rest.
pub async fn serve(args: ServeArgs, listener: TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let config = args.engine.config.clone();
    let all = Arc::new(Engine::open(args.engine.clone()).await?);
    let auth = Arc::new(Auth::with_own(&config, args.config_path.clone(), args.own_tokens.clone(), session_key(&args)?));
    if config.tokens.is_empty() && args.own_tokens.is_empty() {
        tracing::warn!("no [[tokens]] in the config: every call will be refused (UNAUTHENTICATED)");
    }
    let sql_info = flight::sql_info(&args.limits).map_err(|e| ServerError::Setup(e.to_string()))?;
    let xdbc = flight::xdbc_info().map_err(|e| ServerError::Setup(e.to_string()))?;
    let state = Arc::new(ServerState {
        auth: auth.clone(),
        sessions: Sessions { all: Arc::clone(&all), scoped: Default::default(), csm_accounts: Default::default() },
        admission: Admission::new(&args.limits),
        planning: Admission::new(&args.limits),
        limits: args.limits.clone(),
        registry: Arc::new(Registry::default()),
        prepared: Mutex::new(HashMap::new()),
        sql_info,
        xdbc,
    });
    let check = {
        let auth = auth.clone();
        move |mut req: Request<()>| -> Result<Request<()>, Status> {
            let header = req.metadata().get("authorization").map(|v| v.as_bytes().to_vec());
            match auth.authenticate(header.as_deref()) {
                Ok(p) => {
                    req.extensions_mut().insert(p);
                    Ok(req)
                }
                Err(s) => {
                    tracing::info!(status = ?s.code(), reason = s.message(), "refused a call");
                    Err(s)
                }
            }
        }
    };
    let flight = FlightServiceServer::new(flight_input::CheckedFlight(flight::FlightSql { state: state.clone() }))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let reports = proto::reports_server::ReportsServer::new(reports::ReportService::new(state.clone()).map_err(ServerError::Setup)?);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<FlightServiceServer<flight_input::CheckedFlight>>().await;
    health_reporter.set_serving::<proto::reports_server::ReportsServer<reports::ReportService>>().await;
    // Reflection in both versions: grpcurl and newer clients ask v1, many others v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| ServerError::Setup(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServerError::Setup(format!("reflection: {e}")))?;

    let mut builder = Server::builder();
    if let Some((cert, key)) = &args.tls {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| ServerError::Setup(format!("{}: {e}", p.display())));
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // One router: the web API's routes, and beside them each gRPC service
    // under its path; vitals.v1.Reports also speaks gRPC-Web (HTTP/1.1 too).
    let routes = tonic::service::Routes::from(web::router(state.clone()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tonic::service::interceptor::InterceptedService::new(flight, check.clone()))
        .add_service(tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), tonic::service::interceptor::InterceptedService::new(reports, check)));
    let mut app = routes.into_axum_router();
    if !args.cors_origins.is_empty() {
        app = app.layer(cors(&args.cors_origins)?);
    }
    let router = builder.accept_http1(true).add_routes(tonic::service::Routes::from(app));
    // Keeps the snapshot fresh between queries, so a query rarely waits for a refresh.
    let refresher = {
        let live = Arc::clone(all.live());
        let every = args.engine.refresh_every;
        tokio::spawn(async move {
            if every.is_zero() {
                return;
            }
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                live.refresh_if_stale().await;
            }
        })
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopping));
    shutdown.await;
    refresher.abort();
    tracing::info!("shutting down: no new connections; running queries get {:?}", args.shutdown_grace);
    let _ = stop_tx.send(true);
    health_reporter.set_not_serving::<FlightServiceServer<flight_input::CheckedFlight>>().await;
    let mut server = server;
    match tokio::time::timeout(args.shutdown_grace, &mut server).await {
        Ok(joined) => joined.map_err(|e| ServerError::Setup(format!("server task: {e}")))??,
        Err(_) => {
            tracing::warn!("grace period over: cancelling the running queries");
            state.registry.cancel_all();
            match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
                Ok(joined) => joined.map_err(|e| ServerError::Setup(format!("server task: {e}")))??,
                Err(_) => server.abort(),
            }
        }
    }
    Ok(())
}

/// Browsers on these origins may call the JSON API and gRPC-Web with a token.
fn cors(origins: &[String]) -> Result<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    let allowed = origins
        .iter()
        .map(|o| HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| ServerError::Setup(format!("--cors-origin: '{o}' is not an origin"))))
        .collect::<Result<Vec<_>>>()?;
    let name = HeaderName::from_static;
    Ok(tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, name("x-grpc-web"), name("x-user-agent"), name("grpc-timeout")])
        .expose_headers([name("grpc-status"), name("grpc-message"), name("grpc-status-details-bin")])
        .max_age(Duration::from_secs(3600)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Binds the address; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| ServerError::Setup(format!("cannot listen on {addr}: {e}")))
}
