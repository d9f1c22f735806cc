//! The scenarios end to end against a minimal in-process echo server built
//! on the server side of `ws_proto`, so the load generator can be checked
//! without any of the benchmarked servers.

mod ws_server;

use std::time::Duration;

use duplex_bench::echo::{self, EchoOptions};
use duplex_bench::idle::{self, IdleOptions};
use duplex_bench::target::Target;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use ws_proto::{Config, Connection, Message, Role};
use ws_server::serve_websocket;

/// Serves one connection: handshake, then echo data messages until close.
async fn serve(tcp: TcpStream) -> std::io::Result<()> {
    // Nothing is pushed: the inbox's sender is gone from the start.
    let (_, inbox) = mpsc::unbounded_channel();
    let conn = Connection::new(Role::Server, Config::default());
    serve_websocket(tcp, Vec::new(), conn, inbox, |conn, message| {
        if let message @ (Message::Binary(_) | Message::Text(_)) = message {
            conn.send(message).map_err(std::io::Error::other)?;
        }
        Ok(())
    })
    .await
}

/// Starts the echo server on an ephemeral port; returns its URL.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    format!("ws://{addr}/")
}

#[tokio::test]
async fn echo_counts_messages_and_cpu() {
    let url = start_server().await;
    for text in [false, true] {
        let opts = EchoOptions {
            target: Target::resolve(&url).await.unwrap(),
            connections: 4,
            size: 1000,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            // The server runs in this process.
            server_pid: Some(std::process::id()),
            text,
            ramp_concurrency: 2,
            label: Some("in-process".into()),
        };
        let report = echo::run(&opts).await.unwrap();
        assert!(report.messages > 0, "{report:?}");
        assert!(report.msgs_per_sec > 0.0);
        assert!(report.server_cpu_seconds.is_some());
        assert!(report.p50_us.unwrap() <= report.p99_us.unwrap());
        assert_eq!(report.text, text);
    }
}

#[tokio::test]
async fn idle_reports_each_step() {
    let url = start_server().await;
    let opts = IdleOptions {
        target: Target::resolve(&url).await.unwrap(),
        steps: vec![5, 20],
        server_pid: std::process::id(),
        ramp_concurrency: 4,
        settle: Duration::ZERO,
        label: None,
    };
    let mut seen = 0;
    let reports = idle::run(&opts, |_| seen += 1).await.unwrap();
    assert_eq!(seen, 2);
    assert_eq!(reports[1].connections, 20);
    assert_eq!(reports[1].slope_from_connections, 5);
}

#[tokio::test]
async fn refuses_dead_server_pid() {
    let url = start_server().await;
    let opts = EchoOptions {
        target: Target::resolve(&url).await.unwrap(),
        connections: 1,
        size: 20,
        duration: Duration::from_millis(10),
        warmup: Duration::ZERO,
        server_pid: Some(u32::MAX),
        text: false,
        ramp_concurrency: 1,
        label: None,
    };
    assert!(echo::run(&opts).await.is_err());
}
