//! Connection state shared by the command and subscription tasks, and the
//! reconnect pacing they use.
//!
//! Owns [`RedisHealth`] (what `/health` and metrics read) and the flags the
//! request paths check to fail fast while a connection is down. It does not
//! connect or reconnect: the tasks in `conn` and `pubsub` do, and report
//! here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::watch;

use crate::error::RedisBackendError;

/// A snapshot of the backend's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisHealth {
    /// Both connections are up: requests are being served and this node
    /// receives its channels' publications.
    pub connected: bool,
    /// The command connection (store, presence, publishing) is up.
    pub commands: bool,
    /// The subscription connection is up and every channel this node needs
    /// is subscribed again.
    pub subscriptions: bool,
    /// The last connection error, if any (kept after recovery, for logs).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<SystemTime>,
    /// How many times a connection was established after a loss (both
    /// connections counted).
    pub reconnects: u64,
}

impl RedisHealth {
    /// Why the backend is unhealthy, for a `/health` answer; `None` when
    /// connected.
    pub fn reason(&self) -> Option<String> {
        if self.connected {
            return None;
        }
        let what = match (self.commands, self.subscriptions) {
            (false, false) => "redis broker: not connected",
            (false, true) => "redis broker: command connection down",
            (true, false) => "redis broker: subscription connection down",
            (true, true) => "redis broker: not connected",
        };
        Some(match &self.last_error {
            Some(err) => format!("{what} ({err})"),
            None => what.to_owned(),
        })
    }
}

/// Which connection a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Commands,
    Subscriptions,
}

/// The shared state behind [`RedisHealth`].
pub(crate) struct Health {
    commands: AtomicBool,
    subscriptions: AtomicBool,
    inner: Mutex<Inner>,
    /// Bumped on every change, for waiters.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    reconnects: u64,
    /// Each link has been up at least once (its next "up" is a reconnect).
    was_up: [bool; 2],
}

impl Health {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            commands: AtomicBool::new(false),
            subscriptions: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            changed: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flag(&self, link: Link) -> &AtomicBool {
        match link {
            Link::Commands => &self.commands,
            Link::Subscriptions => &self.subscriptions,
        }
    }

    pub(crate) fn is_up(&self, link: Link) -> bool {
        self.flag(link).load(Ordering::Acquire)
    }

    pub(crate) fn up(&self, link: Link) {
        {
            let mut inner = self.lock();
            let slot = &mut inner.was_up[link as usize];
            if std::mem::replace(slot, true) {
                inner.reconnects += 1;
            }
            self.flag(link).store(true, Ordering::Release);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn down(&self, link: Link, err: &dyn std::fmt::Display) {
        let was_up = self.flag(link).swap(false, Ordering::AcqRel);
        let message = err.to_string();
        if was_up {
            tracing::warn!(?link, error = %message, "redis connection lost");
        } else {
            tracing::debug!(?link, error = %message, "redis connection attempt failed");
        }
        {
            let mut inner = self.lock();
            inner.last_error = Some(message);
            inner.last_error_at = Some(SystemTime::now());
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The error for a request refused because `link` is down.
    pub(crate) fn unavailable(&self) -> RedisBackendError {
        let last = self.lock().last_error.clone();
        RedisBackendError::Unavailable(last.unwrap_or_else(|| "not connected yet".into()))
    }

    pub(crate) fn snapshot(&self) -> RedisHealth {
        let inner = self.lock();
        let commands = self.is_up(Link::Commands);
        let subscriptions = self.is_up(Link::Subscriptions);
        RedisHealth {
            connected: commands && subscriptions,
            commands,
            subscriptions,
            last_error: inner.last_error.clone(),
            last_error_at: inner.last_error_at,
            reconnects: inner.reconnects,
        }
    }

    /// Waits until `ready(snapshot)` holds, at most `timeout`. Returns the
    /// last snapshot and whether it held.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&RedisHealth) -> bool,
    ) -> (RedisHealth, bool) {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if ready(&snapshot) {
                return (snapshot, true);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    let snapshot = self.snapshot();
                    let held = ready(&snapshot);
                    return (snapshot, held);
                }
            }
        }
    }
}

/// Exponential reconnect delays with jitter: the n-th failure in a row
/// waits a random time between half and all of `min * 2^n`, capped at
/// `max`, so that nodes cut off together do not reconnect in lockstep.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min: min.max(Duration::from_millis(1)),
            max: max.max(min),
            failures: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.min.saturating_mul(factor).min(self.max);
        let floor = ceiling / 2;
        let spread = (ceiling - floor).as_micros() as u64;
        floor + Duration::from_micros(rand::rng().random_range(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let ceiling = (Duration::from_millis(10) * (1 << n)).min(Duration::from_millis(200));
            assert!(*d >= ceiling / 2 && *d <= ceiling, "{n}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn health_tracks_links_errors_and_reconnects() {
        let h = Health::new();
        assert_eq!(
            h.snapshot().reason().as_deref(),
            Some("redis broker: not connected")
        );
        h.up(Link::Commands);
        h.up(Link::Subscriptions);
        let s = h.snapshot();
        assert!(s.connected && s.reason().is_none());
        assert_eq!(s.reconnects, 0);
        h.down(Link::Subscriptions, &"connection reset");
        let s = h.snapshot();
        assert!(!s.connected && s.commands && !s.subscriptions);
        assert_eq!(
            s.reason().as_deref(),
            Some("redis broker: subscription connection down (connection reset)")
        );
        h.up(Link::Subscriptions);
        assert_eq!(h.snapshot().reconnects, 1);
        assert!(
            matches!(h.unavailable(), RedisBackendError::Unavailable(m) if m == "connection reset")
        );
    }
}
