//! How many Redis commands one publication through the hub costs, and how
//! fast publications go.
//!
//! Runs a redis-server of its own on a free port (or uses
//! `DUPLEX_BENCH_REDIS`, which should then serve nothing else), builds a hub
//! over the Redis backend with one local subscriber, and publishes through
//! `Hub::publish`. It counts:
//!
//! - round trips: the commands this node sent, from `MONITOR` (which tags
//!   commands run inside scripts as `lua`, so they are told apart);
//! - commands executed: the `INFO commandstats` delta, which counts every
//!   command, those inside scripts included.
//!
//! Both with `fan_out_from_store` on (the default: the publish script also
//! publishes) and off (the broker sends its own `PUBLISH`), for a channel
//! with history and one without. Then publications per second, sequential
//! and with 16 concurrent publishers, without `MONITOR` running.
//!
//! `cargo bench -p duplex-hub-redis --bench commands_per_publication`

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hub::{
    ChannelName, ClientInfo, EncodedPublication, Hub, NamespaceConfig, NamespaceOptions,
    Namespaces, PublishRequest, SubscribeOptions, Subscriber,
};
use hub_redis::{RedisBackend, RedisConfig};

const PUBLICATIONS: u64 = 2000;

struct Count(AtomicU64);

impl Subscriber for Count {
    fn deliver(&self, _: &Arc<EncodedPublication>) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
}

struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_server() -> (String, Server) {
    if let Ok(url) = std::env::var("DUPLEX_BENCH_REDIS") {
        return (url, Server(None));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(16_379);
    let server = Server(Some(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("needs redis-server on PATH: {err}")),
    ));
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..500 {
        if client
            .get_connection_with_timeout(Duration::from_millis(100))
            .is_ok()
        {
            return (url, server);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start");
}

fn namespaces() -> Namespaces {
    Namespaces::new(
        NamespaceOptions::default(),
        [NamespaceConfig {
            name: "h".into(),
            options: NamespaceOptions {
                history_size: 100,
                history_ttl: Duration::from_secs(300),
                ..Default::default()
            },
        }],
    )
    .unwrap()
}

async fn node(url: &str, prefix: &str, fan_out_from_store: bool) -> (Hub, RedisBackend) {
    let config = RedisConfig {
        fan_out_from_store,
        // Keep idle pings out of the counts.
        ping_interval: Duration::from_secs(3600),
        ..RedisConfig::new(url).with_prefix(prefix)
    };
    let backend = RedisBackend::connect(config).await.unwrap();
    let hub = Hub::builder(namespaces())
        .store(backend.store())
        .broker(backend.broker())
        .presence(backend.presence())
        .build();
    (hub, backend)
}

async fn subscribe(hub: &Hub, channel: &ChannelName) -> Arc<Count> {
    let count = Arc::new(Count(AtomicU64::new(0)));
    let opts = SubscribeOptions {
        info: ClientInfo::new("u", "c"),
        ..Default::default()
    };
    hub.subscribe(channel, count.clone(), opts)
        .await
        .unwrap()
        .activation
        .activate();
    count
}

async fn wait_for(count: &Count, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count.0.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "publications did not arrive");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn commandstats(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Counts top-level commands seen by MONITOR, by name, leaving out the
/// bench's own INFO.
fn spawn_monitor(
    mut monitor: redis::aio::Monitor,
) -> (
    Arc<Mutex<BTreeMap<String, u64>>>,
    tokio::task::JoinHandle<()>,
) {
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let task_counts = counts.clone();
    let task = tokio::spawn(async move {
        let mut lines = monitor.on_message::<String>();
        while let Some(line) = lines.next().await {
            // 1700000000.000000 [0 127.0.0.1:1234] "evalsha" ...  or  [0 lua] "hget" ...
            let Some((source, command)) = line.split_once("] \"") else {
                continue;
            };
            if source.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').next().unwrap_or("").to_ascii_lowercase();
            if name == "info" {
                continue;
            }
            *task_counts.lock().unwrap().entry(name).or_insert(0) += 1;
        }
    });
    (counts, task)
}

fn per_publication(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / PUBLICATIONS as f64))
        .collect();
    format!(
        "{:.2} ({})",
        total as f64 / PUBLICATIONS as f64,
        parts.join(", ")
    )
}

async fn count_commands(url: &str, fan_out_from_store: bool, channel: &str) {
    let prefix = format!("bench-{}", std::process::id());
    let (hub, _backend) = node(url, &prefix, fan_out_from_store).await;
    let channel = ChannelName::new(channel).unwrap();
    let seen = subscribe(&hub, &channel).await;
    for i in 0..50 {
        hub.publish(&channel, PublishRequest::new(format!("{{\"warm\":{i}}}")))
            .await
            .unwrap();
    }
    wait_for(&seen, 50).await;
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (top_level, monitor) = spawn_monitor(client.get_async_monitor().await.unwrap());
    let before = commandstats(&mut conn).await;
    for i in 0..PUBLICATIONS {
        hub.publish(&channel, PublishRequest::new(format!("{{\"n\":{i}}}")))
            .await
            .unwrap();
    }
    wait_for(&seen, 50 + PUBLICATIONS).await;
    let after = commandstats(&mut conn).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    monitor.abort();
    let executed: BTreeMap<String, u64> = after
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "monitor"))
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let top_level = top_level.lock().unwrap().clone();
    println!(
        "fan_out_from_store={fan_out_from_store:<5} channel={channel:<7} round trips/publication: {}",
        per_publication(&top_level)
    );
    println!(
        "{:>44} commands executed/publication: {}",
        "",
        per_publication(&executed)
    );
}

async fn throughput(url: &str, fan_out_from_store: bool, publishers: u64) {
    let prefix = format!("bench-rate-{}", std::process::id());
    let (hub, _backend) = node(url, &prefix, fan_out_from_store).await;
    let channel = ChannelName::new("h:rate").unwrap();
    let seen = subscribe(&hub, &channel).await;
    let per_task = 5000 / publishers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|t| {
            let hub = hub.clone();
            let channel = channel.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    hub.publish(
                        &channel,
                        PublishRequest::new(format!("{{\"t\":{t},\"i\":{i}}}")),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    wait_for(&seen, per_task * publishers).await;
    let elapsed = started.elapsed();
    let n = per_task * publishers;
    println!(
        "fan_out_from_store={fan_out_from_store:<5} publishers={publishers:<3} {n} publications in {:.0} ms: {:.0}/s, {:.1} us each",
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it too,
    // which is fine: it takes a few seconds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (url, _server) = start_server();
        println!("redis: {url}, {PUBLICATIONS} publications per row, one local subscriber");
        for fan_out in [true, false] {
            for channel in ["h:bench", "plain"] {
                count_commands(&url, fan_out, channel).await;
            }
        }
        for fan_out in [true, false] {
            for publishers in [1, 16] {
                throughput(&url, fan_out, publishers).await;
            }
        }
    });
}
