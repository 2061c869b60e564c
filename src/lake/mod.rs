//! The lake: where Parquet files live (a local folder or an object store),
//! the declared table schemas, the writer every file goes through, ingest,
//! the demo generator, and registering the tables with a DataFusion session.
//! It knows nothing of views, reports or serving.

pub mod demo;
pub mod ingest;
pub mod location;
pub mod mapped;
pub mod scan;
pub mod schema;
pub mod tables;
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
    #[error("{context}: {source}")]
    DataFusion { context: String, source: Box<DataFusionError> },
}

impl LakeError {
    pub fn datafusion(context: impl Into<String>, source: DataFusionError) -> Self {
        LakeError::DataFusion { context: context.into(), source: Box::new(source) }
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
