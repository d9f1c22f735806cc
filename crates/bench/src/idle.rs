//! The idle-memory scenario: how much resident memory the server needs per
//! connection that completed the handshake and then sends nothing.
//!
//! The server's `VmRSS` is read before any connection is opened, then the
//! connections are opened in steps (for `1000,5000,15000`: 1,000, then 4,000
//! more, then 10,000 more, keeping the earlier ones open) and after each step
//! the RSS is read once it has settled. Two figures come out per step:
//! growth divided by all connections so far (which includes the server's
//! one-off growth, e.g. its allocator's first arenas) and the slope since
//! the previous step, which is the honest per-connection cost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::client::Client;
use crate::procfs;
use crate::target::Target;

/// What to run.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// The server.
    pub target: Target,
    /// Total connections at each step, increasing.
    pub steps: Vec<usize>,
    /// The server's process id, for its RSS.
    pub server_pid: u32,
    /// Connection handshakes in flight while opening.
    pub ramp_concurrency: usize,
    /// Least time to wait after a step before reading the RSS.
    pub settle: Duration,
    /// Free-form name of the server, copied into the reports.
    pub label: Option<String>,
}

/// One step's results (serialized as one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// Always `"idle"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Idle connections open at this step.
    pub connections: usize,
    /// Server RSS before any connection was opened, in KiB.
    pub rss_before_kib: u64,
    /// Server RSS with `connections` idle connections, in KiB.
    pub rss_after_kib: u64,
    /// `(rss_after - rss_before) / connections`.
    pub kib_per_connection: f64,
    /// Connections open at the previous step (0 for the first).
    pub slope_from_connections: usize,
    /// RSS growth per connection since the previous step.
    pub slope_kib_per_connection: f64,
}

/// Runs the scenario, calling `report` after each step (so results appear
/// as they are measured), and returns all step reports.
pub async fn run(
    opts: &IdleOptions,
    mut report: impl FnMut(&IdleReport),
) -> Result<Vec<IdleReport>> {
    if opts.steps.is_empty() || opts.steps.windows(2).any(|w| w[0] >= w[1]) || opts.steps[0] == 0 {
        bail!(
            "connection steps must be positive and increasing, got {:?}",
            opts.steps
        );
    }
    // Fail before opening anything if the server is not running.
    procfs::rss_kib(opts.server_pid).context("is --server-pid the server's process id?")?;
    let rss_before_kib = settled_rss(opts.server_pid, opts.settle).await?;
    let mut open: Vec<Client> = Vec::new();
    let mut reports = Vec::new();
    let (mut prev_connections, mut prev_rss) = (0, rss_before_kib);
    for &connections in &opts.steps {
        // The client never reads on these connections; a small read buffer
        // keeps the client's own memory down.
        let more = crate::ramp::open(
            &opts.target,
            connections - open.len(),
            opts.ramp_concurrency,
            64,
        )
        .await?;
        open.extend(more);
        let rss_after_kib = settled_rss(opts.server_pid, opts.settle).await?;
        let step = IdleReport {
            scenario: "idle",
            server: opts.label.clone(),
            connections,
            rss_before_kib,
            rss_after_kib,
            kib_per_connection: procfs::kib_per_connection(
                rss_before_kib,
                rss_after_kib,
                0,
                connections,
            ),
            slope_from_connections: prev_connections,
            slope_kib_per_connection: procfs::kib_per_connection(
                prev_rss,
                rss_after_kib,
                prev_connections,
                connections,
            ),
        };
        report(&step);
        reports.push(step);
        (prev_connections, prev_rss) = (connections, rss_after_kib);
    }
    drop(open);
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
