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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::centrifuge::{json_string, CentrifugeClient, SubscribeOptions};
use crate::histogram::AtomicHistogram;
use crate::http::HttpClient;
use crate::procfs;
use crate::progress::Progress;
use crate::subscriber::{SubKind, SubscribeSpec, Subscriber};
use crate::target::Target;

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

    fn done(&self, started: Instant) {
        let us = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.latency_us.record(us);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Runs the storm and returns its report.
pub async fn run(opts: &StormOptions) -> Result<StormReport> {
    if opts.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if opts.recover.is_some() && opts.subscribe.kind != SubKind::Ws {
        bail!("the recovery storm is for --subscriber ws");
    }
    if let Some(pid) = opts.server_pid {
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    let concurrency = match opts.concurrency {
        0 => opts.connections,
        c => c,
    };
    let tally = Arc::new(Tally::default());
    let positions = match &opts.recover {
        Some((missed, api)) => Some(prepare_recovery(opts, *missed, api).await?),
        None => None,
    };

    let progress = Progress::count(opts.connections as u64, "storm");
    let permits = Arc::new(Semaphore::new(concurrency));
    let spec = Arc::new(opts.subscribe.clone());
    let cpu0 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows0 = procfs::listen_overflows().ok();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..opts.connections {
        let permits = Arc::clone(&permits);
        let spec = Arc::clone(&spec);
        let tally = Arc::clone(&tally);
        let position = positions
            .as_ref()
            .map(|(p, missed)| (p[n].clone(), *missed));
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return None;
            };
            let t0 = Instant::now();
            let result = tokio::time::timeout(CONNECT_TIMEOUT, async {
                match position {
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
    let mut held = Vec::with_capacity(opts.connections);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Some(h)) = joined {
            held.push(h);
        }
        progress.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu1 = opts.server_pid.map(procfs::cpu_ticks).transpose()?;
    let overflows1 = procfs::listen_overflows().ok();
    progress.finish();
    drop(held);

    let completed = tally.completed.load(Ordering::Relaxed);
    let server_cpu_seconds = crate::sio::ticks_to_seconds(cpu0, cpu1);
    let latency = tally.latency_us.snapshot();
    let ms = |q| latency.quantile(q).map(|us| us as f64 / 1000.0);
    let first_error = tally
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(StormReport {
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
        failed: tally.failed.load(Ordering::Relaxed),
        first_error,
        seconds,
        per_sec: completed as f64 / seconds,
        server_cpu_seconds,
        server_cpu_us_per_connection: server_cpu_seconds
            .filter(|_| completed > 0)
            .map(|cpu| cpu / completed as f64 * 1e6),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: (completed > 0).then(|| tally.max_us.load(Ordering::Relaxed) as f64 / 1000.0),
        listen_overflows: overflows0.zip(overflows1).map(|(a, b)| b.saturating_sub(a)),
        missed: opts.recover.as_ref().map(|(m, _)| *m),
        recovered: opts
            .recover
            .as_ref()
            .map(|_| tally.recovered.load(Ordering::Relaxed)),
    })
}

/// A connection kept open until the end of the storm (only dropped).
type Held = Box<dyn std::any::Any + Send>;

/// The recovery storm's first phase: subscribe everyone recoverably, note
/// the positions, disconnect, publish `missed` times. Returns each
/// client's `(epoch, offset)` and the publications missed.
async fn prepare_recovery(
    opts: &StormOptions,
    missed: u64,
    api: &ApiSpec,
) -> Result<(Vec<(String, u64)>, u64)> {
    let spec = &opts.subscribe;
    let progress = Progress::count(opts.connections as u64, "subscribing");
    let permits = Arc::new(Semaphore::new(200));
    let shared = Arc::new(spec.clone());
    let mut tasks = JoinSet::new();
    for n in 0..opts.connections {
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
    let mut clients = Vec::with_capacity(opts.connections);
    let mut positions = vec![(String::new(), 0); opts.connections];
    while let Some(joined) = tasks.join_next().await {
        let (n, c, position) = joined.context("subscribe task failed")??;
        positions[n] = position;
        clients.push(c);
        progress.inc(1);
    }
    progress.finish();
    for c in clients {
        let _ = c.close().await;
    }
    // Let the server notice every close before publishing.
    tokio::time::sleep(Duration::from_secs(1)).await;
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
    Ok((positions, missed))
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
