//! One setting at a time: the known keys, their environment names, parsing
//! a value written in TOML or as text (environment, flags), and the checks
//! that involve several settings. A [`Layer`] receives settings in order of
//! precedence (file, environment, flags), later ones replacing earlier ones,
//! and remembers where each came from so that a problem can point there.
//! Walking the TOML document is `file`'s job.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hub::{NamespaceConfig, NamespaceOptions};

use super::{
    BrokerOptions, ClientConfig, Config, LogFormat, Origin, Problem, StorageConfig, TokenKey,
};
use crate::auth::Auth;

/// Top-level keys holding one value.
pub(super) const TOP_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "storage",
    "broker",
    "broker_prefix",
    "broker_presence_ttl",
    "broker_node_ttl",
    "api_key",
    "token_secret",
    "token_public_key",
    "token_algorithm",
    "dev",
    "node_name",
    "api_max_body",
    "max_request_head",
    "shutdown_drain",
    "max_connections",
    "max_connections_per_ip",
    "tls_cert",
    "tls_key",
    "log_level",
    "log_format",
];

/// Keys of the `[client]` table.
pub(super) const CLIENT_KEYS: &[&str] = &[
    "ping_interval",
    "pong_timeout",
    "connect_timeout",
    "max_message_size",
    "max_subscriptions",
    "max_queue_bytes",
    "allowed_origins",
    "max_commands_per_second",
];

/// Top-level keys holding a table.
pub(super) const TABLE_KEYS: &[&str] = &["client", "channel", "namespaces"];

/// Whether `key` (`listen`, `client.ping_interval`) is a one-value setting.
pub(super) fn is_scalar_key(key: &str) -> bool {
    match key.strip_prefix("client.") {
        Some(k) => CLIENT_KEYS.contains(&k),
        None => TOP_KEYS.contains(&key),
    }
}

/// `client.ping_interval` → `DUPLEX_CLIENT_PING_INTERVAL`.
pub(super) fn env_for_key(key: &str) -> String {
    format!("DUPLEX_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The setting an environment variable sets, if it names one.
pub(super) fn key_for_env(var: &str) -> Option<String> {
    TOP_KEYS
        .iter()
        .map(|k| (*k).to_owned())
        .chain(CLIENT_KEYS.iter().map(|k| format!("client.{k}")))
        .find(|k| env_for_key(k) == var)
}

/// The closest of `candidates` to a mistyped `key`, if close enough.
pub(super) fn suggest<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
            row.push(best);
        }
        prev = row;
    }
    prev[b.len()]
}

/// A value as written: in the TOML file, or as text (environment, flags).
pub(super) enum Raw<'a> {
    /// A TOML value.
    Toml(&'a toml_edit::Value),
    /// Text from the environment or a flag.
    Text(&'a str),
}

/// `a string`, `an integer`, ... for type errors.
pub(super) fn type_name(value: &toml_edit::Value) -> &'static str {
    use toml_edit::Value as V;
    match value {
        V::String(_) => "a string",
        V::Integer(_) => "an integer",
        V::Float(_) => "a float",
        V::Boolean(_) => "a boolean",
        V::Datetime(_) => "a date-time",
        V::Array(_) => "an array",
        V::InlineTable(_) => "a table",
    }
}

impl Raw<'_> {
    fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml_edit::Value::String(s)) => Ok(s.value().clone()),
            Raw::Toml(v) => Err(format!("expected a string, found {}", type_name(v))),
            Raw::Text(t) => Ok((*t).to_owned()),
        }
    }

    fn boolean(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml_edit::Value::Boolean(b)) => Ok(*b.value()),
            Raw::Toml(v) => Err(format!("expected true or false, found {}", type_name(v))),
            Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(format!("expected true or false, found {t:?}")),
            },
        }
    }

    /// A byte size: an integer, or a string with a unit (`"64KiB"`).
    fn size(&self) -> Result<usize, String> {
        match self {
            Raw::Toml(toml_edit::Value::Integer(i)) => usize::try_from(*i.value())
                .map_err(|_| format!("expected a size in bytes, found {}", i.value())),
            Raw::Toml(toml_edit::Value::String(s)) => parse_size(s.value()),
            Raw::Toml(v) => Err(format!("expected a size in bytes, found {}", type_name(v))),
            Raw::Text(t) => parse_size(t),
        }
    }

    /// A count: a plain non-negative integer.
    fn count(&self) -> Result<usize, String> {
        match self {
            Raw::Toml(toml_edit::Value::Integer(i)) => usize::try_from(*i.value())
                .map_err(|_| format!("expected a non-negative integer, found {}", i.value())),
            Raw::Toml(v) => Err(format!("expected an integer, found {}", type_name(v))),
            Raw::Text(t) => t
                .trim()
                .parse()
                .ok()
                .filter(|n| fits_toml(*n))
                .ok_or_else(|| format!("expected a non-negative integer, found {t:?}")),
        }
    }

    /// A duration: seconds as a number, or a string with a unit (`"25s"`).
    fn duration(&self) -> Result<Duration, String> {
        match self {
            Raw::Toml(toml_edit::Value::Integer(i)) => u64::try_from(*i.value())
                .map(Duration::from_secs)
                .map_err(|_| "a duration cannot be negative".to_owned()),
            Raw::Toml(toml_edit::Value::Float(f)) => Duration::try_from_secs_f64(*f.value())
                .map_err(|e| format!("invalid duration: {e}")),
            Raw::Toml(toml_edit::Value::String(s)) => hub::namespace::parse_duration(s.value()),
            Raw::Toml(v) => Err(format!(
                "expected a duration such as \"25s\" or a number of seconds, found {}",
                type_name(v)
            )),
            Raw::Text(t) => hub::namespace::parse_duration(t),
        }
    }

    /// A list of strings: a TOML array, or comma-separated text.
    fn list(&self) -> Result<Vec<String>, String> {
        match self {
            Raw::Toml(toml_edit::Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    toml_edit::Value::String(s) => Ok(s.value().clone()),
                    other => Err(format!(
                        "expected an array of strings, found {} in it",
                        type_name(other)
                    )),
                })
                .collect(),
            Raw::Toml(v) => Err(format!(
                "expected an array of strings, found {}",
                type_name(v)
            )),
            Raw::Text(t) => Ok(t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()),
        }
    }
}

/// Parses `1048576`, `"64KiB"`, `"1MiB"`, `"4MB"` (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024; case does not matter).
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad =
        || format!("invalid size {text:?}: expected bytes, e.g. 65536 or \"64KiB\", \"1MiB\"");
    let number: usize = number.parse().map_err(|_| bad())?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    number
        .checked_mul(scale)
        .filter(|n| fits_toml(*n))
        .ok_or_else(bad)
}

/// Whether `n` fits a TOML integer (`i64`), as counts and sizes must for
/// the printed configuration (`--print-config`) to load again.
fn fits_toml(n: usize) -> bool {
    i64::try_from(n).is_ok()
}

/// Why a setting was refused.
#[derive(Debug)]
pub(super) enum SetError {
    /// No such setting.
    Unknown(String),
    /// The value is wrong.
    Invalid(String),
}

impl From<String> for SetError {
    fn from(s: String) -> Self {
        SetError::Invalid(s)
    }
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::Unknown(key) => write!(f, "unknown setting `{key}`"),
            SetError::Invalid(msg) => f.write_str(msg),
        }
    }
}

/// `storage` as written: the SQLite path may be left to the data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Storage {
    Memory,
    Sqlite(Option<PathBuf>),
}

/// The algorithm named by `token_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Hs256,
    Rs256,
    Es256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

/// A public key read from its PEM file.
#[derive(Debug, Clone)]
struct PublicKey {
    path: PathBuf,
    algorithm: Algorithm,
    pem: String,
}

/// DER of the P-256 curve OID (1.2.840.10045.3.1.7), the curve of ES256.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Reads a file's text in place of the filesystem (see [`Layer::read`]).
pub(crate) type ReadFile = fn(&Path) -> std::io::Result<String>;

/// Reads a PEM public key and tells RS256 from ES256 by the key itself.
fn read_public_key(path: PathBuf, read: Option<ReadFile>) -> Result<PublicKey, String> {
    let pem = match read {
        Some(read) => read(&path),
        None => std::fs::read_to_string(&path),
    }
    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if pem.contains("PRIVATE KEY") {
        return Err(format!(
            "{} holds a private key; give the public key (openssl pkey -pubout)",
            path.display()
        ));
    }
    if Auth::new(&TokenKey::RsaPem(pem.clone())).is_ok() {
        return Ok(PublicKey {
            path,
            algorithm: Algorithm::Rs256,
            pem,
        });
    }
    if Auth::new(&TokenKey::EcPem(pem.clone())).is_ok() {
        if !pem_der(&pem).is_some_and(|der| der.windows(P256_OID.len()).any(|w| w == P256_OID)) {
            return Err(format!(
                "{} is an EC key on another curve than P-256 (ES256 needs P-256)",
                path.display()
            ));
        }
        return Ok(PublicKey {
            path,
            algorithm: Algorithm::Es256,
            pem,
        });
    }
    Err(format!(
        "{} is not an RSA or EC (P-256) public key in PEM form",
        path.display()
    ))
}

/// The bytes inside the first PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    text.parse().map_err(|_| {
        format!("invalid address {text:?}: expected IP:PORT such as 127.0.0.1:8000 or [::]:8000")
    })
}

fn parse_storage(text: &str) -> Result<Storage, String> {
    match text.trim() {
        "memory" => Ok(Storage::Memory),
        "sqlite" => Ok(Storage::Sqlite(None)),
        other => match other.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => Ok(Storage::Sqlite(Some(PathBuf::from(path)))),
            _ => Err(format!(
                "invalid storage {other:?}: expected \"memory\", \"sqlite\" or \"sqlite:PATH\""
            )),
        },
    }
}

fn parse_broker(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text
        .strip_prefix("redis://")
        .or_else(|| text.strip_prefix("rediss://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "invalid broker {text:?}: expected redis://HOST:PORT"
        )),
    }
}

/// A key prefix: letters, digits and `_-.:`, as Redis key names go well
/// with (and so that no prefix is another's with a separator in it).
fn parse_prefix(text: &str) -> Result<String, String> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid broker_prefix {text:?}: expected 1-64 characters of A-Z a-z 0-9 _ - . :"
        ))
    }
}

fn non_empty(text: String, what: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else {
        Ok(text)
    }
}

fn positive<T: PartialEq + Default>(value: T, what: &str) -> Result<T, String> {
    if value == T::default() {
        Err(format!("{what} must be more than zero"))
    } else {
        Ok(value)
    }
}

/// Settings received so far, with where each came from.
#[derive(Debug, Default)]
pub(super) struct Layer {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    storage: Option<Storage>,
    broker: Option<String>,
    broker_prefix: Option<String>,
    broker_presence_ttl: Option<Duration>,
    broker_node_ttl: Option<Duration>,
    api_key: Option<String>,
    token_secret: Option<String>,
    token_public_key: Option<PublicKey>,
    token_algorithm: Option<Algorithm>,
    dev: Option<bool>,
    node_name: Option<String>,
    api_max_body: Option<usize>,
    max_request_head: Option<usize>,
    shutdown_drain: Option<Duration>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    ping_interval: Option<Duration>,
    pong_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    max_message_size: Option<usize>,
    max_subscriptions: Option<usize>,
    max_queue_bytes: Option<usize>,
    allowed_origins: Option<Vec<String>>,
    max_commands_per_second: Option<u32>,
    /// `[channel]`, from the file only.
    pub(super) channel: Option<NamespaceOptions>,
    /// `[[namespaces]]`, from the file only.
    pub(super) namespaces: Option<Vec<NamespaceConfig>>,
    /// Reads files (the public key, TLS files) instead of the filesystem,
    /// and leaves the host name alone; `None` (the default) uses the disk.
    pub(super) read: Option<ReadFile>,
    origins: HashMap<String, Origin>,
    failed: HashSet<String>,
}

/// The outcome of [`Layer::build`].
pub(super) struct Built {
    pub(super) config: Config,
    pub(super) problems: Vec<Problem>,
}

impl Layer {
    /// Sets one setting (`listen`, `client.ping_interval`, ...) from `raw`,
    /// replacing what an earlier source set.
    pub(super) fn set(&mut self, key: &str, raw: Raw<'_>, origin: Origin) -> Result<(), SetError> {
        let result = self.set_inner(key, &raw);
        match &result {
            Ok(()) => {
                self.failed.remove(key);
                self.origins.insert(key.to_owned(), origin);
            }
            Err(_) => {
                self.failed.insert(key.to_owned());
            }
        }
        result
    }

    /// Records that a table setting (`channel`, `namespaces`) was given.
    pub(super) fn record(&mut self, key: &str, origin: Origin, ok: bool) {
        if ok {
            self.origins.insert(key.to_owned(), origin);
        } else {
            self.failed.insert(key.to_owned());
        }
    }

    fn set_inner(&mut self, key: &str, raw: &Raw<'_>) -> Result<(), SetError> {
        match key {
            "listen" => self.listen = Some(parse_addr(&raw.string()?)?),
            "data_dir" => self.data_dir = Some(non_empty(raw.string()?, "data_dir")?.into()),
            "storage" => self.storage = Some(parse_storage(&raw.string()?)?),
            "broker" => self.broker = Some(parse_broker(&raw.string()?)?),
            "broker_prefix" => self.broker_prefix = Some(parse_prefix(&raw.string()?)?),
            "broker_presence_ttl" => {
                self.broker_presence_ttl = Some(positive(raw.duration()?, "broker_presence_ttl")?)
            }
            "broker_node_ttl" => {
                self.broker_node_ttl = Some(positive(raw.duration()?, "broker_node_ttl")?)
            }
            "api_key" => self.api_key = Some(non_empty(raw.string()?, "the API key")?),
            "token_secret" => {
                self.token_secret = Some(non_empty(raw.string()?, "the token secret")?)
            }
            "token_public_key" => {
                let path = non_empty(raw.string()?, "token_public_key")?;
                self.token_public_key = Some(read_public_key(path.into(), self.read)?);
            }
            "token_algorithm" => {
                let text = raw.string()?;
                self.token_algorithm = Some(match text.trim().to_ascii_uppercase().as_str() {
                    "HS256" => Algorithm::Hs256,
                    "RS256" => Algorithm::Rs256,
                    "ES256" => Algorithm::Es256,
                    _ => {
                        return Err(format!(
                            "invalid token algorithm {text:?}: expected HS256, RS256 or ES256"
                        )
                        .into())
                    }
                });
            }
            "dev" => self.dev = Some(raw.boolean()?),
            "node_name" => self.node_name = Some(non_empty(raw.string()?, "node_name")?),
            "api_max_body" => self.api_max_body = Some(positive(raw.size()?, "api_max_body")?),
            "max_request_head" => {
                let value = raw.size()?;
                if value < Config::MIN_REQUEST_HEAD {
                    return Err(format!(
                        "max_request_head must be at least {} bytes (8KiB)",
                        Config::MIN_REQUEST_HEAD
                    )
                    .into());
                }
                self.max_request_head = Some(value);
            }
            "shutdown_drain" => self.shutdown_drain = Some(raw.duration()?),
            "max_connections" => self.max_connections = Some(raw.count()?),
            "max_connections_per_ip" => self.max_connections_per_ip = Some(raw.count()?),
            "tls_cert" => self.tls_cert = Some(non_empty(raw.string()?, "tls_cert")?.into()),
            "tls_key" => self.tls_key = Some(non_empty(raw.string()?, "tls_key")?.into()),
            "log_level" => {
                let level = non_empty(raw.string()?, "log_level")?;
                tracing_subscriber::EnvFilter::try_new(&level)
                    .map_err(|e| format!("invalid log level {level:?}: {e}"))?;
                self.log_level = Some(level);
            }
            "log_format" => {
                let text = raw.string()?;
                self.log_format = Some(match text.trim() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => {
                        return Err(
                            format!("invalid log format {text:?}: expected text or json").into(),
                        )
                    }
                });
            }
            "client.ping_interval" => {
                self.ping_interval = Some(positive(raw.duration()?, "ping_interval")?)
            }
            "client.pong_timeout" => {
                self.pong_timeout = Some(positive(raw.duration()?, "pong_timeout")?)
            }
            "client.connect_timeout" => {
                self.connect_timeout = Some(positive(raw.duration()?, "connect_timeout")?)
            }
            "client.max_message_size" => {
                self.max_message_size = Some(positive(raw.size()?, "max_message_size")?)
            }
            "client.max_subscriptions" => {
                self.max_subscriptions = Some(positive(raw.count()?, "max_subscriptions")?)
            }
            "client.max_queue_bytes" => {
                self.max_queue_bytes = Some(positive(raw.size()?, "max_queue_bytes")?)
            }
            "client.allowed_origins" => {
                let origins = raw.list()?;
                if let Some(bad) = origins
                    .iter()
                    .find(|o| o.trim().is_empty() || o.ends_with('/'))
                {
                    return Err(format!(
                        "invalid origin {bad:?}: expected scheme://host[:port] without a trailing slash, or *"
                    )
                    .into());
                }
                self.allowed_origins = Some(origins);
            }
            "client.max_commands_per_second" => {
                let count = raw.count()?;
                self.max_commands_per_second = Some(u32::try_from(count).map_err(|_| {
                    format!(
                        "max_commands_per_second {count} is too large (at most {})",
                        u32::MAX
                    )
                })?);
            }
            other => return Err(SetError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// The configuration these settings make over the defaults, and the
    /// problems only visible when settings are taken together. Secrets not
    /// set anywhere stay empty.
    pub(super) fn build(self) -> Built {
        let mut problems = Vec::new();
        let defaults = Config::default();
        let data_dir = self.data_dir.clone().unwrap_or(defaults.data_dir);
        let storage = match self.storage.clone() {
            Some(Storage::Memory) => StorageConfig::Memory,
            Some(Storage::Sqlite(Some(path))) => StorageConfig::Sqlite(path),
            Some(Storage::Sqlite(None)) | None => {
                StorageConfig::Sqlite(data_dir.join("duplex.sqlite3"))
            }
        };
        let dev = self.dev.unwrap_or(false);
        let channel = match self.channel.clone() {
            Some(options) => options,
            None if dev => Config::dev_channel_options(),
            None => Config::default_channel_options(),
        };
        let token_secret = self.token_secret.clone().unwrap_or_default();
        let key_failed = self.failed.contains("token_public_key");
        let token_key = match (&self.token_public_key, self.token_algorithm) {
            (Some(key), Some(Algorithm::Hs256)) => {
                problems.push(Problem::new(
                    self.origin("token_algorithm"),
                    format!(
                        "token_algorithm HS256 uses the token secret, but token_public_key {} is set: \
                         remove one of them",
                        key.path.display()
                    ),
                ));
                None
            }
            (Some(key), Some(alg)) if alg != key.algorithm => {
                problems.push(Problem::new(
                    self.origin("token_algorithm"),
                    format!(
                        "token_algorithm {} does not match the key in {}, which is for {}",
                        alg.name(),
                        key.path.display(),
                        key.algorithm.name()
                    ),
                ));
                None
            }
            (Some(key), _) => Some(match key.algorithm {
                Algorithm::Rs256 => TokenKey::RsaPem(key.pem.clone()),
                _ => TokenKey::EcPem(key.pem.clone()),
            }),
            (None, Some(alg @ (Algorithm::Rs256 | Algorithm::Es256))) if !key_failed => {
                problems.push(Problem::new(
                    self.origin("token_algorithm"),
                    format!(
                        "token_algorithm {} needs token_public_key (a PEM file)",
                        alg.name()
                    ),
                ));
                None
            }
            _ => None,
        };
        let token_key = token_key.unwrap_or_else(|| TokenKey::Hmac(token_secret.clone()));
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => match self.read {
                // Without the disk, only whether the files can be read.
                Some(read) => {
                    if let Some((path, e)) = [cert, key]
                        .into_iter()
                        .find_map(|path| read(path).err().map(|e| (path, e)))
                    {
                        problems.push(Problem::new(
                            self.origin("tls_cert"),
                            format!("cannot read {}: {e}", path.display()),
                        ));
                    }
                }
                None => {
                    if let Err(e) = crate::http::tls::load(cert, key) {
                        problems.push(Problem::new(self.origin("tls_cert"), e.to_string()));
                    }
                }
            },
            (Some(_), None) => problems.push(Problem::new(
                self.origin("tls_cert"),
                "tls_cert needs tls_key (the certificate's private key)".to_owned(),
            )),
            (None, Some(_)) => problems.push(Problem::new(
                self.origin("tls_key"),
                "tls_key needs tls_cert (the certificate chain)".to_owned(),
            )),
            (None, None) => {}
        }
        let client_defaults = ClientConfig::default();
        let client = ClientConfig {
            ping_interval: self.ping_interval.unwrap_or(client_defaults.ping_interval),
            pong_timeout: self.pong_timeout.unwrap_or(client_defaults.pong_timeout),
            connect_timeout: self
                .connect_timeout
                .unwrap_or(client_defaults.connect_timeout),
            max_message_size: self
                .max_message_size
                .unwrap_or(client_defaults.max_message_size),
            max_subscriptions: self
                .max_subscriptions
                .unwrap_or(client_defaults.max_subscriptions),
            max_queue_bytes: self
                .max_queue_bytes
                .unwrap_or(client_defaults.max_queue_bytes),
            allowed_origins: self.allowed_origins.clone().unwrap_or_default(),
            max_commands_per_second: self
                .max_commands_per_second
                .unwrap_or(client_defaults.max_commands_per_second),
        };
        let config = Config {
            listen: self.listen.unwrap_or(defaults.listen),
            data_dir,
            storage,
            broker: self.broker.clone(),
            broker_options: BrokerOptions {
                prefix: self
                    .broker_prefix
                    .clone()
                    .unwrap_or(defaults.broker_options.prefix),
                presence_ttl: self
                    .broker_presence_ttl
                    .unwrap_or(defaults.broker_options.presence_ttl),
                node_ttl: self
                    .broker_node_ttl
                    .unwrap_or(defaults.broker_options.node_ttl),
            },
            api_key: self.api_key.clone().unwrap_or_default(),
            token_secret,
            token_public_key: self.token_public_key.as_ref().map(|k| k.path.clone()),
            token_key,
            dev,
            node_name: match (&self.node_name, self.read) {
                (Some(name), _) => name.clone(),
                (None, Some(_)) => "duplex".to_owned(),
                (None, None) => default_node_name(),
            },
            channel,
            namespaces: self.namespaces.clone().unwrap_or_default(),
            client,
            api_max_body: self.api_max_body.unwrap_or(defaults.api_max_body),
            max_request_head: self.max_request_head.unwrap_or(defaults.max_request_head),
            shutdown_drain: self.shutdown_drain.unwrap_or(defaults.shutdown_drain),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            log_level: self.log_level.clone().unwrap_or(defaults.log_level),
            log_format: self.log_format.unwrap_or(defaults.log_format),
        };
        Built { config, problems }
    }
}

/// The host name (Linux), else `duplex`.
fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "duplex".to_owned())
}
