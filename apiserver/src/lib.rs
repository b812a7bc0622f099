//! `kube-apiserver` as a library: the binary in `main.rs` only parses flags and runs
//! [`server::run`], so tests and tools can build the same server in-process.

pub mod admission;
pub mod apply;
pub mod authn;
pub mod authz;
pub mod decoding;
pub mod discovery;
pub mod error;
pub mod filters;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod options;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod routes;
pub mod server;
pub mod serviceaccount;
pub mod tls;
pub mod yaml;
