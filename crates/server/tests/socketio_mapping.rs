//! The Socket.IO mapping on `/socket.io/` (namespace `/`), over real
//! sockets with the workspace's Socket.IO client, against servers made
//! with `run::start` (memory storage, port 0): handshake auth, the events
//! and their acks, publications / joins / leaves, recovery, server-side
//! commands, shutdown — and Socket.IO and plain WebSocket clients meeting
//! on the same channels.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duplex_server::auth::{now_secs, Auth};
use duplex_server::config::{Config, StorageConfig, TokenKey};
use duplex_server::node::{ServerCommand, Transport};
use duplex_server::run::{self, Running};
use hub::{NamespaceConfig, NamespaceOptions};
use serde_json::{json, Value};
use socketio_client::{Client, DisconnectReason, Error};
use tokio::sync::mpsc;
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "sio-test-secret";
const WAIT: Duration = Duration::from_secs(5);

fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: "k".into(),
        channel: NamespaceOptions {
            presence: true,
            join_leave: true,
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_positioning: true,
            allow_subscribe_for_client: true,
            allow_publish_for_client: true,
            allow_presence_for_client: true,
            allow_history_for_client: true,
            ..Default::default()
        },
        namespaces: vec![NamespaceConfig {
            name: "private".into(),
            options: NamespaceOptions::default(),
        }],
        shutdown_drain: Duration::from_secs(3),
        ..Default::default()
    }
}

async fn start_with(edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = config();
    edit(&mut config);
    run::start(config).await.expect("server starts")
}

async fn start() -> Running {
    start_with(|_| {}).await
}

fn auth() -> Auth {
    Auth::new(&TokenKey::Hmac(SECRET.into())).unwrap()
}

fn token(user: &str) -> String {
    auth().sign_connect(user, Some(3600), None, &[]).unwrap()
}

fn token_with(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A Socket.IO client and what the server emitted to it, in order.
struct Sio {
    client: Client,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    disconnects: Arc<Mutex<Vec<DisconnectReason>>>,
}

const SERVER_EVENTS: [&str; 5] = ["publication", "join", "leave", "subscribe", "unsubscribe"];

async fn sio_connect(addr: SocketAddr, auth: Option<Value>) -> Result<Sio, Error> {
    let (tx, events) = mpsc::unbounded_channel();
    let disconnects = Arc::new(Mutex::new(Vec::new()));
    let mut builder = Client::builder(format!("http://{addr}"))
        .reconnection(false)
        .timeout(WAIT);
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    for event in SERVER_EVENTS {
        let tx = tx.clone();
        builder = builder.on(event, move |data, _ack| {
            let arg = data.args.first().cloned().unwrap_or(Value::Null);
            let _ = tx.send((event.to_owned(), arg));
        });
    }
    let seen = disconnects.clone();
    builder = builder.on_disconnect(move |reason| seen.lock().unwrap().push(reason));
    let client = builder.connect().await?;
    Ok(Sio {
        client,
        events,
        disconnects,
    })
}

async fn sio(addr: SocketAddr, user: &str) -> Sio {
    sio_connect(addr, Some(json!({"token": token(user)})))
        .await
        .expect("socket.io connects")
}

impl Sio {
    /// Emits `event` with one object and returns the ack's first argument.
    async fn call(&self, event: &str, arg: Value) -> Value {
        let ack = self
            .client
            .emit_with_ack(event, &(arg,), WAIT)
            .await
            .expect("ack");
        ack.args.into_iter().next().unwrap_or(Value::Null)
    }

    async fn event(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("event in time")
            .expect("client alive")
    }

    /// The next event named `name`, skipping others.
    async fn event_named(&mut self, name: &str) -> Value {
        loop {
            let (event, arg) = self.event().await;
            if event == name {
                return arg;
            }
        }
    }
}

fn refused_message(result: Result<Sio, Error>) -> String {
    match result {
        Err(Error::ConnectRefused { message, .. }) => message,
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("connected"),
    }
}

/// A minimal client for `/connection/websocket`.
struct Ws {
    ws: WebSocket<MaybeTlsStream>,
    id: u32,
    pending: Vec<Value>,
}

impl Ws {
    async fn connect(addr: SocketAddr, user: &str) -> Ws {
        let url = format!("ws://{addr}/connection/websocket");
        let (ws, _) = ws::connect(&url).await.unwrap();
        let mut c = Ws {
            ws,
            id: 0,
            pending: Vec::new(),
        };
        let reply = c.call("connect", json!({"token": token(user)})).await;
        assert!(reply.get("connect").is_some(), "{reply}");
        c
    }

    async fn read(&mut self) {
        let message = tokio::time::timeout(WAIT, self.ws.recv()).await.unwrap();
        if let Some(Ok(Message::Text(text))) = message {
            for line in text.as_str().split('\n') {
                let v: Value = serde_json::from_str(line).unwrap();
                if v == json!({}) {
                    self.ws.send(Message::text("{}")).await.unwrap();
                } else {
                    self.pending.push(v);
                }
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let mut cmd = json!({"id": self.id});
        cmd[method] = params;
        self.ws.send(Message::text(cmd.to_string())).await.unwrap();
        loop {
            if let Some(i) = self.pending.iter().position(|v| v["id"] == self.id) {
                return self.pending.remove(i);
            }
            self.read().await;
        }
    }

    async fn push(&mut self) -> Value {
        loop {
            if let Some(i) = self.pending.iter().position(|v| v.get("push").is_some()) {
                return self.pending.remove(i)["push"].take();
            }
            self.read().await;
        }
    }
}

#[tokio::test]
async fn handshake_auth() {
    let server = start().await;
    let ok = sio(server.addr, "42").await;
    assert!(ok.client.is_connected());
    let clients = server.node.registry().user_clients("42");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].transport(), Transport::SocketIo);
    assert_eq!(Some(clients[0].client_id().to_owned()), ok.client.id());

    let message = refused_message(sio_connect(server.addr, None).await);
    assert!(message.contains("token is required"), "{message}");
    let expired = token_with(json!({"sub": "1", "exp": now_secs() - 5}), SECRET);
    let message = refused_message(sio_connect(server.addr, Some(json!({"token": expired}))).await);
    assert_eq!(message, "token expired");
    let forged = token_with(json!({"sub": "1"}), "other-secret");
    let message = refused_message(sio_connect(server.addr, Some(json!({"token": forged}))).await);
    assert_eq!(message, "invalid token");
    assert_eq!(server.node.registry().num_clients(), 1);
    server.shutdown().await;

    // --dev lets a client in without a token, as anonymous.
    let server = start_with(|c| c.dev = true).await;
    let anon = sio_connect(server.addr, None).await.expect("dev connect");
    assert!(anon.client.is_connected());
    assert_eq!(server.node.registry().user_clients("").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn socketio_and_websocket_share_channels() {
    let server = start().await;
    let mut s = sio(server.addr, "1").await;
    let mut w = Ws::connect(server.addr, "2").await;
    let sub = s
        .call("subscribe", json!({"channel": "chat", "join_leave": false}))
        .await;
    assert!(sub["epoch"].is_string(), "{sub}");
    // Zero values are left out, as in the plain protocol: offset 0.
    assert!(sub.get("offset").is_none(), "{sub}");
    assert_eq!(sub["recoverable"], true);
    let reply = w.call("subscribe", json!({"channel": "chat"})).await;
    assert!(reply.get("subscribe").is_some());
    // Interleave publishers of both kinds; both subscribers see every
    // publication once, in offset order.
    for i in 0..10 {
        if i % 2 == 0 {
            let ack = s
                .call("publish", json!({"channel": "chat", "data": {"n": i}}))
                .await;
            assert_eq!(ack, json!({}), "{ack}");
        } else {
            let reply = w
                .call("publish", json!({"channel": "chat", "data": {"n": i}}))
                .await;
            assert_eq!(reply["publish"], json!({}));
        }
    }
    for i in 0..10u64 {
        let p = s.event_named("publication").await;
        assert_eq!(p["channel"], "chat");
        assert_eq!(p["offset"], i + 1);
        assert_eq!(p["data"], json!({"n": i}));
        let who = if i % 2 == 0 { "1" } else { "2" };
        assert_eq!(p["info"]["user"], who);
        let push = w.push().await;
        assert_eq!(push["pub"]["offset"], i + 1);
        assert_eq!(push["pub"]["data"], json!({"n": i}));
    }
    // Nothing more arrived.
    let ack = s.call("presence_stats", json!({"channel": "chat"})).await;
    assert_eq!(ack, json!({"num_clients": 2, "num_users": 2}));
    assert!(s.events.try_recv().is_err());
    let ack = s.call("unsubscribe", json!({"channel": "chat"})).await;
    assert_eq!(ack, json!({}));
    w.call("publish", json!({"channel": "chat", "data": "after"}))
        .await;
    let ack = s.call("presence_stats", json!({"channel": "chat"})).await;
    assert_eq!(ack["num_clients"], 1);
    assert!(s.events.try_recv().is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn joins_leaves_and_presence() {
    let server = start().await;
    let mut s = sio(server.addr, "1").await;
    s.call("subscribe", json!({"channel": "room"})).await;
    let own = s.event_named("join").await;
    assert_eq!(own["info"]["user"], "1");
    let mut w = Ws::connect(server.addr, "2").await;
    w.call("subscribe", json!({"channel": "room"})).await;
    let join = s.event_named("join").await;
    assert_eq!(
        join,
        json!({"channel": "room", "info": {"user": "2", "client": join["info"]["client"]}})
    );
    let presence = s.call("presence", json!({"channel": "room"})).await;
    assert_eq!(presence["presence"].as_object().unwrap().len(), 2);
    let me = s.client.id().unwrap();
    assert_eq!(presence["presence"][&me]["user"], "1");
    drop(w);
    let leave = s.event_named("leave").await;
    assert_eq!(leave["info"]["user"], "2");
    server.shutdown().await;
}

#[tokio::test]
async fn history_and_recovery() {
    let server = start().await;
    let s = sio(server.addr, "1").await;
    let sub = s
        .call("subscribe", json!({"channel": "feed", "join_leave": false}))
        .await;
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        s.call("publish", json!({"channel": "feed", "data": i}))
            .await;
    }
    let h = s.call("history", json!({"channel": "feed"})).await;
    assert_eq!(h["offset"], 3);
    assert_eq!(h["epoch"], json!(epoch));
    let data: Vec<Value> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(data, [json!(1), json!(2), json!(3)]);
    let h = s
        .call(
            "history",
            json!({"channel": "feed", "limit": 1, "reverse": true}),
        )
        .await;
    assert_eq!(h["publications"][0]["offset"], 3);
    s.client.disconnect().await;

    let other = sio(server.addr, "2").await;
    other
        .call("publish", json!({"channel": "feed", "data": 4}))
        .await;
    let s = sio(server.addr, "1").await;
    let sub = s
        .call(
            "subscribe",
            json!({"channel": "feed", "recover": true, "offset": 3, "epoch": epoch}),
        )
        .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["was_recovering"], true);
    assert_eq!(sub["publications"][0]["data"], 4);
    assert_eq!(sub["offset"], 4);
    s.call("unsubscribe", json!({"channel": "feed"})).await;
    let sub = s
        .call(
            "subscribe",
            json!({"channel": "feed", "recover": true, "offset": 3, "epoch": "gone"}),
        )
        .await;
    assert!(sub.get("recovered").is_none(), "{sub}");
    assert!(sub.get("publications").is_none());
    assert_eq!(sub["offset"], 4);
    server.shutdown().await;
}

#[tokio::test]
async fn errors_come_back_in_the_ack() {
    let server = start().await;
    let s = sio(server.addr, "7").await;
    let cases = [
        ("subscribe", json!({"channel": "notifications#42"}), 103),
        ("subscribe", json!({"channel": "nope:x"}), 102),
        ("subscribe", json!({"channel": "private:x"}), 103),
        ("subscribe", json!({"nochannel": true}), 107),
        ("publish", json!({"channel": "a"}), 107),
        ("history", json!({"channel": "private:x"}), 108),
    ];
    for (event, arg, code) in cases {
        let ack = s.call(event, arg.clone()).await;
        assert_eq!(ack["error"]["code"], code, "{event} {arg}: {ack}");
        assert!(ack["error"]["message"].is_string());
    }
    s.call("subscribe", json!({"channel": "a"})).await;
    let ack = s.call("subscribe", json!({"channel": "a"})).await;
    assert_eq!(
        ack["error"],
        json!({"code": 105, "message": "already subscribed"})
    );
    // A subscription token opens a private channel.
    let t = auth().sign_subscribe("7", "private:x", None, None).unwrap();
    let ack = s
        .call("subscribe", json!({"channel": "private:x", "token": t}))
        .await;
    assert!(ack.get("error").is_none(), "{ack}");
    server.shutdown().await;
}

#[tokio::test]
async fn server_side_commands() {
    let server = start().await;
    let mut s = sio(server.addr, "42").await;
    let registry = server.node.registry();
    registry.send_to_user("42", &ServerCommand::Subscribe("alerts".parse().unwrap()));
    let sub = s.event_named("subscribe").await;
    assert_eq!(sub["channel"], "alerts");
    let mut w = Ws::connect(server.addr, "1").await;
    w.call("publish", json!({"channel": "alerts", "data": "hey"}))
        .await;
    let p = s.event_named("publication").await;
    assert_eq!(p["data"], "hey");
    registry.send_to_user("42", &ServerCommand::Unsubscribe("alerts".parse().unwrap()));
    let unsub = s.event_named("unsubscribe").await;
    assert_eq!(
        unsub,
        json!({"channel": "alerts", "code": 2000, "reason": "server unsubscribe"})
    );
    registry.send_to_user(
        "42",
        &ServerCommand::Disconnect {
            code: 3503,
            reason: "bye".into(),
            reconnect: false,
        },
    );
    for _ in 0..100 {
        if !s.client.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!s.client.is_connected());
    assert_eq!(
        *s.disconnects.lock().unwrap(),
        [DisconnectReason::IoServerDisconnect]
    );
    for _ in 0..100 {
        if registry.num_clients() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        registry.num_clients(),
        1,
        "only the websocket client is left"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn token_channels_are_subscribed_on_connect() {
    let server = start().await;
    let t = auth()
        .sign_connect("42", None, None, &["personal#42".into()])
        .unwrap();
    let mut s = sio_connect(server.addr, Some(json!({"token": t})))
        .await
        .unwrap();
    let sub = s.event_named("subscribe").await;
    assert_eq!(sub["channel"], "personal#42");
    assert!(sub["epoch"].is_string());
    server
        .node
        .hub()
        .publish(
            &"personal#42".parse().unwrap(),
            hub::PublishRequest::new("\"ping\""),
        )
        .await
        .unwrap();
    let p = s.event_named("publication").await;
    assert_eq!(p["data"], "ping");
    assert!(p.get("info").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_disconnects_socketio_clients() {
    let server = start().await;
    let s = sio(server.addr, "1").await;
    s.call("subscribe", json!({"channel": "x"})).await;
    let node = server.node.clone();
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    for _ in 0..100 {
        if !s.client.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!s.client.is_connected());
    // Socket.IO's server-side disconnect, as the spec asks.
    assert_eq!(
        *s.disconnects.lock().unwrap(),
        [DisconnectReason::IoServerDisconnect]
    );
    assert_eq!(node.registry().num_clients(), 0);
    assert_eq!(node.hub().stats().num_subscriptions, 0);
}

#[tokio::test]
async fn refresh_event_extends_the_connection() {
    let server = start_with(|c| c.client.pong_timeout = Duration::from_millis(300)).await;
    let short = token_with(json!({"sub": "5", "exp": now_secs() + 1}), SECRET);
    let kept = sio_connect(server.addr, Some(json!({"token": short})))
        .await
        .unwrap();
    let dropped = sio_connect(server.addr, Some(json!({"token": short})))
        .await
        .unwrap();
    let ack = kept.call("refresh", json!({"token": token("5")})).await;
    assert_eq!(ack["expires"], true, "{ack}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!dropped.client.is_connected());
    assert!(kept.client.is_connected());
    let metrics = &server.node.metrics().socketio;
    use std::sync::atomic::Ordering;
    assert_eq!(metrics.connections_open.load(Ordering::Relaxed), 1);
    server.shutdown().await;
}
