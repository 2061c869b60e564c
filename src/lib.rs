//! vitals: customer-success analytics over a SaaS vendor's product events,
//! stored as Parquet in a lake and queried with Apache DataFusion.
//! Layers, lowest first: lake -> functions -> reports -> engine -> server, cli.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod functions;
pub mod lake;
pub mod reports;
pub mod server;
