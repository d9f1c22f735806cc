//! `duplex-bench`: command-line front end of the end-to-end WebSocket
//! benchmarks (see the library docs and `docs/benchmarks.md`).
//!
//! ```text
//! duplex-bench echo --url ws://127.0.0.1:9001/ --connections 100 --size 20 \
//!     --duration 5 --warmup 1 --server-pid 1234
//! duplex-bench idle --url ws://127.0.0.1:9001/ --connections 1000,5000,15000 \
//!     --server-pid 1234
//! duplex-bench report bench/results/echo-20250101T000000Z.jsonl
//! duplex-bench --out results.jsonl fanout --subscriber ws \
//!     --url ws://127.0.0.1:8000/connection/websocket \
//!     --api-url http://127.0.0.1:8000 --api-key KEY --subscribers 10000 \
//!     --size 100 --window 8 --server-pid 1234
//! duplex-bench sub-idle --subscriber sio --url http://127.0.0.1:8000 \
//!     --connections 1000,5000,15000 --server-pid 1234
//! duplex-bench plot results.jsonl --dir docs/plots/
//! duplex-bench --processes 2 sub-idle --subscriber ws \
//!     --url ws://127.0.0.1:8000/connection/websocket \
//!     --connections 10000,25000 --server-pid 1234
//! ```
//!
//! Each result is printed as one JSON line on stdout (and appended to the
//! file given with `--out`); a progress bar shows on a terminal.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use duplex_bench::echo::{self, EchoOptions};
use duplex_bench::fanout::{self, FanoutOptions, PublisherSpec};
use duplex_bench::idle::{self, IdleOptions};
use duplex_bench::output;
use duplex_bench::subscriber::{SubKind, SubscribeSpec};
use duplex_bench::target::Target;

/// End-to-end WebSocket benchmarks, loading a server through duplex's
/// protocol core.
#[derive(Debug, Parser)]
#[command(name = "duplex-bench", version)]
struct Cli {
    /// Also append every result line (JSON) to this file.
    #[arg(long, global = true, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Local addresses to connect from, in turn: `127.0.0.1-127.0.0.4` or
    /// a comma-separated list (each allows about 28k connections to one
    /// server port).
    #[arg(long, global = true, value_name = "ADDRS")]
    source_addrs: Option<String>,
    /// Client processes to spread the connections over (fanout, sub-idle,
    /// storm): this one re-runs itself N times, each child holding a share
    /// (and a share of --source-addrs); the results are merged. 1: every
    /// connection in this process.
    #[arg(long, global = true, default_value_t = 1, value_name = "N")]
    processes: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo throughput: N connections, one message in flight on each.
    Echo(EchoArgs),
    /// Server memory per idle connection.
    Idle(IdleArgs),
    /// Fan-out: N subscribers, one publisher, publish-to-receipt latency.
    Fanout(FanoutArgs),
    /// Fan-out across the nodes of a cluster: subscribers spread over the
    /// nodes, the publisher on node 0, Redis commands per publication.
    Cluster(duplex_bench::cluster::ClusterArgs),
    /// Markdown tables of the cluster lines of a results file.
    ClusterReport(ReportArgs),
    /// Server memory per idle subscribed connection (plain WebSocket or
    /// Socket.IO), in steps.
    SubIdle(SubIdleArgs),
    /// Connection storm: N clients connecting and subscribing at once
    /// (with --recover-missed: reconnecting with recovery).
    Storm(StormArgs),
    /// Soak: thousands of churning clients subscribing, recovering and
    /// disconnecting while the API publishes, for a bounded time; checks
    /// every delivery and samples the server's RSS, descriptors and CPU.
    Soak(duplex_bench::soak::SoakArgs),
    /// Markdown tables from a results file of JSON lines.
    Report(ReportArgs),
    /// Markdown tables of the fan-out and sub-idle lines of a results file.
    FanoutReport(ReportArgs),
    /// SVG charts (throughput and memory vs connections, latency CDFs)
    /// from results files.
    Plot(PlotArgs),
    /// The Socket.IO scenarios (sio-echo, sio-broadcast, sio-idle,
    /// sio-report; see `duplex_bench::sio`).
    #[command(flatten)]
    Sio(duplex_bench::sio::cli::SioCommand),
    /// A client process of --processes (reads its job on standard input).
    #[command(name = "worker", hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
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

/// How subscribers connect.
#[derive(Debug, Args)]
struct SubscriberArgs {
    /// Subscriber protocol: `ws` (duplex /connection/websocket, URL
    /// ws://host:port/connection/websocket), `sio` (duplex's Socket.IO
    /// mapping, URL http://host:port) or `sio-room` (a Socket.IO peer's
    /// room, URL http://host:port).
    #[arg(long, value_enum)]
    subscriber: SubKind,
    /// The server's URL for subscribers (see --subscriber).
    #[arg(long)]
    url: String,
    /// Channel (or room) to subscribe to.
    #[arg(long, default_value = "bench")]
    channel: String,
    /// Sign an HS256 connection token per subscriber with this secret
    /// (omit against a server in --dev).
    #[arg(long)]
    token_secret: Option<String>,
    /// Name of the server, copied into the JSON output.
    #[arg(long)]
    label: Option<String>,
    /// Connects (with subscribe) in flight while opening connections.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    sub: SubscriberArgs,
    /// Publisher: `api` (POST /api/publish at --api-url) or `sio-bcast`
    /// (a Socket.IO socket at --url emitting `bcast`, for the peers).
    #[arg(long, default_value = "api")]
    publisher: String,
    /// The server API, http://host:port (for --publisher api).
    #[arg(long)]
    api_url: Option<String>,
    /// The server API key (for --publisher api).
    #[arg(long, default_value = "")]
    api_key: String,
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Bytes of each publication's data (a JSON object).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Publications per second; 0: as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Most publications in flight (not yet received by every subscriber).
    #[arg(long, default_value_t = 4)]
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

#[derive(Debug, Args)]
struct StormArgs {
    #[command(flatten)]
    sub: SubscriberArgs,
    /// Clients.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connects in flight at most (0: all at once).
    #[arg(long, default_value_t = 0)]
    concurrency: usize,
    /// Recovery storm (--subscriber ws, a channel with history): subscribe
    /// everyone, disconnect, publish this many times through the API,
    /// reconnect everyone at once recovering.
    #[arg(long)]
    recover_missed: Option<u64>,
    /// The server API, http://host:port (for --recover-missed).
    #[arg(long)]
    api_url: Option<String>,
    /// The server API key (for --recover-missed).
    #[arg(long, default_value = "")]
    api_key: String,
    /// Server process id, for its CPU time (from /proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Args)]
struct SubIdleArgs {
    #[command(flatten)]
    sub: SubscriberArgs,
    /// Subscribed connections to hold; a comma-separated increasing list
    /// measures at each step, keeping earlier connections open.
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
struct PlotArgs {
    /// Results files (JSON lines).
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
    /// Folder to write the SVG files into.
    #[arg(long = "dir", short = 'd', default_value = "plots")]
    dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The results file (JSON lines, as written by bench/run-echo.sh).
    file: std::path::PathBuf,
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
}

async fn subscribe_spec(a: &SubscriberArgs, read_buf: usize) -> Result<SubscribeSpec> {
    Ok(SubscribeSpec {
        kind: a.subscriber,
        target: a.subscriber.target(&a.url).await?,
        channel: a.channel.clone(),
        token_secret: a.token_secret.clone(),
        read_buf,
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(path) = &cli.out {
        output::set_file(path)?;
    }
    if let Some(spec) = &cli.source_addrs {
        duplex_bench::client::set_source_addrs(duplex_bench::client::parse_source_addrs(spec)?);
    }
    let processes = cli.processes;
    if processes == 0 {
        bail!("--processes must be at least 1");
    }
    if processes > 1
        && !matches!(
            cli.command,
            Command::Fanout(_) | Command::SubIdle(_) | Command::Storm(_)
        )
    {
        bail!("--processes is for fanout, sub-idle and storm");
    }
    let cli = match cli {
        Cli {
            command: Command::Sio(sio),
            ..
        } => return duplex_bench::sio::cli::run(sio),
        cli => cli,
    };
    // A client process of --processes reads its job (the first line of
    // its standard input) before its runtime starts.
    let job = match &cli.command {
        Command::Worker(_) => Some(duplex_bench::workers::read_job()?),
        _ => None,
    };
    let threads = match &cli.command {
        Command::Echo(a) => a.common.client_threads,
        Command::Idle(a) => a.common.client_threads,
        Command::Fanout(a) => a.sub.client_threads,
        Command::Cluster(a) => a.client_threads,
        Command::ClusterReport(a) => {
            let jsonl = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            print!("{}", duplex_bench::cluster::render(&jsonl)?);
            return Ok(());
        }
        Command::SubIdle(a) => a.sub.client_threads,
        Command::Storm(a) => a.sub.client_threads,
        Command::Soak(a) => a.client_threads,
        Command::Report(a) => {
            let jsonl = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            print!("{}", duplex_bench::report::render(&jsonl)?);
            return Ok(());
        }
        Command::FanoutReport(a) => {
            let jsonl = std::fs::read_to_string(&a.file)
                .with_context(|| format!("reading {}", a.file.display()))?;
            print!("{}", duplex_bench::fanout_report::render(&jsonl)?);
            return Ok(());
        }
        Command::Plot(a) => {
            for path in duplex_bench::plot::run(&a.files, &a.dir)? {
                eprintln!("wrote {}", path.display());
            }
            return Ok(());
        }
        Command::Sio(_) => unreachable!("the Socket.IO scenarios ran above"),
        Command::Worker(a) => a.client_threads,
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
                output::emit(&report)?;
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
                idle::run(&opts, output::emit_or_warn).await?;
            }
            Command::Fanout(a) => {
                let subscribe =
                    subscribe_spec(&a.sub, (a.size + 256).clamp(4096, 64 * 1024)).await?;
                let publisher = PublisherSpec::from_cli(
                    &a.publisher,
                    a.api_url.as_deref(),
                    &a.api_key,
                    &a.sub.url,
                )
                .await?;
                let opts = FanoutOptions {
                    subscribe,
                    publisher,
                    subscribers: a.subscribers,
                    size: a.size,
                    rate: a.rate,
                    window: a.window,
                    duration: seconds(a.duration, "--duration")?,
                    warmup: seconds(a.warmup, "--warmup")?,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.sub.ramp,
                    label: a.sub.label.clone(),
                };
                let report = if processes > 1 {
                    fanout::run_processes(&opts, processes, a.sub.client_threads).await?
                } else {
                    fanout::run(&opts).await?
                };
                output::emit(&report)?;
            }
            Command::Cluster(a) => {
                output::emit(&duplex_bench::cluster::run_cli(a).await?)?;
            }
            Command::SubIdle(a) => {
                let opts = duplex_bench::sub_idle::SubIdleOptions {
                    subscribe: subscribe_spec(&a.sub, 256).await?,
                    steps: a.connections,
                    server_pid: a.server_pid,
                    ramp_concurrency: a.sub.ramp,
                    settle: seconds(a.settle, "--settle")?,
                    label: a.sub.label.clone(),
                };
                if processes > 1 {
                    duplex_bench::sub_idle::run_processes(
                        &opts,
                        processes,
                        a.sub.client_threads,
                        output::emit_or_warn,
                    )
                    .await?;
                } else {
                    duplex_bench::sub_idle::run(&opts, output::emit_or_warn).await?;
                }
            }
            Command::Storm(a) => {
                let recover = match a.recover_missed {
                    None => None,
                    Some(missed) => {
                        let url = a
                            .api_url
                            .as_deref()
                            .context("--recover-missed needs --api-url")?;
                        let api = duplex_bench::storm::ApiSpec {
                            target: duplex_bench::http::resolve(url).await?,
                            api_key: a.api_key.clone(),
                        };
                        Some((missed, api))
                    }
                };
                let opts = duplex_bench::storm::StormOptions {
                    subscribe: subscribe_spec(&a.sub, 4096).await?,
                    connections: a.connections,
                    concurrency: a.concurrency,
                    recover,
                    server_pid: a.server_pid,
                    label: a.sub.label.clone(),
                };
                let report = if processes > 1 {
                    duplex_bench::storm::run_processes(&opts, processes, a.sub.client_threads)
                        .await?
                } else {
                    duplex_bench::storm::run(&opts).await?
                };
                output::emit(&report)?;
            }
            Command::Soak(a) => duplex_bench::soak::run_cli(a).await?,
            Command::Worker(_) => {
                if let Some((job, cmds)) = job {
                    // The parent was told why (and prints it).
                    if duplex_bench::workers::run_child(job, cmds).await.is_err() {
                        std::process::exit(1);
                    }
                }
            }
            Command::Report(_)
            | Command::FanoutReport(_)
            | Command::ClusterReport(_)
            | Command::Plot(_)
            | Command::Sio(_) => {}
        }
        Ok(())
    })
}
