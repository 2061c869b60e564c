//! The `vitals` command line: generate a demo lake, ingest files, run SQL
//! (one query or an interactive prompt), list what SQL can see, and a guided
//! tour of the customer-success reports. Every flag also reads a VITALS_* variable.

pub mod render;
mod repl;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::engine::{Engine, EngineArgs};
use crate::lake::demo::{self, DemoArgs};
use crate::lake::ingest::{self, IngestArgs, InputFormat};
use crate::lake::{Lake, Table};
use render::Format;

/// vitals: customer-success analytics over product events in Parquet.
#[derive(Debug, Parser)]
#[command(name = "vitals", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, global = true, env = "VITALS_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a realistic, deterministic demo lake.
    Demo(DemoCmd),
    /// Load CSV, newline-delimited JSON or Parquet files into the lake.
    Ingest(IngestCmd),
    /// Run one SQL query, or open an interactive prompt when no query is given.
    Sql(SqlCmd),
    /// List the tables, views and functions SQL can use.
    Tables(LakeArgs),
    /// Run one customer-success report by name, e.g. `vitals report declining_accounts 2 5 14`;
    /// without a name, list the reports and their arguments.
    Report(ReportCmd),
    /// Generate the demo lake if missing, then show the main reports on it.
    Tour(TourCmd),
    /// Serve Arrow Flight SQL, the vitals.v1.Reports gRPC service, health and reflection on one port.
    Serve(ServeCmd),
    /// Print the SHA-256 of a token secret, for `[[tokens]] sha256` in the config.
    HashToken(HashTokenCmd),
    /// Delete files no reader counts any more: those an ingest replaced, and those of ingests that never committed.
    Vacuum(VacuumCmd),
    /// Rewrite the events of each UTC day that is not one file in vitals' layout (another pipeline's files,
    /// many small ingests) into one sorted file, in one commit; every query gives the same answer.
    Compact(CompactCmd),
    /// Run a Ballista scheduler for `--cluster df://HOST:PORT`; it plans each query's scans over the lake.
    Scheduler(SchedulerCmd),
    /// Run a Ballista executor: it registers with the scheduler and runs the tasks of queries.
    Executor(ExecutorCmd),
}

#[derive(Debug, Args)]
pub struct SchedulerCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Address to listen on.
    #[arg(long, env = "VITALS_BIND_HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Port to listen on (clients name it in `--cluster df://HOST:PORT`).
    #[arg(long, env = "VITALS_BIND_PORT", default_value_t = crate::cluster::DEFAULT_SCHEDULER_PORT)]
    pub bind_port: u16,
    /// The host executors and clients reach this scheduler at (default: --bind-host).
    #[arg(long, env = "VITALS_EXTERNAL_HOST")]
    pub external_host: Option<String>,
    /// How old the view of the lake may get before what was committed since is read.
    #[arg(long, env = "VITALS_REFRESH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub refresh_interval: std::time::Duration,
    /// How long an executor may go without a heartbeat (they send one every 5 s) before it is
    /// taken as lost and its tasks run on the others (at least 10s).
    #[arg(long, env = "VITALS_EXECUTOR_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub executor_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ExecutorCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Address to listen on.
    #[arg(long, env = "VITALS_BIND_HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// The host the scheduler and other executors reach this one at (default: --bind-host).
    #[arg(long, env = "VITALS_EXTERNAL_HOST")]
    pub external_host: Option<String>,
    /// Port of the Arrow Flight service other executors and clients fetch results from.
    #[arg(long, env = "VITALS_PORT", default_value_t = 50051)]
    pub port: u16,
    /// Port of the executor's gRPC service.
    #[arg(long, env = "VITALS_GRPC_PORT", default_value_t = 50052)]
    pub grpc_port: u16,
    #[arg(long, env = "VITALS_SCHEDULER_HOST", default_value = "127.0.0.1")]
    pub scheduler_host: String,
    #[arg(long, env = "VITALS_SCHEDULER_PORT", default_value_t = crate::cluster::DEFAULT_SCHEDULER_PORT)]
    pub scheduler_port: u16,
    /// Tasks run at once (default: the cores).
    #[arg(long, env = "VITALS_CONCURRENT_TASKS")]
    pub concurrent_tasks: Option<usize>,
    /// Folder for shuffle files and spills (default: a temporary folder).
    #[arg(long, env = "VITALS_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Memory the tasks may use together, such as 4GiB (default: a share of the machine's).
    #[arg(long, env = "VITALS_MEMORY_POOL_SIZE", value_parser = parse_size)]
    pub memory_pool_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct CompactCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Only days from this one (UTC, YYYY-MM-DD); a file reaching outside the days brings its other days in.
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Only days up to this one (UTC, YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Print what would be rewritten; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct VacuumCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Keep files that were replaced, or written by an ingest that did not commit, less than this long ago
    /// (a server may still be reading a replaced file; an ingest may still be running).
    #[arg(long, env = "VITALS_VACUUM_OLDER_THAN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub older_than: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ServeCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, env = "VITALS_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: std::net::SocketAddr,
    /// An origin (`https://dash.example.com`) whose pages may call the JSON API
    /// and gRPC-Web from a browser; repeat it, or comma-separate in the
    /// environment. None: pages of the server's own origin only.
    #[arg(long = "cors-origin", env = "VITALS_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// File of the key that signs session tokens (made if missing), so that a
    /// client signed in with Basic credentials stays signed in across restarts.
    /// Default: CONFIG.session-key beside --config; without a config, a key for this run.
    #[arg(long, env = "VITALS_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// PEM certificate: serve TLS (with --tls-key).
    #[arg(long, env = "VITALS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "VITALS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Memory one query may use; past it the query fails with RESOURCE_EXHAUSTED.
    #[arg(long, env = "VITALS_QUERY_MEMORY", default_value = "2GiB", value_parser = parse_size)]
    pub query_memory: usize,
    /// Wall time one query may take, streaming included (DEADLINE_EXCEEDED past it).
    #[arg(long, env = "VITALS_QUERY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub query_timeout: std::time::Duration,
    /// Queries running at once.
    #[arg(long, env = "VITALS_MAX_CONCURRENT_QUERIES", default_value_t = 4)]
    pub max_concurrent_queries: usize,
    /// Queries that may wait for a slot; one more gets RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "VITALS_MAX_QUEUED_QUERIES", default_value_t = 16)]
    pub max_queued_queries: usize,
    /// How long a queued query waits for a slot before RESOURCE_EXHAUSTED.
    #[arg(long, env = "VITALS_QUEUE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub queue_timeout: std::time::Duration,
    /// Rows one result may have.
    #[arg(long, env = "VITALS_MAX_RESULT_ROWS", default_value_t = 10_000_000)]
    pub max_result_rows: usize,
    /// Arrow bytes one result may have.
    #[arg(long, env = "VITALS_MAX_RESULT_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_result_bytes: usize,
    /// After SIGINT/SIGTERM: how long running queries may go on before they are cancelled.
    #[arg(long, env = "VITALS_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
    /// Longest SQL text one query may have (ClickHouse's max_query_size); longer is refused before parsing.
    #[arg(long, env = "VITALS_MAX_QUERY_SIZE", default_value = "256KiB", value_parser = parse_size)]
    pub max_query_size: usize,
    /// Most words, numbers, strings and symbols one query may have (ClickHouse's max_ast_elements).
    #[arg(long, env = "VITALS_MAX_QUERY_ELEMENTS", default_value_t = 50_000)]
    pub max_query_elements: usize,
    /// How deep one expression may nest: operators in a chain and parentheses (ClickHouse's max_ast_depth).
    #[arg(long, env = "VITALS_MAX_EXPRESSION_DEPTH", default_value_t = 1_000)]
    pub max_expression_depth: usize,
    /// Prepared statements one token may hold open at once.
    #[arg(long, env = "VITALS_MAX_PREPARED_STATEMENTS", default_value_t = 100)]
    pub max_prepared_statements: usize,
}

#[derive(Debug, Args)]
pub struct HashTokenCmd {
    /// The secret a client will send as `Bearer <secret>` (or as the Basic password).
    pub secret: String,
}

/// Where the lake is and how to read it.
#[derive(Debug, Args, Clone)]
pub struct LakeArgs {
    /// Lake root: a local folder or s3://bucket/prefix (AWS_* variables configure S3).
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// TOML file with the event names and report settings (see README).
    #[arg(long, env = "VITALS_CONFIG")]
    pub config: Option<PathBuf>,
    /// A folder of your own CREATE VIEW files, loaded after the built-in views.
    #[arg(long, env = "VITALS_VIEWS")]
    pub views: Option<PathBuf>,
    /// Memory for query execution, such as 2GiB (default: unbounded).
    #[arg(long, env = "VITALS_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// How old the view of the lake may get before the next query reads what was committed since
    /// (`vitals serve` and the prompt; 0s reads it before every query).
    #[arg(long, env = "VITALS_REFRESH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub refresh_interval: std::time::Duration,
    /// Run queries on a Ballista cluster, df://HOST:PORT of its scheduler (`vitals scheduler`); planned here.
    #[arg(long, env = "VITALS_CLUSTER")]
    pub cluster: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Number of customer accounts.
    #[arg(long, env = "VITALS_DEMO_ACCOUNTS", default_value_t = 120)]
    pub accounts: usize,
    /// Days of events, ending at --end-date.
    #[arg(long, env = "VITALS_DEMO_DAYS", default_value_t = 90)]
    pub days: u32,
    /// Random seed: the same seed gives the same lake.
    #[arg(long, env = "VITALS_DEMO_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Last day of events (YYYY-MM-DD).
    #[arg(long, env = "VITALS_DEMO_END_DATE", default_value_t = demo::default_end_date())]
    pub end_date: NaiveDate,
    /// Replace the tables of a lake that already has files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct IngestCmd {
    #[arg(long, env = "VITALS_LAKE", default_value = "data/lake")]
    pub lake: String,
    /// Table to load: events, accounts, users, interventions or subscriptions.
    #[arg(long, default_value = "events", value_parser = parse_table)]
    pub table: Table,
    /// Input format (default: from each file's extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Write bad rows here (JSON lines, with the reason) and ingest the good ones.
    #[arg(long)]
    pub reject_file: Option<PathBuf>,
    /// Files to load.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, env = "VITALS_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Rows shown in table format.
    #[arg(long, env = "VITALS_MAX_ROWS", default_value_t = 1000)]
    pub max_rows: usize,
}

#[derive(Debug, Args)]
pub struct SqlCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print to stderr how long the query took (planning, running and writing
    /// the result; start-up not included), as `query seconds: 1.234`.
    #[arg(long)]
    pub timing: bool,
    /// The query; without it an interactive prompt opens.
    pub query: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The report, as `vitals tables` lists it (e.g. health_scores).
    pub name: Option<String>,
    /// Its arguments in order: numbers, dates (2024-05-31), text; `-` keeps an argument's default.
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TourCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
}

fn parse_table(s: &str) -> Result<Table, String> {
    Table::parse(s).ok_or_else(|| format!("unknown table '{s}': use events, accounts, users, interventions or subscriptions"))
}

/// Parses sizes such as `512MiB`, `2GB`, `1048576`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a size such as 512MiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    Ok((n * mult) as usize)
}

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl LakeArgs {
    /// What an engine over this lake is built from.
    pub fn engine_args(&self) -> CliResult<EngineArgs> {
        let lake = Lake::open(&self.lake, false)?;
        let config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let mut args = EngineArgs::new(lake);
        args.config = config;
        args.views_dir = self.views.clone();
        args.memory_limit = self.memory_limit;
        args.refresh_every = self.refresh_interval;
        if let Some(c) = &self.cluster {
            crate::cluster::scheduler_url(c)?;
            args.cluster = Some(c.clone());
        }
        Ok(args)
    }

    pub async fn engine(&self) -> CliResult<Engine> {
        Ok(Engine::open(self.engine_args()?).await?)
    }
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Demo(c) => run_demo(c).await,
        Command::Ingest(c) => run_ingest(c).await,
        Command::Sql(c) => run_sql(c).await,
        Command::Tables(c) => run_tables(c).await,
        Command::Report(c) => run_report(c).await,
        Command::Tour(c) => run_tour(c).await,
        Command::Serve(c) => run_serve(c).await,
        Command::HashToken(c) => {
            println!("{}", crate::server::auth::hash_secret(&c.secret));
            Ok(())
        }
        Command::Vacuum(c) => run_vacuum(c).await,
        Command::Compact(c) => run_compact(c).await,
        Command::Scheduler(c) => run_scheduler(c).await,
        Command::Executor(c) => run_executor(c).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            exit_code(e.as_ref())
        }
    }
}

async fn run_demo(c: DemoCmd) -> CliResult {
    let lake = Lake::open(&c.lake, true)?;
    let args = DemoArgs { accounts: c.accounts, days: c.days, seed: c.seed, end_date: c.end_date, force: c.force };
    let (s, planted) = demo::generate(&lake, &args).await?;
    println!(
        "demo lake at {}: {} accounts, {} users, {} events in {} files, {:.1}s ({:.2}M events/s)",
        c.lake,
        s.accounts,
        s.users,
        s.events,
        s.files,
        s.seconds,
        s.events as f64 / s.seconds.max(1e-9) / 1e6
    );
    println!(
        "planted: {} at least {} times in the first {} days predicts activity in days 8-14; declining in the last {} days: {}; CSM intervened at: {}",
        planted.magic_event,
        planted.magic_count,
        planted.magic_window_days,
        planted.decline_days,
        planted.declining.join(", "),
        planted.intervened.join(", ")
    );
    let churned: Vec<String> = planted.churned.iter().map(|(id, day)| format!("{id} on {day}")).collect();
    println!(
        "stopped paying: {} ({} after their usage fell: {})",
        if churned.is_empty() { "none".to_string() } else { churned.join(", ") },
        planted.churned_after_decline.len(),
        if planted.churned_after_decline.is_empty() { "none".to_string() } else { planted.churned_after_decline.join(", ") }
    );
    Ok(())
}

async fn run_ingest(c: IngestCmd) -> CliResult {
    // Check the inputs before a new lake folder is made for them.
    for f in &c.files {
        if !f.is_file() {
            return Err(format!("{}: no such file", f.display()).into());
        }
    }
    let lake = Lake::open(&c.lake, true)?;
    let args = IngestArgs { table: c.table, files: c.files, format: c.format, reject_file: c.reject_file.clone(), progress: true };
    let s = ingest::ingest(&lake, args).await?;
    println!(
        "ingested into {}: {} rows read, {} written, {} rejected, {} duplicates dropped, {} files, {:.2}s",
        c.table.name(),
        s.rows_read,
        s.rows_written,
        s.rows_rejected,
        s.duplicates_dropped,
        s.files_written,
        s.seconds
    );
    if let (Some(p), true) = (&c.reject_file, s.rows_rejected > 0) {
        println!("rejected rows and their reasons: {}", p.display());
    }
    Ok(())
}

/// 2 for a mistake in a query or its arguments, 3 for a limit reached, 1 for
/// anything else (a lake, config or view file that cannot be used included).
fn exit_code(e: &(dyn std::error::Error + 'static)) -> i32 {
    let query_error = e.downcast_ref::<datafusion::error::DataFusionError>().or(match e.downcast_ref::<crate::engine::EngineError>() {
        Some(crate::engine::EngineError::DataFusion(d)) => Some(d),
        _ => None,
    });
    query_error.map_or(1, |d| crate::engine::kind::kind_of(d).exit_code())
}

async fn run_vacuum(c: VacuumCmd) -> CliResult {
    let lake = Lake::open(&c.lake, false)?;
    let keep = crate::lake::vacuum::Retention { removed: c.older_than, uncommitted: c.older_than };
    let v = crate::lake::vacuum::vacuum(&lake, keep).await?;
    println!(
        "vacuum {}: deleted {} replaced and {} uncommitted files ({} bytes)",
        c.lake, v.removed_deleted, v.uncommitted_deleted, v.bytes
    );
    Ok(())
}

async fn run_scheduler(c: SchedulerCmd) -> CliResult {
    let lake = Lake::open(&c.lake, false)?;
    crate::cluster::run_scheduler(crate::cluster::SchedulerOptions {
        lake,
        bind_host: c.bind_host,
        bind_port: c.bind_port,
        external_host: c.external_host,
        refresh_every: c.refresh_interval,
        executor_timeout: c.executor_timeout,
    })
    .await
}

async fn run_executor(c: ExecutorCmd) -> CliResult {
    let lake = Lake::open(&c.lake, false)?;
    let work_dir = match c.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("--work-dir {}: {e}", dir.display()))?;
            Some(dir.to_str().ok_or_else(|| format!("--work-dir {}: not UTF-8", dir.display()))?.to_string())
        }
        None => None,
    };
    crate::cluster::run_executor(crate::cluster::ExecutorOptions {
        lake,
        bind_host: c.bind_host,
        external_host: c.external_host,
        port: c.port,
        grpc_port: c.grpc_port,
        scheduler_host: c.scheduler_host,
        scheduler_port: c.scheduler_port,
        concurrent_tasks: c.concurrent_tasks,
        work_dir,
        memory_pool_size: c.memory_pool_size.map(|s| u64::try_from(s).unwrap_or(u64::MAX)),
    })
    .await
}

async fn run_compact(c: CompactCmd) -> CliResult {
    if let (Some(from), Some(to)) = (c.from, c.to) {
        if to < from {
            return Err(format!("--to {to} is before --from {from}").into());
        }
    }
    let lake = Lake::open(&c.lake, false)?;
    let args = crate::lake::compact::CompactArgs { from: c.from, to: c.to, dry_run: c.dry_run };
    let s = crate::lake::compact::compact(&lake, &args).await?;
    for (file, why) in &s.skipped {
        println!("left as it is: {file}: {why}");
    }
    if s.files_removed == 0 {
        println!("compact {}: every day is already one file in vitals' layout; nothing to do", c.lake);
    } else if c.dry_run {
        println!("compact {} (dry run): would rewrite {} days from {} files ({} bytes)", c.lake, s.days, s.files_removed, s.bytes_removed);
    } else {
        println!(
            "compact {}: rewrote {} days, {} rows: {} files ({} bytes) replaced by {} ({} bytes) in commit {}; \
             the replaced files are deleted by a vacuum at least 10 minutes from now (readers may still use them)",
            c.lake,
            s.days,
            s.rows,
            s.files_removed,
            s.bytes_removed,
            s.files_written,
            s.bytes_written,
            s.version.unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs one statement and writes its result (after reading what was
/// committed since the last statement, if the refresh interval has passed).
pub async fn run_query(engine: &Engine, sql: &str, format: Format, max_rows: usize, out: &mut dyn Write) -> CliResult<usize> {
    engine.refresh_if_stale().await;
    let plan = crate::engine::plan_sql(&engine.ctx().state(), sql).await?;
    let df = engine.ctx().execute_logical_plan(plan).await?;
    let stream = df.execute_stream().await?;
    Ok(render::write_stream(stream, format, max_rows, out).await?)
}

async fn run_sql(c: SqlCmd) -> CliResult {
    let engine = c.lake.engine().await?;
    match &c.query {
        Some(q) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let started = std::time::Instant::now();
            run_query(&engine, q, c.output.format, c.output.max_rows, &mut out).await?;
            out.flush()?;
            if c.timing {
                eprintln!("query seconds: {:.4}", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        None => repl::run(&engine, c.output.format, c.output.max_rows).await,
    }
}

async fn run_serve(c: ServeCmd) -> CliResult {
    let mut engine = c.lake.engine_args()?;
    // A server keeps serving the rest of the lake: a file that breaks the
    // contract is left out and named in the log, at start-up as later.
    engine.check_files = false;
    let limits = crate::server::Limits {
        query_memory: c.query_memory,
        query_timeout: c.query_timeout,
        max_concurrent: c.max_concurrent_queries.max(1),
        max_queued: c.max_queued_queries,
        queue_timeout: c.queue_timeout,
        max_rows: c.max_result_rows,
        max_bytes: c.max_result_bytes,
        max_query_bytes: c.max_query_size,
        max_query_elements: c.max_query_elements,
        max_expression_depth: c.max_expression_depth,
        max_prepared_per_principal: c.max_prepared_statements,
    };
    let tls = c.tls_cert.clone().zip(c.tls_key.clone());
    // No tokens: on a loopback address, a one-off admin token for this run
    // (only this machine can reach it); elsewhere, an error.
    let mut own_tokens = Vec::new();
    let mut first_run_secret = None;
    if engine.config.tokens.is_empty() {
        if !c.addr.ip().is_loopback() {
            return Err(format!(
                "no [[tokens]] in the config, and {} is reachable from other machines: add a [[tokens]] entry (see the README, \"Tokens\") \
                 to --config, or listen on 127.0.0.1 for a one-off admin token",
                c.addr
            )
            .into());
        }
        let secret = format!("vf_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        own_tokens.push(crate::config::TokenConfig {
            name: "first-run".into(),
            role: crate::config::Role::Admin,
            sha256: crate::server::auth::hash_secret(&secret),
            org_id: None,
            expires: None,
        });
        first_run_secret = Some(secret);
    }
    let args = crate::server::ServeArgs {
        engine,
        config_path: c.lake.config.clone(),
        limits,
        tls,
        shutdown_grace: c.shutdown_grace,
        cors_origins: c.cors_origins.clone(),
        own_tokens,
        session_key_file: c.session_key_file.clone(),
    };
    let listener = crate::server::bind(c.addr).await?;
    let local = listener.local_addr()?;
    let scheme = if c.tls_cert.is_some() { "https" } else { "http" };
    println!("vitals serve: listening on {local} (Flight SQL, vitals.v1.Reports over gRPC and gRPC-Web, JSON API, health, reflection), lake {}", c.lake.lake);
    println!("vitals serve: dashboard at {scheme}://{local}/ and JSON API at {scheme}://{local}/api/v1/reports");
    if let Some(secret) = first_run_secret {
        println!("vitals serve: no [[tokens]] configured: a one-off admin token for this run (gone when it stops):");
        println!("    {secret}");
        // In the fragment, the token never reaches a server log; the page keeps it and drops it from the address.
        println!("vitals serve: open the dashboard, signed in: {scheme}://{local}/#token={secret}");
        println!("vitals serve: or send it as `Authorization: Bearer {secret}`, e.g.");
        println!("    curl -H 'Authorization: Bearer {secret}' {scheme}://{local}/api/v1/reports");
    }
    std::io::stdout().flush()?;
    crate::server::serve(args, listener, crate::server::signal()).await?;
    println!("vitals serve: stopped");
    Ok(())
}

async fn run_tables(c: LakeArgs) -> CliResult {
    let engine = c.engine().await?;
    let mut grid = comfy_table::Table::new();
    grid.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    grid.set_header(vec!["kind", "name", "description"]);
    for e in engine.catalog() {
        grid.add_row(vec![e.kind, &e.name, &e.description]);
    }
    println!("{grid}");
    Ok(())
}

/// A report call's arguments as SQL literals: whole numbers stay numbers,
/// `-` is NULL (the default), anything else is a quoted string, which each
/// report reads as a date, an interval or a list as its argument requires.
fn report_literals(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| {
            if a == "-" {
                "NULL".to_string()
            } else if a.parse::<i64>().is_ok() {
                a.clone()
            } else {
                crate::config::sql_str(a)
            }
        })
        .collect()
}

async fn run_report(c: ReportCmd) -> CliResult {
    let engine = c.lake.engine().await?;
    let Some(name) = &c.name else {
        let mut grid = comfy_table::Table::new();
        grid.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        grid.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        grid.set_header(vec!["report", "answers"]);
        for t in engine.reports() {
            grid.add_row(vec![t.signature(), t.description.clone()]);
        }
        println!("{grid}");
        return Ok(());
    };
    let Some(entry) = engine.report(name) else {
        let names: Vec<&str> = engine.reports().iter().map(|t| t.name.as_str()).collect();
        return Err(datafusion::error::DataFusionError::Plan(format!("unknown report '{name}'; reports are: {}", names.join(", "))).into());
    };
    let sql = entry.call_sql(&report_literals(&c.args));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if c.output.format == Format::Table {
        writeln!(out, "{}
{sql}
", entry.signature())?;
    }
    run_query(&engine, &sql, c.output.format, c.output.max_rows, &mut out).await?;
    out.flush()?;
    Ok(())
}

/// The tour: each step a question a CS team asks, and the SQL that answers it.
const TOUR: &[(&str, &str)] = &[
    (
        "Paying accounts whose activity fell fastest, last 14 days against the 14 before: who should the CSMs call?",
        "SELECT rank, org_id, name, csm, plan, round(decline_pct, 1) AS decline_pct, pattern, active_users, active_users_prev, \
         round(visits_change_pct, 1) AS visits_change_pct, days_to_renewal FROM declining_accounts(2, 5, 14) ORDER BY rank",
    ),
    (
        "Health and temperature of the paying accounts, by quadrant",
        "SELECT quadrant, play, count(*) AS accounts, round(avg(health), 1) AS avg_health, round(avg(temperature), 1) AS avg_temperature \
         FROM health_scores(NULL, 14) WHERE is_paid GROUP BY quadrant, play ORDER BY accounts DESC",
    ),
    (
        "Which early behaviour predicts that a new user is still active in week two (the magic number)",
        "SELECT event, n AS at_least, round(phi, 2) AS phi, label, round(ppv_pct, 1) AS ppv_pct, round(support_pct, 1) AS support_pct \
         FROM magic_number('week2', 7, 10) WHERE section = 'best' ORDER BY phi DESC NULLS LAST LIMIT 5",
    ),
    (
        "Where new users drop out: sign-up to upgrade within 14 days",
        "SELECT step, event, users, round(conversion_from_previous_pct, 1) AS from_previous_pct, \
         round(median_hours_from_previous, 1) AS median_hours FROM funnel('signup,create_project,invite_user,upgrade', '14 days') ORDER BY step",
    ),
    (
        "Where time goes: module share of minutes, last 7 days",
        "SELECT module, round(sum(duration_min), 1) AS minutes, round(100 * sum(duration_min) / sum(sum(duration_min)) OVER (), 1) AS share_pct \
         FROM module_usage_share() WHERE day > (SELECT max(day) - 7 FROM module_usage_share()) GROUP BY module ORDER BY minutes DESC",
    ),
    (
        "Acquisition channels over the last four weeks",
        "SELECT utm_source, utm_medium, visitors, new_users, bounce_rate_pct, avg_visit_min, pages_per_visit, conversion_pct \
         FROM channel_quality() WHERE utm_source <> '(direct)' OR new_users > 0 ORDER BY new_users DESC LIMIT 8",
    ),
];

async fn run_tour(c: TourCmd) -> CliResult {
    let lake = Lake::open(&c.lake.lake, true)?;
    let has_events = !lake.list_files(Table::Events).await?.is_empty();
    if !has_events {
        println!("No events in {} yet: generating the demo lake (vitals demo).", c.lake.lake);
        run_demo(DemoCmd {
            lake: c.lake.lake.clone(),
            accounts: 120,
            days: 90,
            seed: 42,
            end_date: demo::default_end_date(),
            force: false,
        })
        .await?;
    }
    // Serve the lake as `vitals serve` does, on a free local port with a
    // one-off token, and ask the tour's questions over Flight SQL like a BI tool.
    let mut engine = c.lake.engine_args()?;
    let secret = format!("tour-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    engine.config.tokens.push(crate::config::TokenConfig {
        name: "tour".into(),
        role: crate::config::Role::Analyst,
        sha256: crate::server::auth::hash_secret(&secret),
        org_id: None,
        expires: None,
    });
    let listener = crate::server::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let args = crate::server::ServeArgs {
        engine,
        config_path: None,
        limits: crate::server::Limits::default(),
        tls: None,
        shutdown_grace: std::time::Duration::from_secs(5),
        cors_origins: Vec::new(),
        own_tokens: Vec::new(),
        session_key_file: None,
    };
    let server = tokio::spawn(crate::server::serve(args, listener, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
    let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
    client.set_token(secret.clone());

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "\nServing {} on {addr} (Arrow Flight SQL); every answer below came over it, as a BI tool's would.", c.lake.lake)?;
    let span = "SELECT min(event_date) AS first_day, max(event_date) AS last_day, count(*) AS events FROM events";
    let steps = std::iter::once(("The lake", span)).chain(TOUR.iter().copied());
    for (title, sql) in steps {
        writeln!(out, "\n== {title}\n   {sql}\n")?;
        let info = client.execute(sql.to_string(), None).await?;
        let schema = Arc::new(info.clone().try_decode_schema()?);
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else { continue };
            let mut stream = client.do_get(ticket).await?;
            while let Some(batch) = futures::StreamExt::next(&mut stream).await {
                batches.push(batch?);
            }
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        write!(out, "{}", render::table(&schema, &batches, 50)?)?;
        writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
    }
    writeln!(out, "\nNext: `vitals serve` for BI tools and dashboards; `vitals report` lists the reports; `vitals sql` opens a prompt.")?;
    let dashboard = format!("http://{addr}/#token={secret}");
    if std::io::stdout().is_terminal() {
        // A person at a terminal: the dashboard stays up until they are done with it.
        writeln!(out, "\nThe customer-success dashboard, signed in: {dashboard}\nServing until Ctrl-C.")?;
        out.flush()?;
        drop(out);
        crate::server::signal().await;
    } else {
        writeln!(out, "\nThe customer-success dashboard was at {dashboard} while the tour ran (in a terminal, the tour keeps serving it until Ctrl-C).")?;
        drop(out);
    }
    let _ = stop.send(());
    server.await.map_err(|e| format!("server task: {e}"))??;
    Ok(())
}
