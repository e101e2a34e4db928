//! The `tollgate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use tollgate::config::Config;
use tollgate::demo::{self, DemoAddrs};
use tollgate::server::Server;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Policy-enforcing reverse proxy for multi-tenant SaaS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The main configuration file.
        #[arg(
            long,
            short,
            env = "TOLLGATE_CONFIG",
            default_value = "config/tollgate.yaml"
        )]
        config: PathBuf,
    },
    /// Validate configuration files; exit 0 when all are valid, 1 with every error otherwise.
    Check {
        /// Configuration files to validate.
        #[arg(long, short, required = true, num_args = 1..)]
        config: Vec<PathBuf>,
    },
    /// Run the built-in demo: an echo upstream behind Tollgate with the shipped example config.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        upstream_listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => match Config::load(&config) {
            Ok(config) => run(async move {
                tollgate::logging::init(&config.log);
                let server = Server::bind(config).await?;
                server.serve(shutdown_signal()).await;
                Ok(())
            }),
            Err(e) => fail(&e.to_string()),
        },
        Command::Demo {
            listen,
            admin_listen,
            upstream_listen,
        } => run(async move {
            let addrs = DemoAddrs {
                listen,
                admin: admin_listen,
                upstream: upstream_listen,
            };
            demo::run(addrs, shutdown_signal()).await
        }),
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match Config::load(file) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(main: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// A token cancelled on SIGTERM or SIGINT.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        fire.cancel();
    });
    token
}
