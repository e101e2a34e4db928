//! Tollgate: a policy-enforcing reverse proxy for multi-tenant SaaS applications.
//! See ARCHITECTURE.md for the map of this crate.

pub(crate) mod access;
pub mod admin_client;
pub mod audit;
pub mod authz;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub(crate) mod echo;
pub(crate) mod error;
pub mod explain;
pub mod grpc;
pub mod headers;
pub mod identity;
pub mod limits;
pub mod live;
pub mod logging;
pub mod metrics;
pub(crate) mod pem;
pub mod pipeline;
pub mod policy_tests;
pub(crate) mod reload;
pub mod server;
pub mod snapshot;
pub(crate) mod stage;
pub(crate) mod state;
pub mod tenant_commands;
pub mod tenants;
pub(crate) mod upstream;
pub(crate) mod watch;
