//! Tollgate: a policy-enforcing reverse proxy for multi-tenant SaaS applications.
//! See ARCHITECTURE.md for the map of this crate.

pub mod audit;
pub mod authz;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod echo;
pub mod error;
pub mod explain;
pub mod headers;
pub mod identity;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod pem;
pub mod pipeline;
pub mod reload;
pub mod server;
pub mod snapshot;
pub mod stage;
pub mod state;
pub mod tenants;
pub mod upstream;
pub mod watch;
