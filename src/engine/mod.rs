//! Builds the DataFusion session every query runs in: the lake's tables, the
//! functions vitals defines, the views of `sql/views/`, the report table
//! functions, then the views of a user's own folder, in name order. The one place a
//! session is made, so the CLI, the server and the tests see the same SQL.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{FairSpillPool, GreedyMemoryPool};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::Config;
use crate::functions::{self, FunctionDoc};
use crate::reports::{self, LakeFacts};
use crate::lake::{self, tables::LakeSummary, Lake, LakeError, Table};

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
    /// Check every file's footer against the contract at start-up.
    pub check_files: bool,
    /// Memory for query execution; beyond it operators spill or fail.
    pub memory_limit: Option<usize>,
    pub target_partitions: Option<usize>,
    /// Limit every table to these accounts (a server session of a scoped token).
    pub scope: Option<lake::tables::Scope>,
}

impl EngineArgs {
    pub fn new(lake: Lake) -> Self {
        Self { lake, config: Config::default(), views_dir: None, check_files: true, memory_limit: None, target_partitions: None, scope: None }
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
    summary: LakeSummary,
    catalog: Vec<CatalogEntry>,
}

impl Engine {
    pub async fn open(args: EngineArgs) -> Result<Engine> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        if let Some(n) = args.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = args.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
        let summary = lake::tables::register(&ctx, &args.lake, args.check_files, args.scope.as_ref()).await?;
        let mut catalog: Vec<CatalogEntry> = Table::ALL
            .iter()
            .map(|t| CatalogEntry { kind: "table", name: t.name().into(), description: t.description().into(), order: None })
            .collect();
        let facts = LakeFacts {
            first_day: summary.first_day,
            last_day: summary.last_day,
            org_ids: org_ids(&ctx, &summary).await?,
            event_names: Default::default(),
        };
        let mut docs: Vec<FunctionDoc> = functions::register_scalar(&ctx);
        for (file, text) in sql_files::VIEWS {
            catalog.push(create_view(&ctx, &args.config, file, text).await?);
        }
        docs.extend(reports::register(&ctx, &args.config, facts, sql_files::REPORTS).await?);
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
        Ok(Engine { ctx, summary, catalog })
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// A context for one query: the same tables, functions and views (shared,
    /// not copied), with a memory pool of its own when `memory_limit` is set, so
    /// a query past its limit fails alone instead of starving the others.
    pub fn query_context(&self, memory_limit: Option<usize>) -> Result<SessionContext> {
        let state = self.ctx.state();
        let Some(limit) = memory_limit else { return Ok(SessionContext::new_with_state(state)) };
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limit)))
            .build_arc()?;
        Ok(SessionContext::new_with_state(SessionStateBuilder::new_from_existing(state).with_runtime_env(runtime).build()))
    }

    pub fn summary(&self) -> &LakeSummary {
        &self.summary
    }

    /// Tables, views and functions with one line of description each.
    pub fn catalog(&self) -> &[CatalogEntry] {
        &self.catalog
    }
}

/// The accounts' org_ids, so that a report can reject an unknown account;
/// None when the lake has no accounts table.
async fn org_ids(ctx: &SessionContext, summary: &LakeSummary) -> Result<Option<Arc<HashSet<String>>>> {
    let has_accounts = summary.files.iter().any(|(t, n)| *t == Table::Accounts && *n > 0);
    if !has_accounts {
        return Ok(None);
    }
    Ok(Some(Arc::new(reports::distinct_strings(ctx, "SELECT DISTINCT CAST(org_id AS VARCHAR) FROM accounts").await?)))
}

/// Runs one `CREATE VIEW` file; its first line, `-- name: description`, documents it.
async fn create_view(ctx: &SessionContext, config: &Config, file: &str, text: &str) -> Result<CatalogEntry> {
    let wrap = |e: DataFusionError| EngineError::View { file: file.to_string(), source: Box::new(e) };
    let sql = config.expand_sql(text).map_err(|e| wrap(DataFusionError::Plan(e)))?;
    let plan = ctx.state().create_logical_plan(&sql).await.map_err(wrap)?;
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
