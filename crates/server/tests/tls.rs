//! TLS over real sockets: with `tls_cert` and `tls_key`, `/health` answers
//! over https and a Centrifugo client connects over wss on the same port;
//! after new files are written and SIGHUP is sent, new connections get the
//! new certificate while a WebSocket opened before keeps working.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex_server::auth::Auth;
use duplex_server::config::{Config, StorageConfig, TokenKey};
use duplex_server::run::{self, Running};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "tls-secret";
const WAIT: Duration = Duration::from_secs(5);

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "duplex-tls-{tag}-{}-{}",
            std::process::id(),
            duplex_server::util::random_id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh self-signed certificate for localhost and 127.0.0.1, written to
/// `cert.pem` and `key.pem` in `dir` (replacing them atomically); returns
/// the certificate.
fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    for (name, pem) in [
        ("cert.pem", cert.cert.pem()),
        ("key.pem", cert.signing_key.serialize_pem()),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    cert.cert.der().clone()
}

/// A client configuration trusting only `cert`.
fn trusting(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn start(dir: &Path) -> Running {
    start_with(dir, 0).await
}

async fn start_with(dir: &Path, max_connections: usize) -> Running {
    let config = Config {
        max_connections,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage: StorageConfig::Memory,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: "tls-key".into(),
        tls_cert: Some(dir.join("cert.pem")),
        tls_key: Some(dir.join("key.pem")),
        shutdown_drain: Duration::from_secs(2),
        ..Default::default()
    };
    run::start(config).await.expect("start")
}

/// `GET /health` over https with a client trusting `cert`: the status, or
/// the TLS error.
async fn https_health(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> Result<(u16, String), std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(trusting(cert));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    // The answer is what counts, however the server ends the stream.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

async fn wss(addr: SocketAddr, cert: &CertificateDer<'static>) -> WebSocket<MaybeTlsStream> {
    let url = format!("wss://localhost:{}/connection/websocket", addr.port());
    // `localhost` may resolve to ::1 first; the server is on 127.0.0.1.
    let url = if tokio::net::lookup_host(("localhost", addr.port()))
        .await
        .map(|mut a| a.next().is_some_and(|a| a.is_ipv4()))
        .unwrap_or(false)
    {
        url
    } else {
        format!("wss://127.0.0.1:{}/connection/websocket", addr.port())
    };
    let (ws, _) = ws::Connector::new()
        .tls_config(trusting(cert))
        .connect(&url)
        .await
        .expect("wss upgrade");
    ws
}

/// Sends `command` and returns the reply with its `id` (skipping pings).
async fn command(ws: &mut WebSocket<MaybeTlsStream>, command: Value) -> Value {
    let id = command["id"].clone();
    ws.send(Message::text(command.to_string()))
        .await
        .expect("send");
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.recv())
            .await
            .expect("reply in time");
        if let Some(Ok(Message::Text(text))) = message {
            for line in text.as_str().split('\n') {
                let value: Value = serde_json::from_str(line).expect("JSON");
                if value["id"] == id {
                    return value;
                }
            }
        } else {
            panic!("connection ended: {message:?}");
        }
    }
}

fn token(user: &str) -> String {
    Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect(user, Some(3600), None, &[])
        .unwrap()
}

#[tokio::test]
async fn https_and_wss_on_one_port_and_sighup_reloads_the_certificate() {
    let dir = TempDir::new("reload");
    let first = write_cert(&dir.0);
    let server = start(&dir.0).await;
    let addr = server.addr;

    let (status, body) = https_health(addr, &first).await.expect("https");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let mut old = wss(addr, &first).await;
    let reply = command(
        &mut old,
        json!({"id": 1, "connect": {"token": token("alice")}}),
    )
    .await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));

    // New files, then SIGHUP: new connections see the new certificate.
    let second = write_cert(&dir.0);
    assert_ne!(first, second);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    loop {
        match https_health(addr, &second).await {
            Ok((200, _)) => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "new certificate not served: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(
        https_health(addr, &first).await.is_err(),
        "a client trusting only the old certificate must now fail"
    );
    let mut new = wss(addr, &second).await;
    let reply = command(
        &mut new,
        json!({"id": 1, "connect": {"token": token("bob")}}),
    )
    .await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    // The connection opened before the reload still works.
    let reply = command(&mut old, json!({"id": 2, "subscribe": {"channel": "news"}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(reply.get("subscribe").is_some(), "{reply}");

    // A reload that fails (a broken key) keeps the current certificate.
    std::fs::write(dir.0.join("key.pem"), "not a key").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = https_health(addr, &second)
        .await
        .expect("https after a failed reload");
    assert_eq!(status, 200, "{body}");

    server.shutdown().await;
}

#[tokio::test]
async fn over_the_connection_limit_the_503_comes_over_tls() {
    let dir = TempDir::new("limit");
    let cert = write_cert(&dir.0);
    let server = start_with(&dir.0, 1).await;
    let addr = server.addr;
    let held = wss(addr, &cert).await;
    let (status, answer) = https_health(addr, &cert).await.expect("TLS handshake");
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    drop(held);
    let deadline = Instant::now() + WAIT;
    while https_health(addr, &cert).await.map(|(s, _)| s).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "the freed place is not reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}
