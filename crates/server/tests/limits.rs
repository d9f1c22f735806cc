//! Connection limits over real sockets: with `max_connections` open, the
//! next connection gets HTTP 503 with `Retry-After` and is closed promptly
//! (a WebSocket upgrade too, before upgrading); a WebSocket that closes
//! frees its place; `max_connections_per_ip` refuses a third connection
//! from one address while another address still gets in;
//! `client.max_commands_per_second` answers commands over the rate with
//! error 111 and lets them through again once the bucket refills.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use duplex_server::auth::Auth;
use duplex_server::config::{Config, StorageConfig, TokenKey};
use duplex_server::run::{self, Running};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "limits-secret";
/// A refused connection must be answered and closed well within this.
const PROMPT: Duration = Duration::from_secs(2);

async fn start(max_connections: usize, max_connections_per_ip: usize) -> Running {
    start_with(max_connections, max_connections_per_ip, |_| {}).await
}

async fn start_with(
    max_connections: usize,
    max_connections_per_ip: usize,
    edit: impl FnOnce(&mut Config),
) -> Running {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: "limits-key".into(),
        max_connections,
        max_connections_per_ip,
        shutdown_drain: Duration::from_secs(2),
        ..Default::default()
    };
    edit(&mut config);
    run::start(config).await.expect("start")
}

/// A WebSocket on `/connection/websocket` (the upgrade succeeded, so the
/// server holds the connection).
async fn websocket(addr: SocketAddr) -> WebSocket<MaybeTlsStream> {
    let (ws, _) = ws::connect(&format!("ws://{addr}/connection/websocket"))
        .await
        .expect("websocket upgrade");
    ws
}

/// The status line's code and the head of an answer, 0 and empty when the
/// server closed without answering.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` on a connection from `from` (any loopback address when
/// `None`) and reads until the server closes it, which must happen within
/// [`PROMPT`].
async fn exchange(addr: SocketAddr, from: Option<IpAddr>, request: &str) -> Answer {
    let mut stream = match from {
        None => TcpStream::connect(addr).await.expect("connect"),
        Some(ip) => {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.bind(SocketAddr::new(ip, 0)).expect("bind");
            socket.connect(addr).await.expect("connect")
        }
    };
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(PROMPT, stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "connection not closed within {PROMPT:?} (got {:?})",
        String::from_utf8_lossy(&buf)
    );
    assert!(started.elapsed() < PROMPT);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (head, body) = (head.to_owned(), body.to_owned());
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer { status, head, body }
}

fn health() -> String {
    "GET /health HTTP/1.1\r\nHost: duplex\r\nConnection: close\r\n\r\n".to_owned()
}

fn upgrade() -> String {
    "GET /connection/websocket HTTP/1.1\r\nHost: duplex\r\nUpgrade: websocket\r\n\
     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
     Sec-WebSocket-Version: 13\r\n\r\n"
        .to_owned()
}

fn has_header(head: &str, name: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

/// Retries `GET /health` until it answers 200 (a closed connection is
/// noticed by the server asynchronously).
async fn until_admitted(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = exchange(addr, None, &health()).await;
        if answer.status == 200 {
            return;
        }
        assert_eq!(answer.status, 503, "{}", answer.head);
        assert!(Instant::now() < deadline, "no place freed within 5s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn over_max_connections_is_503_and_a_freed_place_is_reused() {
    let server = start(3, 0).await;
    let addr = server.addr;
    // Below the limit, plain requests are served (and their connections go).
    assert_eq!(exchange(addr, None, &health()).await.status, 200);
    let mut held = vec![
        websocket(addr).await,
        websocket(addr).await,
        websocket(addr).await,
    ];

    let refused = exchange(addr, None, &health()).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(has_header(&refused.head, "retry-after"), "{}", refused.head);
    let refused = exchange(addr, None, &upgrade()).await;
    assert_eq!(
        refused.status, 503,
        "an upgrade over the limit: {}",
        refused.head
    );
    assert!(ws::connect(&format!("ws://{addr}/connection/websocket"))
        .await
        .is_err());

    // An upgraded WebSocket keeps its place until it closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(exchange(addr, None, &health()).await.status, 503);
    drop(held.pop());
    until_admitted(addr).await;
    held.push(websocket(addr).await);
    assert_eq!(exchange(addr, None, &health()).await.status, 503);

    drop(held);
    until_admitted(addr).await;
    // Every refusal above is counted.
    let metrics = exchange(
        addr,
        None,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let refused = metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("duplex_connections_refused_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 3), "{:?}", refused);
    server.shutdown().await;
}

#[tokio::test]
async fn over_max_connections_per_ip_is_503_for_that_address_only() {
    let server = start(0, 2).await;
    let addr = server.addr;
    let _held = [websocket(addr).await, websocket(addr).await];

    let refused = exchange(addr, Some([127, 0, 0, 1].into()), &health()).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(has_header(&refused.head, "retry-after"), "{}", refused.head);
    let refused = exchange(addr, Some([127, 0, 0, 1].into()), &upgrade()).await;
    assert_eq!(refused.status, 503, "{}", refused.head);

    // Another address (all of 127/8 is loopback on Linux) still gets in.
    let other = exchange(addr, Some([127, 0, 0, 2].into()), &health()).await;
    assert_eq!(other.status, 200, "{}", other.head);
    server.shutdown().await;
}

#[tokio::test]
async fn default_limits_let_many_connections_in() {
    let server = start(Config::default().max_connections, 0).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(websocket(addr).await);
    }
    assert_eq!(exchange(addr, None, &health()).await.status, 200);
    drop(held);
    server.shutdown().await;
}

/// Sends `frame` and collects replies until every id in `ids` is answered.
async fn replies(ws: &mut WebSocket<MaybeTlsStream>, frame: String, ids: usize) -> Vec<Value> {
    ws.send(Message::text(frame)).await.expect("send");
    let mut got = Vec::new();
    while got.len() < ids {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.recv())
            .await
            .expect("replies in time");
        let Some(Ok(Message::Text(text))) = message else {
            panic!("connection ended: {message:?}");
        };
        for line in text.as_str().split('\n') {
            let value: Value = serde_json::from_str(line).expect("JSON");
            if value.get("id").is_some() {
                got.push(value);
            }
        }
    }
    got
}

fn error_code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn commands_over_the_rate_get_error_111() {
    let server = start_with(0, 0, |c| c.client.max_commands_per_second = 5).await;
    let mut ws = websocket(server.addr).await;
    let token = Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect("alice", Some(3600), None, &[])
        .unwrap();
    let connect = json!({"id": 1, "connect": {"token": token}}).to_string();
    let reply = &replies(&mut ws, connect, 1).await[0];
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    // 20 RPCs at once: 5 get through (no RPC handler: 104), 15 are 111.
    let burst: Vec<String> = (2..22)
        .map(|id| json!({"id": id, "rpc": {"method": "m"}}).to_string())
        .collect();
    let got = replies(&mut ws, burst.join("\n"), 20).await;
    let through = got.iter().filter(|r| error_code(r) == 104).count();
    let limited = got.iter().filter(|r| error_code(r) == 111).count();
    assert_eq!((through, limited), (5, 15), "{got:?}");
    let first = got.iter().find(|r| error_code(r) == 111).unwrap();
    assert_eq!(first["error"]["message"], "too many requests", "{first}");

    // The bucket refills: after a second, commands go through again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = json!({"id": 30, "rpc": {"method": "m"}}).to_string();
    let reply = &replies(&mut ws, again, 1).await[0];
    assert_eq!(error_code(reply), 104, "{reply}");
    drop(ws);
    server.shutdown().await;
}

/// The same limit holds for Socket.IO events: a burst over the rate gets
/// 111 in the acks of the events over it.
#[tokio::test]
async fn socketio_events_over_the_rate_get_error_111() {
    let server = start_with(0, 0, |c| c.client.max_commands_per_second = 5).await;
    let token = Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect("bob", Some(3600), None, &[])
        .unwrap();
    let client = socketio_client::Client::builder(format!("http://{}", server.addr))
        .auth(json!({ "token": token }))
        .connect()
        .await
        .unwrap();
    let mut acks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        acks.spawn(async move {
            client
                .emit_with_ack(
                    "presence_stats",
                    &(json!({"channel": "x"}),),
                    Duration::from_secs(5),
                )
                .await
        });
    }
    let mut limited = 0;
    let mut through = 0;
    while let Some(ack) = acks.join_next().await {
        let data = ack.unwrap().unwrap();
        match data.args[0]["error"]["code"].as_u64() {
            Some(111) => limited += 1,
            _ => through += 1,
        }
    }
    assert_eq!((through, limited), (5, 15));
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_rate_limit_a_burst_goes_through() {
    let server = start(0, 0).await;
    let mut ws = websocket(server.addr).await;
    let token = Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect("bob", Some(3600), None, &[])
        .unwrap();
    let connect = json!({"id": 1, "connect": {"token": token}}).to_string();
    replies(&mut ws, connect, 1).await;
    let burst: Vec<String> = (2..202)
        .map(|id| json!({"id": id, "rpc": {"method": "m"}}).to_string())
        .collect();
    let got = replies(&mut ws, burst.join("\n"), 200).await;
    assert!(got.iter().all(|r| error_code(r) == 104), "{got:?}");
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_head_over_max_request_head_is_431() {
    let server = start_with(0, 0, |c| c.max_request_head = 16 * 1024).await;
    let padded = |bytes: usize| {
        format!(
            "GET /health HTTP/1.1\r\nHost: duplex\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "p".repeat(bytes)
        )
    };
    let fits = exchange(server.addr, None, &padded(10 * 1024)).await;
    assert_eq!(fits.status, 200, "{}", fits.head);
    let over = exchange(server.addr, None, &padded(20 * 1024)).await;
    assert_eq!(over.status, 431, "{}", over.head);
    // The server goes on serving.
    assert_eq!(exchange(server.addr, None, &health()).await.status, 200);
    server.shutdown().await;
}
