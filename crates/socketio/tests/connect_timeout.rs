//! A client that opens an Engine.IO session but never connects to a
//! namespace is closed after the connect timeout; one that connects stays.

use std::time::{Duration, Instant};

use socketio::{SocketIo, SocketIoConfig};
use ws::Message;

async fn closed_within(
    c: &mut ws::WebSocket<ws::MaybeTlsStream>,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(limit, async {
        loop {
            match c.recv().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = c.send(Message::text("3")).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    outcome.ok().map(|()| started.elapsed())
}

#[tokio::test]
async fn sessions_without_a_namespace_are_closed_after_the_connect_timeout() {
    let io = SocketIo::new(SocketIoConfig::default().connect_timeout(Duration::from_millis(300)));
    io.namespace("/", |_| {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.serve(listener));
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");

    // Two idle sessions, opened 100 ms apart, each closed after its own
    // deadline.
    let (mut idle1, _) = ws::connect(&url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut idle2, _) = ws::connect(&url).await.unwrap();
    // One that connects to "/".
    let (mut joined, _) = ws::connect(&url).await.unwrap();
    assert!(matches!(joined.recv().await, Some(Ok(Message::Text(t))) if t.starts_with('0')));
    joined.send(Message::text("40")).await.unwrap();
    assert!(matches!(joined.recv().await, Some(Ok(Message::Text(t))) if t.starts_with("40{")));

    let first = closed_within(&mut idle1, Duration::from_secs(3)).await;
    let second = closed_within(&mut idle2, Duration::from_secs(3)).await;
    assert!(first.is_some(), "idle session 1 was not closed");
    assert!(second.is_some(), "idle session 2 was not closed");
    assert!(
        closed_within(&mut joined, Duration::from_millis(800))
            .await
            .is_none(),
        "a connected client must stay"
    );
}
