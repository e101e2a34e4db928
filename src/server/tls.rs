//! TLS termination with rustls (aws-lc-rs provider). The certificate is served from an `ArcSwap`, and
//! a background task re-reads the PEM files every `reload_interval`: when their bytes change (a
//! cert-manager rotation, a Kubernetes Secret's symlink swap) the new pair is validated and
//! swapped in; a bad pair is refused, logged and counted, and the old one keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Tls;
use crate::metrics::Metrics;
use crate::pem::load_certified_key;
use crate::watch::FileWatch;

/// Hands rustls whatever certificate is current.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Watches the certificate files and swaps in new certificates.
pub(crate) struct Reloader {
    current: Arc<CurrentCert>,
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Duration,
    watch: FileWatch,
}

/// Builds the acceptor (ALPN `h2`, `http/1.1`) and the reloader that keeps its certificate fresh.
pub(crate) fn acceptor(config: &Tls) -> Result<(TlsAcceptor, Reloader), String> {
    let certified = load_certified_key(&config.cert_file, &config.key_file)?;
    let current = Arc::new(CurrentCert(ArcSwap::from_pointee(certified)));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let reloader = Reloader {
        current,
        cert_file: config.cert_file.clone(),
        key_file: config.key_file.clone(),
        interval: config.reload_interval,
        watch: FileWatch::new(vec![config.cert_file.clone(), config.key_file.clone()]),
    };
    Ok((TlsAcceptor::from(Arc::new(server)), reloader))
}

impl Reloader {
    /// Polls the files until `stop` (see `watch.rs` for why polling).
    pub async fn run(mut self, metrics: Arc<Metrics>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.check(&metrics),
            }
        }
    }

    fn check(&mut self, metrics: &Metrics) {
        if !self.watch.changed() {
            return;
        }
        match load_certified_key(&self.cert_file, &self.key_file) {
            Ok(certified) => {
                self.current.0.store(Arc::new(certified));
                metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                metrics.tls_reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "TLS certificate reload refused; the old certificate keeps serving");
            }
        }
    }
}
