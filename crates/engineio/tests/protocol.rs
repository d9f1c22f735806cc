//! Engine.IO v4 behaviour over real HTTP and WebSocket connections: the
//! handshake, polling, heartbeats, the upgrade and the error answers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use engineio::{CloseReason, Engine, EngineConfig, Handler, Socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws::{Message, Utf8Bytes};

struct Echo;

impl Handler for Echo {
    fn on_open(&self, _: &Socket) {}
    fn on_message(&self, socket: &Socket, text: Utf8Bytes) {
        socket.send_text(&text);
    }
    fn on_binary(&self, socket: &Socket, data: Bytes) {
        socket.send_binary(data);
    }
    fn on_close(&self, _: &Socket, _: CloseReason) {}
}

async fn start(config: EngineConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Engine::new(config, Echo).serve(listener));
    addr
}

fn fast() -> EngineConfig {
    EngineConfig::default().heartbeat(Duration::from_millis(300), Duration::from_millis(200))
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers[9..12].parse().unwrap();
    (status, headers.to_owned(), body.to_owned())
}

async fn handshake(addr: SocketAddr) -> (String, serde_json::Value) {
    let (status, _, body) = http(addr, "GET", "/engine.io/?EIO=4&transport=polling", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with('0'), "{body}");
    let open: serde_json::Value = serde_json::from_str(&body[1..]).unwrap();
    (open["sid"].as_str().unwrap().to_owned(), open)
}

fn poll_path(sid: &str) -> String {
    format!("/engine.io/?EIO=4&transport=polling&sid={sid}")
}

#[tokio::test]
async fn polling_handshake_has_the_expected_fields() {
    let addr = start(fast()).await;
    let (sid, open) = handshake(addr).await;
    assert_eq!(sid.len(), 20);
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn bad_requests_get_the_protocol_error_codes() {
    let addr = start(fast()).await;
    let cases = [
        ("GET", "/engine.io/?EIO=3&transport=polling", 400, 5),
        ("GET", "/engine.io/?transport=polling", 400, 5),
        ("GET", "/engine.io/?EIO=4&transport=carrier-pigeon", 400, 0),
        ("GET", "/engine.io/?EIO=4", 400, 0),
        (
            "GET",
            "/engine.io/?EIO=4&transport=polling&sid=nope",
            400,
            1,
        ),
        ("POST", "/engine.io/?EIO=4&transport=polling", 400, 2),
    ];
    for (method, path, status, code) in cases {
        let (got, _, body) = http(addr, method, path, b"").await;
        assert_eq!(got, status, "{method} {path}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["code"], code, "{method} {path}: {body}");
        assert!(err["message"].is_string());
    }
}

#[tokio::test]
async fn polling_echo_text_and_binary() {
    let addr = start(fast()).await;
    let (sid, _) = handshake(addr).await;
    let (status, _, body) = http(
        addr,
        "POST",
        &poll_path(&sid),
        b"4hello\x1e4\xe2\x82\xac\x1ebAQIDBA==",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 200);
    assert_eq!(body, "4hello\x1e4€\x1ebAQIDBA==");
}

#[tokio::test]
async fn heartbeat_pings_and_times_out_without_pong() {
    let addr = start(fast()).await;
    let (sid, _) = handshake(addr).await;
    // The poll is released by the ping after ~300 ms.
    let started = std::time::Instant::now();
    let (_, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(body, "2");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let (_, _, ok) = http(addr, "POST", &poll_path(&sid), b"3").await;
    assert_eq!(ok, "ok");
    // Answered: the session lives on to the next ping.
    let (_, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(body, "2");
    // Not answered: closed after the timeout.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"code\":1"), "{body}");
}

#[tokio::test]
async fn concurrent_polls_close_the_session() {
    let addr = start(EngineConfig::default()).await;
    let (sid, _) = handshake(addr).await;
    let path = poll_path(&sid);
    let first = tokio::spawn({
        let path = path.clone();
        async move { http(addr, "GET", &path, b"").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = http(addr, "GET", &path, b"").await;
    assert_eq!(status, 400);
    // The first poll is released with a close packet.
    let (status, _, body) = first.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "1"));
    let (status, _, _) = http(addr, "GET", &path, b"").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn oversized_post_is_413_and_closes() {
    let addr = start(fast().max_payload(100)).await;
    let (sid, _) = handshake(addr).await;
    let body = format!("4{}", "x".repeat(200));
    let (status, _, _) = http(addr, "POST", &poll_path(&sid), body.as_bytes()).await;
    assert_eq!(status, 413);
    let (status, _, _) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bad_packet_in_a_post_closes_the_session() {
    let addr = start(fast()).await;
    let (sid, _) = handshake(addr).await;
    let (status, _, _) = http(addr, "POST", &poll_path(&sid), b"9nonsense").await;
    assert_eq!(status, 400);
    let (status, _, _) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn websocket_session_echo_and_heartbeat() {
    let addr = start(fast()).await;
    let (mut c, _) = ws::connect(&format!("ws://{addr}/engine.io/?EIO=4&transport=websocket"))
        .await
        .unwrap();
    let Some(Ok(Message::Text(open))) = c.recv().await else {
        panic!("no open packet")
    };
    assert!(open.starts_with("0{\"sid\":"), "{open}");
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!([]));
    c.send(Message::text("4hi")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("4hi"));
    c.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        c.recv().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    // Ping arrives; answer it once, then stop answering: the server closes.
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("2"));
    c.send(Message::text("3")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("2"));
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match c.recv().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "server did not close after a missed pong");
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let addr = start(EngineConfig::default()).await;
    let (sid, _) = handshake(addr).await;
    // A poll waits while the upgrade happens.
    let pending = tokio::spawn({
        let path = poll_path(&sid);
        async move { http(addr, "GET", &path, b"").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket&sid={sid}");
    let (mut c, _) = ws::connect(&url).await.unwrap();
    c.send(Message::text("2probe")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("3probe"));
    // The pending poll is released with a noop.
    let (status, _, body) = pending.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "6"));
    c.send(Message::text("5")).await.unwrap();
    c.send(Message::text("4upgraded")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("4upgraded"));
    // Polling is over for this session.
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn websocket_with_unknown_sid_is_refused() {
    let addr = start(EngineConfig::default()).await;
    let err = ws::connect(&format!(
        "ws://{addr}/engine.io/?EIO=4&transport=websocket&sid=nope"
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn cors_and_allow_request() {
    let config = EngineConfig::default()
        .cors(engineio::Cors {
            origins: vec!["https://app.example".into()],
            credentials: true,
        })
        .allow_request(|parts| {
            if parts.headers.contains_key("x-deny") {
                Err(engineio::EngineError::Forbidden)
            } else {
                Ok(())
            }
        });
    let addr = start(config).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    let lower = raw.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: https://app.example"),
        "{raw}"
    );
    assert!(
        lower.contains("access-control-allow-credentials: true"),
        "{raw}"
    );
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Deny: 1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    assert!(raw.contains("\"code\":4"), "{raw}");
}

/// Keeps the last opened socket so a test can send from the server side.
#[derive(Default, Clone)]
struct Keep(std::sync::Arc<std::sync::Mutex<Option<Socket>>>);

impl Handler for Keep {
    fn on_open(&self, socket: &Socket) {
        *self.0.lock().unwrap() = Some(socket.clone());
    }
    fn on_message(&self, _: &Socket, _: Utf8Bytes) {}
    fn on_binary(&self, _: &Socket, _: Bytes) {}
    fn on_close(&self, _: &Socket, _: CloseReason) {}
}

#[tokio::test]
async fn volatile_packets_drop_and_a_full_queue_closes_a_slow_session() {
    let keep = Keep::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Engine::new(EngineConfig::default(), keep.clone()).serve(listener));
    let (sid, _) = handshake(addr).await;
    let socket = keep.0.lock().unwrap().clone().unwrap();
    // The handshake request is kept (compactly) and rebuilt on demand.
    let request = socket.request();
    assert_eq!(request.uri.query(), Some("EIO=4&transport=polling"));
    assert_eq!(request.headers.get("host").unwrap(), "x");
    assert!(request.extensions.get::<std::net::SocketAddr>().is_some());
    // Nobody polls: volatile packets pile up to a small backlog, then drop.
    let queued = (0..40)
        .filter(|i| socket.send_volatile(engineio::text_frame(&format!("v{i}"))))
        .count();
    assert_eq!(queued, 16);
    assert!(!socket.is_closed());
    let (_, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(body.split('\x1e').count(), 16);
    // Ordinary packets are never dropped: a client that stops reading is
    // closed once its queue is full.
    let sent = (0..10_000).take_while(|_| socket.send_text("x")).count();
    assert_eq!(sent, EngineConfig::default().max_queued_packets);
    assert!(socket.is_closed());
}

#[tokio::test]
async fn a_second_concurrent_upgrade_is_refused() {
    let addr = start(EngineConfig::default()).await;
    let (sid, _) = handshake(addr).await;
    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket&sid={sid}");
    let (mut first, _) = ws::connect(&url).await.unwrap();
    first.send(Message::text("2probe")).await.unwrap();
    assert_eq!(
        first.recv().await.unwrap().unwrap(),
        Message::text("3probe")
    );
    let (mut second, _) = ws::connect(&url).await.unwrap();
    second.send(Message::text("2probe")).await.unwrap();
    // The second socket is closed instead of answered.
    assert!(matches!(
        second.recv().await,
        Some(Ok(Message::Close(_))) | None
    ));
    // The first one completes the upgrade and carries the session.
    first.send(Message::text("5")).await.unwrap();
    first.send(Message::text("4still here")).await.unwrap();
    loop {
        match first.recv().await.unwrap().unwrap() {
            Message::Text(t) if t.as_str() == "6" => continue,
            m => {
                assert_eq!(m, Message::text("4still here"));
                break;
            }
        }
    }
}

/// Sends a last message and closes the session when told "bye".
struct Farewell;

impl Handler for Farewell {
    fn on_open(&self, _: &Socket) {}
    fn on_message(&self, socket: &Socket, text: Utf8Bytes) {
        if text.as_str() == "bye" {
            socket.send_text("farewell");
            socket.close();
        }
    }
    fn on_binary(&self, _: &Socket, _: Bytes) {}
    fn on_close(&self, _: &Socket, _: CloseReason) {}
}

/// A server-side close of a polling session with no GET waiting keeps the
/// session for the client's next polls, which get what was queued before
/// the close and then the close packet (not "Session ID unknown").
#[tokio::test]
async fn server_close_waits_for_the_next_poll() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Engine::new(fast(), Farewell).serve(listener));
    let (sid, _) = handshake(addr).await;
    let (status, _, body) = http(addr, "POST", &poll_path(&sid), b"4bye").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // What was queued before the close first, the close packet on the
    // poll after (in one payload, socket.io-client would let the close
    // overtake a DISCONNECT).
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!((status, body.as_str()), (200, "4farewell"));
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!((status, body.as_str()), (200, "1"));
    // After that last poll the session is gone.
    let (status, _, body) = http(addr, "GET", &poll_path(&sid), b"").await;
    assert_eq!(status, 400, "{body}");
    // A POST to a closed session kept for its last poll is refused too.
    let (sid, _) = handshake(addr).await;
    http(addr, "POST", &poll_path(&sid), b"4bye").await;
    let (status, _, _) = http(addr, "POST", &poll_path(&sid), b"4hello").await;
    assert_eq!(status, 400);
}
