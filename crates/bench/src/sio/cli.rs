//! The `sio-*` subcommands of `duplex-bench`.
//!
//! ```text
//! duplex-bench sio-echo --url http://127.0.0.1:3000 --sockets 100 --size 20 \
//!     --duration 5 --warmup 1 --server-pid 1234
//! duplex-bench sio-broadcast --url http://127.0.0.1:3000 --sockets 1000 --room r \
//!     --rate 0 --window 2 --duration 5 --server-pid 1234
//! duplex-bench sio-idle --url http://127.0.0.1:3000 --sockets 1000,5000,10000 \
//!     --server-pid 1234
//! duplex-bench sio-report bench/results/socketio-20250101T000000Z.jsonl
//! ```
//!
//! Each result is printed as one JSON line on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use super::broadcast::{self, SioBroadcastOptions};
use super::echo::{self, SioEchoOptions};
use super::idle::{self, SioIdleOptions};

/// The Socket.IO subcommands (flattened into `duplex-bench`'s own).
#[derive(Debug, Subcommand)]
pub enum SioCommand {
    /// Socket.IO echo with acks: N sockets, one acked event in flight each.
    SioEcho(SioEchoArgs),
    /// Socket.IO room broadcast: deliveries per second and latency.
    SioBroadcast(SioBroadcastArgs),
    /// Server memory per idle connected Socket.IO socket.
    SioIdle(SioIdleArgs),
    /// Markdown tables from a results file of Socket.IO JSON lines.
    SioReport(SioReportArgs),
}

/// Options every Socket.IO scenario shares.
#[derive(Debug, Args)]
pub struct SioCommon {
    /// The server, as http://host:port (path prefix /socket.io/ unless
    /// the URL has another path).
    #[arg(long)]
    url: String,
    /// Name of the server, copied into the JSON output.
    #[arg(long)]
    label: Option<String>,
    /// Socket handshakes in flight while connecting.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

/// `sio-echo`.
#[derive(Debug, Args)]
pub struct SioEchoArgs {
    #[command(flatten)]
    common: SioCommon,
    /// Sockets, each with one acked event in flight.
    #[arg(long, default_value_t = 100)]
    sockets: usize,
    /// Bytes of the event's string argument.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server process id, for its CPU time (from /proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// `sio-broadcast`.
#[derive(Debug, Args)]
pub struct SioBroadcastArgs {
    #[command(flatten)]
    common: SioCommon,
    /// Sockets in the room (a publisher socket comes on top).
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// The room the sockets join.
    #[arg(long, alias = "rooms", default_value = "r")]
    room: String,
    /// Bytes of padding in each broadcast payload.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Broadcasts per second (0: as fast as acks and the window allow).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Most broadcasts in flight (sent, not yet received by every socket).
    #[arg(long, default_value_t = 2)]
    window: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server process id, for its CPU time (from /proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// `sio-idle`.
#[derive(Debug, Args)]
pub struct SioIdleArgs {
    #[command(flatten)]
    common: SioCommon,
    /// Idle sockets to hold; a comma-separated increasing list measures at
    /// each step, keeping earlier sockets connected.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    sockets: Vec<usize>,
    /// Server process id, for its RSS (from /proc/PID/status).
    #[arg(long)]
    server_pid: u32,
    /// Least seconds to let the server's RSS settle before reading it.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

/// `sio-report`.
#[derive(Debug, Args)]
pub struct SioReportArgs {
    /// The results file (JSON lines, as written by bench/run-socketio.sh).
    file: PathBuf,
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
}

/// Runs one Socket.IO subcommand, printing its JSON lines (or tables).
pub fn run(command: SioCommand) -> Result<()> {
    let threads = match &command {
        SioCommand::SioEcho(a) => a.common.client_threads,
        SioCommand::SioBroadcast(a) => a.common.client_threads,
        SioCommand::SioIdle(a) => a.common.client_threads,
        SioCommand::SioReport(a) => {
            let jsonl = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            print!("{}", super::report::render(&jsonl)?);
            return Ok(());
        }
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        match command {
            SioCommand::SioEcho(a) => {
                let opts = SioEchoOptions {
                    target: super::resolve(&a.common.url).await?,
                    sockets: a.sockets,
                    size: a.size,
                    duration: seconds(a.duration, "--duration")?,
                    warmup: seconds(a.warmup, "--warmup")?,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.common.ramp,
                    label: a.common.label,
                };
                let report = echo::run(&opts).await?;
                crate::output::emit(&report)?;
            }
            SioCommand::SioBroadcast(a) => {
                let opts = SioBroadcastOptions {
                    target: super::resolve(&a.common.url).await?,
                    sockets: a.sockets,
                    room: a.room,
                    size: a.size,
                    rate: a.rate,
                    window: a.window,
                    duration: seconds(a.duration, "--duration")?,
                    warmup: seconds(a.warmup, "--warmup")?,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.common.ramp,
                    label: a.common.label,
                };
                let report = broadcast::run(&opts).await?;
                crate::output::emit(&report)?;
            }
            SioCommand::SioIdle(a) => {
                let opts = SioIdleOptions {
                    target: super::resolve(&a.common.url).await?,
                    steps: a.sockets,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.common.ramp,
                    settle: seconds(a.settle, "--settle")?,
                    label: a.common.label,
                };
                idle::run(&opts, crate::output::emit_or_warn).await?;
            }
            SioCommand::SioReport(_) => {}
        }
        Ok(())
    })
}
