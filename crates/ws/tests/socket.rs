//! The tokio layer over real sockets on 127.0.0.1: echo, hyper upgrade on a
//! shared port, TLS, keepalive, close codes, backpressure and broadcast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws::{
    Acceptor, CloseCode, CloseFrame, Connector, DeflateConfig, Message, SharedFrame,
    WebSocketConfig,
};

/// Starts an echo server with `acceptor`; returns its address.
async fn echo_server(acceptor: Acceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut socket) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Some(Ok(m)) = socket.recv().await {
                    if m.is_data() && socket.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn raw_upgrade(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

/// Reads until EOF and returns the close code in the first close frame seen.
async fn read_close_code(tcp: &mut TcpStream) -> Option<u16> {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut all)).await;
    let mut conn = ws_proto::Connection::new(ws_proto::Role::Client, ws_proto::Config::default());
    let mut rest = &all[..];
    while !rest.is_empty() {
        match conn.receive(rest) {
            Ok((_, Some(Message::Close(frame)))) => return frame.map(|f| f.code.as_u16()),
            Ok((used, _)) => rest = &rest[used..],
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test]
async fn echo_text_binary_large_and_ping() {
    let addr = echo_server(Acceptor::new()).await;
    let (mut c, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
    c.send(Message::text("hello")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("hello"));
    let big = Bytes::from(vec![42u8; 3 << 20]);
    c.send(Message::Binary(big.clone())).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::Binary(big));
    c.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        c.recv().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );
    c.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
        .await
        .unwrap();
    assert!(c.recv().await.is_none());
}

#[tokio::test]
async fn compression_is_negotiated_and_round_trips() {
    let addr = echo_server(Acceptor::new().deflate(DeflateConfig::default())).await;
    let (mut c, resp) = Connector::new()
        .deflate(DeflateConfig::default())
        .connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    assert!(resp.deflate.is_some());
    assert!(c.protocol().is_compressed());
    for i in 0..20 {
        let text = format!("message {i} {}", "abc".repeat(i * 50));
        c.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(c.recv().await.unwrap().unwrap(), Message::text(text));
    }
}

#[tokio::test]
async fn handshake_rejections_over_tcp() {
    let addr =
        echo_server(Acceptor::new().origin_check(|o| o != Some("https://evil.example"))).await;
    let (_, head) = raw_upgrade(addr, "Sec-WebSocket-Version: 8\r\n").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
    let (_, head) = raw_upgrade(
        addr,
        "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
}

#[tokio::test]
async fn protocol_errors_close_with_their_codes() {
    let config = WebSocketConfig::default().max_message_size(1000);
    let addr = echo_server(Acceptor::new().config(config)).await;
    // Unmasked client frame: 1002.
    let (mut tcp, head) = raw_upgrade(addr, "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"));
    tcp.write_all(b"\x81\x02hi").await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1002));
    // Invalid UTF-8: 1007.
    let (mut tcp, _) = raw_upgrade(addr, "Sec-WebSocket-Version: 13\r\n").await;
    tcp.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28])
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1007));
    // Too big: 1009, decided from the header alone.
    let (mut tcp, _) = raw_upgrade(addr, "Sec-WebSocket-Version: 13\r\n").await;
    tcp.write_all(&[0x82, 0xFE, 0x10, 0x00, 0, 0, 0, 0])
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1009));
}

#[tokio::test]
async fn decompression_bomb_closes_with_1009() {
    let config = WebSocketConfig::default().max_message_size(64 * 1024);
    let addr = echo_server(
        Acceptor::new()
            .deflate(DeflateConfig::default())
            .config(config),
    )
    .await;
    let (mut c, _) = Connector::new()
        .deflate(DeflateConfig::default())
        .connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    // 8 MiB of zeros compresses to a few KiB: well under any frame limit.
    c.send(Message::binary(vec![0u8; 8 << 20])).await.unwrap();
    match c.recv().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

#[tokio::test]
async fn keepalive_fails_a_silent_peer_and_keeps_a_live_one() {
    let config = WebSocketConfig::default()
        .keepalive(Duration::from_millis(100), Duration::from_millis(200));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new().config(config);
    let server = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let started = tokio::time::Instant::now();
            let outcome = tokio::time::timeout(Duration::from_millis(800), async {
                loop {
                    match s.recv().await {
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return format!("{e}"),
                        None => return "closed".to_string(),
                    }
                }
            })
            .await;
            results.push((outcome, started.elapsed()));
        }
        results
    });
    // A peer that completes the handshake and then never answers.
    let (silent, _) = raw_upgrade(addr, "Sec-WebSocket-Version: 13\r\n").await;
    // A peer whose client answers pings (our client does so automatically).
    let live = tokio::spawn(async move {
        let (mut c, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
        while let Some(Ok(_)) = c.recv().await {}
    });
    let results = server.await.unwrap();
    drop(silent);
    live.abort();
    assert!(
        matches!(&results[0].0, Ok(e) if e.contains("keepalive")),
        "{:?}",
        results[0]
    );
    assert!(
        results[1].0.is_err(),
        "live peer must stay connected: {:?}",
        results[1]
    );
}

#[tokio::test]
async fn slow_reader_fills_the_bounded_write_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = WebSocketConfig::default().max_write_buffer(256 * 1024);
        let mut s = Acceptor::new().config(config).accept(tcp).await.unwrap();
        let frame = SharedFrame::binary(vec![1u8; 16 * 1024]);
        for i in 0..100_000 {
            if let Err(e) = s.queue_shared(&frame) {
                return (i, e.to_string());
            }
            // Try to write without waiting: the reader never reads.
            let _ = tokio::time::timeout(Duration::from_millis(1), s.flush()).await;
        }
        (100_000, String::new())
    });
    let (_tcp, _) = raw_upgrade(addr, "Sec-WebSocket-Version: 13\r\n").await;
    let (queued, err) = server.await.unwrap();
    assert!(queued < 100_000, "queue never filled");
    assert!(err.contains("write buffer full"), "{err}");
}

#[tokio::test]
async fn one_shared_frame_reaches_many_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    const N: usize = 50;
    let server = tokio::spawn(async move {
        let mut sockets = Vec::new();
        for _ in 0..N {
            let (tcp, _) = listener.accept().await.unwrap();
            sockets.push(Acceptor::new().accept(tcp).await.unwrap());
        }
        let frame = SharedFrame::text("to everyone");
        for s in &mut sockets {
            s.queue_shared(&frame).unwrap();
            s.flush().await.unwrap();
        }
        sockets
    });
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(ws::connect(&format!("ws://{addr}/")).await.unwrap().0);
    }
    let _sockets = server.await.unwrap();
    for c in &mut clients {
        assert_eq!(
            c.recv().await.unwrap().unwrap(),
            Message::text("to everyone")
        );
    }
}

#[tokio::test]
async fn hyper_serves_http_and_websocket_on_one_port() {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let acceptor = acceptor.clone();
                    async move {
                        if req.uri().path() != "/ws" {
                            return Ok::<_, std::convert::Infallible>(http::Response::new(
                                Full::new(Bytes::from("plain http")),
                            ));
                        }
                        Ok(match ws::upgrade(&mut req, &acceptor) {
                            Ok((resp, pending)) => {
                                tokio::spawn(async move {
                                    let mut s = pending.await.unwrap();
                                    while let Some(Ok(m)) = s.recv().await {
                                        if m.is_data() {
                                            s.send(m).await.unwrap();
                                        }
                                    }
                                });
                                resp
                            }
                            Err(e) => ws::upgrade::rejection(&e),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let (mut c, _) = ws::connect(&format!("ws://{addr}/ws")).await.unwrap();
    c.send(Message::text("via hyper")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("via hyper"));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("plain http"),
        "{resp}"
    );
    let (_, head) = {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut resp = String::new();
        tcp.read_to_string(&mut resp).await.unwrap();
        ((), resp)
    };
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

#[tokio::test]
async fn wss_with_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key_der =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .unwrap();
    let tls_acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = tls_acceptor.accept(tcp).await.unwrap();
        let mut s = Acceptor::new().accept(tls).await.unwrap();
        while let Some(Ok(m)) = s.recv().await {
            if m.is_data() {
                s.send(m).await.unwrap();
            }
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut c, _) = Connector::new()
        .tls_config(Arc::new(client_tls))
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    assert!(matches!(c.get_ref(), ws::MaybeTlsStream::Tls(_)));
    c.send(Message::text("secret")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), Message::text("secret"));
}

/// An idle connection's cost is mostly this struct plus its task: keep it
/// small (handshake state is boxed and freed after the upgrade).
#[test]
fn idle_connection_state_stays_small() {
    let size = std::mem::size_of::<ws::WebSocket<TcpStream>>();
    assert!(size <= 384, "WebSocket<TcpStream> grew to {size} bytes");
}
