//! The cross-node scenario: the fan-out of [`crate::fanout`] against
//! several nodes of one cluster sharing a Redis, with the subscribers
//! spread over the nodes and the publisher on node 0, so that most
//! deliveries cross Redis (with 4 nodes, three quarters of them).
//!
//! Subscribers are split into one block per node, of about equal size
//! (group `g` is node `g`). Beside the fan-out figures (deliveries per
//! second, publish-to-receipt percentiles) a line reports:
//!
//! - the latency of the *cross-node* deliveries alone (subscribers on
//!   nodes 1.., whose publications must come through Redis) and of those
//!   on the publisher's node;
//! - the Redis commands per publication: the `calls` of every
//!   `cmdstat_*` line of `INFO commandstats`, summed, read right before and
//!   right after the measured window, the difference divided by the
//!   publications made in the window. Redis counts the commands a Lua
//!   script runs as well as the `EVALSHA` that ran it; the per-command
//!   differences are in the line too (`redis_calls`). The probe's own
//!   `INFO` calls are left out. Everything else that talks to that Redis
//!   in the window counts too (heartbeats, presence refreshes): the runner
//!   gives each run a Redis of its own;
//! - Redis CPU time (`used_cpu_sys` + `used_cpu_user` of `INFO cpu`) per
//!   publication, and the nodes' CPU time (`/proc/PID/stat`, summed).
//!
//! [`render`] turns a results file into the markdown tables of
//! `docs/benchmarks.md` ("Many nodes over Redis"), with each duplex row's
//! ratios to the Node socket.io row of the same cell.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::fanout::{FanoutOptions, PublisherSpec};
use crate::histogram::Histogram;
use crate::subscriber::{SubKind, SubscribeSpec};

/// Command-line options of `duplex-bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Subscriber protocol (as for `fanout`): `ws`, `sio` or `sio-room`.
    #[arg(long, value_enum)]
    pub subscriber: SubKind,
    /// The nodes' URLs for subscribers, node 0 (the publisher's) first,
    /// comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// The nodes' process ids, comma-separated, for their CPU time.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// The Redis the nodes share, host:port, for its command counts and
    /// CPU time.
    #[arg(long)]
    pub redis: Option<String>,
    /// Channel (or room).
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Sign an HS256 connection token per subscriber with this secret.
    #[arg(long)]
    pub token_secret: Option<String>,
    /// Name of the server, copied into the JSON output.
    #[arg(long)]
    pub label: Option<String>,
    /// Connects (with subscribe) in flight while opening connections.
    #[arg(long, default_value_t = 200)]
    pub ramp: usize,
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Publisher: `api` (POST /api/publish at --api-url, node 0) or
    /// `sio-bcast` (a Socket.IO socket on node 0 emitting `bcast`).
    #[arg(long, default_value = "api")]
    pub publisher: String,
    /// Node 0's server API, http://host:port (for --publisher api).
    #[arg(long)]
    pub api_url: Option<String>,
    /// The server API key (for --publisher api).
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Subscribers, over all nodes.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Bytes of each publication's data.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Publications per second; 0: as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Most publications in flight (not yet received by every subscriber).
    #[arg(long, default_value_t = 8)]
    pub window: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// One line of results (serialized as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Always `"cluster"`.
    pub scenario: String,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Nodes the subscribers were spread over.
    pub nodes: usize,
    /// The subscribers' protocol (`ws`, `sio`, `sio-room`).
    pub transport: String,
    /// `api` or `sio-bcast`.
    pub publisher: String,
    /// Subscribers over all nodes.
    pub subscribers: usize,
    /// Bytes of each publication's data.
    pub size: usize,
    /// Publications per second asked for (0: as fast as the window allows).
    pub rate: f64,
    /// Most publications in flight.
    pub window: u64,
    /// Publications made in the measured window.
    pub publications: u64,
    /// Deliveries received in the measured window.
    pub deliveries: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// `deliveries / seconds`.
    pub deliveries_per_sec: f64,
    /// Median publish-to-receipt time over every delivery, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile over every delivery, µs.
    pub p99_us: Option<f64>,
    /// Slowest delivery, µs.
    pub max_us: Option<f64>,
    /// Median over the deliveries to nodes other than the publisher's, µs.
    pub cross_p50_us: Option<f64>,
    /// 99th percentile of the same, µs.
    pub cross_p99_us: Option<f64>,
    /// Median over the deliveries on the publisher's node, µs.
    pub local_p50_us: Option<f64>,
    /// 99th percentile of the same, µs.
    pub local_p99_us: Option<f64>,
    /// The nodes' CPU time in the window (user + system, summed), seconds.
    pub nodes_cpu_seconds: Option<f64>,
    /// `deliveries / nodes_cpu_seconds`.
    pub deliveries_per_nodes_cpu_sec: Option<f64>,
    /// Client (this process) CPU time in the window, seconds.
    pub client_cpu_seconds: Option<f64>,
    /// Redis commands in the window (all `cmdstat_*` calls but the probe's).
    pub redis_commands: Option<u64>,
    /// `redis_commands / publications`.
    pub redis_commands_per_publication: Option<f64>,
    /// The window's calls by command name (those that changed).
    pub redis_calls: BTreeMap<String, u64>,
    /// Redis CPU time in the window (`used_cpu_sys + used_cpu_user`), s.
    pub redis_cpu_seconds: Option<f64>,
    /// Redis CPU time per publication, µs.
    pub redis_cpu_us_per_publication: Option<f64>,
    /// Latency distribution over every delivery: `[quantile, µs]` pairs.
    pub cdf_us: Vec<(f64, f64)>,
}

/// What Redis says about itself (the parts the scenario uses).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedisStats {
    /// `calls` by command name (`cmdstat_<name>` in `INFO commandstats`).
    pub calls: BTreeMap<String, u64>,
    /// `used_cpu_sys + used_cpu_user`, seconds.
    pub cpu_seconds: f64,
}

impl RedisStats {
    /// Parses the text of `INFO cpu commandstats`.
    pub fn parse(info: &str) -> Result<Self> {
        let mut stats = Self::default();
        let mut cpu_fields = 0;
        for line in info.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, fields)) = rest.split_once(':') else {
                    bail!("odd commandstats line {line:?}");
                };
                let calls = fields
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .with_context(|| format!("no calls= in {line:?}"))?;
                let calls: u64 = calls
                    .parse()
                    .with_context(|| format!("bad calls in {line:?}"))?;
                stats.calls.insert(name.to_ascii_lowercase(), calls);
            } else if let Some(v) = line
                .strip_prefix("used_cpu_sys:")
                .or_else(|| line.strip_prefix("used_cpu_user:"))
            {
                let v: f64 = v.parse().with_context(|| format!("bad {line:?}"))?;
                stats.cpu_seconds += v;
                cpu_fields += 1;
            }
        }
        if cpu_fields != 2 {
            bail!("INFO gave no used_cpu_sys and used_cpu_user");
        }
        Ok(stats)
    }

    /// The calls made between `self` and `later`, by command, leaving out
    /// `INFO` (the probe's own) and commands that did not change.
    pub fn calls_until(&self, later: &Self) -> BTreeMap<String, u64> {
        later
            .calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .filter_map(|(name, &n)| {
                let d = n.saturating_sub(self.calls.get(name).copied().unwrap_or(0));
                (d > 0).then(|| (name.clone(), d))
            })
            .collect()
    }
}

/// Asks the Redis at `addr` (host:port) for `INFO cpu commandstats`.
pub async fn redis_stats(addr: &str) -> Result<RedisStats> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to Redis at {addr}"))?;
    stream
        .write_all(b"*3\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n$12\r\ncommandstats\r\n")
        .await?;
    // The reply is one bulk string: `$<len>\r\n<text>\r\n`.
    let mut buf = Vec::with_capacity(16 * 1024);
    let (len, start) = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("Redis closed the connection before answering INFO");
        }
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("INFO reply")?;
            let Some(len) = head.strip_prefix('$') else {
                bail!("INFO answered {head:?}");
            };
            break (len.parse::<usize>().context("INFO reply length")?, end + 2);
        }
    };
    while buf.len() < start + len {
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("Redis closed the connection in the middle of INFO");
        }
    }
    RedisStats::parse(std::str::from_utf8(&buf[start..start + len]).context("INFO text")?)
}

/// What the probe reads at each end of the measured window.
#[derive(Clone, Debug)]
struct Reading {
    redis: Option<RedisStats>,
    /// The nodes' CPU ticks (user + system), summed.
    nodes_ticks: Option<u64>,
    client_ticks: Option<u64>,
}

async fn read_probe(redis: Option<&str>, pids: &[u32]) -> Result<Reading> {
    let redis = match redis {
        Some(addr) => Some(redis_stats(addr).await?),
        None => None,
    };
    let nodes_ticks = if pids.is_empty() {
        None
    } else {
        let mut sum = 0;
        for &pid in pids {
            let (user, sys) = crate::procfs::cpu_times(pid)
                .with_context(|| format!("is {pid} a node's process id?"))?;
            sum += user + sys;
        }
        Some(sum)
    };
    Ok(Reading {
        redis,
        nodes_ticks,
        client_ticks: crate::procfs::cpu_ticks(std::process::id()).ok(),
    })
}

/// Runs `duplex-bench cluster` and returns its line.
pub async fn run_cli(a: ClusterArgs) -> Result<ClusterReport> {
    if a.urls.is_empty() {
        bail!("--urls needs at least one node");
    }
    let read_buf = (a.size + 256).clamp(4096, 64 * 1024);
    let mut specs = Vec::with_capacity(a.urls.len());
    for url in &a.urls {
        specs.push(SubscribeSpec {
            kind: a.subscriber,
            target: a.subscriber.target(url).await?,
            channel: a.channel.clone(),
            token_secret: a.token_secret.clone(),
            read_buf,
        });
    }
    let publisher =
        PublisherSpec::from_cli(&a.publisher, a.api_url.as_deref(), &a.api_key, &a.urls[0]).await?;
    let seconds = |s: f64, what: &str| {
        std::time::Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
    };
    let opts = FanoutOptions {
        subscribe: specs[0].clone(),
        publisher,
        subscribers: a.subscribers,
        size: a.size,
        rate: a.rate,
        window: a.window,
        duration: seconds(a.duration, "--duration")?,
        warmup: seconds(a.warmup, "--warmup")?,
        server_pid: None,
        ramp_concurrency: a.ramp,
        label: a.label.clone(),
    };
    if a.subscribers < specs.len() {
        bail!("--subscribers must be at least the number of nodes");
    }
    // Fail before connecting anyone if the probe cannot read.
    read_probe(a.redis.as_deref(), &a.server_pids).await?;
    let redis = a.redis.clone();
    let pids = a.server_pids.clone();
    let spread = crate::fanout::run_spread(&opts, &specs, || {
        let (redis, pids) = (redis.clone(), pids.clone());
        async move { read_probe(redis.as_deref(), &pids).await }
    })
    .await?;
    Ok(report_of(&a, &spread))
}

fn report_of(a: &ClusterArgs, spread: &crate::fanout::Spread<Reading>) -> ClusterReport {
    let r = &spread.report;
    let (before, after) = &spread.probe;
    let us = |h: &Histogram, q: f64| h.quantile(q).map(|ns| ns as f64 / 1000.0);
    let mut cross = Histogram::empty();
    for h in spread.groups.iter().skip(1) {
        cross.merge(h);
    }
    let local = spread
        .groups
        .first()
        .cloned()
        .unwrap_or_else(Histogram::empty);
    let ticks = |x: Option<u64>, y: Option<u64>| crate::procfs::ticks_to_seconds(x, y);
    let nodes_cpu_seconds = ticks(before.nodes_ticks, after.nodes_ticks);
    let (redis_calls, redis_cpu_seconds) = match (&before.redis, &after.redis) {
        (Some(x), Some(y)) => (
            Some(x.calls_until(y)),
            Some((y.cpu_seconds - x.cpu_seconds).max(0.0)),
        ),
        _ => (None, None),
    };
    let redis_commands = redis_calls.as_ref().map(|c| c.values().sum::<u64>());
    let per_pub = |v: f64| (r.publications > 0).then(|| v / r.publications as f64);
    let transport = serde_json::to_value(r.transport)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    ClusterReport {
        scenario: "cluster".to_owned(),
        server: a.label.clone(),
        nodes: a.urls.len(),
        transport,
        publisher: r.publisher.to_owned(),
        subscribers: r.subscribers,
        size: r.size,
        rate: r.rate,
        window: r.window,
        publications: r.publications,
        deliveries: r.deliveries,
        seconds: r.seconds,
        deliveries_per_sec: r.deliveries_per_sec,
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        max_us: r.max_us,
        cross_p50_us: us(&cross, 0.50),
        cross_p99_us: us(&cross, 0.99),
        local_p50_us: us(&local, 0.50),
        local_p99_us: us(&local, 0.99),
        nodes_cpu_seconds,
        deliveries_per_nodes_cpu_sec: nodes_cpu_seconds
            .filter(|&c| c > 0.0)
            .map(|c| r.deliveries as f64 / c),
        client_cpu_seconds: ticks(before.client_ticks, after.client_ticks),
        redis_commands,
        redis_commands_per_publication: redis_commands.and_then(|n| per_pub(n as f64)),
        redis_calls: redis_calls.unwrap_or_default(),
        redis_cpu_seconds,
        redis_cpu_us_per_publication: redis_cpu_seconds.and_then(|s| per_pub(s * 1e6)),
        cdf_us: r.cdf_us.clone(),
    }
}

/// A line of a results file as [`render`] reads it: a cluster line, the
/// runner's `meta` line, or a failure the runner wrote.
#[derive(Debug, Deserialize)]
struct Line {
    scenario: String,
    server: Option<String>,
    nodes: Option<usize>,
    subscribers: Option<usize>,
    rate: Option<f64>,
    window: Option<u64>,
    deliveries_per_sec: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    cross_p99_us: Option<f64>,
    nodes_cpu_seconds: Option<f64>,
    deliveries_per_nodes_cpu_sec: Option<f64>,
    seconds: Option<f64>,
    redis_commands_per_publication: Option<f64>,
    redis_cpu_us_per_publication: Option<f64>,
    #[serde(default)]
    redis_calls: BTreeMap<String, u64>,
    publications: Option<u64>,
    error: Option<String>,
    // meta
    date: Option<String>,
    git: Option<String>,
    cpu: Option<String>,
    node: Option<String>,
    socket_io: Option<String>,
    redis_adapter: Option<String>,
    redis_version: Option<String>,
    loadavg: Option<String>,
    loadavg_end: Option<String>,
    duration: Option<f64>,
    warmup: Option<f64>,
}

/// The peer every duplex row is compared with.
const PEER: &str = "socket.io";

/// Markdown tables of the cluster lines of a results file: one row per
/// server and cell (nodes, subscribers, rate, window; the median run by
/// deliveries per second when a cell ran several times), then each duplex
/// row's ratios to the [`PEER`] row of its cell.
pub fn render(jsonl: &str) -> Result<String> {
    type Key = (usize, usize, u64, u64);
    let mut cells: BTreeMap<Key, Vec<(String, Vec<Line>)>> = BTreeMap::new();
    let mut meta = None;
    for line in crate::output::read_lines::<Line>(jsonl)? {
        match line.scenario.as_str() {
            "meta" => meta = Some(line),
            "cluster" => {
                let key = (
                    line.nodes.unwrap_or(0),
                    line.subscribers.unwrap_or(0),
                    line.rate.unwrap_or(0.0).to_bits(),
                    line.window.unwrap_or(0),
                );
                let server = line.server.clone().unwrap_or_else(|| "?".to_owned());
                let rows = cells.entry(key).or_default();
                match rows.iter_mut().find(|(s, _)| *s == server) {
                    Some((_, lines)) => lines.push(line),
                    None => rows.push((server, vec![line])),
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(m) = &meta {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        writeln!(
            out,
            "Run {} (git {}) on {}; Node {}, socket.io {}, @socket.io/redis-adapter {}, \
             Redis {}; {} s measured after {} s of warm-up per cell; load average {} at \
             the start, {} at the end.\n",
            s(&m.date),
            s(&m.git),
            s(&m.cpu),
            s(&m.node),
            s(&m.socket_io),
            s(&m.redis_adapter),
            s(&m.redis_version),
            m.duration.unwrap_or(0.0),
            m.warmup.unwrap_or(0.0),
            s(&m.loadavg),
            s(&m.loadavg_end),
        )?;
    }
    out.push_str(
        "| nodes | subscribers | publications/s | server | deliveries/s | p50 ms | p99 ms \
         | cross-node p99 ms | nodes' CPU | deliveries / nodes' CPU-s | Redis commands / \
         publication | Redis CPU µs / publication | Redis commands |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut ratios = String::new();
    for ((nodes, subs, rate, _window), rows) in &cells {
        let rate = f64::from_bits(*rate);
        let offered = if rate > 0.0 {
            format!("{rate:.0}")
        } else {
            "max".to_owned()
        };
        let chosen: Vec<(&str, Option<&Line>)> = rows
            .iter()
            .map(|(server, lines)| (server.as_str(), median_line(lines)))
            .collect();
        for (server, line) in &chosen {
            let Some(l) = line else {
                writeln!(
                    out,
                    "| {nodes} | {subs} | {offered} | {server} | failed | | | | | | | | |"
                )?;
                continue;
            };
            let cpu = match (l.nodes_cpu_seconds, l.seconds) {
                (Some(c), Some(s)) if s > 0.0 => format!("{:.0} %", 100.0 * c / s),
                _ => "–".to_owned(),
            };
            writeln!(
                out,
                "| {nodes} | {subs} | {offered} | {server} | {} | {} | {} | {} | {cpu} | {} | {} | {} | {} |",
                fmt_opt(l.deliveries_per_sec.map(|v| format!("{v:.0}"))),
                fmt_opt(l.p50_us.map(ms)),
                fmt_opt(l.p99_us.map(ms)),
                fmt_opt(l.cross_p99_us.map(ms)),
                fmt_opt(l.deliveries_per_nodes_cpu_sec.map(|v| format!("{v:.0}"))),
                fmt_opt(l.redis_commands_per_publication.map(|v| format!("{v:.2}"))),
                fmt_opt(l.redis_cpu_us_per_publication.map(|v| format!("{v:.1}"))),
                top_calls(&l.redis_calls, l.publications.unwrap_or(0)),
            )?;
        }
        let Some((_, Some(peer))) = chosen.iter().find(|(s, _)| *s == PEER) else {
            continue;
        };
        for (server, line) in &chosen {
            let (true, Some(l)) = (server.starts_with("duplex"), line) else {
                continue;
            };
            writeln!(
                ratios,
                "| {nodes} | {subs} | {offered} | {server} / {PEER} | {} | {} | {} | {} | {} |",
                ratio(l.deliveries_per_sec, peer.deliveries_per_sec),
                ratio(
                    l.deliveries_per_nodes_cpu_sec,
                    peer.deliveries_per_nodes_cpu_sec
                ),
                ratio(l.p50_us, peer.p50_us),
                ratio(l.p99_us, peer.p99_us),
                ratio(
                    l.redis_commands_per_publication,
                    peer.redis_commands_per_publication
                ),
            )?;
        }
    }
    if !ratios.is_empty() {
        out.push_str(
            "\n| nodes | subscribers | publications/s | ratio | deliveries/s (higher is better) \
             | deliveries / nodes' CPU-s (higher is better) | p50 (lower is better) \
             | p99 (lower is better) | Redis commands / publication (lower is better) |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        out.push_str(&ratios);
    }
    Ok(out)
}

/// The run with the median deliveries per second (failures left out).
fn median_line(lines: &[Line]) -> Option<&Line> {
    let mut ok: Vec<&Line> = lines
        .iter()
        .filter(|l| l.error.is_none() && l.deliveries_per_sec.is_some())
        .collect();
    ok.sort_by(|a, b| {
        a.deliveries_per_sec
            .unwrap_or(0.0)
            .total_cmp(&b.deliveries_per_sec.unwrap_or(0.0))
    });
    ok.get(ok.len() / 2).copied()
}

fn ms(us: f64) -> String {
    if us < 10_000.0 {
        format!("{:.2}", us / 1000.0)
    } else {
        format!("{:.0}", us / 1000.0)
    }
}

fn fmt_opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".to_owned())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    }
}

/// The commands that make up most of the count, per publication:
/// `evalsha 1.00, publish 1.00`.
fn top_calls(calls: &BTreeMap<String, u64>, publications: u64) -> String {
    if publications == 0 || calls.is_empty() {
        return "–".to_owned();
    }
    let mut v: Vec<(&String, &u64)> = calls.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(4)
        .map(|(name, &n)| format!("{name} {:.2}", n as f64 / publications as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
        used_cpu_sys_children:0.000000\r\n\r\n# Commandstats\r\n\
        cmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_publish:calls=12,usec=50,usec_per_call=4.17,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn parses_info_and_diffs_calls() {
        let a = RedisStats::parse(INFO).unwrap();
        assert_eq!(a.calls["evalsha"], 10);
        assert_eq!(a.calls["publish"], 12);
        assert!((a.cpu_seconds - 3.75).abs() < 1e-9);
        let mut b = a.clone();
        b.calls.insert("evalsha".into(), 30);
        b.calls.insert("info".into(), 5);
        b.calls.insert("xadd".into(), 4);
        let d = a.calls_until(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d["evalsha"], 20);
        assert_eq!(d["xadd"], 4);
        assert!(RedisStats::parse("cmdstat_get:usec=1\r\n").is_err());
        assert!(RedisStats::parse("cmdstat_get:calls=1\r\n").is_err());
    }

    #[test]
    fn renders_rows_and_ratios() {
        let line = |server: &str, nodes: usize, dps: f64, cmds: f64| {
            format!(
                r#"{{"scenario":"cluster","server":"{server}","nodes":{nodes},"subscribers":1000,"rate":0.0,"window":8,"deliveries_per_sec":{dps},"p50_us":1000.0,"p99_us":4000.0,"cross_p99_us":5000.0,"seconds":5.0,"nodes_cpu_seconds":4.0,"deliveries_per_nodes_cpu_sec":{dps},"redis_commands_per_publication":{cmds},"redis_cpu_us_per_publication":12.0,"redis_calls":{{"publish":100}},"publications":100}}"#
            )
        };
        let jsonl = [
            line("duplex-ws", 2, 200_000.0, 2.0),
            line("socket.io", 2, 50_000.0, 1.0),
            line("duplex-ws", 4, 100_000.0, 2.0),
            r#"{"scenario":"cluster","server":"socket.io","nodes":4,"subscribers":1000,"rate":0.0,"window":8,"error":"x"}"#.to_owned(),
        ]
        .join("\n");
        let md = render(&jsonl).unwrap();
        assert!(md.contains("| 2 | 1000 | max | duplex-ws | 200000 | 1.00 | 4.00 | 5.00 | 80 % | 200000 | 2.00 | 12.0 | publish 1.00 |"), "{md}");
        assert!(
            md.contains("| 4 | 1000 | max | socket.io | failed |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| 2 | 1000 | max | duplex-ws / socket.io | 4.00 | 4.00 | 1.00 | 1.00 | 2.00 |"
            ),
            "{md}"
        );
        assert!(
            !md.contains("| 4 | 1000 | max | duplex-ws / socket.io"),
            "{md}"
        );
    }

    #[tokio::test]
    async fn reads_a_real_redis_when_there_is_one() {
        // The machine's Redis (scripts/ensure-redis.sh); nothing to check
        // without one.
        let Ok(stats) = redis_stats("127.0.0.1:6379").await else {
            return;
        };
        assert!(stats.cpu_seconds > 0.0);
        let again = redis_stats("127.0.0.1:6379").await.unwrap();
        assert!(again.calls.get("info").copied().unwrap_or(0) >= 1);
    }
}
