//! [`SqliteStoreConfig`], its defaults, and the [`Clock`] the store reads
//! wall-clock time from.
//!
//! This module only describes settings; opening the database and applying
//! them is [`SqliteStore::open`](crate::SqliteStore::open)'s job. Times are
//! wall-clock milliseconds since the Unix epoch (not `Instant`s), because
//! expiry times are written to the database and must mean the same thing
//! after a restart.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hub::store::DEFAULT_IDEMPOTENCY_TTL;

/// Default for [`SqliteStoreConfig::batch_max_size`].
pub const DEFAULT_BATCH_MAX_SIZE: usize = 1024;

/// Default for [`SqliteStoreConfig::history_meta_ttl`]: 30 days, as the
/// in-memory store.
pub const DEFAULT_HISTORY_META_TTL: Duration = Duration::from_secs(30 * 86_400);

/// How durable a commit is: SQLite's `synchronous` pragma in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// No fsync at all: an OS crash or power loss may lose or corrupt
    /// recent commits. For tests and benchmarks.
    Off,
    /// fsync at checkpoints only (the default): a process crash loses
    /// nothing committed; an OS crash or power loss may lose the last
    /// commits but never corrupts the database.
    #[default]
    Normal,
    /// fsync on every commit: nothing committed is lost even on power loss.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Settings of a [`SqliteStore`](crate::SqliteStore).
///
/// Fields are public; the chainable setters exist for brevity:
///
/// ```
/// use std::time::Duration;
/// use hub_sqlite::SqliteStoreConfig;
///
/// let config = SqliteStoreConfig::default()
///     .batch_max_size(256)
///     .batch_max_delay(Duration::from_millis(1));
/// assert_eq!(config.batch_max_size, 256);
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreConfig {
    /// At most this many writes are committed in one transaction (default
    /// 1024). 1 commits every publish on its own: slow, but useful to
    /// compare against.
    pub batch_max_size: usize,
    /// How long the writer waits for more writes once its queue runs dry,
    /// before committing a batch (default zero: commit as soon as nothing
    /// else is queued). While a batch commits, new writes queue up and form
    /// the next batch, so batching happens under load without any waiting;
    /// a delay only helps when commits are expensive (`Synchronous::Full`)
    /// and costs every publish that much latency.
    pub batch_max_delay: Duration,
    /// How long an idempotency key is remembered (default 5 minutes).
    pub idempotency_ttl: Duration,
    /// How long a channel's stream (epoch and offset) is kept after its last
    /// use, unless a publish says otherwise (default 30 days).
    pub history_meta_ttl: Duration,
    /// How long a connection waits for a lock held by another connection
    /// before failing with "database is locked" (default 5 seconds).
    pub busy_timeout: Duration,
    /// How often the writer deletes expired publications, streams and
    /// idempotency keys and forgets idle channels (default 60 seconds; zero
    /// turns the periodic sweep off, leaving
    /// [`SqliteStore::cleanup`](crate::SqliteStore::cleanup)).
    pub cleanup_interval: Duration,
    /// A channel nobody touched for this long is dropped from the in-memory
    /// cache of offsets and keys, and loaded again on its next use (default
    /// 10 minutes).
    pub cache_idle_ttl: Duration,
    /// Threads (each with its own connection) serving history reads
    /// (default 2).
    pub readers: usize,
    /// Commit durability (default [`Synchronous::Normal`]).
    pub synchronous: Synchronous,
    /// Where time comes from (default the system clock). Tests use
    /// [`Clock::manual`] to expire things without waiting.
    pub clock: Clock,
}

impl Default for SqliteStoreConfig {
    fn default() -> Self {
        Self {
            batch_max_size: DEFAULT_BATCH_MAX_SIZE,
            batch_max_delay: Duration::ZERO,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            history_meta_ttl: DEFAULT_HISTORY_META_TTL,
            busy_timeout: Duration::from_secs(5),
            cleanup_interval: Duration::from_secs(60),
            cache_idle_ttl: Duration::from_secs(600),
            readers: 2,
            synchronous: Synchronous::Normal,
            clock: Clock::system(),
        }
    }
}

impl SqliteStoreConfig {
    /// Sets [`batch_max_size`](Self::batch_max_size).
    pub fn batch_max_size(mut self, size: usize) -> Self {
        self.batch_max_size = size;
        self
    }

    /// Sets [`batch_max_delay`](Self::batch_max_delay).
    pub fn batch_max_delay(mut self, delay: Duration) -> Self {
        self.batch_max_delay = delay;
        self
    }

    /// Sets [`idempotency_ttl`](Self::idempotency_ttl).
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// Sets [`history_meta_ttl`](Self::history_meta_ttl).
    pub fn history_meta_ttl(mut self, ttl: Duration) -> Self {
        self.history_meta_ttl = ttl;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`cleanup_interval`](Self::cleanup_interval).
    pub fn cleanup_interval(mut self, interval: Duration) -> Self {
        self.cleanup_interval = interval;
        self
    }

    /// Sets [`cache_idle_ttl`](Self::cache_idle_ttl).
    pub fn cache_idle_ttl(mut self, ttl: Duration) -> Self {
        self.cache_idle_ttl = ttl;
        self
    }

    /// Sets [`readers`](Self::readers).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// Sets [`synchronous`](Self::synchronous).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The first setting that cannot work, if any.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if self.batch_max_size == 0 {
            Some("batch_max_size must be at least 1")
        } else if self.readers == 0 {
            Some("readers must be at least 1")
        } else {
            None
        }
    }
}

/// The store's source of wall-clock time: the system clock, or a manual
/// clock that only moves when told (for tests). Clones share the time.
#[derive(Clone, Default)]
pub struct Clock {
    /// Milliseconds since the Unix epoch, for a manual clock.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock standing at `start` until [`advance`](Self::advance)d.
    pub fn manual(start: SystemTime) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(system_ms(start)))),
        }
    }

    /// Moves a manual clock forward by `by` (whole milliseconds, rounded
    /// up). Returns false, doing nothing, on the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.manual {
            Some(ms) => {
                ms.fetch_add(duration_ms(by), Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        let ms = self.now_ms();
        match u64::try_from(ms) {
            Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            Err(_) => UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs()),
        }
    }

    /// The current time in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => system_ms(SystemTime::now()),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(ms) => write!(f, "Clock::Manual({} ms)", ms.load(Ordering::SeqCst)),
            None => f.write_str("Clock::System"),
        }
    }
}

/// Longest interval added to a time, so that huge TTLs do not overflow:
/// about 30 years is "never" here (as in the in-memory store).
const FOREVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `ttl` in milliseconds, rounded up so that a tiny TTL is not zero.
pub(crate) fn duration_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// Milliseconds back to a duration (negative values count as zero).
pub(crate) fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The time `ttl` after `now_ms`, capped at [`FOREVER`].
pub(crate) fn after(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(duration_ms(ttl.min(FOREVER)))
}

fn system_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        assert!(clock.advance(Duration::from_micros(1)));
        assert_eq!(clock.now_ms(), 1_000_001, "rounded up to a millisecond");
        let shared = clock.clone();
        shared.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ms(), 1_001_001);
        assert!(!Clock::system().advance(Duration::from_secs(1)));
    }

    #[test]
    fn times_do_not_overflow() {
        assert_eq!(duration_ms(Duration::MAX), i64::MAX);
        assert_eq!(after(0, Duration::MAX), duration_ms(FOREVER));
        assert_eq!(after(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
        assert_eq!(ms_duration(-5), Duration::ZERO);
        let before_epoch = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(Clock::manual(before_epoch).now(), before_epoch);
    }

    #[test]
    fn invalid_settings_are_named() {
        assert!(SqliteStoreConfig::default().invalid().is_none());
        assert!(SqliteStoreConfig::default()
            .batch_max_size(0)
            .invalid()
            .is_some());
        assert!(SqliteStoreConfig::default().readers(0).invalid().is_some());
    }
}
