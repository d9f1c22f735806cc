//! Unit tests of configuration loading, checking and generation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::fuzzing::{EC_P256_PUB, EC_P384_PUB, RSA_PUB};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("duplex-config-{}", crate::util::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(
    file: Option<&Path>,
    env: &[(&str, &str)],
    flags: &[(&str, &str)],
) -> Result<Loaded, ConfigError> {
    Config::load(&Sources {
        file: file.map(Path::to_owned),
        env: pairs(env),
        flags: pairs(flags),
    })
}

fn problems(err: ConfigError) -> Vec<Problem> {
    match err {
        ConfigError::Invalid(Problems(p)) => p,
        other => panic!("expected problems, got {other}"),
    }
}

fn lines_of(problems: &[Problem]) -> Vec<usize> {
    problems.iter().map(|p| p.line().unwrap()).collect()
}

#[test]
fn defaults_without_any_source() {
    let loaded = load(None, &[], &[]).unwrap();
    let c = loaded.config;
    let d = Config::default();
    assert_eq!(c.listen, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("./duplex-data"));
    assert_eq!(
        c.storage,
        StorageConfig::Sqlite(PathBuf::from("./duplex-data/duplex.sqlite3"))
    );
    assert_eq!(c.broker, None);
    assert!(c.api_key.is_empty() && c.token_secret.is_empty());
    assert_eq!(c.token_key, TokenKey::Hmac(String::new()));
    assert!(!c.dev);
    assert!(!c.node_name.is_empty());
    assert_eq!(c.client, d.client);
    assert_eq!(c.channel, d.channel);
    assert_eq!(
        (c.api_max_body, c.shutdown_drain),
        (d.api_max_body, d.shutdown_drain)
    );
    assert_eq!(
        (c.log_level.as_str(), c.log_format),
        ("info", LogFormat::Text)
    );
    assert!(loaded.warnings.is_empty());
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = TempDir::new();
    let file = dir.file(
        "duplex.toml",
        "listen = \"127.0.0.1:7001\"\ntoken_secret = \"file\"\nlog_level = \"warn\"\nnode_name = \"file\"\n",
    );
    let env = [
        ("DUPLEX_LISTEN", "127.0.0.1:7002"),
        ("DUPLEX_TOKEN_SECRET", "env"),
        ("DUPLEX_LOG_LEVEL", "debug"),
    ];
    let flags = [("listen", "127.0.0.1:7003"), ("token_secret", "flag")];
    let c = load(Some(&file), &env, &flags).unwrap().config;
    assert_eq!(c.listen.port(), 7003);
    assert_eq!(c.token_secret, "flag");
    assert_eq!(c.token_key, TokenKey::Hmac("flag".into()));
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.node_name, "file");

    let c = load(Some(&file), &env, &[]).unwrap().config;
    assert_eq!((c.listen.port(), c.token_secret.as_str()), (7002, "env"));
    let c = load(Some(&file), &[], &[]).unwrap().config;
    assert_eq!((c.listen.port(), c.token_secret.as_str()), (7001, "file"));
    assert_eq!(c.log_level, "warn");
}

#[test]
fn environment_values_are_parsed_like_flags() {
    let env = [
        ("DUPLEX_DEV", "1"),
        ("DUPLEX_STORAGE", "memory"),
        ("DUPLEX_CLIENT_PING_INTERVAL", "5s"),
        ("DUPLEX_CLIENT_MAX_MESSAGE_SIZE", "1MiB"),
        (
            "DUPLEX_CLIENT_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        ),
        ("DUPLEX_API_MAX_BODY", "2048"),
        ("DUPLEX_SHUTDOWN_DRAIN", "1500ms"),
        ("DUPLEX_MAX_CONNECTIONS", "500"),
        ("DUPLEX_MAX_CONNECTIONS_PER_IP", "20"),
        ("DUPLEX_CLIENT_MAX_COMMANDS_PER_SECOND", "30"),
        ("DUPLEX_BROKER", ""),
        ("DUPLEX_LOG_FORMAT", "json"),
        ("DUPLEX_WHATEVER", "x"),
    ];
    let loaded = load(None, &env, &[]).unwrap();
    let c = loaded.config;
    assert!(c.dev);
    assert_eq!(c.channel, Config::dev_channel_options());
    assert_eq!(c.storage, StorageConfig::Memory);
    assert_eq!(c.client.ping_interval, Duration::from_secs(5));
    assert_eq!(c.client.max_message_size, 1 << 20);
    assert_eq!(
        c.client.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(c.api_max_body, 2048);
    assert_eq!(c.shutdown_drain, Duration::from_millis(1500));
    assert_eq!((c.max_connections, c.max_connections_per_ip), (500, 20));
    assert_eq!(c.client.max_commands_per_second, 30);
    assert_eq!(c.broker, None, "an empty variable counts as unset");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("DUPLEX_WHATEVER"));

    assert_eq!(
        env_name("client.ping_interval").as_deref(),
        Some("DUPLEX_CLIENT_PING_INTERVAL")
    );
    assert_eq!(
        env_name("token_public_key").as_deref(),
        Some("DUPLEX_TOKEN_PUBLIC_KEY")
    );
    assert_eq!(env_name("channel"), None);
}

#[test]
fn environment_and_flag_problems_name_their_source_and_all_are_reported() {
    let env = [("DUPLEX_LISTEN", "nowhere"), ("DUPLEX_DEV", "maybe")];
    let flags = [("storage", "redis"), ("log_format", "xml"), ("api_key", "")];
    let p = problems(load(None, &env, &flags).unwrap_err());
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert!(
        shown[0].starts_with("environment DUPLEX_LISTEN: invalid address"),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].starts_with("environment DUPLEX_DEV: expected true or false"),
        "{}",
        shown[1]
    );
    assert!(
        shown[2].starts_with("flag --storage: invalid storage"),
        "{}",
        shown[2]
    );
    assert!(shown[3].starts_with("flag --log-format:"), "{}", shown[3]);
    assert!(
        shown[4].starts_with("flag --api-key: the API key must not be empty"),
        "{}",
        shown[4]
    );
}

#[test]
fn check_reports_every_problem_on_its_line() {
    let text = r#"# line 1
listen = "127.0.0.1:99999"
lsiten = "x"
token_secret = ""
api_max_body = -1

[client]
ping_interval = "soon"
max_subscriptions = "many"
bogus = 1

[channel]
presense = true
history_size = 10

[[namespaces]]
name = "chat"
history_ttl = "5 parsecs"

[[namespaces]]
name = "chat"

[[namespaces]]
name = "no spaces"
"#;
    let p = check(text, Path::new("t.toml"));
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines_of(&p),
        [2, 3, 4, 5, 8, 9, 10, 13, 18, 21, 24],
        "{shown:#?}"
    );
    assert!(shown[0].starts_with("t.toml:2: `listen`: invalid address"));
    assert!(shown[1].contains("unknown key `lsiten` (did you mean `listen`?)"));
    assert!(shown[2].contains("must not be empty"));
    assert!(shown[4].contains("`client.ping_interval`"));
    assert!(shown[6].contains("[client]: unknown key `bogus`"));
    assert!(shown[7].contains("did you mean `presence`?"));
    assert!(
        shown[8].contains("namespace \"chat\": `history_ttl`"),
        "{}",
        shown[8]
    );
    assert!(
        shown[9].contains("defined twice (first on line 17)"),
        "{}",
        shown[9]
    );
    assert!(shown[10].contains("invalid namespace name"));
}

#[test]
fn check_reports_option_conflicts_at_the_table() {
    let text = "dev = true\n\n[channel]\nhistory_size = 10\n\n[[namespaces]]\nname = \"a\"\nforce_recovery = true\n";
    let p = check(text, Path::new("t.toml"));
    assert_eq!(lines_of(&p), [3, 6], "{p:#?}");
    assert!(p[0].message.contains("history_size and history_ttl"));
    assert!(p[1]
        .message
        .contains("namespace \"a\": force_recovery needs history"));
}

#[test]
fn check_reports_syntax_errors_with_their_line() {
    let p = check(
        "listen = \"127.0.0.1:1\"\n\nport = = 3\n",
        Path::new("t.toml"),
    );
    assert_eq!(lines_of(&p), [3]);
    assert!(p[0].message.starts_with("invalid TOML"));
    let p = check("a = 1\na = 2\n", Path::new("t.toml"));
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("duplicate"), "{}", p[0].message);
}

#[test]
fn inline_tables_and_arrays_are_accepted() {
    let text = r#"
client = { ping_interval = "5s", allowed_origins = ["https://x.example"] }
channel = { presence = true }
namespaces = [{ name = "chat", join_leave = true }, { name = "news", history_size = 5, history_ttl = "1h" }]
"#;
    assert_eq!(check(text, Path::new("t.toml")), []);
    let dir = TempDir::new();
    let c = load(Some(&dir.file("d.toml", text)), &[], &[])
        .unwrap()
        .config;
    assert_eq!(c.client.ping_interval, Duration::from_secs(5));
    assert!(c.channel.presence);
    assert_eq!(c.namespaces.len(), 2);
    assert_eq!(c.namespaces[0].name, "chat");
    assert!(c.namespaces[0].options.join_leave);
    assert_eq!(
        c.namespaces[1].options.history_ttl,
        Duration::from_secs(3600)
    );
    let p = check(
        "namespaces = [1, { name = \"ok\" }]\nclient = 3\n",
        Path::new("t.toml"),
    );
    assert_eq!(lines_of(&p), [1, 2], "{p:#?}");
}

#[test]
fn dev_gives_permissive_channels_unless_the_file_sets_them() {
    let c = load(None, &[], &[("dev", "true")]).unwrap().config;
    assert!(c.dev);
    assert_eq!(c.channel, Config::dev_channel_options());
    let dir = TempDir::new();
    let file = dir.file("d.toml", "[channel]\npresence = true\n");
    let c = load(Some(&file), &[], &[("dev", "true")]).unwrap().config;
    assert!(c.channel.presence && !c.channel.allow_publish_for_client);
}

#[test]
fn generated_file_checks_and_loads() {
    let text = generate();
    assert_eq!(check(&text, Path::new("gen.toml")), []);
    let dir = TempDir::new();
    let file = dir.file("gen.toml", &text);
    let c = load(Some(&file), &[], &[]).unwrap().config;
    assert_eq!(c.api_key.len(), 43);
    assert_eq!(c.token_secret.len(), 43);
    assert_ne!(c.api_key, c.token_secret);
    assert_eq!(c.client, ClientConfig::default());
    // Fresh secrets every time.
    assert_ne!(generate(), text);

    // Every commented-out setting is valid once uncommented (except the
    // public key and the TLS files, which name files that do not exist here).
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[')
                    && !rest.starts_with("token_")
                    && !rest.starts_with("tls_") =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(uncommented.contains("\n[channel]\n") && uncommented.contains("\n[[namespaces]]\n"));
    assert_eq!(check(&uncommented, Path::new("gen.toml")), []);
    let file = dir.file("all.toml", &uncommented);
    let c = load(Some(&file), &[], &[]).unwrap().config;
    assert_eq!(c.namespaces.len(), 1);
    assert_eq!(c.namespaces[0].options.history_size, 100);
    assert_eq!(c.broker.as_deref(), Some("redis://127.0.0.1:6379"));
}

#[test]
fn every_channel_option_is_rendered_and_documented() {
    let names = file::option_names();
    assert!(
        names.contains(&"presence") && names.contains(&"history_ttl"),
        "{names:?}"
    );
    let full = hub::NamespaceOptions {
        history_meta_ttl: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut rendered: Vec<&str> = template::option_entries(&full)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected = names.to_vec();
    rendered.sort_unstable();
    expected.sort_unstable();
    assert_eq!(rendered, expected);
    for name in names {
        assert!(
            template::OPTION_DOCS.iter().any(|(k, _)| k == name),
            "{name} undocumented"
        );
    }
}

#[test]
fn printed_config_loads_back_the_same() {
    let text = r#"
listen = "0.0.0.0:9000"
data_dir = "/var/lib/duplex"
storage = "sqlite:/tmp/x.db"
api_key = "k\"ey"
token_secret = "s3cret"
dev = true
node_name = "n1"
api_max_body = 123457
shutdown_drain = "1500ms"
max_connections = 0
max_connections_per_ip = 64
log_level = "warn,duplex_server=debug"
log_format = "json"

[client]
ping_interval = "1m"
pong_timeout = 3
connect_timeout = 2.5
max_message_size = "2MiB"
max_subscriptions = 7
max_queue_bytes = 1000
allowed_origins = ["https://a.example"]
max_commands_per_second = 40

[channel]
presence = true
history_size = 3
history_ttl = "2h"
history_meta_ttl = "7d"
allow_recovery = true

[[namespaces]]
name = "chat"
join_leave = true
"#;
    let dir = TempDir::new();
    let first = load(Some(&dir.file("a.toml", text)), &[], &[])
        .unwrap()
        .config;
    assert_eq!(first.client.connect_timeout, Duration::from_millis(2500));
    assert_eq!(
        (first.max_connections, first.max_connections_per_ip),
        (0, 64)
    );
    assert_eq!(first.client.max_commands_per_second, 40);
    let printed = first.to_toml(false);
    assert_eq!(check(&printed, Path::new("p.toml")), [], "{printed}");
    let second = load(Some(&dir.file("p.toml", &printed)), &[], &[])
        .unwrap()
        .config;
    assert_eq!(first, second, "{printed}");

    let masked = first.to_toml(true);
    assert!(
        !masked.contains("s3cret") && !masked.contains("k\\\"ey"),
        "{masked}"
    );
    assert!(masked.contains("api_key = \"********\""));
}

#[test]
fn public_keys_pick_the_algorithm() {
    let dir = TempDir::new();
    let rsa = dir.file("rsa.pem", RSA_PUB);
    let ec = dir.file("ec.pem", EC_P256_PUB);
    let p384 = dir.file("p384.pem", EC_P384_PUB);
    let private = dir.file(
        "private.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let path = |p: &PathBuf| p.display().to_string();

    let c = load(None, &[], &[("token_public_key", &path(&rsa))])
        .unwrap()
        .config;
    assert_eq!(c.token_key, TokenKey::RsaPem(RSA_PUB.into()));
    assert_eq!(c.token_public_key.as_deref(), Some(rsa.as_path()));
    assert_eq!(
        crate::auth::Auth::new(&c.token_key).unwrap().algorithm(),
        jsonwebtoken::Algorithm::RS256
    );
    let c = load(None, &[("DUPLEX_TOKEN_PUBLIC_KEY", &path(&ec))], &[])
        .unwrap()
        .config;
    assert_eq!(c.token_key, TokenKey::EcPem(EC_P256_PUB.into()));
    let c = load(
        None,
        &[],
        &[
            ("token_public_key", &path(&ec)),
            ("token_algorithm", "es256"),
        ],
    )
    .unwrap();
    assert!(matches!(c.config.token_key, TokenKey::EcPem(_)));
    assert!(c
        .config
        .to_toml(true)
        .contains("token_algorithm = \"ES256\""));

    for (file, needle) in [
        (&p384, "P-256"),
        (&private, "private key"),
        (&dir.0.join("none.pem"), "cannot read"),
    ] {
        let p = problems(load(None, &[], &[("token_public_key", &path(file))]).unwrap_err());
        assert!(p[0].message.contains(needle), "{p:?}");
    }
    let p = problems(
        load(
            None,
            &[],
            &[
                ("token_public_key", &path(&rsa)),
                ("token_algorithm", "ES256"),
            ],
        )
        .unwrap_err(),
    );
    assert!(p[0].message.contains("does not match"), "{p:?}");
    let p = problems(load(None, &[], &[("token_algorithm", "RS256")]).unwrap_err());
    assert!(p[0].message.contains("needs token_public_key"), "{p:?}");
    let text = format!(
        "token_public_key = {:?}\ntoken_algorithm = \"HS256\"\n",
        path(&rsa)
    );
    let p = check(&text, Path::new("t.toml"));
    assert_eq!(lines_of(&p), [2], "{p:?}");
}

#[test]
fn secrets_are_generated_once_and_reused() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let data_flag = data.display().to_string();
    let flags = [("data_dir", data_flag.as_str())];
    let mut c = load(None, &[], &flags).unwrap().config;
    let generated = c.ensure_secrets().unwrap().unwrap();
    assert_eq!(generated.path, data.join("secrets.toml"));
    let (key, secret) = (generated.api_key.unwrap(), generated.token_secret.unwrap());
    assert_eq!(
        (c.api_key.as_str(), c.token_secret.as_str()),
        (key.as_str(), secret.as_str())
    );
    assert_eq!(c.token_key, TokenKey::Hmac(secret.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&generated.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Later loads read them; nothing more is generated.
    let mut again = load(None, &[], &flags).unwrap().config;
    assert_eq!(
        (again.api_key.as_str(), again.token_secret.as_str()),
        (key.as_str(), secret.as_str())
    );
    assert_eq!(again.ensure_secrets().unwrap(), None);

    // A configured secret wins over the stored one.
    let c = load(None, &[("DUPLEX_TOKEN_SECRET", "mine")], &flags)
        .unwrap()
        .config;
    assert_eq!(
        (c.api_key.as_str(), c.token_secret.as_str()),
        (key.as_str(), "mine")
    );

    // Only what is missing is generated, and the file keeps the rest.
    let other = dir.0.join("other");
    let other_flag = other.display().to_string();
    let mut c = load(
        None,
        &[],
        &[("data_dir", &other_flag), ("api_key", "given")],
    )
    .unwrap()
    .config;
    let generated = c.ensure_secrets().unwrap().unwrap();
    assert_eq!(generated.api_key, None);
    assert!(generated.token_secret.is_some());
    let mut c = load(None, &[], &[("data_dir", &other_flag)])
        .unwrap()
        .config;
    assert!(c.api_key.is_empty());
    let generated = c.ensure_secrets().unwrap().unwrap();
    assert!(generated.api_key.is_some() && generated.token_secret.is_none());
    let c2 = load(None, &[], &[("data_dir", &other_flag)])
        .unwrap()
        .config;
    assert_eq!((c2.api_key, c2.token_secret), (c.api_key, c.token_secret));

    // With a public key no token secret is needed.
    let pem = dir.file("rsa.pem", RSA_PUB).display().to_string();
    let third = dir.0.join("third").display().to_string();
    let mut c = load(
        None,
        &[],
        &[("data_dir", &third), ("token_public_key", &pem)],
    )
    .unwrap()
    .config;
    let generated = c.ensure_secrets().unwrap().unwrap();
    assert!(generated.api_key.is_some() && generated.token_secret.is_none());
}

#[test]
fn a_broken_secrets_file_is_an_error() {
    let dir = TempDir::new();
    dir.file("secrets.toml", "api_key = \"\"\n");
    let flag = dir.0.display().to_string();
    let err = load(None, &[], &[("data_dir", &flag)]).unwrap_err();
    assert!(matches!(err, ConfigError::Secrets { .. }), "{err}");
    dir.file("secrets.toml", "api_key = 3\n");
    assert!(load(None, &[], &[("data_dir", &flag)]).is_err());
}

#[test]
fn sizes_and_durations() {
    assert_eq!(settings::parse_size("65536").unwrap(), 65536);
    assert_eq!(settings::parse_size("64KiB").unwrap(), 65536);
    assert_eq!(settings::parse_size("64kb").unwrap(), 64_000);
    assert_eq!(settings::parse_size("1 MiB").unwrap(), 1 << 20);
    assert_eq!(settings::parse_size("2GB").unwrap(), 2_000_000_000);
    for bad in [
        "",
        "MiB",
        "1.5MiB",
        "-1",
        "3 apples",
        "99999999999999999999GiB",
    ] {
        assert!(settings::parse_size(bad).is_err(), "{bad}");
    }
    for (d, text) in [
        (Duration::from_secs(25), "25s"),
        (Duration::from_secs(600), "10m"),
        (Duration::from_secs(7200), "2h"),
        (Duration::from_secs(86400 * 30), "30d"),
        (Duration::from_millis(250), "250ms"),
        (Duration::ZERO, "0s"),
    ] {
        assert_eq!(template::duration(d), text);
        assert_eq!(hub::namespace::parse_duration(text).unwrap(), d);
    }
    assert_eq!(template::size(65536), "\"64KiB\"");
    assert_eq!(template::size(1000), "1000");
}

#[test]
fn suggestions_only_for_near_misses() {
    let keys = settings::TOP_KEYS.iter().copied();
    assert_eq!(settings::suggest("lsiten", keys.clone()), Some("listen"));
    assert_eq!(
        settings::suggest("token_secert", keys.clone()),
        Some("token_secret")
    );
    assert_eq!(settings::suggest("zzzz", keys), None);
}

#[test]
fn broker_and_storage_forms() {
    let c = load(
        None,
        &[],
        &[
            ("broker", "redis://127.0.0.1:6379"),
            ("storage", "sqlite:/x/y.db"),
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.broker.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(c.storage, StorageConfig::Sqlite("/x/y.db".into()));
    let c = load(None, &[], &[("data_dir", "/srv/d"), ("storage", "sqlite")])
        .unwrap()
        .config;
    assert_eq!(
        c.storage,
        StorageConfig::Sqlite("/srv/d/duplex.sqlite3".into())
    );
    let c = load(None, &[], &[("listen", "localhost:81")])
        .unwrap()
        .config;
    assert_eq!(c.listen, "127.0.0.1:81".parse().unwrap());
    for (key, bad) in [
        ("broker", "redis://"),
        ("broker", "nats://x:1"),
        ("storage", "sqlite:"),
        ("listen", "8000"),
    ] {
        assert!(load(None, &[], &[(key, bad)]).is_err(), "{key}={bad}");
    }
}

#[test]
fn broker_options_from_file_env_and_defaults() {
    let c = load(None, &[], &[]).unwrap().config;
    assert_eq!(c.broker_options, BrokerOptions::default());
    assert_eq!(c.broker_options.prefix, "duplex");
    let dir = TempDir::new();
    let file = dir.file(
        "d.toml",
        "broker = \"redis://10.0.0.1:6379\"\nbroker_prefix = \"app:prod\"\nbroker_presence_ttl = \"45s\"\nbroker_node_ttl = 6\n",
    );
    let c = load(Some(&file), &[("DUPLEX_BROKER_NODE_TTL", "3s")], &[])
        .unwrap()
        .config;
    assert_eq!(c.broker.as_deref(), Some("redis://10.0.0.1:6379"));
    assert_eq!(c.broker_options.prefix, "app:prod");
    assert_eq!(c.broker_options.presence_ttl, Duration::from_secs(45));
    assert_eq!(
        c.broker_options.node_ttl,
        Duration::from_secs(3),
        "the environment wins over the file"
    );
    // What --print-config writes loads back the same.
    let again = dir.file("again.toml", &c.to_toml(false));
    let back = load(Some(&again), &[], &[]).unwrap().config;
    assert_eq!(back.broker_options, c.broker_options);
    assert!(check(&c.to_toml(false), &again).is_empty());
    for (key, bad) in [
        ("broker_prefix", ""),
        ("broker_prefix", "has space"),
        ("broker_prefix", "a{b}"),
        ("broker_presence_ttl", "0s"),
        ("broker_node_ttl", "soon"),
    ] {
        assert!(load(None, &[], &[(key, bad)]).is_err(), "{key}={bad:?}");
    }
    let problems = check("broker_prefix = \"x y\"\n", Path::new("p.toml"));
    assert_eq!(lines_of(&problems), [1]);
    // genconfig documents them.
    let generated = generate();
    for key in ["#broker_prefix", "#broker_presence_ttl", "#broker_node_ttl"] {
        assert!(generated.contains(key), "{key}");
    }
}

#[test]
fn request_head_limit_has_a_floor() {
    let p = check("max_request_head = \"4KiB\"\n", Path::new("t.toml"));
    assert_eq!(lines_of(&p), [1], "{p:?}");
    assert!(p[0].to_string().contains("at least 8192"), "{p:?}");
    assert_eq!(
        check("max_request_head = \"32KiB\"\n", Path::new("t.toml")),
        []
    );
}

#[test]
fn connection_limits_must_be_counts() {
    let text = "max_connections = -5\nmax_connections_per_ip = \"lots\"\n";
    let p = check(text, Path::new("t.toml"));
    assert_eq!(lines_of(&p), [1, 2], "{p:?}");
    let ok = check(
        "max_connections = 10\nmax_connections_per_ip = 0\n",
        Path::new("t.toml"),
    );
    assert_eq!(ok, []);
}

#[test]
fn tls_needs_both_files_and_usable_ones() {
    let dir = TempDir::new();
    let only_cert = format!(
        "tls_cert = {:?}\n",
        dir.file("c.pem", "x").display().to_string()
    );
    assert_eq!(lines_of(&check(&only_cert, Path::new("t.toml"))), [1]);
    let not_pem = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        dir.file("c.pem", "not a certificate").display().to_string(),
        dir.file("k.pem", "not a key").display().to_string()
    );
    let p = check(&not_pem, Path::new("t.toml"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].to_string().contains("no PEM certificate"), "{p:?}");
}

#[test]
fn counts_and_sizes_fit_toml_so_the_printout_loads_again() {
    // 2^63 - 1 is the largest TOML integer; the environment and size
    // strings could give more, which --print-config wrote unloadable.
    let max = i64::MAX.to_string();
    let over = (i64::MAX as u64 + 1).to_string();
    let loaded = load(None, &[("DUPLEX_MAX_CONNECTIONS", &max)], &[]).unwrap();
    assert_eq!(loaded.config.max_connections, i64::MAX as usize);
    assert!(check(&loaded.config.to_toml(false), Path::new("p.toml")).is_empty());
    for (var, value) in [
        ("DUPLEX_MAX_CONNECTIONS", over.as_str()),
        ("DUPLEX_CLIENT_MAX_SUBSCRIPTIONS", "9999999999999999999"),
        ("DUPLEX_CLIENT_MAX_QUEUE_BYTES", over.as_str()),
    ] {
        let p = problems(load(None, &[(var, value)], &[]).unwrap_err());
        assert_eq!(p.len(), 1, "{var}: {p:?}");
    }
    assert!(settings::parse_size("8589934591GiB").is_ok());
    assert!(settings::parse_size("8589934592GiB").is_err());
}
