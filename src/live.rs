//! Tenants as live data: changes made through the admin API, written to the tenant store and
//! applied to the served snapshot one tenant at a time; with the Redis store, every other
//! replica's changes followed from the store's channel.
//!
//! All snapshot writers (this module and the reload thread) take `Shared.writer`, so a change
//! can never be lost to a reload that started before it. A change is applied in revision order:
//! the next revision is applied alone (time flat in the number of tenants); an older one was
//! applied already; a gap means a change was missed, and the whole image is read again (a
//! resync), as it is after every reconnect, and whenever the store's revision, polled each
//! second, is ahead of the snapshot's.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::tenants::Spec;
use crate::tenants::store::{Change, Expect, Image, Outcome, Store, Write};

/// How often the follower compares the store's revision with the snapshot's.
const POLL: Duration = Duration::from_secs(1);
/// The longest pause between attempts to reach the store again.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The store's image at start-up: an embedded store that cannot be read stops the start; a
/// Redis store that cannot be reached starts with the files' tenants, and the follower catches
/// up once Redis answers.
pub async fn first_image(store: &Store) -> Result<Image, String> {
    match (store.image().await, store) {
        (Ok(image), _) => Ok(image),
        (Err(e), Store::Redis(_)) => {
            tracing::error!(error = %e, "the tenant store is unreachable; serving the tenants file's tenants until it answers");
            Ok(Image::default())
        }
        (Err(e), _) => Err(e),
    }
}

/// Runs `change` on the current snapshot under the writer lock, off the runtime's workers, and
/// serves what it returns.
async fn swap<T: Send + 'static>(
    shared: &Arc<Shared>,
    change: impl FnOnce(&Snapshot) -> (Option<Snapshot>, T) + Send + 'static,
) -> Option<T> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let _writer = shared
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = shared.snapshot.load_full();
        let (next, value) = change(&current);
        if let Some(next) = next {
            let revision = i64::try_from(next.store_revision).unwrap_or(i64::MAX);
            shared.snapshot.store(Arc::new(next));
            shared.metrics.tenant_store_revision.set(revision);
        }
        value
    })
    .await
    .ok()
}

/// Applies one change of revision `revision` if it is the next one; `false` when it is not (a
/// gap: resync). Older ones are skipped.
async fn apply(shared: &Arc<Shared>, revision: u64, id: String, spec: Option<Spec>) -> bool {
    let metrics = shared.metrics.clone();
    swap(shared, move |current| {
        if revision <= current.store_revision {
            return (None, true);
        }
        if revision != current.store_revision + 1 {
            return (None, false);
        }
        let (next, refused) = current.apply(revision, &id, spec);
        let result = if refused.is_empty() {
            "applied"
        } else {
            "refused"
        };
        metrics.tenant_changes.with_label_values(&[result]).inc();
        for error in &refused {
            tracing::error!(revision, "the tenant store: not served: {error}");
        }
        (Some(next), true)
    })
    .await
    .unwrap_or(false)
}

/// Reads the whole image and rebuilds the snapshot with it.
async fn resync(shared: &Arc<Shared>, store: &Store) -> Result<(), String> {
    let image = store.image().await?;
    let metrics = shared.metrics.clone();
    let outcome = swap(shared, move |current| {
        if image.revision < current.store_revision {
            tracing::error!(
                from = current.store_revision,
                to = image.revision,
                "the tenant store's revision went back: Redis lost its data (configure persistence); following it"
            );
        }
        match current.resync(&image) {
            Ok(next) => {
                next.log_warnings();
                metrics.tenant_changes.with_label_values(&["resync"]).inc();
                (Some(next), Ok(()))
            }
            Err(errors) => (None, Err(errors.join("; "))),
        }
    })
    .await;
    outcome.unwrap_or_else(|| Err("the resync did not run".into()))
}

/// Writes one change through the store and applies it here before answering, so that whoever
/// made it reads it back from this replica at once. The outcome, and the snapshot it produced.
pub async fn write(
    shared: &Arc<Shared>,
    id: &str,
    change: Write,
    expect: Expect,
) -> Result<Outcome, String> {
    let store = shared.tenant_store.clone();
    let spec = match &change {
        Write::Put(spec, _) => Some((**spec).clone()),
        Write::Delete => None,
    };
    let outcome = store.write(id, change, expect).await?;
    if let Outcome::Written(revision) = outcome
        && !apply(shared, revision, id.to_string(), spec).await
    {
        // Another replica's change came first and is not here yet: catch up with all of it.
        resync(shared, &store).await?;
    }
    Ok(outcome)
}

/// Follows the Redis store until `stop`: subscribes, resyncs, then applies each change; on any
/// failure starts again, after a pause that grows to a second.
pub async fn follow(shared: Arc<Shared>, stop: CancellationToken) {
    let store = shared.tenant_store.clone();
    let Store::Redis(redis) = &*store else { return };
    let mut pause = Duration::from_millis(50);
    loop {
        let started = std::time::Instant::now();
        let followed = async {
            let mut changes = redis.changes().await?;
            // Subscribed first, then read: nothing written in between is missed.
            resync(&shared, &store).await?;
            let mut poll = tokio::time::interval(POLL);
            loop {
                tokio::select! {
                    change = changes.next() => match change {
                        Some(Ok(Change { revision, id, spec })) => {
                            if !apply(&shared, revision, id, spec).await {
                                resync(&shared, &store).await?;
                            }
                        }
                        Some(Err(e)) => return Err::<(), String>(e),
                        None => return Err("the tenant store (redis): the subscription ended".into()),
                    },
                    _ = poll.tick() => {
                        if redis.revision().await? > shared.snapshot.load().store_revision {
                            resync(&shared, &store).await?;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            result = followed => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "following the tenant store; trying again");
                }
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            pause = Duration::from_millis(50);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}
