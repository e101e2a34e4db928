//! The command line's definition: every subcommand and its options (`main.rs` runs them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        /// Configuration files to validate.
        #[arg(long, short, required = true, num_args = 1..)]
        config: Vec<PathBuf>,
    },
    /// Mint a development JWT signed with a key from the configuration.
    Token {
        #[command(flatten)]
        config: ConfigFile,
        #[arg(long)]
        tenant: Option<String>,
        /// The subject (user id).
        #[arg(long)]
        sub: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Comma-separated scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, e.g. 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
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
    },
    /// Show quota usage against plan limits (from the running Tollgate, or the store).
    Usage {
        #[command(flatten)]
        config: ConfigFile,
        #[arg(long)]
        tenant: Option<String>,
        /// A period, or its prefix: 2026-11, 2026-11-22, 2026.
        #[arg(long)]
        period: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: UsageFormat,
    },
    /// Print the records of an audit file that match, as written.
    Audit {
        /// The audit file.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
        /// allow or deny.
        #[arg(long)]
        decision: Option<String>,
        /// Only records this recent, e.g. 15m, 1h, 2d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum UsageFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key: its hash goes into the keys file, the key is printed once.
    Create {
        #[command(flatten)]
        config: ConfigFile,
        #[arg(long)]
        tenant: String,
        /// A role; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A scope; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A name for the key (default: tenant and a hash prefix).
        #[arg(long)]
        name: Option<String>,
        /// Expire the key after this long, e.g. 90d.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
}

/// `tollgate authorize`: the request to decide, and who asks.
#[derive(Args)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    #[arg(long)]
    pub tenant: String,
    /// Authenticate with this token (as `Authorization: Bearer`).
    #[arg(long, conflicts_with = "user")]
    pub token: Option<String>,
    /// Decide for this user instead of authenticating a token.
    #[arg(long)]
    pub user: Option<String>,
    /// Comma-separated roles of --user.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Comma-separated scopes of --user.
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// --user authenticated with multi-factor authentication.
    #[arg(long)]
    pub mfa: bool,
    #[arg(long, default_value = "GET")]
    pub method: String,
    #[arg(long)]
    pub path: String,
    /// A request header, `Name: value`; repeat for several.
    #[arg(long = "header")]
    pub headers: Vec<String>,
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
