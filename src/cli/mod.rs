//! The command line's definition: every subcommand and its options (`main.rs` runs them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod format;
mod tenants;

pub use format::UsageFormat;
pub use tenants::{PolicyCommand, TenantsCommand};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Policy-enforcing reverse proxy for multi-tenant SaaS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The main configuration file, for the commands that read one.
#[derive(Args)]
pub struct ConfigFile {
    /// The main configuration file.
    #[arg(
        id = "config",
        long = "config",
        short = 'c',
        env = "TOLLGATE_CONFIG",
        default_value = "config/tollgate.yaml"
    )]
    pub file: PathBuf,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Validate configuration files; exit 0 when all are valid, 1 with every error otherwise.
    Check {
        /// Main configuration files to validate (each brings its tenants, plans, keys, routes
        /// and policies); `--config FILE` works too. Default: `$TOLLGATE_CONFIG` or
        /// config/tollgate.yaml.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(long = "config", short = 'c', value_name = "FILE", num_args = 1..)]
        config: Vec<PathBuf>,
    },
    /// Mint a development JWT signed with a key from the configuration.
    Token {
        #[command(flatten)]
        config: ConfigFile,
        /// The tenant the token belongs to (its `tenant` claim).
        #[arg(long)]
        tenant: Option<String>,
        /// The subject (user id).
        #[arg(long)]
        sub: String,
        /// Roles: comma-separated, or the option repeated (`--role` works too).
        #[arg(long, alias = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// Scopes: comma-separated, or the option repeated (`--scope` works too).
        #[arg(long, alias = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, more than zero: 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = positive_duration)]
        ttl: std::time::Duration,
        /// Mark the token as issued after multi-factor authentication.
        #[arg(long)]
        mfa: bool,
    },
    /// Run the decision pipeline for one request without forwarding it, and explain the decision.
    Authorize(AuthorizeArgs),
    /// Run policy test cases (YAML); exit 1 if any fails.
    Test {
        #[command(flatten)]
        config: ConfigFile,
        /// Directory of test files (default: the policies directory's tests/).
        dir: Option<PathBuf>,
        /// `text`: a line per case, coverage, a summary; `junit`: JUnit XML for CI.
        #[arg(long, value_enum, default_value = "text")]
        format: TestFormat,
    },
    /// Show quota usage against plan limits (from the running Tollgate, or the store).
    Usage {
        #[command(flatten)]
        config: ConfigFile,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// A period, or its prefix: 2026, 2026-11, 2026-11-22.
        #[arg(long, value_parser = period)]
        period: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: UsageFormat,
    },
    /// Print the records of an audit file that match, as written (`audit verify`: check the
    /// hash chain).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// An audit file, a directory of them, or a pattern (`'audit.jsonl*'`) that takes in
        /// the rotated files too (`<file>.<UTC time>`, read oldest first); repeat for several.
        #[arg(long, required = true, num_args = 1..)]
        file: Vec<PathBuf>,
        /// Keep reading what is appended to the last file (across rotations) until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// Only records with this decision.
        #[arg(long, value_enum)]
        decision: Option<Decision>,
        /// Only records this recent, e.g. 15m, 1h, 2d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Decide the decision records of audit files again against a candidate configuration and
    /// print what would change; exit 0 when nothing would, 1 when something would, 2 on error.
    Replay {
        /// Audit files, directories or patterns (rotated and `.gz` files too).
        #[arg(long, required = true, num_args = 1..)]
        audit: Vec<PathBuf>,
        /// The candidate main configuration (its policies, routes, plans and tenants).
        #[arg(long)]
        config: PathBuf,
        /// Only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// Only records this recent, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage tenants through a running Tollgate's admin API (`tenancy.store: embedded | redis`).
    Tenants {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Run the built-in demo: an echo upstream behind Tollgate with the shipped example config.
    Demo {
        /// The proxy listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The admin listener (/healthz /readyz /metrics /usage).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// The built-in echo upstream.
        #[arg(long, default_value = "127.0.0.1:8081")]
        upstream_listen: SocketAddr,
        /// The nginx authorizer listener; Envoy's and Traefik's take the next two ports.
        #[arg(long, default_value = "127.0.0.1:8082")]
        authorizer_listen: SocketAddr,
        /// Keep the demo's files (and state) in DIR: files are written only where missing, so
        /// edits are reloaded while it runs and kept for the next run. Default: a temporary copy.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// An audit record's decision.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// `Name: value`, as curl's `-H` takes it.
fn header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?} is not a header: write 'Name: value'")),
    }
}

/// A duration of more than zero (`0s` would make an already expired token or key).
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// A usage period or its prefix: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real date.
fn period(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let bad = || format!("{text:?} is not a period: write 2026, 2026-11 or 2026-11-22");
    let year = parts.first().and_then(|y| number(y, 4)).ok_or_else(bad)?;
    match parts[1..] {
        [] => {}
        [m] => {
            number(m, 2)
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?;
        }
        [m, d] => {
            let month = number(m, 2)
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?;
            let day = number(d, 2).ok_or_else(bad)?;
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let days = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            if !(1..=days).contains(&day) {
                return Err(bad());
            }
        }
        _ => return Err(bad()),
    }
    Ok(text.to_string())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Junit,
}

/// Where the admin API is, and its token.
#[derive(Args)]
pub struct AdminArgs {
    /// The admin listener's address.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN",
        default_value = "127.0.0.1:9090",
        global = true
    )]
    pub admin: SocketAddr,
    /// The admin token (`admin.token`).
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Follow the hash chain through audit files, oldest first: exit 0 when it holds, 1 at the
    /// first changed, removed, inserted or reordered record (named), 2 on a mistake.
    Verify {
        /// Files, directories or patterns, as for `tollgate audit --file`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key: its hash goes into the keys file, the key is printed once.
    Create {
        #[command(flatten)]
        config: ConfigFile,
        /// The tenant the key belongs to.
        #[arg(long)]
        tenant: String,
        /// Roles: comma-separated, or the option repeated (`--role` works too).
        #[arg(long, alias = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// Scopes: comma-separated, or the option repeated (`--scope` works too).
        #[arg(long, alias = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A name for the key (default: tenant and a hash prefix).
        #[arg(long)]
        name: Option<String>,
        /// Expire the key after this long (more than zero), e.g. 90d.
        #[arg(long, value_parser = positive_duration)]
        expires_in: Option<std::time::Duration>,
    },
}

/// `tollgate authorize`: the request to decide, and who asks.
#[derive(Args)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// The tenant the request is for.
    #[arg(long)]
    pub tenant: String,
    /// Authenticate with this token (as `Authorization: Bearer`).
    #[arg(long, conflicts_with = "user")]
    pub token: Option<String>,
    /// Decide for this user instead of authenticating a token.
    #[arg(long)]
    pub user: Option<String>,
    /// Roles of --user: comma-separated, or the option repeated (`--role` works too).
    #[arg(long, alias = "role", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Scopes of --user: comma-separated, or the option repeated (`--scope` works too).
    #[arg(long, alias = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// --user authenticated with multi-factor authentication.
    #[arg(long)]
    pub mfa: bool,
    /// The request method, exactly as a client sends it (methods are case-sensitive: `get` is
    /// not `GET`, as the proxy sees it).
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The request target: path and query, e.g. /api/v1/agents/7?view=full.
    #[arg(long)]
    pub path: String,
    /// A request header, `Name: value`; repeat for several.
    #[arg(long = "header", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// The client address the policies see.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
