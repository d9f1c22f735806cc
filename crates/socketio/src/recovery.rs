//! Connection state recovery: the sessions of sockets that lost their
//! connection, and the events sent while they were away.
//!
//! Every event sent to clients (without an ack, when recovery is on) gets an
//! offset as its last argument, which the client remembers. Each such event
//! is logged with the rooms it targeted. When a socket drops for a reason
//! the client did not choose, its id and rooms are kept under a private
//! session id (`pid`); a client that reconnects in time with that `pid` and
//! its last offset gets the same socket id back, its rooms, and the logged
//! events it missed, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::adapter::BroadcastOptions;
use crate::config::RecoveryConfig;
use crate::sync::lock;

struct Logged {
    offset: u64,
    at: Instant,
    targets: BroadcastOptions,
    frames: Vec<engineio::SharedFrame>,
}

/// A disconnected socket that may come back.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    pub(crate) id: Arc<str>,
    pub(crate) rooms: Vec<Arc<str>>,
    at: Instant,
}

/// A socket brought back: its id, rooms, and what it missed.
#[derive(Debug)]
pub struct Restored {
    /// The socket id it had.
    pub id: Arc<str>,
    /// The rooms it was in.
    pub rooms: Vec<Arc<str>>,
    /// The frames of the events it missed, in order.
    pub missed: Vec<engineio::SharedFrame>,
}

pub(crate) struct Recovery {
    pub(crate) config: RecoveryConfig,
    next_offset: AtomicU64,
    log: Mutex<VecDeque<Logged>>,
    sessions: Mutex<HashMap<Arc<str>, Saved>>,
}

impl Recovery {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        Self {
            config,
            next_offset: AtomicU64::new(1),
            log: Mutex::new(VecDeque::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh offset for an outgoing event.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.fetch_add(1, Ordering::Relaxed)
    }

    /// Logs an event sent with `offset`.
    pub(crate) fn log(
        &self,
        offset: u64,
        targets: BroadcastOptions,
        frames: Vec<engineio::SharedFrame>,
    ) {
        let now = Instant::now();
        let mut log = lock(&self.log);
        log.push_back(Logged {
            offset,
            at: now,
            targets,
            frames,
        });
        let oldest = now.checked_sub(self.config.max_disconnection_duration);
        while let Some(front) = log.front() {
            let expired = oldest.is_some_and(|o| front.at < o);
            if expired || log.len() > self.config.max_buffered_packets {
                log.pop_front();
            } else {
                break;
            }
        }
    }

    /// Keeps a dropped socket's state under `pid`.
    pub(crate) fn save(&self, pid: Arc<str>, id: Arc<str>, rooms: Vec<Arc<str>>) {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let max = self.config.max_disconnection_duration;
        sessions.retain(|_, s| now.duration_since(s.at) < max);
        sessions.insert(pid, Saved { id, rooms, at: now });
    }

    /// Takes back the session `pid` if it is still fresh and every event
    /// after `offset` is still logged.
    pub(crate) fn restore(&self, pid: &str, offset: &str) -> Option<Restored> {
        let saved = lock(&self.sessions).remove(pid)?;
        if saved.at.elapsed() >= self.config.max_disconnection_duration {
            return None;
        }
        let offset: u64 = offset.parse().ok()?;
        let rooms: HashSet<Arc<str>> = saved.rooms.iter().cloned().collect();
        let log = lock(&self.log);
        // If the event right after `offset` was already dropped, events
        // were lost: do not pretend to recover.
        let oldest = log
            .front()
            .map_or_else(|| self.next_offset.load(Ordering::Relaxed), |e| e.offset);
        if oldest > offset.saturating_add(1) {
            return None;
        }
        let missed = log
            .iter()
            .filter(|e| e.offset > offset && e.targets.selects(&saved.id, &rooms))
            .flat_map(|e| e.frames.iter().cloned())
            .collect();
        Some(Restored {
            id: saved.id,
            rooms: saved.rooms,
            missed,
        })
    }
}
