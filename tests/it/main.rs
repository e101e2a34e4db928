//! Behaviour tests against a real listening Tollgate process and a real upstream on loopback.
//! One test binary (faster to build and link than one per file); one module per concern.

mod support;

mod audit;
mod audit_chain;
mod audit_cli;
mod audit_faults;
mod authorizer;
mod authorizer_hints;
mod authz;
mod bypass;
mod bypass_identity;
mod check;
mod check_names;
mod ci_example;
mod cli;
mod demo;
mod deploy;
mod dockerfile;
mod envoy;
mod envoy_grpc;
mod errors;
mod forwarding;
mod gateways;
mod identity;
mod lifecycle;
mod limits;
mod limits_backends;
mod nginx;
mod plan_limits;
mod pool;
mod protocols;
mod redis_faults;
mod reload;
mod replay;
mod shadow_policies;
mod streaming;
mod structure;
mod tenancy;
mod tenant_api;
mod tenant_idp;
mod tenant_policies;
mod tenant_replicas;
mod tls;
mod upgrade;
