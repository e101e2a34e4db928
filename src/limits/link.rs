//! The connection to Redis and the circuit breaker in front of it.
//!
//! One multiplexed connection is shared by every request. When there is none, one connect attempt
//! at a time runs in a task of its own, bounded by the configured timeout; requests wait for it
//! without holding any lock, each only as long as its own call may take, and all of them are
//! released the moment the breaker opens. A connection that broke is dropped at once, so the
//! next call connects afresh instead of waiting on a library's reconnect backoff: after an
//! outage, Redis is used again one cooldown plus one probe later.
//!
//! The breaker opens after `breaker_failures` failures in a row and stays open for
//! `breaker_cooldown`; then one request probes (half-open) while the others keep falling back.
//!
//! Each connect also reads Redis's clock (`TIME`), and each script reply carries it, so calls can
//! carry a deadline in Redis time (see `redis.rs`).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, watch};

/// The local clock in Unix ms.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type Attempt = watch::Receiver<Option<Result<(u64, MultiplexedConnection), String>>>;

#[derive(Default)]
struct Slot {
    /// The connection and its number.
    connection: Option<(u64, MultiplexedConnection)>,
    /// The connect attempt under way.
    attempt: Option<Attempt>,
}

pub(crate) struct Link {
    client: redis::Client,
    timeout: Duration,
    failures_to_open: u32,
    cooldown: Duration,
    slot: Arc<Mutex<Slot>>,
    numbers: Arc<AtomicU64>,
    /// Redis time minus local time, in ms, as last seen.
    offset_ms: Arc<AtomicI64>,
    failures: AtomicU32,
    breaker: Mutex<Breaker>,
    /// Woken when the breaker opens: requests waiting on Redis fall back at once.
    opened: Notify,
}

#[derive(Default)]
struct Breaker {
    open_until: Option<Instant>,
    /// When the probe of a half-open breaker started; another may start a timeout later (a
    /// probe whose request went away never reports).
    probe_since: Option<Instant>,
}

/// Why a call did not reach a verdict.
pub(crate) enum Failure {
    /// Redis failed or did not answer in time: the breaker counts it.
    Redis(String),
    /// The breaker opened while the call waited.
    Released,
}

impl Link {
    pub fn new(
        client: redis::Client,
        timeout: Duration,
        failures_to_open: u32,
        cooldown: Duration,
    ) -> Link {
        Link {
            client,
            timeout,
            failures_to_open,
            cooldown,
            slot: Arc::default(),
            numbers: Arc::default(),
            offset_ms: Arc::default(),
            failures: AtomicU32::new(0),
            breaker: Mutex::default(),
            opened: Notify::new(),
        }
    }

    /// Now on Redis's clock, as far as this process knows it, in Unix ms.
    pub(crate) fn redis_now_ms(&self) -> i64 {
        i64::try_from(now_ms()).unwrap_or(i64::MAX) + self.offset_ms.load(Ordering::Relaxed)
    }

    /// The deadline, on Redis's clock, of a call sent now with `timeout`: three quarters of it,
    /// so that an answer made just before can still arrive in time.
    pub fn deadline(&self, timeout: Duration) -> i64 {
        let margin = i64::try_from(timeout.as_millis() * 3 / 4).unwrap_or(i64::MAX);
        self.redis_now_ms().saturating_add(margin)
    }

    /// Learns Redis's clock from a reply made at `redis_ms`.
    pub(crate) fn saw_redis_time(&self, redis_ms: i64) {
        let local = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        self.offset_ms.store(redis_ms - local, Ordering::Relaxed);
    }

    fn lock_slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the breaker is open (not closed: Redis is tried by one probe at most).
    pub(crate) fn is_open(&self) -> bool {
        self.lock_breaker().open_until.is_some()
    }

    /// Whether this request may call Redis: the breaker is closed, or it is past its cooldown
    /// and this request is the one probe.
    pub fn admit(&self) -> bool {
        let now = Instant::now();
        let mut breaker = self.lock_breaker();
        match breaker.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if breaker.probe_since.is_some_and(|s| now < s + self.timeout) => false,
            Some(_) => {
                breaker.probe_since = Some(now);
                true
            }
        }
    }

    /// A call succeeded; true if Redis was failing before (time to reconcile).
    pub fn succeeded(&self) -> bool {
        let was_failing = self.failures.swap(0, Ordering::AcqRel) > 0;
        *self.lock_breaker() = Breaker::default();
        was_failing
    }

    pub fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.failures_to_open {
            *self.lock_breaker() = Breaker {
                open_until: Some(Instant::now() + self.cooldown),
                probe_since: None,
            };
            self.opened.notify_waiters();
        }
    }

    /// Runs `call` on the connection within the timeout, connecting first if needed. A call the
    /// breaker released, or that timed out, leaves the connection in place (a paused Redis
    /// answers later); a connection error drops it.
    pub async fn run<T, F>(
        &self,
        timeout: Duration,
        call: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Result<T, Failure>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let released = self.opened.notified();
        let work = async {
            let (number, connection) = self.connection().await.map_err(Failure::Redis)?;
            call(connection).await.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.drop_connection(number);
                }
                Failure::Redis(e.to_string())
            })
        };
        tokio::select! {
            done = tokio::time::timeout(timeout, work) => done.unwrap_or_else(|_| {
                Err(Failure::Redis(format!("Redis did not answer within {timeout:?}")))
            }),
            () = released => Err(Failure::Released),
        }
    }

    fn drop_connection(&self, number: u64) {
        let mut slot = self.lock_slot();
        if slot.connection.as_ref().is_some_and(|(n, _)| *n == number) {
            slot.connection = None;
        }
    }

    /// The connection, or the outcome of the connect attempt under way (started if none is).
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), String> {
        let mut attempt = {
            let mut slot = self.lock_slot();
            if let Some(connection) = &slot.connection {
                return Ok(connection.clone());
            }
            match &slot.attempt {
                Some(attempt) => attempt.clone(),
                None => {
                    let attempt = self.connect();
                    slot.attempt = Some(attempt.clone());
                    attempt
                }
            }
        };
        let outcome = attempt
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the connect attempt ended".to_string())?;
        outcome
            .clone()
            .unwrap_or_else(|| Err("no connection".into()))
    }

    /// Starts a connect attempt in a task of its own: it completes (and is kept) even when every
    /// request that waited for it gave up.
    fn connect(&self) -> Attempt {
        let (done, attempt) = watch::channel(None);
        let client = self.client.clone();
        let timeout = self.timeout;
        let slot = self.slot.clone();
        let number = self.numbers.fetch_add(1, Ordering::Relaxed);
        let offset = self.offset_ms.clone();
        tokio::spawn(async move {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(None);
            let connect = async {
                let mut connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                let (seconds, micros): (i64, i64) = redis::cmd("TIME")
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| e.to_string())?;
                let local = i64::try_from(now_ms()).unwrap_or(i64::MAX);
                offset.store(seconds * 1000 + micros / 1000 - local, Ordering::Relaxed);
                Ok::<_, String>(connection)
            };
            let result = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(connection)) => Ok((number, connection)),
                Ok(Err(e)) => Err(format!("cannot connect to Redis: {e}")),
                Err(_) => Err(format!("cannot connect to Redis within {timeout:?}")),
            };
            {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                slot.attempt = None;
                if let Ok(connection) = &result {
                    slot.connection = Some(connection.clone());
                }
            }
            let _ = done.send(Some(result));
        });
        attempt
    }
}
