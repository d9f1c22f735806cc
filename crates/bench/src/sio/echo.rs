//! Echo with acknowledgements: N sockets, each with exactly one acked event
//! in flight. A socket sends `42<id>["echo","<payload>"]` and waits for
//! `43<id>["<payload>"]`, checks it byte for byte, and sends the next with
//! `id + 1`.
//!
//! As in the WebSocket echo scenario, all sockets are connected first, then
//! start together; after the warm-up the server's CPU time is sampled
//! around the measured window, and the headline figure is acked events per
//! server CPU-second. The payload is ASCII and carries the event's sequence
//! number, so a stale or misrouted ack is caught.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{clip, sleep_watching, split_ack, SioClient};
use crate::histogram::AtomicHistogram;
use crate::procfs;
use crate::target::Target;

/// What to run.
#[derive(Clone, Debug)]
pub struct SioEchoOptions {
    /// The server (its WebSocket target, see [`super::resolve`]).
    pub target: Target,
    /// Sockets to connect.
    pub sockets: usize,
    /// Bytes of the event's string argument.
    pub size: usize,
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
pub struct SioEchoReport {
    /// Always `"sio-echo"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Sockets, each with one acked event in flight.
    pub sockets: usize,
    /// Bytes of the event's string argument.
    pub size: usize,
    /// Acknowledged events in the measured window.
    pub events: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Server CPU time (user + system) spent in the window, in seconds.
    pub server_cpu_seconds: Option<f64>,
    /// The user-space part of `server_cpu_seconds` (the rest is the
    /// kernel's: system calls, TCP, loopback delivery).
    pub server_user_seconds: Option<f64>,
    /// The headline figure: `events / server_cpu_seconds`.
    pub events_per_server_cpu_sec: Option<f64>,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// Client (this process) CPU time in the window, in seconds.
    pub client_cpu_seconds: Option<f64>,
    /// Median emit-to-ack time, in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile emit-to-ack time, in microseconds.
    pub p99_us: Option<f64>,
}

#[derive(Debug, Default)]
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    events: AtomicU64,
    latency_ns: AtomicHistogram,
}

/// Runs the scenario and returns its report.
pub async fn run(opts: &SioEchoOptions) -> Result<SioEchoReport> {
    if opts.sockets == 0 {
        bail!("--sockets must be at least 1");
    }
    if let Some(pid) = opts.server_pid {
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    let read_buf = (opts.size + 64).clamp(4096, 64 * 1024);
    let clients = super::open(&opts.target, opts.sockets, opts.ramp_concurrency, read_buf).await?;

    let shared = Arc::new(Shared::default());
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (n, client) in clients.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let mut go = go_rx.clone();
        let size = opts.size;
        tasks.spawn(async move {
            go.wait_for(|&go| go).await?;
            echo_loop(client, &shared, size)
                .await
                .with_context(|| format!("socket {n}"))
        });
    }
    go_tx.send(true)?;

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

    let events = shared.events.load(Ordering::Relaxed);
    let latency = shared.latency_ns.snapshot();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;

    let (server_cpu_seconds, server_user_seconds) = procfs::window_cpu(server_cpu0, server_cpu1);
    let us = |q| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
    Ok(SioEchoReport {
        scenario: "sio-echo",
        server: opts.label.clone(),
        sockets: opts.sockets,
        size: opts.size,
        events,
        seconds,
        server_cpu_seconds,
        server_user_seconds,
        events_per_server_cpu_sec: server_cpu_seconds
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| events as f64 / cpu),
        events_per_sec: events as f64 / seconds,
        client_cpu_seconds: procfs::ticks_to_seconds(client_cpu0, client_cpu1),
        p50_us: us(0.50),
        p99_us: us(0.99),
    })
}

/// One socket's emit / await-ack loop, until [`Shared::stop`].
async fn echo_loop(mut client: SioClient, shared: &Shared, size: usize) -> Result<()> {
    let mut payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut event = String::with_capacity(size + 32);
    let mut expected = String::with_capacity(size + 32);
    let mut id: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        stamp(&mut payload, id);
        let text = std::str::from_utf8(&payload).context("payload is not UTF-8")?;
        event.clear();
        write!(event, "42{id}[\"echo\",\"{text}\"]")?;
        expected.clear();
        write!(expected, "43{id}[\"{text}\"]")?;
        let sent_at = Instant::now();
        client.send(&event).await?;
        let ack = client.next_packet().await?;
        if *ack != *expected {
            match split_ack(&ack) {
                Some((got, _)) if got != id => bail!("ack {got} while waiting for ack {id}"),
                Some(_) => bail!(
                    "ack {id} is {:?}, expected {:?}",
                    clip(&ack),
                    clip(&expected)
                ),
                None => bail!("expected ack {id}, got {:?}", clip(&ack)),
            }
        }
        if shared.measuring.load(Ordering::Relaxed) {
            let rtt = sent_at.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            shared.events.fetch_add(1, Ordering::Relaxed);
            shared.latency_ns.record(rtt);
        }
        id += 1;
    }
    client.close().await
}

/// Writes `seq` as lowercase hex digits into the start of `payload` (a
/// prefix of them if the payload is shorter).
fn stamp(payload: &mut [u8], seq: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[((seq >> (60 - 4 * i)) & 0xf) as usize];
    }
    let n = payload.len().min(hex.len());
    payload[..n].copy_from_slice(&hex[hex.len() - n..]);
}

#[cfg(test)]
mod tests {
    use super::stamp;

    #[test]
    fn stamps() {
        let mut p = vec![b'a'; 20];
        stamp(&mut p, 255);
        assert_eq!(&p, b"00000000000000ffaaaa");
        let mut short = vec![b'a'; 2];
        stamp(&mut short, 0x1234);
        assert_eq!(&short, b"34");
    }
}
