//! The command line: `duplex serve | genconfig | checkconfig | gentoken`.
//!
//! Owns the flags, turning them into setting values for [`config`](crate::config)
//! (which applies the precedence flags > environment > file > defaults),
//! logging set-up, the runtime, what is printed, and exit codes: 0 on
//! success, 1 when a command fails (bad configuration, a problem found by
//! `checkconfig`, a server that could not start), 2 for usage errors (from
//! clap). It does not know what settings mean: that is `config`'s, and
//! running the server is `run`'s.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::auth::Auth;
use crate::config::{self, Config, GeneratedSecrets, Loaded, LogFormat, Sources, TokenKey};

#[derive(Parser)]
#[command(
    name = "duplex",
    version,
    about = "Realtime messaging server: Centrifugo-compatible WebSocket and Socket.IO on the same channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one node until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Writes a commented config file with fresh secrets.
    Genconfig {
        /// Where to write it; `-` prints it to standard output.
        #[arg(value_name = "PATH", default_value = "duplex.toml")]
        path: PathBuf,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Checks a config file and reports every problem with its line.
    Checkconfig {
        /// The TOML file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Prints a connection token (or a subscription token) signed with the
    /// configured token secret.
    Gentoken(GentokenArgs),
}

/// `serve`'s flags: each overrides the setting of the same name (the
/// token-related ones are shared with `gentoken` through [`CommonFlags`]).
#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonFlags,
    /// Address to listen on, IP:PORT [env: DUPLEX_LISTEN] [default: 127.0.0.1:8000].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Key backends send in X-API-Key [env: DUPLEX_API_KEY] [default: generated on first start].
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// `memory`, `sqlite` or `sqlite:PATH` [env: DUPLEX_STORAGE] [default: sqlite in the data folder].
    #[arg(long, value_name = "memory|sqlite:PATH")]
    storage: Option<String>,
    /// Broker to run several nodes as one, redis://HOST:PORT [env: DUPLEX_BROKER].
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Log filter, e.g. `info` or `warn,duplex_server=debug` [env: DUPLEX_LOG_LEVEL] [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format [env: DUPLEX_LOG_FORMAT] [default: text].
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
    /// This node's name [env: DUPLEX_NODE_NAME] [default: the host name].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// PEM certificate chain: serve https/wss (with --tls-key; SIGHUP reloads) [env: DUPLEX_TLS_CERT].
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert [env: DUPLEX_TLS_KEY].
    #[arg(long, value_name = "PATH")]
    tls_key: Option<String>,
    /// Development mode: tokenless connects, client publish, demo page [env: DUPLEX_DEV].
    #[arg(long)]
    dev: bool,
    /// Print the resolved configuration (secrets masked) and exit.
    #[arg(long, hide = true)]
    print_config: bool,
}

/// Flags every command that reads the configuration takes.
#[derive(Args)]
struct CommonFlags {
    /// TOML config file [env: DUPLEX_CONFIG].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder for SQLite and generated secrets [env: DUPLEX_DATA_DIR] [default: ./duplex-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// HMAC secret for tokens [env: DUPLEX_TOKEN_SECRET] [default: generated on first start].
    #[arg(long, value_name = "SECRET")]
    token_secret: Option<String>,
    /// PEM public key to verify tokens with (RS256/ES256) [env: DUPLEX_TOKEN_PUBLIC_KEY].
    #[arg(long, value_name = "PATH")]
    token_public_key: Option<String>,
    /// HS256, RS256 or ES256 (default: from the key) [env: DUPLEX_TOKEN_ALGORITHM].
    #[arg(long, value_name = "ALG")]
    token_algorithm: Option<String>,
}

#[derive(Args)]
struct GentokenArgs {
    #[command(flatten)]
    common: CommonFlags,
    /// The user id (`sub` claim); an empty string makes an anonymous token.
    #[arg(long, value_name = "ID")]
    user: String,
    /// A channel to subscribe the connection to on connect (`channels`
    /// claim); repeat for several.
    #[arg(long = "channel", value_name = "CHANNEL")]
    channels: Vec<String>,
    /// Lifetime: seconds or a duration such as `1h`, `7d`; 0 never expires.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    ttl: String,
    /// JSON shown in presence (`info` claim).
    #[arg(long, value_name = "JSON")]
    info: Option<String>,
    /// Make a subscription token for this channel instead of a connection token.
    #[arg(long, value_name = "CHANNEL", conflicts_with = "channels")]
    sub_channel: Option<String>,
}

impl CommonFlags {
    fn push(&self, flags: &mut Vec<(String, String)>) {
        let values = [
            ("data_dir", &self.data_dir),
            ("token_secret", &self.token_secret),
            ("token_public_key", &self.token_public_key),
            ("token_algorithm", &self.token_algorithm),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                flags.push((key.to_owned(), value.clone()));
            }
        }
    }

    fn sources(&self, mut flags: Vec<(String, String)>) -> Sources {
        self.push(&mut flags);
        Sources::from_process(self.config.clone(), flags)
    }
}

impl ServeArgs {
    fn sources(&self) -> Sources {
        let mut flags = Vec::new();
        let values = [
            ("listen", &self.listen),
            ("api_key", &self.api_key),
            ("storage", &self.storage),
            ("broker", &self.broker),
            ("log_level", &self.log_level),
            ("log_format", &self.log_format),
            ("node_name", &self.node_name),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                flags.push((key.to_owned(), value.clone()));
            }
        }
        if self.dev {
            flags.push(("dev".to_owned(), "true".to_owned()));
        }
        self.common.sources(flags)
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Genconfig { path, force } => genconfig(&path, force),
        Command::Checkconfig { file } => checkconfig(&file),
        Command::Gentoken(args) => gentoken(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("duplex: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration, printing its warnings to standard error.
fn load(sources: &Sources) -> Result<Loaded, String> {
    let loaded = Config::load(sources).map_err(|e| match e {
        config::ConfigError::Invalid(problems) => {
            format!("invalid configuration:\n{}", indent(&problems.to_string()))
        }
        other => other.to_string(),
    })?;
    for warning in &loaded.warnings {
        eprintln!("duplex: warning: {warning}");
    }
    Ok(loaded)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    let Loaded { mut config, .. } = load(&args.sources())?;
    if args.print_config {
        print!("{}", config.to_toml(true));
        return Ok(());
    }
    let generated = config.ensure_secrets().map_err(|e| e.to_string())?;
    if let Some(generated) = &generated {
        print_generated(generated);
    }
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime
        .block_on(crate::run::run(config))
        .map_err(|e| e.to_string())
}

/// Shows generated secrets once, on standard output.
fn print_generated(generated: &GeneratedSecrets) {
    let mut out = String::from("\nduplex: first start: generated ");
    out.push_str(match (&generated.api_key, &generated.token_secret) {
        (Some(_), Some(_)) => "an API key and a token secret",
        (Some(_), None) => "an API key",
        _ => "a token secret",
    });
    out.push_str(&format!(
        ".\nThey are saved in {} (mode 0600) and reused on later starts;\n\
         they are shown only this once.\n\n",
        generated.path.display()
    ));
    if let Some(key) = &generated.api_key {
        out.push_str(&format!("    API key (X-API-Key header):   {key}\n"));
    }
    if let Some(secret) = &generated.token_secret {
        out.push_str(&format!("    token secret (HS256 tokens):  {secret}\n"));
    }
    out.push('\n');
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Sends `tracing` output to standard error with the configured filter and format.
fn init_logging(config: &Config) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| format!("log level {:?}: {e}", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).try_init()
        }
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

fn genconfig(path: &Path, force: bool) -> Result<(), String> {
    let text = config::generate();
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} already exists; use --force to overwrite it",
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "duplex: wrote {} (mode 0600) with a fresh API key and token secret; \
         start with `duplex serve --config {}`",
        path.display(),
        path.display()
    );
    Ok(())
}

fn checkconfig(file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let problems = config::check(&text, file);
    if problems.is_empty() {
        println!("ok");
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(match problems.len() {
        1 => format!("{}: 1 problem", file.display()),
        n => format!("{}: {n} problems", file.display()),
    })
}

fn gentoken(args: &GentokenArgs) -> Result<(), String> {
    let Loaded { config, .. } = load(&args.common.sources(Vec::new()))?;
    if !matches!(config.token_key, TokenKey::Hmac(_)) {
        return Err(
            "tokens are verified with a public key (token_public_key): sign them with \
                    the matching private key; gentoken only signs with the HMAC token secret"
                .into(),
        );
    }
    if config.token_secret.is_empty() {
        return Err(format!(
            "no token secret: set --token-secret, DUPLEX_TOKEN_SECRET or `token_secret` in the \
             config file, or run `duplex serve` once to generate one in {}",
            config::secrets_path(&config.data_dir).display()
        ));
    }
    let ttl = hub::namespace::parse_duration(&args.ttl).map_err(|e| format!("--ttl: {e}"))?;
    let ttl = (!ttl.is_zero()).then(|| ttl.as_secs().max(1));
    let info: Option<serde_json::Value> = match &args.info {
        Some(text) => {
            Some(serde_json::from_str(text).map_err(|e| format!("--info is not JSON: {e}"))?)
        }
        None => None,
    };
    for channel in args.channels.iter().chain(&args.sub_channel) {
        hub::ChannelName::new(channel).map_err(|e| format!("channel {channel:?}: {e}"))?;
    }
    let auth = Auth::new(&config.token_key).map_err(|e| e.to_string())?;
    let token = match &args.sub_channel {
        Some(channel) => auth.sign_subscribe(&args.user, channel, ttl, info.as_ref()),
        None => auth.sign_connect(&args.user, ttl, info.as_ref(), &args.channels),
    }
    .map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}
