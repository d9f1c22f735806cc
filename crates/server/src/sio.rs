//! `/socket.io/`: the Socket.IO mapping of channels, on namespace `/`.
//!
//! Owns how Socket.IO clients use the node's channels: the handshake's
//! auth (`io(url, {auth: {token}})`, checked by a namespace middleware;
//! refused with a `connect_error` saying why), the events clients emit
//! with an acknowledgement — `subscribe`, `unsubscribe`, `publish`,
//! `presence`, `presence_stats`, `history`, `refresh`, `sub_refresh` —
//! answered with the plain protocol's result object or `{error: {code,
//! message}}`, and what the server emits: `publication` `{channel, offset,
//! data, info}`, `join` / `leave` `{channel, info}`, and for server-side
//! changes `subscribe` `{channel, ...}` / `unsubscribe` `{channel, code,
//! reason}`. The rules (tokens, permissions, recovery) are the session
//! core's ([`crate::session`]), shared with `/connection/websocket`, so
//! both kinds of clients meet on the same hub channels.
//!
//! Events of one socket are handled in order by a worker task that exists
//! only while there is work (an idle socket holds no task). Publications go
//! from the hub straight into the socket's Engine.IO queue, encoded once
//! per publication for every Socket.IO subscriber. Engine.IO (heartbeats,
//! transports) and Socket.IO framing are the `engineio` / `socketio`
//! crates'.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use centrifuge_proto::{self as proto, ReplyResult};
use hub::{Activation, ChannelName, EncodedPublication, JoinLeave, JoinLeaveKind, Subscriber};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use socketio::{AckSender, Data, Socket, SocketIo, SocketIoConfig};
use tokio::task::AbortHandle;

use crate::auth::now_secs;
use crate::metrics::TransportCounters;
use crate::node::{ClientHandle, Node, ServerCommand, Transport};
use crate::session::{convert, Credentials, Session, SessionError, SubscriberFactory};

/// The events clients may emit.
const EVENTS: [&str; 8] = [
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "refresh",
    "sub_refresh",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn counters(node: &Node) -> &TransportCounters {
    node.metrics().transport(Transport::SocketIo)
}

/// Builds the Socket.IO server wired to `node`'s channels: Engine.IO on
/// `/socket.io/` with the node's ping interval and pong timeout as
/// heartbeat, `client.max_message_size` as the largest payload,
/// `client.connect_timeout` to join a namespace, and the origin check of
/// `client.allowed_origins`.
pub fn build(node: &Node) -> SocketIo {
    let client = &node.config().client;
    let allowed = client.allowed_origins.clone();
    let engine = engineio::EngineConfig::default()
        .path("/socket.io/")
        .heartbeat(client.ping_interval, client.pong_timeout)
        .max_payload(client.max_message_size)
        .allow_request(move |parts| {
            let origin = parts
                .headers
                .get(http::header::ORIGIN)
                .and_then(|v| v.to_str().ok());
            if crate::client::origin_allowed(&allowed, origin) {
                Ok(())
            } else {
                Err(engineio::EngineError::Forbidden)
            }
        });
    let sio = SocketIo::new(
        SocketIoConfig::default()
            .engine(engine)
            .connect_timeout(client.connect_timeout),
    );
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let on_connect = {
        let pending = pending.clone();
        move |socket: Socket| admitted(&pending, socket)
    };
    let node = node.clone();
    sio.namespace("/", on_connect)
        .middleware(move |socket: Socket| {
            let node = node.clone();
            let pending = pending.clone();
            async move { authorize(node, &pending, socket) }
        });
    sio
}

/// Connections that passed the middleware and wait to be admitted, by
/// socket id. Weak: a socket that is never admitted drops its connection.
type Pending = Arc<Mutex<HashMap<Arc<str>, Weak<SioConn>>>>;

/// The namespace middleware: checks `auth.token` and prepares the
/// connection. The handlers are registered here, before the CONNECT
/// answer goes out, so that no event a fast client sends right after it
/// can miss them.
fn authorize(node: Node, pending: &Pending, socket: Socket) -> Result<(), String> {
    // Read from the text: `Socket::auth` would keep the parsed object
    // (hundreds of bytes) for the socket's life.
    let token = auth_token(socket.auth_json());
    let token = token.as_str();
    // The socket is known from here on; it is admitted (and can receive)
    // only after this middleware. The socket lives in the connection; the
    // subscriber factory points back to it (one allocation, where a socket
    // slot, a connection cell and the factory were three).
    let factory = Arc::new(SioFactory {
        node: node.clone(),
        conn: std::sync::OnceLock::new(),
    });
    let session = Session::new(node.clone(), socket.id_arc(), factory.clone());
    let creds = match session.authenticate(token) {
        Ok(creds) => creds,
        Err(err) => {
            // Count it as the WebSocket side does: a reply code as an
            // error, a close code (3500 invalid token) as a disconnect.
            match &err {
                SessionError::Reply(e) => node.metrics().error(e.code),
                SessionError::Disconnect(d) => {
                    node.metrics().disconnect(d.close_code().unwrap_or(3000))
                }
            }
            return Err(refusal(&err, token.is_empty()));
        }
    };
    let conn = Arc::new(SioConn {
        node,
        client: session.client_id().clone(),
        user: creds.user.clone(),
        slot: Mutex::new(Some(socket.clone())),
        state: Mutex::new(State {
            jobs: VecDeque::new(),
            running: false,
            closed: false,
            admitted: false,
            session: Some(session),
            creds: Some(Box::new(creds)),
            timer: None,
        }),
    });
    let _ = factory.conn.set(Arc::downgrade(&conn));
    {
        // One catch-all instead of a handler per event: less memory per
        // socket, and unknown events are answered (104) instead of ignored.
        let conn = conn.clone();
        socket.on_any(move |socket, name, data, ack| {
            counters(&conn.node)
                .messages_in
                .fetch_add(1, Ordering::Relaxed);
            let event = EVENTS.iter().copied().find(|e| *e == name).unwrap_or("");
            conn.enqueue(Job::Event {
                socket,
                event,
                data,
                ack,
            });
        });
    }
    {
        let conn = conn.clone();
        socket.on_disconnect(move |_socket, reason| {
            tracing::debug!(client = %conn.client, %reason, "socket.io client gone");
            conn.enqueue(Job::Closed);
        });
    }
    let mut waiting = lock(pending);
    if waiting.len() >= 64 {
        // Sockets that passed the middleware but were never admitted (the
        // client went away in between): break their socket -> handlers ->
        // connection -> socket cycle.
        waiting.retain(|_, conn| match conn.upgrade() {
            Some(conn) => {
                let gone = conn.socket().is_none_or(|s| s.engine().is_closed());
                if gone {
                    lock(&conn.slot).take();
                }
                !gone
            }
            None => false,
        });
    }
    waiting.insert(conn.client.clone(), Arc::downgrade(&conn));
    Ok(())
}

/// `auth.token` from the CONNECT payload's JSON text: the top-level
/// object's last `token` field if it is a string, else empty (what
/// `value.get("token")` and `as_str` give on the parsed value), without
/// building that value (a one-field object is a B-tree node of over 600
/// bytes, made and freed for every connection).
fn auth_token(json: &str) -> String {
    struct Token(String);
    struct TokenVisitor;
    impl<'de> serde::de::Visitor<'de> for TokenVisitor {
        type Value = Token;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Token, A::Error> {
            let mut token = String::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "token" {
                    token = match map.next_value::<Value>()? {
                        Value::String(text) => text,
                        _ => String::new(),
                    };
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(Token(token))
        }
    }
    impl<'de> Deserialize<'de> for Token {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(TokenVisitor)
        }
    }
    serde_json::from_str::<Token>(json)
        .map(|t| t.0)
        .unwrap_or_default()
}

/// The `connect_error` message for a refused token.
fn refusal(err: &SessionError, no_token: bool) -> String {
    match err.code() {
        101 if no_token => "unauthorized: a token is required (auth: {token})".to_owned(),
        109 => "token expired".to_owned(),
        3500 => "invalid token".to_owned(),
        code => format!("refused ({code})"),
    }
}

/// The namespace admitted `socket`: start its connection.
fn admitted(pending: &Pending, socket: Socket) {
    let conn = lock(pending)
        .remove(socket.id())
        .and_then(|conn| conn.upgrade());
    let Some(conn) = conn else {
        // Not prepared by the middleware (cannot happen): refuse.
        socket.disconnect();
        return;
    };
    {
        // Under the state lock, so that a close racing with this either
        // comes first (and nothing is registered) or sees it registered.
        let mut state = lock(&conn.state);
        if state.closed {
            return;
        }
        state.admitted = true;
        let metrics = counters(&conn.node);
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        conn.node.registry().add(Arc::new(SioHandle(conn.clone())));
    }
    conn.enqueue(Job::Start);
}

enum Job {
    /// Finish connecting: server-side subscriptions from the token.
    Start,
    Event {
        socket: Socket,
        event: &'static str,
        data: Data,
        ack: Option<AckSender>,
    },
    Command(ServerCommand),
    /// A connection or subscription expiry may be due.
    Expiry,
    /// The socket disconnected.
    Closed,
}

struct State {
    jobs: VecDeque<Job>,
    /// A worker task is draining `jobs`.
    running: bool,
    closed: bool,
    /// Registered and counted (undone at close).
    admitted: bool,
    /// Held by the worker while it runs; `None` after close.
    session: Option<Session>,
    /// Until `Start` runs.
    /// Boxed: only until `Start`, and the state lives as long as the socket.
    creds: Option<Box<Credentials>>,
    /// The scheduled expiry check: its Unix time and task.
    timer: Option<(u64, AbortHandle)>,
}

/// One Socket.IO client's connection to namespace `/`.
struct SioConn {
    node: Node,
    client: Arc<str>,
    user: Arc<str>,
    /// The connection's socket; emptied at close.
    slot: Mutex<Option<Socket>>,
    state: Mutex<State>,
}

impl SioConn {
    fn socket(&self) -> Option<Socket> {
        lock(&self.slot).clone()
    }

    fn enqueue(self: &Arc<Self>, job: Job) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.jobs.push_back(job);
        if !state.running {
            state.running = true;
            drop(state);
            tokio::spawn(self.clone().work());
        }
    }

    /// Handles queued jobs in order, then ends (putting the session back).
    async fn work(self: Arc<Self>) {
        let (mut session, creds) = {
            let mut state = lock(&self.state);
            match state.session.take() {
                Some(session) => (session, state.creds.take()),
                None => {
                    state.running = false;
                    return;
                }
            }
        };
        // Each job's work is boxed: the task keeps only the loop's state
        // between jobs, and a job's (large) future lives while it runs.
        if let Some(creds) = creds {
            Box::pin(self.start(&mut session, *creds)).await;
        }
        loop {
            let job = {
                let mut state = lock(&self.state);
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.jobs = VecDeque::new();
                        state.session = Some(session);
                        state.running = false;
                        return;
                    }
                }
            };
            match job {
                Job::Start => {}
                Job::Event {
                    socket,
                    event,
                    data,
                    ack,
                } => Box::pin(self.on_event(&mut session, &socket, event, data, ack)).await,
                Job::Command(command) => Box::pin(self.on_command(&mut session, command)).await,
                Job::Expiry => Box::pin(self.on_expiry(&mut session)).await,
                Job::Closed => {
                    Box::pin(self.close(&mut session)).await;
                    return;
                }
            }
            self.schedule_expiry(&session);
        }
    }

    /// Connects the session: the token's server-side subscriptions, each
    /// told to the client with a `subscribe` event.
    async fn start(&self, session: &mut Session, creds: Credentials) {
        match session.connect(creds, &BTreeMap::new()).await {
            Ok(connected) => {
                if let Some(socket) = self.socket() {
                    for (channel, result) in &connected.subs {
                        let body = convert::result_json(&ReplyResult::Subscribe(result.clone()));
                        emit_with_channel(&socket, "subscribe", channel, &body);
                    }
                }
                drop(connected.activations);
            }
            Err(err) => {
                tracing::warn!(client = %self.client, %err, "socket.io connect failed");
                if let Some(socket) = self.socket() {
                    socket.disconnect();
                }
            }
        }
    }

    async fn on_event(
        &self,
        session: &mut Session,
        socket: &Socket,
        event: &str,
        data: Data,
        ack: Option<AckSender>,
    ) {
        let result = if let Err(err) = session.check_rate() {
            // Over client.max_commands_per_second: not run, answered 111.
            Err(err)
        } else if data.binary.is_empty() {
            let arg = data.args.into_iter().next().unwrap_or(Value::Null);
            handle_event(session, event, arg).await
        } else {
            // Channels carry JSON; a binary attachment would be stored as
            // its placeholder. Refuse it instead of publishing that.
            Err(SessionError::Reply(proto::ReplyError::new(
                proto::ErrorCode::BadRequest.code(),
                "binary attachments are not supported: channels carry JSON",
                false,
            )))
        };
        let outcome = match result {
            Ok((body, activation)) => {
                if let Some(ack) = ack {
                    let _ = ack.send(&(body,));
                    counters(&self.node)
                        .messages_out
                        .fetch_add(1, Ordering::Relaxed);
                }
                // The ack is queued: live delivery may start.
                drop(activation);
                return;
            }
            Err(err) => err,
        };
        self.node.metrics().error(outcome.code());
        let (code, message) = match &outcome {
            SessionError::Reply(e) => (e.code, e.message.to_string()),
            SessionError::Disconnect(d) => (d.code, d.reason.to_string()),
        };
        if let Some(ack) = ack {
            let _ = ack.send(&(json!({"error": {"code": code, "message": message}}),));
        }
        if let SessionError::Disconnect(d) = outcome {
            disconnect(socket, d.reconnect);
        }
    }

    async fn on_command(&self, session: &mut Session, command: ServerCommand) {
        let Some(socket) = self.socket() else { return };
        match command {
            ServerCommand::Subscribe(channel) => {
                match session.server_subscribe(&channel, None).await {
                    Ok(Some(sub)) => {
                        let body = convert::result_json(&ReplyResult::Subscribe(sub.result));
                        emit_with_channel(&socket, "subscribe", &channel, &body);
                        sub.activation.activate();
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(%channel, %err, "server-side subscribe failed"),
                }
            }
            ServerCommand::InsufficientState {
                channel,
                generation,
            } => {
                if session.is_current(&channel, generation)
                    && matches!(session.unsubscribe(&channel).await, Ok(true))
                {
                    let unsub = proto::Unsubscribe::INSUFFICIENT_STATE;
                    let _ = socket.emit(
                        "unsubscribe",
                        &(json!({"channel": channel.as_str(), "code": unsub.code, "reason": unsub.reason}),),
                    );
                }
            }
            ServerCommand::Unsubscribe(channel) => {
                if let Ok(true) = session.unsubscribe(&channel).await {
                    let unsub = proto::Unsubscribe::SERVER;
                    let _ = socket.emit(
                        "unsubscribe",
                        &(json!({"channel": channel.as_str(), "code": unsub.code, "reason": unsub.reason}),),
                    );
                }
            }
            ServerCommand::Disconnect {
                code, reconnect, ..
            } => {
                self.node.metrics().disconnect(code);
                disconnect(&socket, reconnect);
            }
        }
    }

    async fn on_expiry(&self, session: &mut Session) {
        let grace = session.expiry_grace().as_secs_f64().ceil() as u64;
        let until = now_secs().saturating_sub(grace);
        if session.expires_at().is_some_and(|exp| exp <= until) {
            self.node
                .metrics()
                .disconnect(proto::Disconnect::EXPIRED.close_code().unwrap_or(3005));
            if let Some(socket) = self.socket() {
                // The token ran out and was not refreshed: the client must
                // reconnect with a new one.
                socket.disconnect();
            }
            return;
        }
        let expired = session.expire_subscriptions(until).await;
        if let Some(socket) = self.socket() {
            let unsub = proto::Unsubscribe::EXPIRED;
            for channel in expired {
                let _ = socket.emit(
                    "unsubscribe",
                    &(json!({"channel": channel.as_str(), "code": unsub.code, "reason": unsub.reason}),),
                );
            }
        }
    }

    /// Arms (or moves) the expiry check for the earliest of the
    /// connection's and its subscriptions' expiries, plus the grace.
    fn schedule_expiry(self: &Arc<Self>, session: &Session) {
        let grace = session.expiry_grace();
        let next = [session.expires_at(), session.next_subscription_expiry()]
            .into_iter()
            .flatten()
            .min();
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        match (next, &state.timer) {
            (Some(at), Some((armed, _))) if *armed == at => return,
            (None, None) => return,
            _ => {}
        }
        if let Some((_, task)) = state.timer.take() {
            task.abort();
        }
        if let Some(at) = next {
            let conn = Arc::downgrade(self);
            let wait = Duration::from_secs(at.saturating_sub(now_secs())) + grace;
            let task = tokio::spawn(async move {
                // Whole seconds: look a second late rather than too early.
                tokio::time::sleep(wait + Duration::from_secs(1)).await;
                if let Some(conn) = conn.upgrade() {
                    lock(&conn.state).timer = None;
                    conn.enqueue(Job::Expiry);
                }
            });
            state.timer = Some((at, task.abort_handle()));
        }
    }

    async fn close(&self, session: &mut Session) {
        let admitted = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.jobs = VecDeque::new();
            state.running = false;
            if let Some((_, task)) = state.timer.take() {
                task.abort();
            }
            state.admitted
        };
        if admitted {
            self.node.registry().remove(&self.user, &self.client);
            counters(&self.node)
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
        }
        session.close().await;
        // Drop the socket: it holds the handlers, which hold this.
        lock(&self.slot).take();
    }
}

/// Ends a socket: a reconnecting disconnect closes the transport (the
/// client reconnects by itself), a final one leaves the namespace (the
/// client sees "io server disconnect" and stays away).
fn disconnect(socket: &Socket, reconnect: bool) {
    if reconnect {
        socket.engine().close();
    } else {
        socket.disconnect();
    }
}

/// Emits `event` with `{channel, ...body}`.
fn emit_with_channel(socket: &Socket, event: &str, channel: &str, body: &RawValue) {
    let mut value: Value = serde_json::from_str(body.get()).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        map.insert("channel".into(), Value::String(channel.to_owned()));
    }
    let _ = socket.emit(event, &(value,));
}

#[derive(Deserialize)]
struct SubscribeArgs {
    channel: String,
    #[serde(default)]
    recover: bool,
    #[serde(default)]
    epoch: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    token: String,
    #[serde(default = "yes")]
    join_leave: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct ChannelArgs {
    channel: String,
}

#[derive(Deserialize)]
struct PublishArgs {
    channel: String,
    data: Value,
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    epoch: String,
}

#[derive(Deserialize)]
struct HistoryArgs {
    channel: String,
    /// Absent: everything kept (the plain protocol's absent limit returns
    /// only the position, which surprises event-style callers).
    #[serde(default)]
    limit: Option<i32>,
    #[serde(default)]
    since: Option<Since>,
    #[serde(default)]
    reverse: bool,
}

#[derive(Deserialize)]
struct RefreshArgs {
    token: String,
}

#[derive(Deserialize)]
struct SubRefreshArgs {
    channel: String,
    token: String,
}

fn args<T: serde::de::DeserializeOwned>(arg: Value) -> Result<T, SessionError> {
    serde_json::from_value(arg).map_err(|_| proto::ErrorCode::BadRequest.into())
}

fn body(result: ReplyResult) -> Box<RawValue> {
    convert::result_json(&result)
}

/// Runs one client event; the ack's body, and the activation of a new
/// subscription.
async fn handle_event(
    session: &mut Session,
    event: &str,
    arg: Value,
) -> Result<(Box<RawValue>, Option<Activation>), SessionError> {
    Ok(match event {
        "subscribe" => {
            let a: SubscribeArgs = args(arg)?;
            // Socket.IO clients always get the position, so that they can
            // recover later, and join/leave unless they opt out.
            let req = proto::SubscribeRequest {
                channel: a.channel,
                token: a.token,
                recover: a.recover,
                epoch: a.epoch,
                offset: a.offset,
                recoverable: true,
                positioned: true,
                join_leave: a.join_leave,
                ..Default::default()
            };
            let sub = session.subscribe(&req).await?;
            (
                body(ReplyResult::Subscribe(sub.result)),
                Some(sub.activation),
            )
        }
        "unsubscribe" => {
            let a: ChannelArgs = args(arg)?;
            session.unsubscribe(&a.channel).await?;
            (body(ReplyResult::Unsubscribe), None)
        }
        "publish" => {
            let a: PublishArgs = args(arg)?;
            session
                .publish(&a.channel, proto::RawJson::from_value(&a.data))
                .await?;
            (body(ReplyResult::Publish), None)
        }
        "presence" => {
            let a: ChannelArgs = args(arg)?;
            let r = session.presence(&a.channel).await?;
            (body(ReplyResult::Presence(r)), None)
        }
        "presence_stats" => {
            let a: ChannelArgs = args(arg)?;
            let r = session.presence_stats(&a.channel).await?;
            (body(ReplyResult::PresenceStats(r)), None)
        }
        "history" => {
            let a: HistoryArgs = args(arg)?;
            let req = proto::HistoryRequest {
                channel: a.channel,
                limit: a.limit.unwrap_or(-1),
                since: a.since.map(|s| proto::StreamPosition {
                    offset: s.offset,
                    epoch: s.epoch,
                }),
                reverse: a.reverse,
            };
            let r = session.history(&req).await?;
            (body(ReplyResult::History(r)), None)
        }
        "refresh" => {
            let a: RefreshArgs = args(arg)?;
            let r = session.refresh(&a.token)?;
            (body(ReplyResult::Refresh(r)), None)
        }
        "sub_refresh" => {
            let a: SubRefreshArgs = args(arg)?;
            let req = proto::SubRefreshRequest {
                channel: a.channel,
                token: a.token,
            };
            let r = session.sub_refresh(&req)?;
            (body(ReplyResult::SubRefresh(r)), None)
        }
        _ => return Err(proto::ErrorCode::MethodNotFound.into()),
    })
}

/// A Socket.IO client in the registry.
struct SioHandle(Arc<SioConn>);

impl ClientHandle for SioHandle {
    fn client_id(&self) -> &str {
        &self.0.client
    }

    fn user(&self) -> &str {
        &self.0.user
    }

    fn transport(&self) -> Transport {
        Transport::SocketIo
    }

    fn command(&self, command: ServerCommand) {
        self.0.enqueue(Job::Command(command));
    }
}

/// Builds subscribers that emit into the connection's socket.
struct SioFactory {
    node: Node,
    /// The connection, for its socket and for its subscribers to queue
    /// commands on (set once the connection exists, before anything can
    /// subscribe). Weak: the connection holds the session, which holds this.
    conn: std::sync::OnceLock<Weak<SioConn>>,
}

impl SubscriberFactory for SioFactory {
    fn subscriber(&self, _channel: &ChannelName, generation: u64) -> Arc<dyn Subscriber> {
        let conn = self.conn.get().cloned().unwrap_or_default();
        Arc::new(SioSubscriber {
            socket: conn.upgrade().and_then(|conn| conn.socket()),
            node: self.node.clone(),
            conn,
            generation,
        })
    }
}

/// Cache key for a message's Socket.IO frame.
#[derive(Clone)]
struct SioFrame(engineio::SharedFrame);

/// The Engine.IO frame of event `event` with one argument, `object` (JSON).
fn event_frame(event: &str, object: &str) -> SioFrame {
    // `2` is a Socket.IO EVENT on namespace `/`; `text_frame` adds
    // Engine.IO's `4` (message).
    let mut text = String::with_capacity(object.len() + event.len() + 8);
    text.push_str("2[\"");
    text.push_str(event);
    text.push_str("\",");
    text.push_str(object);
    text.push(']');
    SioFrame(engineio::text_frame(&text))
}

/// One subscription of a Socket.IO socket, as the hub sees it.
struct SioSubscriber {
    socket: Option<Socket>,
    node: Node,
    /// Where to queue the end of the subscription on insufficient state.
    conn: Weak<SioConn>,
    generation: u64,
}

impl SioSubscriber {
    fn send(&self, frame: SioFrame) -> bool {
        let len = frame.0.payload().len() as u64;
        let sent = match &self.socket {
            Some(socket) if socket.connected() => socket.engine().send(frame.0),
            _ => false,
        };
        if sent {
            let metrics = counters(&self.node);
            metrics.messages_out.fetch_add(1, Ordering::Relaxed);
            metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
        }
        sent
    }
}

impl Subscriber for SioSubscriber {
    fn deliver(&self, publication: &Arc<EncodedPublication>) -> bool {
        let frame = publication.encoded(|p| {
            event_frame(
                "publication",
                &convert::sio_publication(p.channel(), p.publication()),
            )
        });
        self.send(frame)
    }

    fn deliver_join_leave(&self, event: &Arc<JoinLeave>) -> bool {
        let frame = event.encoded(|e| {
            let name = match e.kind() {
                JoinLeaveKind::Join => "join",
                JoinLeaveKind::Leave => "leave",
            };
            event_frame(name, &convert::sio_join_leave(e.channel(), e.info()))
        });
        self.send(frame)
    }

    /// The connection's worker unsubscribes the client with 2500.
    fn insufficient_state(&self, publication: &Arc<EncodedPublication>) -> bool {
        let Some(conn) = self.conn.upgrade() else {
            return false;
        };
        conn.enqueue(Job::Command(ServerCommand::InsufficientState {
            channel: publication.channel().clone(),
            generation: self.generation,
        }));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames() {
        let frame = event_frame("publication", r#"{"channel":"c","data":1}"#);
        assert_eq!(
            frame.0.payload(),
            br#"42["publication",{"channel":"c","data":1}]"#
        );
    }

    #[test]
    fn auth_token_reads_as_the_parsed_value_does() {
        let cases = [
            r#"{"token":"abc"}"#,
            r#"{"a":[1,{"token":"no"}],"token":"yes","b":null}"#,
            r#"{"token":"first","token":"last"}"#,
            r#"{"token":"a\"b\u00e9"}"#,
            r#"{"tok\u0065n":"escaped key"}"#,
            r#"{"token":12}"#,
            r#"{"token":null}"#,
            r#"{}"#,
            r#"[]"#,
            r#"null"#,
            r#""token""#,
            r#"{"token":"x""#,
            "",
        ];
        for json in cases {
            let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            let expected = value.get("token").and_then(Value::as_str).unwrap_or("");
            assert_eq!(auth_token(json), expected, "{json}");
        }
    }

    #[test]
    fn refusal_messages() {
        let unauthorized = SessionError::from(proto::ErrorCode::Unauthorized);
        assert!(refusal(&unauthorized, true).contains("token is required"));
        assert_eq!(
            refusal(&proto::ErrorCode::TokenExpired.into(), false),
            "token expired"
        );
        assert_eq!(
            refusal(&proto::Disconnect::INVALID_TOKEN.into(), false),
            "invalid token"
        );
    }
}
