//! What each server API method does, given its parameters as JSON text.
//!
//! Owns the request shapes (Centrifugo's field names; unknown fields are
//! ignored, a `null` field counts as absent), the checks a method makes
//! before it touches anything, the calls into the [`hub`] and the
//! [`Registry`](crate::node::Registry), and the result objects. It does not
//! know about HTTP: `mod.rs` turns a [`CommandError`] into a status code or
//! an `error` object, and wraps results into `{"result":...}` or batch
//! replies.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;

use centrifuge_proto::{Disconnect, RawJson};
use hub::{ChannelName, HistoryFilter, PublishRequest, StreamPosition};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::glob::{Pattern, PatternError};
use super::json::{self, Obj};
use crate::cluster::{NodeInfo, UserCommand};
use crate::node::{Node, ServerCommand};

/// Most commands of a `parallel` batch, or channels of a `broadcast`, in
/// flight at once.
const MAX_IN_FLIGHT: usize = 32;

/// Longest disconnect reason: what fits a WebSocket close frame.
const MAX_REASON_BYTES: usize = 123;

/// The methods served under `/api/<method>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Publish,
    Broadcast,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Presence,
    PresenceStats,
    History,
    HistoryRemove,
    Channels,
    Info,
    Batch,
}

impl Method {
    /// Every method, for lookups and docs.
    pub(crate) const ALL: [Method; 12] = [
        Method::Publish,
        Method::Broadcast,
        Method::Subscribe,
        Method::Unsubscribe,
        Method::Disconnect,
        Method::Presence,
        Method::PresenceStats,
        Method::History,
        Method::HistoryRemove,
        Method::Channels,
        Method::Info,
        Method::Batch,
    ];

    /// The method called `name` in a path or a batch command.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its name in paths, batch commands and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Publish => "publish",
            Method::Broadcast => "broadcast",
            Method::Subscribe => "subscribe",
            Method::Unsubscribe => "unsubscribe",
            Method::Disconnect => "disconnect",
            Method::Presence => "presence",
            Method::PresenceStats => "presence_stats",
            Method::History => "history",
            Method::HistoryRemove => "history_remove",
            Method::Channels => "channels",
            Method::Info => "info",
            Method::Batch => "batch",
        }
    }
}

/// Why one command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// The parameters do not have the method's shape (a field of the wrong
    /// type, not an object): HTTP 400 for a whole request, 107 inside a
    /// batch.
    #[error("bad request: {0}")]
    Decode(#[source] serde_json::Error),
    /// The parameters are well-formed but unusable (107).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A batch command names no method we have (104).
    #[error("method not found")]
    MethodNotFound,
    /// The hub refused or failed: its own code (102, 107, 108, 112, 100...).
    #[error(transparent)]
    Hub(#[from] hub::Error),
    /// A task running the command failed (100).
    #[error("internal error: {0}")]
    Internal(String),
    /// Every part of the command failed for a temporary reason (108,
    /// temporary, like the backend errors it stands for).
    #[error("{0}")]
    Unavailable(String),
}

impl CommandError {
    /// The Centrifugo error code.
    pub(crate) fn code(&self) -> u32 {
        match self {
            CommandError::Decode(_) | CommandError::BadRequest(_) => 107,
            CommandError::MethodNotFound => 104,
            CommandError::Hub(e) => e.code(),
            CommandError::Internal(_) => 100,
            CommandError::Unavailable(_) => 108,
        }
    }

    /// Whether storage, broker or presence failed: retrying may succeed
    /// (HTTP 503 for a whole request).
    pub(crate) fn is_temporary(&self) -> bool {
        match self {
            CommandError::Hub(e) => e.is_temporary(),
            CommandError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Writes `{"code":C,"message":"..."}` and counts the error.
    pub(crate) fn write(&self, node: &Node, out: &mut String) {
        node.metrics().error(self.code());
        json::error(out, self.code(), &self.to_string(), self.is_temporary());
    }
}

impl From<PatternError> for CommandError {
    fn from(e: PatternError) -> Self {
        CommandError::BadRequest(format!("pattern: {e}"))
    }
}

/// What a command yields: the JSON text of its result object.
pub(crate) type Outcome = Result<String, CommandError>;

/// Carries out one non-batch command. `params` is the JSON text of its
/// parameters (an object for a well-formed request).
pub(crate) async fn run(node: &Node, method: Method, params: &str) -> Outcome {
    node.metrics().api_command(method.name());
    match method {
        Method::Publish => publish(node, parse(params)?).await,
        Method::Broadcast => broadcast(node, parse(params)?).await,
        Method::Subscribe => server_subscription(node, parse(params)?, true).await,
        Method::Unsubscribe => server_subscription(node, parse(params)?, false).await,
        Method::Disconnect => disconnect(node, parse(params)?).await,
        Method::Presence => presence(node, parse(params)?).await,
        Method::PresenceStats => presence_stats(node, parse(params)?).await,
        Method::History => history(node, parse(params)?).await,
        Method::HistoryRemove => history_remove(node, parse(params)?).await,
        Method::Channels => channels(node, parse(params)?).await,
        Method::Info => {
            let _: Empty = parse(params)?;
            info(node).await
        }
        Method::Batch => Err(CommandError::BadRequest(
            "a batch cannot contain another batch".into(),
        )),
    }
}

fn parse<'a, T: Deserialize<'a>>(params: &'a str) -> Result<T, CommandError> {
    serde_json::from_str(params).map_err(CommandError::Decode)
}

/// For `data`: present means present, even as `null` (which is then the
/// payload); absent is `None` through `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawJson>, D::Error> {
    RawJson::deserialize(d).map(Some)
}

/// A channel name from a request: required, and valid.
fn channel(name: Option<&str>) -> Result<ChannelName, CommandError> {
    match name {
        None | Some("") => Err(CommandError::BadRequest("channel required".into())),
        Some(name) => Ok(ChannelName::new(name).map_err(hub::Error::from)?),
    }
}

#[derive(Deserialize)]
struct Empty {}

/// `publish` parameters. `broadcast` has the same fields with `channels`
/// for `channel`. (Written out twice because serde's `flatten` would
/// buffer `data` and lose its raw text.)
#[derive(Deserialize)]
struct PublishParams {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<RawJson>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default)]
    skip_history: Option<bool>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct BroadcastParams {
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    data: Option<RawJson>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default)]
    skip_history: Option<bool>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// What `publish` and `broadcast` share.
struct PublishCommon {
    data: Option<RawJson>,
    b64data: Option<String>,
    skip_history: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
    idempotency_key: Option<String>,
}

impl PublishParams {
    fn split(self) -> (Option<String>, PublishCommon) {
        let common = PublishCommon {
            data: self.data,
            b64data: self.b64data,
            skip_history: self.skip_history,
            tags: self.tags,
            idempotency_key: self.idempotency_key,
        };
        (self.channel, common)
    }
}

impl BroadcastParams {
    fn split(self) -> (Vec<String>, PublishCommon) {
        let common = PublishCommon {
            data: self.data,
            b64data: self.b64data,
            skip_history: self.skip_history,
            tags: self.tags,
            idempotency_key: self.idempotency_key,
        };
        (self.channels.unwrap_or_default(), common)
    }
}

impl PublishCommon {
    fn request(self) -> Result<PublishRequest, CommandError> {
        let data = match (self.data, self.b64data) {
            (Some(data), _) => data,
            (None, Some(_)) => {
                return Err(CommandError::BadRequest(
                    "b64data is not supported: channels carry JSON, send it in data".into(),
                ))
            }
            (None, None) => return Err(CommandError::BadRequest("data required".into())),
        };
        Ok(PublishRequest {
            data: data.into_bytes(),
            info: None,
            tags: self.tags.unwrap_or_default(),
            idempotency_key: self.idempotency_key.filter(|k| !k.is_empty()),
            skip_history: self.skip_history.unwrap_or(false),
        })
    }
}

/// Publishes `request` into `channel`: `{offset?, epoch?}` (left out when
/// the channel keeps no history, as Centrifugo does).
async fn publish_one(
    node: Node,
    channel: Result<ChannelName, CommandError>,
    request: PublishRequest,
) -> Outcome {
    let channel = channel?;
    let result = node.hub().publish(&channel, request).await?;
    if !result.duplicate {
        node.metrics()
            .publications_api
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut out = String::with_capacity(48);
    let mut o = Obj::open(&mut out);
    if result.position.offset > 0 {
        o.u64("offset", result.position.offset);
    }
    if !result.position.epoch.is_empty() {
        o.str("epoch", &result.position.epoch);
    }
    o.close();
    Ok(out)
}

async fn publish(node: &Node, params: PublishParams) -> Outcome {
    let (name, common) = params.split();
    let channel = channel(name.as_deref())?;
    let request = common.request()?;
    publish_one(node.clone(), Ok(channel), request).await
}

/// `{responses:[{result:{...}} | {error:{...}}, ...]}`, one per channel in
/// the order given. Fails as a whole only when every channel failed for a
/// temporary reason (storage or broker down), so that the caller gets 503.
async fn broadcast(node: &Node, params: BroadcastParams) -> Outcome {
    let (channels, common) = params.split();
    if channels.is_empty() {
        return Err(CommandError::BadRequest("channels required".into()));
    }
    let request = common.request()?;
    let jobs = channels.iter().map(|name| {
        let node = node.clone();
        let channel = channel(Some(name));
        let request = request.clone();
        publish_one(node, channel, request)
    });
    let outcomes = in_parallel(jobs.collect()).await;
    if let Some(err) = all_temporary(outcomes.iter()) {
        return Err(err);
    }
    let mut out = String::from("{\"responses\":[");
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::open(&mut out);
        match outcome {
            Ok(result) => o.key("result").push_str(&result),
            Err(err) => err.write(node, o.key("error")),
        }
        o.close();
    }
    out.push_str("]}");
    Ok(out)
}

/// When every outcome failed temporarily (and there was at least one), an
/// error standing for all of them.
pub(crate) fn all_temporary<'a>(
    mut outcomes: impl ExactSizeIterator<Item = &'a Outcome>,
) -> Option<CommandError> {
    if outcomes.len() == 0 {
        return None;
    }
    let mut first = None;
    for outcome in outcomes.by_ref() {
        match outcome {
            Err(e) if e.is_temporary() => {
                first.get_or_insert_with(|| e.to_string());
            }
            _ => return None,
        }
    }
    first.map(CommandError::Unavailable)
}

/// Runs `jobs` on their own tasks, at most [`MAX_IN_FLIGHT`] at a time, and
/// returns their outcomes in the order of `jobs`.
pub(crate) async fn in_parallel<F>(jobs: Vec<F>) -> Vec<Outcome>
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let total = jobs.len();
    let mut outcomes: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut jobs = jobs.into_iter().enumerate();
    loop {
        while set.len() < MAX_IN_FLIGHT {
            match jobs.next() {
                Some((i, job)) => {
                    set.spawn(async move { (i, job.await) });
                }
                None => break,
            }
        }
        match set.join_next().await {
            Some(Ok((i, outcome))) => {
                if let Some(slot) = outcomes.get_mut(i) {
                    *slot = Some(outcome);
                }
            }
            // A panicked task leaves its slot empty: reported below.
            Some(Err(_)) => {}
            None => break,
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(CommandError::Internal("command task failed".into()))))
        .collect()
}

#[derive(Deserialize)]
struct ServerSubscriptionParams {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    client: Option<String>,
}

/// Applies `command` to this node's connections and, with a broker, sends
/// it to every other node for theirs. Fails (temporarily) when the other
/// nodes could not be told; this node's part is done by then.
async fn user_command(node: &Node, command: UserCommand) -> Outcome {
    command.apply(node.registry());
    if let Some(cluster) = node.cluster() {
        cluster.send_user_command(&command).await?;
    }
    Ok("{}".into())
}

/// `subscribe` / `unsubscribe {user, channel, client?}` → `{}`: every
/// connection of the user, on every node, is told to (un)subscribe; the
/// transports carry it out and tell their clients.
async fn server_subscription(
    node: &Node,
    params: ServerSubscriptionParams,
    subscribe: bool,
) -> Outcome {
    let channel = channel(params.channel.as_deref())?;
    node.hub().options(&channel)?;
    let command = if subscribe {
        ServerCommand::Subscribe(channel)
    } else {
        ServerCommand::Unsubscribe(channel)
    };
    let command = UserCommand {
        user: params.user.unwrap_or_default(),
        client: params.client.filter(|c| !c.is_empty()),
        keep: Vec::new(),
        command,
    };
    user_command(node, command).await
}

#[derive(Deserialize)]
struct DisconnectParams {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    whitelist: Option<Vec<String>>,
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    /// Centrifugo's form: `{"disconnect":{"code":C,"reason":"..."}}`.
    #[serde(default)]
    disconnect: Option<DisconnectObject>,
}

#[derive(Deserialize)]
struct DisconnectObject {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
}

/// `disconnect {user, client?, whitelist?, code?, reason?}` → `{}`, on
/// every node. The default is 3503 "force disconnect" (no reconnect); a
/// code of 3000–4999 may be given, and whether clients reconnect follows
/// from it.
async fn disconnect(node: &Node, params: DisconnectParams) -> Outcome {
    let (code, reason) = match params.disconnect {
        Some(d) => (d.code, d.reason),
        None => (params.code, params.reason),
    };
    let code = code
        .filter(|c| *c != 0)
        .unwrap_or(Disconnect::FORCE_NO_RECONNECT.code);
    let wire_code = match u16::try_from(code) {
        Ok(c @ 3000..=4999) => c,
        _ => {
            return Err(CommandError::BadRequest(format!(
                "disconnect code {code} is outside 3000-4999"
            )))
        }
    };
    let reason = match reason.filter(|r| !r.is_empty()) {
        Some(r) => r,
        None => Disconnect::ALL
            .iter()
            .find(|d| d.code == code)
            .map_or_else(|| "server disconnect".to_owned(), |d| d.reason.to_string()),
    };
    if reason.len() > MAX_REASON_BYTES {
        return Err(CommandError::BadRequest(format!(
            "disconnect reason is {} bytes, at most {MAX_REASON_BYTES} fit a close frame",
            reason.len()
        )));
    }
    let command = ServerCommand::Disconnect {
        code: wire_code,
        reason,
        reconnect: Disconnect::reconnects(code),
    };
    let command = UserCommand {
        user: params.user.unwrap_or_default(),
        client: params.client.filter(|c| !c.is_empty()),
        keep: params.whitelist.unwrap_or_default(),
        command,
    };
    user_command(node, command).await
}

#[derive(Deserialize)]
struct ChannelParams {
    #[serde(default)]
    channel: Option<String>,
}

/// `{presence:{CLIENT:{client, user, conn_info?, chan_info?}}}`.
async fn presence(node: &Node, params: ChannelParams) -> Outcome {
    let channel = channel(params.channel.as_deref())?;
    let mut clients = node.hub().presence(&channel).await?;
    clients.sort_by(|a, b| a.client.cmp(&b.client));
    let mut out = String::from("{\"presence\":");
    let mut o = Obj::open(&mut out);
    for info in &clients {
        json::client_info(o.key(&info.client), info);
    }
    o.close();
    out.push('}');
    Ok(out)
}

/// `{num_clients, num_users}`.
async fn presence_stats(node: &Node, params: ChannelParams) -> Outcome {
    let channel = channel(params.channel.as_deref())?;
    let stats = node.hub().presence_stats(&channel).await?;
    let mut out = String::new();
    let mut o = Obj::open(&mut out);
    o.u64("num_clients", stats.num_clients as u64);
    o.u64("num_users", stats.num_users as u64);
    o.close();
    Ok(out)
}

#[derive(Deserialize)]
struct HistoryParams {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    since: Option<SinceParams>,
    #[serde(default)]
    reverse: Option<bool>,
}

#[derive(Deserialize)]
struct SinceParams {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
}

/// `{publications:[...], epoch, offset}`. As in Centrifugo, without a
/// `limit` (or with 0) only the stream position comes back; a negative
/// limit asks for everything kept.
async fn history(node: &Node, params: HistoryParams) -> Outcome {
    let channel = channel(params.channel.as_deref())?;
    let limit = match params.limit.unwrap_or(0) {
        n if n < 0 => None,
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let filter = HistoryFilter {
        since: params
            .since
            .map(|s| StreamPosition::new(s.offset.unwrap_or(0), s.epoch.unwrap_or_default())),
        limit,
        reverse: params.reverse.unwrap_or(false),
    };
    let result = node.hub().history(&channel, filter).await?;
    let mut out = String::with_capacity(
        64 + result
            .publications
            .iter()
            .map(|p| p.data.len() + 32)
            .sum::<usize>(),
    );
    let mut o = Obj::open(&mut out);
    let list = o.key("publications");
    list.push('[');
    for (i, p) in result.publications.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        json::publication(list, p);
    }
    list.push(']');
    o.str("epoch", &result.position.epoch);
    o.u64("offset", result.position.offset);
    o.close();
    Ok(out)
}

/// `{}` once the channel's kept publications are gone (108 when it keeps
/// none).
async fn history_remove(node: &Node, params: ChannelParams) -> Outcome {
    let channel = channel(params.channel.as_deref())?;
    if !node.hub().options(&channel)?.history_enabled() {
        return Err(hub::Error::NotAvailable { what: "history" }.into());
    }
    node.hub().remove_history(&channel).await?;
    Ok("{}".into())
}

#[derive(Deserialize)]
struct ChannelsParams {
    #[serde(default)]
    pattern: Option<String>,
}

/// This node's channels with subscribers and their counts, sorted by name,
/// those matching `pattern` when one is given (what a node answers when
/// another asks for `channels`).
pub(crate) fn channel_counts(
    node: &Node,
    pattern: Option<&str>,
) -> Result<Vec<(String, u64)>, PatternError> {
    let pattern = match pattern {
        None | Some("") => None,
        Some(p) => Some(Pattern::new(p)?),
    };
    Ok(node
        .hub()
        .channels()
        .into_iter()
        .filter(|(name, _)| pattern.as_ref().is_none_or(|p| p.matches(name.as_str())))
        .map(|(name, subscribers)| (name.to_string(), subscribers as u64))
        .collect())
}

/// `{channels:{NAME:{num_clients}}}`: channels with subscribers, filtered
/// by `pattern` when given; with a broker, over every node (counts summed).
async fn channels(node: &Node, params: ChannelsParams) -> Outcome {
    let pattern = params.pattern.as_deref().filter(|p| !p.is_empty());
    let local = channel_counts(node, pattern)?;
    let counts: Vec<(String, u64)> = match node.cluster() {
        Some(cluster) => cluster
            .channels(local, pattern)
            .await?
            .into_iter()
            .collect(),
        None => local,
    };
    let mut out = String::from("{\"channels\":");
    let mut o = Obj::open(&mut out);
    for (name, subscribers) in counts {
        let mut info = Obj::open(o.key(&name));
        info.u64("num_clients", subscribers);
        info.close();
    }
    o.close();
    out.push('}');
    Ok(out)
}

/// `{nodes:[{uid, name, version, num_clients, num_users, num_channels,
/// num_subs, uptime}]}`: this node, and with a broker every live node
/// (those whose heartbeat has not expired).
async fn info(node: &Node) -> Outcome {
    let nodes = match node.cluster() {
        Some(cluster) => cluster.nodes(node).await?,
        None => vec![NodeInfo::local(node, started(node))],
    };
    let mut out = String::from("{\"nodes\":[");
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::open(&mut out);
        o.str("uid", &n.uid);
        o.str("name", &n.name);
        o.str("version", &n.version);
        o.u64("num_clients", n.num_clients);
        o.u64("num_users", n.num_users);
        o.u64("num_channels", n.num_channels);
        o.u64("num_subs", n.num_subs);
        o.u64("uptime", n.uptime());
        o.close();
    }
    out.push_str("]}");
    Ok(out)
}

/// When `node` started, in seconds since 1970.
fn started(node: &Node) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(node.metrics().uptime().as_secs())
}

#[derive(Deserialize)]
struct BatchParams {
    #[serde(default)]
    commands: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    parallel: Option<bool>,
}

/// `batch {commands:[{"METHOD":{...}}, ...], parallel?}` → the list of
/// replies in command order, each `{"METHOD":{...result}}` or
/// `{"error":{...}}`, and whether every one failed temporarily. A command
/// of the wrong shape fails alone (107); so does an unknown method (104).
pub(crate) async fn batch(node: &Node, params: &str) -> Result<(Vec<String>, bool), CommandError> {
    node.metrics().api_command(Method::Batch.name());
    let params: BatchParams = parse(params)?;
    let commands = params.commands.unwrap_or_default();
    let jobs = commands.into_iter().map(|command| {
        let node = node.clone();
        async move {
            let (method, params) = split_command(&command)?;
            let result = run(&node, method, params.get()).await?;
            Ok::<_, CommandError>(format!("{{\"{}\":{result}}}", method.name()))
        }
    });
    let outcomes = if params.parallel.unwrap_or(false) {
        in_parallel(jobs.collect()).await
    } else {
        let mut outcomes = Vec::new();
        for job in jobs {
            outcomes.push(job.await);
        }
        outcomes
    };
    let unavailable = all_temporary(outcomes.iter()).is_some();
    let replies = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(reply) => reply,
            Err(err) => {
                let mut out = String::from("{\"error\":");
                err.write(node, &mut out);
                out.push('}');
                out
            }
        })
        .collect();
    Ok((replies, unavailable))
}

/// `{"publish":{...}}` → the method and its parameters.
fn split_command(command: &RawValue) -> Result<(Method, Box<RawValue>), CommandError> {
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(command.get()).map_err(|_| {
            CommandError::BadRequest("a batch command is an object like {\"publish\":{...}}".into())
        })?;
    if map.len() != 1 {
        return Err(CommandError::BadRequest(format!(
            "a batch command names exactly one method, this one has {}",
            map.len()
        )));
    }
    let Some((name, params)) = map.into_iter().next() else {
        return Err(CommandError::BadRequest("empty batch command".into()));
    };
    let method = Method::from_name(&name).ok_or(CommandError::MethodNotFound)?;
    Ok((method, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        assert_eq!(Method::from_name("rpc"), None);
        assert_eq!(Method::from_name("Publish"), None);
    }

    #[test]
    fn publish_params() {
        let p: PublishParams =
            parse(r#"{"channel":"a","data":{"x":1.0,"b":[]},"tags":{"k":"v"},"extra":1}"#).unwrap();
        let (channel, common) = p.split();
        assert_eq!(channel.as_deref(), Some("a"));
        let r = common.request().unwrap();
        assert_eq!(&r.data[..], br#"{"x":1.0,"b":[]}"#);
        assert_eq!(r.tags.get("k").map(String::as_str), Some("v"));
        let p: PublishParams = parse(r#"{"channel":"a","data":null,"tags":null}"#).unwrap();
        assert_eq!(&p.split().1.request().unwrap().data[..], b"null");
        let p: PublishParams = parse(r#"{"channel":"a"}"#).unwrap();
        assert_eq!(p.split().1.request().unwrap_err().code(), 107);
        let p: PublishParams = parse(r#"{"channel":"a","b64data":"AA=="}"#).unwrap();
        assert!(p
            .split()
            .1
            .request()
            .unwrap_err()
            .to_string()
            .contains("b64data"));
        assert!(matches!(
            parse::<PublishParams>(r#"{"channel":5,"data":1}"#),
            Err(CommandError::Decode(_))
        ));
        assert!(matches!(
            parse::<PublishParams>(r#"{"channel":"a","data":1,"skip_history":"yes"}"#),
            Err(CommandError::Decode(_))
        ));
    }

    #[test]
    fn batch_commands_split() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let (m, p) = split_command(&raw(r#"{"publish":{"channel":"a"}}"#)).unwrap();
        assert_eq!(m, Method::Publish);
        assert_eq!(p.get(), r#"{"channel":"a"}"#);
        assert_eq!(
            split_command(&raw(r#"{"rpc":{}}"#)).unwrap_err().code(),
            104
        );
        assert_eq!(split_command(&raw(r#"{}"#)).unwrap_err().code(), 107);
        assert_eq!(
            split_command(&raw(r#"{"info":{},"channels":{}}"#))
                .unwrap_err()
                .code(),
            107
        );
        assert_eq!(split_command(&raw(r#"[1]"#)).unwrap_err().code(), 107);
    }

    #[test]
    fn temporary_only_when_all_are() {
        let temp = || Err(CommandError::Hub(hub::Error::storage("down")));
        let outcomes: Vec<Outcome> = vec![temp(), temp()];
        assert!(all_temporary(outcomes.iter()).is_some_and(|e| e.is_temporary()));
        let outcomes: Vec<Outcome> = vec![temp(), Ok("{}".into())];
        assert!(all_temporary(outcomes.iter()).is_none());
        let outcomes: Vec<Outcome> = vec![temp(), Err(CommandError::MethodNotFound)];
        assert!(all_temporary(outcomes.iter()).is_none());
        assert!(all_temporary(Vec::<Outcome>::new().iter()).is_none());
    }
}
