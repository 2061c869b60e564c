//! The lake: where Parquet files live (a local folder or an object store),
//! the declared table schemas, the commit log and the writer every file goes
//! through, the snapshots readers see, ingest, the demo generator, and the
//! tables a DataFusion session reads. It knows nothing of views, reports or serving.

pub mod compact;
pub mod demo;
pub mod ingest;
pub mod live;
pub mod location;
pub mod log;
pub mod mapped;
pub mod scan;
pub mod schema;
pub mod scope;
pub mod snapshot;
pub mod tables;
pub mod vacuum;
pub mod writer;

pub use location::Lake;
pub use schema::Table;

use datafusion::error::DataFusionError;

/// What can go wrong in the lake layer.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("invalid lake location '{location}': {reason}")]
    Location { location: String, reason: String },
    #[error("{0}")]
    Input(String),
    #[error("{file}: incompatible column '{column}': {reason}")]
    IncompatibleFile { file: String, column: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The commit log cannot be read as the protocol requires.
    #[error("the lake's commit log: {0}")]
    Log(String),
    /// A commit's outcome is unknown (the store failed while writing it); nothing was deleted.
    #[error("{0} (the commit may or may not have happened; run the same ingest again: it drops what is already in)")]
    Uncertain(String),
    /// Another writer committed first and changed what this one read.
    #[error("another writer committed first: {0}")]
    Conflict(String),
    #[error("{context}: {source}")]
    DataFusion { context: String, source: Box<DataFusionError> },
}

impl LakeError {
    pub fn datafusion(context: impl Into<String>, source: DataFusionError) -> Self {
        LakeError::DataFusion { context: context.into(), source: Box::new(source) }
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
