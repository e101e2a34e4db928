//! Listeners, connections, graceful shutdown. [`Server::bind`] opens every socket (so that a
//! port conflict is an error before anything is announced), [`Server::serve`] runs until the
//! shutdown token fires, then drains.

pub mod admin;
mod conn;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::Auditor;
use crate::config::{Config, Gateway};
use crate::identity::jwks::JwksCache;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::tenants::store::Store;
use crate::upstream::UpstreamClient;

use crate::state::{ConnInfo, Shared};

/// A server whose sockets are open, ready to serve.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
    admin: TcpListener,
    tls: Option<(TlsAcceptor, tls::Reloader)>,
    http: Arc<conn::Protocols>,
    max_connections: usize,
    drain_timeout: Duration,
    config: Config,
    /// The external authorizer's listeners, in `config.authorizers` order.
    authorizers: Vec<TcpListener>,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, String> {
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|e| format!("cannot listen on {} (admin): {e}", config.admin.listen))?;
        let tls = config.server.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut authorizers = Vec::new();
        for a in &config.authorizers {
            authorizers.push(TcpListener::bind(a.listen).await.map_err(|e| {
                format!(
                    "cannot listen on {} (authorizer for {}): {e}",
                    a.listen, a.gateway
                )
            })?);
        }
        let tenant_store = Arc::new(
            config
                .tenancy
                .as_ref()
                .map_or(Ok(Store::Files), |t| Store::open(&t.store))?,
        );
        let image = crate::live::first_image(&tenant_store).await?;
        let snapshot =
            Snapshot::load_with(config.clone(), &image).map_err(|errors| errors.join("\n"))?;
        snapshot.log_warnings();
        let limits = &config.server.limits;
        let http = conn::Protocols::new(limits, tls.is_some() || config.server.h2c);
        let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
        metrics.set_max_tenants(config.metrics_max_tenants);
        let auditor = config
            .audit
            .as_ref()
            .map(|audit| Auditor::start(audit, metrics.clone()).map(Arc::new))
            .transpose()?;
        let metrics_for_access = metrics.access_log_dropped.clone();
        let shared = Shared {
            client: UpstreamClient::new(&config.upstream)?,
            metrics,
            auditor,
            in_flight: Semaphore::new(limits.max_in_flight),
            tasks: TaskTracker::new(),
            draining: AtomicBool::new(false),
            snapshot: ArcSwap::from_pointee(snapshot),
            jwks: JwksCache::new(),
            limits: Limits::open(&config.limits)?,
            access: crate::access::Access::start(config.log.access, metrics_for_access),
            tenant_store,
            writer: std::sync::Mutex::new(()),
        };
        Ok(Server {
            shared: Arc::new(shared),
            listener,
            admin,
            tls,
            http: Arc::new(http),
            max_connections: limits.max_connections,
            drain_timeout: config.server.drain_timeout,
            config,
            authorizers,
        })
    }

    /// The proxy listener's address (useful when the configuration asked for port 0).
    pub(crate) fn proxy_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub(crate) fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight requests finish for up
    /// to the drain timeout, and returns.
    pub async fn serve(self, shutdown: CancellationToken) {
        let Server {
            shared,
            listener,
            admin,
            tls,
            http,
            max_connections,
            drain_timeout,
            config,
            authorizers,
        } = self;
        announce(&listener, &admin, &authorizers, tls.is_some());
        summary(&shared.snapshot.load(), shared.access.is_some());
        let stop_background = CancellationToken::new();
        let admin_task = tokio::spawn(admin::serve(admin, shared.clone(), stop_background.clone()));
        let flush_interval = config.limits.flush_interval;
        let listeners: Vec<(bool, bool)> = config
            .authorizers
            .iter()
            .map(|a| (a.tls, a.gateway == Gateway::EnvoyGrpc))
            .collect();
        let grpc = Arc::new(conn::Protocols::new(&config.server.limits, true));
        tokio::spawn(crate::reload::run(
            shared.clone(),
            config,
            stop_background.clone(),
        ));
        tokio::spawn(crate::live::follow(shared.clone(), stop_background.clone()));
        let housekeeping = tokio::spawn(housekeeping(
            shared.clone(),
            flush_interval,
            stop_background.clone(),
        ));
        let acceptor = tls.map(|(acceptor, reloader)| {
            tokio::spawn(reloader.run(shared.metrics.clone(), stop_background.clone()));
            acceptor
        });

        let drain = CancellationToken::new();
        let connections = Arc::new(Semaphore::new(max_connections));
        let accept = Accept {
            shared: &shared,
            drain: &drain,
            connections: &connections,
            shutdown: &shutdown,
        };
        // gRPC is HTTP/2 (with prior knowledge in plaintext, by ALPN over TLS).
        let authorizing = authorizers.iter().zip(&listeners).enumerate().map(
            |(i, (listener, &(tls, grpc_only)))| {
                let acceptor = acceptor.clone().filter(|_| tls);
                let protocols = if grpc_only { &grpc } else { &http };
                accept.run(listener, (acceptor, protocols), Some(i))
            },
        );
        tokio::join!(
            accept.run(&listener, (acceptor.clone(), &http), None),
            futures_util::future::join_all(authorizing)
        );

        drop(listener);
        drain_and_stop(&shared, &drain, drain_timeout).await;
        stop_background.cancel();
        let _ = admin_task.await;
        // Housekeeping ends with a last flush of the usage store.
        let _ = housekeeping.await;
        // Every audit record queued so far is written before the process exits.
        if let Some(auditor) = shared.auditor.clone() {
            let _ = tokio::task::spawn_blocking(move || auditor.close()).await;
        }
        tracing::info!("stopped");
    }
}

/// What accepting connections needs, for each listener.
struct Accept<'a> {
    shared: &'a Arc<Shared>,
    drain: &'a CancellationToken,
    connections: &'a Arc<Semaphore>,
    shutdown: &'a CancellationToken,
}

impl Accept<'_> {
    /// Accepts until shutdown, with TLS when there is an acceptor, speaking `http`.
    /// `authorizer`: connections get authorizer mode for that listener.
    async fn run(
        &self,
        listener: &TcpListener,
        (acceptor, http): (Option<TlsAcceptor>, &Arc<conn::Protocols>),
        authorizer: Option<usize>,
    ) {
        loop {
            // Waiting for a connection slot before accepting applies back-pressure in the
            // kernel's accept queue instead of accepting and dropping.
            let permit = tokio::select! {
                () = self.shutdown.cancelled() => return,
                permit = self.connections.clone().acquire_owned() => permit,
            };
            let Ok(permit) = permit else { return };
            let accepted = tokio::select! {
                () = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                peer: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
                tls: acceptor.is_some(),
                authorizer,
            };
            self.shared.tasks.spawn(conn::serve(
                stream,
                info,
                acceptor.clone(),
                self.shared.clone(),
                http.clone(),
                self.drain.clone(),
                permit,
            ));
        }
    }
}

/// Writes quota usage behind (every `flush_interval`) and sweeps idle rate-limit keys; flushes
/// one last time when stopped.
async fn housekeeping(shared: Arc<Shared>, flush_interval: Duration, stop: CancellationToken) {
    let flush = || match shared.limits.flush() {
        Ok(0) => {}
        Ok(_) => shared
            .metrics
            .store_flushes
            .with_label_values(&["ok"])
            .inc(),
        Err(e) => {
            shared
                .metrics
                .store_flushes
                .with_label_values(&["error"])
                .inc();
            tracing::error!(error = %e, "writing quota usage failed; will retry");
        }
    };
    let mut flushes = tokio::time::interval(flush_interval);
    let mut sweeps = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                flush();
                return;
            }
            _ = flushes.tick() => flush(),
            _ = sweeps.tick() => {
                let keys = shared.limits.sweep();
                shared.metrics.rate_limit_keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
            }
        }
    }
}
/// The one start-up line with every bound address (tests that ask for port 0 read it back).
fn announce(listener: &TcpListener, admin: &TcpListener, authorizers: &[TcpListener], tls: bool) {
    let show = |addr: std::io::Result<SocketAddr>| {
        addr.map_or_else(|e| format!("unknown ({e})"), |a| a.to_string())
    };
    let authorizers: Vec<String> = authorizers.iter().map(|l| show(l.local_addr())).collect();
    tracing::info!(
        proxy = %show(listener.local_addr()),
        admin = %show(admin.local_addr()),
        authorizers = %authorizers.join(","),
        tls,
        "listening"
    );
}

/// What this process serves, in one line: tenants, plans, routes, policy sets, limits backend,
/// audit sinks, access log.
fn summary(snapshot: &Snapshot, access: bool) {
    let config = &snapshot.config;
    let (tenants, plans) = snapshot
        .tenants
        .as_ref()
        .map_or((0, 0), |d| (d.tenants().count(), d.plans.len()));
    let (routes, policy_sets) = snapshot
        .authz
        .as_ref()
        .map_or((0, 0), |a| (a.routes.all().len(), a.policies.sets()));
    let limits = match config.limits.backend {
        crate::config::Backend::Memory => "memory",
        crate::config::Backend::Embedded => "embedded",
        crate::config::Backend::Redis => "redis",
    };
    let audit = config.audit.as_ref().map_or_else(
        || "off".to_string(),
        |a| {
            let mut sinks: Vec<String> = a
                .file
                .iter()
                .map(|f| f.path.display().to_string())
                .collect();
            if a.stdout {
                sinks.push("stdout".into());
            }
            sinks.join(",")
        },
    );
    tracing::info!(
        tenants,
        plans,
        routes,
        policy_sets,
        jwt_issuers = config.identity.jwt.len(),
        limits = %limits,
        audit = %audit,
        access_log = %if access { "stdout" } else { "off" },
        "loaded"
    );
}

/// Stops taking requests and waits up to `timeout` for those in flight.
async fn drain_and_stop(shared: &Shared, drain: &CancellationToken, timeout: Duration) {
    shared.draining.store(true, Ordering::Relaxed);
    tracing::info!(timeout = %humantime::format_duration(timeout), "shutting down: draining connections");
    drain.cancel();
    shared.tasks.close();
    if tokio::time::timeout(timeout, shared.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = shared.tasks.len(),
            "drain timeout reached; closing remaining connections"
        );
    }
}
