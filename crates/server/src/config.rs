//! The server's configuration: what `duplex serve` runs with.
//!
//! Owns the [`Config`] struct, its defaults, and how it is assembled from
//! the TOML file, `DUPLEX_*` environment variables and command-line flags
//! (flags win over the environment, which wins over the file). It also owns
//! `genconfig` (a commented file with fresh secrets) and `checkconfig`
//! (every problem with its line). It does not start anything: `serve` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hub::NamespaceConfig;
use hub::NamespaceOptions;

/// Where history and stream positions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory: lost on restart (a new epoch every start).
    Memory,
    /// A SQLite file: survives restarts with the same epochs and offsets.
    Sqlite(PathBuf),
}

/// How connection and subscription tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKey {
    /// HS256 with a shared secret (the default).
    Hmac(String),
    /// RS256 with a PEM public key.
    RsaPem(String),
    /// ES256 with a PEM public key.
    EcPem(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of client connections (both transports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server sends a ping this often (told to clients in the connect reply).
    pub ping_interval: Duration,
    /// A client that does not answer a ping within this is closed with 3012.
    pub pong_timeout: Duration,
    /// A connection that sends no connect command within this is closed with 3502.
    pub connect_timeout: Duration,
    /// Largest WebSocket message a client may send, in bytes.
    pub max_message_size: usize,
    /// Most subscriptions per connection (over it: error 106).
    pub max_subscriptions: usize,
    /// Bytes queued to one client before it is disconnected as slow (3008).
    pub max_queue_bytes: usize,
    /// Browser origins allowed to connect; empty allows any.
    pub allowed_origins: Vec<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            max_message_size: 64 * 1024,
            max_subscriptions: 128,
            max_queue_bytes: 4 * 1024 * 1024,
            allowed_origins: Vec::new(),
        }
    }
}

/// Everything `duplex serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// Folder for the SQLite file and generated secrets. Default `./duplex-data`.
    pub data_dir: PathBuf,
    /// Where history lives. Default SQLite at `<data_dir>/duplex.sqlite3`.
    pub storage: StorageConfig,
    /// A broker for several nodes (`redis://host:port`); `None` runs alone.
    pub broker: Option<String>,
    /// The key backends send in `X-API-Key`.
    pub api_key: String,
    /// How tokens are verified.
    pub token_key: TokenKey,
    /// The HMAC secret used by `gentoken` and the dev token endpoint
    /// (same as `token_key` when it is HMAC).
    pub token_secret: String,
    /// Development mode: anonymous connects, client publish, demo page.
    pub dev: bool,
    /// This node's name (in `info`). Default: the host name or `duplex`.
    pub node_name: String,
    /// Options for channels outside any named namespace.
    pub channel: NamespaceOptions,
    /// Named namespaces (`ns:rest` channels).
    pub namespaces: Vec<NamespaceConfig>,
    /// Client connection settings.
    pub client: ClientConfig,
    /// Largest API request body, in bytes. Default 1 MiB.
    pub api_max_body: usize,
    /// How long shutdown waits for connections to close and storage to flush.
    pub shutdown_drain: Duration,
    /// `tracing` filter, e.g. `info` or `duplex_server=debug`.
    pub log_level: String,
    /// Log line format.
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = PathBuf::from("./duplex-data");
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            storage: StorageConfig::Sqlite(data_dir.join("duplex.sqlite3")),
            data_dir,
            broker: None,
            api_key: String::new(),
            token_key: TokenKey::Hmac(String::new()),
            token_secret: String::new(),
            dev: false,
            node_name: "duplex".into(),
            channel: NamespaceOptions::default(),
            namespaces: Vec::new(),
            client: ClientConfig::default(),
            api_max_body: 1024 * 1024,
            shutdown_drain: Duration::from_secs(10),
            log_level: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The options `--dev` gives channels when the config names none:
    /// presence, join/leave, 100 publications of history for 10 minutes,
    /// recovery, and client publish/subscribe/presence/history for everyone.
    pub fn dev_channel_options() -> NamespaceOptions {
        NamespaceOptions {
            presence: true,
            join_leave: true,
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_positioning: true,
            allow_publish_for_client: true,
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            allow_presence_for_client: true,
            allow_history_for_client: true,
            ..Default::default()
        }
    }
}
