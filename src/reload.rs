//! Reloading tenants, plans, API keys, JWT keys, routes and policies: when a watched file changes, or on SIGHUP, a
//! new snapshot is built from the same main configuration. A snapshot that fails validation is
//! refused whole; the old one keeps serving, every error is logged with its file and line, and
//! `tollgate_config_reloads_total{result="error"}` counts it. Listener and upstream settings in
//! the main file need a restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::Shared;
use crate::snapshot::Snapshot;
use crate::watch::FileWatch;

pub async fn run(shared: Arc<Shared>, config: Config, stop: CancellationToken) {
    let interval = config
        .tenancy
        .as_ref()
        .map_or(Duration::from_secs(2), |t| t.reload_interval);
    let mut watch = FileWatch::new(shared.snapshot.load().watched_files());
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file changes only");
            None
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let asked = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
        };
        let files = shared.snapshot.load().watched_files();
        if watch.changed_set(files) || asked {
            reload(&shared, &config);
        }
    }
}

fn reload(shared: &Shared, config: &Config) {
    let generation = shared.snapshot.load().generation + 1;
    match Snapshot::load(config.clone(), generation) {
        Ok(snapshot) => {
            shared.snapshot.store(Arc::new(snapshot));
            shared
                .metrics
                .config_reloads
                .with_label_values(&["ok"])
                .inc();
            tracing::info!(generation, "configuration reloaded");
        }
        Err(errors) => {
            shared
                .metrics
                .config_reloads
                .with_label_values(&["error"])
                .inc();
            for error in &errors {
                tracing::error!(%error, "reload refused; the previous configuration keeps serving");
            }
        }
    }
}
