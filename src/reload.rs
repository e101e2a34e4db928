//! Reloading tenants, plans, API keys, JWT keys, routes and policies: when a watched file changes, or on SIGHUP, a
//! new snapshot is built from the same main configuration. A snapshot that fails validation is
//! refused whole; the old one keeps serving, every error is logged with its file and line, and
//! `tollgate_config_reloads_total{result="error"}` counts it. Listener and upstream settings in
//! the main file need a restart.
//!
//! Everything a reload does (noticing changes, reading, parsing, Cedar validation) happens on a
//! thread of its own, never on a runtime worker: requests go on being served by the old snapshot
//! until the new one is swapped in whole. Policy sets whose files did not change are taken from
//! the old snapshot as they are.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::Shared;
use crate::watch::{FileWatch, Notifier};

/// What wakes the reload thread.
enum Wake {
    /// inotify saw something in a watched directory.
    Changed,
    /// SIGHUP: reload even if no file looks changed.
    Hangup,
    Stop,
}

/// How long the reload thread lets a burst of file events settle before it looks.
const SETTLE: Duration = Duration::from_millis(20);

pub async fn run(shared: Arc<Shared>, config: Config, stop: CancellationToken) {
    let (wake, woken) = channel();
    let notify = wake.clone();
    let spawned = std::thread::Builder::new()
        .name("tollgate-reload".into())
        .spawn(move || reload_thread(&shared, &config, &woken, notify));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the reload thread; configuration changes need a restart");
        return;
    }
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file changes only");
            None
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = wake.send(Wake::Stop);
                return;
            }
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                let _ = wake.send(Wake::Hangup);
            }
        }
    }
}

fn reload_thread(shared: &Shared, config: &Config, woken: &Receiver<Wake>, wake: Sender<Wake>) {
    let interval = config
        .tenancy
        .as_ref()
        .map_or(Duration::from_secs(2), |t| t.reload_interval);
    let mut notifier = Notifier::new(move || {
        let _ = wake.send(Wake::Changed);
    });
    let current = shared.snapshot.load_full();
    let mut files = current.watched_files();
    notifier.watch(&files, &current.watched_dirs());
    let mut watch = FileWatch::new(files.clone());
    drop(current);
    loop {
        let mut asked = match woken.recv_timeout(interval) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Wake::Hangup) => true,
            Ok(Wake::Changed) => {
                std::thread::sleep(SETTLE);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
        };
        // One look for a whole burst of events.
        for pending in woken.try_iter() {
            match pending {
                Wake::Stop => return,
                Wake::Hangup => asked = true,
                Wake::Changed => {}
            }
        }
        let current = shared.snapshot.load_full();
        let now = current.watched_files();
        if watch.changed_set(now.clone()) || asked {
            reload(shared, config);
        }
        if now != files {
            notifier.watch(&now, &shared.snapshot.load().watched_dirs());
            files = now;
        }
    }
}

fn reload(shared: &Shared, config: &Config) {
    // A tenant change made meanwhile waits, and is applied to the new snapshot.
    let _writer = shared
        .writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let previous = shared.snapshot.load_full();
    match previous.reload(config.clone()) {
        Ok(snapshot) => {
            let generation = snapshot.generation;
            snapshot.log_warnings();
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
