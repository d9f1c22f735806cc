//! Shared by the integration tests: the Redis to test against, unique key
//! prefixes, a recording subscriber, hub nodes over Redis, and a private
//! redis-server that tests may stop and start.
//!
//! The tests need Redis. They use `DUPLEX_TEST_REDIS` (default
//! `redis://127.0.0.1:6379`) and fail, not skip, when it is unreachable.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::{
    ChannelName, ClientInfo, EncodedPublication, Hub, JoinLeave, JoinLeaveKind, NamespaceConfig,
    NamespaceOptions, Namespaces, PublishRequest, SubscribeOptions, Subscriber,
};
use hub_redis::{RedisBackend, RedisBroker, RedisConfig};

pub fn redis_url() -> String {
    std::env::var("DUPLEX_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) uses.
pub fn prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "duplex-test:{test}:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fast timeouts and short TTLs, so that failures show quickly and
/// leftovers of a failed test expire.
pub fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_millis(100),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        history_meta_ttl: Duration::from_secs(600),
        idempotency_ttl: Duration::from_secs(60),
        ..RedisConfig::new(url).with_prefix(prefix)
    }
}

pub async fn connect(config: RedisConfig) -> RedisBackend {
    let url = config.url.clone();
    match RedisBackend::connect(config).await {
        Ok(backend) => backend,
        Err(err) => {
            panic!("these tests need Redis at {url} (set DUPLEX_TEST_REDIS to use another): {err}")
        }
    }
}

/// A plain connection for inspecting Redis from a test.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|err| panic!("these tests need Redis at {url}: {err}"))
}

/// Deletes every key under `prefix`.
pub async fn cleanup(url: &str, prefix: &str) {
    let mut conn = raw(url).await;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

pub fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Pub {
        channel: String,
        offset: u64,
        epoch: String,
        data: String,
    },
    Join(String),
    Leave(String),
}

/// Records what a subscription gets.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn offsets(&self) -> Vec<u64> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Pub { offset, .. } => Some(offset),
                _ => None,
            })
            .collect()
    }

    pub fn data(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Pub { data, .. } => Some(data),
                _ => None,
            })
            .collect()
    }

    pub fn publications(&self) -> usize {
        self.offsets().len()
    }

    pub fn join_leaves(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !matches!(s, Seen::Pub { .. }))
            .collect()
    }
}

impl Subscriber for Recorder {
    fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
        self.seen.lock().unwrap().push(Seen::Pub {
            channel: p.channel().to_string(),
            offset: p.offset(),
            epoch: p.epoch().to_owned(),
            data: String::from_utf8_lossy(&p.publication().data).into_owned(),
        });
        true
    }

    fn deliver_join_leave(&self, e: &Arc<JoinLeave>) -> bool {
        let client = e.info().client.to_string();
        self.seen.lock().unwrap().push(match e.kind() {
            JoinLeaveKind::Join => Seen::Join(client),
            JoinLeaveKind::Leave => Seen::Leave(client),
        });
        true
    }
}

pub fn history(size: usize, ttl: Duration) -> NamespaceOptions {
    NamespaceOptions {
        history_size: size,
        history_ttl: ttl,
        allow_recovery: true,
        ..Default::default()
    }
}

/// `h:` history, `small:` 3 kept, `room:` presence + join/leave + history,
/// anything else: no history.
pub fn namespaces() -> Namespaces {
    let named = |name: &str, options: NamespaceOptions| NamespaceConfig {
        name: name.into(),
        options,
    };
    Namespaces::new(
        NamespaceOptions::default(),
        [
            named("h", history(100, Duration::from_secs(300))),
            named("small", history(3, Duration::from_secs(300))),
            named(
                "room",
                NamespaceOptions {
                    presence: true,
                    join_leave: true,
                    ..history(100, Duration::from_secs(300))
                },
            ),
        ],
    )
    .unwrap()
}

/// A duplex node: a hub over its own Redis backend.
pub struct Node {
    pub hub: Hub,
    pub backend: RedisBackend,
    pub broker: Arc<RedisBroker>,
}

impl Node {
    pub async fn start(config: RedisConfig) -> Self {
        let backend = connect(config).await;
        let broker = backend.broker();
        let hub = Hub::builder(namespaces())
            .store(backend.store())
            .broker(broker.clone())
            .presence(backend.presence())
            .build();
        Self {
            hub,
            backend,
            broker,
        }
    }

    /// Subscribes `client` (user "u") and activates; returns the recorder
    /// and the subscribe result.
    pub async fn subscribe_with(
        &self,
        channel: &str,
        opts: SubscribeOptions,
    ) -> (Arc<Recorder>, hub::SubscribeResult) {
        let rec = Recorder::new();
        let subscribed = self
            .hub
            .subscribe(&ch(channel), rec.clone(), opts)
            .await
            .unwrap();
        subscribed.activation.activate();
        (rec, subscribed.result)
    }

    pub async fn subscribe(&self, channel: &str, client: &str) -> Arc<Recorder> {
        self.subscribe_with(channel, as_client(client, "u")).await.0
    }

    pub async fn publish(&self, channel: &str, data: &str) -> hub::PublishResult {
        self.hub
            .publish(&ch(channel), PublishRequest::new(data.to_owned()))
            .await
            .unwrap()
    }
}

pub fn as_client(client: &str, user: &str) -> SubscribeOptions {
    SubscribeOptions {
        info: ClientInfo::new(user, client),
        ..Default::default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own on a free port, without persistence,
/// that the test can stop and start again. Killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("these tests need redis-server on PATH: {err}"));
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sums `calls=` over INFO commandstats, per command.
pub async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}
