//! The WebSocket side of the tests' in-process servers: the opening
//! handshake and the message loop over `ws_proto`'s server role. What each
//! server answers (echo, Socket.IO packets, Centrifugo commands) is the
//! caller's `on_message`; this module owns only the socket.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use ws_proto::handshake::{accept, parse_request, AcceptOptions, RequestLimits};
use ws_proto::{Connection, Message};

/// Serves one connection whose first bytes (maybe none yet) are `head`:
/// answers the handshake, writes what `conn` already has queued, then
/// hands every message to `on_message` (which queues replies on `conn`)
/// and sends every string `inbox` yields as a text message, until the
/// client closes or goes away.
pub(crate) async fn serve_websocket(
    mut tcp: TcpStream,
    mut head: Vec<u8>,
    mut conn: Connection,
    mut inbox: mpsc::UnboundedReceiver<String>,
    mut on_message: impl FnMut(&mut Connection, Message) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut input = loop {
        match parse_request(&head, &RequestLimits::default()) {
            Ok(Some((req, used))) => {
                let accepted =
                    accept(&req, &AcceptOptions::default()).map_err(std::io::Error::other)?;
                tcp.write_all(&accepted.response).await?;
                break head[used..].to_vec();
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    };
    loop {
        let mut pos = 0;
        while pos < input.len() {
            let (used, message) = conn.receive(&input[pos..]).map_err(std::io::Error::other)?;
            pos += used;
            if let Some(message) = message {
                on_message(&mut conn, message)?;
            }
        }
        tcp.write_all(&conn.take_output()).await?;
        if conn.is_closed() {
            return Ok(());
        }
        tokio::select! {
            n = tcp.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                input = buf[..n].to_vec();
            }
            Some(text) = inbox.recv() => {
                conn.send_text(&text).map_err(std::io::Error::other)?;
                input = Vec::new();
            }
        }
    }
}
