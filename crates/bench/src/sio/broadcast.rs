//! Room broadcast: N sockets join room `r` (`42<id>["join","r"]`, acked);
//! one more socket, the publisher, which is in no room, emits
//! `42<id>["bcast","r",{"t":T,"n":SEQ,"p":"<pad>"}]` and the server emits
//! `msg` with that payload to every socket of the room.
//!
//! `T` is the publisher's send time (nanoseconds since the run started, on
//! this process's monotonic clock), so each receiver computes the
//! emit-to-receipt latency of its delivery; `SEQ` numbers the broadcasts
//! and every receiver checks it gets each one, in order.
//!
//! The publisher waits for the server's ack of each `bcast` before the
//! next, and keeps at most `window` broadcasts in flight (sent, but not yet
//! received by every socket): a server is never asked to queue more than
//! `window` messages per socket, so none drops or disconnects a socket for
//! being slow, and the figure is the rate the server sustains end to end.
//! With `rate` > 0 broadcasts are also paced to that many per second (the
//! latency of a steady load below saturation); with 0 they go as fast as
//! acks and the window allow.
//!
//! Figures: deliveries per second, deliveries per server CPU-second and the
//! latency percentiles of the deliveries received in the measured window.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{clip, json_u64_field, sleep_watching, split_ack, SioClient};
use crate::histogram::AtomicHistogram;
use crate::procfs;
use crate::target::Target;

/// A run fails if deliveries stop progressing for this long.
const STALL: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct SioBroadcastOptions {
    /// The server (its WebSocket target, see [`super::resolve`]).
    pub target: Target,
    /// Sockets in the room (the publisher comes on top).
    pub sockets: usize,
    /// The room's name.
    pub room: String,
    /// Bytes of padding in each payload (ASCII).
    pub size: usize,
    /// Broadcasts per second; 0 for as fast as acks and the window allow.
    pub rate: f64,
    /// Most broadcasts in flight (sent but not yet received by all).
    pub window: u64,
    /// Measured duration.
    pub duration: Duration,
    /// Load before measuring starts.
    pub warmup: Duration,
    /// The server's process id, for its CPU time; `None` skips CPU figures.
    pub server_pid: Option<u32>,
    /// Socket handshakes in flight while connecting.
    pub ramp_concurrency: usize,
    /// Free-form name of the server, copied into the report.
    pub label: Option<String>,
}

/// One line of results (serialized as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct SioBroadcastReport {
    /// Always `"sio-broadcast"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Sockets in the room.
    pub sockets: usize,
    /// Bytes of padding in each payload.
    pub size: usize,
    /// Broadcasts per second asked for (0: as fast as possible).
    pub rate: f64,
    /// Most broadcasts in flight.
    pub window: u64,
    /// Broadcasts sent in the measured window.
    pub broadcasts: u64,
    /// Messages received by the room's sockets in the measured window.
    pub deliveries: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// `deliveries / seconds`.
    pub deliveries_per_sec: f64,
    /// Server CPU time (user + system) spent in the window, in seconds.
    pub server_cpu_seconds: Option<f64>,
    /// The user-space part of `server_cpu_seconds` (the rest is the
    /// kernel's: system calls, TCP, loopback delivery).
    pub server_user_seconds: Option<f64>,
    /// `deliveries / server_cpu_seconds`.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// Client (this process) CPU time in the window, in seconds.
    pub client_cpu_seconds: Option<f64>,
    /// Median emit-to-receipt time, in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile emit-to-receipt time, in microseconds.
    pub p99_us: Option<f64>,
}

#[derive(Debug)]
struct Shared {
    /// Time zero of the timestamps in the payloads.
    base: Instant,
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Every delivery so far (flow control).
    delivered: AtomicU64,
    /// Deliveries in the measured window.
    measured: AtomicU64,
    /// Broadcasts acked in the measured window.
    broadcasts: AtomicU64,
    latency_ns: AtomicHistogram,
    /// The publisher wants a wake-up once `delivered` reaches this.
    wake_at: AtomicU64,
    progress: Notify,
}

/// Runs the scenario and returns its report.
pub async fn run(opts: &SioBroadcastOptions) -> Result<SioBroadcastReport> {
    if opts.sockets == 0 {
        bail!("--sockets must be at least 1");
    }
    if opts.window == 0 {
        bail!("--window must be at least 1");
    }
    if !(opts.rate >= 0.0 && opts.rate.is_finite()) {
        bail!("--rate must be 0 or positive");
    }
    if opts.room.contains(['"', '\\']) || opts.room.chars().any(char::is_control) {
        bail!("--room must need no JSON escaping");
    }
    if let Some(pid) = opts.server_pid {
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    let read_buf = (opts.size + 128).clamp(4096, 64 * 1024);
    let receivers =
        super::open(&opts.target, opts.sockets, opts.ramp_concurrency, read_buf).await?;
    let receivers = join_all(receivers, &opts.room).await?;
    let publisher = super::open(&opts.target, 1, 1, read_buf)
        .await?
        .pop()
        .context("no publisher socket")?;

    let shared = Arc::new(Shared {
        base: Instant::now(),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        broadcasts: AtomicU64::new(0),
        latency_ns: AtomicHistogram::default(),
        wake_at: AtomicU64::new(u64::MAX),
        progress: Notify::new(),
    });
    let mut tasks = JoinSet::new();
    for (n, client) in receivers.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            receive_loop(client, &shared)
                .await
                .with_context(|| format!("receiving socket {n}"))
        });
    }
    {
        let shared = Arc::clone(&shared);
        let opts = opts.clone();
        tasks.spawn(async move {
            publish_loop(publisher, &shared, &opts)
                .await
                .context("publisher")
        });
    }

    let own_pid = std::process::id();
    sleep_watching(opts.warmup, &mut tasks).await?;
    let server_cpu0 = opts.server_pid.map(procfs::cpu_times).transpose()?;
    let client_cpu0 = procfs::cpu_ticks(own_pid).ok();
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    sleep_watching(opts.duration, &mut tasks).await?;
    shared.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu1 = opts.server_pid.map(procfs::cpu_times).transpose()?;
    let client_cpu1 = procfs::cpu_ticks(own_pid).ok();
    shared.stop.store(true, Ordering::Relaxed);

    let deliveries = shared.measured.load(Ordering::Relaxed);
    let broadcasts = shared.broadcasts.load(Ordering::Relaxed);
    let latency = shared.latency_ns.snapshot();
    // Dropping the sockets closes them; the server tidies up on its own.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let (server_cpu_seconds, server_user_seconds) = procfs::window_cpu(server_cpu0, server_cpu1);
    let us = |q| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
    Ok(SioBroadcastReport {
        scenario: "sio-broadcast",
        server: opts.label.clone(),
        sockets: opts.sockets,
        size: opts.size,
        rate: opts.rate,
        window: opts.window,
        broadcasts,
        deliveries,
        seconds,
        deliveries_per_sec: deliveries as f64 / seconds,
        server_cpu_seconds,
        server_user_seconds,
        deliveries_per_server_cpu_sec: server_cpu_seconds
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| deliveries as f64 / cpu),
        client_cpu_seconds: procfs::ticks_to_seconds(client_cpu0, client_cpu1),
        p50_us: us(0.50),
        p99_us: us(0.99),
    })
}

/// Has every socket join `room` and waits for all the acks.
async fn join_all(clients: Vec<SioClient>, room: &str) -> Result<Vec<SioClient>> {
    let count = clients.len();
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let join = format!("420[\"join\",\"{room}\"]");
        tasks.spawn(async move {
            client.send(&join).await?;
            let ack = tokio::time::timeout(Duration::from_secs(30), client.next_packet())
                .await
                .context("join not acknowledged in 30 s")??;
            match split_ack(&ack) {
                Some((0, _)) => Ok(client),
                _ => bail!("expected the join ack, got {:?}", clip(&ack)),
            }
        });
    }
    let mut joined = Vec::with_capacity(count);
    while let Some(result) = tasks.join_next().await {
        joined.push(result.context("join task failed")??);
    }
    Ok(joined)
}

/// One room socket: count and time each `msg`, check their order.
async fn receive_loop(mut client: SioClient, shared: &Shared) -> Result<()> {
    let mut next_seq: u64 = 0;
    loop {
        let packet = client.next_packet().await?;
        let now = shared.base.elapsed().as_nanos() as u64;
        let Some(payload) = packet.strip_prefix("42[\"msg\",") else {
            bail!("expected a msg event, got {:?}", clip(&packet));
        };
        let (Some(sent), Some(seq)) = (json_u64_field(payload, "t"), json_u64_field(payload, "n"))
        else {
            bail!("msg without t and n: {:?}", clip(&packet));
        };
        if seq != next_seq {
            bail!("received broadcast {seq}, expected {next_seq}");
        }
        next_seq += 1;
        if shared.measuring.load(Ordering::Relaxed) {
            shared.measured.fetch_add(1, Ordering::Relaxed);
            shared.latency_ns.record(now.saturating_sub(sent));
        }
        let delivered = shared.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if delivered >= shared.wake_at.load(Ordering::Relaxed) {
            shared.progress.notify_one();
        }
    }
}

/// The publisher: emit `bcast`, await its ack, respect the window and the
/// rate, until [`Shared::stop`].
async fn publish_loop(
    mut client: SioClient,
    shared: &Shared,
    opts: &SioBroadcastOptions,
) -> Result<()> {
    let members = opts.sockets as u64;
    let pad: String = (0..opts.size)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let started = tokio::time::Instant::now();
    let mut event = String::with_capacity(opts.size + 96);
    let mut seq: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        // Broadcast `seq` may go once broadcasts up to `seq - window` have
        // reached every socket.
        let needed = (seq + 1).saturating_sub(opts.window) * members;
        wait_delivered(shared, needed).await?;
        if opts.rate > 0.0 {
            let due = started + Duration::from_secs_f64(seq as f64 / opts.rate);
            tokio::time::sleep_until(due).await;
        }
        let sent = shared.base.elapsed().as_nanos() as u64;
        event.clear();
        write!(
            event,
            "42{seq}[\"bcast\",\"{}\",{{\"t\":{sent},\"n\":{seq},\"p\":\"{pad}\"}}]",
            opts.room
        )?;
        client.send(&event).await?;
        let ack = tokio::time::timeout(STALL, client.next_packet())
            .await
            .with_context(|| format!("bcast {seq} not acknowledged in {STALL:?}"))??;
        match split_ack(&ack) {
            Some((id, _)) if id == seq => {}
            _ => bail!("expected the ack of bcast {seq}, got {:?}", clip(&ack)),
        }
        if shared.measuring.load(Ordering::Relaxed) {
            shared.broadcasts.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
    }
    Ok(())
}

/// Waits until `needed` deliveries have arrived; fails if they stall.
async fn wait_delivered(shared: &Shared, needed: u64) -> Result<()> {
    loop {
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered >= needed {
            return Ok(());
        }
        shared.wake_at.store(needed, Ordering::Relaxed);
        let notified = shared.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.delivered.load(Ordering::Relaxed) >= needed {
            return Ok(());
        }
        if tokio::time::timeout(STALL, notified).await.is_err() {
            let now = shared.delivered.load(Ordering::Relaxed);
            if now == delivered {
                bail!("deliveries stalled at {now} of {needed} for {STALL:?}");
            }
        }
    }
}
