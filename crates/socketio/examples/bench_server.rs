//! duplex's server in the Socket.IO benchmarks (`bench/run-socketio.sh`),
//! the counterpart of the socketioxide and Node socket.io peers.
//!
//! ```text
//! cargo run --release -p duplex-socketio --example bench_server -- 127.0.0.1:0
//! ```
//!
//! Default configuration (ping interval 25 s, timeout 20 s, both transports
//! offered; the benchmark client uses WebSocket only), connection state
//! recovery off. Namespace `/` handles three events:
//! - `echo` (args...): acknowledged with its arguments;
//! - `join` (room): joins the room and acknowledges with `true`;
//! - `bcast` (room, payload): emits `msg` (payload) to every socket in the
//!   room, then acknowledges with `true` if the client asked for an ack.
//!
//! Runs on a tokio current-thread runtime, like every server in the
//! comparison (each is pinned to one core). Prints
//! `bench_server listening on http://ADDR` once it accepts.

use socketio::{SocketIo, SocketIoConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9106".into());
    let io = SocketIo::new(SocketIoConfig::default());
    let io2 = io.clone();
    io.namespace("/", move |socket| {
        socket.on("echo", |_, data, ack| {
            if let Some(ack) = ack {
                let _ = ack.send(&data.args);
            }
        });
        socket.on("join", |socket, data, ack| {
            if let Some(room) = data.args.first().and_then(|v| v.as_str()) {
                socket.join(room);
            }
            if let Some(ack) = ack {
                let _ = ack.send(&(true,));
            }
        });
        let io = io2.clone();
        socket.on("bcast", move |_, data, ack| {
            if let (Some(room), Some(payload)) =
                (data.args.first().and_then(|v| v.as_str()), data.args.get(1))
            {
                if let Some(op) = io.to(room) {
                    let _ = op.emit("msg", &(payload,));
                }
            }
            if let Some(ack) = ack {
                let _ = ack.send(&(true,));
            }
        });
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "bench_server listening on http://{}",
        listener.local_addr()?
    );
    io.serve(listener).await
}
