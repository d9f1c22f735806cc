//! One plain-WebSocket client connection, from upgrade to close: the task
//! that speaks Centrifugo's JSON protocol over it.
//!
//! Owns the protocol's life cycle: connect first (anything else before it
//! closes with 3501, no connect within `connect_timeout` with 3502), the
//! commands of each frame handled in order with their replies batched into
//! one frame, server pings (`{}`) every `ping_interval` and 3012 when no
//! pong follows within `pong_timeout`, connection and subscription expiry
//! (3005 / unsubscribe 2501 once the grace after expiry passes without a
//! refresh), server commands from the registry, 3001 on shutdown, 3008 for
//! a client that does not read, and the close frame. What each command
//! does is the session core's ([`crate::session`]); frames and codes are
//! `centrifuge-proto`'s; the socket is `ws`'s.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use centrifuge_proto::{
    self as proto, Command, Disconnect, ErrorAction, ErrorCode, FrameBuf, Limits, Push,
    ReplyResult, Unsubscribe,
};
use hub::Activation;
use tokio::time::Instant;
use ws::upgrade::UpgradedSocket;
use ws::{CloseCode, CloseFrame, Message};

use super::outbox::{Item, Outbox, Taken};
use crate::metrics::TransportCounters;
use crate::node::{Node, OnShutdown, ServerCommand, ShutdownWatch, Transport};
use crate::session::{Session, SessionError, VERSION};

/// Where the connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the connect command.
    Connecting,
    /// A connect failed with an error reply: anything more closes it.
    Unusable,
    /// Connected.
    Connected,
}

/// How the connection ends.
#[derive(Debug)]
enum End {
    /// We close it with this disconnect.
    Close(Disconnect),
    /// The client closed it, or the transport failed (already handled by
    /// the socket, with an RFC 6455 code when there was one).
    Gone,
}

impl From<ws::Error> for End {
    fn from(err: ws::Error) -> Self {
        match err {
            ws::Error::WriteBufferFull { .. } => End::Close(Disconnect::SLOW),
            _ => End::Gone,
        }
    }
}

enum Event {
    Outbox(Taken),
    Message(Option<Result<Message, ws::Error>>),
    Timer,
}

struct Conn {
    node: Node,
    ws: UpgradedSocket,
    session: Session,
    outbox: Arc<Outbox>,
    phase: Phase,
    stale_at: Deadline,
    next_ping: Deadline,
    pong_due: Deadline,
    expire_at: Deadline,
    sub_expire_at: Deadline,
    registered: bool,
    /// Shutdown calls the outbox until the connection is dropped.
    shutdown: ShutdownWatch,
}

/// A timer's deadline in 8 bytes (an `Option<Instant>` takes 16, and a
/// connection has five): whole milliseconds after a process-wide origin,
/// rounded up so that it never fires early; 0 for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline(u64);

impl Deadline {
    const NONE: Deadline = Deadline(0);

    fn origin() -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    fn at(at: Instant) -> Self {
        let since = at.saturating_duration_since(Self::origin());
        let millis = since.as_nanos().div_ceil(1_000_000);
        Deadline(u64::try_from(millis).unwrap_or(u64::MAX).max(1))
    }

    fn get(self) -> Option<Instant> {
        (self.0 != 0).then(|| Self::origin() + Duration::from_millis(self.0))
    }

    fn is_none(self) -> bool {
        self.0 == 0
    }

    fn is_due(self, now: Instant) -> bool {
        self.get().is_some_and(|t| t <= now)
    }
}

impl From<Option<Instant>> for Deadline {
    fn from(at: Option<Instant>) -> Self {
        at.map_or(Deadline::NONE, Deadline::at)
    }
}

fn counters(node: &Node) -> &TransportCounters {
    node.metrics().transport(Transport::WebSocket)
}

/// How long from now until Unix time `secs` (zero if past).
fn until_unix(secs: u64) -> Duration {
    (UNIX_EPOCH + Duration::from_secs(secs))
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// Whole seconds for the connect reply's `ping`, rounded up so that a
/// sub-second interval is not mistaken for "no pings".
fn whole_secs(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Serves one upgraded connection until it closes: the future to spawn
/// as the connection's task.
///
/// Built outside the future, and the future is an `async` block using the
/// `Conn` where it was captured, so that the task holds the connection
/// state once: an `async fn` (taking `node` and `ws`, or `self`) moves its
/// arguments into locals and keeps both slots for the whole life of an
/// idle connection.
pub(crate) fn run(node: Node, ws: UpgradedSocket) -> impl Future<Output = ()> + Send {
    let metrics = counters(&node);
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    let config = &node.config().client;
    let client: Arc<str> = Arc::from(crate::util::random_id());
    let outbox = Outbox::new(client.clone(), config.max_queue_bytes);
    let session = Session::new(node.clone(), client, outbox.clone());
    let shutdown_target: Arc<dyn OnShutdown> = outbox.clone();
    let shutdown = node.watch_shutdown(Arc::downgrade(&shutdown_target));
    let mut conn = Conn {
        stale_at: Deadline::at(Instant::now() + config.connect_timeout),
        node,
        ws,
        session,
        outbox,
        phase: Phase::Connecting,
        next_ping: Deadline::NONE,
        pong_due: Deadline::NONE,
        expire_at: Deadline::NONE,
        sub_expire_at: Deadline::NONE,
        registered: false,
        shutdown,
    };
    async move {
        let end = conn.serve().await;
        Box::pin(conn.finish(end)).await;
        counters(&conn.node)
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.node.unwatch_shutdown(self.shutdown);
    }
}

impl Conn {
    fn metrics(&self) -> &TransportCounters {
        counters(&self.node)
    }

    fn next_deadline(&self) -> Deadline {
        [
            self.stale_at,
            self.next_ping,
            self.pong_due,
            self.expire_at,
            self.sub_expire_at,
        ]
        .into_iter()
        .filter(|d| !d.is_none())
        .min_by_key(|d| d.0)
        .unwrap_or(Deadline::NONE)
    }

    async fn serve(&mut self) -> End {
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        let mut armed = Deadline::NONE;
        let mut outbox_first = false;
        loop {
            {
                let next = self.next_deadline();
                if next != armed {
                    timer.as_mut().reset(next.get().unwrap_or_else(far));
                    armed = next;
                }
            }
            self.outbox.set_io_backlog(self.ws.pending_output());
            // A hand-written poll rather than `select!`: no future is kept
            // for the outbox or for shutdown (both wake the task through the
            // outbox's stored waker), so an idle task holds only the
            // connection and its timer. The sources take turns at being
            // polled first: a busy channel must not starve the socket (its
            // writes progress while `recv` is polled), nor a chatty client
            // the outbox.
            outbox_first = !outbox_first;
            let this = &mut *self;
            let mut timer = timer.as_mut();
            let event = std::future::poll_fn(move |cx| {
                this.poll_event(cx, timer.as_mut(), armed, outbox_first)
            })
            .await;
            // Boxed: one allocation per wake-up (a batch of events, a
            // frame of commands, a timer), and the state of handling it
            // (subscribe, history, ... futures are large) is not part of
            // every idle connection's task.
            if let Err(end) = Box::pin(self.on_event(event)).await {
                return end;
            }
        }
    }

    /// One poll of everything the idle task waits for (see `serve`).
    fn poll_event(
        &mut self,
        cx: &mut std::task::Context<'_>,
        mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
        armed: Deadline,
        outbox_first: bool,
    ) -> Poll<Event> {
        if outbox_first {
            if let Some(taken) = self.outbox.poll_take(cx) {
                return Poll::Ready(Event::Outbox(taken));
            }
        }
        if let Poll::Ready(message) = self.ws.poll_recv(cx) {
            return Poll::Ready(Event::Message(message));
        }
        if !outbox_first {
            if let Some(taken) = self.outbox.poll_take(cx) {
                return Poll::Ready(Event::Outbox(taken));
            }
        }
        if !armed.is_none() && timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::Timer);
        }
        Poll::Pending
    }

    async fn on_event(&mut self, event: Event) -> Result<(), End> {
        match event {
            Event::Outbox(taken) => {
                self.drain(taken).await?;
                // Start writing now rather than at the next `recv` poll; a
                // peer that does not read leaves the rest queued (and
                // counted against its limit).
                self.try_flush().await;
            }
            Event::Timer => self.on_timer().await?,
            Event::Message(None) => return Err(End::Gone),
            Event::Message(Some(Err(err))) => {
                if let Some(code) = err.close_code() {
                    self.node.metrics().disconnect(code.as_u16());
                }
                tracing::debug!(%err, "websocket client failed");
                return Err(End::Gone);
            }
            Event::Message(Some(Ok(message))) => self.on_message(message).await?,
        }
        let max = self.node.config().client.max_queue_bytes;
        if self.ws.pending_output() > max {
            // A big reply may go over for a moment; a client that does not
            // take it is slow.
            self.try_flush().await;
            if self.ws.pending_output() > max {
                return Err(End::Close(Disconnect::SLOW));
            }
        }
        Ok(())
    }

    /// Writes what the socket can take now, without waiting.
    async fn try_flush(&mut self) {
        std::future::poll_fn(|cx| {
            let _ = std::pin::pin!(self.ws.flush()).poll(cx);
            Poll::Ready(())
        })
        .await;
    }

    async fn finish(&mut self, end: End) {
        if self.registered {
            self.node
                .registry()
                .remove(self.session.user(), self.session.client_id());
        }
        self.session.close().await;
        self.outbox.close();
        if let End::Close(disconnect) = end {
            self.node
                .metrics()
                .disconnect(disconnect.close_code().unwrap_or(3000));
            let code = CloseCode::new(disconnect.close_code().unwrap_or(3000));
            let frame = CloseFrame::new(code, &disconnect.reason);
            if let Err(err) = self.ws.close(Some(frame)).await {
                tracing::debug!(%err, "closing websocket client");
            }
        }
    }

    // ---- input ----

    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(bytes) => match ws::Utf8Bytes::try_from(bytes) {
                Ok(text) => text,
                // The JSON protocol only; protobuf is not spoken here.
                Err(_) => return Err(End::Close(Disconnect::BAD_REQUEST)),
            },
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Ok(()),
        };
        self.metrics()
            .bytes_in
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        let limits = Limits {
            max_frame_len: self.node.config().client.max_message_size,
            ..Limits::default()
        };
        let commands = match proto::decode_frame(text.as_str(), &limits) {
            Ok(commands) => commands,
            Err(err) => return Err(close_for(err.action())),
        };
        let mut out = FrameBuf::new();
        let mut activations: Vec<Activation> = Vec::new();
        let mut result = Ok(());
        for command in commands {
            self.metrics().messages_in.fetch_add(1, Ordering::Relaxed);
            let step = match command {
                Ok(command) => self.on_command(command, &mut out, &mut activations).await,
                Err(err) => match err.action() {
                    ErrorAction::Reply { id, error } if self.phase == Phase::Connected => {
                        tracing::debug!(%err, "bad command");
                        self.node.metrics().error(error.code());
                        out.error(id, &error.into());
                        Ok(())
                    }
                    ErrorAction::Reply { .. } => Err(End::Close(Disconnect::BAD_REQUEST)),
                    ErrorAction::Close(disconnect) => {
                        tracing::debug!(%err, "malformed command");
                        Err(End::Close(disconnect))
                    }
                },
            };
            if let Err(end) = step {
                result = Err(end);
                break;
            }
        }
        self.send_frame(&mut out)?;
        // Replies are queued: live delivery may start.
        drop(activations);
        result
    }

    fn send_frame(&mut self, out: &mut FrameBuf) -> Result<(), End> {
        if out.is_empty() {
            return Ok(());
        }
        let metrics = counters(&self.node);
        metrics
            .messages_out
            .fetch_add(out.messages() as u64, Ordering::Relaxed);
        metrics
            .bytes_out
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        self.ws.queue(Message::text(out.take_utf8_bytes()))?;
        Ok(())
    }

    fn fail(&self, id: u32, err: SessionError, out: &mut FrameBuf) -> Result<(), End> {
        match err {
            SessionError::Reply(error) => {
                self.node.metrics().error(error.code);
                out.error(id, &error);
                Ok(())
            }
            SessionError::Disconnect(disconnect) => Err(End::Close(disconnect)),
        }
    }

    async fn on_command(
        &mut self,
        command: Command,
        out: &mut FrameBuf,
        activations: &mut Vec<Activation>,
    ) -> Result<(), End> {
        if let Command::Connect { id, req } = command {
            return self.on_connect(id, req, out, activations).await;
        }
        if self.phase != Phase::Connected {
            // Centrifugo's rule: nothing but connect before connect.
            return Err(End::Close(Disconnect::BAD_REQUEST));
        }
        // Commands with a reply count against client.max_commands_per_second.
        if let Some(id) = command.id() {
            if let Err(err) = self.session.check_rate() {
                return self.fail(id, err, out);
            }
        }
        let reply = match command {
            Command::Connect { .. } => return Err(End::Close(Disconnect::BAD_REQUEST)),
            Command::Pong => {
                self.pong_due = Deadline::NONE;
                return Ok(());
            }
            // Asynchronous messages need an application handler; none is
            // configured, so they are accepted and dropped.
            Command::Send(_) => return Ok(()),
            Command::Subscribe { id, req } => match self.session.subscribe(&req).await {
                Ok(sub) => {
                    activations.push(sub.activation);
                    self.update_sub_expiry();
                    (id, Ok(ReplyResult::Subscribe(sub.result)))
                }
                Err(err) => (id, Err(err)),
            },
            Command::Unsubscribe { id, req } => (
                id,
                self.session
                    .unsubscribe(&req.channel)
                    .await
                    .map(|_| ReplyResult::Unsubscribe),
            ),
            Command::Publish { id, req } => (
                id,
                self.session
                    .publish(&req.channel, req.data)
                    .await
                    .map(|()| ReplyResult::Publish),
            ),
            Command::Presence { id, req } => (
                id,
                self.session
                    .presence(&req.channel)
                    .await
                    .map(ReplyResult::Presence),
            ),
            Command::PresenceStats { id, req } => (
                id,
                self.session
                    .presence_stats(&req.channel)
                    .await
                    .map(ReplyResult::PresenceStats),
            ),
            Command::History { id, req } => (
                id,
                self.session.history(&req).await.map(ReplyResult::History),
            ),
            // No RPC handler is configured: as Centrifugo without an RPC proxy.
            Command::Rpc { id, .. } => (id, Err(ErrorCode::MethodNotFound.into())),
            Command::Refresh { id, req } => {
                let result = self.session.refresh(&req.token);
                self.update_expiry();
                (id, result.map(ReplyResult::Refresh))
            }
            Command::SubRefresh { id, req } => {
                let result = self.session.sub_refresh(&req);
                self.update_sub_expiry();
                (id, result.map(ReplyResult::SubRefresh))
            }
        };
        match reply {
            (id, Ok(result)) => {
                out.reply(id, &result);
                Ok(())
            }
            (id, Err(err)) => self.fail(id, err, out),
        }
    }

    async fn on_connect(
        &mut self,
        id: u32,
        req: proto::ConnectRequest,
        out: &mut FrameBuf,
        activations: &mut Vec<Activation>,
    ) -> Result<(), End> {
        if self.phase != Phase::Connecting {
            return Err(End::Close(Disconnect::BAD_REQUEST));
        }
        if self.node.is_shutting_down() {
            return Err(End::Close(Disconnect::SHUTDOWN));
        }
        let connected = match self.session.authenticate(&req.token) {
            Ok(creds) => self.session.connect(creds, &req.subs).await,
            Err(err) => Err(err),
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(err) => {
                // As Centrifugo: after a failed connect the connection only
                // waits to be closed (by the client, or as stale).
                self.phase = Phase::Unusable;
                return self.fail(id, err, out);
            }
        };
        let client = &self.node.config().client;
        let ping = client.ping_interval;
        let result = proto::ConnectResult {
            client: self.session.client_id().to_string(),
            version: VERSION.to_owned(),
            expires: connected.expires,
            ttl: connected.ttl,
            subs: connected.subs,
            ping: if ping.is_zero() { 0 } else { whole_secs(ping) },
            pong: !ping.is_zero(),
            ..Default::default()
        };
        out.reply(id, &ReplyResult::Connect(result));
        activations.extend(connected.activations);
        self.phase = Phase::Connected;
        self.stale_at = Deadline::NONE;
        if !ping.is_zero() {
            self.next_ping = Deadline::at(Instant::now() + ping);
        }
        self.update_expiry();
        self.update_sub_expiry();
        // The session's own copy of the user id, not another allocation.
        if let Some(credentials) = self.session.credentials() {
            self.outbox.set_user(credentials.user.clone());
        }
        self.node.registry().add(self.outbox.clone());
        self.registered = true;
        Ok(())
    }

    // ---- timers ----

    fn update_expiry(&mut self) {
        let grace = self.session.expiry_grace();
        self.expire_at = Deadline::from(
            self.session
                .expires_at()
                .map(|exp| Instant::now() + until_unix(exp) + grace),
        );
    }

    fn update_sub_expiry(&mut self) {
        let grace = self.session.expiry_grace();
        self.sub_expire_at = Deadline::from(
            self.session
                .next_subscription_expiry()
                .map(|exp| Instant::now() + until_unix(exp) + grace),
        );
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if self.stale_at.is_due(now) {
            return Err(End::Close(Disconnect::STALE));
        }
        if self.pong_due.is_due(now) {
            return Err(End::Close(Disconnect::NO_PONG));
        }
        if self.expire_at.is_due(now) {
            return Err(End::Close(Disconnect::new(
                Disconnect::EXPIRED.code,
                "expired",
            )));
        }
        if self.sub_expire_at.is_due(now) {
            let grace = self.session.expiry_grace();
            let until = SystemTime::now()
                .checked_sub(grace)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let expired = self.session.expire_subscriptions(until).await;
            let mut out = FrameBuf::new();
            for channel in expired {
                out.push(&channel, &Push::Unsubscribe(Unsubscribe::EXPIRED));
            }
            self.send_frame(&mut out)?;
            self.update_sub_expiry();
            if self.sub_expire_at.is_due(now) {
                // Rounding: look again in a second rather than spin.
                self.sub_expire_at = Deadline::at(now + Duration::from_secs(1));
            }
        }
        if self.next_ping.is_due(now) {
            let (interval, pong_timeout) = {
                let client = &self.node.config().client;
                (client.ping_interval, client.pong_timeout)
            };
            let mut out = FrameBuf::new();
            out.ping();
            self.send_frame(&mut out)?;
            if self.pong_due.is_none() {
                self.pong_due = Deadline::at(now + pong_timeout);
            }
            self.next_ping = Deadline::at(now + interval);
        }
        Ok(())
    }

    // ---- server side ----

    async fn drain(&mut self, taken: Taken) -> Result<(), End> {
        if taken.shutdown {
            return Err(End::Close(Disconnect::SHUTDOWN));
        }
        if taken.slow {
            return Err(End::Close(Disconnect::SLOW));
        }
        for item in taken.items {
            match item {
                Item::Event {
                    channel,
                    generation,
                    frame,
                } => {
                    if !self.session.is_current(&channel, generation) {
                        continue;
                    }
                    let metrics = counters(&self.node);
                    metrics.messages_out.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .bytes_out
                        .fetch_add(frame.payload().len() as u64, Ordering::Relaxed);
                    self.ws.queue_shared(&frame)?;
                }
                Item::Command(command) => self.on_server_command(command).await?,
            }
        }
        Ok(())
    }

    async fn on_server_command(&mut self, command: ServerCommand) -> Result<(), End> {
        if self.phase != Phase::Connected {
            return Ok(());
        }
        match command {
            ServerCommand::Subscribe(channel) => {
                match self.session.server_subscribe(&channel, None).await {
                    Ok(Some(sub)) => {
                        let push = proto::SubscribePush {
                            recoverable: sub.result.recoverable,
                            epoch: sub.result.epoch,
                            offset: sub.result.offset,
                            positioned: sub.result.positioned,
                            data: None,
                        };
                        let mut out = FrameBuf::new();
                        out.push(&channel, &Push::Subscribe(push));
                        self.send_frame(&mut out)?;
                        sub.activation.activate();
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(%channel, %err, "server-side subscribe failed");
                    }
                }
            }
            ServerCommand::Unsubscribe(channel) => {
                if let Ok(true) = self.session.unsubscribe(&channel).await {
                    let mut out = FrameBuf::new();
                    out.push(&channel, &Push::Unsubscribe(Unsubscribe::SERVER));
                    self.send_frame(&mut out)?;
                }
            }
            ServerCommand::InsufficientState {
                channel,
                generation,
            } => {
                if self.session.is_current(&channel, generation)
                    && matches!(self.session.unsubscribe(&channel).await, Ok(true))
                {
                    let mut out = FrameBuf::new();
                    out.push(
                        &channel,
                        &Push::Unsubscribe(Unsubscribe::INSUFFICIENT_STATE),
                    );
                    self.send_frame(&mut out)?;
                }
            }
            ServerCommand::Disconnect {
                code,
                reason,
                reconnect,
            } => {
                return Err(End::Close(Disconnect {
                    code: u32::from(code),
                    reason: reason.into(),
                    reconnect,
                }));
            }
        }
        Ok(())
    }
}

fn close_for(action: ErrorAction) -> End {
    match action {
        ErrorAction::Close(disconnect) => End::Close(disconnect),
        ErrorAction::Reply { .. } => End::Close(Disconnect::BAD_REQUEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_none_is_none() {
        let now = Instant::now();
        let at = now + Duration::from_micros(1_500);
        let deadline = Deadline::at(at);
        let back = deadline.get().expect("set");
        assert!(back >= at && back < at + Duration::from_millis(1));
        assert!(!deadline.is_due(now));
        assert!(deadline.is_due(back));
        assert_eq!(Deadline::from(None), Deadline::NONE);
        assert!(Deadline::NONE.get().is_none() && !Deadline::NONE.is_due(now));
        // The origin itself is a deadline, not "none".
        assert!(!Deadline::at(now - Duration::from_secs(1)).is_none());
    }

    #[test]
    fn ping_seconds_round_up() {
        assert_eq!(whole_secs(Duration::from_secs(25)), 25);
        assert_eq!(whole_secs(Duration::from_millis(200)), 1);
        assert_eq!(whole_secs(Duration::from_millis(1500)), 2);
    }
}
