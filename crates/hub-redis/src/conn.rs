//! The command connection: one multiplexed Redis connection, fed by one
//! task, in call order.
//!
//! Owns ordering, batching, script fallback, timeouts and reconnecting for
//! every command that is not a subscription. [`Commands::send`] queues a
//! request *synchronously* (on an unbounded channel) and returns a future
//! for the reply, so:
//!
//! - requests reach Redis in the order `send` was called, which is what
//!   fixes offsets in call order (the store contract) and publications in
//!   call order (the broker contract);
//! - dropping the future does not cancel the request: it is already queued
//!   and runs; only its answer is dropped.
//!
//! The task writes whatever has queued up as one pipeline, waits for the
//! replies, and repeats: one batch in flight at a time. Under load, batches
//! grow and cost one round trip each; alone, a request costs one round trip.
//! Scripts go as `EVALSHA`; a `NOSCRIPT` reply (Redis restarted or flushed
//! its scripts) re-sends those requests as `EVAL`, in their order, before the
//! next batch. (Commands of the same batch that were not scripts have run by
//! then; only a script flush reorders, and only within one batch.)
//!
//! While the connection is down, [`Commands::send`] refuses at once with
//! [`RedisBackendError::Unavailable`], and requests that were queued when it
//! went down fail with the connection error: nothing waits for a reconnect.
//! The task reconnects with [`Backoff`] and ends when every [`Commands`] is
//! dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, Value};
use tokio::sync::{mpsc, oneshot};

use crate::config::RedisConfig;
use crate::error::RedisBackendError;
use crate::health::{Backoff, Health, Link};
use crate::scripts::{Script, Scripts};

/// A reply, or why there is none.
pub(crate) type Reply = Result<Value, RedisBackendError>;

/// What to run.
pub(crate) enum Command {
    /// A plain command.
    Plain(Cmd),
    /// A script with its keys and arguments.
    Script {
        script: Arc<Script>,
        num_keys: usize,
        args: Vec<Vec<u8>>,
    },
}

impl Command {
    /// A call of `script` with `keys` and then `args`.
    pub(crate) fn script(script: &Arc<Script>, keys: Vec<Vec<u8>>, args: Vec<Vec<u8>>) -> Self {
        let num_keys = keys.len();
        let mut all = keys;
        all.extend(args);
        Command::Script {
            script: script.clone(),
            num_keys,
            args: all,
        }
    }

    /// The command as sent: `EVALSHA` for scripts, or `EVAL` with the
    /// source when `eval` (after `NOSCRIPT`).
    fn to_cmd(&self, eval: bool) -> Cmd {
        match self {
            Command::Plain(cmd) => cmd.clone(),
            Command::Script {
                script,
                num_keys,
                args,
            } => {
                let mut cmd = if eval {
                    let mut c = redis::cmd("EVAL");
                    c.arg(script.source.as_str());
                    c
                } else {
                    let mut c = redis::cmd("EVALSHA");
                    c.arg(script.sha.as_str());
                    c
                };
                cmd.arg(*num_keys);
                for arg in args {
                    cmd.arg(arg.as_slice());
                }
                cmd
            }
        }
    }

    fn is_script(&self) -> bool {
        matches!(self, Command::Script { .. })
    }
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Reply>,
}

/// The handle that queues commands. Cheap to clone; the connection task
/// ends when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Commands {
    tx: mpsc::UnboundedSender<Request>,
    health: Arc<Health>,
}

impl Commands {
    /// Starts the connection task on the current runtime.
    pub(crate) fn spawn(
        client: redis::Client,
        config: Arc<RedisConfig>,
        scripts: Arc<Scripts>,
        health: Arc<Health>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx, config, scripts, health.clone()));
        Self { tx, health }
    }

    /// Queues `command` now and returns its reply's future. See the module
    /// docs for ordering and cancellation.
    pub(crate) fn send(&self, command: Command) -> impl Future<Output = Reply> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let queued = if self.health.is_up(Link::Commands) {
            self.tx
                .send(Request { command, reply })
                .map_err(|_| RedisBackendError::Closed)
        } else {
            Err(self.health.unavailable())
        };
        async move {
            queued?;
            rx.await.map_err(|_| RedisBackendError::Closed)?
        }
    }
}

/// Why [`serve`] stopped.
enum Stop {
    /// Every handle is gone.
    Closed,
    /// The connection failed.
    Lost(RedisBackendError),
}

async fn run(
    client: redis::Client,
    mut rx: mpsc::UnboundedReceiver<Request>,
    config: Arc<RedisConfig>,
    scripts: Arc<Scripts>,
    health: Arc<Health>,
) {
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    loop {
        match connect(&client, &config, &scripts).await {
            Ok(conn) => {
                health.up(Link::Commands);
                backoff.reset();
                match serve(conn, &mut rx, &config).await {
                    Stop::Closed => return,
                    Stop::Lost(err) => health.down(Link::Commands, &err),
                }
            }
            Err(err) => health.down(Link::Commands, &err),
        }
        // Wait before the next attempt, failing whatever was queued before
        // the connection was known to be down.
        let pause = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                request = rx.recv() => match request {
                    Some(request) => {
                        let _ = request.reply.send(Err(health.unavailable()));
                    }
                    None => return,
                },
            }
        }
    }
}

async fn connect(
    client: &redis::Client,
    config: &RedisConfig,
    scripts: &Scripts,
) -> Result<MultiplexedConnection, RedisBackendError> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&settings)
            .await?;
        // Load the scripts up front so that EVALSHA hits; EVAL covers the rest.
        let mut pipe = redis::pipe();
        for script in scripts.all() {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script.source.as_str());
        }
        let loaded: Vec<Value> = conn
            .send_packed_commands(&pipe, 0, scripts.all().len())
            .await?;
        if let Some(Value::ServerError(err)) =
            loaded.iter().find(|v| matches!(v, Value::ServerError(_)))
        {
            return Err(RedisBackendError::Server(err.to_string()));
        }
        Ok(conn)
    };
    let limit = config.connect_timeout + config.command_timeout;
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(RedisBackendError::Unavailable(format!(
            "connecting to redis timed out after {limit:?}"
        ))),
    }
}

async fn serve(
    mut conn: MultiplexedConnection,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    config: &RedisConfig,
) -> Stop {
    let max_batch = config.max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch.min(64));
    let ping_every = config.ping_interval.max(Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            received = rx.recv_many(&mut batch, max_batch) => {
                if received == 0 {
                    return Stop::Closed;
                }
                if let Err(err) = run_batch(&mut conn, &mut batch).await {
                    return Stop::Lost(err);
                }
                ping.reset();
            }
            _ = ping.tick() => {
                if let Err(err) = conn.send_packed_command(&redis::cmd("PING")).await {
                    return Stop::Lost(err.into());
                }
            }
        }
    }
}

/// Sends `batch` as one pipeline and answers every request in it. An error
/// means the connection is unusable; every request has been answered then too.
async fn run_batch(
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Request>,
) -> Result<(), RedisBackendError> {
    let mut pipe = redis::pipe();
    for request in batch.iter() {
        pipe.add_command(request.command.to_cmd(false));
    }
    let replies = match send(conn, &pipe, batch.len()).await {
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
            Value::ServerError(err) if err.code() == "NOSCRIPT" && request.command.is_script() => {
                retry.push(request);
            }
            reply => {
                let _ = request.reply.send(into_reply(reply));
            }
        }
    }
    if retry.is_empty() {
        return Ok(());
    }
    if let Some(Request {
        command: Command::Script { script, .. },
        ..
    }) = retry.first()
    {
        tracing::info!(
            script = script.name,
            "redis lost the scripts; sending them with EVAL"
        );
    }
    let mut pipe = redis::pipe();
    for request in &retry {
        pipe.add_command(request.command.to_cmd(true));
    }
    match send(conn, &pipe, retry.len()).await {
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

/// Sends a pipeline of `count` commands and checks that as many replies came.
async fn send(
    conn: &mut MultiplexedConnection,
    pipe: &redis::Pipeline,
    count: usize,
) -> Result<Vec<Value>, RedisBackendError> {
    let replies = conn.send_packed_commands(pipe, 0, count).await?;
    if replies.len() != count {
        return Err(RedisBackendError::Reply(format!(
            "{} replies to a pipeline of {count}",
            replies.len()
        )));
    }
    Ok(replies)
}

fn into_reply(value: Value) -> Reply {
    match value {
        Value::ServerError(err) => Err(RedisBackendError::Server(err.to_string())),
        value => Ok(value),
    }
}
