//! Bad input against one running server, over real sockets, while a
//! well-behaved subscriber on the same server keeps receiving a steady
//! stream of publications.
//!
//! Every fault gets its documented answer (docs/protocol.md, docs/api.md):
//! malformed JSON and commands before `connect` close with 3501, a field of
//! the wrong type is 107 on a connected client (3501 before connect), an
//! oversized frame (or a header announcing one) closes with 1009, invalid
//! UTF-8 in a text frame with 1007 and an unmasked frame with 1002, a
//! binary frame that is not UTF-8 with 3501, unknown and forbidden channels
//! are 102 / 103, a bad token closes with 3500 and an expired one is 109
//! (on Socket.IO both are a `connect_error` saying why); on the API a wrong
//! key is 401, an unknown method 404, a malformed body 400, an oversized
//! one 413; bytes that are not HTTP are refused without harm. Each is also
//! checked in
//! `/metrics` (`duplex_disconnects_total`, `duplex_errors_total`,
//! `duplex_api_requests_total`). Meanwhile the subscriber must see every
//! publication exactly once, in offset order, without a gap.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duplex_server::auth::{now_secs, Auth};
use duplex_server::config::{ClientConfig, Config, StorageConfig, TokenKey};
use duplex_server::run::{self, Running};
use hub::{NamespaceConfig, NamespaceOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "bad-input-secret";
const API_KEY: &str = "bad-input-key";
const MAX_MESSAGE: usize = 16 * 1024;
const MAX_BODY: usize = 4096;
const WAIT: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: API_KEY.into(),
        api_max_body: MAX_BODY,
        client: ClientConfig {
            max_message_size: MAX_MESSAGE,
            ..ClientConfig::default()
        },
        channel: NamespaceOptions {
            history_size: 100_000,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_subscribe_for_client: true,
            ..Default::default()
        },
        // Subscribing needs a subscription token.
        namespaces: vec![NamespaceConfig {
            name: "private".into(),
            options: NamespaceOptions::default(),
        }],
        shutdown_drain: Duration::from_secs(3),
        ..Default::default()
    }
}

fn token(user: &str) -> String {
    Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect(user, Some(3600), None, &[])
        .unwrap()
}

fn token_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

// ---- HTTP ----

/// An HTTP answer: status (0 when the server closed without one), head,
/// body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// Writes `request` as is (while reading, so that an early answer to a
/// large body is still seen) and reads the answer to the end.
async fn http_raw(addr: SocketAddr, request: Vec<u8>) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    // A reset after the answer is fine: what arrived is what counts.
    let read = tokio::time::timeout(WAIT, rd.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "no answer within {WAIT:?}");
    drop(writer);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: body.to_owned(),
    }
}

/// `POST /api/<method>` with `key` and `body`.
async fn api(addr: SocketAddr, method: &str, key: &str, body: &str) -> Answer {
    let request = format!(
        "POST /api/{method} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_raw(addr, request.into_bytes()).await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_raw(addr, request.into_bytes()).await
}

fn error_code_of(answer: &Answer) -> u64 {
    let value: Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
    value["error"]["code"].as_u64().unwrap_or(0)
}

/// The `/metrics` samples, by `name{labels}`.
async fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let answer = get(addr, "/metrics").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Waits until every `(sample, by)` has grown by `by` since `before`
/// (the counters are bumped as the connection ends, which may be just
/// after the client saw the close); fails on overshoot or timeout.
async fn expect_counted(addr: SocketAddr, before: &HashMap<String, f64>, deltas: &[(&str, f64)]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metrics(addr).await;
        let grown: Vec<(&str, f64)> = deltas
            .iter()
            .map(|(key, _)| (*key, sample(&now, key) - sample(before, key)))
            .collect();
        for ((key, want), (_, got)) in deltas.iter().zip(&grown) {
            assert!(got <= want, "{key} grew by {got}, expected {want}");
        }
        if deltas
            .iter()
            .zip(&grown)
            .all(|((_, want), (_, got))| got == want)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics did not count it: {grown:?}, expected {deltas:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- the plain WebSocket ----

/// A client speaking the JSON protocol by hand.
struct Client {
    ws: WebSocket<MaybeTlsStream>,
    next_id: u32,
    inbox: VecDeque<Value>,
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
            close: None,
        }
    }

    async fn connected(addr: SocketAddr, user: &str) -> Client {
        let mut c = Client::open(addr).await;
        let reply = c.call("connect", json!({"token": token(user)})).await;
        assert!(reply["connect"]["client"].is_string(), "{reply}");
        c
    }

    async fn send(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    async fn send_raw(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    async fn read_frame(&mut self) -> bool {
        let message = tokio::time::timeout(WAIT, self.ws.recv())
            .await
            .expect("server answers in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        let _ = self.ws.send(Message::text("{}")).await;
                    } else {
                        self.inbox.push_back(value);
                    }
                }
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.close = frame.map(|f| (f.code.as_u16(), f.reason.as_str().to_owned()));
                while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.ws.recv()).await {}
                false
            }
            Some(Ok(_)) => true,
            Some(Err(_)) | None => false,
        }
    }

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

    /// Reads until the server closes; the close code.
    async fn close_code(&mut self) -> Option<u16> {
        while self.close.is_none() {
            if !self.read_frame().await {
                break;
            }
        }
        self.close.as_ref().map(|c| c.0)
    }
}

fn error_code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

/// A raw WebSocket over TCP, for frames the client library will not send.
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn open(addr: SocketAddr) -> RawWs {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        RawWs { tcp, buf }
    }

    /// Sends one masked frame with `opcode` and `payload`.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// Sends bytes as they are.
    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server: (opcode, payload); `None` when the
    /// connection ended.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(n) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("server answers in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the server's close frame; its code.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some((opcode, payload)) = self.frame().await {
            if opcode == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
        None
    }
}

// ---- the well-behaved pair ----

/// Publishes `{"n": i}` into `feed` through the API, one after another,
/// until `stop`; then the final `"end"`. Returns how many numbered ones.
async fn publisher(addr: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({"channel": "feed", "data": {"n": n}}).to_string();
        let answer = api(addr, "publish", API_KEY, &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let body = json!({"channel": "feed", "data": "end"}).to_string();
    assert_eq!(api(addr, "publish", API_KEY, &body).await.status, 200);
    n
}

/// Reads `feed` until `"end"`; the (offset, data) of every publication.
async fn subscriber(mut c: Client) -> (Client, Vec<(u64, Value)>) {
    let mut seen = Vec::new();
    loop {
        while let Some(v) = c.inbox.pop_front() {
            let push = &v["push"];
            assert_eq!(push["channel"], "feed", "unexpected: {v}");
            let data = push["pub"]["data"].clone();
            let offset = push["pub"]["offset"].as_u64().unwrap_or(0);
            let end = data == "end";
            seen.push((offset, data));
            if end {
                return (c, seen);
            }
        }
        assert!(c.read_frame().await, "subscriber closed: {:?}", c.close);
    }
}

// ---- the faults ----

async fn malformed_json(addr: SocketAddr) {
    let before = metrics(addr).await;
    // On a connected client...
    let mut c = Client::connected(addr, "u").await;
    c.send_raw("{\"id\":2,\"subscribe\":").await;
    assert_eq!(c.close_code().await, Some(3501), "truncated JSON");
    // ...and as the very first message.
    let mut c = Client::open(addr).await;
    c.send_raw("this is not JSON").await;
    assert_eq!(c.close_code().await, Some(3501), "not JSON");
    // A command without an id.
    let mut c = Client::connected(addr, "u").await;
    c.send_raw(r#"{"subscribe":{"channel":"feed"}}"#).await;
    assert_eq!(c.close_code().await, Some(3501), "no id");
    expect_counted(
        addr,
        &before,
        &[(r#"duplex_disconnects_total{code="3501"}"#, 3.0)],
    )
    .await;
}

async fn wrong_field_type(addr: SocketAddr) {
    let before = metrics(addr).await;
    // Connected: that command fails with 107, the connection lives on.
    let mut c = Client::connected(addr, "u").await;
    let reply = c.call("subscribe", json!({"channel": 5})).await;
    assert_eq!(error_code(&reply), 107, "{reply}");
    let reply = c
        .call("history", json!({"channel": "feed", "limit": "ten"}))
        .await;
    assert_eq!(error_code(&reply), 107, "{reply}");
    let reply = c.call("unsubscribe", json!({"channel": "feed"})).await;
    assert_eq!(reply["unsubscribe"], json!({}), "{reply}");
    // In `connect` (before the connection is up): 3501.
    let mut c = Client::open(addr).await;
    c.send_raw(r#"{"id":1,"connect":{"token":5}}"#).await;
    assert_eq!(c.close_code().await, Some(3501));
    expect_counted(
        addr,
        &before,
        &[
            (r#"duplex_errors_total{code="107"}"#, 2.0),
            (r#"duplex_disconnects_total{code="3501"}"#, 1.0),
        ],
    )
    .await;
}

async fn commands_before_connect(addr: SocketAddr) {
    let before = metrics(addr).await;
    for command in [
        json!({"id": 1, "subscribe": {"channel": "feed"}}),
        json!({"id": 1, "publish": {"channel": "feed", "data": "spoof"}}),
        json!({"id": 1, "history": {"channel": "feed", "limit": -1}}),
    ] {
        let mut c = Client::open(addr).await;
        c.send_raw(&command.to_string()).await;
        assert_eq!(c.close_code().await, Some(3501), "{command}");
        assert!(c.inbox.is_empty(), "answered: {:?}", c.inbox);
    }
    expect_counted(
        addr,
        &before,
        &[(r#"duplex_disconnects_total{code="3501"}"#, 3.0)],
    )
    .await;
}

async fn oversized_frame(addr: SocketAddr) {
    let before = metrics(addr).await;
    let mut c = Client::connected(addr, "u").await;
    let big = json!({"id": 2, "publish": {"channel": "feed", "data": "x".repeat(MAX_MESSAGE)}});
    c.send_raw(&big.to_string()).await;
    assert_eq!(c.close_code().await, Some(1009));
    // Before connect as well.
    let mut c = Client::open(addr).await;
    c.send_raw(&"[".repeat(MAX_MESSAGE + 1)).await;
    assert_eq!(c.close_code().await, Some(1009));
    // A header announcing 1 GiB is refused at once, before any payload.
    let mut raw = RawWs::open(addr).await;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send_bytes(&header).await;
    assert_eq!(raw.close_code().await, Some(1009));
    expect_counted(
        addr,
        &before,
        &[(r#"duplex_disconnects_total{code="1009"}"#, 3.0)],
    )
    .await;
}

async fn channel_errors(addr: SocketAddr) {
    let before = metrics(addr).await;
    let mut c = Client::connected(addr, "u").await;
    let reply = c.call("subscribe", json!({"channel": "nope:x"})).await;
    assert_eq!(error_code(&reply), 102, "{reply}");
    let reply = c.call("subscribe", json!({"channel": "private:x"})).await;
    assert_eq!(error_code(&reply), 103, "{reply}");
    let reply = c
        .call("subscribe", json!({"channel": "notifications#someone"}))
        .await;
    assert_eq!(error_code(&reply), 103, "{reply}");
    // The connection is still good.
    let reply = c.call("subscribe", json!({"channel": "other"})).await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    // Through the API an unknown namespace is 200 with error 102.
    let answer = api(addr, "publish", API_KEY, r#"{"channel":"nope:x","data":1}"#).await;
    assert_eq!((answer.status, error_code_of(&answer)), (200, 102));
    expect_counted(
        addr,
        &before,
        &[
            (r#"duplex_errors_total{code="102"}"#, 2.0),
            (r#"duplex_errors_total{code="103"}"#, 2.0),
        ],
    )
    .await;
}

async fn tokens(addr: SocketAddr) {
    let before = metrics(addr).await;
    let forged = token_with(&json!({"sub": "u"}), "not-the-secret");
    let mut c = Client::open(addr).await;
    c.send_raw(&json!({"id": 1, "connect": {"token": &forged}}).to_string())
        .await;
    assert_eq!(c.close_code().await, Some(3500));
    assert_eq!(
        c.close.as_ref().map(|c| c.1.as_str()),
        Some("invalid token")
    );

    let expired = token_with(&json!({"sub": "u", "exp": now_secs() - 10}), SECRET);
    let mut c = Client::open(addr).await;
    let reply = c.call("connect", json!({"token": &expired})).await;
    assert_eq!(error_code(&reply), 109, "{reply}");
    // After the failed connect the connection is unusable: 3501.
    c.send_raw(r#"{"id":2,"subscribe":{"channel":"feed"}}"#)
        .await;
    assert_eq!(c.close_code().await, Some(3501));
    // Socket.IO: refused with a `connect_error` that says why.
    for (token, message) in [(forged, "invalid token"), (expired, "token expired")] {
        let refused = socketio_client::Client::builder(format!("http://{addr}"))
            .reconnection(false)
            .timeout(WAIT)
            .auth(json!({ "token": token }))
            .connect()
            .await;
        match refused {
            Err(socketio_client::Error::ConnectRefused { message: got, .. }) => {
                assert_eq!(got, message)
            }
            Err(other) => panic!("refused with {other}"),
            Ok(_) => panic!("connected with a bad token"),
        }
    }
    expect_counted(
        addr,
        &before,
        &[
            // One from each transport: a forged token is a 3500 disconnect
            // (a refused Socket.IO connect counts like a WebSocket close),
            // an expired one a 109 error.
            (r#"duplex_disconnects_total{code="3500"}"#, 2.0),
            (r#"duplex_errors_total{code="109"}"#, 2.0),
            (r#"duplex_disconnects_total{code="3501"}"#, 1.0),
        ],
    )
    .await;
}

async fn invalid_utf8(addr: SocketAddr) {
    let before = metrics(addr).await;
    // A text frame that is not UTF-8: the WebSocket layer closes with 1007.
    let mut raw = RawWs::open(addr).await;
    let connect = json!({"id": 1, "connect": {"token": token("u")}}).to_string();
    raw.send_frame(0x1, connect.as_bytes()).await;
    let (opcode, reply) = raw.frame().await.expect("connect reply");
    assert_eq!(opcode, 0x1);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    raw.send_frame(
        0x1,
        b"{\"id\":2,\"publish\":{\"channel\":\"feed\",\"data\":\"\xff\xfe\"}}",
    )
    .await;
    assert_eq!(raw.close_code().await, Some(1007));
    // Before connect too.
    let mut raw = RawWs::open(addr).await;
    raw.send_frame(0x1, b"\xc3\x28").await;
    assert_eq!(raw.close_code().await, Some(1007));
    // An unmasked client frame breaks RFC 6455: 1002.
    let mut raw = RawWs::open(addr).await;
    raw.send_bytes(b"\x81\x02{}").await;
    assert_eq!(raw.close_code().await, Some(1002));
    // A binary frame that is not UTF-8: the JSON protocol only, 3501.
    let mut c = Client::connected(addr, "u").await;
    c.send(Message::binary(&b"\x0a\x04\x08\x01\xff\xfe"[..]))
        .await;
    assert_eq!(c.close_code().await, Some(3501));
    expect_counted(
        addr,
        &before,
        &[
            (r#"duplex_disconnects_total{code="1007"}"#, 2.0),
            (r#"duplex_disconnects_total{code="1002"}"#, 1.0),
            (r#"duplex_disconnects_total{code="3501"}"#, 1.0),
        ],
    )
    .await;
}

async fn api_faults(addr: SocketAddr) {
    let before = metrics(addr).await;
    let publish = r#"{"channel":"feed","data":"intruder"}"#;

    let answer = api(addr, "publish", "wrong-key", publish).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (401, 101),
        "{answer:?}"
    );
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{publish}",
        publish.len()
    );
    let answer = http_raw(addr, request.into_bytes()).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (401, 101),
        "no key: {answer:?}"
    );

    let answer = api(addr, "no_such_method", API_KEY, "{}").await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (404, 104),
        "{answer:?}"
    );

    let answer = api(addr, "publish", API_KEY, r#"{"channel":"feed","data":"#).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (400, 107),
        "{answer:?}"
    );
    let answer = api(addr, "publish", API_KEY, r#"{"channel":5,"data":1}"#).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (400, 107),
        "{answer:?}"
    );
    // A body that is not UTF-8.
    let body: &[u8] = b"{\"channel\":\"feed\",\"data\":\"\xff\xfe\xfd\"}";
    let mut request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-API-Key: {API_KEY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let answer = http_raw(addr, request).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (400, 107),
        "not UTF-8: {answer:?}"
    );
    // Not a POST.
    let answer = get(addr, "/api/publish").await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (405, 104),
        "{answer:?}"
    );

    // Too large, said up front...
    let big = json!({"channel": "feed", "data": "x".repeat(MAX_BODY)}).to_string();
    let answer = api(addr, "publish", API_KEY, &big).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (413, 107),
        "{answer:?}"
    );
    // ...and found out while reading a chunked body.
    let mut request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-API-Key: {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = http_raw(addr, request).await;
    assert_eq!(
        (answer.status, error_code_of(&answer)),
        (413, 107),
        "{answer:?}"
    );

    expect_counted(
        addr,
        &before,
        &[
            (
                r#"duplex_api_requests_total{method="publish",status="401"}"#,
                2.0,
            ),
            (
                r#"duplex_api_requests_total{method="unknown",status="404"}"#,
                1.0,
            ),
            (
                r#"duplex_api_requests_total{method="publish",status="400"}"#,
                3.0,
            ),
            (
                r#"duplex_api_requests_total{method="publish",status="405"}"#,
                1.0,
            ),
            (
                r#"duplex_api_requests_total{method="publish",status="413"}"#,
                2.0,
            ),
        ],
    )
    .await;
    // Nothing of that reached the channel (checked by the subscriber too).
}

async fn garbage_instead_of_http(addr: SocketAddr) {
    let inputs: [&[u8]; 4] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"\x00\xff\x00\xff\x00\xff\r\n\r\n",
    ];
    for input in inputs {
        let answer = http_raw(addr, input.to_vec()).await;
        // Refused: a 400 (or 505), or just the connection closed.
        assert!(
            matches!(answer.status, 0 | 400 | 505),
            "{input:?}: {answer:?}"
        );
    }
    // A WebSocket upgrade that is not one, on the client path.
    let request =
        format!("GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = http_raw(addr, request.into_bytes()).await;
    assert!(
        (400..500).contains(&answer.status),
        "plain GET on the WebSocket path: {answer:?}"
    );
    // The server is fine.
    let health = get(addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_counted_and_harmless() {
    let server: Running = run::start(config()).await.expect("server starts");
    let addr = server.addr;

    let mut watcher = Client::connected(addr, "watcher").await;
    let reply = watcher.call("subscribe", json!({"channel": "feed"})).await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    let reading = tokio::spawn(subscriber(watcher));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = tokio::spawn(publisher(addr, stop.clone()));

    malformed_json(addr).await;
    wrong_field_type(addr).await;
    commands_before_connect(addr).await;
    oversized_frame(addr).await;
    channel_errors(addr).await;
    tokens(addr).await;
    invalid_utf8(addr).await;
    api_faults(addr).await;
    garbage_instead_of_http(addr).await;

    stop.store(true, Ordering::Relaxed);
    let published = tokio::time::timeout(WAIT, publishing)
        .await
        .expect("publisher done")
        .unwrap();
    let (mut watcher, seen) = tokio::time::timeout(WAIT, reading)
        .await
        .expect("subscriber done")
        .unwrap();
    assert!(published > 0);
    let mut expected: Vec<(u64, Value)> = (1..=published).map(|i| (i, json!({"n": i}))).collect();
    expected.push((published + 1, json!("end")));
    assert_eq!(seen.len(), expected.len(), "publications lost or repeated");
    assert_eq!(seen, expected, "every publication, once, in order");
    // Still connected and answering.
    let reply = watcher.call("unsubscribe", json!({"channel": "x"})).await;
    assert_eq!(reply["unsubscribe"], json!({}), "{reply}");
    assert_eq!(server.node.registry().user_clients("watcher").len(), 1);
    let m = metrics(addr).await;
    assert_eq!(
        sample(&m, "duplex_clients"),
        1.0,
        "only the watcher is left"
    );
    server.shutdown().await;
}
