//! A lake that changes while it is read: the current [`Snapshot`], refreshed
//! from the log and the store when it is older than the refresh interval, so
//! a running server sees what ingests and other pipelines commit without a
//! restart. A query reads one snapshot from start to end (the engine pins it),
//! so it never mixes two commits. A file that breaks the contract is left out
//! and named once in the log.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::cache::default_cache::DefaultCache;

use super::log::LogState;
use super::snapshot::Snapshot;
use super::{Lake, Result};

/// Footers kept in memory for planning and scans.
const FOOTER_CACHE_BYTES: usize = 64 << 20;

/// How a live lake treats what it finds.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// A snapshot older than this is refreshed before the next query; zero refreshes before every query.
    pub refresh_every: Duration,
    /// Fail at start-up on a file that breaks the contract (instead of leaving it out with a warning).
    pub strict: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { refresh_every: Duration::from_secs(5), strict: true }
    }
}

/// The lake's current snapshot and how to refresh it.
pub struct LiveLake {
    lake: Lake,
    options: LiveOptions,
    cache: Arc<FileMetadataCache>,
    current: RwLock<Arc<Snapshot>>,
    /// The log as last read, and when; held while a refresh runs, so refreshes do not overlap.
    log: tokio::sync::Mutex<LogState>,
    refreshed: Mutex<Instant>,
    /// Files already named in a warning.
    reported: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for LiveLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLake").field("lake", &self.lake.display()).field("version", &self.current().version).finish()
    }
}

impl LiveLake {
    /// Reads the lake once. With `strict`, a file that breaks the contract is an error naming it.
    pub async fn open(lake: Lake, options: LiveOptions) -> Result<Arc<LiveLake>> {
        let cache: Arc<FileMetadataCache> = Arc::new(DefaultCache::new(FOOTER_CACHE_BYTES).with_name("vitals lake footers"));
        let log = LogState::load(&lake).await?;
        let snapshot = Snapshot::build(&lake, &log, None, &cache).await?;
        if options.strict {
            if let Some(p) = snapshot.problems().next() {
                return Err(p.error());
            }
        }
        let live = LiveLake {
            lake,
            options,
            cache,
            current: RwLock::new(Arc::new(snapshot)),
            log: tokio::sync::Mutex::new(log),
            refreshed: Mutex::new(Instant::now()),
            reported: Mutex::new(HashSet::new()),
        };
        live.report(&live.current());
        Ok(Arc::new(live))
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The footer cache every session over this lake shares.
    pub fn metadata_cache(&self) -> Arc<FileMetadataCache> {
        Arc::clone(&self.cache)
    }

    /// The latest snapshot read.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn stale(&self) -> bool {
        self.refreshed.lock().unwrap_or_else(|p| p.into_inner()).elapsed() >= self.options.refresh_every
    }

    /// Reads what was committed since the last refresh; returns the new snapshot.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>> {
        let mut log = self.log.lock().await;
        self.refresh_locked(&mut log).await
    }

    async fn refresh_locked(&self, log: &mut LogState) -> Result<Arc<Snapshot>> {
        let started = Instant::now();
        log.catch_up(&self.lake).await?;
        let previous = self.current();
        let snapshot = Arc::new(Snapshot::build(&self.lake, log, Some(&previous), &self.cache).await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&snapshot);
        *self.refreshed.lock().unwrap_or_else(|p| p.into_inner()) = started;
        self.report(&snapshot);
        Ok(snapshot)
    }

    /// The current snapshot, refreshed first when it is older than the
    /// refresh interval. A failed refresh is logged and the last snapshot kept.
    pub async fn refresh_if_stale(&self) -> Arc<Snapshot> {
        if !self.stale() {
            return self.current();
        }
        let mut log = self.log.lock().await;
        // Another caller may have refreshed while this one waited.
        if !self.stale() {
            return self.current();
        }
        match self.refresh_locked(&mut log).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("refreshing the lake {}: {e}; queries keep reading the last snapshot", self.lake.display());
                *self.refreshed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                self.current()
            }
        }
    }

    /// Warns once about each file left out or misplaced.
    fn report(&self, snapshot: &Snapshot) {
        let mut seen = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for p in snapshot.problems() {
            if seen.insert(p.file.clone()) {
                tracing::warn!("left out of the lake: {}", p.error());
            }
        }
        let new: Vec<&String> = snapshot.misplaced.iter().filter(|f| !seen.contains(*f)).collect();
        if !new.is_empty() {
            let shown: Vec<&str> = new.iter().take(10).map(|s| s.as_str()).collect();
            tracing::warn!(
                "{} events file(s) hold times outside their folder's UTC day (read and counted by their event_time; pruning uses each file's own statistics): {}{}",
                new.len(),
                shown.join(", "),
                if new.len() > shown.len() { ", ..." } else { "" }
            );
            for f in new {
                seen.insert(f.clone());
            }
        }
    }
}
