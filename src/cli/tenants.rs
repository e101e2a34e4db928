//! `tollgate tenants`: the tenant API's commands, and a tenant's policy files.

use std::path::PathBuf;

use clap::Subcommand;

use super::format::UsageFormat;

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// List tenants (file and store), filtered.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// `file` or `store`.
        #[arg(long)]
        origin: Option<String>,
        /// Ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// `table` or `json`.
        #[arg(long, value_enum, default_value = "table")]
        format: UsageFormat,
    },
    /// Print one tenant as JSON.
    Get { id: String },
    /// Create or replace the tenants of a YAML or JSON file (one tenant, a list, or the
    /// `tenants:` of a tenants file).
    Apply {
        #[arg(long = "file", short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
    /// Suspend a tenant (its requests get 403 tenant-suspended).
    Suspend { id: String },
    /// Make a tenant active again.
    Resume { id: String },
    /// Delete a tenant of the store.
    Delete { id: String },
    /// A tenant's own Cedar policy files (tenants of the store).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// The names of a tenant's policy files.
    List { id: String },
    /// Print one policy file.
    Get { id: String, name: String },
    /// Validate FILE against the schema and make it the tenant's policy file NAME.
    Put {
        id: String,
        name: String,
        #[arg(long = "file", short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
    /// Remove a tenant's policy file.
    Delete { id: String, name: String },
}
