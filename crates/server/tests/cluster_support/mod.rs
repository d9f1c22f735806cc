//! Shared by the cluster tests (`cluster.rs`, `cluster_faults.rs`): nodes
//! over Redis (in-process with `run::start`, or the `duplex` binary as a
//! child process that can be SIGKILLed), a WebSocket client speaking
//! Centrifugo's JSON protocol, a raw HTTP helper for the API, `/health` and
//! `/metrics`, unique key prefixes, and a redis-server of the test's own.
//!
//! Plain cases use the machine's Redis (`DUPLEX_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`) under a prefix per test and delete their keys
//! at the end; they fail, not skip, when it is unreachable.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use duplex_server::auth::Auth;
use duplex_server::config::{BrokerOptions, Config, StorageConfig, TokenKey};
use duplex_server::run::{self, Running};
use hub::{NamespaceConfig, NamespaceOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws::{MaybeTlsStream, Message, WebSocket};

pub const SECRET: &str = "cluster-test-secret";
pub const KEY: &str = "cluster-test-key";
pub const WAIT: Duration = Duration::from_secs(10);

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
        "duplex-test:{test}:{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under `prefix`.
pub async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
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

/// Channels: the default namespace has presence, join/leave, history (1000
/// for 10 minutes, stream positions kept 15 minutes), recovery and client
/// publish; `live:` has none of it.
pub fn channel_options() -> NamespaceOptions {
    NamespaceOptions {
        presence: true,
        join_leave: true,
        history_size: 1000,
        history_ttl: Duration::from_secs(600),
        // Keys a failed run leaves behind expire soon.
        history_meta_ttl: Some(Duration::from_secs(900)),
        allow_recovery: true,
        allow_positioning: true,
        allow_subscribe_for_client: true,
        allow_publish_for_client: true,
        allow_presence_for_client: true,
        allow_history_for_client: true,
        ..Default::default()
    }
}

/// A node named `name` over the broker at `url` with `prefix`; presence and
/// heartbeats expire after 2 s so that dead nodes show quickly.
pub fn config(url: &str, prefix: &str, name: &str) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        broker: Some(url.to_owned()),
        broker_options: BrokerOptions {
            prefix: prefix.to_owned(),
            presence_ttl: Duration::from_secs(2),
            node_ttl: Duration::from_secs(2),
        },
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: KEY.into(),
        node_name: name.to_owned(),
        channel: channel_options(),
        namespaces: vec![NamespaceConfig {
            name: "live".into(),
            options: NamespaceOptions {
                allow_subscribe_for_client: true,
                allow_publish_for_client: true,
                ..Default::default()
            },
        }],
        shutdown_drain: Duration::from_secs(2),
        ..Default::default()
    }
}

pub async fn start(url: &str, prefix: &str, name: &str) -> Running {
    run::start(config(url, prefix, name))
        .await
        .expect("node starts")
}

pub fn token(user: &str) -> String {
    Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect(user, Some(3600), None, &[])
        .unwrap()
}

// ---------------------------------------------------------------- HTTP

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The `result` of a successful API answer.
    pub fn result(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        let v = self.json();
        assert!(v.get("error").is_none(), "unexpected error: {v}");
        v["result"].clone()
    }
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer {
        status,
        body: body.to_owned(),
    }
}

/// `POST /api/<method>` with `params`.
pub async fn api(addr: SocketAddr, method: &str, params: Value) -> Answer {
    http(addr, "POST", &format!("/api/{method}"), &params.to_string()).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    http(addr, "GET", path, "").await
}

/// The value of an unlabelled metric in `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").await.body;
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------- WebSocket client

/// A client on `/connection/websocket` speaking Centrifugo's JSON protocol.
pub struct Client {
    ws: WebSocket<MaybeTlsStream>,
    next_id: u32,
    inbox: VecDeque<Value>,
    /// The client id the server gave.
    pub id: String,
    /// The close code, once closed.
    pub closed: Option<u16>,
}

impl Client {
    /// Opens a connection to `addr` and connects as `user`.
    pub async fn connect(addr: SocketAddr, user: &str) -> Client {
        Self::try_connect(addr, user)
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Like [`connect`](Self::connect), reporting failures.
    pub async fn try_connect(addr: SocketAddr, user: &str) -> Result<Client, String> {
        let url = format!("ws://{addr}/connection/websocket");
        let (ws, _) = ws::connect(&url).await.map_err(|e| e.to_string())?;
        let mut c = Client {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            id: String::new(),
            closed: None,
        };
        let reply = c
            .try_call("connect", json!({"token": token(user)}))
            .await
            .ok_or("closed before the connect reply")?;
        c.id = reply["connect"]["client"]
            .as_str()
            .ok_or_else(|| format!("no client id in {reply}"))?
            .to_owned();
        Ok(c)
    }

    /// Reads one frame into the inbox; false once closed (or on `deadline`).
    async fn read_frame(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let message = match tokio::time::timeout_at(deadline, self.ws.recv()).await {
            Ok(message) => message,
            Err(_) => return false,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        let _ = self.ws.send(Message::text("{}")).await;
                        continue;
                    }
                    self.inbox.push_back(value);
                }
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.closed = Some(frame.map_or(1005, |f| f.code.as_u16()));
                false
            }
            Some(Ok(_)) => true,
            Some(Err(_)) | None => {
                // Reset or EOF without a close frame (a killed node).
                self.closed = Some(1006);
                false
            }
        }
    }

    /// Sends a command and waits for its reply (`None`: closed first).
    pub async fn try_call(&mut self, method: &str, params: Value) -> Option<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id });
        command[method] = params;
        if self
            .ws
            .send(Message::text(command.to_string()))
            .await
            .is_err()
        {
            self.closed.get_or_insert(1006);
            return None;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v["id"] == id) {
                return self.inbox.remove(pos);
            }
            if !self.read_frame(deadline).await {
                return None;
            }
        }
    }

    /// Sends a command and waits for its reply.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let reply = self.try_call(method, params).await;
        reply.unwrap_or_else(|| panic!("closed ({:?}) before the {method} reply", self.closed))
    }

    /// Subscribes and returns the subscribe result (panics on an error).
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        let reply = self.call("subscribe", json!({"channel": channel})).await;
        assert!(reply.get("subscribe").is_some(), "{reply}");
        reply["subscribe"].clone()
    }

    /// The next push within `timeout` (its `push` object), or `None`.
    pub async fn push_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v.get("push").is_some()) {
                return self.inbox.remove(pos).map(|mut v| v["push"].take());
            }
            if !self.read_frame(deadline).await {
                return None;
            }
        }
    }

    /// The next push (panics if none comes in time).
    pub async fn push(&mut self) -> Value {
        match self.push_within(WAIT).await {
            Some(push) => push,
            None => panic!("no push in time (closed: {:?})", self.closed),
        }
    }

    /// The next push for which `keep` holds, dropping others.
    pub async fn push_where(&mut self, keep: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(push) = self.push_within(WAIT).await {
                if keep(&push) {
                    return push;
                }
            }
        }
        panic!("no matching push in time (closed: {:?})", self.closed)
    }

    /// Reads until closed; the close code (1006 without a close frame).
    pub async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() && self.read_frame(deadline).await {}
        self.closed
    }

    /// Publications pushed on `channel` within `timeout` of each other, as
    /// their `data`, until `count` arrived.
    pub async fn publications(&mut self, channel: &str, count: usize) -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < count {
            let Some(push) = self.push_within(WAIT).await else {
                break;
            };
            if push["channel"] == channel && push.get("pub").is_some() {
                got.push(push["pub"].clone());
            }
        }
        got
    }
}

// ------------------------------------------------------- the binary, killable

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `duplex serve` as a child process over the broker, killed on drop.
pub struct BinNode {
    pub addr: SocketAddr,
    child: Child,
}

impl BinNode {
    /// Starts the binary and waits until it listens.
    pub fn spawn(url: &str, prefix: &str, name: &str, data_dir: &std::path::Path) -> BinNode {
        // Channels as `channel_options` has them, stream positions kept 15
        // minutes (not the default 30 days) so that a failed run's keys go.
        let config = data_dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            "[channel]\npresence = true\njoin_leave = true\nhistory_size = 1000\n\
             history_ttl = \"10m\"\nhistory_meta_ttl = \"15m\"\nallow_recovery = true\n\
             allow_subscribe_for_client = true\nallow_presence_for_subscriber = true\n",
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--storage", "memory"])
            .arg("--config")
            .arg(&config)
            .args(["--broker", url, "--api-key", KEY, "--token-secret", SECRET])
            .args(["--node-name", name, "--data-dir"])
            .arg(data_dir)
            .env("DUPLEX_BROKER_PREFIX", prefix)
            .env("DUPLEX_BROKER_PRESENCE_TTL", "2s")
            .env("DUPLEX_BROKER_NODE_TTL", "2s")
            .env(
                "DUPLEX_LOG_LEVEL",
                std::env::var("DUPLEX_TEST_NODE_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            )
            .env("DUPLEX_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the duplex binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stderr for the child's whole life.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let (Some(t), Ok(addr)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                        let _ = t.send(addr);
                    }
                }
                if std::env::var_os("DUPLEX_TEST_NODE_LOGS").is_some() {
                    eprintln!("[node] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the node says where it listens");
        BinNode { addr, child }
    }

    /// SIGKILL: no goodbye of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BinNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "duplex-cluster-{}",
            duplex_server::util::random_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------ a redis of our own

/// A redis-server on a free port without persistence, that the test stops
/// and starts. Killed on drop.
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

    /// Starts it (again, same port) and waits until it answers.
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
