//! Config text that duplex writes: the commented file of `genconfig` (every
//! setting shown with its default, commented out, and fresh secrets) and
//! the resolved configuration of `serve --print-config`. Both use the
//! config file's schema, so what is written loads back.

use std::fmt::Write as _;
use std::time::Duration;

use hub::NamespaceOptions;

use super::{ClientConfig, Config, LogFormat, StorageConfig, TokenKey};

/// A TOML string literal.
pub(super) fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_owned()
}

/// `25s`, `10m`, `1h`, `7d`, `250ms`, `1.5s`: what `parse_duration` reads.
pub(super) fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        let s = d.as_secs();
        match s {
            0 => "0s".to_owned(),
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A byte size as TOML: `"64KiB"` when it is a whole number of KiB/MiB/GiB,
/// else the integer.
pub(super) fn size(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (scale, unit) in UNITS {
        if n >= scale && n.is_multiple_of(scale) {
            return format!("\"{}{unit}\"", n / scale);
        }
    }
    n.to_string()
}

fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// Each option of `o` as (name, TOML value), in `hub`'s order. A `None`
/// option (`history_meta_ttl`) is left out.
pub(super) fn option_entries(o: &NamespaceOptions) -> Vec<(&'static str, String)> {
    let mut entries = vec![
        ("presence", o.presence.to_string()),
        ("join_leave", o.join_leave.to_string()),
        ("force_push_join_leave", o.force_push_join_leave.to_string()),
        ("history_size", o.history_size.to_string()),
        ("history_ttl", quote(&duration(o.history_ttl))),
    ];
    if let Some(meta) = o.history_meta_ttl {
        entries.push(("history_meta_ttl", quote(&duration(meta))));
    }
    entries.extend([
        ("allow_positioning", o.allow_positioning.to_string()),
        ("force_positioning", o.force_positioning.to_string()),
        ("allow_recovery", o.allow_recovery.to_string()),
        ("force_recovery", o.force_recovery.to_string()),
        (
            "allow_publish_for_client",
            o.allow_publish_for_client.to_string(),
        ),
        (
            "allow_publish_for_subscriber",
            o.allow_publish_for_subscriber.to_string(),
        ),
        (
            "allow_subscribe_for_client",
            o.allow_subscribe_for_client.to_string(),
        ),
        (
            "allow_subscribe_for_anonymous",
            o.allow_subscribe_for_anonymous.to_string(),
        ),
        (
            "allow_presence_for_client",
            o.allow_presence_for_client.to_string(),
        ),
        (
            "allow_presence_for_subscriber",
            o.allow_presence_for_subscriber.to_string(),
        ),
        (
            "allow_history_for_client",
            o.allow_history_for_client.to_string(),
        ),
        (
            "allow_history_for_subscriber",
            o.allow_history_for_subscriber.to_string(),
        ),
    ]);
    entries
}

/// One line of explanation per channel option, for `genconfig`.
pub(super) const OPTION_DOCS: &[(&str, &str)] = &[
    ("presence", "keep presence (who is subscribed)"),
    (
        "join_leave",
        "send join/leave events to subscribers that ask for them",
    ),
    (
        "force_push_join_leave",
        "send join/leave events to every subscriber (needs join_leave)",
    ),
    (
        "history_size",
        "publications kept per channel (0: no history; set with history_ttl)",
    ),
    (
        "history_ttl",
        "how long history keeps a publication (set with history_size)",
    ),
    (
        "history_meta_ttl",
        "how long a channel's epoch/offset outlive its last publication",
    ),
    (
        "allow_positioning",
        "let subscribers ask for stream positioning (needs history)",
    ),
    (
        "force_positioning",
        "position every subscription (needs history)",
    ),
    (
        "allow_recovery",
        "let subscribers recover missed publications (needs history)",
    ),
    (
        "force_recovery",
        "make every subscription recoverable (needs history)",
    ),
    (
        "allow_publish_for_client",
        "let any connected client publish",
    ),
    (
        "allow_publish_for_subscriber",
        "let subscribers publish into the channel",
    ),
    (
        "allow_subscribe_for_client",
        "let any connected client subscribe without a subscription token",
    ),
    (
        "allow_subscribe_for_anonymous",
        "let anonymous connections subscribe",
    ),
    (
        "allow_presence_for_client",
        "let any connected client ask for presence",
    ),
    (
        "allow_presence_for_subscriber",
        "let subscribers ask for presence",
    ),
    (
        "allow_history_for_client",
        "let any connected client ask for history",
    ),
    (
        "allow_history_for_subscriber",
        "let subscribers ask for history",
    ),
];

/// The commented config file `genconfig` writes, with these secrets.
pub(super) fn generate(api_key: &str, token_secret: &str) -> String {
    let d = Config::default();
    let c = ClientConfig::default();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"# duplex configuration, written by `duplex genconfig`.
#
# Use it with `duplex serve --config duplex.toml`; check it with
# `duplex checkconfig duplex.toml`. Every one-value setting can also be given
# as an environment variable (DUPLEX_<KEY>, e.g. DUPLEX_LISTEN,
# DUPLEX_CLIENT_PING_INTERVAL) or a flag (--listen): flags win over the
# environment, which wins over this file. Commented-out lines show the
# defaults. Durations: a number of seconds or "500ms", "25s", "5m", "1h",
# "7d". Sizes: bytes or "64KiB", "1MiB". Reference: docs/configuration.md.

# Address to listen on (IP:PORT). Use 0.0.0.0:8000 to accept other hosts.
#listen = {listen}

# Folder for the SQLite history and for secrets generated on first start.
#data_dir = {data_dir}

# Where history lives: "memory" (lost on restart), "sqlite" (the file
# duplex.sqlite3 in data_dir) or "sqlite:PATH".
#storage = "sqlite"

# A broker to run several nodes as one (redis://HOST:PORT, or rediss://
# for TLS). With it, history, offsets, epochs and presence live in Redis,
# shared by every node, and `storage` above is not used.
#broker = "redis://127.0.0.1:6379"

# Prefix of every Redis key and topic: nodes that act as one share it.
#broker_prefix = {broker_prefix}

# How long presence entries live in Redis without a refresh: the clients of
# a node that died leave presence (leave pushes are sent) within about this.
#broker_presence_ttl = {broker_presence_ttl}

# How long a node stays listed by `info` after its last heartbeat.
#broker_node_ttl = {broker_node_ttl}

# Backends send this key in the X-API-Key header of /api requests.
# Keep it private.
api_key = {api_key}

# Secret for connection and subscription tokens (JWT, HS256); `duplex
# gentoken` signs with it. Keep it private.
token_secret = {token_secret}

# Verify tokens with a public key instead of the secret: a PEM file with an
# RSA key (RS256) or a P-256 EC key (ES256). The algorithm is taken from
# the key; token_algorithm may name it explicitly.
#token_public_key = "/etc/duplex/token-public.pem"
#token_algorithm = "RS256"

# Development mode: connections without a token, client publish, the demo
# page, and (without a [channel] table) permissive channel options.
# Never in production.
#dev = false

# This node's name in `info` replies (default: the host name).
#node_name = "duplex-1"

# Largest server API request body.
#api_max_body = {api_max_body}

# Largest HTTP request head (request line and headers) on every path; over
# it the answer is 431. At least 8KiB.
#max_request_head = {max_request_head}

# On SIGTERM/SIGINT, how long to wait for clients to go and storage to flush.
#shutdown_drain = {shutdown_drain}

# Most TCP connections open at once on the port (every path, WebSockets
# included), and from one IP address; 0 is no limit. A connection over a
# limit gets HTTP 503 with Retry-After and is closed.
#max_connections = {max_connections}
#max_connections_per_ip = {max_connections_per_ip}

# TLS: serve https and wss on the listen port with this PEM certificate
# chain (leaf first) and private key. SIGHUP reloads both files; open
# connections keep the certificate they started with.
#tls_cert = "/etc/duplex/cert.pem"
#tls_key = "/etc/duplex/key.pem"

# Log filter (tracing EnvFilter syntax: "info", "warn,duplex_server=debug")
# and format ("text" or "json"). Logs go to standard error.
#log_level = {log_level}
#log_format = "text"

[client]
# The server pings every ping_interval; a client that does not answer
# within pong_timeout is closed (3012).
#ping_interval = {ping_interval}
#pong_timeout = {pong_timeout}
# A connection must send its connect command within connect_timeout.
#connect_timeout = {connect_timeout}
# Largest message a client may send.
#max_message_size = {max_message_size}
# Most subscriptions per connection.
#max_subscriptions = {max_subscriptions}
# Bytes queued to one slow client before it is disconnected (3008).
#max_queue_bytes = {max_queue_bytes}
# Browser origins allowed to connect (Origin header); empty allows any.
#allowed_origins = ["https://example.com"]
# Commands one WebSocket connection may send per second (bursts up to this
# many); over it a command is answered with error 111. 0 is no limit.
#max_commands_per_second = 0

# Options of channels outside any namespace (names without ':'). Without a
# [channel] table they are the values shown below (presence, join/leave,
# history with recovery, subscribe for clients with a token). A [channel]
# table replaces them: every key it leaves out is off.
#[channel]
"#,
        listen = quote(&d.listen.to_string()),
        data_dir = quote(&d.data_dir.display().to_string()),
        broker_prefix = quote(&d.broker_options.prefix),
        broker_presence_ttl = quote(&duration(d.broker_options.presence_ttl)),
        broker_node_ttl = quote(&duration(d.broker_options.node_ttl)),
        api_key = quote(api_key),
        token_secret = quote(token_secret),
        api_max_body = size(d.api_max_body),
        max_request_head = size(d.max_request_head),
        shutdown_drain = quote(&duration(d.shutdown_drain)),
        max_connections = d.max_connections,
        max_connections_per_ip = d.max_connections_per_ip,
        log_level = quote(&d.log_level),
        ping_interval = quote(&duration(c.ping_interval)),
        pong_timeout = quote(&duration(c.pong_timeout)),
        connect_timeout = quote(&duration(c.connect_timeout)),
        max_message_size = size(c.max_message_size),
        max_subscriptions = c.max_subscriptions,
        max_queue_bytes = size(c.max_queue_bytes),
    );
    let mut defaults = option_entries(&Config::default_channel_options());
    if !defaults.iter().any(|(k, _)| *k == "history_meta_ttl") {
        let pos = defaults
            .iter()
            .position(|(k, _)| *k == "history_ttl")
            .map_or(defaults.len(), |p| p + 1);
        defaults.insert(pos, ("history_meta_ttl", quote("30d")));
    }
    for (key, value) in defaults {
        if let Some((_, doc)) = OPTION_DOCS.iter().find(|(k, _)| *k == key) {
            let _ = writeln!(out, "# {doc}");
        }
        let _ = writeln!(out, "#{key} = {value}");
    }
    out.push_str(
        r#"
# Named namespaces: a channel "chat:room1" uses the options of the namespace
# "chat" (a channel in a namespace that is not listed is unknown, error 102).
# Each [[namespaces]] table has a name and the same options as [channel].
#[[namespaces]]
#name = "chat"
#presence = true
#join_leave = true
#history_size = 100
#history_ttl = "10m"
#allow_recovery = true
#allow_subscribe_for_client = true
#allow_publish_for_subscriber = true
"#,
    );
    out
}

/// The resolved configuration as TOML (`serve --print-config`).
pub(super) fn render(config: &Config, mask: bool) -> String {
    let mut out = String::from("# duplex: resolved configuration\n");
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key} = {value}");
    };
    line("listen", quote(&config.listen.to_string()));
    line("data_dir", quote(&config.data_dir.display().to_string()));
    line(
        "storage",
        quote(&match &config.storage {
            StorageConfig::Memory => "memory".to_owned(),
            StorageConfig::Sqlite(path) => format!("sqlite:{}", path.display()),
        }),
    );
    if let Some(broker) = &config.broker {
        line("broker", quote(broker));
        let b = &config.broker_options;
        line("broker_prefix", quote(&b.prefix));
        line("broker_presence_ttl", quote(&duration(b.presence_ttl)));
        line("broker_node_ttl", quote(&duration(b.node_ttl)));
    }
    let secret = |value: &str| {
        if mask {
            quote("********")
        } else {
            quote(value)
        }
    };
    let mut unset = Vec::new();
    if config.api_key.is_empty() {
        unset.push("api_key");
    } else {
        line("api_key", secret(&config.api_key));
    }
    match &config.token_key {
        TokenKey::Hmac(_) if config.token_secret.is_empty() => unset.push("token_secret"),
        TokenKey::Hmac(_) => line("token_secret", secret(&config.token_secret)),
        TokenKey::RsaPem(_) | TokenKey::EcPem(_) => {
            if !config.token_secret.is_empty() {
                line("token_secret", secret(&config.token_secret));
            }
            if let Some(path) = &config.token_public_key {
                line("token_public_key", quote(&path.display().to_string()));
            }
            let alg = if matches!(config.token_key, TokenKey::RsaPem(_)) {
                "RS256"
            } else {
                "ES256"
            };
            line("token_algorithm", quote(alg));
        }
    }
    line("dev", config.dev.to_string());
    line("node_name", quote(&config.node_name));
    line("api_max_body", size(config.api_max_body));
    line("max_request_head", size(config.max_request_head));
    line("shutdown_drain", quote(&duration(config.shutdown_drain)));
    line("max_connections", config.max_connections.to_string());
    line(
        "max_connections_per_ip",
        config.max_connections_per_ip.to_string(),
    );
    line("log_level", quote(&config.log_level));
    line(
        "log_format",
        quote(match config.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }),
    );
    for key in unset {
        let _ = writeln!(
            out,
            "# {key} is not set: `duplex serve` generates it on first start"
        );
    }
    let c = &config.client;
    let _ = writeln!(out, "\n[client]");
    let _ = writeln!(out, "ping_interval = {}", quote(&duration(c.ping_interval)));
    let _ = writeln!(out, "pong_timeout = {}", quote(&duration(c.pong_timeout)));
    let _ = writeln!(
        out,
        "connect_timeout = {}",
        quote(&duration(c.connect_timeout))
    );
    let _ = writeln!(out, "max_message_size = {}", size(c.max_message_size));
    let _ = writeln!(out, "max_subscriptions = {}", c.max_subscriptions);
    let _ = writeln!(out, "max_queue_bytes = {}", size(c.max_queue_bytes));
    let _ = writeln!(out, "allowed_origins = {}", list(&c.allowed_origins));
    let _ = writeln!(
        out,
        "max_commands_per_second = {}",
        c.max_commands_per_second
    );
    let _ = writeln!(out, "\n[channel]");
    for (key, value) in option_entries(&config.channel) {
        let _ = writeln!(out, "{key} = {value}");
    }
    for ns in &config.namespaces {
        let _ = writeln!(out, "\n[[namespaces]]\nname = {}", quote(&ns.name));
        for (key, value) in option_entries(&ns.options) {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    out
}
