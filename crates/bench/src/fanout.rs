//! The fan-out scenario: N subscribers on one channel (or room), one
//! publisher, and the time from publishing to each subscriber's receipt.
//!
//! Subscribers are [`crate::subscriber`]s of any kind: duplex's plain
//! WebSocket, duplex's Socket.IO mapping, or a Socket.IO room of a peer.
//! The publisher is either duplex's server API (`POST /api/publish` on one
//! keep-alive connection, requests pipelined so several publications are
//! in flight without being reordered) or, for the peers, a Socket.IO socket
//! emitting `bcast` (room, data) with an ack, the same way pipelined.
//!
//! Each publication's data is a JSON object of `size` bytes,
//! `{"t":T,"n":N,"p":"aaaa..."}`, where `T` is the publisher's wall clock
//! in nanoseconds since the Unix epoch when it wrote the request (so
//! subscribers in other processes on the same host can time it too) and
//! `N` numbers the publications; every subscriber checks that it receives
//! each one, in order.
//!
//! Flow control: at most `window` publications are in flight, counting a
//! publication in flight until every subscriber has received it (the total
//! delivery count says so) and its request was answered. The server is
//! never asked to queue more than `window` messages per subscriber, so
//! none is disconnected for being slow, and with `rate` 0 the figure is the
//! rate it sustains end to end. With `rate` > 0 publications are also paced
//! to that many per second (latency at a steady load below saturation).
//! A deeper window lets the server write several publications to a socket
//! in one system call.
//!
//! Figures: deliveries per second, deliveries per server CPU-second (CPU
//! of the server process from `/proc/PID/stat`, user and kernel), and the
//! publish-to-receipt latency percentiles (p50, p90, p99, max) of the
//! deliveries received in the measured window.
//!
//! [`run_spread`] is the same with the subscribers spread over several
//! targets (the nodes of a cluster, [`crate::cluster`]), with a latency
//! histogram per target and a probe read at both ends of the measured
//! window.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::centrifuge::json_string;
use crate::histogram::{AtomicHistogram, Histogram};
use crate::http::HttpClient;
use crate::procfs;
use crate::progress::Progress;
use crate::sio::{split_ack, SioClient};
use crate::subscriber::{SubKind, SubscribeSpec, Subscriber};
use crate::target::Target;
use crate::workers::{merge_pairs, per_process, shares, Cmd, Event, Job, Workers};

/// A run fails if deliveries stop progressing for this long.
const STALL: Duration = Duration::from_secs(10);

/// How publications are made.
#[derive(Clone, Debug)]
pub enum PublisherSpec {
    /// duplex's server API: `POST /api/publish` to this HTTP target.
    Api {
        /// The server (from `http://host:port`).
        target: Target,
        /// The `X-API-Key` value.
        api_key: String,
    },
    /// A Socket.IO socket emitting `bcast` (room, data) with an ack.
    SioBcast {
        /// The server's WebSocket target (see [`crate::sio::resolve`]).
        target: Target,
    },
}

impl PublisherSpec {
    /// The publisher a `--publisher NAME` option asks for: `api` (needs
    /// `api_url`, `http://host:port`) or `sio-bcast` (a socket on
    /// `sio_url`).
    pub async fn from_cli(
        name: &str,
        api_url: Option<&str>,
        api_key: &str,
        sio_url: &str,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        Ok(match name {
            "api" => Self::Api {
                target: crate::http::resolve(api_url.context("--publisher api needs --api-url")?)
                    .await?,
                api_key: api_key.to_owned(),
            },
            "sio-bcast" => Self::SioBcast {
                target: crate::sio::resolve(sio_url).await?,
            },
            other => anyhow::bail!("unknown --publisher {other:?}: api or sio-bcast"),
        })
    }

    /// The name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Api { .. } => "api",
            Self::SioBcast { .. } => "sio-bcast",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct FanoutOptions {
    /// How subscribers connect and what they join.
    pub subscribe: SubscribeSpec,
    /// How publications are made.
    pub publisher: PublisherSpec,
    /// Subscribers.
    pub subscribers: usize,
    /// Bytes of each publication's data (JSON object), at least 48.
    pub size: usize,
    /// Publications per second; 0 for as fast as the window allows.
    pub rate: f64,
    /// Most publications in flight.
    pub window: u64,
    /// Measured duration.
    pub duration: Duration,
    /// Load before measuring starts.
    pub warmup: Duration,
    /// The server's process id, for its CPU time; `None` skips CPU figures.
    pub server_pid: Option<u32>,
    /// Connects plus subscribes in flight while opening subscribers.
    pub ramp_concurrency: usize,
    /// Free-form name of the server, copied into the report.
    pub label: Option<String>,
}

/// One line of results (serialized as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    /// Always `"fanout"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// The subscribers' protocol.
    pub transport: SubKind,
    /// `api` or `sio-bcast`.
    pub publisher: &'static str,
    /// Subscribers.
    pub subscribers: usize,
    /// Bytes of each publication's data.
    pub size: usize,
    /// Publications per second asked for (0: as fast as the window allows).
    pub rate: f64,
    /// Most publications in flight.
    pub window: u64,
    /// Publications sent in the measured window.
    pub publications: u64,
    /// Deliveries received in the measured window.
    pub deliveries: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// `deliveries / seconds`.
    pub deliveries_per_sec: f64,
    /// Server CPU time (user + system) spent in the window, in seconds.
    pub server_cpu_seconds: Option<f64>,
    /// The user-space part of `server_cpu_seconds`.
    pub server_user_seconds: Option<f64>,
    /// The headline figure: `deliveries / server_cpu_seconds`.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// Client (this process) CPU time in the window, in seconds.
    pub client_cpu_seconds: Option<f64>,
    /// Median publish-to-receipt time, in microseconds.
    pub p50_us: Option<f64>,
    /// 90th percentile, in microseconds.
    pub p90_us: Option<f64>,
    /// 99th percentile, in microseconds.
    pub p99_us: Option<f64>,
    /// Slowest delivery, in microseconds.
    pub max_us: Option<f64>,
    /// The latency distribution: `[quantile, µs]` pairs, for CDF plots.
    pub cdf_us: Vec<(f64, f64)>,
    /// Client processes the subscribers were spread over (`--processes`;
    /// absent when they all ran in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
}

#[derive(Debug, Default)]
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Every delivery so far (flow control).
    delivered: AtomicU64,
    /// Deliveries in the measured window.
    measured: AtomicU64,
    /// Publications sent in the measured window.
    published: AtomicU64,
    latency_ns: AtomicHistogram,
    /// The same per group of subscribers (see [`run_spread`]).
    group_ns: Vec<AtomicHistogram>,
    max_ns: AtomicU64,
    /// The publisher wants a wake-up once `delivered` reaches this.
    wake_at: AtomicU64,
    progress: Notify,
}

/// Wall-clock nanoseconds since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

/// Runs the scenario and returns its report.
pub async fn run(opts: &FanoutOptions) -> Result<FanoutReport> {
    let spread = run_spread(opts, std::slice::from_ref(&opts.subscribe), || async {
        Ok(())
    })
    .await?;
    Ok(spread.report)
}

/// What [`run_spread`] returns beside the report.
#[derive(Clone, Debug)]
pub struct Spread<S> {
    /// The figures over every subscriber.
    pub report: FanoutReport,
    /// Publish-to-receipt nanoseconds of the measured window's deliveries
    /// to each group (group `g`: the subscribers of `specs[g]`).
    pub groups: Vec<Histogram>,
    /// The probe's readings at the start and at the end of the measured
    /// window.
    pub probe: (S, S),
}

/// Runs the scenario with the subscribers spread over `specs` (for
/// several nodes of one cluster: subscriber `i` of `opts.subscribers`
/// connects through `specs[g]`, in blocks of about equal size), while the
/// publisher uses `opts.publisher` as usual. `probe` is called right
/// before and right after the measured window (e.g. to read a shared
/// store's counters).
pub async fn run_spread<S, P, F>(
    opts: &FanoutOptions,
    specs: &[SubscribeSpec],
    mut probe: P,
) -> Result<Spread<S>>
where
    P: FnMut() -> F,
    F: std::future::Future<Output = Result<S>>,
{
    if specs.is_empty() {
        bail!("no subscriber target");
    }
    check_options(opts)?;
    let mut subs = Vec::with_capacity(opts.subscribers);
    let mut first = 0;
    for (group, spec) in specs.iter().enumerate() {
        let count =
            opts.subscribers / specs.len() + usize::from(group < opts.subscribers % specs.len());
        let opened =
            crate::subscriber::open_range(spec, first..first + count, opts.ramp_concurrency)
                .await?;
        subs.extend(opened.into_iter().map(|sub| (group, sub)));
        first += count;
    }
    let publisher = Publisher::open(&opts.publisher, &opts.subscribe).await?;

    let shared = Arc::new(Shared {
        wake_at: AtomicU64::new(u64::MAX),
        group_ns: specs.iter().map(|_| AtomicHistogram::default()).collect(),
        ..Shared::default()
    });
    let mut tasks = JoinSet::new();
    for (n, (group, sub)) in subs.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            receive_loop(sub, &shared, group)
                .await
                .with_context(|| format!("subscriber {n}"))
        });
    }
    spawn_publisher(&mut tasks, publisher, &shared, opts);

    let own_pid = std::process::id();
    let bar = Progress::timed(opts.warmup + opts.duration, "fan-out");
    watch(opts.warmup, &mut tasks, &shared, &bar, Duration::ZERO).await?;
    let server_cpu0 = opts.server_pid.map(crate::procfs::cpu_times).transpose()?;
    let client_cpu0 = procfs::cpu_ticks(own_pid).ok();
    let probe0 = probe().await?;
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    watch(opts.duration, &mut tasks, &shared, &bar, opts.warmup).await?;
    shared.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let probe1 = probe().await?;
    let server_cpu1 = opts.server_pid.map(crate::procfs::cpu_times).transpose()?;
    let client_cpu1 = procfs::cpu_ticks(own_pid).ok();
    shared.stop.store(true, Ordering::Relaxed);
    bar.finish();

    let deliveries = shared.measured.load(Ordering::Relaxed);
    let publications = shared.published.load(Ordering::Relaxed);
    let latency = shared.latency_ns.snapshot();
    let groups = shared
        .group_ns
        .iter()
        .map(AtomicHistogram::snapshot)
        .collect();
    let max_ns = shared.max_ns.load(Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let report = fanout_report(
        opts,
        Measured {
            publications,
            deliveries,
            seconds,
            server_cpu: crate::procfs::window_cpu(server_cpu0, server_cpu1),
            client_cpu_seconds: crate::procfs::ticks_to_seconds(client_cpu0, client_cpu1),
            latency,
            max_ns,
            processes: None,
        },
    );
    Ok(Spread {
        report,
        groups,
        probe: (probe0, probe1),
    })
}

/// Refuses options the scenario cannot run with.
fn check_options(opts: &FanoutOptions) -> Result<()> {
    if opts.subscribers == 0 {
        bail!("--subscribers must be at least 1");
    }
    if opts.window == 0 {
        bail!("--window must be at least 1");
    }
    if !(opts.rate >= 0.0 && opts.rate.is_finite()) {
        bail!("--rate must be 0 or positive");
    }
    if opts.size < 48 {
        bail!("--size must be at least 48 bytes (the timestamp and sequence number)");
    }
    if let Some(pid) = opts.server_pid {
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    Ok(())
}

/// Runs the scenario with the subscribers spread over `processes` client
/// processes ([`crate::workers`], each with `threads` runtime threads)
/// while the publisher stays in this one; the report adds up their
/// deliveries, merges their latency histograms and adds their CPU time
/// to the client's.
///
/// Flow control works on the sum of the deliveries the children report:
/// each child reports its running total whenever each of its subscribers
/// may have received one more publication, so the publisher still waits
/// for every subscriber of every process.
pub async fn run_processes(
    opts: &FanoutOptions,
    processes: usize,
    threads: usize,
) -> Result<FanoutReport> {
    check_options(opts)?;
    let ranges = shares(0, opts.subscribers, processes);
    let jobs: Vec<Job> = ranges
        .iter()
        .map(|r| Job::Fanout {
            spec: opts.subscribe.clone(),
            first: r.start,
            count: r.len(),
            ramp: per_process(opts.ramp_concurrency, processes),
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, threads)?;
    let opened = workers
        .collect(|event| match event {
            Event::Ready { opened } => Ok(Some(opened)),
            other => bail!("expected ready, got {other:?}"),
        })
        .await?;
    if opened.iter().sum::<usize>() != opts.subscribers {
        bail!("the client processes opened {opened:?} subscribers");
    }
    let publisher = Publisher::open(&opts.publisher, &opts.subscribe).await?;

    let shared = Arc::new(Shared {
        wake_at: AtomicU64::new(u64::MAX),
        ..Shared::default()
    });
    let mut events = workers
        .take_events()
        .context("no events from the client processes")?;
    let (reply_tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    {
        // Deliveries go to the flow control, everything else to `replies`.
        let shared = Arc::clone(&shared);
        let mut totals = vec![0u64; processes];
        tasks.spawn(async move {
            while let Some((i, event)) = events.recv().await {
                match crate::workers::check(i, event)? {
                    Event::Delivered { total } => {
                        let Some(slot) = totals.get_mut(i) else {
                            bail!("an event from client process {i} of {processes}");
                        };
                        *slot = total;
                        let sum = totals.iter().sum::<u64>();
                        shared.delivered.store(sum, Ordering::Relaxed);
                        if sum >= shared.wake_at.load(Ordering::Relaxed) {
                            shared.progress.notify_one();
                        }
                    }
                    other => {
                        let _ = reply_tx.send((i, other));
                    }
                }
            }
            bail!("the client processes' output ended")
        });
    }
    spawn_publisher(&mut tasks, publisher, &shared, opts);

    let own_pid = std::process::id();
    let bar = Progress::timed(opts.warmup + opts.duration, "fan-out");
    watch(opts.warmup, &mut tasks, &shared, &bar, Duration::ZERO).await?;
    let server_cpu0 = opts.server_pid.map(crate::procfs::cpu_times).transpose()?;
    let client_cpu0 = procfs::cpu_ticks(own_pid).ok();
    workers.send_all(&Cmd::Measure { on: true })?;
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    watch(opts.duration, &mut tasks, &shared, &bar, opts.warmup).await?;
    shared.measuring.store(false, Ordering::Relaxed);
    workers.send_all(&Cmd::Measure { on: false })?;
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu1 = opts.server_pid.map(crate::procfs::cpu_times).transpose()?;
    let client_cpu1 = procfs::cpu_ticks(own_pid).ok();
    shared.stop.store(true, Ordering::Relaxed);
    bar.finish();
    let publications = shared.published.load(Ordering::Relaxed);

    workers.send_all(&Cmd::Report)?;
    let mut latency = Histogram::empty();
    let (mut deliveries, mut max_ns) = (0, 0);
    let mut client_ticks = client_cpu0
        .zip(client_cpu1)
        .map(|(a, b)| b.saturating_sub(a));
    let mut answered = vec![false; processes];
    let deadline = tokio::time::Instant::now() + crate::workers::REPLY_TIMEOUT;
    while answered.contains(&false) {
        let (i, event) = tokio::select! {
            reply = replies.recv() => reply.context("the client processes' output ended")?,
            Some(joined) = tasks.join_next() => {
                // The publisher ends with the run; the router only fails.
                joined.context("task panicked")??;
                continue;
            }
            () = tokio::time::sleep_until(deadline) => bail!("the client processes did not report"),
        };
        let Event::Measured {
            deliveries: d,
            max_ns: m,
            latency: pairs,
            cpu_ticks,
        } = event
        else {
            bail!("client process {i}: expected its figures, got {event:?}");
        };
        match answered.get_mut(i) {
            Some(seen @ false) => *seen = true,
            _ => bail!("client process {i} reported twice"),
        }
        deliveries += d;
        max_ns = max_ns.max(m);
        merge_pairs(&mut latency, &pairs)?;
        client_ticks = client_ticks.zip(cpu_ticks).map(|(a, b)| a + b);
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    workers.finish()?;

    Ok(fanout_report(
        opts,
        Measured {
            publications,
            deliveries,
            seconds,
            server_cpu: crate::procfs::window_cpu(server_cpu0, server_cpu1),
            client_cpu_seconds: crate::procfs::ticks_to_seconds(Some(0), client_ticks),
            latency,
            max_ns,
            processes: Some(processes),
        },
    ))
}

/// What one fan-out measured, in one process or merged from several.
struct Measured {
    publications: u64,
    deliveries: u64,
    seconds: f64,
    /// Server CPU seconds, all and user space.
    server_cpu: (Option<f64>, Option<f64>),
    client_cpu_seconds: Option<f64>,
    latency: Histogram,
    max_ns: u64,
    processes: Option<usize>,
}

/// The result line of a fan-out.
fn fanout_report(opts: &FanoutOptions, m: Measured) -> FanoutReport {
    let (server_cpu_seconds, server_user_seconds) = m.server_cpu;
    let latency = &m.latency;
    let us = |q| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
    let cdf_us = cdf_points().filter_map(|q| us(q).map(|v| (q, v))).collect();
    FanoutReport {
        scenario: "fanout",
        server: opts.label.clone(),
        transport: opts.subscribe.kind,
        publisher: opts.publisher.name(),
        subscribers: opts.subscribers,
        size: opts.size,
        rate: opts.rate,
        window: opts.window,
        publications: m.publications,
        deliveries: m.deliveries,
        seconds: m.seconds,
        deliveries_per_sec: m.deliveries as f64 / m.seconds,
        server_cpu_seconds,
        server_user_seconds,
        deliveries_per_server_cpu_sec: server_cpu_seconds
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| m.deliveries as f64 / cpu),
        client_cpu_seconds: m.client_cpu_seconds,
        p50_us: us(0.50),
        p90_us: us(0.90),
        p99_us: us(0.99),
        max_us: (!latency.is_empty()).then_some(m.max_ns as f64 / 1000.0),
        cdf_us,
        processes: m.processes,
    }
}

/// A client process's side of [`run_processes`]: opens subscribers
/// numbered `range`, says it is ready, reports its running delivery total
/// each time every one of them may have received one more publication,
/// counts and times deliveries between the `measure` commands and sends
/// its figures when asked.
pub(crate) async fn worker(
    spec: &SubscribeSpec,
    range: std::ops::Range<usize>,
    ramp: usize,
    mut cmds: tokio::sync::mpsc::UnboundedReceiver<Cmd>,
) -> Result<()> {
    let members = range.len() as u64;
    let subs = crate::subscriber::open_range(spec, range, ramp).await?;
    crate::workers::emit(&Event::Ready { opened: subs.len() });
    let shared = Arc::new(Shared {
        wake_at: AtomicU64::new(u64::MAX),
        ..Shared::default()
    });
    let mut tasks = JoinSet::new();
    for (n, sub) in subs.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            receive_loop(sub, &shared, 0)
                .await
                .with_context(|| format!("subscriber {n}"))
        });
    }
    {
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let mut next = members.max(1);
            loop {
                shared.wake_at.store(next, Ordering::Relaxed);
                if shared.delivered.load(Ordering::Relaxed) < next {
                    shared.progress.notified().await;
                    continue;
                }
                let total = shared.delivered.load(Ordering::Relaxed);
                crate::workers::emit(&Event::Delivered { total });
                next = (total / members.max(1) + 1) * members.max(1);
            }
        });
    }
    let own_pid = std::process::id();
    let mut cpu0 = None;
    let mut cpu_ticks = None;
    loop {
        tokio::select! {
            cmd = crate::workers::next_cmd(&mut cmds) => match cmd? {
                Cmd::Measure { on: true } => {
                    cpu0 = procfs::cpu_ticks(own_pid).ok();
                    shared.measuring.store(true, Ordering::Relaxed);
                }
                Cmd::Measure { on: false } => {
                    shared.measuring.store(false, Ordering::Relaxed);
                    cpu_ticks = cpu0
                        .zip(procfs::cpu_ticks(own_pid).ok())
                        .map(|(a, b)| b.saturating_sub(a));
                }
                Cmd::Report => crate::workers::emit(&Event::Measured {
                    deliveries: shared.measured.load(Ordering::Relaxed),
                    max_ns: shared.max_ns.load(Ordering::Relaxed),
                    latency: shared.latency_ns.snapshot().to_pairs(),
                    cpu_ticks,
                }),
                other => bail!("unexpected command {other:?}"),
            },
            Some(joined) = tasks.join_next() => match joined {
                Ok(Ok(())) => bail!("a subscriber stopped"),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(e).context("task panicked"),
            },
        }
    }
}

/// Quantiles reported for CDF plots: every percent, then finer in the tail.
pub fn cdf_points() -> impl Iterator<Item = f64> {
    (1..=99)
        .map(|p| f64::from(p) / 100.0)
        .chain([0.995, 0.999, 0.9999, 1.0])
}

/// Sleeps `duration` in short steps, updating the progress bar (whose
/// position starts at `offset`) and failing early if a task fails.
async fn watch(
    duration: Duration,
    tasks: &mut JoinSet<Result<()>>,
    shared: &Shared,
    bar: &Progress,
    offset: Duration,
) -> Result<()> {
    let until = tokio::time::Instant::now() + duration;
    let mut last = (Instant::now(), shared.delivered.load(Ordering::Relaxed));
    while tokio::time::Instant::now() < until {
        let step = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(250));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            joined = tasks.join_next() => match joined {
                Some(Ok(Ok(()))) => bail!("a connection stopped before the end of the run"),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(e).context("task panicked"),
                None => bail!("no connection left"),
            },
        }
        let now = (Instant::now(), shared.delivered.load(Ordering::Relaxed));
        let dt = now.0.duration_since(last.0).as_secs_f64();
        if dt > 0.0 {
            let rate = (now.1 - last.1) as f64 / dt;
            bar.message(format!("{:.0} deliveries/s", rate));
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let done = offset + duration.saturating_sub(left);
        bar.set(done.as_millis().min(u128::from(u64::MAX)) as u64);
        last = now;
    }
    Ok(())
}

/// One subscriber: count and time each delivery, check their order.
async fn receive_loop(mut sub: Subscriber, shared: &Shared, group: usize) -> Result<()> {
    let mut next_seq: u64 = 0;
    let mut batch = Vec::with_capacity(8);
    loop {
        sub.next_batch(&mut batch).await?;
        let now = wall_ns();
        let measuring = shared.measuring.load(Ordering::Relaxed);
        for &(sent, seq) in &batch {
            if seq != next_seq {
                bail!("received publication {seq}, expected {next_seq}");
            }
            next_seq += 1;
            if measuring {
                let ns = now.saturating_sub(sent);
                shared.latency_ns.record(ns);
                if let Some(h) = shared.group_ns.get(group) {
                    h.record(ns);
                }
                shared.max_ns.fetch_max(ns, Ordering::Relaxed);
            }
        }
        let n = batch.len() as u64;
        if measuring {
            shared.measured.fetch_add(n, Ordering::Relaxed);
        }
        let delivered = shared.delivered.fetch_add(n, Ordering::Relaxed) + n;
        if delivered >= shared.wake_at.load(Ordering::Relaxed) {
            shared.progress.notify_one();
        }
    }
}

/// The publishing side: one connection with requests pipelined on it.
#[derive(Debug)]
enum Publisher {
    Api {
        http: HttpClient,
        channel: String,
    },
    SioBcast {
        client: Box<SioClient>,
        room: String,
        /// Acks received so far (they come in order).
        acked: u64,
        sent: u64,
    },
}

impl Publisher {
    async fn open(spec: &PublisherSpec, sub: &SubscribeSpec) -> Result<Self> {
        Ok(match spec {
            PublisherSpec::Api { target, api_key } => Self::Api {
                http: HttpClient::connect(target, Some(api_key.clone())).await?,
                channel: json_string(&sub.channel),
            },
            PublisherSpec::SioBcast { target } => Self::SioBcast {
                client: Box::new(SioClient::connect(target, 64 * 1024).await?),
                room: json_string(&sub.channel),
                acked: 0,
                sent: 0,
            },
        })
    }

    /// Requests sent and not answered yet.
    fn in_flight(&self) -> u64 {
        match self {
            Self::Api { http, .. } => http.in_flight() as u64,
            Self::SioBcast { acked, sent, .. } => sent - acked,
        }
    }

    /// Publishes `data` as publication `seq` (without waiting for the answer).
    async fn send(&mut self, seq: u64, data: &str, buf: &mut String) -> Result<()> {
        buf.clear();
        match self {
            Self::Api { http, channel } => {
                write!(buf, "{{\"channel\":{channel},\"data\":{data}}}")?;
                http.send_post("/api/publish", buf).await
            }
            Self::SioBcast {
                client, room, sent, ..
            } => {
                write!(buf, "42{seq}[\"bcast\",{room},{data}]")?;
                client.send(buf).await?;
                *sent += 1;
                Ok(())
            }
        }
    }

    async fn readable(&self) -> Result<()> {
        match self {
            Self::Api { http, .. } => http.readable().await,
            Self::SioBcast { client, .. } => client.readable().await,
        }
    }

    /// Reads and checks every answer available now.
    async fn take_answers(&mut self) -> Result<()> {
        match self {
            Self::Api { http, .. } => {
                for r in http.try_responses()? {
                    if r.status != 200 || !r.body.starts_with("{\"result\"") {
                        bail!("publish failed: {} {}", r.status, r.body);
                    }
                }
            }
            Self::SioBcast { client, acked, .. } => {
                while let Some(packet) = client.try_next_packet().await? {
                    match split_ack(&packet) {
                        Some((id, _)) if id == *acked => *acked += 1,
                        _ => bail!("expected the ack of bcast {acked}, got {:?}", &*packet),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The data object of publication `seq`, padded to `size` bytes.
fn publication_data(out: &mut String, seq: u64, size: usize) {
    out.clear();
    let _ = write!(out, "{{\"t\":{},\"n\":{seq},\"p\":\"", wall_ns());
    let pad = size.saturating_sub(out.len() + 2);
    out.extend((0..pad).map(|i| (b'a' + (i % 26) as u8) as char));
    out.push_str("\"}");
}

/// Runs [`publish_loop`] as one of `tasks`.
fn spawn_publisher(
    tasks: &mut JoinSet<Result<()>>,
    publisher: Publisher,
    shared: &Arc<Shared>,
    opts: &FanoutOptions,
) {
    let shared = Arc::clone(shared);
    let opts = opts.clone();
    tasks.spawn(async move {
        publish_loop(publisher, &shared, &opts)
            .await
            .context("publisher")
    });
}

/// Publishes until [`Shared::stop`], respecting the window and the rate.
async fn publish_loop(
    mut publisher: Publisher,
    shared: &Shared,
    opts: &FanoutOptions,
) -> Result<()> {
    let members = opts.subscribers as u64;
    let started = tokio::time::Instant::now();
    let mut data = String::with_capacity(opts.size + 32);
    let mut request = String::with_capacity(opts.size + 128);
    let mut seq: u64 = 0;
    let mut last_progress = (tokio::time::Instant::now(), 0u64);
    while !shared.stop.load(Ordering::Relaxed) {
        // Publication `seq` may go once those up to `seq - window` have
        // reached every subscriber and fewer than `window` requests wait.
        let needed = (seq + 1).saturating_sub(opts.window) * members;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let deliveries_ok = delivered >= needed;
        let requests_ok = publisher.in_flight() < opts.window;
        let due =
            (opts.rate > 0.0).then(|| started + Duration::from_secs_f64(seq as f64 / opts.rate));
        let now = tokio::time::Instant::now();
        if deliveries_ok && requests_ok && due.is_none_or(|d| now >= d) {
            publication_data(&mut data, seq, opts.size);
            publisher.send(seq, &data, &mut request).await?;
            if shared.measuring.load(Ordering::Relaxed) {
                shared.published.fetch_add(1, Ordering::Relaxed);
            }
            seq += 1;
            continue;
        }
        if delivered != last_progress.1 || publisher.in_flight() == 0 {
            last_progress = (now, delivered);
        } else if now.duration_since(last_progress.0) > STALL {
            bail!("deliveries stalled at {delivered} (need {needed}) for {STALL:?}");
        }
        if !deliveries_ok {
            shared.wake_at.store(needed, Ordering::Relaxed);
            if shared.delivered.load(Ordering::Relaxed) >= needed {
                continue;
            }
        }
        let pace = deliveries_ok && requests_ok;
        let sleep_until = due.unwrap_or(now).max(now);
        tokio::select! {
            r = publisher.readable() => {
                r?;
                publisher.take_answers().await?;
            }
            () = shared.progress.notified(), if !deliveries_ok => {}
            () = tokio::time::sleep_until(sleep_until), if pace => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_has_the_asked_size() {
        let mut s = String::new();
        for size in [48, 100, 1000] {
            publication_data(&mut s, 123_456, size);
            assert_eq!(s.len(), size, "{s}");
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["n"], 123_456);
            assert!(v["t"].as_u64().unwrap() > 1_600_000_000_000_000_000);
        }
    }

    #[test]
    fn cdf_points_increase() {
        let v: Vec<f64> = cdf_points().collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(v.last(), Some(&1.0));
    }
}
