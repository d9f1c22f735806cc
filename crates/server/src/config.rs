//! The server's configuration: what `duplex serve` runs with.
//!
//! Owns the [`Config`] struct, its defaults, and how it is assembled from
//! the TOML file, `DUPLEX_*` environment variables and command-line flags
//! (flags win over the environment, which wins over the file, which wins
//! over the defaults). It also owns the secrets kept in the data folder
//! (generated on first start, reused after), `genconfig` (a commented file
//! with fresh secrets), `checkconfig` (every problem with its line) and the
//! resolved-config printout. It does not start anything (`run` does) nor
//! parse the command line (`cli` hands it flag values as text).
//!
//! The work is split in private submodules: `settings` (one setting at a
//! time, from TOML or text, and the cross-setting checks), `file` (walking a
//! TOML document with its spans), `secrets` (the data-folder secrets file)
//! and `template` (the text written by `genconfig` and `--print-config`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hub::NamespaceConfig;
use hub::NamespaceOptions;

mod file;
mod secrets;
mod settings;
mod template;

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

/// How a node uses the broker, when `broker` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Every Redis key and topic starts with this and a colon. Nodes that
    /// are to act as one share it. Default `duplex`.
    pub prefix: String,
    /// How long a presence entry lives in Redis without a refresh; a node
    /// refreshes its own every third of it, so the clients of a node that
    /// died leave presence (with leave pushes) within about this long.
    /// Default 30 s.
    pub presence_ttl: Duration,
    /// How long a node stays listed by `info` after its last heartbeat; it
    /// beats every third of it. Default 15 s.
    pub node_ttl: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            prefix: "duplex".into(),
            presence_ttl: Duration::from_secs(30),
            node_ttl: Duration::from_secs(15),
        }
    }
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
    /// Commands one connection may send per second (bursts up to this
    /// many); over it, error 111. 0 (the default) is no limit.
    pub max_commands_per_second: u32,
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
            max_commands_per_second: 0,
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
    /// With a broker, history, offsets, epochs and presence live in Redis
    /// and `storage` is not used.
    pub broker: Option<String>,
    /// Key prefix and timings for the broker.
    pub broker_options: BrokerOptions,
    /// The key backends send in `X-API-Key`.
    pub api_key: String,
    /// How tokens are verified.
    pub token_key: TokenKey,
    /// The HMAC secret used by `gentoken` and the dev token endpoint
    /// (same as `token_key` when it is HMAC).
    pub token_secret: String,
    /// The PEM file `token_key` was read from, when it is a public key
    /// (informational: shown by `--print-config`).
    pub token_public_key: Option<PathBuf>,
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
    /// Largest HTTP request head (request line and headers), in bytes, on
    /// every path; over it the answer is 431. Default 64 KiB, at least
    /// [`Config::MIN_REQUEST_HEAD`].
    pub max_request_head: usize,
    /// How long shutdown waits for connections to close and storage to flush.
    pub shutdown_drain: Duration,
    /// Most TCP connections open at once on the port (every path, upgraded
    /// WebSockets included); 0 is no limit. Default 100000.
    pub max_connections: usize,
    /// Most TCP connections open at once from one IP address; 0 (the
    /// default) is no limit.
    pub max_connections_per_ip: usize,
    /// PEM certificate chain for TLS (https/wss on the same port); with
    /// `tls_key`. `None` (the default) serves plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
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
            broker_options: BrokerOptions::default(),
            api_key: String::new(),
            token_key: TokenKey::Hmac(String::new()),
            token_secret: String::new(),
            token_public_key: None,
            dev: false,
            node_name: "duplex".into(),
            channel: Config::default_channel_options(),
            namespaces: Vec::new(),
            client: ClientConfig::default(),
            api_max_body: 1024 * 1024,
            max_request_head: 64 * 1024,
            shutdown_drain: Duration::from_secs(10),
            max_connections: 100_000,
            max_connections_per_ip: 0,
            tls_cert: None,
            tls_key: None,
            log_level: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The smallest `max_request_head` allowed (the HTTP parser's own
    /// minimum buffer).
    pub const MIN_REQUEST_HEAD: usize = 8 * 1024;

    /// The options channels get when the config has no `[channel]` table
    /// (a `[channel]` table replaces them; keys it leaves out are off):
    /// presence with join/leave, 100 publications of history for 5
    /// minutes, recovery and positioning, and subscribing for every
    /// connected (token-holding) client. Publishing stays with the server
    /// API, and anonymous connections get nothing.
    pub fn default_channel_options() -> NamespaceOptions {
        NamespaceOptions {
            presence: true,
            join_leave: true,
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            allow_recovery: true,
            allow_positioning: true,
            allow_subscribe_for_client: true,
            allow_presence_for_subscriber: true,
            allow_history_for_subscriber: true,
            ..Default::default()
        }
    }

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

    /// Assembles the configuration from `sources`: defaults, then the file,
    /// then the environment, then the flags, then the data folder's secrets
    /// file for any secret still unset. Reports every problem found, not
    /// just the first. Writes nothing: a secret that is set nowhere stays
    /// empty until [`Config::ensure_secrets`].
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let text = match &sources.file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let file = text.as_deref().zip(sources.file.as_deref());
        let layer = settings::Layer::default();
        let mut config = assemble(layer, file, &sources.env, &sources.flags)
            .map_err(|problems| ConfigError::Invalid(Problems(problems)))?;
        let mut warnings: Vec<String> = sources
            .env
            .iter()
            .filter(|(var, _)| var != ENV_CONFIG && settings::key_for_env(var).is_none())
            .map(|(var, _)| format!("ignoring unknown environment variable {var}"))
            .collect();
        if config.needs_secrets() {
            let path = secrets_path(&config.data_dir);
            if let Some(stored) = secrets::read(&path, &mut warnings)? {
                config.fill_secrets(&stored);
            }
        }
        Ok(Loaded { config, warnings })
    }

    fn needs_secrets(&self) -> bool {
        self.api_key.is_empty()
            || (self.token_secret.is_empty() && matches!(self.token_key, TokenKey::Hmac(_)))
    }

    fn fill_secrets(&mut self, stored: &secrets::Stored) {
        if self.api_key.is_empty() {
            if let Some(key) = &stored.api_key {
                self.api_key = key.clone();
            }
        }
        if self.token_secret.is_empty() && matches!(self.token_key, TokenKey::Hmac(_)) {
            if let Some(secret) = &stored.token_secret {
                self.token_secret = secret.clone();
                self.token_key = TokenKey::Hmac(secret.clone());
            }
        }
    }

    /// Generates the API key and token secret when they are set nowhere,
    /// keeps them in `<data_dir>/secrets.toml` (mode 0600, the folder is
    /// created) and returns what was generated, so that it can be shown
    /// once. Returns `None` when nothing was missing. (The token secret is
    /// not needed, so not generated, when tokens use a public key.)
    pub fn ensure_secrets(&mut self) -> Result<Option<GeneratedSecrets>, ConfigError> {
        if !self.needs_secrets() {
            return Ok(None);
        }
        let path = secrets_path(&self.data_dir);
        let mut stored = secrets::read(&path, &mut Vec::new())?.unwrap_or_default();
        self.fill_secrets(&stored);
        let mut generated = GeneratedSecrets {
            path: path.clone(),
            api_key: None,
            token_secret: None,
        };
        if self.api_key.is_empty() {
            let key = secrets::random_secret();
            stored.api_key = Some(key.clone());
            self.api_key = key.clone();
            generated.api_key = Some(key);
        }
        if self.token_secret.is_empty() && matches!(self.token_key, TokenKey::Hmac(_)) {
            let secret = secrets::random_secret();
            stored.token_secret = Some(secret.clone());
            self.token_secret = secret.clone();
            self.token_key = TokenKey::Hmac(secret.clone());
            generated.token_secret = Some(secret);
        }
        secrets::write(&path, &stored).map_err(|source| ConfigError::Secrets {
            path,
            reason: source.to_string(),
        })?;
        Ok(Some(generated))
    }

    /// The configuration as TOML, in the config file's schema (loadable
    /// with `--config`). With `mask_secrets`, the API key and token secret
    /// are replaced by `********` (and unset ones say so in a comment).
    pub fn to_toml(&self, mask_secrets: bool) -> String {
        template::render(self, mask_secrets)
    }
}

/// Applies the file's `text`, then the environment, then the flags to
/// `layer` and builds the configuration, or returns every problem found.
/// Reads nothing itself ([`Config::load`] reads the file and the secrets).
fn assemble(
    mut layer: settings::Layer,
    file: Option<(&str, &Path)>,
    env: &[(String, String)],
    flags: &[(String, String)],
) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    if let Some((text, path)) = file {
        problems.extend(file::apply(&mut layer, text, path));
    }
    for (var, value) in env {
        let Some(key) = settings::key_for_env(var) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let origin = Origin::Env(var.clone());
        if let Err(e) = layer.set(&key, settings::Raw::Text(value), origin.clone()) {
            problems.push(Problem::new(origin, e.to_string()));
        }
    }
    for (key, value) in flags {
        let origin = Origin::Flag(format!("--{}", key.replace(['_', '.'], "-")));
        if let Err(e) = layer.set(key, settings::Raw::Text(value), origin.clone()) {
            problems.push(Problem::new(origin, e.to_string()));
        }
    }
    let built = layer.build();
    problems.extend(built.problems);
    if problems.is_empty() {
        Ok(built.config)
    } else {
        Err(problems)
    }
}

/// What [`Config::load`] does with a config file's `text` and `env`, but
/// reading no file: `token_public_key`, `tls_cert` and `tls_key` are read
/// through `read` instead of the filesystem, and the node name defaults
/// to `duplex` rather than the host name. For the fuzz targets
/// ([`crate::fuzzing`]).
pub(crate) fn assemble_offline(
    text: &str,
    path: &Path,
    env: &[(String, String)],
    read: settings::ReadFile,
) -> Result<Config, Vec<Problem>> {
    let mut layer = settings::Layer::default();
    layer.read = Some(read);
    assemble(layer, Some((text, path)), env, &[])
}

/// The environment variable naming the config file (like `--config`).
pub const ENV_CONFIG: &str = "DUPLEX_CONFIG";

/// The file in the data folder that keeps generated secrets.
pub fn secrets_path(data_dir: &Path) -> PathBuf {
    data_dir.join(secrets::FILE_NAME)
}

/// The environment variable for a setting: `listen` is `DUPLEX_LISTEN`,
/// `client.ping_interval` is `DUPLEX_CLIENT_PING_INTERVAL`. `None` for a
/// key that has no environment variable (tables such as `channel`).
pub fn env_name(key: &str) -> Option<String> {
    settings::is_scalar_key(key).then(|| settings::env_for_key(key))
}

/// Where the configuration comes from, before it is read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file, if any (`--config`, else `DUPLEX_CONFIG`).
    pub file: Option<PathBuf>,
    /// `DUPLEX_*` environment variables, as (name, value). Empty values are
    /// ignored (`DUPLEX_BROKER=` unsets nothing, it is as if not set).
    pub env: Vec<(String, String)>,
    /// Flag values as (setting key, text), e.g. `("listen", "0.0.0.0:80")`.
    pub flags: Vec<(String, String)>,
}

impl Sources {
    /// Reads the `DUPLEX_*` variables of this process. `config_flag` (from
    /// `--config`) wins over `DUPLEX_CONFIG`.
    pub fn from_process(config_flag: Option<PathBuf>, flags: Vec<(String, String)>) -> Self {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("DUPLEX_"))
            .collect();
        let file = config_flag.or_else(|| {
            env.iter()
                .find(|(k, v)| k == ENV_CONFIG && !v.is_empty())
                .map(|(_, v)| PathBuf::from(v))
        });
        Self { file, env, flags }
    }
}

/// A configuration that loaded, with anything worth a warning.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that are not errors but look wrong (unknown `DUPLEX_*`
    /// variables, a secrets file others can read).
    pub warnings: Vec<String>,
}

/// Secrets generated by [`Config::ensure_secrets`], to show once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecrets {
    /// Where they were saved.
    pub path: PathBuf,
    /// The new API key, if it was generated.
    pub api_key: Option<String>,
    /// The new token secret, if it was generated.
    pub token_secret: Option<String>,
}

/// Where a setting (or a problem with it) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag, e.g. `--listen`.
    Flag(String),
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending setting came from.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(origin: Origin, message: impl Into<String>) -> Self {
        Self {
            origin,
            message: message.into(),
        }
    }

    /// The config file line, when the problem is in the file.
    pub fn line(&self) -> Option<usize> {
        match &self.origin {
            Origin::File { line, .. } => Some(*line),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Default => write!(f, "{}", self.message),
            Origin::File { path, line } => write!(f, "{}:{line}: {}", path.display(), self.message),
            Origin::Env(var) => write!(f, "environment {var}: {}", self.message),
            Origin::Flag(flag) => write!(f, "flag {flag}: {}", self.message),
        }
    }
}

/// A list of problems, shown one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Settings are wrong; every problem found is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// The secrets file in the data folder could not be read or written.
    #[error("secrets file {}: {reason}", path.display())]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Checks a config file's text on its own (no environment, no flags, no
/// secrets file): every problem, each with its line, in line order. An
/// empty list means the file is fine. `path` only names the file in the
/// problems (and relative paths inside it are read from the current
/// directory, like `serve` does).
pub fn check(text: &str, path: &Path) -> Vec<Problem> {
    let mut layer = settings::Layer::default();
    let mut problems = file::apply(&mut layer, text, path);
    problems.extend(layer.build().problems);
    problems.sort_by_key(|p| p.line().unwrap_or(0));
    problems
}

/// A commented config file with fresh random secrets, as `duplex
/// genconfig` writes it. It passes [`check`] and loads as is.
pub fn generate() -> String {
    template::generate(&secrets::random_secret(), &secrets::random_secret())
}

#[cfg(test)]
mod tests;
