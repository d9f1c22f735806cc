//! The subscription connection: which topics this node listens to, and
//! the task that reads them.
//!
//! Owns the set of wanted topics and keeping Redis in line with it. The
//! adapter says a topic is wanted when a room gets its first local socket
//! and unwanted after the last one left; these calls are synchronous and
//! only queue the change. One task applies queued changes in order
//! (coalesced: a topic joined and left before the task ran costs nothing),
//! reads messages and hands each to the cluster's dispatcher, one at a
//! time, in the order Redis sent them.
//!
//! After a reconnect every wanted topic is subscribed again before the
//! link counts as up. Messages published while this node was cut off are
//! lost for it (Redis pub/sub keeps nothing).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{watch, Notify};

use crate::config::ClusterConfig;
use crate::conn::{Backoff, Link};
use crate::error::ClusterError;

/// Topics per `SUBSCRIBE` command.
const CHUNK: usize = 512;

/// Called with each message's topic and payload.
pub(crate) type Dispatch = Arc<dyn Fn(&[u8], &[u8]) + Send + Sync>;

#[derive(Default)]
struct State {
    wanted: HashSet<String>,
    /// Topics whose wanted state changed since the task last looked.
    changed: Vec<String>,
    /// Bumped on every change.
    generation: u64,
}

/// The subscription side, shared by the adapters and the task.
pub(crate) struct Subscriptions {
    state: Mutex<State>,
    notify: Notify,
    /// The generation the task has applied to Redis.
    applied: watch::Sender<u64>,
    pub(crate) link: Arc<Link>,
}

impl Subscriptions {
    /// Creates the shared state and starts the task.
    pub(crate) fn spawn(
        client: redis::Client,
        name: String,
        config: Arc<ClusterConfig>,
        dispatch: Dispatch,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let subs = Arc::new(Self {
            state: Mutex::default(),
            notify: Notify::new(),
            applied: watch::Sender::new(0),
            link: Arc::new(Link::default()),
        });
        tokio::spawn(run(subs.clone(), client, name, config, dispatch, shutdown));
        subs
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wants (or no longer wants) `topic`; applied by the task soon.
    pub(crate) fn set(&self, topic: String, wanted: bool) {
        let mut state = self.state();
        let changed = if wanted {
            state.wanted.insert(topic.clone())
        } else {
            state.wanted.remove(&topic)
        };
        if changed {
            state.changed.push(topic);
            state.generation += 1;
            drop(state);
            self.notify.notify_one();
        }
    }

    /// How many topics are wanted.
    pub(crate) fn count(&self) -> usize {
        self.state().wanted.len()
    }

    /// Resolves once every change made before the call is in force in
    /// Redis, or after `limit` (false then).
    pub(crate) async fn settled(&self, limit: Duration) -> bool {
        let target = self.state().generation;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(limit, applied.wait_for(|g| *g >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn run(
    subs: Arc<Subscriptions>,
    client: redis::Client,
    name: String,
    config: Arc<ClusterConfig>,
    dispatch: Dispatch,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    loop {
        let err = tokio::select! {
            err = connect_and_read(&subs, &client, &name, &config, &dispatch, &mut backoff) => err,
            _ = shutdown.changed() => return,
        };
        subs.link.set_down(&err);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Connects, subscribes everything wanted, then reads and applies changes
/// until the connection fails.
async fn connect_and_read(
    subs: &Subscriptions,
    client: &redis::Client,
    name: &str,
    config: &ClusterConfig,
    dispatch: &Dispatch,
    backoff: &mut Backoff,
) -> ClusterError {
    let limit = config.connect_timeout + config.command_timeout;
    let opened = tokio::time::timeout(limit, open(client, name)).await;
    let (mut sink, mut stream): (PubSubSink, PubSubStream) = match opened {
        Ok(Ok(pubsub)) => pubsub.split(),
        Ok(Err(err)) => return err.into(),
        Err(_) => return ClusterError::Unavailable("redis pub/sub connect timed out".into()),
    };
    let mut subscribed: HashSet<String> = HashSet::new();
    // Everything wanted now; later changes are applied as they come.
    let (all, generation) = {
        let mut state = subs.state();
        state.changed.clear();
        (
            state.wanted.iter().cloned().collect::<Vec<_>>(),
            state.generation,
        )
    };
    for chunk in all.chunks(CHUNK) {
        match tokio::time::timeout(config.command_timeout, sink.subscribe(chunk)).await {
            Ok(Ok(())) => subscribed.extend(chunk.iter().cloned()),
            Ok(Err(err)) => return err.into(),
            Err(_) => return ClusterError::Unavailable("redis subscribe timed out".into()),
        }
    }
    subs.applied.send_replace(generation);
    subs.link.set_up();
    backoff.reset();
    let ping_every = config.heartbeat_interval.max(Duration::from_millis(50));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Err(err) = apply_changes(subs, &mut sink, &mut subscribed, config).await {
            return err;
        }
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => {
                    dispatch(message.get_channel_name().as_bytes(), message.get_payload_bytes());
                    ping.reset();
                }
                None => return ClusterError::Unavailable("redis pub/sub connection closed".into()),
            },
            _ = subs.notify.notified() => {}
            _ = ping.tick() => {
                match tokio::time::timeout(config.command_timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return err.into(),
                    Err(_) => return ClusterError::Unavailable("redis pub/sub ping timed out".into()),
                }
            }
        }
    }
}

/// Opens the pub/sub connection. Over plain TCP without a password it is
/// named first (`CLIENT SETNAME`, before the client library takes the
/// stream over), since a RESP2 pub/sub connection cannot send that later.
async fn open(client: &redis::Client, name: &str) -> redis::RedisResult<redis::aio::PubSub> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let info = client.get_connection_info();
    let settings = info.redis_settings();
    let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
        return client.get_async_pubsub().await;
    };
    if settings.password().is_some() {
        return client.get_async_pubsub().await;
    }
    let mut tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
    let _ = tcp.set_nodelay(true);
    let mut setname = redis::cmd("CLIENT");
    setname.arg("SETNAME").arg(name);
    tcp.write_all(&setname.get_packed_command()).await?;
    // The reply is one line (`+OK` or an error, which leaves it unnamed).
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") && line.len() < 1024 {
        line.push(tcp.read_u8().await?);
    }
    redis::aio::PubSub::new(settings, tcp).await
}

/// Brings Redis in line with the topics changed since last time.
async fn apply_changes(
    subs: &Subscriptions,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<String>,
    config: &ClusterConfig,
) -> Result<(), ClusterError> {
    let (add, remove, generation) = {
        let mut state = subs.state();
        if state.changed.is_empty() {
            return Ok(());
        }
        let mut add = Vec::new();
        let mut remove = Vec::new();
        let changed = std::mem::take(&mut state.changed);
        let mut seen = HashSet::new();
        for topic in changed {
            if !seen.insert(topic.clone()) {
                continue;
            }
            match (state.wanted.contains(&topic), subscribed.contains(&topic)) {
                (true, false) => add.push(topic),
                (false, true) => remove.push(topic),
                _ => {}
            }
        }
        (add, remove, state.generation)
    };
    let timeout = |what: &str| ClusterError::Unavailable(format!("redis {what} timed out"));
    for chunk in add.chunks(CHUNK) {
        tokio::time::timeout(config.command_timeout, sink.subscribe(chunk))
            .await
            .map_err(|_| timeout("subscribe"))??;
        subscribed.extend(chunk.iter().cloned());
    }
    for chunk in remove.chunks(CHUNK) {
        tokio::time::timeout(config.command_timeout, sink.unsubscribe(chunk))
            .await
            .map_err(|_| timeout("unsubscribe"))??;
        for topic in chunk {
            subscribed.remove(topic);
        }
    }
    subs.applied.send_replace(generation);
    Ok(())
}
