//! The server the official protocol test suites (engine.io-protocol and
//! socket.io-protocol, their `test-suite` folders) run against.
//!
//! ```text
//! cargo run --release -p duplex-socketio --example socketio_conformance
//! ```
//!
//! Listens on 127.0.0.1:3000 with pingInterval 300 ms, pingTimeout 200 ms,
//! maxPayload 1000000, connectTimeout 1000 ms and CORS for any origin:
//! - `/engine.io/`: an Engine.IO echo server;
//! - `/socket.io/`: namespaces `/` and `/custom` that emit `auth` with the
//!   handshake's auth on connect, answer `message` with `message-back`, and
//!   acknowledge `message-with-ack` with its arguments.

use std::time::Duration;

use bytes::Bytes;
use engineio::{CloseReason, Cors, Engine, EngineConfig, Handler};
use socketio::{Socket, SocketIo, SocketIoConfig};

struct Echo;

impl Handler for Echo {
    fn on_open(&self, _: &engineio::Socket) {}
    fn on_message(&self, socket: &engineio::Socket, text: ws::Utf8Bytes) {
        socket.send_text(&text);
    }
    fn on_binary(&self, socket: &engineio::Socket, data: Bytes) {
        socket.send_binary(data);
    }
    fn on_close(&self, _: &engineio::Socket, _: CloseReason) {}
}

fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .heartbeat(Duration::from_millis(300), Duration::from_millis(200))
        .max_payload(1_000_000)
        .cors(Cors::default())
}

fn on_connect(socket: Socket) {
    // The suite's client reads the CONNECT reply and waits before it listens
    // for the next message, so an `auth` event that arrives in the same TCP
    // read is lost (socketio/socket.io-protocol#32). Real clients handle
    // that; for the suite, `auth` follows a moment later, as it does from
    // the reference server, whose writes are one tick apart.
    let later = socket.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let auth = later.auth().clone();
        let _ = later.emit("auth", &(auth,));
    });
    socket.on("message", |socket, data, _| {
        let _ = socket.emit_binary("message-back", &data.args, data.binary);
    });
    socket.on("message-with-ack", |_, data, ack| {
        if let Some(ack) = ack {
            let _ = ack.send_binary(&data.args, data.binary);
        }
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let echo = Engine::new(engine_config(), Echo);
    let io = SocketIo::new(
        SocketIoConfig::default()
            .engine(engine_config().path("/socket.io/"))
            .connect_timeout(Duration::from_millis(1000)),
    );
    io.namespace("/", on_connect);
    io.namespace("/custom", on_connect);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("socketio_conformance listening on http://127.0.0.1:3000");
    loop {
        let (tcp, peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let echo = echo.clone();
        let sio = io.engine().clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer);
                    let echo = echo.clone();
                    let sio = sio.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        Ok::<_, std::convert::Infallible>(if echo.matches(&path) {
                            echo.handle(req).await
                        } else if sio.matches(&path) {
                            sio.handle(req).await
                        } else {
                            let mut not_found =
                                http::Response::new(http_body_util::Full::new(Bytes::new()));
                            *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                            not_found
                        })
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}
