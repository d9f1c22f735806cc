//! The plain WebSocket protocol on `/connection/websocket`, over real
//! sockets against servers made with `run::start` (memory storage, port 0):
//! connect and tokens, subscribe / publish / presence / history /
//! recovery, permissions, the protocol's faults and close codes, pings,
//! expiry, shutdown, and server-side commands through the registry.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use duplex_server::auth::{now_secs, Auth};
use duplex_server::config::{ClientConfig, Config, StorageConfig, TokenKey};
use duplex_server::node::ServerCommand;
use duplex_server::run::{self, Running};
use hub::{NamespaceConfig, NamespaceOptions};
use serde_json::{json, Value};
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "ws-test-secret";
const WAIT: Duration = Duration::from_secs(5);

fn channel_options() -> NamespaceOptions {
    NamespaceOptions {
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
    }
}

fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: "k".into(),
        channel: channel_options(),
        namespaces: vec![
            // Subscribing needs a subscription token.
            NamespaceConfig {
                name: "private".into(),
                options: NamespaceOptions {
                    presence: true,
                    ..Default::default()
                },
            },
            // No history, no presence.
            NamespaceConfig {
                name: "live".into(),
                options: NamespaceOptions {
                    allow_subscribe_for_client: true,
                    allow_publish_for_client: true,
                    allow_presence_for_client: true,
                    allow_history_for_client: true,
                    ..Default::default()
                },
            },
        ],
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

/// A token with exactly these claims, signed with `secret`.
fn token_with(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A test client speaking the JSON protocol by hand.
struct Client {
    ws: WebSocket<MaybeTlsStream>,
    next_id: u32,
    inbox: VecDeque<Value>,
    /// Answer server pings with `{}`.
    auto_pong: bool,
    pings: usize,
    close: Option<(u16, String)>,
}

impl Client {
    async fn open(addr: SocketAddr) -> Client {
        let url = format!("ws://{addr}/connection/websocket");
        let (ws, _) = ws::connect(&url).await.expect("websocket opens");
        Client {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            auto_pong: true,
            pings: 0,
            close: None,
        }
    }

    async fn connected(addr: SocketAddr, user: &str) -> Client {
        let mut c = Client::open(addr).await;
        let reply = c.call("connect", json!({"token": token(user)})).await;
        assert!(reply["connect"]["client"].is_string(), "{reply}");
        c
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Reads one frame's messages into the inbox; false once closed.
    async fn read_frame(&mut self) -> bool {
        let message = tokio::time::timeout(WAIT, self.ws.recv())
            .await
            .expect("server answers in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        self.pings += 1;
                        if self.auto_pong {
                            self.send_raw("{}").await;
                        }
                        continue;
                    }
                    self.inbox.push_back(value);
                }
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.close = frame.map(|f| (f.code.as_u16(), f.reason.as_str().to_owned()));
                // Let the socket finish the closing handshake.
                while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.ws.recv()).await {}
                false
            }
            Some(Ok(_)) => true,
            Some(Err(_)) | None => false,
        }
    }

    /// Keeps reading (and answering pings) for `time`.
    async fn pump(&mut self, time: Duration) {
        let until = tokio::time::Instant::now() + time;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, self.ws.recv()).await {
            if let Message::Text(text) = message {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        self.pings += 1;
                        self.send_raw("{}").await;
                    } else {
                        self.inbox.push_back(value);
                    }
                }
            }
        }
    }

    /// Sends a command and waits for its reply; pushes stay in the inbox.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id });
        command[method] = params;
        self.send_raw(&command.to_string()).await;
        self.reply(id).await
    }

    async fn reply(&mut self, id: u32) -> Value {
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v["id"] == id) {
                return self.inbox.remove(pos).unwrap_or_default();
            }
            assert!(
                self.read_frame().await,
                "closed while waiting for reply {id}: {:?}",
                self.close
            );
        }
    }

    /// The next push.
    async fn push(&mut self) -> Value {
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v.get("push").is_some()) {
                return self.inbox.remove(pos).unwrap_or_default()["push"].take();
            }
            assert!(
                self.read_frame().await,
                "closed while waiting for a push: {:?}",
                self.close
            );
        }
    }

    /// Reads until the server closes; the close code.
    async fn close_code(&mut self) -> Option<u16> {
        while self.close.is_none() {
            if !self.read_frame().await {
                break;
            }
        }
        self.close.as_ref().map(|c| c.0)
    }

    async fn subscribe(&mut self, channel: &str) -> Value {
        let reply = self.call("subscribe", json!({"channel": channel})).await;
        assert!(reply.get("subscribe").is_some(), "{reply}");
        reply["subscribe"].clone()
    }

    async fn publish(&mut self, channel: &str, data: Value) -> Value {
        self.call("publish", json!({"channel": channel, "data": data}))
            .await
    }
}

fn error_code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn connect_with_token() {
    let server = start().await;
    let mut c = Client::open(server.addr).await;
    let reply = c
        .call("connect", json!({"token": token("42"), "name": "test"}))
        .await;
    let r = &reply["connect"];
    assert!(
        r["client"].as_str().is_some_and(|s| s.len() == 36),
        "{reply}"
    );
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["ping"], 25);
    assert_eq!(r["pong"], true);
    assert_eq!(r["expires"], true);
    assert!(
        r["ttl"]
            .as_u64()
            .is_some_and(|t| (3590..=3600).contains(&t)),
        "{reply}"
    );
    // Registered as user 42.
    let clients = server.node.registry().user_clients("42");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client_id(), r["client"].as_str().unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn connect_without_token_needs_dev() {
    let server = start().await;
    let mut c = Client::open(server.addr).await;
    let reply = c.call("connect", json!({})).await;
    assert_eq!(error_code(&reply), 101, "{reply}");
    // The connection is unusable now: anything more closes it.
    c.send_raw(r#"{"id":2,"subscribe":{"channel":"news"}}"#)
        .await;
    assert_eq!(c.close_code().await, Some(3501));
    server.shutdown().await;

    let server = start_with(|c| c.dev = true).await;
    let mut c = Client::open(server.addr).await;
    let reply = c.call("connect", json!({})).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    assert!(reply["connect"].get("expires").is_none());
    assert_eq!(server.node.registry().user_clients("").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn expired_token_gets_109() {
    let server = start().await;
    let mut c = Client::open(server.addr).await;
    let expired = token_with(json!({"sub": "42", "exp": now_secs() - 10}), SECRET);
    let reply = c.call("connect", json!({"token": expired})).await;
    assert_eq!(error_code(&reply), 109, "{reply}");
    assert_eq!(reply["error"]["message"], "token expired");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_close_3500() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(r#"{"sub":"42"}"#)
    );
    let server = start().await;
    for bad in [
        token_with(json!({"sub": "42"}), "another-secret"),
        none,
        "not.a.jwt".to_owned(),
    ] {
        let mut c = Client::open(server.addr).await;
        c.send_raw(&json!({"id": 1, "connect": {"token": bad}}).to_string())
            .await;
        assert_eq!(c.close_code().await, Some(3500), "{bad}");
        assert_eq!(c.close.as_ref().unwrap().1, "invalid token");
    }
    assert_eq!(server.node.registry().num_clients(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_and_publish_between_clients() {
    let server = start().await;
    let mut a = Client::connected(server.addr, "1").await;
    let mut b = Client::connected(server.addr, "2").await;
    let sub = a.subscribe("chat").await;
    // Not asked for recovery or positioning: no position in the reply.
    assert!(sub.get("epoch").is_none(), "{sub}");
    for i in 0..20 {
        let reply = b.publish("chat", json!({"n": i})).await;
        assert_eq!(reply["publish"], json!({}), "{reply}");
    }
    for i in 0..20u64 {
        let push = a.push().await;
        assert_eq!(push["channel"], "chat");
        assert_eq!(push["pub"]["data"], json!({"n": i}));
        assert_eq!(push["pub"]["offset"], i + 1);
        assert_eq!(push["pub"]["info"]["user"], "2");
    }
    // Exactly once: nothing else arrives.
    b.publish("chat", json!("last")).await;
    assert_eq!(a.push().await["pub"]["data"], "last");
    assert!(a.inbox.is_empty());
    // Unsubscribed: no more publications.
    let reply = a.call("unsubscribe", json!({"channel": "chat"})).await;
    assert_eq!(reply["unsubscribe"], json!({}));
    b.publish("chat", json!("after")).await;
    let reply = a.call("presence_stats", json!({"channel": "chat"})).await;
    assert_eq!(
        reply["presence_stats"],
        json!({"num_clients": 0, "num_users": 0})
    );
    assert!(a.inbox.is_empty(), "{:?}", a.inbox);
    server.shutdown().await;
}

#[tokio::test]
async fn several_commands_in_one_frame_answer_in_one_frame() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "1").await;
    c.send_raw(concat!(
        r#"{"id":10,"subscribe":{"channel":"a"}}"#,
        "\n",
        r#"{"id":11,"subscribe":{"channel":"a"}}"#,
        "\n",
        r#"{"id":12,"presence_stats":{"channel":"a"}}"#
    ))
    .await;
    assert!(c.read_frame().await);
    let ids: Vec<Value> = c.inbox.iter().map(|v| v["id"].clone()).collect();
    assert_eq!(ids, [json!(10), json!(11), json!(12)]);
    assert_eq!(error_code(&c.inbox[1]), 105);
    assert_eq!(c.inbox[2]["presence_stats"]["num_clients"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn errors_for_channels() {
    let server = start_with(|c| c.client.max_subscriptions = 2).await;
    let mut c = Client::connected(server.addr, "1").await;
    let cases = [
        ("subscribe", json!({"channel": "nope:x"}), 102),
        ("subscribe", json!({"channel": "private:x"}), 103),
        ("subscribe", json!({"channel": "bad channel"}), 107),
        ("subscribe", json!({"channel": "x".repeat(300)}), 106),
        ("presence", json!({"channel": "live:x"}), 108),
        ("history", json!({"channel": "live:x"}), 108),
        ("publish", json!({"channel": "private:x", "data": 1}), 103),
        ("rpc", json!({"method": "m"}), 104),
    ];
    for (method, params, code) in cases {
        let reply = c.call(method, params.clone()).await;
        assert_eq!(error_code(&reply), code, "{method} {params}: {reply}");
    }
    c.subscribe("a").await;
    c.subscribe("b").await;
    let reply = c.call("subscribe", json!({"channel": "c"})).await;
    assert_eq!(error_code(&reply), 106);
    let reply = c.call("subscribe", json!({"channel": "a"})).await;
    assert_eq!(error_code(&reply), 105);
    // A body of the wrong shape is answered with 107; the connection lives.
    let reply = c.call("subscribe", json!({"channel": 5})).await;
    assert_eq!(error_code(&reply), 107);
    assert_eq!(server.node.metrics().errors_with_code(106), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn user_limited_channels() {
    let server = start().await;
    let mut owner = Client::connected(server.addr, "42").await;
    let mut other = Client::connected(server.addr, "7").await;
    owner.subscribe("notifications#42").await;
    let reply = other
        .call("subscribe", json!({"channel": "notifications#42"}))
        .await;
    assert_eq!(error_code(&reply), 103);
    let reply = other.publish("notifications#42", json!("spoof")).await;
    assert_eq!(error_code(&reply), 103);
    let mut both = Client::connected(server.addr, "57").await;
    both.subscribe("dm#42,57").await;
    owner.subscribe("dm#42,57").await;
    assert_eq!(
        error_code(
            &other
                .call("subscribe", json!({"channel": "dm#42,57"}))
                .await
        ),
        103
    );
    both.publish("dm#42,57", json!("hi")).await;
    let push = owner.push().await;
    assert_eq!(
        (push["channel"].clone(), push["pub"]["data"].clone()),
        (json!("dm#42,57"), json!("hi"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_tokens() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "42").await;
    let info = json!({"role": "admin"});
    let sub_token = auth()
        .sign_subscribe("42", "private:room", Some(600), Some(&info))
        .unwrap();
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "private:room", "token": sub_token}),
        )
        .await;
    assert_eq!(reply["subscribe"]["expires"], true, "{reply}");
    let reply = c.call("presence", json!({"channel": "private:room"})).await;
    // Presence is on but not allowed to clients in this namespace.
    assert_eq!(error_code(&reply), 103);
    let presence = server
        .node
        .hub()
        .presence(&"private:room".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        presence[0].chan_info.as_deref(),
        Some(&br#"{"role":"admin"}"#[..])
    );
    // Expired: 109, the SDKs fetch a new one.
    let expired = token_with(
        json!({"sub": "42", "channel": "private:other", "exp": now_secs() - 5}),
        SECRET,
    );
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "private:other", "token": expired}),
        )
        .await;
    assert_eq!(error_code(&reply), 109);
    // Wrongly signed: permission denied.
    let forged = token_with(json!({"sub": "42", "channel": "private:other"}), "x");
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "private:other", "token": forged}),
        )
        .await;
    assert_eq!(error_code(&reply), 103);
    // Someone else's token: the connection is closed (invalid token).
    let theirs = auth()
        .sign_subscribe("7", "private:other", None, None)
        .unwrap();
    c.send_raw(
        &json!({"id": 99, "subscribe": {"channel": "private:other", "token": theirs}}).to_string(),
    )
    .await;
    assert_eq!(c.close_code().await, Some(3500));
    server.shutdown().await;
}

#[tokio::test]
async fn presence_and_join_leave() {
    let server = start().await;
    let info = json!({"name": "Ann"});
    let ann_token = auth().sign_connect("1", None, Some(&info), &[]).unwrap();
    let mut ann = Client::open(server.addr).await;
    ann.call("connect", json!({"token": ann_token})).await;
    let reply = ann
        .call("subscribe", json!({"channel": "room", "join_leave": true}))
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    // Her own join comes first, as in Centrifugo.
    let join = ann.push().await;
    assert_eq!(join["join"]["info"]["user"], "1");
    let mut bob = Client::connected(server.addr, "2").await;
    bob.subscribe("room").await;
    let join = ann.push().await;
    assert_eq!(join["channel"], "room");
    assert_eq!(join["join"]["info"]["user"], "2");
    let reply = bob.call("presence", json!({"channel": "room"})).await;
    let presence = reply["presence"]["presence"].as_object().unwrap();
    assert_eq!(presence.len(), 2);
    let ann_entry = presence.values().find(|v| v["user"] == "1").unwrap();
    assert_eq!(ann_entry["conn_info"], info);
    let reply = bob.call("presence_stats", json!({"channel": "room"})).await;
    assert_eq!(
        reply["presence_stats"],
        json!({"num_clients": 2, "num_users": 2})
    );
    drop(bob);
    let leave = ann.push().await;
    assert_eq!(leave["leave"]["info"]["user"], "2");
    server.shutdown().await;
}

#[tokio::test]
async fn history_reads() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "1").await;
    for i in 1..=5 {
        c.publish("feed", json!(i)).await;
    }
    let reply = c
        .call("history", json!({"channel": "feed", "limit": -1}))
        .await;
    let h = &reply["history"];
    let data: Vec<Value> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(data, [json!(1), json!(2), json!(3), json!(4), json!(5)]);
    assert_eq!(h["offset"], 5);
    let epoch = h["epoch"].as_str().unwrap().to_owned();
    // Limit 0: only the position.
    let reply = c.call("history", json!({"channel": "feed"})).await;
    assert_eq!(reply["history"]["publications"], json!([]));
    assert_eq!(reply["history"]["offset"], 5);
    let reply = c
        .call(
            "history",
            json!({"channel": "feed", "limit": 2, "reverse": true}),
        )
        .await;
    let offsets: Vec<Value> = reply["history"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert_eq!(offsets, [json!(5), json!(4)]);
    let reply = c
        .call(
            "history",
            json!({"channel": "feed", "limit": 10, "since": {"offset": 3, "epoch": epoch}}),
        )
        .await;
    assert_eq!(
        reply["history"]["publications"].as_array().unwrap().len(),
        2
    );
    let reply = c
        .call(
            "history",
            json!({"channel": "feed", "limit": 10, "since": {"offset": 3, "epoch": "other"}}),
        )
        .await;
    assert_eq!(error_code(&reply), 112);
    server.shutdown().await;
}

#[tokio::test]
async fn recovery_after_reconnect() {
    let server = start().await;
    let mut a = Client::connected(server.addr, "1").await;
    let reply = a
        .call("subscribe", json!({"channel": "news", "recoverable": true}))
        .await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["recoverable"], true, "{reply}");
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    let mut publisher = Client::connected(server.addr, "2").await;
    publisher.publish("news", json!("seen")).await;
    assert_eq!(a.push().await["pub"]["offset"], 1);
    drop(a);
    for i in 0..3 {
        publisher
            .publish("news", json!(format!("missed {i}")))
            .await;
    }
    let mut a = Client::connected(server.addr, "1").await;
    let reply = a
        .call(
            "subscribe",
            json!({"channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["recovered"], true, "{reply}");
    assert_eq!(sub["was_recovering"], true);
    assert_eq!(sub["offset"], 4);
    let missed: Vec<Value> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(
        missed,
        [json!("missed 0"), json!("missed 1"), json!("missed 2")]
    );
    // Live delivery continues right after what was recovered.
    publisher.publish("news", json!("live")).await;
    let push = a.push().await;
    assert_eq!(
        (push["pub"]["offset"].clone(), push["pub"]["data"].clone()),
        (json!(5), json!("live"))
    );

    // A wrong epoch: not recovered, the current position, no publications.
    let mut b = Client::connected(server.addr, "3").await;
    let reply = b
        .call(
            "subscribe",
            json!({"channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": "stale"}),
        )
        .await;
    let sub = &reply["subscribe"];
    assert!(sub.get("recovered").is_none(), "{reply}");
    assert_eq!(sub["was_recovering"], true);
    assert_eq!(sub["offset"], 5);
    assert_eq!(sub["epoch"], json!(epoch));
    assert!(sub.get("publications").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn commands_before_connect_close_3501() {
    let server = start().await;
    let mut c = Client::open(server.addr).await;
    c.send_raw(r#"{"id":1,"subscribe":{"channel":"news"}}"#)
        .await;
    assert_eq!(c.close_code().await, Some(3501));
    // Connecting twice too.
    let mut c = Client::connected(server.addr, "1").await;
    c.send_raw(&json!({"id": 5, "connect": {"token": token("1")}}).to_string())
        .await;
    assert_eq!(c.close_code().await, Some(3501));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_json_closes_3501() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "1").await;
    c.send_raw("{\"id\":1,\"subscribe\":").await;
    assert_eq!(c.close_code().await, Some(3501));
    assert_eq!(server.node.registry().num_clients(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let server = start_with(|c| c.client.max_message_size = 1024).await;
    let mut c = Client::connected(server.addr, "1").await;
    let big = json!({"id": 2, "publish": {"channel": "a", "data": "x".repeat(2000)}});
    c.send_raw(&big.to_string()).await;
    assert_eq!(c.close_code().await, Some(1009));
    server.shutdown().await;
}

#[tokio::test]
async fn pings_and_no_pong_3012() {
    let server = start_with(|c| {
        c.client.ping_interval = Duration::from_millis(200);
        c.client.pong_timeout = Duration::from_millis(600);
    })
    .await;
    // A client that answers keeps the connection.
    let mut good = Client::connected(server.addr, "1").await;
    let mut silent = Client::connected(server.addr, "2").await;
    silent.auto_pong = false;
    let (code, ()) = tokio::join!(silent.close_code(), good.pump(Duration::from_millis(1500)));
    assert_eq!(code, Some(3012));
    let reply = good.call("presence_stats", json!({"channel": "x"})).await;
    assert!(reply.get("presence_stats").is_some(), "{reply}");
    assert!(good.pings >= 3, "{} pings", good.pings);
    server.shutdown().await;
}

#[tokio::test]
async fn stale_connection_closes_3502() {
    let server = start_with(|c| c.client.connect_timeout = Duration::from_millis(300)).await;
    let mut c = Client::open(server.addr).await;
    let started = std::time::Instant::now();
    assert_eq!(c.close_code().await, Some(3502));
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_3001() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "1").await;
    c.subscribe("news").await;
    let addr = server.addr;
    let stop = tokio::spawn(server.shutdown());
    assert_eq!(c.close_code().await, Some(3001));
    assert_eq!(c.close.as_ref().unwrap().1, "shutdown");
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A connection that has not sent its connect command (so is in no
/// registry) and one that has both hear about shutdown, at once.
#[tokio::test]
async fn shutdown_closes_connections_before_connect_too() {
    let server = start().await;
    let mut waiting = Client::open(server.addr).await;
    let mut connected = Client::connected(server.addr, "1").await;
    let stop = tokio::spawn(server.shutdown());
    let started = std::time::Instant::now();
    assert_eq!(waiting.close_code().await, Some(3001));
    assert_eq!(connected.close_code().await, Some(3001));
    // Well before the connect timeout (10 s by default).
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
}

#[tokio::test]
async fn server_side_commands_through_the_registry() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "42").await;
    let registry = server.node.registry();
    let sent = registry.send_to_user("42", &ServerCommand::Subscribe("alerts".parse().unwrap()));
    assert_eq!(sent, 1);
    let push = c.push().await;
    assert_eq!(push["channel"], "alerts");
    assert!(push.get("subscribe").is_some(), "{push}");
    let mut publisher = Client::connected(server.addr, "1").await;
    publisher.publish("alerts", json!("wake up")).await;
    assert_eq!(c.push().await["pub"]["data"], "wake up");
    registry.send_to_user("42", &ServerCommand::Unsubscribe("alerts".parse().unwrap()));
    let push = c.push().await;
    assert_eq!(push["unsubscribe"]["code"], 2000, "{push}");
    registry.send_to_user(
        "42",
        &ServerCommand::Disconnect {
            code: 4501,
            reason: "banned".into(),
            reconnect: false,
        },
    );
    assert_eq!(c.close_code().await, Some(4501));
    assert_eq!(c.close.as_ref().unwrap().1, "banned");
    server.shutdown().await;
}

#[tokio::test]
async fn token_channels_are_server_side_subscriptions() {
    let server = start().await;
    let t = auth()
        .sign_connect("42", None, None, &["personal#42".into(), "nope:x".into()])
        .unwrap();
    let mut c = Client::open(server.addr).await;
    let reply = c.call("connect", json!({"token": t})).await;
    let subs = reply["connect"]["subs"].as_object().expect("subs");
    assert_eq!(subs.keys().collect::<Vec<_>>(), ["personal#42"]);
    assert_eq!(subs["personal#42"]["recoverable"], true);
    let epoch = subs["personal#42"]["epoch"].as_str().unwrap().to_owned();
    let mut p = Client::connected(server.addr, "42").await;
    p.publish("personal#42", json!("one")).await;
    assert_eq!(c.push().await["pub"]["data"], "one");
    drop(c);
    p.publish("personal#42", json!("two")).await;
    // Reconnect with the position: the missed publication comes back.
    let mut c = Client::open(server.addr).await;
    let reply = c
        .call(
            "connect",
            json!({"token": t, "subs": {"personal#42": {"recover": true, "offset": 1, "epoch": epoch}}}),
        )
        .await;
    let sub = &reply["connect"]["subs"]["personal#42"];
    assert_eq!(sub["recovered"], true, "{reply}");
    assert_eq!(sub["publications"][0]["data"], "two");
    server.shutdown().await;
}

#[tokio::test]
async fn expiry_and_refresh() {
    let server = start_with(|c| c.client.pong_timeout = Duration::from_millis(300)).await;
    // Expires in 2 s; refreshed in time, it lives on.
    let short = token_with(json!({"sub": "42", "exp": now_secs() + 2}), SECRET);
    let mut kept = Client::open(server.addr).await;
    let reply = kept.call("connect", json!({"token": short})).await;
    assert_eq!(reply["connect"]["expires"], true);
    let mut dropped = Client::open(server.addr).await;
    dropped.call("connect", json!({"token": short})).await;
    let reply = kept.call("refresh", json!({"token": token("42")})).await;
    assert_eq!(reply["refresh"]["expires"], true, "{reply}");
    assert!(reply["refresh"]["ttl"].as_u64().unwrap() > 3000);
    assert_eq!(dropped.close_code().await, Some(3005));
    let reply = kept.call("presence_stats", json!({"channel": "x"})).await;
    assert!(reply.get("presence_stats").is_some());
    // A refresh for another user is refused with 3500.
    kept.send_raw(&json!({"id": 50, "refresh": {"token": token("7")}}).to_string())
        .await;
    assert_eq!(kept.close_code().await, Some(3500));
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_expiry_unsubscribes_2501() {
    let server = start_with(|c| c.client.pong_timeout = Duration::from_millis(200)).await;
    let mut c = Client::connected(server.addr, "42").await;
    let short = token_with(
        json!({"sub": "42", "channel": "private:a", "exp": now_secs() + 1}),
        SECRET,
    );
    let reply = c
        .call("subscribe", json!({"channel": "private:a", "token": short}))
        .await;
    assert_eq!(reply["subscribe"]["expires"], true, "{reply}");
    let push = tokio::time::timeout(Duration::from_secs(4), c.push())
        .await
        .unwrap();
    assert_eq!(push["channel"], "private:a");
    assert_eq!(push["unsubscribe"]["code"], 2501);
    server.shutdown().await;
}

#[tokio::test]
async fn slow_client_closes_3008() {
    let server = start_with(|c| c.client.max_queue_bytes = 256 * 1024).await;
    let mut slow = Client::connected(server.addr, "1").await;
    slow.subscribe("firehose").await;
    // A subscriber that keeps reading beside it must get every publication,
    // in order, before and after the slow one is dropped.
    let mut fast = Client::connected(server.addr, "2").await;
    fast.subscribe("firehose").await;
    let (offsets_tx, mut offsets_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let push = fast.push().await;
            let offset = push["pub"]["offset"].as_u64().unwrap_or(0);
            if offsets_tx.send(offset).is_err() {
                break;
            }
        }
    });
    // Stop reading on `slow`; publish far more than the socket buffers and
    // the queue can hold.
    let hub = server.node.hub().clone();
    let channel: hub::ChannelName = "firehose".parse().unwrap();
    let payload = format!("\"{}\"", "x".repeat(16 * 1024));
    // Publish in small bursts and let the reading subscriber take each burst
    // before the next: the queue that fills is the slow one's alone.
    let mut published = 0u64;
    let mut after_drop = 0;
    while published < 4000 && after_drop < 50 {
        for _ in 0..8 {
            hub.publish(&channel, hub::PublishRequest::new(payload.clone()))
                .await
                .unwrap();
            published += 1;
        }
        for expected in published - 7..=published {
            let offset = tokio::time::timeout(WAIT, offsets_rx.recv())
                .await
                .expect("the reading subscriber keeps receiving")
                .expect("reader alive");
            assert_eq!(offset, expected, "every publication once, in order");
        }
        if hub.num_subscribers(&channel) < 2 {
            after_drop += 8;
        }
    }
    assert_eq!(
        hub.num_subscribers(&channel),
        1,
        "the slow subscriber was dropped, the fast one stays"
    );
    assert_eq!(slow.close_code().await, Some(3008));
    reader.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn origin_check() {
    let server =
        start_with(|c| c.client.allowed_origins = vec!["https://app.example".into()]).await;
    let url = format!("ws://{}/connection/websocket", server.addr);
    let refused = ws::Connector::new()
        .header("Origin", "https://evil.example")
        .connect(&url)
        .await;
    assert!(refused.is_err());
    let ok = ws::Connector::new()
        .header("Origin", "https://app.example")
        .connect(&url)
        .await;
    assert!(ok.is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_connections() {
    let server = start().await;
    let mut c = Client::connected(server.addr, "1").await;
    c.subscribe("m").await;
    let m = &server.node.metrics().websocket;
    use std::sync::atomic::Ordering;
    assert_eq!(m.connections_open.load(Ordering::Relaxed), 1);
    assert!(m.messages_in.load(Ordering::Relaxed) >= 2);
    assert!(m.messages_out.load(Ordering::Relaxed) >= 2);
    drop(c);
    for _ in 0..50 {
        if m.connections_open.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(m.connections_open.load(Ordering::Relaxed), 0);
    assert_eq!(server.node.registry().num_clients(), 0);
    let _ = ClientConfig::default();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_channel_keeps_order_and_pings() {
    let server = start_with(|c| {
        c.client.ping_interval = Duration::from_millis(100);
        c.client.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = Client::connected(server.addr, "1").await;
    c.subscribe("busy").await;
    let hub = server.node.hub().clone();
    const N: u64 = 5000;
    let publisher = tokio::spawn(async move {
        let channel: hub::ChannelName = "busy".parse().unwrap();
        for i in 0..N {
            hub.publish(&channel, hub::PublishRequest::new(i.to_string()))
                .await
                .unwrap();
        }
    });
    for i in 0..N {
        let push = c.push().await;
        assert_eq!(push["pub"]["data"], i, "publication {i} in order");
        assert_eq!(push["pub"]["offset"], i + 1);
    }
    publisher.await.unwrap();
    // Still connected and answering.
    let reply = c.call("presence_stats", json!({"channel": "busy"})).await;
    assert_eq!(reply["presence_stats"]["num_clients"], 1);
    server.shutdown().await;
}
