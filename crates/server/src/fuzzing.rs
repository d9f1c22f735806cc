//! Entry points for the fuzz targets in `crates/server/fuzz` (not a stable
//! API; hidden from the docs).
//!
//! Each one runs the code the server runs on untrusted text, with nothing
//! from outside: [`decode_api_body`] answers one server API request through
//! [`api::handle`] on a fresh in-memory node (no socket, no disk), and
//! [`parse_config_text`] assembles a configuration from a config file's text
//! (and `DUPLEX_*` variables) the way `duplex serve` does, with files named
//! in it read from a fixed in-memory set instead of the disk.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hub::{
    ChannelName, ClientInfo, EncodedPublication, Hub, NamespaceConfig, NamespaceOptions,
    Namespaces, PublishRequest, SubscribeOptions, Subscriber,
};

use crate::api;
use crate::auth::Auth;
use crate::config::{self, Config, Problem, StorageConfig, TokenKey};
use crate::node::Node;
use crate::testing::RecordingClient;

/// The API key the fuzzing node expects (sent by [`decode_api_body`]).
pub const API_KEY: &str = "fuzz-api-key";

/// The name config problems carry for the file (`fuzz.toml:LINE: ...`).
pub const CONFIG_PATH: &str = "fuzz.toml";

/// An answer of the server API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiReply {
    /// The HTTP status.
    pub status: u16,
    /// The body (JSON).
    pub body: Vec<u8>,
}

/// Answers `POST /api/<method>` with `body`, with the right API key, on a
/// fresh node kept in memory. The node has subscribers in `news`,
/// `chat:lobby` and `chat:room` (users `1` and `2`, presence on), a
/// publication in each, the default channel options, and a namespace
/// `chat` (history of 10) and `plain` (no history, no presence), so that
/// every method has something to find. `None` only if that node could not
/// be built.
pub fn decode_api_body(method: &str, body: &[u8]) -> Option<ApiReply> {
    RUNTIME.with(|runtime| {
        let runtime = runtime.as_ref()?;
        runtime.block_on(async {
            let node = api_node().await?;
            let request = Request::builder()
                .method(Method::POST)
                // The router passes the method on; the URI is not read.
                .uri("/api")
                .header("x-api-key", API_KEY)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::copy_from_slice(body)))
                .ok()?;
            let response = api::handle(&node, method, request).await;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some(ApiReply {
                status,
                body: body.to_vec(),
            })
        })
    })
}

thread_local! {
    /// One runtime per thread, reused: the node is new for every request.
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

/// The node [`decode_api_body`] asks.
async fn api_node() -> Option<Node> {
    let chat = NamespaceOptions {
        presence: true,
        join_leave: true,
        history_size: 10,
        history_ttl: Duration::from_secs(60),
        ..NamespaceOptions::default()
    };
    let config = Config {
        storage: StorageConfig::Memory,
        api_key: API_KEY.to_owned(),
        token_secret: "fuzz-token-secret".to_owned(),
        token_key: TokenKey::Hmac("fuzz-token-secret".to_owned()),
        node_name: "fuzz".to_owned(),
        namespaces: vec![
            NamespaceConfig {
                name: "chat".to_owned(),
                options: chat,
            },
            NamespaceConfig {
                name: "plain".to_owned(),
                options: NamespaceOptions::default(),
            },
        ],
        ..Config::default()
    };
    let namespaces = Namespaces::new(config.channel.clone(), config.namespaces.clone()).ok()?;
    let auth = Auth::new(&config.token_key).ok()?;
    // The hub's default store is in memory, without a cleanup task.
    let hub = Hub::builder(namespaces).build();
    let node = Node::new(Arc::new(config), hub, auth);
    for (channel, user, client) in [
        ("news", "1", "c1"),
        ("news", "2", "c2"),
        ("chat:lobby", "1", "c1"),
        ("chat:room", "2", "c3"),
    ] {
        let channel = ChannelName::new(channel).ok()?;
        let options = SubscribeOptions {
            info: ClientInfo::new(user, client),
            join_leave: true,
            recover_since: None,
        };
        let subscribed = node
            .hub()
            .subscribe(&channel, Arc::new(Quiet), options)
            .await
            .ok()?;
        subscribed.activation.activate();
        let request = PublishRequest {
            data: Bytes::from_static(br#"{"text":"hello"}"#),
            info: None,
            tags: Default::default(),
            idempotency_key: None,
            skip_history: false,
        };
        node.hub().publish(&channel, request).await.ok()?;
        if !node
            .registry()
            .user_clients(user)
            .iter()
            .any(|c| c.client_id() == client)
        {
            node.registry().add(RecordingClient::new(client, user));
        }
    }
    Some(node)
}

/// A subscriber that takes everything and keeps nothing.
struct Quiet;

impl Subscriber for Quiet {
    fn deliver(&self, _: &Arc<EncodedPublication>) -> bool {
        true
    }
}

/// Assembles the configuration from a config file's `text` as `duplex
/// serve --config` does (defaults, then the file), without the secrets
/// file. Problems carry [`CONFIG_PATH`] and their line.
pub fn parse_config_text(text: &str) -> Result<Config, Vec<Problem>> {
    parse_config(text, &[])
}

/// [`parse_config_text`] with `DUPLEX_*` variables (name, value) over the
/// file. Files the text names are read from [`CONFIG_FILES`] only.
pub fn parse_config(text: &str, env: &[(String, String)]) -> Result<Config, Vec<Problem>> {
    config::assemble_offline(text, Path::new(CONFIG_PATH), env, read_config_file)
}

/// The files a fuzzed config can name (`token_public_key = "rsa.pem"`):
/// an RSA and a P-256 public key, a P-384 one (refused), and a private key
/// (refused). Any other path cannot be read.
pub const CONFIG_FILES: &[(&str, &str)] = &[
    ("rsa.pem", RSA_PUB),
    ("ec.pem", EC_P256_PUB),
    ("p384.pem", EC_P384_PUB),
    (
        "private.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ),
];

fn read_config_file(path: &Path) -> io::Result<String> {
    CONFIG_FILES
        .iter()
        .find(|(name, _)| Path::new(name) == path)
        .map(|(_, text)| (*text).to_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not one of the fuzzing files"))
}

/// Test-only public key (no private half anywhere), shared with the config tests.
pub(crate) const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjWYqdTIhhNsxtIH8FrQd
NnK/0Jah/AKdUTBXpH5YL09XPoXAcXoMdySsOlto0DSRKGmzezXmF0EP4iWy5dYu
mEmWD++DiHbmfjEn4I5vJEXn7Chb21SrpUB4QdQ/prOVZLoR3DoAAEGc2aY8xFxd
w/B398Jq1LseOLUarEceqXsk2aj2yjwd4hJcuHQ+VhcTuvolwTaZvg1D2ZYkex2N
xwrLC+BpY7x1KHBbeOeCtuWZTv9eLaXGQembVroxPjRhhg5j+RFNBsnuaREjyUSj
qEYW7eoUH/XS4bwhbp4PdoOj82tJm9u2zCsRMhzurenprbrxPwK/N0bAnCGuunJ7
WwIDAQAB
-----END PUBLIC KEY-----
";

/// Test-only public key (no private half anywhere), shared with the config tests.
pub(crate) const EC_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEh4ouq1Qj+FweNoyf/eD88SoRdO1b
TfDuiscThAwM3iwSDfeju7RKTHeZuwdoswR5TblDE748VG61iRH8XCSFJQ==
-----END PUBLIC KEY-----
";

/// Test-only public key (no private half anywhere), shared with the config tests.
pub(crate) const EC_P384_PUB: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEoVE46oxBtt3Uv9agJY3Dm/IEMriC902J
1VIvx3ZaKZlkAnGb++BvrKpFZHFPywOsO5zMVJypB9SlNqUrlsRg6V+WpV+QD6L6
c7OUwXKBTlwbPxdAMD3O6o3kGwYudNnh
-----END PUBLIC KEY-----
";

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: &str, body: &str) -> (u16, serde_json::Value) {
        let reply = decode_api_body(method, body.as_bytes()).unwrap();
        (reply.status, serde_json::from_slice(&reply.body).unwrap())
    }

    #[test]
    fn the_api_node_has_something_for_every_method() {
        let (status, v) = api("history", r#"{"channel":"chat:lobby","limit":-1}"#);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["result"]["publications"][0]["data"]["text"], "hello");
        let (_, v) = api("presence_stats", r#"{"channel":"news"}"#);
        assert_eq!(v["result"]["num_clients"], 2, "{v}");
        let (_, v) = api("channels", r#"{"pattern":"chat:*"}"#);
        assert_eq!(
            v["result"]["channels"]["chat:room"]["num_clients"], 1,
            "{v}"
        );
        let (_, v) = api("history_remove", r#"{"channel":"plain:x"}"#);
        assert_eq!(v["error"]["code"], 108, "{v}");
        let (status, v) = api(
            "batch",
            r#"{"commands":[{"info":{}},{"publish":{"channel":"news","data":1}}]}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(v["replies"][0]["info"]["nodes"][0]["name"], "fuzz");
        assert!(v["replies"][1]["publish"].is_object(), "{v}");
        assert_eq!(api("publish", "[1]").0, 400);
        assert_eq!(api("rpc", "{}").0, 404);
    }

    #[test]
    fn a_pattern_deeper_than_allowed_is_a_bad_request() {
        let pattern = "{".repeat(100_000);
        let (status, v) = api("channels", &format!(r#"{{"pattern":"{pattern}"}}"#));
        assert_eq!(status, 200);
        assert_eq!(v["error"]["code"], 107, "{v}");
    }

    #[test]
    fn config_text_is_assembled_like_the_server_does() {
        let template = crate::config::generate();
        let config = parse_config_text(&template).unwrap();
        assert_eq!(config.node_name, "duplex", "no host name without the disk");
        assert_eq!(parse_config_text(&config.to_toml(false)), Ok(config));

        let env = [("DUPLEX_CLIENT_PING_INTERVAL".to_owned(), "3s".to_owned())];
        let config = parse_config("[client]\nping_interval = 9\n", &env).unwrap();
        assert_eq!(config.client.ping_interval, Duration::from_secs(3));

        let config = parse_config_text("token_public_key = \"rsa.pem\"\n").unwrap();
        assert!(matches!(config.token_key, TokenKey::RsaPem(_)));
        let problems = parse_config_text("\n\ntoken_public_key = \"/etc/passwd\"\n").unwrap_err();
        assert_eq!(problems[0].line(), Some(3), "{problems:?}");
        let problems =
            parse_config_text("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap_err();
        assert!(
            problems[0].message.contains("cannot read c.pem"),
            "{problems:?}"
        );
    }
}
