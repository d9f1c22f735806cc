//! RS256 and ES256 tokens end to end, over real sockets: servers whose
//! `token_public_key` is one of the test-only PEM files in
//! `tests/fixtures/` (loaded through `Config::load`, the path `duplex serve`
//! takes), tokens signed here with the matching private key.
//!
//! Checked on `/connection/websocket`: a good token connects, an expired
//! one gets error 109, and `alg: none`, algorithm confusion (HS256 keyed
//! with the public key's PEM text), the other asymmetric algorithm, an
//! HS256 token made with the shared secret and a tampered payload all close
//! with 3500; subscription tokens signed with the private key open a
//! namespace that needs them. On `/socket.io/`: a good token is admitted,
//! bad ones are refused with a `connect_error` saying why.
//!
//! The keys in `tests/fixtures/test-only-*.pem` were made with `openssl`
//! for these tests only; they protect nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use duplex_server::auth::now_secs;
use duplex_server::config::{Config, Sources, TokenKey};
use duplex_server::node::Transport;
use duplex_server::run::{self, Running};
use hub::{NamespaceConfig, NamespaceOptions};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use ws::{MaybeTlsStream, Message, WebSocket};

const WAIT: Duration = Duration::from_secs(5);

const RSA_PRIVATE: &str = include_str!("fixtures/test-only-rs256-private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/test-only-rs256-public.pem");
const EC_PRIVATE: &str = include_str!("fixtures/test-only-es256-private.pem");
const EC_PUBLIC: &str = include_str!("fixtures/test-only-es256-public.pem");

/// A token secret configured next to the public key: HS256 tokens made
/// with it must still be refused, the key pins the algorithm.
const SHARED_SECRET: &str = "shared-secret-that-must-not-work";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ec,
}

impl Kind {
    fn public_key_file(self) -> PathBuf {
        fixture(match self {
            Kind::Rsa => "test-only-rs256-public.pem",
            Kind::Ec => "test-only-es256-public.pem",
        })
    }

    fn public_pem(self) -> &'static str {
        match self {
            Kind::Rsa => RSA_PUBLIC,
            Kind::Ec => EC_PUBLIC,
        }
    }

    fn other(self) -> Kind {
        match self {
            Kind::Rsa => Kind::Ec,
            Kind::Ec => Kind::Rsa,
        }
    }
}

/// Signs `claims` with the private key of `kind` (RS256 or ES256).
fn sign(kind: Kind, claims: &Value) -> String {
    let (alg, key) = match kind {
        Kind::Rsa => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        ),
        Kind::Ec => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        ),
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

/// HS256 with `secret` as the HMAC key.
fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// An unsigned token: header `{"alg":"none"}`, empty signature.
fn alg_none(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// `token` with its payload replaced by `claims`, signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let _payload = parts.next().unwrap();
    let signature = parts.next().unwrap();
    format!("{header}.{}.{signature}", b64.encode(claims.to_string()))
}

fn user_claims(user: &str) -> Value {
    json!({"sub": user, "iat": now_secs(), "exp": now_secs() + 3600})
}

fn expired_claims(user: &str) -> Value {
    json!({"sub": user, "iat": now_secs() - 100, "exp": now_secs() - 10})
}

/// The configuration `duplex serve --token-public-key FILE` builds, with
/// test channels and a memory store on a free port.
fn config(kind: Kind) -> Config {
    let flags = [
        ("listen", "127.0.0.1:0".to_owned()),
        ("storage", "memory".to_owned()),
        ("api_key", "k".to_owned()),
        ("token_secret", SHARED_SECRET.to_owned()),
        (
            "token_public_key",
            kind.public_key_file().display().to_string(),
        ),
        (
            "data_dir",
            std::env::temp_dir()
                .join("duplex-tokens-test-unused")
                .display()
                .to_string(),
        ),
    ];
    let sources = Sources {
        file: None,
        env: Vec::new(),
        flags: flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    let mut config = Config::load(&sources).expect("config loads").config;
    let expected = match kind {
        Kind::Rsa => TokenKey::RsaPem(RSA_PUBLIC.into()),
        Kind::Ec => TokenKey::EcPem(EC_PUBLIC.into()),
    };
    assert_eq!(config.token_key, expected);
    config.channel = NamespaceOptions {
        history_size: 10,
        history_ttl: Duration::from_secs(60),
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    // Subscribing here needs a subscription token.
    config.namespaces = vec![NamespaceConfig {
        name: "private".into(),
        options: NamespaceOptions {
            presence: true,
            ..Default::default()
        },
    }];
    config.shutdown_drain = Duration::from_secs(3);
    config
}

async fn start(kind: Kind) -> Running {
    run::start(config(kind)).await.expect("server starts")
}

/// A client speaking the JSON protocol by hand.
struct Client {
    ws: WebSocket<MaybeTlsStream>,
    next_id: u32,
    inbox: VecDeque<Value>,
    close: Option<(u16, String)>,
}

impl Client {
    async fn open(addr: SocketAddr) -> Client {
        let url = format!("ws://{addr}/connection/websocket");
        let (ws, _) = ws::connect(&url).await.expect("websocket opens");
        Client {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            close: None,
        }
    }

    /// Opens a connection and sends `connect` with `token`; the reply.
    async fn connect(addr: SocketAddr, token: &str) -> (Client, Value) {
        let mut c = Client::open(addr).await;
        let reply = c.call("connect", json!({ "token": token })).await;
        (c, reply)
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Reads one frame into the inbox; false once closed.
    async fn read_frame(&mut self) -> bool {
        let message = tokio::time::timeout(WAIT, self.ws.recv())
            .await
            .expect("server answers in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                for line in text.as_str().split('\n') {
                    let value: Value = serde_json::from_str(line).expect("JSON from server");
                    if value == json!({}) {
                        self.send_raw("{}").await;
                    } else {
                        self.inbox.push_back(value);
                    }
                }
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.close = frame.map(|f| (f.code.as_u16(), f.reason.as_str().to_owned()));
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
        self.send_raw(&command.to_string()).await;
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v["id"] == id) {
                return self.inbox.remove(pos).unwrap_or_default();
            }
            assert!(
                self.read_frame().await,
                "closed while waiting for reply {id}: {:?}",
                self.close
            );
        }
    }

    async fn push(&mut self) -> Value {
        loop {
            if let Some(pos) = self.inbox.iter().position(|v| v.get("push").is_some()) {
                return self.inbox.remove(pos).unwrap_or_default()["push"].take();
            }
            assert!(
                self.read_frame().await,
                "closed while waiting for a push: {:?}",
                self.close
            );
        }
    }

    /// Reads until the server closes; the close code and reason.
    async fn closed(&mut self) -> Option<(u16, String)> {
        while self.close.is_none() {
            if !self.read_frame().await {
                break;
            }
        }
        self.close.clone()
    }
}

fn error_code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

/// Sends `connect` with `token` and expects the connection closed with
/// 3500 "invalid token" and no reply.
async fn assert_refused_3500(addr: SocketAddr, token: &str, what: &str) {
    let mut c = Client::open(addr).await;
    c.send_raw(&json!({"id": 1, "connect": {"token": token}}).to_string())
        .await;
    let closed = c.closed().await;
    assert_eq!(
        closed,
        Some((3500, "invalid token".to_owned())),
        "{what}: {token}; inbox {:?}",
        c.inbox
    );
    assert!(
        c.inbox.iter().all(|v| v.get("connect").is_none()),
        "{what}: connected anyway: {:?}",
        c.inbox
    );
}

/// Everything a server with a `kind` key must accept and refuse on the
/// plain WebSocket.
async fn websocket_connect_rules(kind: Kind) {
    let server = start(kind).await;
    let addr = server.addr;

    // A good token connects, with the claims it carries.
    let info = json!({"name": "Ann"});
    let mut claims = user_claims("42");
    claims["info"] = info.clone();
    let (mut c, reply) = Client::connect(addr, &sign(kind, &claims)).await;
    let r = &reply["connect"];
    assert!(r["client"].is_string(), "{kind:?}: {reply}");
    assert_eq!(r["expires"], true, "{reply}");
    assert!(
        r["ttl"]
            .as_u64()
            .is_some_and(|t| (3590..=3600).contains(&t)),
        "{reply}"
    );
    let clients = server.node.registry().user_clients("42");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].transport(), Transport::WebSocket);
    // ...and is usable.
    let reply = c.call("subscribe", json!({"channel": "news"})).await;
    assert!(reply.get("subscribe").is_some(), "{reply}");

    // Fractional NumericDates (PyJWT with `time.time() + 3600`, JS
    // `Date.now() / 1000`) are dates like any other.
    let now = now_secs() as f64;
    let fractional = json!({"sub": "43", "iat": now + 0.5, "exp": now + 3600.5});
    let (_fractional, reply) = Client::connect(addr, &sign(kind, &fractional)).await;
    assert_eq!(reply["connect"]["expires"], true, "{kind:?}: {reply}");

    // Expired: error 109 with the connection left open for the client
    // to close (the SDKs fetch a new token).
    let (_expired, reply) = Client::connect(addr, &sign(kind, &expired_claims("42"))).await;
    assert_eq!(error_code(&reply), 109, "{kind:?}: {reply}");
    assert_eq!(reply["error"]["message"], "token expired");

    let good = sign(kind, &user_claims("42"));
    let refused = [
        ("alg none", alg_none(&user_claims("42"))),
        (
            "HS256 keyed with the public key PEM (algorithm confusion)",
            sign_hs256(kind.public_pem().as_bytes(), &user_claims("42")),
        ),
        (
            "HS256 keyed with the other public key PEM",
            sign_hs256(kind.other().public_pem().as_bytes(), &user_claims("42")),
        ),
        (
            "the other asymmetric algorithm",
            sign(kind.other(), &user_claims("42")),
        ),
        (
            "HS256 with the configured shared secret",
            sign_hs256(SHARED_SECRET.as_bytes(), &user_claims("42")),
        ),
        (
            "payload changed after signing",
            tampered(&good, &user_claims("admin")),
        ),
        ("signature stripped", {
            let cut = good.rfind('.').unwrap();
            good[..=cut].to_owned()
        }),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, token) in &refused {
        assert_refused_3500(addr, token, &format!("{kind:?} server, {what}")).await;
    }
    // None of those got in; the good clients are still there.
    assert_eq!(server.node.registry().num_clients(), 2);
    assert_eq!(server.node.registry().user_clients("admin").len(), 0);
    let reply = c.call("unsubscribe", json!({"channel": "news"})).await;
    assert_eq!(reply["unsubscribe"], json!({}), "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn rs256_connect_tokens() {
    websocket_connect_rules(Kind::Rsa).await;
}

#[tokio::test]
async fn es256_connect_tokens() {
    websocket_connect_rules(Kind::Ec).await;
}

/// Subscription tokens signed with the private key open `private:`, where
/// subscribing needs one.
async fn subscription_token_rules(kind: Kind) {
    let server = start(kind).await;
    let (mut c, reply) = Client::connect(server.addr, &sign(kind, &user_claims("42"))).await;
    assert!(reply.get("connect").is_some(), "{reply}");

    let reply = c
        .call("subscribe", json!({"channel": "private:room"}))
        .await;
    assert_eq!(error_code(&reply), 103, "no token: {reply}");

    // Refused subscription tokens: permission denied, the connection lives.
    let sub = |channel: &str| json!({"sub": "42", "channel": channel, "exp": now_secs() + 600});
    let bad = [
        ("alg none", alg_none(&sub("private:room"))),
        (
            "HS256 keyed with the public key PEM",
            sign_hs256(kind.public_pem().as_bytes(), &sub("private:room")),
        ),
        (
            "the other asymmetric algorithm",
            sign(kind.other(), &sub("private:room")),
        ),
        (
            "HS256 with the shared secret",
            sign_hs256(SHARED_SECRET.as_bytes(), &sub("private:room")),
        ),
    ];
    for (what, token) in &bad {
        let reply = c
            .call(
                "subscribe",
                json!({"channel": "private:room", "token": token}),
            )
            .await;
        assert_eq!(error_code(&reply), 103, "{kind:?}, {what}: {reply}");
    }
    // Expired: 109, so that the SDK fetches a fresh one.
    let expired = json!({"sub": "42", "channel": "private:room", "exp": now_secs() - 5});
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "private:room", "token": sign(kind, &expired)}),
        )
        .await;
    assert_eq!(error_code(&reply), 109, "{reply}");

    // The real thing.
    let mut claims = sub("private:room");
    claims["info"] = json!({"role": "moderator"});
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "private:room", "token": sign(kind, &claims)}),
        )
        .await;
    assert_eq!(reply["subscribe"]["expires"], true, "{kind:?}: {reply}");
    let channel: hub::ChannelName = "private:room".parse().unwrap();
    let presence = server.node.hub().presence(&channel).await.unwrap();
    assert_eq!(presence.len(), 1);
    assert_eq!(
        presence[0].chan_info.as_deref(),
        Some(&br#"{"role":"moderator"}"#[..])
    );
    server
        .node
        .hub()
        .publish(&channel, hub::PublishRequest::new(r#""for 42""#.to_owned()))
        .await
        .unwrap();
    let push = c.push().await;
    assert_eq!(push["channel"], "private:room", "{push}");
    assert_eq!(push["pub"]["data"], "for 42");

    // A valid signature on someone else's subscription token: the
    // connection is closed as holding an invalid token.
    let theirs = json!({"sub": "7", "channel": "private:other"});
    c.send_raw(
        &json!({"id": 99, "subscribe": {"channel": "private:other", "token": sign(kind, &theirs)}})
            .to_string(),
    )
    .await;
    assert_eq!(c.closed().await.map(|c| c.0), Some(3500));
    server.shutdown().await;
}

#[tokio::test]
async fn rs256_subscription_tokens() {
    subscription_token_rules(Kind::Rsa).await;
}

#[tokio::test]
async fn es256_subscription_tokens() {
    subscription_token_rules(Kind::Ec).await;
}

// ---- Socket.IO ----

async fn sio_connect(
    addr: SocketAddr,
    token: &str,
) -> Result<socketio_client::Client, socketio_client::Error> {
    socketio_client::Client::builder(format!("http://{addr}"))
        .reconnection(false)
        .timeout(WAIT)
        .auth(json!({ "token": token }))
        .connect()
        .await
}

fn refusal(result: Result<socketio_client::Client, socketio_client::Error>) -> String {
    match result {
        Err(socketio_client::Error::ConnectRefused { message, .. }) => message,
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("connected"),
    }
}

async fn socketio_rules(kind: Kind) {
    let server = start(kind).await;
    let client = sio_connect(server.addr, &sign(kind, &user_claims("42")))
        .await
        .expect("a good token is admitted");
    assert!(client.is_connected());
    let clients = server.node.registry().user_clients("42");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].transport(), Transport::SocketIo);
    assert_eq!(Some(clients[0].client_id().to_owned()), client.id());
    let ack = client
        .emit_with_ack("subscribe", &(json!({"channel": "news"}),), WAIT)
        .await
        .expect("ack");
    let result = ack.args.first().cloned().unwrap_or(Value::Null);
    assert!(result.get("error").is_none(), "{result}");

    // A subscription token signed with the private key works here too.
    let sub = json!({"sub": "42", "channel": "private:room", "exp": now_secs() + 600});
    let ack = client
        .emit_with_ack(
            "subscribe",
            &(json!({"channel": "private:room", "token": sign(kind, &sub)}),),
            WAIT,
        )
        .await
        .expect("ack");
    let result = ack.args.first().cloned().unwrap_or(Value::Null);
    assert_eq!(result["expires"], true, "{result}");

    let refused = [
        ("token expired", sign(kind, &expired_claims("42"))),
        ("invalid token", alg_none(&user_claims("42"))),
        (
            "invalid token",
            sign_hs256(kind.public_pem().as_bytes(), &user_claims("42")),
        ),
        ("invalid token", sign(kind.other(), &user_claims("42"))),
        (
            "invalid token",
            sign_hs256(SHARED_SECRET.as_bytes(), &user_claims("42")),
        ),
    ];
    for (message, token) in &refused {
        let got = refusal(sio_connect(server.addr, token).await);
        assert_eq!(&got, message, "{kind:?}: {token}");
    }
    assert_eq!(server.node.registry().num_clients(), 1);
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn rs256_socketio_auth() {
    socketio_rules(Kind::Rsa).await;
}

#[tokio::test]
async fn es256_socketio_auth() {
    socketio_rules(Kind::Ec).await;
}
