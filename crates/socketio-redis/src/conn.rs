//! The command connection: one multiplexed Redis connection fed by one
//! task, in call order; and the backoff both connections reconnect with.
//!
//! [`Commands::send`] queues a command *synchronously* and returns a future
//! for its reply, so commands reach Redis in the order `send` was called
//! (the adapter relies on it: a log entry is written before the broadcast
//! it records is published, and a node's messages are published in the
//! order of their sequence numbers). Dropping the future does not cancel
//! the command. The task writes whatever queued up as one pipeline, waits
//! for the replies, and repeats.
//!
//! While the connection is down, `send` fails at once with
//! [`ClusterError::Unavailable`]: nothing waits for a reconnect. A reply
//! `NOSCRIPT` (Redis restarted and forgot the scripts) loads the scripts
//! again and re-sends that command once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ClusterConfig;
use crate::error::ClusterError;

/// A reply, or why there is none.
pub(crate) type Reply = Result<Value, ClusterError>;

struct Request {
    cmd: Cmd,
    reply: oneshot::Sender<Reply>,
}

/// Whether a connection is up, and the last error if not.
#[derive(Default)]
pub(crate) struct Link {
    up: AtomicBool,
    error: Mutex<Option<String>>,
    /// Times it came up (after the first, each one is a reconnect).
    pub(crate) ups: std::sync::atomic::AtomicU64,
}

impl Link {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(crate) fn set_up(&self) {
        self.up.store(true, Ordering::Release);
        self.ups.fetch_add(1, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn set_down(&self, err: &ClusterError) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(%err, "redis connection lost; reconnecting");
        }
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
    }

    pub(crate) fn unavailable(&self) -> ClusterError {
        let reason = self
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "not connected yet".into());
        ClusterError::Unavailable(reason)
    }
}

/// Exponential backoff with jitter.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The delay before the next attempt: between half and all of the
    /// current step, which then doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter: f64 = rand::random::<f64>() * 0.5 + 0.5;
        step.mul_f64(jitter)
    }
}

/// The handle that queues commands. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Commands {
    tx: mpsc::UnboundedSender<Request>,
    pub(crate) link: Arc<Link>,
}

impl Commands {
    /// Starts the connection task; it ends when `shutdown` fires or every
    /// handle is dropped. `scripts` are loaded on every connect.
    pub(crate) fn spawn(
        client: redis::Client,
        name: String,
        config: Arc<ClusterConfig>,
        scripts: Vec<&'static str>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link::default());
        tokio::spawn(run(
            client,
            name,
            rx,
            config,
            scripts,
            link.clone(),
            shutdown,
        ));
        Self { tx, link }
    }

    /// Queues `cmd` now; the future is its reply. See the module docs.
    pub(crate) fn send(&self, cmd: Cmd) -> impl Future<Output = Reply> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let queued = if self.link.is_up() {
            self.tx
                .send(Request { cmd, reply })
                .map_err(|_| ClusterError::Closed)
        } else {
            Err(self.link.unavailable())
        };
        async move {
            queued?;
            rx.await.map_err(|_| ClusterError::Closed)?
        }
    }
}

async fn run(
    client: redis::Client,
    name: String,
    mut rx: mpsc::UnboundedReceiver<Request>,
    config: Arc<ClusterConfig>,
    scripts: Vec<&'static str>,
    link: Arc<Link>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    loop {
        let connected = tokio::select! {
            c = connect(&client, &name, &config, &scripts) => c,
            _ = shutdown.changed() => return,
        };
        match connected {
            Ok(mut conn) => {
                link.set_up();
                backoff.reset();
                let lost = tokio::select! {
                    lost = serve(&mut conn, &mut rx, &config, &scripts) => lost,
                    _ = shutdown.changed() => return,
                };
                match lost {
                    Some(err) => link.set_down(&err),
                    None => return,
                }
            }
            Err(err) => link.set_down(&err),
        }
        // Fail what was queued before the connection was known to be down.
        let pause = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = shutdown.changed() => return,
                request = rx.recv() => match request {
                    Some(request) => {
                        let _ = request.reply.send(Err(link.unavailable()));
                    }
                    None => return,
                },
            }
        }
    }
}

async fn connect(
    client: &redis::Client,
    name: &str,
    config: &ClusterConfig,
    scripts: &[&'static str],
) -> Result<MultiplexedConnection, ClusterError> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&settings)
            .await?;
        let mut setname = redis::cmd("CLIENT");
        setname.arg("SETNAME").arg(name);
        conn.send_packed_command(&setname).await?;
        load_scripts(&mut conn, scripts).await?;
        Ok(conn)
    };
    let limit = config.connect_timeout + config.command_timeout;
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(ClusterError::Unavailable(format!(
                "connecting to redis timed out after {limit:?}"
            )))
        })
}

async fn load_scripts(
    conn: &mut MultiplexedConnection,
    scripts: &[&'static str],
) -> Result<(), ClusterError> {
    if scripts.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for script in scripts {
        pipe.cmd("SCRIPT").arg("LOAD").arg(*script);
    }
    let loaded: Vec<Value> = conn.send_packed_commands(&pipe, 0, scripts.len()).await?;
    match loaded.into_iter().find_map(|v| match v {
        Value::ServerError(e) => Some(e),
        _ => None,
    }) {
        Some(err) => Err(ClusterError::Server(err.to_string())),
        None => Ok(()),
    }
}

/// Runs batches until the connection fails (the error) or every handle is
/// gone (`None`).
async fn serve(
    conn: &mut MultiplexedConnection,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    config: &ClusterConfig,
    scripts: &[&'static str],
) -> Option<ClusterError> {
    let mut batch = Vec::with_capacity(64);
    let ping_every = config.heartbeat_interval.max(Duration::from_millis(50));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            received = rx.recv_many(&mut batch, 512) => {
                if received == 0 {
                    return None;
                }
                if let Err(err) = run_batch(conn, &mut batch, scripts).await {
                    return Some(err);
                }
                ping.reset();
            }
            _ = ping.tick() => {
                if let Err(err) = conn.send_packed_command(&redis::cmd("PING")).await {
                    return Some(err.into());
                }
            }
        }
    }
}

/// Sends `batch` as one pipeline and answers every request in it. An error
/// means the connection is unusable; every request is answered then too.
async fn run_batch(
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Request>,
    scripts: &[&'static str],
) -> Result<(), ClusterError> {
    let replies = match pipeline(conn, batch.iter().map(|r| &r.cmd)).await {
        Ok(replies) => replies,
        Err(err) => {
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(err.clone()));
            }
            return Err(err);
        }
    };
    let mut retry = Vec::new();
    for (request, reply) in batch.drain(..).zip(replies) {
        match reply {
            Value::ServerError(err) if err.code() == "NOSCRIPT" => retry.push(request),
            reply => {
                let _ = request.reply.send(into_reply(reply));
            }
        }
    }
    if retry.is_empty() {
        return Ok(());
    }
    tracing::info!("redis lost the scripts; loading them again");
    let replies = match load_scripts(conn, scripts).await {
        Ok(()) => pipeline(conn, retry.iter().map(|r| &r.cmd)).await,
        Err(err) => Err(err),
    };
    match replies {
        Ok(replies) => {
            for (request, reply) in retry.into_iter().zip(replies) {
                let _ = request.reply.send(into_reply(reply));
            }
            Ok(())
        }
        Err(err) => {
            for request in retry {
                let _ = request.reply.send(Err(err.clone()));
            }
            Err(err)
        }
    }
}

async fn pipeline<'a>(
    conn: &mut MultiplexedConnection,
    cmds: impl Iterator<Item = &'a Cmd>,
) -> Result<Vec<Value>, ClusterError> {
    let mut pipe = redis::pipe();
    let mut count = 0;
    for cmd in cmds {
        pipe.add_command(cmd.clone());
        count += 1;
    }
    let replies = conn.send_packed_commands(&pipe, 0, count).await?;
    if replies.len() != count {
        return Err(ClusterError::Decode(format!(
            "{} replies to a pipeline of {count}",
            replies.len()
        )));
    }
    Ok(replies)
}

fn into_reply(value: Value) -> Reply {
    match value {
        Value::ServerError(err) => Err(ClusterError::Server(err.to_string())),
        value => Ok(value),
    }
}
