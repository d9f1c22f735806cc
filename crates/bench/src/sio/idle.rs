//! Memory per idle socket: how much the server's resident memory grows per
//! socket that connected to the main namespace and then sends nothing but
//! pongs.
//!
//! As in the WebSocket idle scenario, the server's `VmRSS` is read before
//! any socket connects, then sockets are connected in steps (for
//! `1000,5000,10000`: 1,000, then 4,000 more, then 5,000 more, keeping the
//! earlier ones), and after each step the RSS is read once it settles. The
//! slope between steps is the per-socket cost; the overall figure includes
//! the server's one-off growth.
//!
//! Unlike a bare WebSocket, a Socket.IO session dies if it misses a ping,
//! so every socket keeps a task that answers the server's pings: a run may
//! last longer than the ping interval plus timeout (45 s by default).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::procfs;
use crate::target::Target;

/// What to run.
#[derive(Clone, Debug)]
pub struct SioIdleOptions {
    /// The server (its WebSocket target, see [`super::resolve`]).
    pub target: Target,
    /// Total sockets at each step, increasing.
    pub steps: Vec<usize>,
    /// The server's process id, for its RSS.
    pub server_pid: u32,
    /// Socket handshakes in flight while connecting.
    pub ramp_concurrency: usize,
    /// Least time to wait after a step before reading the RSS.
    pub settle: Duration,
    /// Free-form name of the server, copied into the reports.
    pub label: Option<String>,
}

/// One step's results (serialized as one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct SioIdleReport {
    /// Always `"sio-idle"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Idle connected sockets at this step.
    pub sockets: usize,
    /// Server RSS before any socket connected, in KiB.
    pub rss_before_kib: u64,
    /// Server RSS with `sockets` idle sockets, in KiB.
    pub rss_after_kib: u64,
    /// `(rss_after - rss_before) / sockets`.
    pub kib_per_socket: f64,
    /// Sockets at the previous step (0 for the first).
    pub slope_from_sockets: usize,
    /// RSS growth per socket since the previous step.
    pub slope_kib_per_socket: f64,
    /// Sockets the server had closed by the time of this step's reading
    /// (should be 0).
    pub dropped: u64,
}

/// Runs the scenario, calling `report` after each step, and returns all
/// step reports.
pub async fn run(
    opts: &SioIdleOptions,
    mut report: impl FnMut(&SioIdleReport),
) -> Result<Vec<SioIdleReport>> {
    if opts.steps.is_empty() || opts.steps.windows(2).any(|w| w[0] >= w[1]) || opts.steps[0] == 0 {
        bail!(
            "socket steps must be positive and increasing, got {:?}",
            opts.steps
        );
    }
    procfs::rss_kib(opts.server_pid).context("is --server-pid the server's process id?")?;
    let rss_before_kib = settled_rss(opts.server_pid, opts.settle).await?;
    let dropped = Arc::new(AtomicU64::new(0));
    let mut keepalive = JoinSet::new();
    let mut open = 0;
    let mut reports = Vec::new();
    let (mut prev_sockets, mut prev_rss) = (0, rss_before_kib);
    for &sockets in &opts.steps {
        // Idle sockets only read pings: a small read buffer keeps the
        // client's own memory down.
        let more = super::open(&opts.target, sockets - open, opts.ramp_concurrency, 256).await?;
        open += more.len();
        for mut client in more {
            let dropped = Arc::clone(&dropped);
            keepalive.spawn(async move {
                // next_packet answers pings; an idle socket gets nothing else.
                while client.next_packet().await.is_ok() {}
                dropped.fetch_add(1, Ordering::Relaxed);
            });
        }
        let rss_after_kib = settled_rss(opts.server_pid, opts.settle).await?;
        let step = SioIdleReport {
            scenario: "sio-idle",
            server: opts.label.clone(),
            sockets,
            rss_before_kib,
            rss_after_kib,
            kib_per_socket: procfs::kib_per_connection(rss_before_kib, rss_after_kib, 0, sockets),
            slope_from_sockets: prev_sockets,
            slope_kib_per_socket: procfs::kib_per_connection(
                prev_rss,
                rss_after_kib,
                prev_sockets,
                sockets,
            ),
            dropped: dropped.load(Ordering::Relaxed),
        };
        report(&step);
        reports.push(step);
        (prev_sockets, prev_rss) = (sockets, rss_after_kib);
    }
    keepalive.abort_all();
    while keepalive.join_next().await.is_some() {}
    Ok(reports)
}

/// Reads the RSS of `pid` once it has stopped moving: after at least
/// `settle`, when two readings half a second apart differ by less than
/// 0.5 % (or 64 KiB), or after 20 s whatever it does.
async fn settled_rss(pid: u32, settle: Duration) -> Result<u64> {
    tokio::time::sleep(settle).await;
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut last = procfs::rss_kib(pid)?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = procfs::rss_kib(pid)?;
        let tolerance = (last / 200).max(64);
        if now.abs_diff(last) <= tolerance || Instant::now() >= give_up {
            return Ok(now);
        }
        last = now;
    }
}
