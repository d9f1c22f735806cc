//! One node of a Socket.IO cluster over Redis, for the end-to-end tests in
//! `e2e/socketio-cluster` (official socket.io-client against several
//! nodes). Prints `listening <url> node=<id>` once it serves.
//!
//! Environment: `REDIS_URL` (default `redis://127.0.0.1:6379`), `PREFIX`
//! (key prefix, default `sio`), `PORT` (default 0: any free port).
//!
//! Events on `/`: `join` (room, ack) joins and acknowledges once other
//! nodes' broadcasts see it; `to-room` (room, payload) broadcasts
//! `room-message` to the room on every node. Each connection gets
//! `welcome` with `{id, recovered, node}`.

use std::time::Duration;

use socketio::{RecoveryConfig, SocketIo, SocketIoConfig};
use socketio_redis::{ClusterConfig, RedisCluster};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = std::env::var("PREFIX").unwrap_or_else(|_| "sio".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let cluster = RedisCluster::connect(ClusterConfig::new(url).prefix(prefix)).await?;
    let recovery = RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(30),
        ..RecoveryConfig::default()
    };
    let io = SocketIo::new(cluster.configure(SocketIoConfig::default().recovery(recovery)));
    let (io2, cluster2) = (io.clone(), cluster.clone());
    io.namespace("/", move |socket| {
        let node = cluster2.node_id().to_owned();
        let _ = socket.emit(
            "welcome",
            &(serde_json::json!({
                "id": socket.id(),
                "recovered": socket.recovered(),
                "node": node,
            }),),
        );
        let c = cluster2.clone();
        socket.on("join", move |socket, data, ack| {
            if let Some(room) = data.args.first().and_then(|v| v.as_str()) {
                socket.join(room);
            }
            let c = c.clone();
            tokio::spawn(async move {
                let settled = c.settled(Duration::from_secs(5)).await;
                if let Some(ack) = ack {
                    let _ = ack.send(&(settled,));
                }
            });
        });
        let io = io2.clone();
        socket.on("to-room", move |_, data, _| {
            let (Some(room), Some(payload)) =
                (data.args.first().and_then(|v| v.as_str()), data.args.get(1))
            else {
                return;
            };
            if let Some(op) = io.to(room) {
                let _ = op.emit("room-message", &(payload,));
            }
        });
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening http://{} node={}",
        listener.local_addr()?,
        cluster.node_id()
    );
    cluster.guard(&io).serve(listener).await?;
    Ok(())
}
