//! Connection state recovery on another node than the one the client left,
//! Redis connection loss, and polling clients sent to the wrong node.
//! Needs Redis on 127.0.0.1:6379.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use socketio::RecoveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn recovery() -> Option<RecoveryConfig> {
    Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(20),
        skip_middlewares: true,
        max_buffered_packets: 1000,
    })
}

/// A hand-driven Socket.IO client over WebSocket (the Rust client does not
/// do recovery): it sends `pid` and `offset` like socket.io-client does.
struct Raw {
    ws: ws::WebSocket<ws::MaybeTlsStream>,
    /// The last offset seen (the last argument of each event).
    offset: Option<String>,
}

impl Raw {
    /// Connects to `/` with `auth`; returns the client and the CONNECT
    /// reply's payload (`{sid, pid}`).
    async fn connect(node: &Node, auth: Value) -> (Raw, Value) {
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", node.addr);
        let (ws, _) = ws::connect(&url).await.unwrap();
        let mut raw = Raw { ws, offset: None };
        let open = raw.text().await;
        assert!(open.starts_with('0'), "{open}");
        raw.send(&format!("40{auth}")).await;
        let reply = raw.text().await;
        let payload = reply
            .strip_prefix("40")
            .unwrap_or_else(|| panic!("{reply}"));
        (raw, serde_json::from_str(payload).unwrap())
    }

    async fn send(&mut self, text: &str) {
        self.ws
            .send(ws::Message::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// The next Engine.IO text packet that is not a ping (pings answered).
    async fn text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.recv())
                .await
                .expect("timed out waiting for the server")
                .expect("connection open")
                .unwrap();
            if let ws::Message::Text(text) = message {
                let text = text.as_str().to_owned();
                if text == "2" {
                    self.send("3").await;
                    continue;
                }
                return text;
            }
        }
    }

    /// The next event: its name and arguments (offset removed and kept).
    async fn event(&mut self) -> (String, Vec<Value>) {
        loop {
            let text = self.text().await;
            let Some(json) = text.strip_prefix("42") else {
                continue;
            };
            let mut items: Vec<Value> = serde_json::from_str(json).unwrap();
            let name = items.remove(0).as_str().unwrap().to_owned();
            if let Some(Value::String(offset)) = items.last() {
                self.offset = Some(offset.clone());
                items.pop();
            }
            return (name, items);
        }
    }

    /// Emits with an ack and returns the ack's arguments.
    async fn call(&mut self, id: u32, event: &str, args: &[Value]) -> Vec<Value> {
        let mut packet = vec![json!(event)];
        packet.extend_from_slice(args);
        self.send(&format!("42{id}{}", Value::Array(packet))).await;
        loop {
            let text = self.text().await;
            if let Some(rest) = text.strip_prefix(&format!("43{id}")) {
                return serde_json::from_str(rest).unwrap();
            }
        }
    }

    async fn join(&mut self, id: u32, room: &str) {
        assert_eq!(self.call(id, "join", &[json!(room)]).await, [json!(true)]);
    }
}

/// The client drops from node A and reconnects to node B in time: same id,
/// its rooms, every event it missed (sent by either node, to its rooms or
/// to everyone) in order and nothing else, and `recovered` on the server.
/// A client whose offset is unknown gets a fresh session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_on_another_node() {
    let prefix = unique_prefix("recovery");
    let mut a = Node::start(&prefix, recovery()).await;
    let mut b = Node::start(&prefix, recovery()).await;

    let (mut client, reply) = Raw::connect(&a, json!({})).await;
    let sid = reply["sid"].as_str().unwrap().to_owned();
    let pid = reply["pid"].as_str().unwrap().to_owned();
    let (name, args) = client.event().await;
    assert_eq!(
        (name.as_str(), &args[..]),
        ("welcome", &[json!(sid), json!(false)][..])
    );
    assert_eq!(next(&mut a.connections).await, (sid.clone(), false));
    client.join(1, "r").await;
    b.io.to("r").unwrap().emit("news", &("before",)).unwrap();
    assert_eq!(client.event().await, ("news".into(), vec![json!("before")]));
    let offset = client.offset.clone().expect("events carry offsets");

    // The connection drops (no close handshake).
    drop(client);
    let (gone, reason) = next(&mut a.disconnects).await;
    assert_eq!(gone, sid);
    assert!(reason.starts_with("transport"), "{reason}");
    // While it is away: events from both nodes, to its room and to all,
    // and one to a room it is not in.
    b.io.to("r").unwrap().emit("news", &("missed 1",)).unwrap();
    a.io.of("/").unwrap().emit("news", &("missed 2",)).unwrap();
    b.io.to("elsewhere")
        .unwrap()
        .emit("news", &("not for it",))
        .unwrap();
    a.io.to("r").unwrap().emit("news", &("missed 3",)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (mut back, reply) = Raw::connect(&b, json!({ "pid": pid, "offset": offset })).await;
    assert_eq!(reply["sid"], json!(sid), "same socket id");
    assert_eq!(reply["pid"], json!(pid));
    // Each node's events in the order it sent them; the two nodes' events
    // interleave in the order they reached Redis.
    let mut missed = Vec::new();
    for _ in 0..3 {
        let (name, args) = back.event().await;
        assert_eq!(name, "news");
        missed.push(args[0].as_str().unwrap().to_owned());
    }
    let at = |s: &str| {
        missed
            .iter()
            .position(|m| m == s)
            .unwrap_or_else(|| panic!("{s} in {missed:?}"))
    };
    assert!(at("missed 2") < at("missed 3"), "{missed:?}");
    at("missed 1");
    let (name, args) = back.event().await;
    assert_eq!(
        (name.as_str(), &args[..]),
        ("welcome", &[json!(sid), json!(true)][..])
    );
    assert_eq!(next(&mut b.connections).await, (sid.clone(), true));
    let rooms = back.call(2, "rooms", &[]).await;
    let mut expected = vec![json!("r"), json!(sid)];
    expected.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(rooms, [Value::Array(expected)]);
    // In its room again, as seen from the other node.
    assert!(b.cluster.settled(WAIT).await);
    a.io.to("r").unwrap().emit("news", &("after",)).unwrap();
    assert_eq!(back.event().await, ("news".into(), vec![json!("after")]));
    // A session is restored once.
    let (mut other, reply) = Raw::connect(&a, json!({ "pid": pid, "offset": offset })).await;
    assert_ne!(reply["sid"], json!(sid));
    let (_, args) = other.event().await;
    assert_eq!(args[1], json!(false));

    // An offset that was never logged: not recovered.
    let (mut c, reply) = Raw::connect(&a, json!({})).await;
    let c_pid = reply["pid"].as_str().unwrap().to_owned();
    let c_sid = reply["sid"].as_str().unwrap().to_owned();
    c.event().await;
    drop(c);
    loop {
        if next(&mut a.disconnects).await.0 == c_sid {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut c2, reply) = Raw::connect(&b, json!({ "pid": c_pid, "offset": "12345" })).await;
    assert_ne!(reply["sid"], json!(c_sid));
    let (_, args) = c2.event().await;
    assert_eq!(args[1], json!(false), "not recovered");
    finish(&prefix, &[&a, &b]).await;
}

/// The ids of `node`'s Redis connections.
async fn connection_ids(node: &Node) -> Vec<String> {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let tag = format!(
        "name=duplex-sio:{}:{}:",
        node.cluster.config().prefix,
        node.cluster.node_id()
    );
    list.lines()
        .filter(|line| line.contains(&tag))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Redis drops a node's connections: it reconnects, subscribes its room
/// topics again, and broadcasts, requests and answers work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_resubscribes_after_losing_redis() {
    let prefix = unique_prefix("failover");
    let a = Node::start(&prefix, None).await;
    let b = Node::start(&prefix, None).await;
    let (client, mut rx) = client(&b, &["room-message"]).await;
    join(&client, "r").await;

    let ids = connection_ids(&b).await;
    assert_eq!(ids.len(), 2, "a command and a subscription connection");
    let admin = redis::Client::open(REDIS).unwrap();
    let mut conn = admin.get_multiplexed_async_connection().await.unwrap();
    for id in &ids {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    eventually("node b resubscribed", || async {
        let h = b.cluster.health();
        h.commands_up && h.subscriptions_up && h.resubscriptions >= 1
    })
    .await;
    // The command connection notices at its next command or ping.
    eventually("two new connections", || {
        let (b, ids) = (&b, &ids);
        async move {
            let fresh = connection_ids(b).await;
            fresh.len() == 2 && fresh.iter().all(|id| !ids.contains(id))
        }
    })
    .await;
    eventually("commands up", || async { b.cluster.health().commands_up }).await;

    a.io.to("r")
        .unwrap()
        .emit("room-message", &("after the loss",))
        .unwrap();
    assert_eq!(
        expect(&mut rx, "room-message").await.args,
        [json!("after the loss")]
    );
    let sockets = a.io.of("/").unwrap().try_fetch_sockets().await.unwrap();
    assert_eq!(sockets.len(), 1);
    // And b still publishes.
    client.emit("to-room", &("r", "from b")).unwrap();
    assert_eq!(
        expect(&mut rx, "room-message").await.args,
        [json!("from b")]
    );
    finish(&prefix, &[&a, &b]).await;
}

/// A plain HTTP/1.1 exchange; returns the status and the body.
async fn http(addr: std::net::SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A polling request that reaches another node than the session's gets a
/// 400 that says sticky sessions are needed (not a bare "Session ID
/// unknown"); the right node serves it; an unknown sid stays unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_on_the_wrong_node_says_sticky_sessions_are_needed() {
    let prefix = unique_prefix("sticky");
    let a = Node::start(&prefix, None).await;
    let b = Node::start(&prefix, None).await;
    let (status, body) = http(a.addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(status, 200, "{body}");
    let open: Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");

    let (status, body) = http(b.addr, "GET", &target, "").await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], json!(1));
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("sticky sessions"), "{message}");
    assert!(message.contains(a.cluster.node_id()), "{message}");
    let (status, _) = http(b.addr, "POST", &target, "40").await;
    assert_eq!(status, 400);

    // The owning node serves the session.
    let (status, body) = http(a.addr, "POST", &target, "40").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // A session no node holds is just unknown.
    let (status, body) = http(
        b.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert!(!body.contains("sticky"), "{body}");
    finish(&prefix, &[&a, &b]).await;
}
