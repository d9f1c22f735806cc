//! Echo server on fastwebsockets, the comparison peer for duplex's echo
//! benchmark.
//!
//! Follows the crate's recommended server path: hyper 1 serves HTTP/1.1 on
//! each accepted socket, `fastwebsockets::upgrade::upgrade` answers the
//! upgrade request, and the upgraded stream is wrapped in a
//! `FragmentCollector` so whole messages (not frames) are echoed. Pings and
//! closes are answered by the crate (auto pong and auto close are on by
//! default). No compression: fastwebsockets does not implement it.
//!
//! ```text
//! fastwebsockets-echo 127.0.0.1:9002
//! ```
//!
//! Runs on a tokio current-thread runtime, like every server in the
//! comparison (each is pinned to one core).

use anyhow::Context as _;
use fastwebsockets::upgrade::{upgrade, UpgradeFut};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Echoes text and binary messages until the peer closes or errs.
async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
}

/// The hyper service: upgrade the request, run the echo loop on its own task.
async fn on_request(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade(&mut req)?;
    tokio::spawn(async move {
        if let Err(e) = echo(upgraded).await {
            if !matches!(
                e,
                WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF
            ) {
                eprintln!("fastwebsockets-echo: connection: {e}");
            }
        }
    });
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "fastwebsockets-echo listening on ws://{}",
            listener.local_addr()?
        );
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    eprintln!("fastwebsockets-echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(on_request))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("fastwebsockets-echo: http: {e}");
                }
            });
        }
    })
}
