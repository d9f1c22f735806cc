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
use crate::workers::{per_process, shares, Cmd, Event, Job, Workers};

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
    /// Client processes the connections were spread over (`--processes`;
    /// absent when they all ran in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
}

/// One step's figures.
struct Step {
    connections: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    prev: usize,
    prev_rss: u64,
    dropped: u64,
}

impl Step {
    fn report(&self, opts: &SubIdleOptions, processes: Option<usize>) -> SubIdleReport {
        let Self {
            connections,
            rss_before_kib,
            rss_after_kib,
            prev,
            prev_rss,
            dropped,
        } = *self;
        SubIdleReport {
            scenario: "sub-idle",
            server: opts.label.clone(),
            transport: opts.subscribe.kind,
            connections,
            rss_before_kib,
            rss_after_kib,
            kib_per_connection: procfs::kib_per_connection(
                rss_before_kib,
                rss_after_kib,
                0,
                connections,
            ),
            slope_from_connections: prev,
            slope_kib_per_connection: procfs::kib_per_connection(
                prev_rss,
                rss_after_kib,
                prev,
                connections,
            ),
            dropped,
            processes,
        }
    }
}

/// Refuses steps that are not positive and increasing, and a server pid
/// without an RSS.
fn check_options(opts: &SubIdleOptions) -> Result<()> {
    if opts.steps.is_empty() || opts.steps.windows(2).any(|w| w[0] >= w[1]) || opts.steps[0] == 0 {
        bail!(
            "connection steps must be positive and increasing, got {:?}",
            opts.steps
        );
    }
    procfs::rss_kib(opts.server_pid).context("is --server-pid the server's process id?")?;
    Ok(())
}

/// Runs the scenario, calling `report` after each step, and returns all
/// step reports.
pub async fn run(
    opts: &SubIdleOptions,
    mut report: impl FnMut(&SubIdleReport),
) -> Result<Vec<SubIdleReport>> {
    check_options(opts)?;
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
        let step = Step {
            connections,
            rss_before_kib,
            rss_after_kib,
            prev,
            prev_rss,
            dropped: dropped.load(Ordering::Relaxed),
        }
        .report(opts, None);
        report(&step);
        reports.push(step);
        (prev, prev_rss) = (connections, rss_after_kib);
    }
    keepalive.abort_all();
    while keepalive.join_next().await.is_some() {}
    Ok(reports)
}

/// Runs the scenario with each step's new connections spread over
/// `processes` client processes ([`crate::workers`], each with `threads`
/// runtime threads); a step's RSS is read once every process says its
/// share is open, and `dropped` adds up theirs.
pub async fn run_processes(
    opts: &SubIdleOptions,
    processes: usize,
    threads: usize,
    mut report: impl FnMut(&SubIdleReport),
) -> Result<Vec<SubIdleReport>> {
    check_options(opts)?;
    let job = Job::SubIdle {
        spec: opts.subscribe.clone(),
        ramp: per_process(opts.ramp_concurrency, processes),
    };
    let mut workers = Workers::spawn(&vec![job; processes], threads)?;
    workers
        .collect(|event| match event {
            Event::Ready { .. } => Ok(Some(())),
            other => bail!("expected ready, got {other:?}"),
        })
        .await?;
    let rss_before_kib = settled_rss(opts.server_pid, opts.settle).await?;
    let mut reports = Vec::new();
    let (mut prev, mut prev_rss) = (0, rss_before_kib);
    for &connections in &opts.steps {
        for (i, r) in shares(prev, connections - prev, processes)
            .into_iter()
            .enumerate()
        {
            workers.send(
                i,
                &Cmd::Open {
                    from: r.start,
                    to: r.end,
                },
            )?;
        }
        let open = workers.collect(opened).await?;
        if open.iter().map(|o| o.0).sum::<usize>() != connections {
            bail!("the client processes hold {open:?} connections, expected {connections}");
        }
        let rss_after_kib = settled_rss(opts.server_pid, opts.settle).await?;
        workers.send_all(&Cmd::Status)?;
        let dropped = workers.collect(opened).await?.iter().map(|o| o.1).sum();
        let step = Step {
            connections,
            rss_before_kib,
            rss_after_kib,
            prev,
            prev_rss,
            dropped,
        }
        .report(opts, Some(processes));
        report(&step);
        reports.push(step);
        (prev, prev_rss) = (connections, rss_after_kib);
    }
    workers.finish()?;
    Ok(reports)
}

/// The `(open, dropped)` of an [`Event::Opened`].
fn opened(event: Event) -> Result<Option<(usize, u64)>> {
    match event {
        Event::Opened { open, dropped } => Ok(Some((open, dropped))),
        other => bail!("expected opened, got {other:?}"),
    }
}

/// A client process's side of [`run_processes`]: opens the connections
/// each [`Cmd::Open`] asks for and keeps them answering pings; answers
/// [`Cmd::Open`] and [`Cmd::Status`] with how many it holds and how many
/// the server closed.
pub(crate) async fn worker(
    spec: &SubscribeSpec,
    ramp: usize,
    mut cmds: tokio::sync::mpsc::UnboundedReceiver<Cmd>,
) -> Result<()> {
    crate::workers::emit(&Event::Ready { opened: 0 });
    let dropped = Arc::new(AtomicU64::new(0));
    let mut keepalive = JoinSet::new();
    let mut open = 0;
    loop {
        match crate::workers::next_cmd(&mut cmds).await? {
            Cmd::Open { from, to } => {
                let more = crate::subscriber::open_range(spec, from..to, ramp).await?;
                open += more.len();
                for sub in more {
                    let dropped = Arc::clone(&dropped);
                    keepalive.spawn(async move {
                        let _ = sub.idle().await;
                        dropped.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
            Cmd::Status => {}
            other => bail!("unexpected command {other:?}"),
        }
        crate::workers::emit(&Event::Opened {
            open,
            dropped: dropped.load(Ordering::Relaxed),
        });
    }
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
