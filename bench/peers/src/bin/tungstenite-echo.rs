//! Echo server on tokio-tungstenite, the comparison peer for duplex's echo
//! benchmark.
//!
//! Written the way the crate's README suggests: `accept_async` on each
//! accepted socket with the default configuration, then read the next
//! message and send it back. Pings are answered and closes replied to by
//! tungstenite itself. No compression (tungstenite does not offer it).
//!
//! ```text
//! tungstenite-echo 127.0.0.1:9003
//! ```
//!
//! Runs on a tokio current-thread runtime, like every server in the
//! comparison (each is pinned to one core).

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};

/// Echoes text and binary messages until the peer closes or errs.
async fn echo(tcp: TcpStream) -> Result<(), tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    while let Some(message) = ws.next().await {
        match message? {
            message @ (Message::Text(_) | Message::Binary(_)) => ws.send(message).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "tungstenite-echo listening on ws://{}",
            listener.local_addr()?
        );
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    eprintln!("tungstenite-echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                if let Err(e) = echo(tcp).await {
                    if !matches!(
                        e,
                        tungstenite::Error::ConnectionClosed
                            | tungstenite::Error::Protocol(
                                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                            )
                    ) {
                        eprintln!("tungstenite-echo: connection: {e}");
                    }
                }
            });
        }
    })
}
