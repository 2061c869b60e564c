//! Builds the DataFusion session every query runs in: the lake's tables, the
//! functions vitals defines, the views of `sql/views/`, the report table
//! functions, then the views of a user's own folder, in name order. The one place a
//! session is made, so the CLI, the server and the tests see the same SQL.
//! Sessions over one lake (every account, or a token's scope) share its live
//! snapshot and footer cache; each query reads the snapshot pinned when it starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::{FairSpillPool, GreedyMemoryPool};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::Config;
use crate::functions::{self, FunctionDoc};
use crate::lake::live::{LiveLake, LiveOptions};
use crate::lake::tables::{PinnedSnapshot, Scope};
use crate::lake::{self, Lake, LakeError, Table};
use crate::reports::{self, FactsSource};

mod dependencies;
pub mod kind;
mod routines;

mod sql_files {
    include!(concat!(env!("OUT_DIR"), "/sql_files.rs"));
}

/// What can go wrong while building a session or running SQL in it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("view file {file}: {source}")]
    View { file: String, source: Box<DataFusionError> },
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How to build an engine.
#[derive(Debug, Clone)]
pub struct EngineArgs {
    pub lake: Lake,
    pub config: Config,
    /// A folder of the user's own `CREATE VIEW` files, loaded after the built-in views.
    pub views_dir: Option<PathBuf>,
    /// Fail at start-up on a file that breaks the contract; otherwise it is
    /// left out with a warning naming it (as files found later always are).
    pub check_files: bool,
    /// How old the lake's snapshot may get before a query refreshes it.
    pub refresh_every: Duration,
    /// Memory for query execution; beyond it operators spill or fail.
    pub memory_limit: Option<usize>,
    pub target_partitions: Option<usize>,
    /// `df://host:port`: plan here and run on this Ballista cluster (see [`crate::cluster`]).
    pub cluster: Option<String>,
}

impl EngineArgs {
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            config: Config::default(),
            views_dir: None,
            check_files: true,
            refresh_every: LiveOptions::default().refresh_every,
            memory_limit: None,
            target_partitions: None,
            cluster: None,
        }
    }
}

/// One entry of `vitals tables`.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub kind: &'static str,
    pub name: String,
    pub description: String,
    /// For a report: the ORDER BY its rows are shown in.
    pub order: Option<String>,
}

/// A ready session and what it was built from.
pub struct Engine {
    ctx: SessionContext,
    live: Arc<LiveLake>,
    facts: Arc<FactsSource>,
    args: EngineArgs,
    catalog: Vec<CatalogEntry>,
    reports: Vec<reports::Template>,
}

impl Engine {
    /// Reads the lake and builds a session that sees every account.
    pub async fn open(args: EngineArgs) -> Result<Engine> {
        let options = LiveOptions { refresh_every: args.refresh_every, strict: args.check_files };
        let live = LiveLake::open(args.lake.clone(), options).await?;
        let templates = reports::templates(&args.config, sql_files::REPORTS, sql_files::PARTS)?;
        let engine = Self::build(args, live, None, templates).await?;
        engine.check_alert_rules().await?;
        Ok(engine)
    }

    /// The config's own `[[alerts]]` rules are SQL: each is planned once at
    /// start-up, so a rule that does not plan stops it, named. (On a lake
    /// without events there is no day to plan them for; they are checked
    /// when the alerts report first runs.)
    async fn check_alert_rules(&self) -> Result<()> {
        if self.args.config.alerts.as_ref().is_none_or(|r| r.is_empty()) || self.live.current().last_day.is_none() {
            return Ok(());
        }
        match self.ctx.sql("SELECT * FROM alerts()").await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                let rule = text.split("stage alert_rule_").nth(1).and_then(|r| r.split([':', ' ', '\n']).next()).unwrap_or("?");
                Err(crate::config::ConfigError { path: "[[alerts]]".into(), reason: format!("alert rule {rule} does not plan: {}", e.strip_backtrace()) }.into())
            }
        }
    }

    /// A session over the same lake whose tables yield only `scope`'s accounts.
    pub async fn scoped(&self, scope: Scope) -> Result<Engine> {
        // The reports as this engine read them, their columns already learned.
        Self::build(self.args.clone(), Arc::clone(&self.live), Some(scope), self.reports.clone()).await
    }

    async fn build(args: EngineArgs, live: Arc<LiveLake>, scope: Option<Scope>, mut templates: Vec<reports::Template>) -> Result<Engine> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        if let Some(n) = args.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let caches = CacheManagerConfig::default().with_file_metadata_cache(Some(live.metadata_cache()));
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(caches);
        if let Some(limit) = args.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc()?)
            .with_default_features()
            .with_optimizer_rules(dependencies::optimizer_rules())
            .build();
        if let Some(cluster) = &args.cluster {
            state = crate::cluster::client_state(state, cluster)?;
        }
        let ctx = SessionContext::new_with_state(state);
        lake::tables::register(&ctx, &live, scope.as_ref())?;
        let mut catalog: Vec<CatalogEntry> = Table::ALL
            .iter()
            .map(|t| CatalogEntry { kind: "table", name: t.name().into(), description: t.description().into(), order: None })
            .collect();
        let facts = Arc::new(FactsSource::new(Arc::clone(&live), scope));
        let mut docs: Vec<FunctionDoc> = functions::register_scalar(&ctx);
        for (file, text) in sql_files::VIEWS {
            catalog.push(create_view(&ctx, &args.config, file, text).await?);
        }
        docs.extend(reports::register(&ctx, &args.config, Arc::clone(&facts), &mut templates).await?);
        if let Some(dir) = &args.views_dir {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| LakeError::Input(format!("views folder {}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            files.sort();
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(LakeError::from)?;
                catalog.push(create_view(&ctx, &args.config, &path.display().to_string(), &text).await?);
            }
        }
        catalog.extend(docs.into_iter().map(|d| CatalogEntry { kind: d.kind, name: d.signature, description: d.description, order: d.order }));
        routines::attach(&ctx, &catalog);
        Ok(Engine { ctx, live, facts, args, catalog, reports: templates })
    }

    /// The session; its tables read the lake's current snapshot.
    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake as it is read, shared by every session made from this engine.
    pub fn live(&self) -> &Arc<LiveLake> {
        &self.live
    }

    /// Reads what was committed since the last refresh, if the snapshot is older than the refresh interval.
    pub async fn refresh_if_stale(&self) {
        self.live.refresh_if_stale().await;
    }

    /// A context for one query: the same tables, functions and views (shared,
    /// not copied), reading the current snapshot for the whole query, with a
    /// memory pool of its own when `memory_limit` is set, so a query past its
    /// limit fails alone instead of starving the others.
    pub fn query_context(&self, memory_limit: Option<usize>) -> Result<SessionContext> {
        let pinned = Arc::new(PinnedSnapshot(self.live.current()));
        let state = self.ctx.state();
        let mut config = state.config().clone().with_extension(pinned);
        // The catalog exists and is shared: building must not register a fresh, empty one over it.
        config.options_mut().catalog.create_default_catalog_and_schema = false;
        let mut builder = SessionStateBuilder::new_from_existing(state).with_config(config);
        if let Some(limit) = memory_limit {
            let runtime = RuntimeEnvBuilder::from_runtime_env(self.ctx.runtime_env().as_ref())
                .with_memory_pool(Arc::new(GreedyMemoryPool::new(limit)))
                .build_arc()?;
            builder = builder.with_runtime_env(runtime);
        }
        Ok(SessionContext::new_with_state(builder.build()))
    }

    /// Reads what the reports of a scoped session need from its own rows, for
    /// the snapshot `ctx` reads (a no-op for a session that sees every account).
    pub async fn prepare_facts(&self, ctx: &SessionContext) -> Result<()> {
        Ok(self.facts.prepare(ctx).await?)
    }

    /// The settings this engine was built with.
    pub fn config(&self) -> &Config {
        &self.args.config
    }

    /// The reports: name, arguments, description and row order.
    pub fn reports(&self) -> &[reports::Template] {
        &self.reports
    }

    /// The report named `name`.
    pub fn report(&self, name: &str) -> Option<&reports::Template> {
        self.reports.iter().find(|t| t.name == name)
    }

    /// The output columns of the report named `name`, learned the first time
    /// they are asked for (by planning it, not running it); None when it does
    /// not plan on this lake (one without events).
    pub fn report_columns(&self, name: &str) -> Option<arrow::datatypes::SchemaRef> {
        reports::report_columns(&self.ctx.state(), name)
    }

    /// Tables, views and functions with one line of description each.
    pub fn catalog(&self) -> &[CatalogEntry] {
        &self.catalog
    }
}

/// The logical optimizer rules of every vitals session (DataFusion's, with
/// the grouping-key rule of [`dependencies`]); a cluster's roles use them too.
pub fn optimizer_rules() -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
    dependencies::optimizer_rules()
}

/// Plans one SQL statement. Table function names are matched without regard
/// to case unless quoted, as unquoted identifiers are: BI tools that upper-case
/// SQL (`DECLINING_ACCOUNTS(2, 5, 14)`) call the same report.
pub async fn plan_sql(state: &SessionState, sql: &str) -> datafusion::error::Result<LogicalPlan> {
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    fold_function_names(&mut statement, state);
    routines::describe(state, state.statement_to_plan(statement).await?)
}

fn fold_function_names(statement: &mut Statement, state: &SessionState) {
    use datafusion::sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectNamePart};
    match statement {
        Statement::Statement(s) => {
            let _ = visit_relations_mut(s.as_mut(), |name| {
                if let [ObjectNamePart::Identifier(Ident { value, quote_style: None, .. })] = name.0.as_mut_slice() {
                    let lower = value.to_lowercase();
                    if lower != *value && state.table_functions().contains_key(&lower) {
                        *value = lower;
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
        Statement::Explain(e) => fold_function_names(&mut e.statement, state),
        _ => {}
    }
}

/// Runs one `CREATE VIEW` file; its first line, `-- name: description`, documents it.
async fn create_view(ctx: &SessionContext, config: &Config, file: &str, text: &str) -> Result<CatalogEntry> {
    let wrap = |e: DataFusionError| EngineError::View { file: file.to_string(), source: Box::new(e) };
    let sql = config.expand_sql(text).map_err(|e| wrap(DataFusionError::Plan(e)))?;
    let plan = plan_sql(&ctx.state(), &sql).await.map_err(wrap)?;
    let name = match &plan {
        datafusion::logical_expr::LogicalPlan::Ddl(datafusion::logical_expr::DdlStatement::CreateView(v)) => v.name.to_string(),
        _ => {
            return Err(wrap(DataFusionError::Plan("a view file must hold exactly one CREATE VIEW statement".into())));
        }
    };
    ctx.execute_logical_plan(plan).await.map_err(wrap)?;
    let description = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-- "))
        .and_then(|l| l.split_once(": ").map(|(_, d)| d.to_string()))
        .unwrap_or_default();
    Ok(CatalogEntry { kind: "view", name, description, order: None })
}
