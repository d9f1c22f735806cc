//! `duplex-bench`: command-line front end of the end-to-end WebSocket
//! benchmarks (see the library docs and `docs/benchmarks.md`).
//!
//! ```text
//! duplex-bench echo --url ws://127.0.0.1:9001/ --connections 100 --size 20 \
//!     --duration 5 --warmup 1 --server-pid 1234
//! duplex-bench idle --url ws://127.0.0.1:9001/ --connections 1000,5000,15000 \
//!     --server-pid 1234
//! duplex-bench report bench/results/echo-20250101T000000Z.jsonl
//! ```
//!
//! Each result is printed as one JSON line on stdout.

use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use duplex_bench::echo::{self, EchoOptions};
use duplex_bench::idle::{self, IdleOptions};
use duplex_bench::target::Target;

/// End-to-end WebSocket benchmarks, loading a server through duplex's
/// protocol core.
#[derive(Debug, Parser)]
#[command(name = "duplex-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo throughput: N connections, one message in flight on each.
    Echo(EchoArgs),
    /// Server memory per idle connection.
    Idle(IdleArgs),
    /// Markdown tables from a results file of JSON lines.
    Report(ReportArgs),
    /// The Socket.IO scenarios (sio-echo, sio-broadcast, sio-idle,
    /// sio-report; see `duplex_bench::sio`).
    #[command(flatten)]
    Sio(duplex_bench::sio::cli::SioCommand),
}

/// Options both scenarios share.
#[derive(Debug, Args)]
struct Common {
    /// The server, as ws://host:port/path.
    #[arg(long)]
    url: String,
    /// Name of the server, copied into the JSON output.
    #[arg(long)]
    label: Option<String>,
    /// Connection handshakes in flight while opening connections.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

#[derive(Debug, Args)]
struct EchoArgs {
    #[command(flatten)]
    common: Common,
    /// Connections, each with one message in flight.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Payload bytes per message.
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
    /// Send text messages instead of binary ones.
    #[arg(long)]
    text: bool,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Idle connections to hold; a comma-separated increasing list measures
    /// at each step, keeping earlier connections open.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    connections: Vec<usize>,
    /// Server process id, for its RSS (from /proc/PID/status).
    #[arg(long)]
    server_pid: u32,
    /// Least seconds to let the server's RSS settle before reading it.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The results file (JSON lines, as written by bench/run-echo.sh).
    file: std::path::PathBuf,
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
}

fn main() -> Result<()> {
    let cli = match Cli::parse() {
        Cli {
            command: Command::Sio(sio),
        } => return duplex_bench::sio::cli::run(sio),
        cli => cli,
    };
    let threads = match &cli.command {
        Command::Echo(a) => a.common.client_threads,
        Command::Idle(a) => a.common.client_threads,
        Command::Report(a) => {
            let jsonl = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            print!("{}", duplex_bench::report::render(&jsonl)?);
            return Ok(());
        }
        Command::Sio(_) => unreachable!("the Socket.IO scenarios ran above"),
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
        match cli.command {
            Command::Echo(a) => {
                let opts = EchoOptions {
                    target: Target::resolve(&a.common.url).await?,
                    connections: a.connections,
                    size: a.size,
                    duration: seconds(a.duration, "--duration")?,
                    warmup: seconds(a.warmup, "--warmup")?,
                    server_pid: a.server_pid,
                    text: a.text,
                    ramp_concurrency: a.common.ramp,
                    label: a.common.label,
                };
                let report = echo::run(&opts).await?;
                println!("{}", serde_json::to_string(&report)?);
            }
            Command::Idle(a) => {
                let opts = IdleOptions {
                    target: Target::resolve(&a.common.url).await?,
                    steps: a.connections,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.common.ramp,
                    settle: seconds(a.settle, "--settle")?,
                    label: a.common.label,
                };
                idle::run(&opts, |step| match serde_json::to_string(step) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("duplex-bench: cannot serialize a result: {e}"),
                })
                .await?;
            }
            Command::Report(_) | Command::Sio(_) => {}
        }
        Ok(())
    })
}
