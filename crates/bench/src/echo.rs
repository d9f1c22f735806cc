//! The echo scenario: N connections, each with exactly one message in
//! flight (send, wait for the echo, check it, send the next).
//!
//! All connections are opened first (see [`crate::ramp`]), then all start
//! together. After the warm-up the server's CPU time is sampled, messages
//! and round-trip latencies are counted for the measured duration, and the
//! CPU time is sampled again. The headline figure is messages per server
//! CPU-second: on a shared, noisy machine it is far steadier than messages
//! per wall-clock second, which is reported too.
//!
//! Every echo is checked: same kind, same length, same bytes. Each message
//! carries the connection's sequence number in its first bytes, so a stale
//! or misrouted echo is caught.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use ws_proto::Message;

use crate::client::Client;
use crate::histogram::AtomicHistogram;
use crate::procfs;
use crate::target::Target;

/// What to run.
#[derive(Clone, Debug)]
pub struct EchoOptions {
    /// The server.
    pub target: Target,
    /// Connections to open.
    pub connections: usize,
    /// Payload size of each message, in bytes.
    pub size: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Load before measuring starts.
    pub warmup: Duration,
    /// The server's process id, for its CPU time; `None` skips CPU figures.
    pub server_pid: Option<u32>,
    /// Send text messages instead of binary ones.
    pub text: bool,
    /// Connection handshakes in flight while opening.
    pub ramp_concurrency: usize,
    /// Free-form name of the server, copied into the report.
    pub label: Option<String>,
}

/// One line of results (serialized as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct EchoReport {
    /// Always `"echo"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Whether messages were text (else binary).
    pub text: bool,
    /// Connections, each with one message in flight.
    pub connections: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Echoes completed in the measured window.
    pub messages: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Server CPU time (user + system) spent in the window, in seconds.
    pub server_cpu_seconds: Option<f64>,
    /// The user-space part of `server_cpu_seconds`; the rest is the
    /// kernel's (system calls, TCP, wake-ups).
    pub server_user_seconds: Option<f64>,
    /// The headline figure: `messages / server_cpu_seconds`.
    pub msgs_per_server_cpu_sec: Option<f64>,
    /// `messages / seconds`.
    pub msgs_per_sec: f64,
    /// Client (this process) CPU time in the window, in seconds: close to
    /// `seconds` means the client, not the server, was the bottleneck.
    pub client_cpu_seconds: Option<f64>,
    /// Median round-trip time, in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile round-trip time, in microseconds.
    pub p99_us: Option<f64>,
}

/// State shared by the connection tasks and the measuring loop.
#[derive(Debug, Default)]
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    messages: AtomicU64,
    latency_ns: AtomicHistogram,
}

/// Runs the scenario and returns its report.
pub async fn run(opts: &EchoOptions) -> Result<EchoReport> {
    if opts.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if let Some(pid) = opts.server_pid {
        // Fail before loading anything if the server is not running.
        procfs::cpu_ticks(pid).context("is --server-pid the server's process id?")?;
    }
    let read_buf = (opts.size + 14).clamp(4096, 64 * 1024);
    let clients = crate::ramp::open(
        &opts.target,
        opts.connections,
        opts.ramp_concurrency,
        read_buf,
    )
    .await?;

    let shared = Arc::new(Shared::default());
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (id, client) in clients.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let mut go = go_rx.clone();
        let (size, text) = (opts.size, opts.text);
        tasks.spawn(async move {
            go.wait_for(|&go| go).await?;
            echo_loop(client, &shared, size, text)
                .await
                .with_context(|| format!("connection {id}"))
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

    let messages = shared.messages.load(Ordering::Relaxed);
    let latency = shared.latency_ns.snapshot();
    shared.stop.store(true, Ordering::Relaxed);
    // Let every connection finish its echo and close cleanly; a server that
    // cannot manage that in a few seconds has already been measured.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;

    let (server_cpu_seconds, server_user_seconds) = procfs::window_cpu(server_cpu0, server_cpu1);
    let client_cpu_seconds = procfs::ticks_to_seconds(client_cpu0, client_cpu1);
    let us = |q| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
    Ok(EchoReport {
        scenario: "echo",
        server: opts.label.clone(),
        text: opts.text,
        connections: opts.connections,
        size: opts.size,
        messages,
        seconds,
        server_cpu_seconds,
        server_user_seconds,
        msgs_per_server_cpu_sec: server_cpu_seconds
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| messages as f64 / cpu),
        msgs_per_sec: messages as f64 / seconds,
        client_cpu_seconds,
        p50_us: us(0.50),
        p99_us: us(0.99),
    })
}

/// Sleeps for `duration`, failing early if a connection task fails (a
/// benchmark with a broken connection measures the wrong thing).
async fn sleep_watching(duration: Duration, tasks: &mut JoinSet<Result<()>>) -> Result<()> {
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        joined = tasks.join_next() => match joined {
            Some(Ok(Ok(()))) => bail!("a connection stopped before the end of the run"),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(e).context("connection task panicked"),
            None => bail!("no connection left"),
        },
    }
}

/// One connection's send / await-echo loop, until [`Shared::stop`].
async fn echo_loop(mut client: Client, shared: &Shared, size: usize, text: bool) -> Result<()> {
    // Text payloads are ASCII so that stamping a sequence number keeps them
    // valid UTF-8.
    let mut payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut seq: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        stamp(&mut payload, seq, text);
        let sent_at = Instant::now();
        if text {
            let text = std::str::from_utf8(&payload).context("text payload is not UTF-8")?;
            client.send_text(text).await?;
        } else {
            client.send_binary(&payload).await?;
        }
        loop {
            match client.next_message().await? {
                Message::Binary(echo) if !text => {
                    check_echo(&echo, &payload, seq)?;
                    break;
                }
                Message::Text(echo) if text => {
                    check_echo(echo.as_bytes(), &payload, seq)?;
                    break;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(frame) => bail!("server closed the connection: {frame:?}"),
                other => bail!("echo of the wrong kind: {:?}", kind(&other)),
            }
        }
        if shared.measuring.load(Ordering::Relaxed) {
            let rtt = sent_at.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            shared.messages.fetch_add(1, Ordering::Relaxed);
            shared.latency_ns.record(rtt);
        }
        seq = seq.wrapping_add(1);
    }
    client.close().await
}

/// Writes `seq` into the start of `payload`: its bytes for binary, lowercase
/// hex digits for text. Payloads shorter than the stamp carry a prefix of it.
fn stamp(payload: &mut [u8], seq: u64, text: bool) {
    if text {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 16];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = DIGITS[((seq >> (60 - 4 * i)) & 0xf) as usize];
        }
        let n = payload.len().min(hex.len());
        payload[..n].copy_from_slice(&hex[hex.len() - n..]);
    } else {
        let bytes = seq.to_le_bytes();
        let n = payload.len().min(bytes.len());
        payload[..n].copy_from_slice(&bytes[..n]);
    }
}

/// Checks that an echo matches what was sent.
fn check_echo(echo: &[u8], sent: &[u8], seq: u64) -> Result<()> {
    if echo.len() != sent.len() {
        bail!(
            "echo of message {seq} has {} bytes, sent {}",
            echo.len(),
            sent.len()
        );
    }
    if echo != sent {
        bail!("echo of message {seq} differs from what was sent");
    }
    Ok(())
}

/// A message's kind, for error messages.
fn kind(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_fit_any_size() {
        for size in [0, 1, 7, 8, 20, 1024] {
            let mut p = vec![b'a'; size];
            stamp(&mut p, 0x0123_4567_89ab_cdef, false);
            stamp(&mut p, 0x0123_4567_89ab_cdef, true);
            assert!(std::str::from_utf8(&p).is_ok());
        }
        let mut p = vec![b'a'; 20];
        stamp(&mut p, 255, true);
        assert_eq!(&p[..16], b"00000000000000ff");
    }

    #[test]
    fn echo_check_catches_differences() {
        assert!(check_echo(b"abc", b"abc", 0).is_ok());
        assert!(check_echo(b"abd", b"abc", 0).is_err());
        assert!(check_echo(b"ab", b"abc", 0).is_err());
    }
}
