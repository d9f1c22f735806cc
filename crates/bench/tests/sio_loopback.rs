//! The Socket.IO scenarios end to end against a minimal in-process
//! Engine.IO / Socket.IO server built on the server side of `ws_proto`
//! (text packets of the main namespace only: `echo` acked with its
//! arguments, `join` and `bcast` as in `bench/run-socketio.sh`), so the
//! client can be checked without any of the benchmarked servers.

mod ws_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use duplex_bench::sio::broadcast::{self, SioBroadcastOptions};
use duplex_bench::sio::echo::{self, SioEchoOptions};
use duplex_bench::sio::idle::{self, SioIdleOptions};
use duplex_bench::sio::resolve;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use ws_proto::{Config, Connection, Message, Role};
use ws_server::serve_websocket;

/// Senders to the sockets that joined the room (one room is enough here).
type Room = Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>>;

/// Answers one Engine.IO text packet (`40`, `3`, or `42...` carrying a
/// Socket.IO event); returns the whole replies for this socket.
fn handle(text: &str, room: &Room, me: &mpsc::UnboundedSender<String>) -> Vec<String> {
    if text == "40" {
        return vec![r#"40{"sid":"s"}"#.to_owned()];
    }
    if text == "3" {
        return Vec::new();
    }
    let Some(rest) = text.strip_prefix("42") else {
        return Vec::new();
    };
    let bracket = rest.find('[').unwrap_or(rest.len());
    let id = &rest[..bracket];
    let args: Vec<Value> = serde_json::from_str(&rest[bracket..]).unwrap_or_default();
    let ack = |args: &[Value]| format!("43{id}{}", serde_json::to_string(args).unwrap());
    match args.first().and_then(Value::as_str) {
        Some("echo") => vec![ack(&args[1..])],
        Some("join") => {
            room.lock().unwrap().push(me.clone());
            vec![ack(&[Value::Bool(true)])]
        }
        Some("bcast") => {
            let msg = format!(r#"42["msg",{}]"#, args[2]);
            room.lock()
                .unwrap()
                .retain(|member| member.send(msg.clone()).is_ok());
            vec![ack(&[Value::Bool(true)])]
        }
        _ => Vec::new(),
    }
}

/// Serves one connection: WebSocket handshake, Engine.IO open packet, then
/// Socket.IO packets until the client goes away.
async fn serve(tcp: TcpStream, room: Room) -> std::io::Result<()> {
    let mut conn = Connection::new(Role::Server, Config::default());
    // A ping right after the open, so the client's pong path is exercised.
    conn.send_text(r#"0{"sid":"e","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
        .map_err(std::io::Error::other)?;
    conn.send_text("2").map_err(std::io::Error::other)?;
    let (me, inbox) = mpsc::unbounded_channel();
    serve_websocket(tcp, Vec::new(), conn, inbox, |conn, message| {
        if let Message::Text(text) = message {
            for reply in handle(text.as_str(), &room, &me) {
                conn.send_text(&reply).map_err(std::io::Error::other)?;
            }
        }
        Ok(())
    })
    .await
}

/// Starts the server on an ephemeral port; returns its URL.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let room = Room::default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, room.clone()));
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn echo_counts_acked_events() {
    let url = start_server().await;
    let opts = SioEchoOptions {
        target: resolve(&url).await.unwrap(),
        sockets: 4,
        size: 20,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        server_pid: Some(std::process::id()),
        ramp_concurrency: 2,
        label: Some("in-process".into()),
    };
    let report = echo::run(&opts).await.unwrap();
    assert!(report.events > 0, "{report:?}");
    assert!(report.server_cpu_seconds.is_some());
    assert!(report.p50_us.unwrap() <= report.p99_us.unwrap());
}

#[tokio::test]
async fn broadcast_delivers_to_every_socket() {
    let url = start_server().await;
    for rate in [0.0, 200.0] {
        let opts = SioBroadcastOptions {
            target: resolve(&url).await.unwrap(),
            sockets: 5,
            room: "r".into(),
            size: 8,
            rate,
            window: 2,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            server_pid: None,
            ramp_concurrency: 5,
            label: None,
        };
        let report = broadcast::run(&opts).await.unwrap();
        assert!(report.broadcasts > 0, "{report:?}");
        // Every broadcast of the window reaches all five sockets, give or
        // take those in flight at either end of it.
        let expected = report.broadcasts * 5;
        assert!(
            report.deliveries + 2 * 5 >= expected && report.deliveries <= expected + 2 * 5,
            "{report:?}"
        );
        if rate > 0.0 {
            // The pacer holds the rate over the window it measured (a busy
            // machine may stretch the window, so the bound follows it).
            assert!(
                report.broadcasts as f64 <= rate * report.seconds + 10.0,
                "{report:?}"
            );
        }
    }
}

#[tokio::test]
async fn idle_reports_each_step() {
    let url = start_server().await;
    let opts = SioIdleOptions {
        target: resolve(&url).await.unwrap(),
        steps: vec![3, 8],
        server_pid: std::process::id(),
        ramp_concurrency: 4,
        settle: Duration::ZERO,
        label: None,
    };
    let reports = idle::run(&opts, |_| {}).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].sockets, 8);
    assert_eq!(reports[1].slope_from_sockets, 3);
    assert_eq!(reports[1].dropped, 0);
}
