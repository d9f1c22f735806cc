//! Fixtures: several in-process Socket.IO nodes on 127.0.0.1:0 sharing the
//! Redis at 127.0.0.1:6379 under a key prefix unique to the test, and Rust
//! clients that record what they receive.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use socketio::{RecoveryConfig, Socket, SocketIo, SocketIoConfig};
use socketio_client::{Client, ClientBuilder, Data};
use socketio_redis::{ClusterConfig, RedisCluster};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const WAIT: Duration = Duration::from_secs(5);

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::random();
    format!("siot-{test}-{}-{n}-{salt:08x}", std::process::id())
}

pub fn cluster_config(prefix: &str) -> ClusterConfig {
    ClusterConfig::new(REDIS)
        .prefix(prefix)
        .heartbeat(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(2))
        .reconnect(Duration::from_millis(50), Duration::from_millis(500))
}

/// One node: a Socket.IO server with the Redis adapter, serving through
/// the sticky-session guard.
pub struct Node {
    pub io: SocketIo,
    pub cluster: RedisCluster,
    pub addr: SocketAddr,
    pub url: String,
    /// `(socket id, reason)` of every server-side disconnect.
    pub disconnects: UnboundedReceiver<(String, String)>,
    /// Arguments of every `hello` server-side event this node received.
    pub server_events: UnboundedReceiver<Vec<Value>>,
    /// `(socket id, recovered)` of every connection.
    pub connections: UnboundedReceiver<(String, bool)>,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.serve.abort();
        self.io.close();
    }
}

impl Node {
    pub async fn start(prefix: &str, recovery: Option<RecoveryConfig>) -> Node {
        Self::start_with(cluster_config(prefix), recovery).await
    }

    pub async fn start_with(config: ClusterConfig, recovery: Option<RecoveryConfig>) -> Node {
        let cluster = RedisCluster::connect(config)
            .await
            .expect("redis reachable");
        let sio = SocketIoConfig {
            recovery,
            ..SocketIoConfig::default()
        };
        let io = SocketIo::new(cluster.configure(sio));
        let (disconnect_tx, disconnects) = unbounded_channel();
        let (connect_tx, connections) = unbounded_channel();
        let (event_tx, server_events) = unbounded_channel();
        let (io2, cluster2) = (io.clone(), cluster.clone());
        io.namespace("/", move |socket| {
            handlers(
                &io2,
                &cluster2,
                socket,
                disconnect_tx.clone(),
                connect_tx.clone(),
            )
        })
        .on_server_event("hello", move |args| {
            let _ = event_tx.send(args);
        });
        // The node is a member once Redis has confirmed its subscriptions
        // (the request topic among them): before that, another node's
        // request would not count it.
        assert!(
            cluster.settled(Duration::from_secs(10)).await,
            "subscriptions confirmed"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let guard = cluster.guard(&io);
        let serve = tokio::spawn(async move {
            let _ = guard.serve(listener).await;
        });
        Node {
            io,
            cluster,
            addr,
            url: format!("http://{addr}"),
            disconnects,
            server_events,
            connections,
            serve,
        }
    }
}

fn handlers(
    io: &SocketIo,
    cluster: &RedisCluster,
    socket: Socket,
    disconnects: UnboundedSender<(String, String)>,
    connections: UnboundedSender<(String, bool)>,
) {
    let _ = connections.send((socket.id().to_owned(), socket.recovered()));
    let _ = socket.emit("welcome", &(socket.id(), socket.recovered()));
    socket.on_disconnect(move |socket, reason| {
        let _ = disconnects.send((socket.id().to_owned(), reason.to_string()));
    });
    // Joins a room and acknowledges once every node's broadcast would see it.
    let c = cluster.clone();
    socket.on("join", move |socket, data, ack| {
        if let Some(room) = data.args.first().and_then(|v| v.as_str()) {
            socket.join(room);
        }
        let c = c.clone();
        tokio::spawn(async move {
            let settled = c.settled(WAIT).await;
            if let Some(ack) = ack {
                let _ = ack.send(&(settled,));
            }
        });
    });
    socket.on("rooms", |socket, _, ack| {
        if let Some(ack) = ack {
            let mut rooms = socket.rooms();
            rooms.sort();
            let _ = ack.send(&(rooms,));
        }
    });
    socket.on("shout", |socket, data, _| {
        let _ = socket.broadcast().emit("shout", &data.args);
    });
    let io = io.clone();
    socket.on("to-room", move |_, data, _| {
        let (Some(room), Some(payload)) =
            (data.args.first().and_then(|v| v.as_str()), data.args.get(1))
        else {
            return;
        };
        if let Some(op) = io.to(room) {
            let _ = op.emit("room-message", &(payload,));
        }
    });
}

pub type Events = UnboundedReceiver<(String, Data)>;

/// Registers handlers that forward `events` to the returned channel.
pub fn record(mut builder: ClientBuilder, events: &[&str]) -> (ClientBuilder, Events) {
    let (tx, rx) = unbounded_channel();
    for &event in events {
        let tx = tx.clone();
        let name = event.to_owned();
        builder = builder.on(event, move |data, _| {
            let _ = tx.send((name.clone(), data));
        });
    }
    (builder, rx)
}

/// A connected client recording `events`, its `welcome` already consumed.
pub async fn client(node: &Node, events: &[&str]) -> (Client, Events) {
    let mut all = vec!["welcome"];
    all.extend_from_slice(events);
    let (builder, mut rx) = record(Client::builder(&node.url).reconnection(false), &all);
    let client = builder.connect().await.expect("client connects");
    expect(&mut rx, "welcome").await;
    (client, rx)
}

/// Makes `client` join `room` (acknowledged once the subscription is in
/// force in Redis).
pub async fn join(client: &Client, room: &str) {
    let ack = client
        .emit_with_ack("join", &(room,), WAIT)
        .await
        .expect("join acknowledged");
    assert_eq!(ack.args[0], Value::Bool(true), "subscription settled");
}

pub async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting")
        .expect("channel closed")
}

pub async fn expect(rx: &mut Events, event: &str) -> Data {
    let (name, data) = next(rx).await;
    assert_eq!(name, event, "unexpected event {name}: {data:?}");
    data
}

pub async fn nothing<T: std::fmt::Debug>(rx: &mut UnboundedReceiver<T>, within: Duration) {
    if let Ok(Some(got)) = tokio::time::timeout(within, rx.recv()).await {
        panic!("expected nothing, got {got:?}");
    }
}

/// Polls `check` until it holds or `WAIT` passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes `nodes` out of the cluster (no more heartbeats), then deletes every
/// key under `prefix` (keys mostly expire by themselves; this keeps the
/// shared Redis tidy).
pub async fn finish(prefix: &str, nodes: &[&Node]) {
    for node in nodes {
        node.cluster.close().await;
    }
    cleanup(prefix).await;
}

/// Deletes every key under `prefix`.
pub async fn cleanup(prefix: &str) {
    let Ok(client) = redis::Client::open(REDIS) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let reply: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = reply else { return };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
