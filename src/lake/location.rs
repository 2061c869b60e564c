//! Opening a lake root: a local folder or an `s3://bucket/prefix` URL, and the
//! object store that reaches it. S3 settings come from the standard AWS
//! environment variables (AWS_ENDPOINT_URL and AWS_ALLOW_HTTP for S3-compatible stores).

use std::path::Path as FsPath;
use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::{Path, PathPart};
use object_store::{ObjectMeta, ObjectStore};
use url::Url;

use super::mapped::MappedStore;
use super::schema::Table;
use super::{LakeError, Result};

/// An opened lake root.
#[derive(Debug, Clone)]
pub struct Lake {
    /// What the user gave, for messages.
    display: String,
    /// `file:///abs/root/` or `s3://bucket/prefix/`, always with a trailing slash.
    root: Url,
    store: Arc<dyn ObjectStore>,
    /// The root as a path inside `store`.
    prefix: Path,
}

impl Lake {
    /// Opens a lake at a local path or an `s3://` URL. A local folder is created
    /// when `create` is set; otherwise it must exist.
    pub fn open(location: &str, create: bool) -> Result<Lake> {
        let bad = |reason: String| LakeError::Location { location: location.to_string(), reason };
        if location.is_empty() {
            return Err(bad("empty location".into()));
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://".into()));
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            let root = Url::parse(&format!(
                "s3://{bucket}/{}",
                if prefix.is_empty() { String::new() } else { format!("{prefix}/") }
            ))
            .map_err(|e| bad(e.to_string()))?;
            return Ok(Lake {
                display: location.to_string(),
                root,
                store: Arc::new(store),
                prefix: Path::from(prefix),
            });
        }
        if location.contains("://") && !location.starts_with("file://") {
            return Err(bad("only local paths, file:// and s3:// URLs are supported".into()));
        }
        let raw = location.strip_prefix("file://").unwrap_or(location);
        let path = FsPath::new(raw);
        if create {
            std::fs::create_dir_all(path).map_err(|e| bad(e.to_string()))?;
        } else if !path.is_dir() {
            return Err(bad(
                "no such folder; create one with `vitals demo` or `vitals ingest`".into(),
            ));
        }
        let abs = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
        let root = Url::from_directory_path(&abs).map_err(|_| bad("not an absolute path".into()))?;
        let prefix = Path::from_absolute_path(&abs).map_err(|e| bad(e.to_string()))?;
        Ok(Lake {
            display: location.to_string(),
            root,
            store: Arc::new(MappedStore::new()),
            prefix,
        })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Makes the lake's object store known to a session (for a local lake,
    /// the memory-mapped store in place of DataFusion's own file store).
    pub fn register_store(&self, ctx: &SessionContext) {
        self.register_store_in(ctx.runtime_env().as_ref());
    }

    /// The same, in a runtime that is not a session's (a cluster executor's).
    pub fn register_store_in(&self, runtime: &datafusion::execution::runtime_env::RuntimeEnv) {
        let mut base = self.root.clone();
        base.set_path("");
        runtime.register_object_store(&base, self.store.clone());
    }

    /// The store path of a table's folder.
    pub fn table_path(&self, table: Table) -> Path {
        self.prefix.clone().join(table.name())
    }

    /// The URL DataFusion lists a table from.
    pub fn table_url(&self, table: Table) -> Result<ListingTableUrl> {
        let url = self.root.join(&format!("{}/", table.name())).map_err(|e| LakeError::Location {
            location: self.display.clone(),
            reason: e.to_string(),
        })?;
        ListingTableUrl::parse(url.as_str())
            .map_err(|e| LakeError::datafusion(format!("table URL {url}"), e))
    }

    /// A path inside the lake from one relative to its root (`events/...`).
    pub fn child(&self, relative: &str) -> Path {
        let mut parts: Vec<PathPart<'static>> = self.prefix.parts().map(|p| PathPart::from(p.as_ref().to_string())).collect();
        parts.extend(relative.split('/').filter(|s| !s.is_empty()).map(|s| PathPart::from(s.to_string())));
        Path::from_iter(parts)
    }

    /// Every object under a table's folder, sorted by path.
    pub async fn list_all(&self, table: Table) -> Result<Vec<ObjectMeta>> {
        let prefix = self.table_path(table);
        let mut files: Vec<ObjectMeta> = match self.store.list(Some(&prefix)).try_collect().await {
            Ok(files) => files,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    /// The Parquet files in a table's folder, sorted by path, without hidden
    /// ones: a file or folder whose name starts with `.` or `_` below the
    /// table's folder is skipped, as Spark, Hive and DuckDB do (`_SUCCESS`,
    /// `_temporary/`, `.part-0.parquet.crc`). Whether a listed file is
    /// committed is the snapshot's business, not the listing's.
    pub async fn list_files(&self, table: Table) -> Result<Vec<ObjectMeta>> {
        let prefix = self.table_path(table);
        let mut files = self.list_all(table).await?;
        files.retain(|m| {
            let below: Vec<_> = m.location.prefix_match(&prefix).map(|p| p.collect()).unwrap_or_default();
            let hidden = below.iter().any(|p: &PathPart<'_>| p.as_ref().starts_with('.') || p.as_ref().starts_with('_'));
            !hidden && m.location.as_ref().ends_with(".parquet")
        });
        Ok(files)
    }

    /// A path relative to the lake root, for messages that must not leak the
    /// machine's layout.
    pub fn relative<'a>(&self, path: &'a Path) -> &'a str {
        let full = path.as_ref();
        let prefix = self.prefix.as_ref();
        full.strip_prefix(prefix).map(|s| s.trim_start_matches('/')).unwrap_or(full)
    }
}
