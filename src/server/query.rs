//! Running one client query under the server's limits: read-only planning,
//! admission (a bound on concurrent queries with a short queue), a memory pool
//! and a deadline per query, cancellation, a bound on result rows and bytes,
//! and panics turned into an error. Results stream batch by batch.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionContext};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::auth::Principal;
use crate::engine::kind::{kind_of, ErrorKind};

/// The limits every client query runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory pool of one query, in bytes.
    pub query_memory: usize,
    /// Wall time of one query, from admission to its last batch.
    pub query_timeout: Duration,
    /// Queries running at once.
    pub max_concurrent: usize,
    /// Queries waiting for a slot; one more is refused at once.
    pub max_queued: usize,
    /// How long a query waits for a slot before it is refused.
    pub queue_timeout: Duration,
    /// Rows in one result.
    pub max_rows: usize,
    /// Bytes (Arrow memory) in one result.
    pub max_bytes: usize,
    /// Bytes of SQL text in one query (ClickHouse's `max_query_size`).
    pub max_query_bytes: usize,
    /// Words, numbers, strings and symbols in one query (ClickHouse's `max_ast_elements`).
    pub max_query_elements: usize,
    /// How deep one expression nests: operators chained and parentheses (ClickHouse's `max_ast_depth`).
    pub max_expression_depth: usize,
    /// Prepared statements one principal may hold open.
    pub max_prepared_per_principal: usize,
}

impl Default for Limits {
    /// The defaults of `vitals serve`'s flags.
    fn default() -> Self {
        Limits {
            query_memory: 2 << 30,
            query_timeout: Duration::from_secs(60),
            max_concurrent: 4,
            max_queued: 16,
            queue_timeout: Duration::from_secs(10),
            max_rows: 10_000_000,
            max_bytes: 1 << 30,
            max_query_bytes: 256 << 10,
            max_query_elements: 50_000,
            max_expression_depth: 1_000,
            max_prepared_per_principal: 100,
        }
    }
}

/// The longest error message sent to a client: gRPC carries it in a header
/// (16 KiB at most with many clients); the whole text goes to the log.
const MAX_MESSAGE_BYTES: usize = 4096;

/// A message cut to fit the transport; a cut one is logged whole.
pub fn fit(text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    tracing::info!(message = %text, "an error message was cut for the client");
    let mut end = MAX_MESSAGE_BYTES - 100;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ... (cut at {MAX_MESSAGE_BYTES} bytes; the whole message is in the server's log)", &text[..end])
}

/// The one mapping from an engine error to a gRPC status, by the error's kind
/// ([`kind_of`]): a user's mistake is INVALID_ARGUMENT with the engine's
/// reason; a limit is RESOURCE_EXHAUSTED; anything else is INTERNAL without
/// details (they could name files), logged here.
pub fn df_status(e: &DataFusionError, limits: &Limits) -> Status {
    match kind_of(e) {
        ErrorKind::User => Status::invalid_argument(fit(e.to_string())),
        ErrorKind::Limit => match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => Status::resource_exhausted(fit(format!(
                "the query needs more than its memory limit of {} (--query-memory): {m}",
                human_bytes(limits.query_memory)
            ))),
            _ => Status::resource_exhausted(fit(e.to_string())),
        },
        ErrorKind::Cancelled => Status::cancelled("the query was cancelled"),
        ErrorKind::Internal => {
            tracing::error!("query failed: {e}");
            Status::internal("the query failed inside the server; the error is in the server's log")
        }
    }
}

pub fn human_bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", n / 1024.0)
    }
}

/// Operator classes of one precedence: a chain of one class nests one level per operator.
#[derive(Clone, Copy)]
enum OpClass {
    Or,
    And,
    Not,
    Compare,
    Add,
    Multiply,
    Concat,
    Other,
}

const OP_CLASSES: usize = 8;

/// Operators seen at one parenthesis level, by class.
#[derive(Default, Clone, Copy)]
struct Level([usize; OP_CLASSES]);

impl Level {
    fn add(&mut self, c: OpClass) {
        self.0[c as usize] += 1;
    }
    /// How deep the expression at this level nests, at most: the longest
    /// chain of one class, plus one level for each other class in it.
    fn depth(&self) -> usize {
        let classes = self.0.iter().filter(|n| **n > 0).count();
        self.0.iter().max().copied().unwrap_or(0) + classes.saturating_sub(1)
    }
}

/// Checks a query's size and shape before anything parses it: its bytes, its
/// number of tokens, and how deep its expressions nest, counted in one pass
/// over the tokens (no recursion, so a hostile query cannot exhaust the stack
/// here). The depth counts each enclosing parenthesis and, at each level, the
/// operators chained there (a chain of N `+` parses into N nested nodes); a
/// comma or a clause keyword starts a new expression at its level.
pub fn check_shape(sql: &str, limits: &Limits) -> Result<(), Status> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if sql.len() > limits.max_query_bytes {
        return Err(Status::invalid_argument(format!(
            "the query is {} long, past the limit of {} (--max-query-size); pass long value lists as a table or a parameter",
            human_bytes(sql.len()),
            human_bytes(limits.max_query_bytes)
        )));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().map_err(|e| Status::invalid_argument(format!("cannot read the query: {e}")))?;
    // A comma or a clause keyword starts a new expression at its level.
    fn restart(levels: &mut [Level], nested: &mut usize) {
        if let Some(l) = levels.last_mut() {
            *nested -= l.depth();
            *l = Level::default();
        }
    }
    let mut elements = 0usize;
    let mut levels: Vec<Level> = vec![Level::default()];
    // The sum of the levels' depths, kept as they change (summing them at
    // every token would take time growing with the square of the nesting).
    let mut nested = 0usize;
    let mut depth = 0usize;
    for token in &tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => continue,
            _ => elements += 1,
        }
        let class = match token {
            Token::LParen | Token::LBracket => {
                levels.push(Level::default());
                None
            }
            Token::RParen | Token::RBracket => {
                if levels.len() > 1 {
                    nested -= levels.pop().map_or(0, |l| l.depth());
                }
                None
            }
            Token::Comma | Token::SemiColon => {
                restart(&mut levels, &mut nested);
                None
            }
            Token::Word(w) => match w.keyword {
                Keyword::OR => Some(OpClass::Or),
                Keyword::AND => Some(OpClass::And),
                Keyword::NOT => Some(OpClass::Not),
                Keyword::LIKE | Keyword::ILIKE | Keyword::IS | Keyword::BETWEEN | Keyword::IN => Some(OpClass::Compare),
                Keyword::WHEN | Keyword::THEN | Keyword::ELSE => Some(OpClass::Other),
                Keyword::SELECT | Keyword::FROM | Keyword::WHERE | Keyword::GROUP | Keyword::HAVING | Keyword::ORDER | Keyword::LIMIT | Keyword::UNION | Keyword::ON | Keyword::JOIN => {
                    restart(&mut levels, &mut nested);
                    None
                }
                _ => None,
            },
            Token::Eq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq => Some(OpClass::Compare),
            Token::Plus | Token::Minus => Some(OpClass::Add),
            Token::Mul | Token::Div | Token::Mod => Some(OpClass::Multiply),
            Token::StringConcat | Token::Pipe => Some(OpClass::Concat),
            Token::Caret | Token::Ampersand | Token::DoubleColon => Some(OpClass::Other),
            _ => None,
        };
        if let (Some(c), Some(l)) = (class, levels.last_mut()) {
            // A level's depth only grows as operators are added to it.
            let before = l.depth();
            l.add(c);
            nested += l.depth() - before;
        }
        depth = depth.max(levels.len() - 1 + nested);
    }
    if elements > limits.max_query_elements {
        return Err(Status::invalid_argument(format!(
            "the query has {elements} words, numbers and symbols, past the limit of {} (--max-query-elements)",
            limits.max_query_elements
        )));
    }
    if depth > limits.max_expression_depth {
        return Err(Status::invalid_argument(format!(
            "an expression of the query nests {depth} deep (operators in a chain, parentheses), past the limit of {} (--max-expression-depth)",
            limits.max_expression_depth
        )));
    }
    Ok(())
}

/// Plans client SQL: one read-only statement (no DDL, DML, COPY, SET, PREPARE).
/// `?` placeholders (JDBC, ADBC) become `$1, $2, ...`.
pub async fn plan_sql(ctx: &SessionContext, sql: &str, limits: &Limits) -> Result<LogicalPlan, Status> {
    check_shape(sql, limits)?;
    let sql = number_placeholders(sql);
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let planned = AssertUnwindSafe(crate::engine::plan_sql(&ctx.state(), &sql)).catch_unwind().await.map_err(|_| panic_status())?;
    let plan = planned.map_err(|e| df_status(&e, limits))?;
    // SQLOptions refuses exactly the plans that write or change settings.
    options.verify_plan(&plan).map_err(|e| {
        Status::permission_denied(format!("vitals serves read-only SQL (no DDL, DML, COPY, SET or PREPARE): {}", e.find_root()))
    })?;
    Ok(plan)
}

pub fn panic_status() -> Status {
    tracing::error!("a query panicked; the server goes on serving");
    Status::internal("the query hit an internal error (a panic); the server is still serving")
}

/// Rewrites `?` placeholders outside quotes and comments to `$1, $2, ...`.
fn number_placeholders(sql: &str) -> String {
    if !sql.contains('?') {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    out.push(c);
                    for c in chars.by_ref() {
                        out.push(c);
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '?' => {
                    n += 1;
                    out.push_str(&format!("${n}"));
                }
                _ => out.push(c),
            },
        }
    }
    out
}

/// Binds parameter values (one row of a client's parameter batch) to a plan.
pub fn bind(plan: LogicalPlan, params: Option<&RecordBatch>) -> Result<LogicalPlan, Status> {
    let Some(batch) = params else { return Ok(plan) };
    if batch.num_rows() != 1 {
        return Err(Status::invalid_argument(format!("bind exactly one row of parameters to a query, got {}", batch.num_rows())));
    }
    let values: Vec<ScalarValue> = batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
    plan.with_param_values(values).map_err(|e| Status::invalid_argument(format!("cannot bind the parameters: {e}")))
}

/// The schema a client sees: view and dictionary types as their plain types
/// (what BI drivers read), every field nullable. FlightInfo advertises it and
/// the stream sends exactly it.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(schema.fields().iter().map(|f| wire_field(f)).collect::<Vec<_>>()))
}

fn wire_field(f: &Field) -> Field {
    Field::new(f.name(), wire_type(f.data_type()), true)
}

pub fn wire_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, v) => wire_type(v),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => DataType::List(Arc::new(wire_field(f))),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(Arc::new(wire_field(f)), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| wire_field(f)).collect()),
        other => other.clone(),
    }
}

/// Converts a batch to the wire schema.
pub fn to_wire(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Status> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { arrow::compute::cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::internal(format!("cannot convert a result column: {e}")))?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Status::internal(format!("cannot build a result batch: {e}")))
}

/// The trailer that tells a full queue (try again soon) from a query past its own limits.
pub const BUSY_MARK: &str = "vitals-busy";

/// Admission: at most `max_concurrent` queries run; `max_queued` wait.
pub struct Admission {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    limits: Limits,
}

impl Admission {
    pub fn new(limits: &Limits) -> Admission {
        Admission { slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))), queued: AtomicUsize::new(0), limits: limits.clone() }
    }

    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let waiting = self.queued.fetch_add(1, Ordering::SeqCst);
        let _leave = Waiting(&self.queued);
        let busy = || {
            let mut marks = tonic::metadata::MetadataMap::new();
            marks.insert(BUSY_MARK, tonic::metadata::MetadataValue::from_static("1"));
            Status::with_metadata(
                tonic::Code::ResourceExhausted,
                format!(
                    "the server is busy: {} queries running and {} waiting (--max-concurrent-queries, --max-queued-queries); try again shortly",
                    self.limits.max_concurrent, self.limits.max_queued
                ),
                marks,
            )
        };
        if waiting >= self.limits.max_queued {
            return Err(busy());
        }
        match tokio::time::timeout(self.limits.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }
}

/// Counts a query as waiting for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One running query, as the cancel action finds it.
#[derive(Clone)]
pub struct Running {
    pub principal: String,
    pub sql: String,
    pub started: Instant,
    cancel: watch::Sender<bool>,
}

/// Queries by id, for cancellation and for the admin's list.
#[derive(Default)]
pub struct Registry {
    running: Mutex<HashMap<String, Running>>,
}

impl Registry {
    /// Registers a query under `id`; the receiver turns true when it is cancelled.
    /// A query cancelled before it started stays cancelled.
    pub fn start(&self, id: &str, principal: &str, sql: &str) -> watch::Receiver<bool> {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Cancellations of queries that never started are forgotten after a while.
        map.retain(|_, r| !r.sql.is_empty() || r.started.elapsed() < Duration::from_secs(600));
        let entry = map.entry(id.to_string()).or_insert_with(|| Running {
            principal: principal.to_string(),
            sql: sql.to_string(),
            started: Instant::now(),
            cancel: watch::channel(false).0,
        });
        entry.started = Instant::now();
        entry.sql = sql.to_string();
        entry.cancel.subscribe()
    }

    pub fn finish(&self, id: &str) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Cancels a query. A query id not seen yet is remembered as cancelled
    /// (the client may cancel between GetFlightInfo and DoGet).
    pub fn cancel(&self, id: &str, who: &Principal) -> Result<(), Status> {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(id.to_string()).or_insert_with(|| Running {
            principal: who.name.clone(),
            sql: String::new(),
            started: Instant::now(),
            cancel: watch::channel(false).0,
        });
        if entry.principal != who.name && who.role != crate::config::Role::Admin {
            return Err(Status::permission_denied("that query belongs to another principal"));
        }
        entry.cancel.send_replace(true);
        Ok(())
    }

    pub fn cancel_all(&self) {
        for r in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            r.cancel.send_replace(true);
        }
    }

    pub fn list(&self) -> Vec<(String, Running)> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Removes a query from the registry when dropped.
struct Finish {
    registry: Arc<Registry>,
    id: String,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.registry.finish(&self.id);
    }
}

/// What a finished or failed stream reports to the request log.
#[derive(Default)]
pub struct Tally {
    pub rows: AtomicUsize,
    pub bytes: AtomicUsize,
}

/// A query's result stream under its limits.
pub type ResultStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, Status>> + Send>>;

/// What one execution needs.
pub struct Execution {
    pub ctx: SessionContext,
    pub plan: LogicalPlan,
    pub id: String,
    pub principal: String,
    pub sql: String,
    pub permit: OwnedSemaphorePermit,
    pub registry: Arc<Registry>,
    pub limits: Limits,
    pub tally: Arc<Tally>,
    /// The schema the client was promised.
    pub schema: SchemaRef,
}

/// Starts the plan and returns its batches, converted to the wire schema,
/// ending with an error when the deadline passes, the query is cancelled or
/// the result grows past its bounds.
pub async fn execute(ex: Execution) -> Result<ResultStream, Status> {
    let Execution { ctx, plan, id, principal, sql, permit, registry, limits, tally, schema } = ex;
    let deadline = tokio::time::Instant::now() + limits.query_timeout;
    let mut cancel = registry.start(&id, &principal, &sql);
    // Leaves the registry when the query ends, however it ends.
    let finish = Finish { registry, id };
    let timeout_status = || Status::deadline_exceeded(format!("the query ran past its timeout of {:?} (--query-timeout)", limits.query_timeout));
    let start = AssertUnwindSafe(async {
        let df = ctx.execute_logical_plan(plan).await?;
        df.execute_stream().await
    })
    .catch_unwind();
    let stream: SendableRecordBatchStream = tokio::select! {
        biased;
        _ = cancel.wait_for(|c| *c) => return Err(Status::cancelled("the query was cancelled")),
        _ = tokio::time::sleep_until(deadline) => return Err(timeout_status()),
        r = start => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(df_status(&e, &limits)),
            Err(_) => return Err(panic_status()),
        }
    };
    // A task of its own drives the query, so its deadline and cancellation
    // hold even while the client reads nothing: a client that stops reading
    // loses its query at the timeout, and its slot and memory are freed.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, Status>>(2);
    let ending: Arc<Mutex<Option<Status>>> = Arc::default();
    let end = Arc::clone(&ending);
    let timeout_after = limits.query_timeout;
    tokio::spawn(async move {
        let _permit = permit;
        let _finish = finish;
        let timed_out = || Status::deadline_exceeded(format!("the query ran past its timeout of {timeout_after:?} (--query-timeout)"));
        let cancelled = || Status::cancelled("the query was cancelled");
        let set_end = |s: Status| *end.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
        let mut inner = AssertUnwindSafe(stream).catch_unwind();
        loop {
            let item = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => Err(cancelled()),
                _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
                next = inner.next() => match next {
                    None => break,
                    Some(Err(_)) => Err(panic_status()),
                    Some(Ok(Err(e))) => Err(df_status(&e, &limits)),
                    Some(Ok(Ok(batch))) => {
                        let rows = tally.rows.fetch_add(batch.num_rows(), Ordering::Relaxed) + batch.num_rows();
                        let bytes = tally.bytes.fetch_add(batch.get_array_memory_size(), Ordering::Relaxed) + batch.get_array_memory_size();
                        if rows > limits.max_rows {
                            Err(Status::resource_exhausted(format!(
                                "the result has more than {} rows (--max-result-rows): add a LIMIT or aggregate", limits.max_rows)))
                        } else if bytes > limits.max_bytes {
                            Err(Status::resource_exhausted(format!(
                                "the result is larger than {} (--max-result-bytes): select fewer columns or rows", human_bytes(limits.max_bytes))))
                        } else {
                            to_wire(&batch, &schema)
                        }
                    }
                }
            };
            let failed = item.is_err();
            tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => {
                    set_end(cancelled());
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    set_end(timed_out());
                    break;
                }
                sent = tx.send(item) => if sent.is_err() {
                    break; // the client went away
                }
            }
            if failed {
                break;
            }
        }
    });
    // The client's side: the batches, then the error the query ended with (if
    // the channel closed on one the client had not been sent yet).
    let s = futures::stream::unfold((rx, ending, false), |(mut rx, ending, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            Some(item) => {
                let failed = item.is_err();
                Some((item, (rx, ending, failed)))
            }
            None => {
                let last = ending.lock().unwrap_or_else(|p| p.into_inner()).take();
                last.map(|s| (Err(s), (rx, ending, true)))
            }
        }
    });
    Ok(Box::pin(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text is measured without a panic (quotes left open, odd brackets, any characters).
        #[test]
        fn any_text_is_measured(text in "\\PC{0,200}|[()\\[\\]'\",;+*/|a-z0-9 ]{0,200}") {
            let _ = check_shape(&text, &Limits::default());
            let _ = number_placeholders(&text);
        }
    }

    #[test]
    fn query_shapes_are_measured_without_parsing() {
        let limits = Limits { max_expression_depth: 10, max_query_elements: 60, max_query_bytes: 400, ..Limits::default() };
        let chain = |op: &str, n: usize| format!("SELECT {}", vec!["1"; n].join(&format!(" {op} ")));
        assert!(check_shape(&chain("+", 11), &limits).is_ok());
        assert!(check_shape(&chain("+", 12), &limits).is_err());
        assert!(check_shape(&chain("OR", 12), &limits).is_err());
        // Each term of an OR chain adds one level, not two.
        let ors = (0..9).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
        assert!(check_shape(&format!("SELECT 1 FROM t WHERE {ors}"), &limits).is_ok());
        // Parentheses nest; siblings in a list do not add up.
        assert!(check_shape(&format!("SELECT {}1{}", "(".repeat(10), ")".repeat(10)), &limits).is_ok());
        assert!(check_shape(&format!("SELECT {}1{}", "(".repeat(11), ")".repeat(11)), &limits).is_err());
        assert!(check_shape("SELECT a + 1, b + 2, c + 3, d + 4, e + 5, f + 6, g + 7, h + 8, i + 9, j + 10, k + 11 FROM t", &limits).is_ok());
        // Elements and bytes.
        let long_list = format!("SELECT 1 WHERE x IN ({})", (0..40).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert!(check_shape(&long_list, &limits).unwrap_err().message().contains("--max-query-elements"));
        assert!(check_shape(&"x".repeat(401), &limits).unwrap_err().message().contains("--max-query-size"));
        // 256 KiB of parentheses: measured in one pass, refused for its depth.
        let deep = format!("SELECT {}1", "(".repeat(250_000));
        assert!(check_shape(&deep, &Limits { max_query_elements: usize::MAX, ..Limits::default() }).unwrap_err().message().contains("--max-expression-depth"));
    }

    #[test]
    fn question_marks_become_numbered_placeholders_outside_quotes() {
        assert_eq!(number_placeholders("SELECT ? + ?"), "SELECT $1 + $2");
        assert_eq!(number_placeholders("SELECT '?' AS q, \"a?\" FROM t WHERE x = ?"), "SELECT '?' AS q, \"a?\" FROM t WHERE x = $1");
        assert_eq!(number_placeholders("SELECT 1 -- why?\n, ?"), "SELECT 1 -- why?\n, $1");
        assert_eq!(number_placeholders("SELECT $1"), "SELECT $1");
    }

    #[test]
    fn the_wire_schema_has_no_view_or_dictionary_types() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8View, false),
            Field::new("b", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
            Field::new("c", DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))), true),
            Field::new("d", DataType::Int64, false),
        ]);
        let wire = wire_schema(&schema);
        let types: Vec<&DataType> = wire.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types[0], &DataType::Utf8);
        assert_eq!(types[1], &DataType::Utf8);
        assert_eq!(types[2], &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))));
        assert_eq!(types[3], &DataType::Int64);
        assert!(wire.fields().iter().all(|f| f.is_nullable()));
    }

    #[tokio::test]
    async fn admission_refuses_past_the_queue() {
        let limits = Limits { max_concurrent: 1, max_queued: 1, queue_timeout: Duration::from_millis(200), ..Limits::default() };
        let a = Arc::new(Admission::new(&limits));
        let first = a.admit().await.expect("a free slot");
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.admit().await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One is running, one is waiting: a third is refused at once.
        assert_eq!(a.admit().await.err().map(|s| s.code()), Some(tonic::Code::ResourceExhausted));
        // The waiter gives up after the queue timeout.
        assert_eq!(waiter.await.ok().and_then(|r| r.err()).map(|s| s.code()), Some(tonic::Code::ResourceExhausted));
        drop(first);
        assert!(a.admit().await.is_ok());
    }
}
