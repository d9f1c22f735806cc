//! Connection storms: N clients connecting (and subscribing) at once, and
//! the same with recovery.
//!
//! - **Connect storm**: N subscribers (any [`SubKind`]) open with at most
//!   `concurrency` connects in flight (N: all at once). Each one's time
//!   from its TCP connect to its subscribe acknowledgement is recorded;
//!   failures are counted, not fatal. Figures: completed connects per
//!   second of the storm, the latency percentiles, and server CPU per
//!   connection.
//! - **Recovery storm** (plain WebSocket only): N subscribers subscribe
//!   recoverably to a channel that keeps history and note the stream
//!   position; all disconnect; the publisher makes `missed` publications
//!   through the server API; then all N reconnect at once, each
//!   resubscribing with `recover` from its position. Every reply must say
//!   `recovered: true` and carry exactly the missed publications; the
//!   figures are the same as the connect storm's, plus how many recovered.
//!
//! Owns the storm and its checks; how a subscriber connects is
//! [`crate::subscriber`]'s and [`crate::centrifuge`]'s.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::centrifuge::{json_string, CentrifugeClient, SubscribeOptions};
use crate::histogram::{AtomicHistogram, Histogram};
use crate::http::HttpClient;
use crate::procfs;
use crate::progress::Progress;
use crate::subscriber::{SubKind, SubscribeSpec, Subscriber};
use crate::target::Target;
use crate::workers::{per_process, shares, Cmd, Event, Job, Workers};

/// How long one connect (with its subscribe) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The server API, for the recovery storm's publications.
#[derive(Clone, Debug)]
pub struct ApiSpec {
    /// The server (from `http://host:port`).
    pub target: Target,
    /// The `X-API-Key` value.
    pub api_key: String,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct StormOptions {
    /// How clients connect and what they subscribe to.
    pub subscribe: SubscribeSpec,
    /// Clients.
    pub connections: usize,
    /// Connects in flight at most (0: all at once).
    pub concurrency: usize,
    /// Recovery storm: publications made while everyone is away, and the
    /// API to make them with. `None`: a plain connect storm.
    pub recover: Option<(u64, ApiSpec)>,
    /// The server's process id, for its CPU time.
    pub server_pid: Option<u32>,
    /// Free-form name of the server, copied into the report.
    pub label: Option<String>,
}

/// One line of results (serialized as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct StormReport {
    /// `"storm"` or `"recovery-storm"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// The clients' protocol.
    pub transport: SubKind,
    /// Clients that tried.
    pub connections: usize,
    /// Connects in flight at most.
    pub concurrency: usize,
    /// Clients that connected and subscribed.
    pub completed: u64,
    /// Clients that failed (refused, timed out, or, in a recovery storm,
    /// not recovered exactly).
    pub failed: u64,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
    /// From the first connect to the last completion, in seconds.
    pub seconds: f64,
    /// `completed / seconds`.
    pub per_sec: f64,
    /// Server CPU time over the storm, in seconds.
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU per completed client, in microseconds.
    pub server_cpu_us_per_connection: Option<f64>,
    /// Median time from TCP connect to subscribe reply, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Slowest, in milliseconds.
    pub max_ms: Option<f64>,
    /// Connections the host dropped because the listen queue was full
    /// during the storm (each costs the client a SYN retransmit, 1 s).
    pub listen_overflows: Option<u64>,
    /// Recovery storm: publications missed by each client.
    pub missed: Option<u64>,
    /// Recovery storm: clients whose reply said `recovered: true` with all
    /// the missed publications.
    pub recovered: Option<u64>,
    /// Client processes the clients were spread over (`--processes`;
    /// absent when they all ran in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
}

#[derive(Debug, Default)]
struct Tally {
    completed: AtomicU64,
    failed: AtomicU64,
    recovered: AtomicU64,
    latency_us: AtomicHistogram,
    max_us: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, e: &anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(format!("{e:#}"));
        }
    }

    /// The counts so far.
    fn figures(&self) -> Figures {
        Figures {
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            first_error: self
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            latency: self.latency_us.snapshot(),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }

    fn done(&self, started: Instant) {
        let us = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.latency_us.record(us);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Runs the storm and returns its report.
pub async fn run(opts: &StormOptions) -> Result<StormReport> {
    let concurrency = check_options(opts)?;
    let tally = Arc::new(Tally::default());
    let positions = match &opts.recover {
        Some((missed, api)) => {
            let positions = subscribe_positions(&opts.subscribe, 0..opts.connections).await?;
            // Let the server notice every close before publishing.
            tokio::time::sleep(Duration::from_secs(1)).await;
            publish_missed(&opts.subscribe, api, *missed).await?;
            Some((positions, *missed))
        }
        None => None,
    };

    let progress = Progress::count(opts.connections as u64, "storm");
    let cpu0 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows0 = procfs::listen_overflows().ok();
    let started = Instant::now();
    let held = storm_range(
        &opts.subscribe,
        0..opts.connections,
        concurrency,
        positions,
        &tally,
        &progress,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu1 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows1 = procfs::listen_overflows().ok();
    progress.finish();
    drop(held);

    let figures = tally.figures();
    Ok(figures.report(
        opts,
        concurrency,
        seconds,
        crate::procfs::ticks_to_seconds(cpu0, cpu1),
        overflows0.zip(overflows1).map(|(a, b)| b.saturating_sub(a)),
        None,
    ))
}

/// Refuses what cannot run; returns the connects in flight at most.
fn check_options(opts: &StormOptions) -> Result<usize> {
    if opts.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if opts.recover.is_some() && opts.subscribe.kind != SubKind::Ws {
        bail!("the recovery storm is for --subscriber ws");
    }
    if let Some(pid) = opts.server_pid {
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    Ok(match opts.concurrency {
        0 => opts.connections,
        c => c,
    })
}

/// What a storm (or one process's share of it) counted.
#[derive(Debug)]
struct Figures {
    completed: u64,
    failed: u64,
    recovered: u64,
    first_error: Option<String>,
    /// Connect-to-reply microseconds.
    latency: Histogram,
    max_us: u64,
}

impl Figures {
    /// Adds `other`'s counts to these (the first error stays).
    fn merge(&mut self, other: Figures) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.recovered += other.recovered;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.merge(&other.latency);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The result line.
    fn report(
        self,
        opts: &StormOptions,
        concurrency: usize,
        seconds: f64,
        server_cpu_seconds: Option<f64>,
        listen_overflows: Option<u64>,
        processes: Option<usize>,
    ) -> StormReport {
        let completed = self.completed;
        let ms = |q| self.latency.quantile(q).map(|us| us as f64 / 1000.0);
        StormReport {
            scenario: if opts.recover.is_some() {
                "recovery-storm"
            } else {
                "storm"
            },
            server: opts.label.clone(),
            transport: opts.subscribe.kind,
            connections: opts.connections,
            concurrency,
            completed,
            failed: self.failed,
            first_error: self.first_error.clone(),
            seconds,
            per_sec: completed as f64 / seconds,
            server_cpu_seconds,
            server_cpu_us_per_connection: server_cpu_seconds
                .filter(|_| completed > 0)
                .map(|cpu| cpu / completed as f64 * 1e6),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: (completed > 0).then(|| self.max_us as f64 / 1000.0),
            listen_overflows,
            missed: opts.recover.as_ref().map(|(m, _)| *m),
            recovered: opts.recover.as_ref().map(|_| self.recovered),
            processes,
        }
    }
}

/// The storm proper: clients numbered `range` connect (and, with
/// `positions`, recover from their position), at most `concurrency` at a
/// time, counted in `tally`. Returns the connections, to be held until
/// the storm is over everywhere.
async fn storm_range(
    spec: &SubscribeSpec,
    range: Range<usize>,
    concurrency: usize,
    positions: Option<(Vec<(String, u64)>, u64)>,
    tally: &Arc<Tally>,
    progress: &Progress,
) -> Vec<Held> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let spec = Arc::new(spec.clone());
    let first = range.start;
    let count = range.len();
    let mut tasks = JoinSet::new();
    for n in range {
        let permits = Arc::clone(&permits);
        let spec = Arc::clone(&spec);
        let tally = Arc::clone(tally);
        let position = positions
            .as_ref()
            .and_then(|(p, missed)| Some((p.get(n - first)?.clone(), *missed)));
        let recovering = positions.is_some();
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return None;
            };
            let t0 = Instant::now();
            let result = tokio::time::timeout(CONNECT_TIMEOUT, async {
                match position {
                    None if recovering => bail!("no position noted"),
                    None => Subscriber::open(&spec, n)
                        .await
                        .map(|s| Box::new(s) as Held),
                    Some((position, missed)) => recover_one(&spec, n, position, missed, &tally)
                        .await
                        .map(|c| Box::new(c) as Held),
                }
            })
            .await
            .context("timed out")
            .and_then(|r| r);
            match result {
                Ok(held) => {
                    tally.done(t0);
                    Some(held)
                }
                Err(e) => {
                    tally.fail(&e.context(format!("client {n}")));
                    None
                }
            }
        });
    }
    // Keep every connection open until the storm is over.
    let mut held = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Some(h)) = joined {
            held.push(h);
        }
        progress.inc(1);
    }
    held
}

/// Runs the storm with the clients spread over `processes` client
/// processes ([`crate::workers`], each with `threads` runtime threads):
/// every process connects first (and for a recovery storm subscribes,
/// notes positions and disconnects, then this one publishes), then all
/// are told to go at once. The storm lasts from the go to the last
/// process's end; the counts add up and the latency histograms merge.
/// `concurrency` is shared out among the processes.
pub async fn run_processes(
    opts: &StormOptions,
    processes: usize,
    threads: usize,
) -> Result<StormReport> {
    let concurrency = check_options(opts)?;
    let jobs: Vec<Job> = shares(0, opts.connections, processes)
        .into_iter()
        .map(|r| Job::Storm {
            spec: opts.subscribe.clone(),
            first: r.start,
            count: r.len(),
            concurrency: per_process(concurrency, processes),
            recover: opts.recover.as_ref().map(|(missed, _)| *missed),
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, threads)?;
    workers
        .collect(|event| match event {
            Event::Ready { .. } => Ok(Some(())),
            other => bail!("expected ready, got {other:?}"),
        })
        .await?;
    if let Some((missed, api)) = &opts.recover {
        workers.send_all(&Cmd::Prepare)?;
        workers
            .collect(|event| match event {
                Event::Prepared => Ok(Some(())),
                other => bail!("expected prepared, got {other:?}"),
            })
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        publish_missed(&opts.subscribe, api, *missed).await?;
    }

    let cpu0 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows0 = procfs::listen_overflows().ok();
    let started = Instant::now();
    workers.send_all(&Cmd::Go)?;
    let shares = workers
        .collect(|event| match event {
            Event::StormDone {
                completed,
                failed,
                recovered,
                first_error,
                latency,
                max_us,
            } => Ok(Some(Figures {
                completed,
                failed,
                recovered,
                first_error,
                latency: Histogram::from_pairs(&latency)?,
                max_us,
            })),
            other => bail!("expected the storm's figures, got {other:?}"),
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu1 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows1 = procfs::listen_overflows().ok();
    workers.finish()?;

    let mut figures = Figures {
        completed: 0,
        failed: 0,
        recovered: 0,
        first_error: None,
        latency: Histogram::empty(),
        max_us: 0,
    };
    for share in shares {
        figures.merge(share);
    }
    Ok(figures.report(
        opts,
        concurrency,
        seconds,
        crate::procfs::ticks_to_seconds(cpu0, cpu1),
        overflows0.zip(overflows1).map(|(a, b)| b.saturating_sub(a)),
        Some(processes),
    ))
}

/// A client process's side of [`run_processes`]: on [`Cmd::Prepare`]
/// (recovery storm) subscribes its clients and notes their positions, on
/// [`Cmd::Go`] runs its share of the storm and reports; then holds the
/// connections until the parent closes its input.
pub(crate) async fn worker(
    spec: &SubscribeSpec,
    range: Range<usize>,
    concurrency: usize,
    recover: Option<u64>,
    mut cmds: tokio::sync::mpsc::UnboundedReceiver<Cmd>,
) -> Result<()> {
    crate::workers::emit(&Event::Ready { opened: 0 });
    let concurrency = match concurrency {
        0 => range.len(),
        c => c,
    };
    let mut positions = None;
    let mut held = Vec::new();
    loop {
        match crate::workers::next_cmd(&mut cmds).await? {
            Cmd::Prepare => {
                let missed = recover.context("not a recovery storm")?;
                positions = Some((subscribe_positions(spec, range.clone()).await?, missed));
                crate::workers::emit(&Event::Prepared);
            }
            Cmd::Go => {
                if recover.is_some() && positions.is_none() {
                    bail!("go before prepare in a recovery storm");
                }
                let tally = Arc::new(Tally::default());
                let progress = Progress::count(range.len() as u64, "storm");
                held = storm_range(
                    spec,
                    range.clone(),
                    concurrency,
                    positions.take(),
                    &tally,
                    &progress,
                )
                .await;
                let f = tally.figures();
                crate::workers::emit(&Event::StormDone {
                    completed: f.completed,
                    failed: f.failed,
                    recovered: f.recovered,
                    first_error: f.first_error,
                    latency: f.latency.to_pairs(),
                    max_us: f.max_us,
                });
            }
            other => bail!("unexpected command {other:?} (holding {})", held.len()),
        }
    }
}

/// A connection kept open until the end of the storm (only dropped).
type Held = Box<dyn std::any::Any + Send>;

/// The recovery storm's first phase: clients numbered `range` subscribe
/// recoverably, note their position (`(epoch, offset)`, in `range`
/// order) and disconnect.
async fn subscribe_positions(
    spec: &SubscribeSpec,
    range: Range<usize>,
) -> Result<Vec<(String, u64)>> {
    let progress = Progress::count(range.len() as u64, "subscribing");
    let permits = Arc::new(Semaphore::new(200));
    let shared = Arc::new(spec.clone());
    let first = range.start;
    let count = range.len();
    let mut tasks = JoinSet::new();
    for n in range {
        let permits = Arc::clone(&permits);
        let spec = Arc::clone(&shared);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let mut c =
                CentrifugeClient::connect(&spec.target, spec.read_buf, token(&spec, n).as_deref())
                    .await?;
            let r = c
                .subscribe_with(
                    &spec.channel,
                    &SubscribeOptions {
                        recoverable: true,
                        ..SubscribeOptions::default()
                    },
                )
                .await?;
            let epoch = r
                .epoch
                .context("the subscribe reply has no epoch: does the channel keep history?")?;
            Ok::<_, anyhow::Error>((n, c, (epoch, r.offset)))
        });
    }
    let mut clients = Vec::with_capacity(count);
    let mut positions = vec![(String::new(), 0); count];
    while let Some(joined) = tasks.join_next().await {
        let (n, c, position) = joined.context("subscribe task failed")??;
        positions[n - first] = position;
        clients.push(c);
        progress.inc(1);
    }
    progress.finish();
    for c in clients {
        let _ = c.close().await;
    }
    Ok(positions)
}

/// The recovery storm's publications, made while everyone is away.
async fn publish_missed(spec: &SubscribeSpec, api: &ApiSpec, missed: u64) -> Result<()> {
    let mut http = HttpClient::connect(&api.target, Some(api.api_key.clone())).await?;
    let channel = json_string(&spec.channel);
    for i in 0..missed {
        let r = http
            .post(
                "/api/publish",
                &format!("{{\"channel\":{channel},\"data\":{{\"missed\":{i}}}}}"),
            )
            .await?;
        if r.status != 200 || !r.body.starts_with("{\"result\"") {
            bail!("publish failed: {} {}", r.status, r.body);
        }
    }
    Ok(())
}

/// One client of the recovery storm: reconnect, resubscribe recovering
/// from `position`, check that exactly `missed` publications came back.
async fn recover_one(
    spec: &SubscribeSpec,
    n: usize,
    position: (String, u64),
    missed: u64,
    tally: &Tally,
) -> Result<CentrifugeClient> {
    let mut c =
        CentrifugeClient::connect(&spec.target, spec.read_buf, token(spec, n).as_deref()).await?;
    let r = c
        .subscribe_with(
            &spec.channel,
            &SubscribeOptions {
                recoverable: true,
                recover_from: Some(position),
            },
        )
        .await?;
    if !r.recovered {
        bail!("not recovered");
    }
    if r.publications as u64 != missed {
        bail!("recovered {} publications, missed {missed}", r.publications);
    }
    tally.recovered.fetch_add(1, Ordering::Relaxed);
    Ok(c)
}

/// The connection token of client `n`, if the spec signs tokens.
fn token(spec: &SubscribeSpec, n: usize) -> Option<String> {
    spec.token_secret
        .as_deref()
        .map(|secret| crate::jwt::hs256(secret, &format!("bench{n}"), None))
}
