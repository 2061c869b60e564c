//! The integration tests, in one binary (each test binary links all of DataFusion).

#[path = "it/common.rs"]
mod common;
#[path = "it/demo.rs"]
mod demo;
#[path = "it/ingest.rs"]
mod ingest;
#[path = "it/lake.rs"]
mod lake;
#[path = "it/slt.rs"]
mod slt;
