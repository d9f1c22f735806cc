//! A minimal in-process server for the scenario tests: WebSocket
//! connections speaking just enough of Centrifugo's JSON protocol
//! (connect, subscribe, publication pushes) and an HTTP
//! `POST /api/publish` that pushes the publication to every subscriber.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use ws_proto::{Config, Connection, Message, Role};

use crate::ws_server::serve_websocket;

/// One sender per subscribe the server answered (never removed).
pub(crate) type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>>;

/// Reads one connection's first bytes and serves it as WebSocket or HTTP.
async fn serve(mut tcp: TcpStream, subs: Subscribers) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    while head.len() < 4 {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.starts_with(b"POST") {
        serve_api(tcp, head, subs).await
    } else {
        serve_ws(tcp, head, subs).await
    }
}

/// Pipelined `POST /api/publish`: push `data` to every subscriber, answer
/// `{"result":{}}`.
async fn serve_api(
    mut tcp: TcpStream,
    mut input: Vec<u8>,
    subs: Subscribers,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head_len)) = req.parse(&input) else {
                break;
            };
            let len: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if input.len() < head_len + len {
                break;
            }
            let body = String::from_utf8_lossy(&input[head_len..head_len + len]).into_owned();
            input.drain(..head_len + len);
            let data = body
                .split_once("\"data\":")
                .map(|(_, d)| d.trim_end_matches('}').to_owned() + "}")
                .unwrap_or_default();
            let push =
                format!("{{\"push\":{{\"channel\":\"bench\",\"pub\":{{\"data\":{data}}}}}}}");
            for s in subs.lock().unwrap().iter() {
                let _ = s.send(push.clone());
            }
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"result\":{}}")
                .await?;
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// WebSocket: handshake, then replies to connect and subscribe, and the
/// pushes of the publications.
async fn serve_ws(tcp: TcpStream, head: Vec<u8>, subs: Subscribers) -> std::io::Result<()> {
    let (tx, inbox) = mpsc::unbounded_channel::<String>();
    let conn = Connection::new(Role::Server, Config::default());
    serve_websocket(tcp, head, conn, inbox, |conn, message| {
        let Message::Text(text) = message else {
            return Ok(());
        };
        let text = text.as_str();
        let id: String = text
            .trim_start_matches("{\"id\":")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if text.contains("\"connect\"") {
            conn.send_text(&format!(
                "{{\"id\":{id},\"connect\":{{\"client\":\"c\",\"version\":\"0\"}}}}"
            ))
            .map_err(std::io::Error::other)?;
        } else if text.contains("\"subscribe\"") {
            conn.send_text(&format!("{{\"id\":{id},\"subscribe\":{{}}}}"))
                .map_err(std::io::Error::other)?;
            subs.lock().unwrap().push(tx.clone());
        }
        Ok(())
    })
    .await
}

/// Starts the server on an ephemeral port; returns its `host:port` and
/// its subscribers.
pub(crate) async fn start_server() -> (String, Subscribers) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let subs: Subscribers = Arc::default();
    let all = Arc::clone(&subs);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(serve(tcp, Arc::clone(&all)));
        }
    });
    (addr.to_string(), subs)
}
