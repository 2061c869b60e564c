//! Past one machine: the same plans on Apache DataFusion Ballista. The vitals
//! binary is the scheduler (`vitals scheduler`), the executors (`vitals
//! executor`) and the client (`--cluster df://host:port` on the commands that
//! query). The client plans a query exactly as it does locally, in a session
//! with the same tables, views, functions and reports; only the last step,
//! running the plan, goes to the cluster:
//!
//! - a report's checks and stages run first, each stage as a query of its own
//!   on the cluster, and the report becomes its SQL with the stages' results
//!   carried in the plan (they are aggregates per user or account, never
//!   events);
//! - the plan goes to the scheduler through [`LogicalCodec`]: a lake table
//!   travels as its name and its scope (the accounts a token may see), so the
//!   scheduler, which plans the scan over its own view of the lake, puts the
//!   same [`ScopeExec`] boundary under everything the query wrote;
//! - executors receive the stages of the physical plan through
//!   [`PhysicalCodec`], which carries `ScopeExec`; vitals' functions are
//!   registered in every role under the same names.
//!
//! A plan that reads no lake table (`SELECT 1`, the catalog) runs in the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::planner::BallistaQueryPlanner;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalExprNode};
use prost::Message;

use crate::lake::live::{LiveLake, LiveOptions};
use crate::lake::scope::ScopeExec;
use crate::lake::tables::{LakeTable, Scope};
use crate::lake::{Lake, Table};

/// The scheduler's port when `df://host` names none (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// `df://host:port` as the scheduler's gRPC address, `http://host:port`.
pub fn scheduler_url(cluster: &str) -> Result<String> {
    let bad = |why: &str| DataFusionError::Configuration(format!("--cluster {cluster}: {why}; write it as df://host:port"));
    let url = url::Url::parse(cluster).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "df" {
        return Err(bad(&format!("the scheme is '{}', not df", url.scheme())));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    Ok(format!("http://{host}:{}", url.port().unwrap_or(DEFAULT_SCHEDULER_PORT)))
}

/// A client session: `state` (the local session, its tables, views,
/// functions and reports registered or to be registered) whose queries run
/// on the cluster at `cluster`. vitals' functions must be registered after
/// this: Ballista's upgrade replaces the function lists with its defaults.
pub fn client_state(state: SessionState, cluster: &str) -> Result<SessionState> {
    let url = scheduler_url(cluster)?;
    let codec: Arc<dyn LogicalExtensionCodec> = Arc::new(LogicalCodec::new(None));
    // Ballista's adaptive planner re-plans stages as their inputs finish; in
    // Ballista 55 it hands executors sorts with no partition to serve, which
    // fail a DataFusion assertion, and queries then wait for ever. The classic
    // planner cuts the plan into stages once.
    let state = SessionStateBuilder::new_from_existing(state.clone())
        .with_config(state.config().clone().upgrade_for_ballista().with_ballista_adaptive_query_planner(false))
        .build();
    let ballista_config = state.config().ballista_config();
    let planner = ClusterPlanner {
        ballista: BallistaQueryPlanner::<LogicalPlanNode>::with_extension(url.clone(), ballista_config, Arc::clone(&codec)),
        local: DefaultPhysicalPlanner::default(),
    };
    let config = state
        .config()
        .clone()
        .with_ballista_logical_extension_codec(codec)
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .with_ballista_query_planner(Arc::new(planner));
    let upgraded = SessionStateBuilder::new_from_existing(state).with_config(config).build().upgrade_for_ballista(url)?;
    // Ballista turns string view types off for its sessions; vitals' SQL types
    // are the local ones (VARCHAR is Utf8View), so that a report's arguments,
    // bound as Utf8View, match its prepared plan, and answers have the same types.
    let config = upgraded
        .config()
        .clone()
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", true)
        .set_bool("datafusion.execution.parquet.schema_force_view_types", true)
        // A dynamic filter links operators in one process (a join's build side
        // filtering its probe side's scan; a TopK its input); across stages it
        // could only stay empty, and an executor handed a TopK filter with
        // no partition to serve fails a DataFusion assertion.
        .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
        .set_bool("datafusion.optimizer.enable_join_dynamic_filter_pushdown", false)
        .set_bool("datafusion.optimizer.enable_topk_dynamic_filter_pushdown", false)
        .set_bool("datafusion.optimizer.enable_aggregate_dynamic_filter_pushdown", false)
        // Ballista prefers sort-merge joins; DataFusion 55's sort-merge join
        // with a join filter indexes past its columns (churn_risk's plan), and
        // vitals' reports are written for hash joins, as they run locally.
        .set_bool("datafusion.optimizer.prefer_hash_join", true);
    Ok(SessionStateBuilder::new_from_existing(upgraded).with_config(config).build())
}

/// Runs the plans of a cluster client: reports made ready here (their stages
/// run on the cluster), then the plan on the cluster when it reads the lake.
struct ClusterPlanner {
    ballista: BallistaQueryPlanner<LogicalPlanNode>,
    local: DefaultPhysicalPlanner,
}

impl std::fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPlanner").finish()
    }
}

#[async_trait::async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session.as_any().downcast_ref::<SessionState>().ok_or_else(|| DataFusionError::Internal("a cluster plan needs a SessionState".into()))?;
        let plan = crate::reports::inline_reports(plan.clone(), state).await?;
        let plan = carry_local_tables(plan, state).await?;
        if reads_lake(&plan)? {
            self.ballista.create_physical_plan(&plan, session).await
        } else {
            self.local.create_physical_plan(&plan, session).await
        }
    }
}

/// A table no codec can send (a table function's rows, such as
/// `generate_series(0, 8)` in a report) is read here and its rows carried in
/// the plan. Tables the cluster reads itself (the lake's, stage results,
/// views) are left; a plan that reads none of the lake's runs here anyway.
async fn carry_local_tables(plan: LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    use datafusion::datasource::provider_as_source;
    if !reads_lake(&plan)? {
        return Ok(plan);
    }
    let found = crate::reports::tables_scanned(&plan, |t| !travels(t))?;
    let mut carried: Vec<(Arc<dyn TableProvider>, Arc<dyn datafusion::logical_expr::TableSource>)> = Vec::new();
    for provider in found {
        let scan = provider.scan(state, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(scan, state.task_ctx()).await?;
        let table = Carried { schema: provider.schema(), batches };
        carried.push((provider, provider_as_source(Arc::new(table))));
    }
    crate::reports::with_tables_replaced(plan, &carried)
}

/// Whether a table reaches the cluster as it is: the lake's, a stage's or
/// carried rows, a view (its plan travels), or one of DataFusion's own kinds.
fn travels(table: &dyn TableProvider) -> bool {
    let any: &dyn std::any::Any = table;
    any.is::<LakeTable>()
        || any.is::<Carried>()
        || any.is::<datafusion::datasource::ViewTable>()
        || any.is::<datafusion::datasource::listing::ListingTable>()
        || any.is::<datafusion::datasource::empty::EmptyTable>()
        || crate::reports::is_stage_result(table)
}

/// Rows read in the client, carried to the cluster in the plan.
#[derive(Debug)]
struct Carried {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[async_trait::async_trait]
impl TableProvider for Carried {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        MemTable::try_new(Arc::clone(&self.schema), vec![self.batches.clone()])?.scan(state, projection, filters, limit).await
    }
}

/// Whether a plan scans a table of the lake (or a report stage's result).
fn reads_lake(plan: &LogicalPlan) -> Result<bool> {
    let found = crate::reports::tables_scanned(plan, |t| {
        let any: &dyn std::any::Any = t;
        any.is::<LakeTable>() || any.is::<Carried>() || crate::reports::is_stage_result(t)
    })?;
    Ok(!found.is_empty())
}

const LAKE_TABLE: &[u8] = b"vitals.lake_table\n";
const STAGE_RESULT: &[u8] = b"vitals.stage_result\n";
const SCOPE_EXEC: &[u8] = b"vitals.scope_exec\n";

/// A lake table as it travels: its name and scope.
#[derive(serde::Serialize, serde::Deserialize)]
struct LakeTableRef {
    table: String,
    scope: Option<Vec<String>>,
}

/// Carries vitals' table providers in a logical plan, and hands everything
/// else to Ballista's codec. Decoding a lake table needs the lake (the scheduler has it).
#[derive(Debug)]
pub struct LogicalCodec {
    live: Option<Arc<LiveLake>>,
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalCodec {
    pub fn new(live: Option<Arc<LiveLake>>) -> Self {
        LogicalCodec { live, inner: BallistaLogicalExtensionCodec::default() }
    }
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(&self, buf: &[u8], table_ref: &TableReference, schema: SchemaRef, ctx: &TaskContext) -> Result<Arc<dyn TableProvider>> {
        if let Some(body) = buf.strip_prefix(LAKE_TABLE) {
            let r: LakeTableRef = serde_json::from_slice(body).map_err(|e| DataFusionError::Internal(format!("a lake table in a plan: {e}")))?;
            let table = Table::parse(&r.table).ok_or_else(|| DataFusionError::Internal(format!("no lake table {}", r.table)))?;
            let live = self.live.as_ref().ok_or_else(|| DataFusionError::Internal("this process has no lake to read tables from".into()))?;
            let scope: Option<Scope> = r.scope.map(Arc::new);
            let provider = LakeTable::new(table, live, scope).map_err(|e| DataFusionError::External(Box::new(e)))?;
            return Ok(Arc::new(provider));
        }
        if let Some(body) = buf.strip_prefix(STAGE_RESULT) {
            let reader = StreamReader::try_new(std::io::Cursor::new(body), None)?;
            let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>()?;
            return Ok(Arc::new(MemTable::try_new(schema, vec![batches])?));
        }
        self.inner.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(&self, table_ref: &TableReference, node: Arc<dyn TableProvider>, buf: &mut Vec<u8>) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(lake) = any.downcast_ref::<LakeTable>() {
            let r = LakeTableRef { table: lake.table().name().to_string(), scope: lake.scope().map(|s| s.as_ref().clone()) };
            buf.extend_from_slice(LAKE_TABLE);
            serde_json::to_writer(&mut *buf, &r).map_err(|e| DataFusionError::Internal(e.to_string()))?;
            return Ok(());
        }
        let carried = any.downcast_ref::<Carried>().map(|c| c.batches.as_slice());
        if let Some(batches) = carried.or_else(|| crate::reports::stage_result(node.as_ref())) {
            buf.extend_from_slice(STAGE_RESULT);
            let mut writer = StreamWriter::try_new(&mut *buf, &node.schema())?;
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            return Ok(());
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// Carries [`ScopeExec`] in a physical plan, and hands everything else to Ballista's codec.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[Arc<dyn ExecutionPlan>], ctx: &TaskContext, converter: &dyn PhysicalProtoConverterExtension) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(body) = buf.strip_prefix(SCOPE_EXEC) else {
            return self.inner.try_decode(buf, inputs, ctx, converter);
        };
        let [input] = inputs else { return Err(DataFusionError::Internal("ScopeExec takes one input".into())) };
        let (keep, expr) = body.split_at(body.iter().position(|b| *b == b'\n').ok_or_else(|| DataFusionError::Internal("a ScopeExec without its columns".into()))?);
        let keep: Vec<usize> = serde_json::from_slice(keep).map_err(|e| DataFusionError::Internal(format!("ScopeExec columns: {e}")))?;
        let node = PhysicalExprNode::decode(&expr[1..]).map_err(|e| DataFusionError::Internal(format!("ScopeExec predicate: {e}")))?;
        let predicate = parse_physical_expr(&node, ctx, &input.schema(), self)?;
        Ok(Arc::new(ScopeExec::try_new(Arc::clone(input), predicate, keep)?))
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>, converter: &dyn PhysicalProtoConverterExtension) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        let Some(scope) = any.downcast_ref::<ScopeExec>() else {
            return self.inner.try_encode(node, buf, converter);
        };
        buf.extend_from_slice(SCOPE_EXEC);
        serde_json::to_writer(&mut *buf, scope.keep()).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        buf.push(b'\n');
        serialize_physical_expr(scope.predicate(), self)?.encode(buf).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        Ok(())
    }
}

/// Makes every sort under a window function sort by the window's PARTITION
/// BY columns first. DataFusion leaves out a partition column it knows to be
/// constant (`w` after `WHERE w = 0`); once a plan is cut into stages, the
/// stage that runs the window no longer knows it, and the window refuses
/// its input as unsorted. Run by executors on each task's plan as it
/// arrives (the scheduler's planning would take the key out again). Sorting
/// by a constant costs a comparison per row.
#[derive(Debug)]
struct SortWindowPartitions;

impl datafusion::physical_optimizer::PhysicalOptimizerRule for SortWindowPartitions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &datafusion::config::ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        plan.transform_up(|node| {
            let Some(partition_by) = window_partition_by(&node) else { return Ok(Transformed::no(node)) };
            match sort_partitions_first(&node, &partition_by)? {
                Some(fixed) => Ok(Transformed::yes(fixed)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sort_window_partitions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Ballista's execution engine, with [`SortWindowPartitions`] applied to each task's plan first.
struct TaskEngine {
    inner: ballista_executor::execution_engine::DefaultExecutionEngine,
}

impl ballista_executor::execution_engine::ExecutionEngine for TaskEngine {
    fn create_query_stage_exec(
        &self,
        job_id: ballista_core::JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn ballista_executor::execution_engine::QueryStageExecutor>> {
        use datafusion::physical_optimizer::PhysicalOptimizerRule;
        let plan = SortWindowPartitions.optimize(plan, config.options())?;
        let inner = self.inner.create_query_stage_exec(job_id, stage_id, task_id, global_output_partition_ids, plan, work_dir, config)?;
        Ok(Arc::new(TaskStage { inner }))
    }
}

/// A task's stage as Ballista runs it, reporting no per-operator metrics.
/// Ballista 55's scheduler fails a task's status update when two tasks of a
/// stage report different numbers of operator metrics (which happens), and
/// the query then never ends; without them, only `EXPLAIN ANALYZE` on a
/// cluster loses its figures. Everything else is the inner stage's.
#[derive(Debug)]
struct TaskStage {
    inner: Arc<dyn ballista_executor::execution_engine::QueryStageExecutor>,
}

impl std::fmt::Display for TaskStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl ballista_executor::execution_engine::QueryStageExecutor for TaskStage {
    async fn execute_query_stage(&self, task_id: usize, context: Arc<TaskContext>) -> Result<Vec<ballista_core::serde::protobuf::ShuffleWritePartition>> {
        self.inner.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<datafusion::physical_plan::metrics::MetricsSet> {
        Vec::new()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<ballista_core::serde::protobuf::TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

/// The PARTITION BY of a window node (its first window's, as DataFusion checks).
fn window_partition_by(node: &Arc<dyn ExecutionPlan>) -> Option<Vec<Arc<dyn datafusion::physical_expr::PhysicalExpr>>> {
    use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
    let any: &dyn std::any::Any = node.as_ref();
    let exprs = if let Some(w) = any.downcast_ref::<WindowAggExec>() {
        w.window_expr()
    } else if let Some(w) = any.downcast_ref::<BoundedWindowAggExec>() {
        w.window_expr()
    } else {
        return None;
    };
    let first = exprs.first()?;
    (!first.partition_by().is_empty()).then(|| first.partition_by().to_vec())
}

/// `window` with the sort below it (through other windows, which keep their
/// input's columns in place) sorting by `partition_by` first; None when
/// there is no such sort or it does already.
fn sort_partitions_first(
    window: &Arc<dyn ExecutionPlan>,
    partition_by: &[Arc<dyn datafusion::physical_expr::PhysicalExpr>],
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::sorts::sort::SortExec;
    let [input] = window.children()[..] else { return Ok(None) };
    let any: &dyn std::any::Any = input.as_ref();
    let replaced = if let Some(sort) = any.downcast_ref::<SortExec>() {
        let keys: Vec<&Arc<dyn datafusion::physical_expr::PhysicalExpr>> = sort.expr().iter().map(|s| &s.expr).collect();
        let leading = partition_by.iter().all(|p| keys.iter().take(partition_by.len()).any(|k| k.as_ref() == p.as_ref()));
        if leading {
            return Ok(None);
        }
        // Every partition column first (with its direction where the sort had one), then the sort's other keys.
        let mut order: Vec<PhysicalSortExpr> = partition_by
            .iter()
            .map(|p| sort.expr().iter().find(|s| s.expr.as_ref() == p.as_ref()).cloned().unwrap_or_else(|| PhysicalSortExpr::new_default(Arc::clone(p))))
            .collect();
        order.extend(sort.expr().iter().filter(|s| !partition_by.iter().any(|p| p.as_ref() == s.expr.as_ref())).cloned());
        let Some(order) = LexOrdering::new(order) else { return Ok(None) };
        let fixed = SortExec::new(order, Arc::clone(sort.input())).with_preserve_partitioning(sort.preserve_partitioning()).with_fetch(sort.fetch());
        Arc::new(fixed) as Arc<dyn ExecutionPlan>
    } else if window_partition_by(input).is_some() {
        match sort_partitions_first(input, partition_by)? {
            Some(fixed) => fixed,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
    Ok(Some(Arc::clone(window).replace_children(vec![replaced], ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))?))
}

/// A session of a scheduler or an executor: Ballista's, with vitals' functions and optimizer rules.
fn role_state(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    let rules = ballista_core::optimizer::with_ballista_optimizer_rules(&crate::engine::optimizer_rules());
    let state = SessionStateBuilder::new_from_existing(state).with_optimizer_rules(rules).build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register_scalar(&ctx);
    Ok(ctx.state())
}

/// How `vitals scheduler` runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub lake: Lake,
    pub bind_host: String,
    pub bind_port: u16,
    pub external_host: Option<String>,
    pub refresh_every: Duration,
    /// How long an executor may go without a heartbeat (every 5 s) before its tasks run elsewhere.
    pub executor_timeout: Duration,
}

/// Runs a scheduler until the process ends. It reads the lake: a query's
/// scans are planned here, over the lake's current snapshot.
pub async fn run_scheduler(o: SchedulerOptions) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let live = LiveLake::open(o.lake.clone(), LiveOptions { refresh_every: o.refresh_every, strict: false }).await?;
    refresh_in_background(Arc::clone(&live), o.refresh_every);
    let store_lake = o.lake.clone();
    let mut config = SchedulerConfig {
        bind_host: o.bind_host.clone(),
        bind_port: o.bind_port,
        external_host: o.external_host.clone().unwrap_or_else(|| o.bind_host.clone()),
        // Plans carry the stage results of reports.
        grpc_server_max_decoding_message_size: 256 << 20,
        grpc_server_max_encoding_message_size: 256 << 20,
        executor_timeout_seconds: o.executor_timeout.as_secs().max(10),
        expire_dead_executor_interval_seconds: 5,
        no_executors_grace_period_seconds: o.executor_timeout.as_secs().max(10),
        ..Default::default()
    };
    config.override_logical_codec = Some(Arc::new(LogicalCodec::new(Some(Arc::clone(&live)))));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    config.override_session_builder = Some(Arc::new(move |c: SessionConfig| {
        let state = role_state(c)?;
        let ctx = SessionContext::new_with_state(state);
        store_lake.register_store(&ctx);
        Ok(ctx.state())
    }));
    let addr: SocketAddr = format!("{}:{}", o.bind_host, o.bind_port).parse().map_err(|e| format!("--bind-host {} --bind-port {}: {e}", o.bind_host, o.bind_port))?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    println!("vitals scheduler listening on {addr}, lake {}", o.lake.display());
    ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config)).await?;
    Ok(())
}

fn refresh_in_background(live: Arc<LiveLake>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every.max(Duration::from_millis(500))).await;
            if let Err(e) = live.refresh().await {
                tracing::warn!("refreshing the lake: {e}");
            }
        }
    });
}

/// How `vitals executor` runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub lake: Lake,
    pub bind_host: String,
    pub external_host: Option<String>,
    pub port: u16,
    pub grpc_port: u16,
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub concurrent_tasks: Option<usize>,
    pub work_dir: Option<String>,
    pub memory_pool_size: Option<u64>,
}

/// Runs an executor until the process ends: it registers with the
/// scheduler, runs tasks and serves their shuffle output from the work directory.
pub async fn run_executor(o: ExecutorOptions) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    let registry = Arc::new(BallistaFunctionRegistry::from(&role_state(SessionConfig::new_with_ballista())?));
    let lake = o.lake.clone();
    let work_dir = o.work_dir.clone();
    let runtime = Arc::new(move |_: &SessionConfig| -> Result<Arc<RuntimeEnv>> {
        let mut b = RuntimeEnvBuilder::new();
        if let Some(dir) = &work_dir {
            b = b.with_temp_file_path(dir.clone());
        }
        let env = b.build()?;
        lake.register_store_in(&env);
        Ok(Arc::new(env))
    });
    let mut config = ExecutorProcessConfig {
        bind_host: o.bind_host.clone(),
        external_host: o.external_host.clone().or_else(|| Some(o.bind_host.clone())),
        port: o.port,
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler_host.clone(),
        scheduler_port: o.scheduler_port,
        work_dir: o.work_dir.clone(),
        memory_pool_size: o.memory_pool_size,
        grpc_max_decoding_message_size: 256 << 20,
        grpc_max_encoding_message_size: 256 << 20,
        executor_heartbeat_interval_seconds: 5,
        ..Default::default()
    };
    if let Some(n) = o.concurrent_tasks {
        config.vcores = n.max(1);
    }
    config.override_function_registry = Some(registry);
    config.override_execution_engine = Some(Arc::new(TaskEngine { inner: ballista_executor::execution_engine::DefaultExecutionEngine::new() }));
    config.override_runtime_producer = Some(runtime);
    config.override_logical_codec = Some(Arc::new(LogicalCodec::new(None)));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    config.override_config_producer = Some(Arc::new(SessionConfig::new_with_ballista));
    println!(
        "vitals executor on {}:{} (gRPC {}), scheduler {}:{}, lake {}",
        o.bind_host,
        o.port,
        o.grpc_port,
        o.scheduler_host,
        o.scheduler_port,
        o.lake.display()
    );
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}
