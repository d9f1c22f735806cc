//! History across restarts, over real sockets.
//!
//! With SQLite storage a channel keeps its epoch and offsets when the node
//! stops and starts again on the same file: publishing continues the
//! numbering, history holds what came before, and a client that was
//! subscribed before the restart recovers exactly what it missed. With
//! memory storage the epoch changes, so the same client is told it could
//! not recover (never handed a silent gap). Finally the real binary is
//! stopped with SIGTERM right after a publish: it exits 0 with the
//! publication flushed to the file.
//!
//! Servers are made with `run::start` on 127.0.0.1:0 (and the `duplex`
//! binary for the SIGTERM case); publications go through `POST /api/publish`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use duplex_server::auth::Auth;
use duplex_server::config::{Config, StorageConfig, TokenKey};
use duplex_server::run::{self, Running};
use hub::NamespaceOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws::{MaybeTlsStream, Message, WebSocket};

const SECRET: &str = "restart-test-secret";
const API_KEY: &str = "restart-test-key";
const WAIT: Duration = Duration::from_secs(10);

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "duplex-restart-{}",
            duplex_server::util::random_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(storage: StorageConfig) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        storage,
        token_key: TokenKey::Hmac(SECRET.into()),
        token_secret: SECRET.into(),
        api_key: API_KEY.into(),
        channel: NamespaceOptions {
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_positioning: true,
            allow_subscribe_for_client: true,
            ..Default::default()
        },
        shutdown_drain: Duration::from_secs(3),
        ..Default::default()
    }
}

async fn start(storage: &StorageConfig) -> Running {
    run::start(config(storage.clone()))
        .await
        .expect("server starts")
}

fn token(user: &str) -> String {
    Auth::new(&TokenKey::Hmac(SECRET.into()))
        .unwrap()
        .sign_connect(user, Some(3600), None, &[])
        .unwrap()
}

/// `POST /api/<method>` with the key; the status and the JSON body.
async fn api(addr: SocketAddr, method: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST /api/{method} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("API answers in time")
        .unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

/// Publishes `data` into `channel`; the result's (epoch, offset).
async fn publish(addr: SocketAddr, channel: &str, data: Value) -> (String, u64) {
    let (status, answer) = api(addr, "publish", &json!({"channel": channel, "data": data})).await;
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    (
        result["epoch"].as_str().expect("epoch").to_owned(),
        result["offset"].as_u64().expect("offset"),
    )
}

/// Everything kept for `channel`: ((offset, data) list, epoch, top offset).
async fn history(addr: SocketAddr, channel: &str) -> (Vec<(u64, Value)>, String, u64) {
    let (status, answer) = api(addr, "history", &json!({"channel": channel, "limit": -1})).await;
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let publications = result["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| (p["offset"].as_u64().unwrap_or(0), p["data"].clone()))
        .collect();
    (
        publications,
        result["epoch"].as_str().unwrap().to_owned(),
        result["offset"].as_u64().unwrap_or(0),
    )
}

/// A client speaking the JSON protocol by hand.
struct Client {
    ws: WebSocket<MaybeTlsStream>,
    next_id: u32,
    inbox: VecDeque<Value>,
    close: Option<u16>,
}

impl Client {
    async fn connected(addr: SocketAddr, user: &str) -> Client {
        let url = format!("ws://{addr}/connection/websocket");
        let (ws, _) = ws::connect(&url).await.expect("websocket opens");
        let mut c = Client {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            close: None,
        };
        let reply = c.call("connect", json!({"token": token(user)})).await;
        assert!(reply["connect"]["client"].is_string(), "{reply}");
        c
    }

    async fn read_frame(&mut self) -> bool {
        let message = tokio::time::timeout(WAIT, self.ws.recv())
            .await
            .expect("server answers in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        let _ = self.ws.send(Message::text("{}")).await;
                    } else {
                        self.inbox.push_back(value);
                    }
                }
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.close = frame.map(|f| f.code.as_u16());
                while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.ws.recv()).await {}
                false
            }
            Some(Ok(_)) => true,
            Some(Err(_)) | None => false,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id });
        command[method] = params;
        self.ws
            .send(Message::text(command.to_string()))
            .await
            .expect("send");
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v["id"] == id) {
                return self.inbox.remove(pos).unwrap_or_default();
            }
            assert!(self.read_frame().await, "closed: {:?}", self.close);
        }
    }

    /// The next publication push: (channel, offset, data).
    async fn publication(&mut self) -> (String, u64, Value) {
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v.get("push").is_some()) {
                let push = self.inbox.remove(pos).unwrap_or_default()["push"].take();
                assert!(push.get("pub").is_some(), "not a publication: {push}");
                return (
                    push["channel"].as_str().unwrap_or("").to_owned(),
                    push["pub"]["offset"].as_u64().unwrap_or(0),
                    push["pub"]["data"].clone(),
                );
            }
            assert!(self.read_frame().await, "closed: {:?}", self.close);
        }
    }

    async fn close_code(&mut self) -> Option<u16> {
        while self.close.is_none() {
            if !self.read_frame().await {
                break;
            }
        }
        self.close
    }
}

/// Offsets and data of a subscribe reply's `publications`.
fn publications(sub: &Value) -> Vec<(u64, Value)> {
    sub["publications"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| (p["offset"].as_u64().unwrap_or(0), p["data"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Before the restart: a recoverable subscriber sees `n` publications
/// made through the API. Returns the subscriber, the epoch and the last
/// offset it saw.
async fn subscribe_and_publish(addr: SocketAddr, n: u64) -> (Client, String, u64) {
    let mut c = Client::connected(addr, "1").await;
    let reply = c
        .call("subscribe", json!({"channel": "news", "recoverable": true}))
        .await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["recoverable"], true, "{reply}");
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    for i in 1..=n {
        let (e, offset) = publish(addr, "news", json!({"n": i})).await;
        assert_eq!((e.as_str(), offset), (epoch.as_str(), i));
    }
    let mut last = 0;
    for i in 1..=n {
        let (channel, offset, data) = c.publication().await;
        assert_eq!(
            (channel.as_str(), offset, data),
            ("news", i, json!({"n": i}))
        );
        last = offset;
    }
    (c, epoch, last)
}

/// Shuts the server down; the connected client is closed with 3001.
async fn shutdown_with(server: Running, client: &mut Client) {
    let (code, ()) = tokio::join!(client.close_code(), server.shutdown());
    assert_eq!(code, Some(3001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_epoch_and_offsets_across_restart() {
    let dir = TempDir::new();
    let storage = StorageConfig::Sqlite(dir.path("db.sqlite3"));

    let server = start(&storage).await;
    let (mut before, epoch, seen) = subscribe_and_publish(server.addr, 5).await;
    assert_eq!(seen, 5);
    let (kept, e, top) = history(server.addr, "news").await;
    assert_eq!((kept.len(), e.as_str(), top), (5, epoch.as_str(), 5));
    shutdown_with(server, &mut before).await;

    let server = start(&storage).await;
    let addr = server.addr;
    // The numbering continues in the same epoch.
    let (e, offset) = publish(addr, "news", json!({"n": 6})).await;
    assert_eq!((e.as_str(), offset), (epoch.as_str(), 6));
    let (kept, e, top) = history(addr, "news").await;
    let expected: Vec<(u64, Value)> = (1..=6).map(|i| (i, json!({"n": i}))).collect();
    assert_eq!(kept, expected);
    assert_eq!((e.as_str(), top), (epoch.as_str(), 6));
    let (_, offset) = publish(addr, "news", json!({"n": 7})).await;
    assert_eq!(offset, 7);

    // The subscriber from before the restart recovers exactly what it
    // missed, then gets live publications without a gap or a repeat.
    let mut after = Client::connected(addr, "1").await;
    let reply = after
        .call(
            "subscribe",
            json!({"channel": "news", "recoverable": true, "recover": true, "epoch": epoch, "offset": seen}),
        )
        .await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["was_recovering"], true, "{reply}");
    assert_eq!(sub["recovered"], true, "{reply}");
    assert_eq!(sub["epoch"], json!(epoch));
    assert_eq!(sub["offset"], 7);
    assert_eq!(
        publications(sub),
        [(6, json!({"n": 6})), (7, json!({"n": 7}))]
    );
    publish(addr, "news", json!({"n": 8})).await;
    assert_eq!(
        after.publication().await,
        ("news".to_owned(), 8, json!({"n": 8}))
    );
    assert!(after.inbox.is_empty(), "{:?}", after.inbox);
    shutdown_with(server, &mut after).await;

    // A third start still agrees.
    let server = start(&storage).await;
    let (kept, e, top) = history(server.addr, "news").await;
    assert_eq!((kept.len(), e.as_str(), top), (8, epoch.as_str(), 8));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_restart_is_a_new_epoch_and_not_recovered() {
    let storage = StorageConfig::Memory;
    let server = start(&storage).await;
    let (mut before, epoch, seen) = subscribe_and_publish(server.addr, 5).await;
    shutdown_with(server, &mut before).await;

    let server = start(&storage).await;
    let addr = server.addr;
    let (new_epoch, offset) = publish(addr, "news", json!({"n": "after"})).await;
    assert_ne!(new_epoch, epoch, "memory storage cannot keep the epoch");
    assert_eq!(offset, 1);
    let (kept, _, _) = history(addr, "news").await;
    assert_eq!(kept, [(1, json!({"n": "after"}))]);

    // Recovering from the old position must say it did not work: no
    // `recovered`, no publications, the new position.
    let mut after = Client::connected(addr, "1").await;
    let reply = after
        .call(
            "subscribe",
            json!({"channel": "news", "recoverable": true, "recover": true, "epoch": epoch, "offset": seen}),
        )
        .await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["was_recovering"], true, "{reply}");
    assert!(
        sub.get("recovered").is_none() || sub["recovered"] == false,
        "{reply}"
    );
    assert!(publications(sub).is_empty(), "{reply}");
    assert_eq!(sub["epoch"], json!(new_epoch));
    assert_eq!(sub["offset"], 1);
    // Live delivery continues from the new position.
    publish(addr, "news", json!("live")).await;
    assert_eq!(
        after.publication().await,
        ("news".to_owned(), 2, json!("live"))
    );
    shutdown_with(server, &mut after).await;
}

// ---- the real binary ----

/// A running `duplex serve`, killed on drop if still running.
struct Binary {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Binary {
    /// Starts `duplex serve` on a free port with SQLite at `db` and waits
    /// for its "listening on" log line.
    fn start(dir: &Path, db: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .env_clear()
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--api-key", API_KEY])
            .args(["--token-secret", SECRET, "--data-dir"])
            .arg(dir)
            .arg("--storage")
            .arg(format!("sqlite:{}", db.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("duplex starts");
        let err = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match stderr.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.trim().parse().expect("address in the log");
                        return Binary {
                            child,
                            addr,
                            stderr,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("duplex did not start; stderr: {seen:#?}");
                }
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; whether it exited 0, and the
    /// log lines written meanwhile.
    async fn terminate(mut self) -> (bool, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "duplex still running {WAIT:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let lines = self.stderr.try_iter().collect();
        (status.success(), lines)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn binary_flushes_on_sigterm_and_exits_0() {
    let dir = TempDir::new();
    let db = dir.path("history.sqlite3");

    let server = Binary::start(&dir.0, &db);
    let mut client = Client::connected(server.addr, "1").await;
    let reply = client
        .call("subscribe", json!({"channel": "news", "recoverable": true}))
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    let mut epoch = String::new();
    for i in 1..=20 {
        let (e, offset) = publish(server.addr, "news", json!(i)).await;
        assert_eq!(offset, i);
        epoch = e;
    }
    // The last publication goes out right before the signal.
    let (_, last) = publish(server.addr, "news", json!("last words")).await;
    assert_eq!(last, 21);
    let (stopped, code) = tokio::join!(server.terminate(), client.close_code());
    let (ok, log) = stopped;
    assert!(ok, "exit status not 0; log: {log:#?}");
    assert_eq!(code, Some(3001), "clients are closed as in a shutdown");
    assert!(
        log.iter().any(|l| l.contains("storage flushed")),
        "{log:#?}"
    );

    let server = Binary::start(&dir.0, &db);
    let (kept, e, top) = history(server.addr, "news").await;
    assert_eq!(e, epoch, "same epoch after the restart");
    assert_eq!(top, 21);
    assert_eq!(kept.len(), 21);
    assert_eq!(kept.last(), Some(&(21, json!("last words"))));
    let (ok, log) = server.terminate().await;
    assert!(ok, "{log:#?}");
}
