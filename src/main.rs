//! The `tollgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use tollgate::audit::query;
use tollgate::cli::{
    AuthorizeArgs, Cli, Command, ConfigFile, Format, KeysCommand, TestFormat, UsageFormat,
};
use tollgate::config::Config;
use tollgate::demo::{self, DemoAddrs};
use tollgate::server::Server;
use tollgate::{commands, explain};

/// mimalloc: requests allocate on the workers and audit records are freed on the writer thread,
/// a pattern glibc's allocator pays for in lock traffic and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `tollgate serve`: the proxy until a shutdown signal.
fn serve(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => run_on(config.server.workers, async move {
            tollgate::logging::init(&config.log);
            for path in tollgate::identity::shipped::shipped_keys(&config) {
                tracing::warn!("{}", tollgate::identity::shipped::warning(&path));
            }
            let server = Server::bind(config).await?;
            server.serve(shutdown_signal()).await;
            Ok(ExitCode::SUCCESS)
        }),
        Err(e) => fail(&e.to_string()),
    }
}

/// `tollgate audit`: the matching records streamed, one per line; unreadable lines are warned
/// about; a closed pipe (`| head -1`) ends it quietly.
/// Prints a verdict's text: 0 when nothing is wrong, 1 when something is, 2 on a mistake.
fn verdict(result: Result<(String, bool), String>) -> ExitCode {
    match result {
        Ok((text, negative)) => {
            print!("{text}");
            ExitCode::from(if negative { NEGATIVE } else { 0 })
        }
        Err(e) => fail(&e),
    }
}

fn audit(names: &[PathBuf], filter: &query::Filter<'_>, follow: bool) -> ExitCode {
    let files = match query::files(names) {
        Ok(files) => files,
        Err(e) => return fail(&e),
    };
    let mut out = query::Stdout::new(follow);
    match query::Query::new(filter).run(&files, follow, &mut out) {
        Ok(_) => {
            out.finish();
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files, config } => check(files.into_iter().chain(config).collect()),
        Command::Token {
            config,
            tenant,
            sub,
            roles,
            scopes,
            ttl,
            mfa,
        } => print(commands::load(&config.file).and_then(|snapshot| {
            let request = commands::TokenRequest {
                tenant: tenant.as_deref(),
                subject: &sub,
                roles: &roles,
                scopes: &scopes,
                mfa,
                ttl,
            };
            commands::token(&snapshot, &request)
        })),
        Command::Authorize(args) => authorize(args),
        Command::Test {
            config,
            dir,
            format,
        } => test(&config, dir, format),
        Command::Usage {
            config,
            tenant,
            period,
            format,
        } => usage(&config, tenant.as_deref(), period.as_deref(), format),
        Command::Audit {
            command: Some(tollgate::cli::AuditCommand::Verify { paths }),
            ..
        } => verdict(
            query::files(&paths)
                .and_then(|files| tollgate::audit::verify::verify(&files))
                .map(|report| (report.text(), report.broken.is_some())),
        ),
        Command::Replay {
            audit,
            config,
            tenant,
            since,
            format,
        } => verdict(
            explain::replay::run(&audit, &config, tenant.as_deref(), since).map(|r| {
                let json = matches!(format, Format::Json);
                (r.render(json), r.changed())
            }),
        ),
        Command::Audit {
            command: None,
            file,
            follow,
            tenant,
            decision,
            since,
        } => {
            let filter = query::Filter {
                tenant: tenant.as_deref(),
                decision: decision.map(|d| d.as_str()),
                since,
            };
            audit(&file, &filter, follow)
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    config,
                    tenant,
                    roles,
                    scopes,
                    name,
                    expires_in,
                },
        } => print(commands::load(&config.file).and_then(|snapshot| {
            let request = commands::KeyRequest {
                tenant: &tenant,
                name: name.as_deref(),
                roles: &roles,
                scopes: &scopes,
                expires_in,
            };
            commands::create_key(&snapshot, &request)
        })),
        Command::Serve { config } => serve(&config.file),
        Command::Tenants { admin, command } => tenants(&admin, command),
        Command::Demo {
            listen,
            admin_listen,
            upstream_listen,
            authorizer_listen,
            dir,
        } => run(async move {
            let addrs = DemoAddrs {
                listen,
                admin: admin_listen,
                upstream: upstream_listen,
                authorizer: authorizer_listen,
            };
            demo::run(addrs, dir.as_deref(), shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// `tollgate authorize`: explains the decision; exit 1 on a deny.
fn authorize(args: AuthorizeArgs) -> ExitCode {
    let snapshot = match commands::load(&args.config.file) {
        Ok(snapshot) => snapshot,
        Err(e) => return fail(&e),
    };
    let mut pairs = args.headers;
    if let Some(token) = &args.token {
        pairs.push(("authorization".into(), format!("Bearer {token}")));
    }
    let spec = args.user.map(|id| explain::PrincipalSpec {
        id,
        roles: args.roles,
        scopes: args.scopes,
        mfa: args.mfa,
        ..Default::default()
    });
    let ask = explain::Ask {
        tenant: &args.tenant,
        principal: spec.as_ref(),
        method: &args.method,
        path: &args.path,
        headers: &pairs,
        client_ip: args.ip,
    };
    run(async {
        let outcome = explain::explain(&snapshot, &ask).await?;
        match args.format {
            Format::Text => print!("{}", outcome.text()),
            Format::Json => println!("{}", outcome.json()),
        }
        Ok(if outcome.allowed {
            ExitCode::SUCCESS
        } else {
            NEGATIVE.into()
        })
    })
}

/// `tollgate test`: runs the policy test cases; exit 1 if one fails.
fn test(config: &ConfigFile, dir: Option<PathBuf>, format: TestFormat) -> ExitCode {
    let snapshot = match commands::load(&config.file) {
        Ok(snapshot) => snapshot,
        Err(e) => return fail(&e),
    };
    let dir = match (dir, &snapshot.config.authorization) {
        (Some(dir), _) => dir,
        (None, Some(a)) => a.policies_dir.join("tests"),
        (None, None) => return fail("the configuration has no authorization section"),
    };
    run(async {
        let report = tollgate::policy_tests::run(&snapshot, &dir).await?;
        match format {
            TestFormat::Text => print!("{}", report.text()),
            TestFormat::Junit => print!("{}", report.junit()),
        }
        Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            NEGATIVE.into()
        })
    })
}

/// `tollgate usage`: quota usage, from the running Tollgate or the store.
fn usage(
    config: &ConfigFile,
    tenant: Option<&str>,
    period: Option<&str>,
    format: UsageFormat,
) -> ExitCode {
    let snapshot = match commands::load(&config.file) {
        Ok(snapshot) => snapshot,
        Err(e) => return fail(&e),
    };
    run(async {
        let (reports, from) = commands::usage(&snapshot, tenant, period).await?;
        eprintln!("usage from {from}");
        match format {
            UsageFormat::Table => print!("{}", tollgate::limits::usage::table(&reports)),
            UsageFormat::Json => println!("{}", serde_json::Value::Array(reports)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tollgate tenants`: 0 when done, 1 when the API refused something, 2 when it could not be
/// asked (no listener, an unreadable file).
fn tenants(admin: &tollgate::cli::AdminArgs, command: tollgate::cli::TenantsCommand) -> ExitCode {
    use tollgate::tenant_commands as t;
    let api = t::Admin {
        addr: admin.admin,
        token: admin.token.as_deref(),
    };
    let done = t::run(&api, &command);
    match done {
        Ok(done) if done.refused => {
            eprintln!("{}", done.output);
            ExitCode::from(NEGATIVE)
        }
        Ok(done) => {
            println!("{}", done.output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(USAGE)
        }
    }
}

/// Exit codes: 0 for a positive answer (allowed, valid, passed, done), 1 for a negative one (a
/// deny, an invalid configuration, a failing policy test), 2 for a usage or input error (an
/// unknown tenant, a bad path or argument, a file that cannot be read), as clap does for its own.
const NEGATIVE: u8 = 1;
const USAGE: u8 = 2;

/// `tollgate check`: every error of every file; exit 1 when there is one.
fn check(mut files: Vec<PathBuf>) -> ExitCode {
    if files.is_empty() {
        files.push(
            std::env::var_os("TOLLGATE_CONFIG")
                .map_or_else(|| PathBuf::from("config/tollgate.yaml"), PathBuf::from),
        );
    }
    let (result, warnings) = commands::check(&files);
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            NEGATIVE.into()
        }
    }
}

/// Prints a command's result: the text on stdout and exit 0, or the error on stderr and exit 2.
fn print(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn run(main: impl Future<Output = Result<ExitCode, String>>) -> ExitCode {
    run_on(0, main)
}

/// Runs `main` on `workers` runtime threads (0: one per CPU core).
fn run_on(workers: usize, main: impl Future<Output = Result<ExitCode, String>>) -> ExitCode {
    // One worker: a single-threaded scheduler, which has no work stealing to pay for.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if workers > 1 {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(main).unwrap_or_else(|e| fail(&e))
}

/// A usage or input error: `error: …` on stderr, exit 2.
fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    USAGE.into()
}

/// SIGXFSZ's number on Linux.
const SIGXFSZ: i32 = 25;

/// A token cancelled on SIGTERM or SIGINT. Also takes SIGXFSZ, whose default kills the process:
/// a file-size limit reached by the audit file is a failed write like a full disk (the auditor
/// turns unhealthy or counts losses), not a crash.
fn shutdown_signal() -> CancellationToken {
    // A handler once registered stays for the life of the process.
    if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
    {
        tracing::warn!(error = %e, "cannot take SIGXFSZ; a file-size limit would end the process");
    }
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
