//! The server the cross-language end-to-end tests (e2e/node, e2e/python)
//! drive with the official Socket.IO clients.
//!
//! ```text
//! cargo run --release -p duplex-socketio --example e2e_server -- 127.0.0.1:PORT [--recovery]
//! ```
//!
//! Namespaces `/` and `/custom` share these events:
//! - `echo` (any args, binary too): emitted back as `echo`;
//! - `echo-ack`: acknowledged with its arguments;
//! - `no-answer`: never acknowledged (client-side timeouts);
//! - `request-ack`: the server emits `server-ack` with an ack and a 500 ms
//!   timeout, then emits `ack-result` with `{ok: args}` or `{error: "..."}`;
//! - `join` (room): joins it and acknowledges;
//! - `to-room` (room, payload): emits `room-message` (payload) to the room.
//!
//! With `--recovery`, connection state recovery is on: events carry an
//! offset as their last argument (as the reference server sends them), and
//! `welcome` says whether the socket recovered.
//!
//! `/private` admits only `auth.token == "secret"`; others get a
//! `connect_error` with message "invalid token".

use std::time::Duration;

use socketio::{Data, RecoveryConfig, Socket, SocketIo, SocketIoConfig};

fn handlers(io: SocketIo, socket: Socket) {
    let _ = socket.emit("welcome", &(socket.id(), socket.auth(), socket.recovered()));
    socket.on("echo", |socket, data: Data, _| {
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
                Ok(data) => serde_json::json!({ "ok": data.args }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            };
            let _ = socket.emit("ack-result", &(report,));
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:3100".to_owned();
    let mut config = SocketIoConfig::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--recovery" => config = config.recovery(RecoveryConfig::default()),
            other => addr = other.to_owned(),
        }
    }
    let io = SocketIo::new(config);
    for name in ["/", "/custom"] {
        let io2 = io.clone();
        io.namespace(name, move |socket| handlers(io2.clone(), socket));
    }
    let io2 = io.clone();
    io.namespace("/private", move |socket| handlers(io2.clone(), socket))
        .middleware(|socket| async move {
            if socket.auth().get("token").and_then(|t| t.as_str()) == Some("secret") {
                Ok(())
            } else {
                Err("invalid token".to_owned())
            }
        });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("e2e_server listening on http://{}", listener.local_addr()?);
    io.serve(listener).await
}
