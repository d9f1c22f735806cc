//! Socket.IO server on socketioxide, the comparison peer for duplex's
//! Socket.IO benchmarks (`bench/run-socketio.sh`).
//!
//! Follows the crate's hyper integration: `SocketIo::new_svc()` gives a
//! hyper service that hyper 1 serves on each accepted socket, with upgrades
//! enabled for the WebSocket transport. Default configuration (ping
//! interval 25 s, timeout 20 s, both transports offered; the benchmark
//! client uses WebSocket only).
//!
//! Namespace `/` handles three events:
//! - `echo` (args...): acknowledged with its argument;
//! - `join` (room): joins the room and acknowledges with `true`;
//! - `bcast` (room, payload): emits `msg` (payload) to every socket in the
//!   room, then acknowledges with `true` if the client asked for an ack.
//!
//! ```text
//! socketioxide-echo 127.0.0.1:0
//! ```
//!
//! Runs on a tokio current-thread runtime, like every server in the
//! comparison (each is pinned to one core). Prints
//! `socketioxide-echo listening on http://ADDR` once it accepts.

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9104".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (svc, io) = SocketIo::new_svc();
        io.ns("/", async |socket: SocketRef| {
            socket.on(
                "echo",
                async |Data::<Value>(data): Data<Value>, ack: AckSender| {
                    let _ = ack.send(&data);
                },
            );
            socket.on(
                "join",
                async |socket: SocketRef, Data::<String>(room): Data<String>, ack: AckSender| {
                    socket.join(room);
                    let _ = ack.send(&true);
                },
            );
            socket.on(
                "bcast",
                async |io: SocketIo,
                       Data::<(String, Value)>((room, payload)): Data<(String, Value)>,
                       ack: AckSender| {
                    let _ = io.to(room).emit("msg", &payload).await;
                    let _ = ack.send(&true);
                },
            );
        });

        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "socketioxide-echo listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    eprintln!("socketioxide-echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let svc = svc.clone();
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("socketioxide-echo: http: {e}");
                }
            });
        }
    })
}
