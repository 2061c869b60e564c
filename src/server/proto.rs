//! The messages and service of `proto/vitals/v1/reports.proto`, generated at
//! build time (protox compiles the file, so no protoc is needed).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("vitals.v1");

/// The encoded descriptors, for server reflection and for filling report rows by field name.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vitals_descriptor.bin"));
