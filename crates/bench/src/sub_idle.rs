//! Memory per idle subscribed connection: how much the server's resident
//! memory grows per connection that connected, subscribed to a channel
//! (see [`crate::subscriber`]) and then only answers pings.
//!
//! As in the other idle scenarios, the server's `VmRSS` is read before any
//! connection opens, then connections are opened in steps (keeping the
//! earlier ones) and the RSS is read once it settles after each step. The
//! slope between steps is the per-connection cost; the overall figure also
//! holds the server's one-off growth. Every connection keeps a task that
//! reads and answers pings, so a run may outlast the server's ping interval
//! and pong timeout; connections the server closed are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::procfs;
use crate::subscriber::{SubKind, SubscribeSpec};

/// What to run.
#[derive(Clone, Debug)]
pub struct SubIdleOptions {
    /// How connections connect and what they subscribe to.
    pub subscribe: SubscribeSpec,
    /// Total connections at each step, increasing.
    pub steps: Vec<usize>,
    /// The server's process id, for its RSS.
    pub server_pid: u32,
    /// Connects in flight while opening.
    pub ramp_concurrency: usize,
    /// Least time to wait after a step before reading the RSS.
    pub settle: Duration,
    /// Free-form name of the server, copied into the reports.
    pub label: Option<String>,
}

/// One step's results (serialized as one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct SubIdleReport {
    /// Always `"sub-idle"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// The connections' protocol.
    pub transport: SubKind,
    /// Subscribed connections open at this step.
    pub connections: usize,
    /// Server RSS before any connection was opened, in KiB.
    pub rss_before_kib: u64,
    /// Server RSS with `connections` connections, in KiB.
    pub rss_after_kib: u64,
    /// `(rss_after - rss_before) / connections`.
    pub kib_per_connection: f64,
    /// Connections at the previous step (0 for the first).
    pub slope_from_connections: usize,
    /// RSS growth per connection since the previous step.
    pub slope_kib_per_connection: f64,
    /// Connections the server had closed by this step's reading (should
    /// be 0).
    pub dropped: u64,
}

/// Runs the scenario, calling `report` after each step, and returns all
/// step reports.
pub async fn run(
    opts: &SubIdleOptions,
    mut report: impl FnMut(&SubIdleReport),
) -> Result<Vec<SubIdleReport>> {
    if opts.steps.is_empty() || opts.steps.windows(2).any(|w| w[0] >= w[1]) || opts.steps[0] == 0 {
        bail!(
            "connection steps must be positive and increasing, got {:?}",
            opts.steps
        );
    }
    procfs::rss_kib(opts.server_pid).context("is --server-pid the server's process id?")?;
    let rss_before_kib = settled_rss(opts.server_pid, opts.settle).await?;
    let dropped = Arc::new(AtomicU64::new(0));
    let mut keepalive = JoinSet::new();
    let mut open = 0;
    let mut reports = Vec::new();
    let (mut prev, mut prev_rss) = (0, rss_before_kib);
    for &connections in &opts.steps {
        let more = crate::subscriber::open_range(
            &opts.subscribe,
            open..connections,
            opts.ramp_concurrency,
        )
        .await?;
        open += more.len();
        for sub in more {
            let dropped = Arc::clone(&dropped);
            keepalive.spawn(async move {
                let _ = sub.idle().await;
                dropped.fetch_add(1, Ordering::Relaxed);
            });
        }
        let rss_after_kib = settled_rss(opts.server_pid, opts.settle).await?;
        let step = SubIdleReport {
            scenario: "sub-idle",
            server: opts.label.clone(),
            transport: opts.subscribe.kind,
            connections,
            rss_before_kib,
            rss_after_kib,
            kib_per_connection: (rss_after_kib as f64 - rss_before_kib as f64) / connections as f64,
            slope_from_connections: prev,
            slope_kib_per_connection: (rss_after_kib as f64 - prev_rss as f64)
                / (connections - prev) as f64,
            dropped: dropped.load(Ordering::Relaxed),
        };
        report(&step);
        reports.push(step);
        (prev, prev_rss) = (connections, rss_after_kib);
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
