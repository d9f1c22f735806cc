//! The client against the real server (`duplex-socketio`), in process, on
//! 127.0.0.1 with an ephemeral port; plus a hand-written Engine.IO peer
//! that stops pinging, for the dead-connection timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use socketio::{Socket, SocketIo, SocketIoConfig};
use socketio_client::{placeholder, Client, ClientBuilder, Data, DisconnectReason, Error};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const WAIT: Duration = Duration::from_secs(5);

/// A server with the end-to-end server's events, plus:
/// - `drop-me`: closes the Engine.IO session (the client should reconnect);
/// - `kick-me`: disconnects the socket from its namespace (no reconnect);
/// - `request-binary-ack`: asks the client for an ack (500 ms timeout) and
///   emits `binary-ack-result` with the ack's arguments and attachments.
///
/// Server-side disconnect reasons are reported on `disconnects`.
struct TestServer {
    url: String,
    io: SocketIo,
    disconnects: UnboundedReceiver<String>,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

fn handlers(io: SocketIo, socket: Socket, disconnects: UnboundedSender<String>) {
    let _ = socket.emit("welcome", &(socket.id(), socket.auth()));
    socket.on_disconnect(move |_, reason| {
        let _ = disconnects.send(reason.to_string());
    });
    socket.on("echo", |socket, data, _| {
        let _ = socket.emit_binary("echo", &data.args, data.binary);
    });
    socket.on("echo-ack", |_, data, ack| {
        if let Some(ack) = ack {
            let _ = ack.send_binary(&data.args, data.binary);
        }
    });
    socket.on("no-answer", |_, _, _| {});
    socket.on("request-ack", |socket, _, _| {
        tokio::spawn(async move {
            let result = socket
                .emit_with_ack("server-ack", &("question",), Duration::from_millis(500))
                .await;
            let report = match result {
                Ok(data) => json!({ "ok": data.args }),
                Err(e) => json!({ "error": e.to_string() }),
            };
            let _ = socket.emit("ack-result", &(report,));
        });
    });
    socket.on("request-binary-ack", |socket, _, _| {
        tokio::spawn(async move {
            let result = socket
                .emit_with_ack(
                    "server-binary-ack",
                    &("bytes?",),
                    Duration::from_millis(500),
                )
                .await;
            match result {
                Ok(data) => {
                    let _ = socket.emit_binary("binary-ack-result", &data.args, data.binary);
                }
                Err(e) => {
                    let _ = socket.emit("binary-ack-result", &(e.to_string(),));
                }
            }
        });
    });
    socket.on("join", |socket, data, ack| {
        if let Some(room) = data.args.first().and_then(|v| v.as_str()) {
            socket.join(room);
        }
        if let Some(ack) = ack {
            let _ = ack.send(&(true,));
        }
    });
    let ns = socket.namespace().to_owned();
    socket.on("to-room", move |_, data, _| {
        let (Some(room), Some(payload)) =
            (data.args.first().and_then(|v| v.as_str()), data.args.get(1))
        else {
            return;
        };
        if let Some(op) = io.of(&ns) {
            let _ = op.to(room).emit("room-message", &(payload,));
        }
    });
    socket.on("drop-me", |socket, _, _| socket.engine().close());
    socket.on("kick-me", |socket, _, _| socket.disconnect());
}

async fn start_server(config: SocketIoConfig) -> TestServer {
    let io = SocketIo::new(config);
    let (tx, disconnects) = unbounded_channel();
    for name in ["/", "/custom"] {
        let (io2, tx) = (io.clone(), tx.clone());
        io.namespace(name, move |socket| {
            handlers(io2.clone(), socket, tx.clone())
        });
    }
    let io2 = io.clone();
    io.namespace("/private", move |socket| {
        handlers(io2.clone(), socket, tx.clone())
    })
    .middleware(|socket| async move {
        if socket.auth().get("token").and_then(|t| t.as_str()) == Some("secret") {
            Ok(())
        } else {
            Err("invalid token".to_owned())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn({
        let io = io.clone();
        async move {
            let _ = io.serve(listener).await;
        }
    });
    TestServer {
        url: format!("http://{addr}"),
        io,
        disconnects,
        serve,
    }
}

async fn server() -> TestServer {
    start_server(SocketIoConfig::default()).await
}

type Events = UnboundedReceiver<(String, Data)>;

/// Registers handlers that forward `events` to the returned channel.
fn record(mut builder: ClientBuilder, events: &[&str]) -> (ClientBuilder, Events) {
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

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting")
        .expect("channel closed")
}

async fn expect(rx: &mut Events, event: &str) -> Data {
    let (name, data) = next(rx).await;
    assert_eq!(name, event, "unexpected event {name}: {data:?}");
    data
}

async fn nothing<T: std::fmt::Debug>(rx: &mut UnboundedReceiver<T>, within: Duration) {
    // A closed channel (its handler dropped) is nothing too.
    if let Ok(Some(got)) = tokio::time::timeout(within, rx.recv()).await {
        panic!("expected nothing, got {got:?}");
    }
}

#[tokio::test]
async fn connects_to_the_main_namespace() {
    let srv = server().await;
    let (builder, mut events) = record(Client::builder(&srv.url), &["welcome"]);
    let client = builder.connect().await.unwrap();
    let id = client.id().expect("connected");
    assert!(client.is_connected());
    assert_eq!(client.namespace(), "/");
    let welcome = expect(&mut events, "welcome").await;
    assert_eq!(welcome.args[0], json!(id));
    // No auth sent: the server sees `{}` (as the reference server does) or
    // `null`.
    assert!(
        welcome.args[1] == json!({}) || welcome.args[1].is_null(),
        "{welcome:?}"
    );

    client.disconnect().await;
    assert!(!client.is_connected());
    assert_eq!(client.id(), None);
    assert!(matches!(client.emit("echo", &()), Err(Error::Disconnected)));
    // Disconnecting twice is harmless.
    client.disconnect().await;
}

#[tokio::test]
async fn connects_to_a_custom_namespace_with_auth() {
    let srv = server().await;
    let auth = json!({ "token": "abc", "n": 1 });
    let (builder, mut events) = record(
        Client::builder(&srv.url)
            .namespace("/custom")
            .auth(auth.clone()),
        &["welcome"],
    );
    let client = builder.connect().await.unwrap();
    assert_eq!(client.namespace(), "/custom");
    let welcome = expect(&mut events, "welcome").await;
    assert_eq!(welcome.args, [json!(client.id().unwrap()), auth]);

    // The namespace can also come from the URL's path.
    let (builder, mut events) =
        record(Client::builder(format!("{}/custom", srv.url)), &["welcome"]);
    let client = builder.connect().await.unwrap();
    assert_eq!(client.namespace(), "/custom");
    let welcome = expect(&mut events, "welcome").await;
    assert_eq!(welcome.arg::<String>(0), client.id());
}

#[tokio::test]
async fn middleware_refusal_carries_the_message() {
    let srv = server().await;
    for auth in [Some(json!({ "token": "wrong" })), None] {
        let mut builder = Client::builder(&srv.url).namespace("/private");
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        match builder.connect().await {
            Err(Error::ConnectRefused { message, data }) => {
                assert_eq!(message, "invalid token");
                assert_eq!(data, None);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let client = Client::builder(&srv.url)
        .namespace("/private")
        .auth(json!({ "token": "secret" }))
        .connect()
        .await
        .unwrap();
    assert!(client.is_connected());

    match Client::builder(&srv.url).namespace("/nope").connect().await {
        Err(Error::ConnectRefused { message, .. }) => assert_eq!(message, "Invalid namespace"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_errors() {
    assert!(matches!(
        Client::builder("127.0.0.1:1").connect().await,
        Err(Error::InvalidUrl { .. })
    ));
    assert!(matches!(
        Client::builder("http://127.0.0.1:1")
            .namespace("no-slash")
            .connect()
            .await,
        Err(Error::InvalidNamespace(_))
    ));
    // Nothing listens there (the port is bound and dropped).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert!(matches!(
        Client::builder(format!("http://127.0.0.1:{port}"))
            .connect()
            .await,
        Err(Error::Transport(_))
    ));
    // A wrong path: the server answers 404 to the upgrade.
    let srv = server().await;
    assert!(matches!(
        Client::builder(&srv.url).path("/wrong/").connect().await,
        Err(Error::Transport(_))
    ));
}

#[tokio::test]
async fn events_both_ways() {
    let srv = server().await;
    let (builder, mut events) = record(Client::builder(&srv.url), &["welcome", "echo"]);
    let client = builder.connect().await.unwrap();
    expect(&mut events, "welcome").await;

    let args = ("hello", 42, json!({ "a": [1, 2] }), Value::Null);
    client.emit("echo", &args).unwrap();
    let echo = expect(&mut events, "echo").await;
    assert_eq!(
        echo.args,
        [
            json!("hello"),
            json!(42),
            json!({ "a": [1, 2] }),
            Value::Null
        ]
    );
    assert!(echo.binary.is_empty());

    client.emit("echo", &()).unwrap();
    assert!(expect(&mut events, "echo").await.args.is_empty());
    client.emit("echo", &vec![1, 2, 3]).unwrap();
    assert_eq!(expect(&mut events, "echo").await.args, [1, 2, 3]);

    // Handlers can be replaced and removed on a connected client.
    let (tx, mut replaced) = unbounded_channel();
    client.on("echo", move |data, _| {
        let _ = tx.send(data);
    });
    client.emit("echo", &("again",)).unwrap();
    assert_eq!(next(&mut replaced).await.args, ["again"]);
    client.off("echo");
    client.emit("echo", &("unheard",)).unwrap();
    nothing(&mut replaced, Duration::from_millis(200)).await;
    nothing(&mut events, Duration::ZERO).await;

    // Arguments must be an array.
    assert!(matches!(client.emit("echo", &5), Err(Error::Encode(_))));
}

#[tokio::test]
async fn acks_both_ways() {
    let srv = server().await;
    let (builder, mut events) = record(
        Client::builder(&srv.url).on("server-ack", |data, ack| {
            let ack = ack.expect("the server asked for an ack");
            ack.send(&("answer", &data.args[0])).unwrap();
        }),
        &["ack-result"],
    );
    let client = builder.connect().await.unwrap();

    // Client to server.
    let reply = client
        .emit_with_ack("echo-ack", &("x", 1, json!({ "y": true })), WAIT)
        .await
        .unwrap();
    assert_eq!(reply.args, [json!("x"), json!(1), json!({ "y": true })]);
    let reply = client.emit_with_ack("echo-ack", &(), WAIT).await.unwrap();
    assert!(reply.args.is_empty());

    // Server to client.
    client.emit("request-ack", &()).unwrap();
    let result = expect(&mut events, "ack-result").await;
    assert_eq!(result.args, [json!({ "ok": ["answer", "question"] })]);

    // Many in flight at once, answered to the right callers.
    let waits: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.emit_with_ack("echo-ack", &(i,), WAIT).await })
        })
        .collect();
    for (i, wait) in waits.into_iter().enumerate() {
        assert_eq!(wait.await.unwrap().unwrap().args, [json!(i)]);
    }
}

#[tokio::test]
async fn ack_timeout() {
    let srv = server().await;
    let client = Client::builder(&srv.url).connect().await.unwrap();
    let started = Instant::now();
    let result = client
        .emit_with_ack("no-answer", &("hello",), Duration::from_millis(200))
        .await;
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The client is still usable.
    let reply = client.emit_with_ack("echo-ack", &(1,), WAIT).await.unwrap();
    assert_eq!(reply.args, [1]);

    // A server-side ack timeout: the client has no handler for the event.
    let (builder, mut events) = record(Client::builder(&srv.url), &["ack-result"]);
    let client = builder.connect().await.unwrap();
    client.emit("request-ack", &()).unwrap();
    let result = expect(&mut events, "ack-result").await;
    assert_eq!(result.args, [json!({ "error": "operation has timed out" })]);
}

#[tokio::test]
async fn binary_both_ways() {
    let srv = server().await;
    let one = Bytes::from_static(&[0, 1, 2, 255]);
    let two = Bytes::from(vec![7u8; 100_000]);
    let reply_bytes = Bytes::from_static(b"from the client");
    let (builder, mut events) = record(
        Client::builder(&srv.url)
            .namespace("/custom")
            .on("server-binary-ack", {
                let reply_bytes = reply_bytes.clone();
                move |data, ack| {
                    assert_eq!(data.args, ["bytes?"]);
                    ack.expect("an ack was asked for")
                        .send_binary(&("here", placeholder(0)), vec![reply_bytes.clone()])
                        .unwrap();
                }
            }),
        &["echo", "binary-ack-result"],
    );
    let client = builder.connect().await.unwrap();

    // Client to server and back as an event.
    let args = ("bin", placeholder(0), json!({ "nested": [placeholder(1)] }));
    client
        .emit_binary("echo", &args, vec![one.clone(), two.clone()])
        .unwrap();
    let echo = expect(&mut events, "echo").await;
    assert_eq!(
        echo.args,
        [
            json!("bin"),
            placeholder(0),
            json!({ "nested": [placeholder(1)] })
        ]
    );
    assert_eq!(echo.binary, [one.clone(), two.clone()]);

    // In an acknowledgement, both ways.
    let reply = client
        .emit_binary_with_ack("echo-ack", &(placeholder(0),), vec![one.clone()], WAIT)
        .await
        .unwrap();
    assert_eq!(reply.args, [placeholder(0)]);
    assert_eq!(reply.binary, std::slice::from_ref(&one));

    client.emit("request-binary-ack", &()).unwrap();
    let result = expect(&mut events, "binary-ack-result").await;
    assert_eq!(result.args, [json!("here"), placeholder(0)]);
    assert_eq!(result.binary, [reply_bytes]);

    // No attachments: a plain event.
    client.emit_binary("echo", &("plain",), vec![]).unwrap();
    let echo = expect(&mut events, "echo").await;
    assert_eq!((echo.args, echo.binary), (vec![json!("plain")], vec![]));
}

#[tokio::test]
async fn room_broadcast() {
    let srv = server().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (builder, events) = record(Client::builder(&srv.url), &["room-message"]);
        clients.push((builder.connect().await.unwrap(), events));
    }
    for (client, _) in &clients[..2] {
        let joined = client.emit_with_ack("join", &("r1",), WAIT).await.unwrap();
        assert_eq!(joined.args, [true]);
    }
    let payload = json!({ "hi": 1 });
    clients[2]
        .0
        .emit("to-room", &("r1", payload.clone()))
        .unwrap();
    for (_, events) in &mut clients[..2] {
        let message = expect(events, "room-message").await;
        assert_eq!(message.args, std::slice::from_ref(&payload));
    }
    nothing(&mut clients[2].1, Duration::from_millis(300)).await;

    // A room nobody joined.
    clients[0].0.emit("to-room", &("r2", 1)).unwrap();
    for (_, events) in &mut clients {
        nothing(events, Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn reconnects_after_the_server_drops_the_connection() {
    let srv = server().await;
    let auth = json!({ "token": "again" });
    let (dtx, mut disconnects) = unbounded_channel();
    let (rtx, mut reconnects) = unbounded_channel();
    let (ctx, mut connects) = unbounded_channel();
    let (builder, mut events) = record(
        Client::builder(&srv.url)
            .namespace("/custom")
            .auth(auth.clone())
            .reconnection_delay(Duration::from_millis(50))
            .reconnection_delay_max(Duration::from_millis(200))
            .on_disconnect(move |reason| {
                let _ = dtx.send(reason);
            })
            .on_reconnect(move |attempts| {
                let _ = rtx.send(attempts);
            })
            .on_connect(move || {
                let _ = ctx.send(());
            }),
        &["welcome", "echo"],
    );
    let client = builder.connect().await.unwrap();
    next(&mut connects).await;
    let first_id = client.id().unwrap();
    let welcome = expect(&mut events, "welcome").await;
    assert_eq!(welcome.args, [json!(first_id), auth.clone()]);
    assert_eq!(client.reconnects(), 0);

    client.emit("drop-me", &()).unwrap();
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::TransportClose
    );
    // Emitted while the connection is down: kept, and sent after
    // reconnecting.
    client.emit("echo", &("buffered",)).unwrap();
    let queued_ack = tokio::spawn({
        let client = client.clone();
        async move { client.emit_with_ack("echo-ack", &("queued",), WAIT).await }
    });
    assert_eq!(next(&mut reconnects).await, 1);
    next(&mut connects).await;
    assert_eq!(client.reconnects(), 1);
    let second_id = client.id().unwrap();
    assert_ne!(first_id, second_id);

    // The same auth again, the handlers still there.
    let welcome = expect(&mut events, "welcome").await;
    assert_eq!(welcome.args, [json!(second_id), auth.clone()]);
    assert_eq!(expect(&mut events, "echo").await.args, ["buffered"]);
    assert_eq!(queued_ack.await.unwrap().unwrap().args, ["queued"]);
    client.emit("echo", &("after",)).unwrap();
    assert_eq!(expect(&mut events, "echo").await.args, ["after"]);
    let reply = client.emit_with_ack("echo-ack", &(2,), WAIT).await.unwrap();
    assert_eq!(reply.args, [2]);

    // And again.
    client.emit("drop-me", &()).unwrap();
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::TransportClose
    );
    assert_eq!(next(&mut reconnects).await, 1);
    expect(&mut events, "welcome").await;
    assert_eq!(client.reconnects(), 2);

    client.disconnect().await;
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::IoClientDisconnect
    );
    nothing(&mut reconnects, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn pending_acks_fail_when_the_connection_drops() {
    let srv = server().await;
    let (dtx, mut disconnects) = unbounded_channel();
    let client = Client::builder(&srv.url)
        .reconnection_delay(Duration::from_millis(20))
        .on_disconnect(move |reason| {
            let _ = dtx.send(reason);
        })
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.emit_with_ack("no-answer", &(), WAIT).await }
    });
    // Make sure the first event is out before the drop.
    client.emit_with_ack("echo-ack", &(), WAIT).await.unwrap();
    client.emit("drop-me", &()).unwrap();
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::TransportClose
    );
    let result = pending.await.unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn server_disconnect_is_final() {
    let srv = server().await;
    let (dtx, mut disconnects) = unbounded_channel();
    let client = Client::builder(&srv.url)
        .reconnection_delay(Duration::from_millis(20))
        .on_disconnect(move |reason| {
            let _ = dtx.send(reason);
        })
        .connect()
        .await
        .unwrap();
    client.emit("kick-me", &()).unwrap();
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::IoServerDisconnect
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.reconnects(), 0);
    assert!(!client.is_connected());
    assert!(matches!(client.emit("echo", &()), Err(Error::Disconnected)));
    assert!(matches!(
        client.emit_with_ack("echo-ack", &(), WAIT).await,
        Err(Error::Disconnected)
    ));
}

#[tokio::test]
async fn client_disconnect_reaches_the_server() {
    let mut srv = server().await;
    let client = Client::builder(&srv.url).connect().await.unwrap();
    // Make sure the server has admitted it.
    client.emit_with_ack("echo-ack", &(), WAIT).await.unwrap();
    client.disconnect().await;
    assert_eq!(
        next(&mut srv.disconnects).await,
        "client namespace disconnect"
    );
    // Dropping every handle disconnects too.
    let client = Client::builder(&srv.url).connect().await.unwrap();
    client.emit_with_ack("echo-ack", &(), WAIT).await.unwrap();
    drop(client);
    assert_eq!(
        next(&mut srv.disconnects).await,
        "client namespace disconnect"
    );
}

#[tokio::test]
async fn answers_pings() {
    let mut config = SocketIoConfig::default();
    config.engine = config
        .engine
        .heartbeat(Duration::from_millis(100), Duration::from_millis(300));
    let mut srv = start_server(config).await;
    let (dtx, mut disconnects) = unbounded_channel();
    let client = Client::builder(&srv.url)
        .on_disconnect(move |reason| {
            let _ = dtx.send(reason);
        })
        .connect()
        .await
        .unwrap();
    // Several heartbeats, with and without other traffic.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        let reply = client.emit_with_ack("echo-ack", &(i,), WAIT).await.unwrap();
        assert_eq!(reply.args, [i]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nothing(&mut disconnects, Duration::ZERO).await;
    nothing(&mut srv.disconnects, Duration::ZERO).await;
    assert_eq!(client.reconnects(), 0);
}

/// An Engine.IO peer that opens with short heartbeat settings, admits the
/// client to `/` and then never pings. Counts the connections it took.
async fn silent_server() -> (String, UnboundedReceiver<()>) {
    use ws::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = ws::Acceptor::new().accept(tcp).await.unwrap();
                let _ = tx.send(());
                let open = r#"0{"sid":"fake","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000000}"#;
                ws.send(Message::text(open)).await.unwrap();
                while let Some(Ok(message)) = ws.recv().await {
                    if let Message::Text(text) = message {
                        if text.as_str() == "40" {
                            ws.send(Message::text(r#"40{"sid":"silent"}"#))
                                .await
                                .unwrap();
                        }
                    }
                }
            });
        }
    });
    (format!("ws://{addr}"), rx)
}

#[tokio::test]
async fn detects_a_dead_connection() {
    let (url, mut accepted) = silent_server().await;
    let (dtx, mut disconnects) = unbounded_channel();
    let started = Instant::now();
    let client = Client::builder(&url)
        .reconnection(false)
        .on_disconnect(move |reason| {
            let _ = dtx.send(reason);
        })
        .connect()
        .await
        .unwrap();
    next(&mut accepted).await;
    assert_eq!(client.id().as_deref(), Some("silent"));
    assert_eq!(next(&mut disconnects).await, DisconnectReason::PingTimeout);
    // pingInterval + pingTimeout = 200 ms after the open packet.
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(190) && after < Duration::from_secs(3),
        "{after:?}"
    );
    nothing(&mut accepted, Duration::from_millis(300)).await;
    assert!(!client.is_connected());

    // With reconnection: it comes back after each timeout.
    let (rtx, mut reconnects) = unbounded_channel();
    let client = Client::builder(&url)
        .reconnection_delay(Duration::from_millis(10))
        .on_reconnect(move |n| {
            let _ = rtx.send(n);
        })
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut reconnects).await, 1);
    assert_eq!(next(&mut reconnects).await, 1);
    assert!(client.reconnects() >= 2);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let mut srv = server().await;
    let (ftx, mut failed) = unbounded_channel();
    let (dtx, mut disconnects) = unbounded_channel();
    let client = Client::builder(&srv.url)
        .reconnection_delay(Duration::from_millis(20))
        .reconnection_attempts(3)
        .on_disconnect(move |reason| {
            let _ = dtx.send(reason);
        })
        .on_reconnect_failed(move |error| {
            let _ = ftx.send(error.to_string());
        })
        .connect()
        .await
        .unwrap();
    // Stop listening, then end every session.
    srv.serve.abort();
    let _ = (&mut srv.serve).await;
    srv.io.engine().close_all();
    assert_eq!(
        next(&mut disconnects).await,
        DisconnectReason::TransportClose
    );
    let error = next(&mut failed).await;
    assert!(error.starts_with("websocket"), "{error}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(client.emit("echo", &()), Err(Error::Disconnected)));
}

/// Server-side operations on selected sockets: broadcast with acks
/// collecting every reply, fetchSockets, socketsJoin/socketsLeave, except,
/// and disconnectSockets.
#[tokio::test]
async fn server_side_operations_on_many_sockets() {
    let mut srv = server().await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let (builder, events) = record(Client::builder(&srv.url), &["news", "welcome"]);
        let builder = builder.on("poll", move |_, ack| {
            if let Some(ack) = ack {
                let _ = ack.send(&(format!("answer {i}"),));
            }
        });
        let client = builder.connect().await.unwrap();
        clients.push((client, events));
    }
    let ns = srv.io.of("/").unwrap();
    // fetchSockets sees every socket.
    let mut ids: Vec<String> = ns
        .fetch_sockets()
        .await
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = clients.iter().map(|(c, _)| c.id().unwrap()).collect();
    expected.sort();
    assert_eq!(ids, expected);

    // Broadcast with acks collects every reply.
    let mut answers: Vec<String> = ns
        .clone()
        .timeout(WAIT)
        .emit_with_ack("poll", &("question",))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().args[0].as_str().unwrap().to_owned())
        .collect();
    answers.sort();
    assert_eq!(answers, ["answer 0", "answer 1", "answer 2"]);

    // socketsJoin on a selection, then emit to the room except one socket.
    let first = clients[0].0.id().unwrap();
    let second = clients[1].0.id().unwrap();
    ns.clone().to(&first).join("vip");
    ns.clone().to(&second).join("vip");
    let reached = ns
        .clone()
        .to("vip")
        .except(&first)
        .emit("news", &("for vip",))
        .unwrap();
    assert_eq!(reached, 1);
    for (i, (_, events)) in clients.iter_mut().enumerate() {
        // drop the welcome event first
        let welcome = expect(events, "welcome").await;
        assert!(!welcome.args.is_empty());
        if i == 1 {
            assert_eq!(expect(events, "news").await.args, [json!("for vip")]);
        } else {
            nothing(events, Duration::from_millis(200)).await;
        }
    }
    // socketsLeave, then nobody is in the room.
    ns.clone().to("vip").leave("vip");
    assert!(ns.clone().to("vip").sockets().is_empty());

    // disconnectSockets on a selection: only that socket goes.
    ns.clone().to(&second).disconnect();
    assert_eq!(
        next(&mut srv.disconnects).await,
        "server namespace disconnect"
    );
    let remaining = ns.fetch_sockets().await.len();
    assert_eq!(remaining, 2);
}

/// A client may emit as soon as it sees CONNECT. With an async middleware
/// the server sends CONNECT from another task than the one reading the
/// client's packets, so the first event can arrive while the connect
/// handler is still registering its handlers: the server must hold it
/// until the handler has run, not drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_event_waits_for_the_connect_handler() {
    let io = SocketIo::new(SocketIoConfig::default());
    io.namespace("/slow", |socket| {
        // A slow connect handler: handlers exist only after it returns.
        // block_in_place hands this worker's queued tasks (the session's
        // IO task among them) to another thread, so the client's first
        // event really is read while this handler still runs.
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(300)));
        socket.on("first", |_, data, ack| {
            if let Some(ack) = ack {
                let _ = ack.send(&data.args);
            }
        });
    })
    .middleware(|_| async { Ok(()) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serve = tokio::spawn(async move {
        let _ = io.serve(listener).await;
    });
    let client = Client::builder(&url)
        .namespace("/slow")
        .connect()
        .await
        .unwrap();
    let reply = client
        .emit_with_ack("first", &("hello", 1), Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(reply.args, [json!("hello"), json!(1)]);
    serve.abort();
}
