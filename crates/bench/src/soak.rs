//! The soak: a population of churning WebSocket clients against one
//! duplex server for a bounded time, checking every delivery for loss,
//! duplication and order while sampling the server's memory, open file
//! descriptors and CPU.
//!
//! - **Channels**: `channels` channels (`<prefix>0`, `<prefix>1`, ...) that
//!   keep history (the server's default channel options do). Before the
//!   clients start, one probe publication per channel fixes its epoch and
//!   the offset of sequence number 0 (its `base`).
//! - **Publishers**: `publishers` keep-alive HTTP connections to the server
//!   API (`POST /api/publish`, `X-API-Key`), pipelining up to `window`
//!   requests each, at `rate` publications per second in total, round
//!   robin over the channels; each channel belongs to one connection, so
//!   its publications are made in order. The data is `{"s":SEQ,"p":PAD}`
//!   with a per-channel sequence number; every reply must carry offset
//!   `base + SEQ`.
//! - **Publishing clients** (`client_publishers` > 0): every tenth channel
//!   (`c % 10 == 9`) is published by WebSocket clients instead of the
//!   API, each channel by one of them, with the client protocol's
//!   `publish` (the server's channels must allow it): a client connects,
//!   makes `publishes_per_connection` publications one after another at
//!   its share of the rate, disconnects (a share without a close
//!   handshake) and a new one connects. Its publications are made in order
//!   too, so they get offsets `base + SEQ` (the reply carries none).
//! - **Clients**: `clients` slots, each running one client after another:
//!   connect (HS256 token), subscribe to a random channel (a share of them
//!   `recoverable`), read for a random lifetime, then end. A share of the
//!   recoverable ones disconnect without reading on, stay away for a
//!   random time and come back subscribing with `recover` from the last
//!   offset they got; the others read until they hold every publication
//!   the API has acknowledged so far (the drain) and disconnect. A share
//!   of disconnects drop the TCP connection without a close handshake.
//! - **Checker** (per subscription, carried across recoveries): a
//!   recoverable subscription must receive every offset after its
//!   subscribe reply's, exactly once and in order; a plain one (no offset
//!   in the reply) every publication whose request was written after the
//!   reply arrived, then everything in order. A recovery reply must say
//!   `recovered: true` and carry exactly the offsets missed. Each delivery's
//!   data must hold the sequence number of its offset. Gaps still open at
//!   the end are losses; an offset seen twice is a duplicate; a gap filled
//!   late is out of order.
//! - **Samples**: every `sample_every`, the server's `VmRSS`, its count of
//!   open file descriptors (`/proc/PID/fd`), its CPU share, and the
//!   counters so far, as `soak-sample` JSON lines.
//!
//! The final `soak` line compares RSS at the end of the warm-up with RSS at
//! the end (and a least-squares slope over the samples after warm-up), and
//! the server's descriptors after every client has gone with those before
//! the first client came. [`SoakReport::pass`] is false on any loss,
//! duplicate, out-of-order or corrupt delivery, failed recovery, failed
//! publication or descriptor leak.
//!
//! Owns the churn, the checks and the report; the protocol is
//! [`crate::centrifuge`]'s, the HTTP client [`crate::http`]'s, `/proc`
//! reading [`crate::procfs`]'s.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::centrifuge::{json_string, last_u64_field, CentrifugeClient, SubscribeOptions};
use crate::http::HttpClient;
use crate::output::clip;
use crate::procfs;
use crate::sio::{json_string_field, json_u64_field};
use crate::target::Target;

/// How long a connect plus subscribe may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a close handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most open gaps remembered per subscription (more are only counted).
const MAX_MISSING: usize = 100_000;
/// Most problem descriptions kept for the report.
const MAX_PROBLEMS: usize = 20;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// The server's `/connection/websocket` target.
    pub ws: Target,
    /// The server API (`http://host:port`).
    pub api: Target,
    /// The `X-API-Key` value.
    pub api_key: String,
    /// HS256 secret for connection tokens (`None`: connect without one,
    /// for a server in `--dev`).
    pub token_secret: Option<String>,
    /// Client slots (the population).
    pub clients: usize,
    /// Channels.
    pub channels: usize,
    /// Channel name prefix.
    pub channel_prefix: String,
    /// Publications per second, in total.
    pub rate: f64,
    /// Publisher HTTP connections.
    pub publishers: usize,
    /// Requests in flight per publisher connection at most.
    pub window: usize,
    /// WebSocket clients publishing every tenth channel (0: the API
    /// publishes every channel).
    pub client_publishers: usize,
    /// Publications a publishing client makes before it disconnects.
    pub publishes_per_connection: u64,
    /// Padding bytes in each publication's data.
    pub size: usize,
    /// How long clients churn.
    pub duration: Duration,
    /// Samples before this are warm-up (not used for the RSS slope).
    pub warmup: Duration,
    /// A client's lifetime, drawn uniformly from this range.
    pub lifetime: (Duration, Duration),
    /// Time away before a reconnect with recovery, drawn from this range.
    pub offline: (Duration, Duration),
    /// Share of fresh subscriptions that are recoverable.
    pub recoverable_share: f64,
    /// Share of ending recoverable clients that come back recovering.
    pub reconnect_share: f64,
    /// Share of disconnects without a close handshake.
    pub abrupt_share: f64,
    /// Time over which the slots start their first client.
    pub ramp: Duration,
    /// Time to wait for a publication during the drain.
    pub drain_timeout: Duration,
    /// Sampling period.
    pub sample_every: Duration,
    /// The server's process id.
    pub server_pid: u32,
    /// Descriptors the server may hold above its start figure after every
    /// client has gone without counting as a leak.
    pub fd_slack: u64,
    /// Seed of the clients' random choices.
    pub seed: u64,
    /// Free-form name of the server, copied into the report.
    pub label: Option<String>,
}

/// Command-line options of `duplex-bench soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The server, as ws://host:port/connection/websocket.
    #[arg(long)]
    pub url: String,
    /// The server API, http://host:port.
    #[arg(long)]
    pub api_url: String,
    /// The server API key.
    #[arg(long)]
    pub api_key: String,
    /// Sign an HS256 connection token per client with this secret (omit
    /// against a server in --dev).
    #[arg(long)]
    pub token_secret: Option<String>,
    /// Server process id, for its RSS, descriptors and CPU (/proc/PID).
    #[arg(long)]
    pub server_pid: u32,
    /// Client slots (the population).
    #[arg(long, default_value_t = 2500)]
    pub clients: usize,
    /// Channels (they must keep history: the default channel options do).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Channel name prefix.
    #[arg(long, default_value = "soak")]
    pub channel_prefix: String,
    /// Publications per second, in total.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Publisher HTTP connections.
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Publish requests in flight per publisher connection at most.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// WebSocket clients publishing every tenth channel with the client
    /// protocol (0: the API publishes every channel).
    #[arg(long, default_value_t = 0)]
    pub client_publishers: usize,
    /// Publications a publishing client makes per connection.
    #[arg(long, default_value_t = 50)]
    pub publishes_per_connection: u64,
    /// Padding bytes in each publication's data.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of churn.
    #[arg(long, default_value_t = 1800.0)]
    pub duration: f64,
    /// Seconds of warm-up (left out of the RSS slope).
    #[arg(long, default_value_t = 300.0)]
    pub warmup: f64,
    /// A client's lifetime in seconds, MIN-MAX.
    #[arg(long, default_value = "5-60")]
    pub lifetime: String,
    /// Seconds away before a reconnect with recovery, MIN-MAX.
    #[arg(long, default_value = "0.2-5")]
    pub offline: String,
    /// Share of fresh subscriptions that are recoverable.
    #[arg(long, default_value_t = 0.7)]
    pub recoverable: f64,
    /// Share of ending recoverable clients that come back recovering.
    #[arg(long, default_value_t = 0.4)]
    pub reconnect: f64,
    /// Share of disconnects that drop TCP without a close handshake.
    #[arg(long, default_value_t = 0.2)]
    pub abrupt: f64,
    /// Seconds over which the first clients connect.
    #[arg(long, default_value_t = 20.0)]
    pub ramp_seconds: f64,
    /// Seconds a draining client waits for acknowledged publications.
    #[arg(long, default_value_t = 15.0)]
    pub drain_timeout: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    pub sample_every: f64,
    /// Seconds between rows of the printed table.
    #[arg(long, default_value_t = 300.0)]
    pub table_every: f64,
    /// Descriptors above the start figure tolerated after the clients left.
    #[arg(long, default_value_t = 4)]
    pub fd_slack: u64,
    /// Seed of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Name of the server, copied into the JSON output.
    #[arg(long)]
    pub label: Option<String>,
    /// Client runtime threads (1: tokio current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
}

/// Runs `duplex-bench soak`: the soak, its `soak` line, the report in
/// words on standard error; an error when it failed.
pub async fn run_cli(a: SoakArgs) -> Result<()> {
    let secs = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
    };
    let opts = SoakOptions {
        ws: Target::resolve(&a.url).await?,
        api: crate::http::resolve(&a.api_url).await?,
        api_key: a.api_key,
        token_secret: a.token_secret,
        clients: a.clients,
        channels: a.channels,
        channel_prefix: a.channel_prefix,
        rate: a.rate,
        publishers: a.publishers,
        window: a.window.max(1),
        client_publishers: a.client_publishers,
        publishes_per_connection: a.publishes_per_connection.max(1),
        size: a.size,
        duration: secs(a.duration, "--duration")?,
        warmup: secs(a.warmup, "--warmup")?,
        lifetime: seconds_range(&a.lifetime, "--lifetime")?,
        offline: seconds_range(&a.offline, "--offline")?,
        recoverable_share: a.recoverable,
        reconnect_share: a.reconnect,
        abrupt_share: a.abrupt,
        ramp: secs(a.ramp_seconds, "--ramp-seconds")?,
        drain_timeout: secs(a.drain_timeout, "--drain-timeout")?,
        sample_every: secs(a.sample_every, "--sample-every")?,
        server_pid: a.server_pid,
        fd_slack: a.fd_slack,
        seed: a.seed,
        label: a.label,
    };
    let (report, samples) = run(&opts).await?;
    crate::output::emit(&report)?;
    eprint!("{}", render(&report, &samples, a.table_every));
    if !report.pass {
        bail!("soak failed: {}", report.failures.join("; "));
    }
    Ok(())
}

/// `MIN-MAX` seconds.
fn seconds_range(s: &str, what: &str) -> Result<(Duration, Duration)> {
    let (lo, hi) = s
        .split_once('-')
        .with_context(|| format!("{what}: MIN-MAX seconds, got {s:?}"))?;
    let parse = |v: &str| -> Result<Duration> {
        let secs: f64 = v
            .trim()
            .parse()
            .with_context(|| format!("{what}: bad {v:?}"))?;
        Duration::try_from_secs_f64(secs).with_context(|| format!("{what}: bad {v:?}"))
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo > hi {
        bail!("{what}: MIN above MAX");
    }
    Ok((lo, hi))
}

/// One `soak-sample` line.
#[derive(Clone, Debug, Serialize)]
pub struct SoakSample {
    /// `"soak-sample"`.
    pub scenario: &'static str,
    /// Seconds since the clients started.
    pub t: f64,
    /// Server resident memory, KiB.
    pub rss_kib: u64,
    /// Server open file descriptors.
    pub fds: u64,
    /// Server CPU over the last period, percent of one core.
    pub cpu_pct: f64,
    /// Clients connected now.
    pub clients: i64,
    /// Clients away, waiting to reconnect with recovery.
    pub offline: i64,
    /// Publications acknowledged so far.
    pub publications: u64,
    /// Live deliveries so far.
    pub deliveries: u64,
    /// Connects so far.
    pub connects: u64,
    /// Losses so far (counted when a subscription ends).
    pub loss: u64,
    /// Duplicates so far.
    pub duplicates: u64,
}

/// The final `soak` line.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// `"soak"`.
    pub scenario: &'static str,
    /// The server's name, if one was given.
    pub server: Option<String>,
    /// Churn seconds.
    pub seconds: f64,
    /// Client slots.
    pub clients: usize,
    /// Channels.
    pub channels: usize,
    /// Target publications per second.
    pub rate: f64,
    /// Publications acknowledged (without the probes).
    pub publications: u64,
    /// Publications per second achieved.
    pub publications_per_sec: f64,
    /// Of the publications, those made by publishing WebSocket clients.
    pub client_publications: u64,
    /// Connections of the publishing clients.
    pub publisher_connects: u64,
    /// Failed or unexpected publish replies.
    pub publish_errors: u64,
    /// Successful connects (with subscribe), fresh and recovering.
    pub connects: u64,
    /// Failed connects or subscribes.
    pub connect_failures: u64,
    /// Connections the server ended while the client was reading.
    pub unexpected_disconnects: u64,
    /// Fresh subscriptions.
    pub subscriptions: u64,
    /// Of which recoverable.
    pub recoverable_subscriptions: u64,
    /// Resubscriptions with recovery.
    pub resubscriptions: u64,
    /// Resubscriptions answered `recovered: true` with what was missed.
    pub recovered: u64,
    /// Resubscriptions not recovered.
    pub recovery_failed: u64,
    /// Publications delivered in recovery replies.
    pub recovered_publications: u64,
    /// Publications delivered as pushes.
    pub deliveries: u64,
    /// Publications never delivered.
    pub loss: u64,
    /// Publications delivered twice.
    pub duplicates: u64,
    /// Publications delivered after a later one.
    pub out_of_order: u64,
    /// Deliveries with the wrong channel, data or epoch.
    pub corrupt: u64,
    /// Drains that gave up waiting.
    pub drain_timeouts: u64,
    /// Server RSS before the first client, KiB.
    pub rss_kib_start: u64,
    /// Server RSS at the end of the warm-up, KiB.
    pub rss_kib_warm: Option<u64>,
    /// Server RSS at the last sample before the end of the churn, KiB.
    pub rss_kib_end: Option<u64>,
    /// Highest server RSS sampled, KiB.
    pub rss_kib_peak: u64,
    /// Server RSS after every client had gone, KiB.
    pub rss_kib_after: u64,
    /// Least-squares slope of RSS over the samples after warm-up, MiB per
    /// 10 minutes.
    pub rss_slope_mib_per_10min: Option<f64>,
    /// Server descriptors before the first client.
    pub fds_start: u64,
    /// Most server descriptors sampled.
    pub fds_peak: u64,
    /// Server descriptors after every client had gone.
    pub fds_after: u64,
    /// Server CPU over the churn, seconds.
    pub server_cpu_seconds: f64,
    /// Samples taken.
    pub samples: usize,
    /// Why the soak failed (empty when it passed).
    pub failures: Vec<String>,
    /// The first problems seen, in words.
    pub problems: Vec<String>,
    /// Whether the soak passed.
    pub pass: bool,
}

/// One channel and what its publisher has done.
#[derive(Debug)]
struct Channel {
    name: String,
    /// Offset of sequence number 0 (the probe).
    base: u64,
    epoch: String,
    /// Sequence numbers handed out; taken before the request is written.
    sent: AtomicU64,
    /// Every sequence number below this was acknowledged.
    acked: AtomicU64,
}

/// Counters shared by every task.
#[derive(Debug, Default)]
struct Stats {
    publications: AtomicU64,
    client_publications: AtomicU64,
    publisher_connects: AtomicU64,
    publish_errors: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    unexpected_disconnects: AtomicU64,
    subscriptions: AtomicU64,
    recoverable_subscriptions: AtomicU64,
    resubscriptions: AtomicU64,
    recovered: AtomicU64,
    recovery_failed: AtomicU64,
    recovered_publications: AtomicU64,
    deliveries: AtomicU64,
    loss: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    corrupt: AtomicU64,
    drain_timeouts: AtomicU64,
    connected: AtomicI64,
    offline: AtomicI64,
    problems: Mutex<Vec<String>>,
}

impl Stats {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < MAX_PROBLEMS {
            eprintln!("soak: {what}");
            p.push(what);
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Everything the tasks share.
#[derive(Debug)]
struct Shared {
    opts: SoakOptions,
    channels: Vec<Channel>,
    stats: Stats,
    end_at: Instant,
}

/// A small deterministic generator (splitmix64) for the clients' choices.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        lo + hi.saturating_sub(lo).mul_f64(self.unit())
    }
}

/// The checker of one logical subscription (carried across recoveries),
/// in sequence numbers (`offset - base`).
#[derive(Debug)]
struct Track {
    channel: usize,
    /// The next sequence number expected.
    next: u64,
    /// A plain subscription before its first delivery: anything below
    /// `next` may still come first (it was published around the reply).
    lenient: bool,
    recoverable: bool,
    /// Gaps not filled yet.
    missing: BTreeSet<u64>,
    /// Gaps beyond [`MAX_MISSING`], counted only.
    missing_overflow: u64,
}

impl Track {
    /// Takes one delivery of sequence number `seq`.
    fn deliver(&mut self, seq: u64, stats: &Stats, name: &str) {
        if self.lenient && seq < self.next {
            self.lenient = false;
            self.next = seq + 1;
            return;
        }
        self.lenient = false;
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            for missed in self.next..seq {
                if self.missing.len() < MAX_MISSING {
                    self.missing.insert(missed);
                } else {
                    self.missing_overflow += 1;
                }
            }
            stats.problem(format!(
                "{name}: gap: expected seq {}, got {seq}",
                self.next
            ));
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            add(&stats.out_of_order, 1);
            stats.problem(format!("{name}: seq {seq} arrived out of order"));
        } else {
            add(&stats.duplicates, 1);
            stats.problem(format!(
                "{name}: seq {seq} delivered twice (next expected {})",
                self.next
            ));
        }
    }

    /// Marks everything below `upto` not received yet as lost.
    fn give_up_below(&mut self, upto: u64) {
        while self.next < upto {
            if self.missing.len() < MAX_MISSING {
                self.missing.insert(self.next);
            } else {
                self.missing_overflow += 1;
            }
            self.next += 1;
        }
    }

    /// Ends the subscription: open gaps are losses.
    fn finish(self, stats: &Stats, name: &str) {
        let lost = self.missing.len() as u64 + self.missing_overflow;
        if lost > 0 {
            add(&stats.loss, lost);
            let first: Vec<u64> = self.missing.iter().take(10).copied().collect();
            stats.problem(format!(
                "{name}: {lost} publications lost, first seqs {first:?}"
            ));
        }
    }
}

/// Runs the soak and returns its report and samples.
pub async fn run(opts: &SoakOptions) -> Result<(SoakReport, Vec<SoakSample>)> {
    if opts.clients == 0 || opts.channels == 0 || opts.publishers == 0 {
        bail!("--clients, --channels and --publishers must be at least 1");
    }
    if !opts.rate.is_finite() || opts.rate <= 0.0 {
        bail!("--rate must be more than 0");
    }
    procfs::rss_kib(opts.server_pid).context("is --server-pid the server's process id?")?;

    // Publisher connections, and one probe publication per channel.
    let mut https = Vec::with_capacity(opts.publishers);
    for _ in 0..opts.publishers {
        https.push(HttpClient::connect(&opts.api, Some(opts.api_key.clone())).await?);
    }
    let mut channels = Vec::with_capacity(opts.channels);
    for i in 0..opts.channels {
        let name = format!("{}{i}", opts.channel_prefix);
        let http = &mut https[i % opts.publishers];
        let r = http
            .post("/api/publish", &publish_body(&name, 0, opts.size))
            .await?;
        let (Some(offset), Some(epoch)) = (
            json_u64_field(&r.body, "offset"),
            json_string_field(&r.body, "epoch"),
        ) else {
            bail!(
                "probe publish into {name}: {} {} (does the channel keep history?)",
                r.status,
                r.body
            );
        };
        channels.push(Channel {
            name,
            base: offset,
            epoch: epoch.to_owned(),
            sent: AtomicU64::new(1),
            acked: AtomicU64::new(1),
        });
    }
    // Let the server settle (SQLite files opened, probe connections idle).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = opts.server_pid;
    let rss_kib_start = procfs::rss_kib(pid)?;
    let fds_start = fd_count(pid)?;
    let ticks = procfs::clock_ticks_per_sec() as f64;
    let cpu_start = procfs::cpu_ticks(pid)?;
    eprintln!(
        "soak: {} clients, {} channels, {}/s for {:?}; server RSS {} KiB, {} fds",
        opts.clients, opts.channels, opts.rate, opts.duration, rss_kib_start, fds_start
    );

    let started = Instant::now();
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        channels,
        stats: Stats::default(),
        end_at: started + opts.duration,
    });

    // Publishers.
    let mut publishers = JoinSet::new();
    for (p, http) in https.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        publishers.spawn(async move { Some(publisher(p, http, shared).await) });
    }
    for p in 0..opts.client_publishers {
        let shared = Arc::clone(&shared);
        publishers.spawn(async move {
            client_publisher(p, shared).await;
            None
        });
    }
    // Clients.
    let mut slots = JoinSet::new();
    for slot in 0..opts.clients {
        let shared = Arc::clone(&shared);
        let delay = opts.ramp.mul_f64(slot as f64 / opts.clients as f64);
        slots.spawn(async move {
            tokio::time::sleep(delay).await;
            client_slot(slot, shared).await;
        });
    }
    // Sampler.
    let samples = Arc::new(Mutex::new(Vec::<SoakSample>::new()));
    let sampler = {
        let shared = Arc::clone(&shared);
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(shared.opts.sample_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut last_cpu = cpu_start;
            let mut last_t = Instant::now();
            loop {
                ticker.tick().await;
                let s = &shared.stats;
                let now = Instant::now();
                let cpu = procfs::cpu_ticks(pid).unwrap_or(last_cpu);
                let wall = now.duration_since(last_t).as_secs_f64().max(1e-9);
                let sample = SoakSample {
                    scenario: "soak-sample",
                    t: now.duration_since(started).as_secs_f64(),
                    rss_kib: procfs::rss_kib(pid).unwrap_or(0),
                    fds: fd_count(pid).unwrap_or(0),
                    cpu_pct: cpu.saturating_sub(last_cpu) as f64 / ticks / wall * 100.0,
                    clients: s.connected.load(Ordering::Relaxed),
                    offline: s.offline.load(Ordering::Relaxed),
                    publications: get(&s.publications),
                    deliveries: get(&s.deliveries),
                    connects: get(&s.connects),
                    loss: get(&s.loss),
                    duplicates: get(&s.duplicates),
                };
                last_cpu = cpu;
                last_t = now;
                crate::output::emit_or_warn(&sample);
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sample);
            }
        })
    };

    while let Some(joined) = slots.join_next().await {
        if let Err(e) = joined {
            shared.stats.problem(format!("a client task failed: {e}"));
        }
    }
    sampler.abort();
    let seconds = started.elapsed().as_secs_f64();
    let cpu_end = procfs::cpu_ticks(pid)?;
    let mut keep = Vec::new();
    while let Some(joined) = publishers.join_next().await {
        match joined {
            Ok(None) => {}
            Ok(Some(Ok(http))) => keep.push(http),
            Ok(Some(Err(e))) => {
                add(&shared.stats.publish_errors, 1);
                shared.stats.problem(format!("a publisher failed: {e:#}"));
            }
            Err(e) => shared
                .stats
                .problem(format!("a publisher task failed: {e}")),
        }
    }
    // Every client has gone: wait (a little) for the server to let go of
    // their descriptors, then compare with the start.
    let settle_until = Instant::now() + Duration::from_secs(15);
    let mut fds_after = fd_count(pid)?;
    while fds_after > fds_start && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fds_after = fd_count(pid)?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    fds_after = fd_count(pid)?;
    let rss_kib_after = procfs::rss_kib(pid)?;
    drop(keep);

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let report = report(
        opts,
        &shared.stats,
        &samples,
        Figures {
            seconds,
            rss_kib_start,
            rss_kib_after,
            fds_start,
            fds_after,
            server_cpu_seconds: cpu_end.saturating_sub(cpu_start) as f64 / ticks,
        },
    );
    Ok((report, samples))
}

/// Measurements taken outside the samples.
struct Figures {
    seconds: f64,
    rss_kib_start: u64,
    rss_kib_after: u64,
    fds_start: u64,
    fds_after: u64,
    server_cpu_seconds: f64,
}

fn report(opts: &SoakOptions, s: &Stats, samples: &[SoakSample], f: Figures) -> SoakReport {
    // Samples of the churn only (not of the final drains and closes).
    let warm = opts.warmup.as_secs_f64();
    let churn: Vec<&SoakSample> = samples
        .iter()
        .filter(|x| x.t < opts.duration.as_secs_f64())
        .collect();
    let after_warmup: Vec<&SoakSample> = churn.iter().copied().filter(|x| x.t >= warm).collect();
    let rss_slope_mib_per_10min = slope(
        &after_warmup
            .iter()
            .map(|x| (x.t, x.rss_kib as f64 / 1024.0))
            .collect::<Vec<_>>(),
    )
    .map(|per_sec| per_sec * 600.0);
    let publications = get(&s.publications);
    let mut r = SoakReport {
        scenario: "soak",
        server: opts.label.clone(),
        seconds: f.seconds,
        clients: opts.clients,
        channels: opts.channels,
        rate: opts.rate,
        publications,
        publications_per_sec: publications as f64 / f.seconds.max(1e-9),
        client_publications: get(&s.client_publications),
        publisher_connects: get(&s.publisher_connects),
        publish_errors: get(&s.publish_errors),
        connects: get(&s.connects),
        connect_failures: get(&s.connect_failures),
        unexpected_disconnects: get(&s.unexpected_disconnects),
        subscriptions: get(&s.subscriptions),
        recoverable_subscriptions: get(&s.recoverable_subscriptions),
        resubscriptions: get(&s.resubscriptions),
        recovered: get(&s.recovered),
        recovery_failed: get(&s.recovery_failed),
        recovered_publications: get(&s.recovered_publications),
        deliveries: get(&s.deliveries),
        loss: get(&s.loss),
        duplicates: get(&s.duplicates),
        out_of_order: get(&s.out_of_order),
        corrupt: get(&s.corrupt),
        drain_timeouts: get(&s.drain_timeouts),
        rss_kib_start: f.rss_kib_start,
        rss_kib_warm: after_warmup.first().map(|x| x.rss_kib),
        rss_kib_end: churn.last().map(|x| x.rss_kib),
        rss_kib_peak: samples.iter().map(|x| x.rss_kib).max().unwrap_or(0),
        rss_kib_after: f.rss_kib_after,
        rss_slope_mib_per_10min,
        fds_start: f.fds_start,
        fds_peak: samples.iter().map(|x| x.fds).max().unwrap_or(0),
        fds_after: f.fds_after,
        server_cpu_seconds: f.server_cpu_seconds,
        samples: samples.len(),
        failures: Vec::new(),
        problems: s.problems.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        pass: false,
    };
    let checks = [
        (r.loss, "publications lost"),
        (r.duplicates, "publications delivered twice"),
        (r.out_of_order, "publications out of order"),
        (r.corrupt, "corrupt deliveries"),
        (r.recovery_failed, "recoveries failed"),
        (r.publish_errors, "publish errors"),
    ];
    for (n, what) in checks {
        if n > 0 {
            r.failures.push(format!("{n} {what}"));
        }
    }
    if r.fds_after > r.fds_start + opts.fd_slack {
        r.failures.push(format!(
            "descriptor leak: {} open after every client left, {} before the first came",
            r.fds_after, r.fds_start
        ));
    }
    if r.deliveries == 0 {
        r.failures.push("nothing was delivered".to_owned());
    }
    r.pass = r.failures.is_empty();
    r
}

/// Least-squares slope of `points` (y per unit of x); `None` with fewer
/// than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The report in words, for a terminal, with a table of the samples about
/// every `table_every` seconds.
pub fn render(r: &SoakReport, samples: &[SoakSample], table_every: f64) -> String {
    use std::fmt::Write as _;
    let mib = |k: u64| k as f64 / 1024.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {:.0} s, {} client slots over {} channels, {:.1} publications/s (target {})",
        r.seconds, r.clients, r.channels, r.publications_per_sec, r.rate
    );
    let _ = writeln!(
        out,
        "  connects {} (failed {}), subscriptions {} ({} recoverable), resubscriptions {} (recovered {}, failed {}), unexpected disconnects {}",
        r.connects,
        r.connect_failures,
        r.subscriptions,
        r.recoverable_subscriptions,
        r.resubscriptions,
        r.recovered,
        r.recovery_failed,
        r.unexpected_disconnects
    );
    let _ = writeln!(
        out,
        "  publications {} (errors {}; {} by publishing clients over {} connections), deliveries {} + {} recovered; loss {}, duplicates {}, out of order {}, corrupt {}, drain timeouts {}",
        r.publications,
        r.publish_errors,
        r.client_publications,
        r.publisher_connects,
        r.deliveries,
        r.recovered_publications,
        r.loss,
        r.duplicates,
        r.out_of_order,
        r.corrupt,
        r.drain_timeouts
    );
    let _ = writeln!(
        out,
        "  RSS MiB: start {:.1}, warm {}, end {}, peak {:.1}, after clients left {:.1}; slope after warm-up {} MiB/10 min",
        mib(r.rss_kib_start),
        r.rss_kib_warm.map_or("-".to_owned(), |k| format!("{:.1}", mib(k))),
        r.rss_kib_end.map_or("-".to_owned(), |k| format!("{:.1}", mib(k))),
        mib(r.rss_kib_peak),
        mib(r.rss_kib_after),
        r.rss_slope_mib_per_10min
            .map_or("-".to_owned(), |s| format!("{s:+.2}"))
    );
    let _ = writeln!(
        out,
        "  fds: start {}, peak {}, after clients left {}; server CPU {:.1} s ({:.1}% of a core)",
        r.fds_start,
        r.fds_peak,
        r.fds_after,
        r.server_cpu_seconds,
        r.server_cpu_seconds / r.seconds.max(1e-9) * 100.0
    );
    if !samples.is_empty() {
        let _ = writeln!(
            out,
            "  {:>7} {:>9} {:>6} {:>8} {:>8} {:>12}",
            "t (s)", "RSS MiB", "fds", "clients", "CPU %", "deliveries"
        );
        let mut next_row = 0.0;
        for (i, x) in samples.iter().enumerate() {
            if x.t + 1e-6 >= next_row || i + 1 == samples.len() {
                let _ = writeln!(
                    out,
                    "  {:>7.0} {:>9.1} {:>6} {:>8} {:>8.1} {:>12}",
                    x.t,
                    mib(x.rss_kib),
                    x.fds,
                    x.clients,
                    x.cpu_pct,
                    x.deliveries
                );
                next_row = x.t - x.t % table_every.max(1.0) + table_every.max(1.0);
            }
        }
    }
    for p in &r.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    if r.pass {
        let _ = writeln!(out, "PASS");
    } else {
        let _ = writeln!(out, "FAIL: {}", r.failures.join("; "));
    }
    out
}

/// Open descriptors of process `pid`.
fn fd_count(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {dir}"))?
        .count() as u64)
}

/// The body of a publish request.
fn publish_body(channel: &str, seq: u64, size: usize) -> String {
    format!(
        "{{\"channel\":{},\"data\":{{\"s\":{seq},\"p\":\"{}\"}}}}",
        json_string(channel),
        "x".repeat(size)
    )
}

/// One publisher connection: its channels (`c % publishers == p`) in
/// turn, at its share of the rate, until the end; returns the connection
/// (kept open until the descriptors are counted).
async fn publisher(p: usize, mut http: HttpClient, shared: Arc<Shared>) -> Result<HttpClient> {
    let opts = &shared.opts;
    let mine: Vec<usize> = (0..shared.channels.len())
        .filter(|&c| c % opts.publishers == p && !client_published(opts, c))
        .collect();
    if mine.is_empty() {
        return Ok(http);
    }
    let api_channels = (0..shared.channels.len())
        .filter(|&c| !client_published(opts, c))
        .count();
    let api_share = api_channels as f64 / shared.channels.len() as f64;
    let per_conn = opts.rate * api_share / opts.publishers as f64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_conn));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pad = "x".repeat(opts.size);
    let mut in_flight: VecDeque<(usize, u64)> = VecDeque::new();
    let mut turn = 0usize;
    let end = tokio::time::sleep_until(shared.end_at);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => break,
            _ = ticker.tick(), if in_flight.len() < opts.window => {
                let c = mine[turn % mine.len()];
                turn += 1;
                let ch = &shared.channels[c];
                let seq = ch.sent.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "{{\"channel\":{},\"data\":{{\"s\":{seq},\"p\":\"{pad}\"}}}}",
                    json_string(&ch.name)
                );
                http.send_post("/api/publish", &body).await?;
                in_flight.push_back((c, seq));
            }
            r = http.readable(), if !in_flight.is_empty() => {
                r?;
                for resp in http.try_responses()? {
                    answer(&shared, &mut in_flight, &resp);
                }
            }
        }
    }
    // Collect the answers still due.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !in_flight.is_empty() {
        let resp = tokio::time::timeout_at(deadline, http.recv())
            .await
            .context("publish replies still due 30 s after the end")??;
        answer(&shared, &mut in_flight, &resp);
    }
    Ok(http)
}

/// Whether channel `c` is published by the publishing clients.
fn client_published(opts: &SoakOptions, c: usize) -> bool {
    opts.client_publishers > 0 && c % 10 == 9
}

/// One publishing client slot: its channels (every tenth channel, dealt
/// round robin over the slots) in turn at its share of the rate, one
/// WebSocket connection after another, each making
/// `publishes_per_connection` publications with the client protocol.
async fn client_publisher(p: usize, shared: Arc<Shared>) {
    let opts = &shared.opts;
    let owned: Vec<usize> = (0..shared.channels.len())
        .filter(|&c| client_published(opts, c))
        .collect();
    let mine: Vec<usize> = owned
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| i % opts.client_publishers == p)
        .map(|(_, c)| c)
        .collect();
    if mine.is_empty() {
        return;
    }
    let per_client = opts.rate * owned.len() as f64
        / shared.channels.len() as f64
        / opts.client_publishers as f64;
    let mut rng = Rng(opts.seed ^ 0x5EED ^ (p as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let token = opts
        .token_secret
        .as_deref()
        .map(|secret| crate::jwt::hs256(secret, &format!("soak-publisher{p}"), None));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_client));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pad = "x".repeat(opts.size);
    let mut turn = 0usize;
    let stats = &shared.stats;
    'connections: while Instant::now() < shared.end_at {
        let mut client = match CentrifugeClient::connect(&opts.ws, 4096, token.as_deref()).await {
            Ok(client) => client,
            Err(e) => {
                add(&stats.publish_errors, 1);
                stats.problem(format!("publishing client {p}: connect failed: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        add(&stats.publisher_connects, 1);
        for _ in 0..opts.publishes_per_connection {
            ticker.tick().await;
            if Instant::now() >= shared.end_at {
                break 'connections;
            }
            let c = mine[turn % mine.len()];
            turn += 1;
            let ch = &shared.channels[c];
            let seq = ch.sent.fetch_add(1, Ordering::SeqCst);
            let data = format!("{{\"s\":{seq},\"p\":\"{pad}\"}}");
            match client.publish(&ch.name, &data).await {
                Ok(_) => {
                    ch.acked.fetch_max(seq + 1, Ordering::SeqCst);
                    add(&stats.publications, 1);
                    add(&stats.client_publications, 1);
                }
                Err(e) => {
                    add(&stats.publish_errors, 1);
                    stats.problem(format!(
                        "{} seq {seq}: client publish failed: {e:#}",
                        ch.name
                    ));
                    continue 'connections;
                }
            }
        }
        if rng.chance(opts.abrupt_share) {
            drop(client);
        } else {
            let _ = client.close().await;
        }
    }
}

/// Checks one publish reply against the oldest request in flight.
fn answer(shared: &Shared, in_flight: &mut VecDeque<(usize, u64)>, resp: &crate::http::Response) {
    let stats = &shared.stats;
    let Some((c, seq)) = in_flight.pop_front() else {
        add(&stats.publish_errors, 1);
        stats.problem(format!("a publish reply nobody asked for: {}", resp.body));
        return;
    };
    let ch = &shared.channels[c];
    let want = ch.base + seq;
    let offset = json_u64_field(&resp.body, "offset");
    if resp.status != 200 || offset != Some(want) {
        add(&stats.publish_errors, 1);
        stats.problem(format!(
            "{} seq {seq}: publish answered {} {} (wanted offset {want})",
            ch.name, resp.status, resp.body
        ));
    }
    ch.acked.fetch_max(seq + 1, Ordering::SeqCst);
    add(&stats.publications, 1);
}

/// What ended a client's reading.
enum Ended {
    /// Its lifetime (or the soak) is over.
    Time,
    /// The server closed the connection, or it failed.
    Lost(anyhow::Error),
}

/// One client slot: clients one after another until the end.
async fn client_slot(slot: usize, shared: Arc<Shared>) {
    let opts = &shared.opts;
    let mut rng = Rng(opts.seed ^ (slot as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let user = format!("soak{slot}");
    let token = opts
        .token_secret
        .as_deref()
        .map(|secret| crate::jwt::hs256(secret, &user, None));
    while Instant::now() < shared.end_at {
        let c = rng.below(opts.channels);
        let recoverable = rng.chance(opts.recoverable_share);
        match fresh(&shared, token.as_deref(), c, recoverable).await {
            Ok((client, track)) => {
                run_client(&shared, &mut rng, token.as_deref(), client, track).await
            }
            Err(e) => {
                add(&shared.stats.connect_failures, 1);
                shared
                    .stats
                    .problem(format!("client {slot}: connect failed: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        // A short pause before the slot's next client.
        tokio::time::sleep(Duration::from_millis(rng.below(500) as u64)).await;
    }
}

/// Connects and subscribes a fresh client to channel `c`.
async fn fresh(
    shared: &Shared,
    token: Option<&str>,
    c: usize,
    recoverable: bool,
) -> Result<(CentrifugeClient, Track)> {
    let ch = &shared.channels[c];
    let stats = &shared.stats;
    let (client, reply) = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut client = CentrifugeClient::connect(&shared.opts.ws, 4096, token).await?;
        let reply = client
            .subscribe_reply(
                &ch.name,
                &SubscribeOptions {
                    recoverable,
                    recover_from: None,
                },
            )
            .await?;
        Ok::<_, anyhow::Error>((client, reply))
    })
    .await
    .context("connect and subscribe timed out")??;
    // Taken after the reply came: every publication with this sequence
    // number or a later one was written after it.
    let sent_at_reply = ch.sent.load(Ordering::SeqCst);
    add(&stats.connects, 1);
    add(&stats.subscriptions, 1);
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let track = if recoverable {
        add(&stats.recoverable_subscriptions, 1);
        let r = parse_reply(&reply)?;
        if r.epoch != ch.epoch {
            add(&stats.corrupt, 1);
            stats.problem(format!(
                "{}: subscribe reply epoch {:?}, the channel's is {:?}",
                ch.name, r.epoch, ch.epoch
            ));
        }
        let Some(seq) = r.offset.checked_sub(ch.base) else {
            bail!(
                "{}: subscribe reply offset {} below the base",
                ch.name,
                r.offset
            );
        };
        Track {
            channel: c,
            next: seq + 1,
            lenient: false,
            recoverable: true,
            missing: BTreeSet::new(),
            missing_overflow: 0,
        }
    } else {
        Track {
            channel: c,
            next: sent_at_reply,
            lenient: true,
            recoverable: false,
            missing: BTreeSet::new(),
            missing_overflow: 0,
        }
    };
    Ok((client, track))
}

/// A client's life from its subscribe to its last disconnect (through any
/// reconnects with recovery).
async fn run_client(
    shared: &Shared,
    rng: &mut Rng,
    token: Option<&str>,
    mut client: CentrifugeClient,
    mut track: Track,
) {
    let opts = &shared.opts;
    let stats = &shared.stats;
    let name = shared.channels[track.channel].name.clone();
    loop {
        let until = (Instant::now() + rng.between(opts.lifetime)).min(shared.end_at);
        let ended = read_until(&mut client, &mut track, shared, |_| false, until).await;
        let lost = match ended {
            Ended::Time => false,
            Ended::Lost(e) => {
                add(&stats.unexpected_disconnects, 1);
                stats.problem(format!("{name}: connection lost: {e:#}"));
                true
            }
        };
        let comes_back = track.recoverable
            && (lost || rng.chance(opts.reconnect_share))
            && Instant::now() + opts.offline.1 < shared.end_at;
        if !comes_back {
            if !lost {
                drain(&mut client, &mut track, shared, &name).await;
            }
            stats.connected.fetch_sub(1, Ordering::Relaxed);
            disconnect(client, rng.chance(opts.abrupt_share)).await;
            track.finish(stats, &name);
            return;
        }
        // Away, then back recovering from the last offset received.
        stats.connected.fetch_sub(1, Ordering::Relaxed);
        disconnect(client, rng.chance(opts.abrupt_share)).await;
        stats.offline.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(rng.between(opts.offline)).await;
        stats.offline.fetch_sub(1, Ordering::Relaxed);
        client = match resubscribe(shared, token, &mut track).await {
            Ok(c) => c,
            Err(e) => {
                add(&stats.connect_failures, 1);
                stats.problem(format!("{name}: reconnect failed: {e:#}"));
                track.finish(stats, &name);
                return;
            }
        };
    }
}

/// Reconnects and resubscribes with recovery from the last offset `track`
/// received, checking the recovered publications.
async fn resubscribe(
    shared: &Shared,
    token: Option<&str>,
    track: &mut Track,
) -> Result<CentrifugeClient> {
    let ch = &shared.channels[track.channel];
    let stats = &shared.stats;
    let from = ch.base + track.next - 1;
    let (client, reply) = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut client = CentrifugeClient::connect(&shared.opts.ws, 4096, token).await?;
        let reply = client
            .subscribe_reply(
                &ch.name,
                &SubscribeOptions {
                    recoverable: true,
                    recover_from: Some((ch.epoch.clone(), from)),
                },
            )
            .await?;
        Ok::<_, anyhow::Error>((client, reply))
    })
    .await
    .context("reconnect timed out")??;
    add(&stats.connects, 1);
    add(&stats.resubscriptions, 1);
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let r = parse_reply(&reply)?;
    let Some(top) = r.offset.checked_sub(ch.base) else {
        bail!(
            "{}: recovery reply offset {} below the base",
            ch.name,
            r.offset
        );
    };
    if !r.recovered || r.epoch != ch.epoch {
        add(&stats.recovery_failed, 1);
        stats.problem(format!(
            "{}: not recovered from offset {from} (reply: recovered {}, epoch {:?}, offset {}, {} publications)",
            ch.name,
            r.recovered,
            r.epoch,
            r.offset,
            r.publications.len()
        ));
        // Start over from the reply's position, as a client would.
        track.next = top + 1;
        return Ok(client);
    }
    add(&stats.recovered, 1);
    add(&stats.recovered_publications, r.publications.len() as u64);
    for (offset, s) in r.publications {
        check_delivery(track, shared, offset, s);
    }
    // The reply's publications must reach its offset; what is after comes
    // as pushes.
    if track.next <= top {
        stats.problem(format!(
            "{}: recovery from {from} stopped at seq {}, the reply's offset is seq {top}",
            ch.name,
            track.next.saturating_sub(1)
        ));
        track.give_up_below(top + 1);
    }
    Ok(client)
}

/// Checks one delivery (offset and data sequence number) into `track`.
fn check_delivery(track: &mut Track, shared: &Shared, offset: u64, s: Option<u64>) {
    let ch = &shared.channels[track.channel];
    let stats = &shared.stats;
    let Some(seq) = offset.checked_sub(ch.base) else {
        add(&stats.corrupt, 1);
        stats.problem(format!(
            "{}: delivery with offset {offset} below the base",
            ch.name
        ));
        return;
    };
    if s != Some(seq) {
        add(&stats.corrupt, 1);
        stats.problem(format!(
            "{}: offset {offset} carries seq {s:?}, expected {seq}",
            ch.name
        ));
    }
    track.deliver(seq, stats, &ch.name);
}

/// Reads pushes into `track` until `until`, or until `done(track)`.
async fn read_until(
    client: &mut CentrifugeClient,
    track: &mut Track,
    shared: &Shared,
    done: impl Fn(&Track) -> bool,
    until: Instant,
) -> Ended {
    loop {
        if done(track) {
            return Ended::Time;
        }
        tokio::select! {
            r = client.readable() => {
                if let Err(e) = r {
                    return Ended::Lost(e);
                }
                loop {
                    match client.try_next_frame().await {
                        Ok(Some(frame)) => {
                            if let Err(e) = take_frame(frame.as_bytes(), track, shared) {
                                return Ended::Lost(e);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Ended::Lost(e),
                    }
                }
            }
            _ = tokio::time::sleep_until(until) => return Ended::Time,
        }
    }
}

/// Takes the pushes of one frame (one JSON object per line).
fn take_frame(frame: &[u8], track: &mut Track, shared: &Shared) -> Result<()> {
    let stats = &shared.stats;
    let ch = &shared.channels[track.channel];
    for line in frame.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(line).context("frame is not UTF-8")?;
        if !text.starts_with("{\"push\":") {
            continue;
        }
        let Some(at) = text.find("\"pub\":{") else {
            if text.contains("\"disconnect\":") || text.contains("\"unsubscribe\":") {
                bail!("the server ended the subscription: {}", clip(text));
            }
            continue;
        };
        if json_string_field(text, "channel") != Some(ch.name.as_str()) {
            add(&stats.corrupt, 1);
            stats.problem(format!(
                "{}: push of another channel: {}",
                ch.name,
                clip(text)
            ));
            continue;
        }
        let publication = &text[at..];
        // The last "offset" is the publication's: its data holds none.
        let Some(offset) = last_u64_field(publication, "offset") else {
            add(&stats.corrupt, 1);
            stats.problem(format!(
                "{}: publication without offset: {}",
                ch.name,
                clip(text)
            ));
            continue;
        };
        add(&stats.deliveries, 1);
        check_delivery(track, shared, offset, json_u64_field(publication, "s"));
    }
    Ok(())
}

/// Reads until `track` holds every publication the API has acknowledged
/// so far (or the drain timeout passes: the rest is lost).
async fn drain(client: &mut CentrifugeClient, track: &mut Track, shared: &Shared, name: &str) {
    let target = shared.channels[track.channel].acked.load(Ordering::SeqCst);
    if track.lenient && track.next >= target {
        return;
    }
    let until = Instant::now() + shared.opts.drain_timeout;
    let ended = read_until(
        client,
        track,
        shared,
        |t| !t.lenient && t.next >= target,
        until,
    )
    .await;
    if track.lenient || track.next < target {
        add(&shared.stats.drain_timeouts, 1);
        let why = match ended {
            Ended::Time => "timed out".to_owned(),
            Ended::Lost(e) => format!("{e:#}"),
        };
        shared.stats.problem(format!(
            "{name}: drain to seq {target} stopped at {} ({why})",
            track.next
        ));
        if track.lenient {
            track.lenient = false;
        }
        track.give_up_below(target);
    }
}

/// Closes the connection, with a close handshake or (`abrupt`) by
/// dropping the TCP connection.
async fn disconnect(client: CentrifugeClient, abrupt: bool) {
    if abrupt {
        drop(client);
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await;
    }
}

/// What a subscribe reply says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reply {
    epoch: String,
    offset: u64,
    recovered: bool,
    /// `(offset, data.s)` of each publication carried.
    publications: Vec<(u64, Option<u64>)>,
}

/// Parses a subscribe reply line.
fn parse_reply(line: &str) -> Result<Reply> {
    let v: Value = serde_json::from_str(line).context("subscribe reply is not JSON")?;
    let r = v.get("subscribe").context("not a subscribe reply")?;
    let publications = r
        .get("publications")
        .and_then(Value::as_array)
        .map(|pubs| {
            pubs.iter()
                .map(|p| {
                    (
                        p.get("offset").and_then(Value::as_u64).unwrap_or(0),
                        p.get("data")
                            .and_then(|d| d.get("s"))
                            .and_then(Value::as_u64),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        epoch: r
            .get("epoch")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        offset: r.get("offset").and_then(Value::as_u64).unwrap_or(0),
        recovered: r.get("recovered").and_then(Value::as_bool).unwrap_or(false),
        publications,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(next: u64, lenient: bool) -> Track {
        Track {
            channel: 0,
            next,
            lenient,
            recoverable: !lenient,
            missing: BTreeSet::new(),
            missing_overflow: 0,
        }
    }

    #[test]
    fn checker_counts_loss_duplicates_and_order() {
        let stats = Stats::default();
        let mut t = track(5, false);
        for seq in [5, 6, 8, 7, 7, 9] {
            t.deliver(seq, &stats, "c");
        }
        assert_eq!(get(&stats.out_of_order), 1);
        assert_eq!(get(&stats.duplicates), 1);
        t.deliver(12, &stats, "c");
        t.finish(&stats, "c");
        assert_eq!(get(&stats.loss), 2, "10 and 11 never came");
    }

    #[test]
    fn plain_subscriptions_may_start_early_but_not_late() {
        let stats = Stats::default();
        let mut early = track(10, true);
        early.deliver(8, &stats, "c");
        early.deliver(9, &stats, "c");
        early.deliver(10, &stats, "c");
        early.finish(&stats, "c");
        assert_eq!(get(&stats.loss), 0);
        let mut late = track(10, true);
        late.deliver(11, &stats, "c");
        late.finish(&stats, "c");
        assert_eq!(get(&stats.loss), 1, "seq 10 was written after the reply");
        let mut drained = track(3, false);
        drained.give_up_below(6);
        drained.finish(&stats, "c");
        assert_eq!(get(&stats.loss), 4);
    }

    #[test]
    fn parses_replies_and_pushes() {
        let r = parse_reply(
            r#"{"id":2,"subscribe":{"recoverable":true,"epoch":"ab","offset":9,"publications":[{"data":{"s":7,"p":"x"},"offset":8},{"data":{"s":8,"p":"x"},"offset":9}],"recovered":true,"was_recovering":true}}"#,
        )
        .unwrap();
        assert_eq!(r.epoch, "ab");
        assert_eq!(r.offset, 9);
        assert!(r.recovered);
        assert_eq!(r.publications, vec![(8, Some(7)), (9, Some(8))]);
        let plain = parse_reply(r#"{"id":2,"subscribe":{}}"#).unwrap();
        assert_eq!(plain, Reply::default());
        assert!(parse_reply(r#"{"id":2,"error":{"code":103}}"#).is_err());
        let push = r#"{"push":{"channel":"soak1","pub":{"data":{"s":4,"p":"xx"},"offset":5}}}"#;
        let at = push.find("\"pub\":{").unwrap();
        assert_eq!(last_u64_field(&push[at..], "offset"), Some(5));
        assert_eq!(json_u64_field(&push[at..], "s"), Some(4));
        assert_eq!(
            publish_body("a", 3, 2),
            r#"{"channel":"a","data":{"s":3,"p":"xx"}}"#
        );
    }

    #[test]
    fn slope_of_a_line() {
        let s = slope(&[(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)]).unwrap();
        assert!((s - 0.1).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        let mut rng = Rng(1);
        let d = rng.between((Duration::from_secs(1), Duration::from_secs(2)));
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        assert!(rng.below(3) < 3);
    }
}
