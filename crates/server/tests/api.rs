//! The server API over real HTTP: `POST /api/<method>` against servers made
//! with `run::start` (memory storage) on 127.0.0.1:0, through a small raw
//! HTTP/1.1 helper so that malformed and oversized requests can be sent
//! as they are.
//!
//! Server-side subscribe / unsubscribe / disconnect are checked with fake
//! connections put into the node's registry, and presence / channels with
//! subscribers added to the hub directly, so these do not depend on a
//! transport. The tests at the end drive a real WebSocket client through
//! `/connection/websocket` and so depend on the client session
//! (`src/client`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use duplex_server::config::{Config, StorageConfig, TokenKey};
use duplex_server::node::{ClientHandle, ServerCommand};
use duplex_server::run::{self, Running};
use duplex_server::testing::RecordingClient;
use hub::{
    ClientInfo, EncodedPublication, NamespaceConfig, NamespaceOptions, SubscribeOptions, Subscriber,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "test-api-key";
const SECRET: &str = "test-token-secret";
const MAX_BODY: usize = 4096;

fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: KEY.into(),
        api_max_body: MAX_BODY,
        node_name: "api-test".into(),
        channel: NamespaceOptions {
            presence: true,
            join_leave: true,
            history_size: 10,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_subscribe_for_client: true,
            ..Default::default()
        },
        namespaces: vec![
            // A namespace without history or presence.
            NamespaceConfig {
                name: "live".into(),
                options: NamespaceOptions::default(),
            },
            NamespaceConfig {
                name: "chat".into(),
                options: NamespaceOptions {
                    presence: true,
                    ..Default::default()
                },
            },
        ],
        shutdown_drain: Duration::from_secs(1),
        ..Default::default()
    }
}

async fn start() -> Running {
    run::start(config()).await.expect("server starts")
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The `result` of a 200 answer.
    fn result(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        let v = self.json();
        assert!(v.get("error").is_none(), "unexpected error: {v}");
        v["result"].clone()
    }

    /// The `error.code` of an answer.
    fn code(&self) -> u64 {
        self.json()["error"]["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no error code: {self:?}"))
    }
}

/// Sends `request` as is (while reading, so that an early answer to an
/// oversized body is still seen) and reads the answer to the end.
async fn send_raw(addr: SocketAddr, request: Vec<u8>) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "no answer within 10s");
    drop(writer);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `method` `path` with optional `X-API-Key` and a body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Answer {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(key) = key {
        req.push_str(&format!("X-API-Key: {key}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    send_raw(addr, req.into_bytes()).await
}

/// `POST /api/<method>` with the right key.
async fn api(addr: SocketAddr, method: &str, body: Value) -> Answer {
    request(
        addr,
        "POST",
        &format!("/api/{method}"),
        Some(KEY),
        &body.to_string(),
    )
    .await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, None, "").await
}

fn offsets(history: &Value) -> Vec<u64> {
    history["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

// ---------------------------------------------------------------- publish

#[tokio::test]
async fn publish_returns_position_and_keeps_data_verbatim() {
    let s = start().await;
    // Numbers and key order must come back exactly as sent.
    let data = r#"{"z":1.50,"a":[1e3,-0.0],"m":{"y":null,"x":"é\n"}}"#;
    let body = format!(r#"{{"channel":"news","data":{data},"tags":{{"kind":"test"}}}}"#);
    let a = request(s.addr, "POST", "/api/publish", Some(KEY), &body).await;
    let r = a.result();
    assert_eq!(r["offset"], 1);
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();
    assert!(!epoch.is_empty());
    assert!(a
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));

    let r = api(
        s.addr,
        "publish",
        json!({"channel": "news", "data": "second"}),
    )
    .await
    .result();
    assert_eq!(
        (r["offset"].as_u64(), r["epoch"].as_str()),
        (Some(2), Some(epoch.as_str()))
    );

    let h = api(s.addr, "history", json!({"channel": "news", "limit": -1})).await;
    assert!(
        h.body.contains(&format!(
            r#"{{"data":{data},"offset":1,"tags":{{"kind":"test"}}}}"#
        )),
        "{}",
        h.body
    );
    let h = h.result();
    assert_eq!(offsets(&h), [1, 2]);
    assert_eq!(h["publications"][1]["data"], "second");
    assert!(
        h["publications"][1].get("tags").is_none(),
        "empty tags are left out"
    );
    assert!(
        h["publications"][0].get("info").is_none(),
        "API publications have no info"
    );
    assert_eq!(
        (h["offset"].as_u64(), h["epoch"].as_str()),
        (Some(2), Some(epoch.as_str()))
    );
    s.shutdown().await;
}

#[tokio::test]
async fn publish_without_history_and_meaning_errors() {
    let s = start().await;
    // No history in the namespace: nothing to report but success.
    assert_eq!(
        api(s.addr, "publish", json!({"channel": "live:x", "data": 1}))
            .await
            .result(),
        json!({})
    );
    // skip_history: the publication goes out but gets no offset.
    assert_eq!(
        api(
            s.addr,
            "publish",
            json!({"channel": "news", "data": 1, "skip_history": true})
        )
        .await
        .result(),
        json!({})
    );
    let h = api(s.addr, "history", json!({"channel": "news", "limit": -1}))
        .await
        .result();
    assert_eq!(offsets(&h), Vec::<u64>::new());

    let cases = [
        (json!({"channel": "nope:x", "data": 1}), 102),
        (json!({"channel": "bad channel", "data": 1}), 107),
        (json!({"channel": "", "data": 1}), 107),
        (json!({"data": 1}), 107),
        (json!({"channel": "news"}), 107),
        (json!({"channel": "news", "b64data": "AAE="}), 107),
    ];
    for (body, code) in cases {
        let a = api(s.addr, "publish", body.clone()).await;
        assert_eq!(a.status, 200, "{body}: {a:?}");
        assert_eq!(a.code(), code, "{body}: {a:?}");
        assert!(a.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // `null` data is a payload like any other.
    assert_eq!(
        api(s.addr, "publish", json!({"channel": "news", "data": null}))
            .await
            .result()["offset"],
        1
    );
    s.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_publishes_once() {
    let s = start().await;
    let p = json!({"channel": "orders", "data": {"n": 1}, "idempotency_key": "order-1"});
    let first = api(s.addr, "publish", p.clone()).await.result();
    let again = api(s.addr, "publish", p).await.result();
    assert_eq!(first, again);
    assert_eq!(first["offset"], 1);
    let other = api(
        s.addr,
        "publish",
        json!({"channel": "orders", "data": {"n": 2}, "idempotency_key": "order-2"}),
    )
    .await
    .result();
    assert_eq!(other["offset"], 2);
    let h = api(s.addr, "history", json!({"channel": "orders", "limit": -1}))
        .await
        .result();
    assert_eq!(offsets(&h), [1, 2]);
    // The same key on another channel is another key.
    let elsewhere = api(
        s.addr,
        "publish",
        json!({"channel": "orders2", "data": 1, "idempotency_key": "order-1"}),
    )
    .await
    .result();
    assert_eq!(elsewhere["offset"], 1);
    // Only real publications count.
    let metrics = get(s.addr, "/metrics").await.body;
    assert!(
        metrics.contains("duplex_publications_total{source=\"api\"} 3"),
        "{metrics}"
    );
    s.shutdown().await;
}

// ---------------------------------------------------------------- broadcast

#[tokio::test]
async fn broadcast_answers_per_channel_in_order() {
    let s = start().await;
    api(s.addr, "publish", json!({"channel": "b", "data": 0}))
        .await
        .result();
    let r = api(
        s.addr,
        "broadcast",
        json!({"channels": ["a", "b", "nope:x", "bad channel", "live:y"], "data": {"hello": true}}),
    )
    .await
    .result();
    let responses = r["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 5);
    assert_eq!(responses[0]["result"]["offset"], 1);
    assert_eq!(responses[1]["result"]["offset"], 2);
    assert_eq!(responses[2]["error"]["code"], 102);
    assert_eq!(responses[3]["error"]["code"], 107);
    assert_eq!(responses[4]["result"], json!({}));
    let h = api(s.addr, "history", json!({"channel": "a", "limit": 10}))
        .await
        .result();
    assert_eq!(h["publications"][0]["data"], json!({"hello": true}));

    assert_eq!(
        api(s.addr, "broadcast", json!({"channels": [], "data": 1}))
            .await
            .code(),
        107
    );
    assert_eq!(
        api(s.addr, "broadcast", json!({"channels": ["a"]}))
            .await
            .code(),
        107
    );
    s.shutdown().await;
}

// ---------------------------------------------------------------- history

#[tokio::test]
async fn history_since_limit_reverse_and_remove() {
    let s = start().await;
    for i in 1..=5 {
        api(s.addr, "publish", json!({"channel": "h", "data": i}))
            .await
            .result();
    }
    // As in Centrifugo: no limit, only the position.
    let top = api(s.addr, "history", json!({"channel": "h"}))
        .await
        .result();
    assert_eq!(offsets(&top), Vec::<u64>::new());
    assert_eq!(top["offset"], 5);
    let epoch = top["epoch"].as_str().expect("epoch").to_owned();

    let h = api(s.addr, "history", json!({"channel": "h", "limit": 2}))
        .await
        .result();
    assert_eq!(offsets(&h), [1, 2]);
    let h = api(
        s.addr,
        "history",
        json!({"channel": "h", "limit": 2, "reverse": true}),
    )
    .await
    .result();
    assert_eq!(offsets(&h), [5, 4]);
    let since = json!({"offset": 2, "epoch": epoch});
    let h = api(
        s.addr,
        "history",
        json!({"channel": "h", "since": since, "limit": -1}),
    )
    .await
    .result();
    assert_eq!(offsets(&h), [3, 4, 5]);
    let h = api(
        s.addr,
        "history",
        json!({"channel": "h", "since": since, "limit": 1}),
    )
    .await
    .result();
    assert_eq!(offsets(&h), [3]);
    assert_eq!(h["publications"][0]["data"], 3);

    let stale =
        json!({"channel": "h", "since": {"offset": 2, "epoch": "not-the-epoch"}, "limit": -1});
    assert_eq!(api(s.addr, "history", stale).await.code(), 112);
    assert_eq!(
        api(s.addr, "history", json!({"channel": "live:h", "limit": 1}))
            .await
            .code(),
        108
    );
    assert_eq!(
        api(s.addr, "history", json!({"channel": "nope:h"}))
            .await
            .code(),
        102
    );
    let a = api(s.addr, "history", json!({"channel": "h", "limit": "2"})).await;
    assert_eq!(a.status, 400, "{a:?}");

    // history_remove drops the publications; the position stays.
    assert_eq!(
        api(s.addr, "history_remove", json!({"channel": "h"}))
            .await
            .result(),
        json!({})
    );
    let h = api(s.addr, "history", json!({"channel": "h", "limit": -1}))
        .await
        .result();
    assert_eq!(offsets(&h), Vec::<u64>::new());
    assert_eq!(
        (h["offset"].as_u64(), h["epoch"].as_str()),
        (Some(5), Some(epoch.as_str()))
    );
    let r = api(s.addr, "publish", json!({"channel": "h", "data": 6}))
        .await
        .result();
    assert_eq!(r["offset"], 6);
    assert_eq!(
        api(s.addr, "history_remove", json!({"channel": "live:h"}))
            .await
            .code(),
        108
    );
    assert_eq!(
        api(s.addr, "history_remove", json!({"channel": "nope:h"}))
            .await
            .code(),
        102
    );
    s.shutdown().await;
}

// ------------------------------------------------- presence, channels, info

struct Quiet;
impl Subscriber for Quiet {
    fn deliver(&self, _: &Arc<EncodedPublication>) -> bool {
        true
    }
}

/// Subscribes `client` of `user` to `channel` in the hub, as a transport would.
async fn hub_subscribe(
    s: &Running,
    channel: &str,
    user: &str,
    client: &str,
    conn_info: Option<&str>,
) {
    let mut info = ClientInfo::new(user, client);
    info.conn_info = conn_info.map(|c| bytes::Bytes::copy_from_slice(c.as_bytes()));
    let opts = SubscribeOptions {
        info,
        ..Default::default()
    };
    let channel = channel.parse().expect("channel");
    let subscribed = s
        .node
        .hub()
        .subscribe(&channel, Arc::new(Quiet), opts)
        .await
        .expect("subscribe");
    subscribed.activation.activate();
}

#[tokio::test]
async fn presence_channels_and_info() {
    let s = start().await;
    hub_subscribe(&s, "room", "42", "c1", Some(r#"{"name":"Ann","n":1.0}"#)).await;
    hub_subscribe(&s, "room", "42", "c2", None).await;
    hub_subscribe(&s, "room", "7", "c3", None).await;
    hub_subscribe(&s, "chat:a", "7", "c3", None).await;
    hub_subscribe(&s, "live:b", "7", "c3", None).await;

    let a = api(s.addr, "presence", json!({"channel": "room"})).await;
    assert!(
        a.body.contains(r#""conn_info":{"name":"Ann","n":1.0}"#),
        "{}",
        a.body
    );
    let p = a.result();
    let presence = p["presence"].as_object().expect("presence");
    assert_eq!(presence.len(), 3);
    assert_eq!(presence["c1"]["client"], "c1");
    assert_eq!(presence["c1"]["user"], "42");
    assert_eq!(presence["c3"]["user"], "7");
    assert!(presence["c2"].get("conn_info").is_none());

    let st = api(s.addr, "presence_stats", json!({"channel": "room"}))
        .await
        .result();
    assert_eq!(st, json!({"num_clients": 3, "num_users": 2}));
    let empty = api(s.addr, "presence_stats", json!({"channel": "empty"}))
        .await
        .result();
    assert_eq!(empty, json!({"num_clients": 0, "num_users": 0}));
    assert_eq!(
        api(s.addr, "presence", json!({"channel": "live:b"}))
            .await
            .code(),
        108
    );
    assert_eq!(
        api(s.addr, "presence_stats", json!({"channel": "nope:b"}))
            .await
            .code(),
        102
    );
    assert_eq!(api(s.addr, "presence", json!({})).await.code(), 107);

    let all = api(s.addr, "channels", json!({})).await.result();
    assert_eq!(
        all,
        json!({"channels": {"chat:a": {"num_clients": 1}, "live:b": {"num_clients": 1}, "room": {"num_clients": 3}}})
    );
    let some = api(s.addr, "channels", json!({"pattern": "*:*"}))
        .await
        .result();
    assert_eq!(some["channels"].as_object().map(|m| m.len()), Some(2));
    let one = api(s.addr, "channels", json!({"pattern": "{room,nothing}"}))
        .await
        .result();
    assert_eq!(one, json!({"channels": {"room": {"num_clients": 3}}}));
    assert_eq!(
        api(s.addr, "channels", json!({"pattern": "[oops"}))
            .await
            .code(),
        107
    );
    // An empty body counts as `{}`.
    let a = request(s.addr, "POST", "/api/channels", Some(KEY), "").await;
    assert_eq!(a.result()["channels"].as_object().map(|m| m.len()), Some(3));

    let info = api(s.addr, "info", json!({})).await.result();
    let node = &info["nodes"][0];
    assert_eq!(info["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["uid"], s.node.uid());
    assert_eq!(node["name"], "api-test");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(node["num_channels"], 3);
    assert_eq!(node["num_subs"], 5);
    assert_eq!(node["num_clients"], 0, "no transport connections");
    assert!(node["uptime"].as_u64().is_some());
    s.shutdown().await;
}

// ------------------------------------- subscribe, unsubscribe, disconnect

/// A recording connection added to the node's registry.
fn add_client(s: &Running, id: &str, user: &str) -> Arc<RecordingClient> {
    let client = RecordingClient::new(id, user);
    s.node.registry().add(client.clone());
    client
}

#[tokio::test]
async fn server_side_subscribe_unsubscribe_disconnect() {
    let s = start().await;
    let c1 = add_client(&s, "c1", "42");
    let c2 = add_client(&s, "c2", "42");
    let other = add_client(&s, "c3", "7");
    let news = || "news".parse().unwrap();

    assert_eq!(
        api(
            s.addr,
            "subscribe",
            json!({"user": "42", "channel": "news"})
        )
        .await
        .result(),
        json!({})
    );
    assert_eq!(c1.take(), [ServerCommand::Subscribe(news())]);
    assert_eq!(c2.take(), [ServerCommand::Subscribe(news())]);
    assert!(other.take().is_empty());

    api(
        s.addr,
        "unsubscribe",
        json!({"user": "42", "channel": "news", "client": "c2"}),
    )
    .await
    .result();
    assert!(c1.take().is_empty());
    assert_eq!(c2.take(), [ServerCommand::Unsubscribe(news())]);

    // Unknown users are fine (nobody to tell); bad channels are not.
    api(
        s.addr,
        "subscribe",
        json!({"user": "nobody", "channel": "news"}),
    )
    .await
    .result();
    assert_eq!(
        api(
            s.addr,
            "subscribe",
            json!({"user": "42", "channel": "nope:x"})
        )
        .await
        .code(),
        102
    );
    assert_eq!(
        api(
            s.addr,
            "unsubscribe",
            json!({"user": "42", "channel": "a b"})
        )
        .await
        .code(),
        107
    );
    assert_eq!(
        api(s.addr, "subscribe", json!({"user": "42"})).await.code(),
        107
    );
    assert!(c1.take().is_empty() && c2.take().is_empty());

    api(s.addr, "disconnect", json!({"user": "42"}))
        .await
        .result();
    let forced = ServerCommand::Disconnect {
        code: 3503,
        reason: "force disconnect".into(),
        reconnect: false,
    };
    assert_eq!(c1.take(), std::slice::from_ref(&forced));
    assert_eq!(c2.take(), [forced]);
    assert!(other.take().is_empty());

    api(
        s.addr,
        "disconnect",
        json!({"user": "42", "code": 3011, "reason": "go away", "whitelist": ["c1"]}),
    )
    .await
    .result();
    assert!(c1.take().is_empty());
    assert_eq!(
        c2.take(),
        [ServerCommand::Disconnect {
            code: 3011,
            reason: "go away".into(),
            reconnect: true
        }]
    );

    // Centrifugo's nested form.
    api(
        s.addr,
        "disconnect",
        json!({"user": "7", "disconnect": {"code": 4500, "reason": "banned"}}),
    )
    .await
    .result();
    assert_eq!(
        other.take(),
        [ServerCommand::Disconnect {
            code: 4500,
            reason: "banned".into(),
            reconnect: false
        }]
    );

    assert_eq!(
        api(s.addr, "disconnect", json!({"user": "42", "code": 1000}))
            .await
            .code(),
        107
    );
    let long = "x".repeat(124);
    assert_eq!(
        api(
            s.addr,
            "disconnect",
            json!({"user": "42", "code": 4000, "reason": long})
        )
        .await
        .code(),
        107
    );
    assert!(c1.take().is_empty() && c2.take().is_empty());

    let info = api(s.addr, "info", json!({})).await.result();
    assert_eq!(
        (
            info["nodes"][0]["num_clients"].as_u64(),
            info["nodes"][0]["num_users"].as_u64()
        ),
        (Some(3), Some(2))
    );
    for fake in [&c1, &c2, &other] {
        s.node.registry().remove(fake.user(), fake.client_id());
    }
    s.shutdown().await;
}

// ---------------------------------------------------------------- batch

#[tokio::test]
async fn batch_replies_in_order() {
    let s = start().await;
    for parallel in [false, true] {
        let ch = if parallel { "bp" } else { "bs" };
        let body = json!({
            "parallel": parallel,
            "commands": [
                {"publish": {"channel": ch, "data": 1}},
                {"publish": {"channel": "nope:x", "data": 1}},
                {"rpc": {"method": "x"}},
                {"broadcast": {"channels": [ch, "other"], "data": 2}},
                {"presence_stats": {"channel": ch}},
                {"info": {}},
                {"publish": {"channel": ch, "data": "x", "extra": [1]}},
                {"publish": {"channel": 5}},
                {"publish": {}, "info": {}},
                7,
                {"batch": {"commands": []}},
            ]
        });
        let a = api(s.addr, "batch", body).await;
        assert_eq!(a.status, 200, "{a:?}");
        let v = a.json();
        assert!(
            v.get("result").is_none(),
            "batch answers at the top level like Centrifugo"
        );
        let replies = v["replies"].as_array().expect("replies");
        assert_eq!(replies.len(), 11, "{v}");
        if !parallel {
            // Sequential: offsets follow the command order.
            assert_eq!(replies[0]["publish"]["offset"], 1);
            assert_eq!(
                replies[3]["broadcast"]["responses"][0]["result"]["offset"],
                2
            );
            assert_eq!(replies[6]["publish"]["offset"], 3);
        } else {
            assert!(replies[0]["publish"]["offset"].is_u64());
            assert!(replies[6]["publish"]["offset"].is_u64());
        }
        assert_eq!(replies[1]["error"]["code"], 102);
        assert_eq!(replies[2]["error"]["code"], 104);
        assert!(replies[3]["broadcast"]["responses"][1]["result"].is_object());
        assert_eq!(
            replies[4]["presence_stats"],
            json!({"num_clients": 0, "num_users": 0})
        );
        assert_eq!(replies[5]["info"]["nodes"][0]["uid"], s.node.uid());
        assert_eq!(
            replies[7]["error"]["code"], 107,
            "wrong field type fails alone"
        );
        assert_eq!(replies[8]["error"]["code"], 107);
        assert_eq!(replies[9]["error"]["code"], 107);
        assert_eq!(replies[10]["error"]["code"], 107);
        let h = api(s.addr, "history", json!({"channel": ch, "limit": -1}))
            .await
            .result();
        assert_eq!(offsets(&h), [1, 2, 3]);
    }
    let empty = api(s.addr, "batch", json!({"commands": []})).await;
    assert_eq!(empty.json(), json!({"replies": []}));
    let a = api(s.addr, "batch", json!({"commands": {"publish": {}}})).await;
    assert_eq!(a.status, 400, "commands must be a list: {a:?}");
    s.shutdown().await;
}

// ---------------------------------------------------- transport statuses

#[tokio::test]
async fn transport_level_statuses() {
    let s = start().await;
    let ok = r#"{"channel":"news","data":1}"#;

    let a = request(s.addr, "POST", "/api/publish", None, ok).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.code(), 101);
    let a = request(s.addr, "POST", "/api/publish", Some("wrong-key"), ok).await;
    assert_eq!(a.status, 401);
    let a = request(s.addr, "POST", "/api/publish", Some(&format!("{KEY}x")), ok).await;
    assert_eq!(a.status, 401);
    // The older Authorization form.
    let body = ok;
    let req = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: apikey {KEY}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(send_raw(s.addr, req.into_bytes()).await.status, 200);

    let a = request(s.addr, "POST", "/api/no_such_method", Some(KEY), ok).await;
    assert_eq!((a.status, a.code()), (404, 104));
    let a = request(s.addr, "POST", "/api/", Some(KEY), ok).await;
    assert_eq!(a.status, 404);

    let a = request(s.addr, "GET", "/api/publish", Some(KEY), "").await;
    assert_eq!(a.status, 405, "{a:?}");
    assert!(
        a.head.to_ascii_lowercase().contains("allow: post"),
        "{}",
        a.head
    );
    assert_eq!(
        request(s.addr, "PUT", "/api/info", Some(KEY), "{}")
            .await
            .status,
        405
    );

    for bad in [
        "{",
        "not json",
        "[1,2]",
        "\"text\"",
        "{} {}",
        r#"{"channel":5,"data":1}"#,
        r#"{"channel":"a","data":1,"tags":{"k":1}}"#,
    ] {
        let a = request(s.addr, "POST", "/api/publish", Some(KEY), bad).await;
        assert_eq!(a.status, 400, "{bad}: {a:?}");
        assert_eq!(a.code(), 107);
    }

    // Over the limit with a Content-Length: refused before reading.
    let big = format!(r#"{{"channel":"news","data":"{}"}}"#, "x".repeat(MAX_BODY));
    let a = request(s.addr, "POST", "/api/publish", Some(KEY), &big).await;
    assert_eq!(a.status, 413, "{a:?}");
    // Chunked, no length announced: refused while reading.
    let mut req = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let a = send_raw(s.addr, req).await;
    assert_eq!(a.status, 413, "{a:?}");
    // Just under the limit is fine.
    let fits = format!(
        r#"{{"channel":"news","data":"{}"}}"#,
        "x".repeat(MAX_BODY - 40)
    );
    assert!(fits.len() <= MAX_BODY);
    assert_eq!(
        request(s.addr, "POST", "/api/publish", Some(KEY), &fits)
            .await
            .status,
        200
    );

    // Nothing above published.
    let h = api(s.addr, "history", json!({"channel": "news", "limit": -1}))
        .await
        .result();
    assert_eq!(offsets(&h), [1, 2], "only the two accepted publishes");
    s.shutdown().await;
}

#[tokio::test]
async fn metrics_count_api_requests_and_health_answers() {
    let s = start().await;
    api(s.addr, "publish", json!({"channel": "m", "data": 1}))
        .await
        .result();
    api(s.addr, "publish", json!({"channel": "m", "data": 2}))
        .await
        .result();
    assert_eq!(
        api(s.addr, "publish", json!({"channel": "nope:m", "data": 1}))
            .await
            .code(),
        102
    );
    request(s.addr, "POST", "/api/publish", None, "{}").await;
    request(s.addr, "POST", "/api/whatever", Some(KEY), "{}").await;
    api(
        s.addr,
        "batch",
        json!({"commands": [{"publish": {"channel": "m", "data": 3}}, {"info": {}}]}),
    )
    .await;

    let m = get(s.addr, "/metrics").await;
    assert_eq!(m.status, 200);
    let text = m.body;
    for line in [
        "duplex_api_requests_total{method=\"publish\",status=\"200\"} 3",
        "duplex_api_requests_total{method=\"publish\",status=\"401\"} 1",
        "duplex_api_requests_total{method=\"unknown\",status=\"404\"} 1",
        "duplex_api_requests_total{method=\"batch\",status=\"200\"} 1",
        "duplex_api_commands_total{method=\"publish\"} 4",
        "duplex_api_commands_total{method=\"info\"} 1",
        "duplex_errors_total{code=\"102\"} 1",
        "duplex_publications_total{source=\"api\"} 3",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(s.node.metrics().api_requests_with("publish", 200), 3);

    let h = get(s.addr, "/health").await;
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.json()["status"], "ok");
    s.shutdown().await;
}

// ---------------------------------------------------- storage unavailable

/// A store whose every operation fails, as an unreachable database would.
struct DownStore;

impl hub::Store for DownStore {
    fn publish(
        &self,
        _: &hub::ChannelName,
        _: hub::Publication,
        _: &hub::PublishOptions,
    ) -> hub::BoxFuture<'static, hub::Result<hub::PublishResult>> {
        hub::ready(Err(hub::Error::storage("database unreachable")))
    }
    fn history(
        &self,
        _: &hub::ChannelName,
        _: hub::HistoryFilter,
    ) -> hub::BoxFuture<'static, hub::Result<hub::HistoryResult>> {
        hub::ready(Err(hub::Error::storage("database unreachable")))
    }
    fn remove_history(&self, _: &hub::ChannelName) -> hub::BoxFuture<'static, hub::Result<()>> {
        hub::ready(Err(hub::Error::storage("database unreachable")))
    }
}

#[tokio::test]
async fn storage_down_answers_503() {
    let config = config();
    let namespaces =
        hub::Namespaces::new(config.channel.clone(), config.namespaces.clone()).unwrap();
    let hub = hub::Hub::builder(namespaces)
        .store(Arc::new(DownStore))
        .build();
    let auth = duplex_server::auth::Auth::new(&config.token_key).unwrap();
    let node = duplex_server::node::Node::new(Arc::new(config), hub, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = duplex_server::http::App::new(node.clone());
    let task = tokio::spawn(app.serve(listener));

    let a = api(addr, "publish", json!({"channel": "x", "data": 1})).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.code(), 108);
    assert_eq!(a.json()["error"]["temporary"], true);
    assert_eq!(
        api(addr, "history", json!({"channel": "x", "limit": 1}))
            .await
            .status,
        503
    );
    assert_eq!(
        api(addr, "history_remove", json!({"channel": "x"}))
            .await
            .status,
        503
    );
    assert_eq!(
        api(
            addr,
            "broadcast",
            json!({"channels": ["x", "y"], "data": 1})
        )
        .await
        .status,
        503
    );
    // Some of it could be answered: 200 with per-part errors.
    let r = api(
        addr,
        "broadcast",
        json!({"channels": ["x", "nope:y"], "data": 1}),
    )
    .await
    .result();
    assert_eq!(r["responses"][0]["error"]["code"], 108);
    assert_eq!(r["responses"][1]["error"]["code"], 102);
    let a = api(
        addr,
        "batch",
        json!({"commands": [{"publish": {"channel": "x", "data": 1}}]}),
    )
    .await;
    assert_eq!(a.status, 503);
    let a = api(
        addr,
        "batch",
        json!({"commands": [{"publish": {"channel": "x", "data": 1}}, {"info": {}}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    // Meaning errors stay meaning errors; what does not need storage works.
    assert_eq!(
        api(addr, "publish", json!({"channel": "nope:x", "data": 1}))
            .await
            .code(),
        102
    );
    assert_eq!(
        api(addr, "presence_stats", json!({"channel": "x"}))
            .await
            .status,
        200
    );
    assert_eq!(get(addr, "/health").await.status, 503);

    node.stop_listening();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

// ------------------------------------ with a real WebSocket client (client.rs)

/// A client on `/connection/websocket` speaking Centrifugo's JSON protocol.
struct WsClient {
    ws: ws::WebSocket<ws::MaybeTlsStream>,
    next_id: u32,
    /// Messages received but not yet asked for.
    pending: Vec<Value>,
}

impl WsClient {
    async fn connect(addr: SocketAddr, user: &str) -> (WsClient, String) {
        let auth = duplex_server::auth::Auth::new(&TokenKey::Hmac(SECRET.into())).unwrap();
        let token = auth
            .sign_connect(user, Some(300), Some(&json!({"name": user})), &[])
            .unwrap();
        let (ws, _) = ws::connect(&format!("ws://{addr}/connection/websocket"))
            .await
            .expect("websocket");
        let mut c = WsClient {
            ws,
            next_id: 0,
            pending: Vec::new(),
        };
        let reply = c.call(json!({"connect": {"token": token}})).await;
        let client = reply["connect"]["client"]
            .as_str()
            .expect("client id")
            .to_owned();
        (c, client)
    }

    /// Sends a command and waits for the reply with its id.
    async fn call(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        self.ws
            .send(ws::Message::text(command.to_string()))
            .await
            .expect("send");
        self.wait(|m| m["id"] == id).await
    }

    /// Waits (up to 5s) for a message matching `want`.
    async fn wait(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&want) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.recv())
                .await
                .expect("message within 5s")
                .expect("connection open")
                .expect("valid frame");
            let ws::Message::Text(text) = msg else {
                continue;
            };
            for line in text.as_str().lines().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line).expect("JSON message");
                if want(&v) {
                    return v;
                }
                self.pending.push(v);
            }
        }
    }
}

/// Depends on the WebSocket client session (`src/client`, `src/session`):
/// connect, subscribe, publication pushes, server-side subscribe and
/// unsubscribe pushes, and closing with the code `disconnect` gives.
#[tokio::test]
async fn api_sees_websocket_subscribers_and_reaches_them() {
    let s = start().await;
    let (mut c, client) = WsClient::connect(s.addr, "42").await;
    let reply = c.call(json!({"subscribe": {"channel": "lobby"}})).await;
    assert!(reply.get("error").is_none(), "{reply}");

    let ch = api(s.addr, "channels", json!({"pattern": "lob*"}))
        .await
        .result();
    assert_eq!(ch, json!({"channels": {"lobby": {"num_clients": 1}}}));
    let p = api(s.addr, "presence", json!({"channel": "lobby"}))
        .await
        .result();
    assert_eq!(p["presence"][&client]["user"], "42");
    assert_eq!(p["presence"][&client]["conn_info"], json!({"name": "42"}));
    let info = api(s.addr, "info", json!({})).await.result();
    assert_eq!(info["nodes"][0]["num_clients"], 1);

    // A publication from the API reaches the subscriber, data untouched.
    let data = r#"{"z":1.50,"a":1}"#;
    let body = format!(r#"{{"channel":"lobby","data":{data}}}"#);
    request(s.addr, "POST", "/api/publish", Some(KEY), &body)
        .await
        .result();
    let push = c
        .wait(|m| m["push"]["channel"] == "lobby" && m["push"]["pub"].is_object())
        .await;
    assert_eq!(push["push"]["pub"]["data"], json!({"z": 1.5, "a": 1}));
    assert_eq!(push["push"]["pub"]["offset"], 1);

    // Server-side subscribe: the client is told with a subscribe push.
    api(
        s.addr,
        "subscribe",
        json!({"user": "42", "channel": "alerts"}),
    )
    .await
    .result();
    c.wait(|m| m["push"]["channel"] == "alerts" && m["push"]["subscribe"].is_object())
        .await;
    // Server-side unsubscribe.
    api(
        s.addr,
        "unsubscribe",
        json!({"user": "42", "channel": "lobby"}),
    )
    .await
    .result();
    c.wait(|m| m["push"]["channel"] == "lobby" && m["push"]["unsubscribe"].is_object())
        .await;
    let ch = api(s.addr, "channels", json!({})).await.result();
    assert!(ch["channels"].get("lobby").is_none(), "{ch}");

    // Disconnect: the connection closes with the code given.
    api(
        s.addr,
        "disconnect",
        json!({"user": "42", "code": 4501, "reason": "bye"}),
    )
    .await
    .result();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let close = loop {
        match tokio::time::timeout_at(deadline, c.ws.recv())
            .await
            .expect("close within 5s")
        {
            Some(Ok(ws::Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("close frame with a code");
    assert_eq!(u16::from(frame.code), 4501);
    s.shutdown().await;
}
