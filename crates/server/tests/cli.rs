//! The `duplex` binary as a user runs it: `serve` on defaults with secrets
//! generated once, precedence of flags/environment/file, `genconfig` →
//! `checkconfig`, `checkconfig` on a broken file, and `gentoken` tokens that
//! `Auth` accepts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use duplex_server::auth::Auth;
use duplex_server::config::TokenKey;

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("duplex-cli-{}", duplex_server::util::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, run in `cwd` with no inherited `DUPLEX_*` (or any other)
/// variables.
fn duplex(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_duplex"));
    cmd.env_clear().current_dir(cwd);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `duplex serve`.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd` (a `serve` with `--listen 127.0.0.1:0`) and waits for
    /// its "listening on" log line.
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
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
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.trim().parse().unwrap();
                        return Self {
                            child,
                            addr,
                            stderr: rx,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not start; stderr: {seen:#?}");
                }
            }
        }
    }

    fn health(&self) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response
    }

    /// Sends SIGTERM, waits, and returns (exit success, stdout, rest of stderr).
    fn stop(mut self) -> (bool, String, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (status.success(), out, rest.join("\n"))
    }
}

impl Drop for Server {
    /// A test that fails half-way leaves no server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value after `label` on its line of `text`.
fn value_after(text: &str, label: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains(label))?;
    Some(line.split(label).nth(1)?.trim().to_owned())
}

/// `key = "value"` from a TOML text.
fn toml_string(text: &str, key: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).unwrap();
    table.get(key)?.as_str().map(str::to_owned)
}

#[test]
fn serve_generates_secrets_once_and_reuses_them() {
    let dir = TempDir::new();
    let serve = || {
        let mut cmd = duplex(&dir.0);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--storage", "memory"]);
        cmd
    };

    let server = Server::start(&mut serve());
    assert!(
        server.health().starts_with("HTTP/1.1 200"),
        "{}",
        server.health()
    );
    let (ok, out, _) = server.stop();
    assert!(ok, "SIGTERM should end serve with status 0");
    assert!(out.contains("shown only this once"), "{out}");
    let api_key = value_after(&out, "API key (X-API-Key header):").unwrap();
    let secret = value_after(&out, "token secret (HS256 tokens):").unwrap();
    assert!(
        api_key.len() >= 32 && secret.len() >= 32 && api_key != secret,
        "{out}"
    );

    // Kept in ./duplex-data/secrets.toml, readable by the owner only.
    let path = dir.path("duplex-data/secrets.toml");
    let stored = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        toml_string(&stored, "api_key").as_deref(),
        Some(api_key.as_str())
    );
    assert_eq!(
        toml_string(&stored, "token_secret").as_deref(),
        Some(secret.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The second start reuses them and prints nothing.
    let server = Server::start(&mut serve());
    assert!(server.health().starts_with("HTTP/1.1 200"));
    let (ok, out, _) = server.stop();
    assert!(ok);
    assert!(out.trim().is_empty(), "second start printed: {out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), stored);

    // gentoken signs with the stored secret.
    let o = run(duplex(&dir.0).args(["gentoken", "--user", "42"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    let claims = Auth::new(&TokenKey::Hmac(secret))
        .unwrap()
        .verify_connect(&token)
        .unwrap();
    assert_eq!(claims.sub, "42");
    let other = Auth::new(&TokenKey::Hmac(api_key)).unwrap();
    assert!(other.verify_connect(&token).is_err());
}

#[test]
fn print_config_shows_the_defaults_and_writes_nothing() {
    let dir = TempDir::new();
    let o = run(duplex(&dir.0).args(["serve", "--print-config"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(
        toml_string(&text, "listen").as_deref(),
        Some("127.0.0.1:8000")
    );
    assert_eq!(
        toml_string(&text, "data_dir").as_deref(),
        Some("./duplex-data")
    );
    assert_eq!(
        toml_string(&text, "storage").as_deref(),
        Some("sqlite:./duplex-data/duplex.sqlite3")
    );
    assert_eq!(toml_string(&text, "log_level").as_deref(), Some("info"));
    assert!(text.contains("# api_key is not set"), "{text}");
    assert!(
        !dir.path("duplex-data").exists(),
        "print-config must not create the data folder"
    );

    let o = run(duplex(&dir.0).args(["serve", "--print-config", "--dev"]));
    let table: toml::Table = toml::from_str(&stdout(&o)).unwrap();
    assert_eq!(table["dev"].as_bool(), Some(true));
    assert_eq!(
        table["channel"]["allow_publish_for_client"].as_bool(),
        Some(true)
    );
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = TempDir::new();
    let file = dir.file(
        "duplex.toml",
        "listen = \"127.0.0.1:7001\"\nlog_level = \"warn\"\ntoken_secret = \"from-file\"\n",
    );
    let file = file.to_str().unwrap();
    let print = |env: bool, flag: bool| {
        let mut cmd = duplex(&dir.0);
        cmd.args(["serve", "--print-config", "--config", file]);
        if env {
            cmd.env("DUPLEX_LISTEN", "127.0.0.1:7002")
                .env("DUPLEX_LOG_LEVEL", "debug");
        }
        if flag {
            cmd.args(["--listen", "127.0.0.1:7003"]);
        }
        let o = run(&mut cmd);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        (
            toml_string(&text, "listen").unwrap(),
            toml_string(&text, "log_level").unwrap(),
        )
    };
    assert_eq!(print(true, true), ("127.0.0.1:7003".into(), "debug".into()));
    assert_eq!(
        print(true, false),
        ("127.0.0.1:7002".into(), "debug".into())
    );
    assert_eq!(
        print(false, false),
        ("127.0.0.1:7001".into(), "warn".into())
    );

    // The same order for the token secret, seen through gentoken.
    let secret_used = |env: bool, flag: bool| {
        let mut cmd = duplex(&dir.0);
        cmd.args(["gentoken", "--user", "u", "--config", file]);
        if env {
            cmd.env("DUPLEX_TOKEN_SECRET", "from-env");
        }
        if flag {
            cmd.args(["--token-secret", "from-flag"]);
        }
        let o = run(&mut cmd);
        assert!(o.status.success(), "{}", stderr(&o));
        let token = stdout(&o).trim().to_owned();
        ["from-flag", "from-env", "from-file"]
            .into_iter()
            .filter(|s| {
                Auth::new(&TokenKey::Hmac((*s).into()))
                    .unwrap()
                    .verify_connect(&token)
                    .is_ok()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(secret_used(true, true), ["from-flag"]);
    assert_eq!(secret_used(true, false), ["from-env"]);
    assert_eq!(secret_used(false, false), ["from-file"]);

    // DUPLEX_CONFIG names the file when --config is absent.
    let o = run(duplex(&dir.0)
        .args(["serve", "--print-config"])
        .env("DUPLEX_CONFIG", file));
    assert_eq!(
        toml_string(&stdout(&o), "listen").as_deref(),
        Some("127.0.0.1:7001")
    );
}

#[test]
fn genconfig_writes_a_file_that_checks_and_serves() {
    let dir = TempDir::new();
    let o = run(duplex(&dir.0).args(["genconfig"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let path = dir.path("duplex.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let o = run(duplex(&dir.0).args(["checkconfig", "duplex.toml"]));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "ok");

    // No overwrite without --force.
    let o = run(duplex(&dir.0).args(["genconfig"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let o = run(duplex(&dir.0).args(["genconfig", "duplex.toml", "--force"]));
    assert!(o.status.success());
    let forced = std::fs::read_to_string(&path).unwrap();
    assert_ne!(forced, text, "fresh secrets each time");
    let api_key = toml_string(&forced, "api_key").unwrap();

    // `-` prints to stdout.
    let o = run(duplex(&dir.0).args(["genconfig", "-"]));
    assert!(o.status.success());
    assert!(toml_string(&stdout(&o), "token_secret").is_some());

    // serve uses the file's secrets: nothing generated, nothing printed.
    let server = Server::start(duplex(&dir.0).args([
        "serve",
        "--config",
        "duplex.toml",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        "memory",
    ]));
    assert!(server.health().starts_with("HTTP/1.1 200"));
    let (ok, out, _) = server.stop();
    assert!(ok);
    assert!(out.trim().is_empty(), "{out}");
    assert!(!dir.path("duplex-data/secrets.toml").exists());
    let o = run(duplex(&dir.0).args(["serve", "--config", "duplex.toml", "--print-config"]));
    assert!(!stdout(&o).contains(&api_key), "secrets must be masked");
}

#[test]
fn checkconfig_lists_every_problem_with_its_line() {
    let dir = TempDir::new();
    let text = r#"# broken on purpose
listen = "localhost"
api_key = ""
token_secret = 7
tokn_secret = "x"

[client]
pong_timeout = "ten seconds"
max_subscriptions = -3

[channel]
history_size = 10
allow_recovery = "yes"

[[namespaces]]
name = "chat room"
presense = true
"#;
    dir.file("bad.toml", text);
    let o = run(duplex(&dir.0).args(["checkconfig", "bad.toml"]));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<usize> = out
        .lines()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4, 5, 8, 9, 13, 16, 17], "{out}");
    for expected in [
        "bad.toml:2: `listen`: invalid address",
        "bad.toml:3: `api_key`",
        "bad.toml:4: `token_secret`: expected a string",
        "bad.toml:5: unknown key `tokn_secret` (did you mean `token_secret`?)",
        "bad.toml:8: `client.pong_timeout`",
        "bad.toml:9: `client.max_subscriptions`",
        "bad.toml:13: [channel]: `allow_recovery`",
        "bad.toml:16: [[namespaces]]: invalid namespace name",
        "bad.toml:17: namespace \"chat room\": unknown key `presense` (did you mean `presence`?)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(stderr(&o).contains("9 problems"), "{}", stderr(&o));

    let o = run(duplex(&dir.0).args(["checkconfig", "missing.toml"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read missing.toml"));
}

#[test]
fn gentoken_tokens_verify_with_their_claims() {
    let dir = TempDir::new();
    let auth = Auth::new(&TokenKey::Hmac("s3cret".into())).unwrap();
    let gentoken = |args: &[&str]| {
        let o = run(duplex(&dir.0)
            .arg("gentoken")
            .args(args)
            .env("DUPLEX_TOKEN_SECRET", "s3cret"));
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_owned()
    };
    let before = duplex_server::auth::now_secs();
    let token = gentoken(&[
        "--user",
        "7",
        "--channel",
        "news",
        "--channel",
        "notifications#7",
        "--ttl",
        "60",
        "--info",
        r#"{"name":"Ann"}"#,
    ]);
    let claims = auth.verify_connect(&token).unwrap();
    assert_eq!(claims.sub, "7");
    assert_eq!(claims.channels, ["news", "notifications#7"]);
    assert_eq!(claims.info.unwrap().get(), r#"{"name":"Ann"}"#);
    let exp = claims.exp.unwrap();
    assert!(
        exp >= before + 60 && exp <= duplex_server::auth::now_secs() + 60,
        "{exp}"
    );

    let token = gentoken(&["--user", "7", "--ttl", "0"]);
    let claims = auth.verify_connect(&token).unwrap();
    assert_eq!(claims.exp, None);
    assert!(claims.channels.is_empty());

    let token = gentoken(&["--user", "7", "--sub-channel", "chat:lobby"]);
    let claims = auth.verify_subscribe(&token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.channel.as_str()),
        ("7", "chat:lobby")
    );

    let fails = |cmd: &mut Command, needle: &str| {
        let o = run(cmd);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(needle),
            "{needle:?} not in {}",
            stderr(&o)
        );
    };
    fails(
        duplex(&dir.0).args(["gentoken", "--user", "1"]),
        "no token secret",
    );
    fails(
        duplex(&dir.0).args([
            "gentoken",
            "--user",
            "1",
            "--token-secret",
            "s",
            "--info",
            "{nope",
        ]),
        "--info is not JSON",
    );
    fails(
        duplex(&dir.0).args([
            "gentoken",
            "--user",
            "1",
            "--token-secret",
            "s",
            "--channel",
            "bad channel",
        ]),
        "channel \"bad channel\"",
    );
}

#[test]
fn serve_refuses_bad_settings() {
    let dir = TempDir::new();
    let o = run(duplex(&dir.0).args([
        "serve",
        "--storage",
        "memory",
        "--listen",
        "127.0.0.1:0",
        "--broker",
        "nats://127.0.0.1:4222",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid broker"), "{}", stderr(&o));
    assert!(
        !dir.path("duplex-data").exists(),
        "refused before generating secrets"
    );

    let o = run(duplex(&dir.0)
        .args(["serve", "--listen", "nowhere", "--storage", "memory"])
        .env("DUPLEX_LOG_FORMAT", "xml"));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("flag --listen: invalid address"), "{err}");
    assert!(err.contains("environment DUPLEX_LOG_FORMAT"), "{err}");

    // A port in use is reported, with status 1.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let o = run(duplex(&dir.0).args(["serve", "--storage", "memory", "--listen", &port]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
}
