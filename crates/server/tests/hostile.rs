//! The hostile-input battery, against the real `duplex` binary over raw
//! TCP: every byte of every hostile request is written by hand, and each
//! case asserts the answer docs/protocol.md ("Hostile input") documents —
//! an HTTP status, or the code in the server's WebSocket close frame
//! followed by the end of the TCP stream.
//!
//! Covered: bytes that are not HTTP, a request head that never ends, bad
//! WebSocket handshakes; after an upgrade, frames that break RFC 6455
//! (unmasked, reserved bits and opcodes, fragmented or long control
//! frames, invalid close codes, invalid UTF-8 split across fragments,
//! absurd 64-bit lengths, a message over `client.max_message_size`, a
//! compressed frame — a deflate bomb — on a connection without
//! permessage-deflate); Socket.IO binary events with wrong attachment
//! counts and placeholders, malformed Engine.IO polling bodies, JSON nested
//! 10,000 deep on both client protocols and the server API, and an API
//! body over `api_max_body`.
//!
//! Meanwhile a well-behaved client, subscribed on `/connection/websocket`,
//! must receive every publication a publisher sends through the HTTP API
//! (20 per second) exactly once, in order, each within a generous
//! liveness bound. At the end the process must be alive, must not have
//! panicked, and its resident memory (VmRSS, and the peak VmHWM) must not
//! have grown by more than [`MAX_RSS_GROWTH_KIB`].

mod hostile_support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostile_support::{
    deflate_bomb, ensure, err, frame, get, header, header_len64, http, op, post, Closed, Outcome,
    RawWs, Response, Server,
};
use serde_json::Value;

const API_KEY: &str = "hostile-key";
/// `client.max_message_size` and `api_max_body` of the server under test.
const LIMIT: usize = 64 * 1024;
const CONFIG: &str = r#"
api_max_body = "64KiB"

[client]
max_message_size = "64KiB"
"#;

/// How long a publication may take from the API call to the subscriber:
/// a liveness bound (the server keeps serving well-behaved clients while
/// the battery runs), not a speed target — generous because CI machines
/// are shared and this is a debug build.
const LIVENESS: Duration = Duration::from_secs(5);
/// Publications per second sent through the API during the battery.
const PUBLISH_RATE: u32 = 20;
/// Most the server's resident memory may grow over the battery.
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;
/// Most time one case may take (the half-sent request head waits for the
/// server's 10 s header timeout).
const CASE_TIMEOUT: Duration = Duration::from_secs(40);

type Case = Pin<Box<dyn Future<Output = Outcome> + Send>>;

fn case(f: impl Future<Output = Outcome> + Send + 'static) -> Case {
    Box::pin(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_battery() {
    let mut server = Server::start(
        CONFIG,
        &[
            "--storage",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            API_KEY,
            "--token-secret",
            "hostile-secret",
            "--dev",
        ],
    )
    .await;
    let addr = server.addr;

    // The well-behaved subscriber and the steady publisher.
    let received = Arc::new(Mutex::new(Vec::new()));
    let stop_sub = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let subscriber = tokio::spawn(subscriber(
        addr,
        received.clone(),
        stop_sub.clone(),
        ready_tx,
    ));
    ready_rx
        .await
        .expect("subscriber task")
        .expect("subscriber connects and subscribes");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stop_pub = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn(publisher(addr, sent.clone(), stop_pub.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rss_before = server.proc_kib("VmRSS");
    let hwm_before = server.proc_kib("VmHWM");

    // The battery: every case at once (the slowest waits for the header
    // timeout), each bounded in time so that a hang is a failure.
    let mut set = tokio::task::JoinSet::new();
    for (name, fut) in cases(addr) {
        set.spawn(async move {
            let outcome = match tokio::time::timeout(CASE_TIMEOUT, fut).await {
                Ok(o) => o,
                Err(_) => Err(format!("no answer within {CASE_TIMEOUT:?} (hang)")),
            };
            (name, outcome)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        results.push(joined.expect("case task"));
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));

    // Keep publishing a little after the battery, then check the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_pub.store(true, Ordering::SeqCst);
    let published = publisher.await.expect("publisher task");
    let total = sent.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything arriving after the count was reached would be a duplicate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_sub.store(true, Ordering::SeqCst);
    let sub_result = subscriber.await.expect("subscriber task");

    let rss_after = server.proc_kib("VmRSS");
    let hwm_after = server.proc_kib("VmHWM");
    let alive = server.alive();
    let stderr = server.stderr_text();

    println!("hostile-input battery against {addr}:");
    for (name, outcome) in &results {
        match outcome {
            Ok(seen) => println!("  ok   {name}: {seen}"),
            Err(why) => println!("  FAIL {name}: {why}"),
        }
    }
    println!(
        "  memory: VmRSS {rss_before} -> {rss_after} KiB, VmHWM {hwm_before} -> {hwm_after} KiB"
    );

    let failed: Vec<_> = results.iter().filter(|(_, o)| o.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed: {failed:#?}\nserver stderr:\n{stderr}",
        failed.len()
    );
    assert!(alive, "the server died; stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "the server panicked; stderr:\n{stderr}"
    );
    let published = published.expect("every API publish succeeds");
    sub_result.expect("the subscriber stays connected");
    let slowest = check_stream(&sent.lock().unwrap(), &received.lock().unwrap());
    println!(
        "  stream: {published} publications, all received once, in order; \
         slowest {slowest:?} (bound {LIVENESS:?})"
    );
    assert!(
        published >= 20,
        "the publisher ran too briefly ({published}) to test anything"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < MAX_RSS_GROWTH_KIB,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(
        hwm_after.saturating_sub(hwm_before) < MAX_RSS_GROWTH_KIB,
        "peak VmHWM grew from {hwm_before} to {hwm_after} KiB"
    );
}

/// Every publication `0..sent.len()` arrived exactly once, in order (with
/// increasing offsets), within [`LIVENESS`] of its API call. Returns the
/// longest time one took.
fn check_stream(sent: &[Instant], received: &[(u64, u64, Instant)]) -> Duration {
    let numbers: Vec<u64> = received.iter().map(|r| r.0).collect();
    let expected: Vec<u64> = (0..sent.len() as u64).collect();
    assert_eq!(
        numbers, expected,
        "publications missing, duplicated or out of order"
    );
    for pair in received.windows(2) {
        assert!(pair[1].1 > pair[0].1, "offsets not increasing: {pair:?}");
    }
    let mut slowest = Duration::ZERO;
    for (n, _, at) in received {
        let took = at.saturating_duration_since(sent[*n as usize]);
        assert!(
            took <= LIVENESS,
            "publication {n} took {took:?} to arrive (bound {LIVENESS:?})"
        );
        slowest = slowest.max(took);
    }
    slowest
}

// ------------------------------------------------------- the good clients

/// Connects on `/connection/websocket` (anonymous, `--dev`), subscribes to
/// `live`, then records `(data.n, offset, arrival)` of each publication
/// until `stop`. Answers the server's pings.
async fn subscriber(
    addr: SocketAddr,
    received: Arc<Mutex<Vec<(u64, u64, Instant)>>>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> Result<(), String> {
    let setup = async {
        let mut ws = RawWs::open(addr, "/connection/websocket", &[]).await?;
        ws.send_text(r#"{"id":1,"connect":{}}"#).await?;
        let reply = ws.next_text().await?;
        ensure(reply.contains(r#""connect""#), || {
            format!("connect: {reply}")
        })?;
        ws.send_text(r#"{"id":2,"subscribe":{"channel":"live"}}"#)
            .await?;
        let reply = ws.next_text().await?;
        ensure(reply.contains(r#""subscribe""#), || {
            format!("subscribe: {reply}")
        })?;
        Ok::<_, String>(ws)
    };
    let mut ws = match setup.await {
        Ok(ws) => {
            let _ = ready.send(Ok(()));
            ws
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let frame = tokio::select! {
            f = ws.next_text() => f?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let at = Instant::now();
        for line in frame.lines() {
            let v: Value = serde_json::from_str(line).map_err(err("push JSON"))?;
            if v.as_object().is_some_and(|o| o.is_empty()) {
                ws.send_text("{}").await?; // pong
                continue;
            }
            let Some(publication) = v.pointer("/push/pub") else {
                return Err(format!("unexpected message: {line}"));
            };
            let n = publication
                .pointer("/data/n")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("publication without n: {line}"))?;
            let offset = publication
                .get("offset")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            received.lock().unwrap().push((n, offset, at));
        }
    }
    Ok(())
}

/// Publishes `{"n": i}` to `live` through the API, [`PUBLISH_RATE`] times a
/// second, until `stop`; records when each call started.
async fn publisher(
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / PUBLISH_RATE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let body = format!(r#"{{"channel":"live","data":{{"n":{n}}}}}"#);
        sent.lock().unwrap().push(Instant::now());
        let r = http(addr, &post("/api/publish", &[&api_key()], body.as_bytes())).await?;
        ensure(r.status == 200 && r.text().contains("\"result\""), || {
            format!("publish {n}: {} {}", r.status, r.text())
        })?;
        n += 1;
    }
    Ok(n)
}

fn api_key() -> String {
    format!("X-API-Key: {API_KEY}")
}

// ---------------------------------------------------------------- cases

fn cases(addr: SocketAddr) -> Vec<(String, Case)> {
    let mut v: Vec<(String, Case)> = Vec::new();
    let mut add = |name: &str, c: Case| v.push((name.to_owned(), c));

    // HTTP and the opening handshake.
    add("http: garbage instead of HTTP", case(garbage(addr)));
    add("http: request head never finished", case(half_head(addr)));
    add(
        "handshake: bad Sec-WebSocket-Key",
        case(handshake(
            addr,
            "/connection/websocket",
            Some("not-a-key!"),
            "13",
            400,
        )),
    );
    add(
        "handshake: Sec-WebSocket-Key of 4 bytes",
        case(handshake(
            addr,
            "/connection/websocket",
            Some("AAAAAA=="),
            "13",
            400,
        )),
    );
    add(
        "handshake: missing Sec-WebSocket-Key",
        case(handshake(addr, "/connection/websocket", None, "13", 400)),
    );
    add(
        "handshake: Sec-WebSocket-Version 8",
        case(handshake(
            addr,
            "/connection/websocket",
            Some(KEY),
            "8",
            426,
        )),
    );
    add(
        "handshake: socket.io, Sec-WebSocket-Version 8",
        case(handshake(
            addr,
            "/socket.io/?EIO=4&transport=websocket",
            Some(KEY),
            "8",
            400,
        )),
    );

    // RFC 6455 framing, after a good upgrade.
    let payload = b"{\"id\":1,\"connect\":{}}";
    add(
        "ws: unmasked client frame",
        case(ws_close(
            addr,
            frame(op::FIN | op::TEXT, payload, false),
            1002,
        )),
    );
    for (bit, name) in [(op::RSV1, "RSV1"), (op::RSV2, "RSV2"), (op::RSV3, "RSV3")] {
        add(
            &format!("ws: {name} set without an extension"),
            case(ws_close(
                addr,
                frame(op::FIN | bit | op::TEXT, payload, true),
                1002,
            )),
        );
    }
    for code in (0x3..=0x7).chain(0xB..=0xF) {
        add(
            &format!("ws: reserved opcode {code:#x}"),
            case(ws_close(addr, frame(op::FIN | code, b"x", true), 1002)),
        );
    }
    add(
        "ws: fragmented ping (FIN clear)",
        case(ws_close(addr, frame(op::PING, b"x", true), 1002)),
    );
    add(
        "ws: ping of 126 bytes",
        case(ws_close(
            addr,
            frame(op::FIN | op::PING, &[b'p'; 126], true),
            1002,
        )),
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        add(
            &format!("ws: close code {code}"),
            case(ws_close(
                addr,
                frame(op::FIN | op::CLOSE, &code.to_be_bytes(), true),
                1002,
            )),
        );
    }
    add(
        "ws: close payload of 1 byte",
        case(ws_close(addr, frame(op::FIN | op::CLOSE, &[3], true), 1002)),
    );
    add(
        "ws: invalid UTF-8 split across fragments",
        case(ws_close(
            addr,
            [
                frame(op::TEXT, b"{\"id\":1,\"a\":\"\xE2", true),
                frame(op::FIN | op::CONT, b"\x28\xA1\"}", true),
            ]
            .concat(),
            1007,
        )),
    );
    add(
        "ws: 64-bit length 2^63",
        case(ws_close(
            addr,
            header_len64(op::FIN | op::BINARY, 1 << 63),
            1002,
        )),
    );
    add(
        "ws: 64-bit length 2^64-1",
        case(ws_close(
            addr,
            header_len64(op::FIN | op::BINARY, u64::MAX),
            1002,
        )),
    );
    add(
        "ws: 64-bit length 2^63-1",
        case(ws_close(
            addr,
            header_len64(op::FIN | op::BINARY, (1 << 63) - 1),
            1009,
        )),
    );
    add(
        "ws: message over client.max_message_size (one frame)",
        case(ws_close(
            addr,
            header(op::FIN | op::TEXT, LIMIT as u64 + 1, true),
            1009,
        )),
    );
    add(
        "ws: message over client.max_message_size (fragments)",
        case(ws_close(
            addr,
            [
                frame(op::TEXT, &[b' '; 40 * 1024], true),
                header(op::FIN | op::CONT, 40 * 1024, true),
            ]
            .concat(),
            1009,
        )),
    );
    add(
        "ws: deflate bomb, permessage-deflate offered (not negotiated)",
        case(deflate_bomb_case(addr)),
    );

    // Socket.IO.
    add(
        "sio ws: binary event declaring 2 attachments, sending 1",
        case(sio_ws_close(addr, fewer_attachments())),
    );
    add(
        "sio ws: binary event declaring 11 attachments (limit 10)",
        case(sio_ws_close(
            addr,
            vec![text_msg(
                r#"4511-["publish",{"_placeholder":true,"num":0}]"#,
            )],
        )),
    );
    add(
        "sio ws: binary event declaring 1,000,000 attachments",
        case(sio_ws_close(
            addr,
            vec![text_msg(
                r#"451000000-["publish",{"_placeholder":true,"num":0}]"#,
            )],
        )),
    );
    add(
        "sio ws: binary event sending more attachments than declared",
        case(sio_extra_attachment(addr)),
    );
    add(
        "sio ws: placeholder num out of range",
        case(sio_placeholder_out_of_range(addr)),
    );
    add(
        "sio ws: event JSON nested 10,000 deep",
        case(sio_ws_close(
            addr,
            vec![text_msg(&format!(
                r#"42["publish",{{"channel":"deep","data":{}}}]"#,
                nested(10_000)
            ))],
        )),
    );
    add(
        "sio polling: EIO v3 body `5:hello`",
        case(polling_v3_body(addr)),
    );
    add(
        "sio polling: lone record separator",
        case(polling_bad_body(addr, b"\x1e")),
    );
    add(
        "sio polling: unknown packet type",
        case(polling_bad_body(addr, b"9hello")),
    );
    add(
        "sio polling: binary event declaring 2 attachments, sending 1",
        case(polling_fewer_attachments(addr)),
    );

    // Centrifugo protocol and the server API.
    add(
        "centrifugo: command JSON nested 10,000 deep",
        case(centrifugo_deep(addr)),
    );
    add("api: publish data nested 10,000 deep", case(api_deep(addr)));
    add(
        "api: body over api_max_body (Content-Length)",
        case(api_status(addr, api_oversized(), false, 413)),
    );
    add(
        "api: body over api_max_body (chunked)",
        case(api_status(addr, api_oversized(), true, 413)),
    );
    v
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// `[[[...]]]`, `depth` deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A publish body of `api_max_body` + 1 bytes that is valid JSON.
fn api_oversized() -> Vec<u8> {
    let prefix = r#"{"channel":"big","data":""#;
    let filler = LIMIT + 1 - prefix.len() - 2;
    format!("{prefix}{}\"}}", "x".repeat(filler)).into_bytes()
}

/// Sends bytes that are not HTTP; the server must answer 400 and close.
async fn garbage(addr: SocketAddr) -> Outcome {
    let bytes = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\x00\xff\r\n\r\n";
    let r = http(addr, bytes).await?;
    ensure(r.status == 400, || format!("status {}", r.status))?;
    Ok(format!("{} and closed", r.status))
}

/// Sends a request head without its final empty line and waits: the
/// server must close the connection after its header timeout (10 s).
async fn half_head(addr: SocketAddr) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(err("connect"))?;
    s.write_all(
        b"GET /connection/websocket HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
    )
    .await
    .map_err(err("write"))?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    ensure(read.is_ok(), || "still open after 30 s".into())?;
    ensure(took >= Duration::from_secs(5), || {
        format!("closed after only {took:?}")
    })?;
    let status = if answer.is_empty() {
        "no answer".to_owned()
    } else {
        let r = hostile_support::parse_response(&answer)?;
        ensure(r.status == 408, || format!("status {}", r.status))?;
        r.status.to_string()
    };
    Ok(format!(
        "{status}, closed after {:.1} s",
        took.as_secs_f64()
    ))
}

/// An upgrade request with `key` (absent if `None`) and `version`; the
/// server must answer `want` (426 with `Sec-WebSocket-Version: 13`).
async fn handshake(
    addr: SocketAddr,
    path: &'static str,
    key: Option<&'static str>,
    version: &'static str,
    want: u16,
) -> Outcome {
    let key = key
        .map(|k| format!("Sec-WebSocket-Key: {k}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         {key}Sec-WebSocket-Version: {version}\r\nConnection: close\r\n\r\n"
    );
    // `Connection` twice is allowed: the values are combined.
    let r: Response = http(addr, req.as_bytes()).await?;
    ensure(r.status == want, || {
        format!("status {} {}", r.status, r.text())
    })?;
    if want == 426 {
        ensure(r.header("sec-websocket-version") == Some("13"), || {
            format!("426 without Sec-WebSocket-Version: 13: {}", r.head)
        })?;
        return Ok("426 with Sec-WebSocket-Version: 13".into());
    }
    Ok(format!("{} {}", r.status, r.text().trim()))
}

/// Upgrades `/connection/websocket`, sends `bytes`, expects close `want`.
async fn ws_close(addr: SocketAddr, bytes: Vec<u8>, want: u16) -> Outcome {
    let mut ws = RawWs::open(addr, "/connection/websocket", &[]).await?;
    ws.send(&bytes).await?;
    let closed = ws.expect_close().await?;
    ensure(closed == Closed::Frame(Some(want)), || {
        format!("{closed}, want {want}")
    })?;
    Ok(closed.to_string())
}

/// Offers permessage-deflate (the server does not negotiate it), then
/// sends a compressed text frame of 1.7 MB that would inflate to 256 MiB.
async fn deflate_bomb_case(addr: SocketAddr) -> Outcome {
    let ws = RawWs::open(
        addr,
        "/connection/websocket",
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
    )
    .await?;
    ensure(!ws.head.contains("sec-websocket-extensions"), || {
        format!("the server negotiated an extension: {}", ws.head)
    })?;
    let bomb = deflate_bomb((256 << 20) / 258);
    let bomb_len = bomb.len();
    let wire = frame(op::FIN | op::RSV1 | op::TEXT, &bomb, true);
    // Written alongside the read: the server may close before it has all.
    let (mut read, mut write) = ws.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = write.write_all(&wire).await;
        write
    });
    let mut buf = [0u8; 4];
    let got = {
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(hostile_support::WAIT, read.read_exact(&mut buf)).await
    };
    let write = writer.await.map_err(err("writer"))?;
    ensure(matches!(got, Ok(Ok(_))), || {
        format!("no close frame: {got:?}")
    })?;
    ensure(buf[0] == op::FIN | op::CLOSE && buf[1] >= 2, || {
        format!("not a close frame: {buf:?}")
    })?;
    let code = u16::from_be_bytes([buf[2], buf[3]]);
    ensure(code == 1002, || format!("close {code}, want 1002"))?;
    drop(read.reunite(write));
    Ok(format!(
        "no extension in the 101; {bomb_len}-byte bomb (256 MiB inflated): close {code}"
    ))
}

/// A masked text frame.
fn text_msg(s: &str) -> Vec<u8> {
    hostile_support::frame(op::FIN | op::TEXT, s.as_bytes(), true)
}

fn binary_msg(b: &[u8]) -> Vec<u8> {
    hostile_support::frame(op::FIN | op::BINARY, b, true)
}

fn fewer_attachments() -> Vec<Vec<u8>> {
    vec![
        text_msg(r#"452-["publish",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
        binary_msg(&[1, 2, 3]),
        text_msg(r#"42["publish",{"channel":"x","data":{}}]"#),
    ]
}

/// A Socket.IO client on WebSocket, connected to namespace `/`.
async fn sio_ws(addr: SocketAddr) -> Result<RawWs, String> {
    let mut ws = RawWs::open(addr, "/socket.io/?EIO=4&transport=websocket", &[]).await?;
    let open = ws.next_text().await?;
    ensure(open.starts_with("0{"), || format!("open packet: {open}"))?;
    ws.send_text("40").await?;
    loop {
        let t = ws.next_text().await?;
        if t.starts_with("40") {
            return Ok(ws);
        }
        ensure(t == "2", || format!("before the connect reply: {t}"))?;
        ws.send_text("3").await?;
    }
}

/// The next Socket.IO packet that is not an Engine.IO ping.
async fn sio_next(ws: &mut RawWs) -> Result<String, String> {
    loop {
        let t = ws.next_text().await?;
        if t != "2" {
            return Ok(t);
        }
        ws.send_text("3").await?;
    }
}

/// Sends `messages` on a connected Socket.IO WebSocket; the server must end
/// the session: a close frame, then the end of the stream.
async fn sio_ws_close(addr: SocketAddr, messages: Vec<Vec<u8>>) -> Outcome {
    let mut ws = sio_ws(addr).await?;
    for m in &messages {
        ws.send(m).await?;
    }
    let closed = ws.expect_close().await?;
    Ok(format!("session closed ({closed})"))
}

/// One attachment more than declared: the event is answered (107: channels
/// carry JSON), the extra attachment ends the session.
async fn sio_extra_attachment(addr: SocketAddr) -> Outcome {
    let mut ws = sio_ws(addr).await?;
    ws.send(&text_msg(
        r#"451-7["publish",{"channel":"x","data":{"_placeholder":true,"num":0}}]"#,
    ))
    .await?;
    ws.send(&binary_msg(&[1])).await?;
    let ack = sio_next(&mut ws).await?;
    ensure(ack.starts_with("437[") && ack.contains("107"), || {
        format!("ack: {ack}")
    })?;
    ws.send(&binary_msg(&[2])).await?;
    let closed = ws.expect_close().await?;
    Ok(format!(
        "declared part acked 107, extra attachment: session closed ({closed})"
    ))
}

/// A placeholder pointing past the attachments: answered 107, and the
/// session goes on.
async fn sio_placeholder_out_of_range(addr: SocketAddr) -> Outcome {
    let mut ws = sio_ws(addr).await?;
    ws.send(&text_msg(
        r#"451-8["publish",{"channel":"x","data":{"_placeholder":true,"num":7}}]"#,
    ))
    .await?;
    ws.send(&binary_msg(&[1])).await?;
    let ack = sio_next(&mut ws).await?;
    ensure(ack.starts_with("438[") && ack.contains("107"), || {
        format!("ack: {ack}")
    })?;
    ws.send_text(r#"429["presence_stats",{"channel":"x"}]"#)
        .await?;
    let ack = sio_next(&mut ws).await?;
    ensure(ack.starts_with("439[") && !ack.contains("error"), || {
        format!("the session did not go on: {ack}")
    })?;
    Ok("acked 107, session goes on".into())
}

const POLLING: &str = "/socket.io/?EIO=4&transport=polling";

/// Opens a polling session; returns its sid.
async fn polling_open(addr: SocketAddr) -> Result<String, String> {
    let r = http(addr, &get(POLLING)).await?;
    let body = r.text();
    ensure(r.status == 200 && body.starts_with("0{"), || {
        format!("open: {} {body}", r.status)
    })?;
    let v: Value = serde_json::from_str(&body[1..]).map_err(err("open JSON"))?;
    v.get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no sid in {body}"))
}

async fn polling_post(addr: SocketAddr, sid: &str, body: &[u8]) -> Result<Response, String> {
    let path = format!("{POLLING}&sid={sid}");
    http(
        addr,
        &post(&path, &["Content-Type: text/plain;charset=UTF-8"], body),
    )
    .await
}

async fn polling_get(addr: SocketAddr, sid: &str) -> Result<Response, String> {
    http(addr, &get(&format!("{POLLING}&sid={sid}"))).await
}

/// `5:hello` (an Engine.IO v3 length-prefixed payload) reads in v4 as an
/// `upgrade` packet with data, which a polling session ignores, as the
/// reference server does: 200 `ok`, and the session goes on.
async fn polling_v3_body(addr: SocketAddr) -> Outcome {
    let sid = polling_open(addr).await?;
    let r = polling_post(addr, &sid, b"5:hello").await?;
    ensure(r.status == 200 && r.text() == "ok", || {
        format!("5:hello: {} {}", r.status, r.text())
    })?;
    let r = polling_post(addr, &sid, b"40").await?;
    ensure(r.status == 200, || format!("POST 40: {}", r.status))?;
    let r = polling_get(addr, &sid).await?;
    ensure(r.status == 200 && r.text().starts_with("40{"), || {
        format!("the session did not go on: {} {}", r.status, r.text())
    })?;
    Ok("200 ok (ignored), session goes on".into())
}

/// A body Engine.IO cannot decode: 400 with code 3, and the session is
/// gone (its next poll is 400 code 1).
async fn polling_bad_body(addr: SocketAddr, body: &'static [u8]) -> Outcome {
    let sid = polling_open(addr).await?;
    let r = polling_post(addr, &sid, body).await?;
    ensure(r.status == 400 && r.text().contains(r#""code":3"#), || {
        format!("POST: {} {}", r.status, r.text())
    })?;
    let r = polling_get(addr, &sid).await?;
    ensure(r.status == 400 && r.text().contains(r#""code":1"#), || {
        format!("session still there: {} {}", r.status, r.text())
    })?;
    Ok("400 code 3, session closed (next poll: 400 code 1)".into())
}

/// A binary event missing an attachment, over polling: the body decodes
/// (200), the Socket.IO layer ends the session (close packet on the next
/// poll).
async fn polling_fewer_attachments(addr: SocketAddr) -> Outcome {
    let sid = polling_open(addr).await?;
    let r = polling_post(addr, &sid, b"40").await?;
    ensure(r.status == 200, || format!("POST 40: {}", r.status))?;
    let r = polling_get(addr, &sid).await?;
    ensure(r.text().starts_with("40{"), || {
        format!("connect: {}", r.text())
    })?;
    let body =
        b"452-[\"publish\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]\
                 \x1ebAQID\x1e42[\"publish\",{}]";
    let r = polling_post(addr, &sid, body).await?;
    ensure(r.status == 200, || {
        format!("POST: {} {}", r.status, r.text())
    })?;
    for _ in 0..3 {
        let r = polling_get(addr, &sid).await?;
        let text = r.text();
        if r.status == 200 && text.split('\x1e').any(|p| p == "1") {
            return Ok("200, session closed (close packet on the next poll)".into());
        }
        ensure(r.status == 200, || format!("poll: {} {text}", r.status))?;
    }
    Err("no close packet".into())
}

/// A command nested 10,000 deep on a connected client: close 3501.
async fn centrifugo_deep(addr: SocketAddr) -> Outcome {
    let mut ws = RawWs::open(addr, "/connection/websocket", &[]).await?;
    ws.send_text(r#"{"id":1,"connect":{}}"#).await?;
    let reply = ws.next_text().await?;
    ensure(reply.contains(r#""connect""#), || {
        format!("connect: {reply}")
    })?;
    ws.send_text(&format!(
        r#"{{"id":2,"publish":{{"channel":"deep","data":{}}}}}"#,
        nested(10_000)
    ))
    .await?;
    let closed = ws.expect_close().await?;
    ensure(closed == Closed::Frame(Some(3501)), || {
        format!("{closed}, want 3501")
    })?;
    Ok(closed.to_string())
}

/// Publication data nested 10,000 deep through the API: refused with 400
/// and error 107, as client commands deeper than 128 are (3501), so no
/// subscriber is handed what a recursive JSON parser would choke on. Data
/// 100 deep is accepted and delivered verbatim to a subscriber of either
/// protocol.
async fn api_deep(addr: SocketAddr) -> Outcome {
    let too_deep = format!(r#"{{"channel":"deep-api","data":{}}}"#, nested(10_000));
    let r = http(
        addr,
        &post("/api/publish", &[&api_key()], too_deep.as_bytes()),
    )
    .await?;
    ensure(r.status == 400 && r.text().contains("107"), || {
        format!("publish 10,000 deep: {} {}", r.status, r.text())
    })?;
    let deep = nested(100);
    let mut plain = RawWs::open(addr, "/connection/websocket", &[]).await?;
    plain.send_text(r#"{"id":1,"connect":{}}"#).await?;
    plain.next_text().await?;
    plain
        .send_text(r#"{"id":2,"subscribe":{"channel":"deep-api"}}"#)
        .await?;
    let reply = plain.next_text().await?;
    ensure(reply.contains(r#""subscribe""#), || {
        format!("subscribe: {reply}")
    })?;
    let mut sio = sio_ws(addr).await?;
    sio.send_text(r#"421["subscribe",{"channel":"deep-api","join_leave":false}]"#)
        .await?;
    let ack = sio_next(&mut sio).await?;
    ensure(ack.starts_with("431[") && !ack.contains("error"), || {
        format!("socket.io subscribe: {ack}")
    })?;
    let body = format!(r#"{{"channel":"deep-api","data":{deep}}}"#);
    let r = http(addr, &post("/api/publish", &[&api_key()], body.as_bytes())).await?;
    ensure(r.status == 200 && r.text().contains("\"result\""), || {
        format!("publish: {} {}", r.status, r.text())
    })?;
    let push = plain.next_text().await?;
    ensure(push.contains(&format!(r#""data":{deep}"#)), || {
        format!("plain subscriber got {} bytes: {:.80}", push.len(), push)
    })?;
    let mut event = sio_next(&mut sio).await?;
    while event.starts_with(r#"42["join","#) {
        event = sio_next(&mut sio).await?;
    }
    ensure(
        event.starts_with(r#"42["publication","#) && event.contains(&format!(r#""data":{deep}"#)),
        || {
            format!(
                "socket.io subscriber got {} bytes: {:.80}",
                event.len(),
                event
            )
        },
    )?;
    Ok(
        "10,000 deep: 400 (107); 100 deep: 200, delivered verbatim to both protocols' subscribers"
            .into(),
    )
}

/// POSTs `body` to `/api/publish` (chunked if asked); expects `want`.
async fn api_status(addr: SocketAddr, body: Vec<u8>, chunked: bool, want: u16) -> Outcome {
    let req = if chunked {
        let mut req = format!(
            "POST /api/publish HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{}\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            api_key()
        )
        .into_bytes();
        for chunk in body.chunks(8192) {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        req
    } else {
        post("/api/publish", &[&api_key()], &body)
    };
    let r = http(addr, &req).await?;
    ensure(r.status == want, || {
        format!("status {} {}", r.status, r.text())
    })?;
    Ok(format!("{} {}", r.status, r.text().trim()))
}
