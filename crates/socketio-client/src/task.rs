//! The connection: opening it (WebSocket, Engine.IO `open`, namespace
//! CONNECT), and the task that owns it, moves packets both ways, enforces
//! the heartbeat and reconnects.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use engineio_proto::Packet as EioPacket;
use serde::Deserialize;
use socketio_proto::{BinaryAssembler, Packet, PacketKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use ws::{MaybeTlsStream, Message, Utf8Bytes, WebSocket};

use crate::builder::{Callbacks, Config};
use crate::client::{frames, lock, AckSender, Command, Data, Shared};
use crate::{DisconnectReason, Error};

/// How long a graceful close may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most queued commands written per wake-up, so that incoming traffic and
/// the heartbeat are not starved by a flood of emits.
const COMMAND_BATCH: usize = 256;

/// An open connection that has joined the namespace.
pub(crate) struct Conn {
    ws: WebSocket<MaybeTlsStream>,
    pub(crate) sid: Arc<str>,
    /// `pingInterval + pingTimeout`: the longest the server may stay
    /// without pinging.
    heartbeat: Duration,
    /// When the connection is considered dead.
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn ping_received(&mut self) {
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.heartbeat);
    }
}

/// The fields of the Engine.IO `open` packet the client uses.
#[derive(Deserialize)]
struct OpenPacket {
    #[serde(rename = "pingInterval")]
    ping_interval: u64,
    #[serde(rename = "pingTimeout")]
    ping_timeout: u64,
}

/// The server's CONNECT reply.
#[derive(Deserialize)]
struct ConnectReply {
    sid: String,
}

fn handshake_error(what: impl Into<String>) -> Error {
    Error::Handshake(what.into())
}

/// Opens a connection and joins the namespace, within the connect timeout.
pub(crate) async fn establish(config: &Config) -> Result<Conn, Error> {
    match tokio::time::timeout(config.connect_timeout, open(config)).await {
        Ok(result) => result,
        Err(_) => Err(Error::ConnectTimeout),
    }
}

async fn open(config: &Config) -> Result<Conn, Error> {
    let (mut ws, _) = config.connector.connect(&config.engine_url).await?;
    let handshake = loop {
        match ws.recv().await {
            Some(Ok(Message::Text(text))) => match EioPacket::from_ws_text(text) {
                Ok(EioPacket::Open(json)) => {
                    break serde_json::from_str::<OpenPacket>(json.as_str()).map_err(|e| {
                        handshake_error(format!("unreadable Engine.IO open packet: {e}"))
                    })?;
                }
                _ => return Err(handshake_error("expected the Engine.IO open packet")),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Binary(_))) => {
                return Err(handshake_error("expected the Engine.IO open packet"))
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(handshake_error(
                    "the server closed the connection before the open packet",
                ))
            }
            Some(Err(e)) => return Err(e.into()),
        }
    };
    let heartbeat = Duration::from_millis(handshake.ping_interval)
        .saturating_add(Duration::from_millis(handshake.ping_timeout));
    let namespace = &config.namespace;
    let connect = match &config.auth {
        Some(auth) => Packet::connect_with(namespace.clone(), auth).map_err(Error::Encode)?,
        None => Packet::connect(namespace.clone()),
    };
    for frame in frames(&connect) {
        ws.queue(frame)?;
    }
    let mut conn = Conn {
        ws,
        sid: Arc::from(""),
        heartbeat,
        deadline: Box::pin(tokio::time::sleep(heartbeat)),
    };
    // `recv` writes what is queued before it waits.
    let mut assembler = BinaryAssembler::with_max_attachments(config.max_attachments);
    loop {
        let message = tokio::select! {
            message = conn.ws.recv() => message,
            () = &mut conn.deadline => return Err(handshake_error("the server stopped pinging")),
        };
        let packet = match message {
            Some(Ok(Message::Text(text))) => match EioPacket::from_ws_text(text) {
                Ok(EioPacket::Ping(data)) => {
                    conn.ping_received();
                    conn.ws.queue(EioPacket::Pong(data).ws_frame().into())?;
                    continue;
                }
                Ok(EioPacket::Message(text)) => assembler.feed_text(text),
                Ok(EioPacket::Close) => {
                    return Err(handshake_error("the server closed the Engine.IO session"))
                }
                Ok(_) => continue,
                Err(e) => return Err(handshake_error(format!("bad Engine.IO packet: {e}"))),
            },
            Some(Ok(Message::Binary(data))) => assembler.feed_binary(data),
            Some(Ok(Message::Close(_))) | None => {
                return Err(handshake_error(
                    "the server closed the connection before the CONNECT reply",
                ))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        };
        let packet = match packet {
            Ok(Some(packet)) => packet,
            Ok(None) => continue,
            Err(e) => return Err(handshake_error(format!("bad Socket.IO packet: {e}"))),
        };
        if packet.namespace != *namespace {
            continue;
        }
        match packet.kind {
            PacketKind::Connect => {
                let reply: ConnectReply = packet
                    .payload_as()
                    .map_err(|e| handshake_error(format!("bad CONNECT reply: {e}")))?;
                conn.sid = Arc::from(reply.sid);
                return Ok(conn);
            }
            PacketKind::ConnectError => {
                let refusal = refusal(&packet);
                let _ = conn.ws.queue(EioPacket::Close.ws_frame().into());
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.ws.close(None)).await;
                return Err(refusal);
            }
            _ => {}
        }
    }
}

/// The error for a CONNECT_ERROR packet: `{"message":..., "data":...}`, or a
/// bare string.
fn refusal(packet: &Packet) -> Error {
    let value: serde_json::Value = packet.payload_as().unwrap_or_default();
    let (message, data) = match value {
        serde_json::Value::String(message) => (message, None),
        serde_json::Value::Object(mut obj) => {
            let message = match obj.remove("message") {
                Some(serde_json::Value::String(m)) => m,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (message, obj.remove("data"))
        }
        other => (other.to_string(), None),
    };
    Error::ConnectRefused { message, data }
}

/// How a connection ended.
enum End {
    /// Dropped: reconnect if enabled.
    Dropped(DisconnectReason),
    /// Over for good; answer the `disconnect` call, if any.
    Stopped(DisconnectReason, Option<oneshot::Sender<()>>),
}

/// What to do after an incoming message.
enum Flow {
    Continue,
    /// The server left the namespace: close and stop.
    ServerDisconnect,
    End(End),
}

/// The outcome of reconnecting.
enum Reconnect {
    Connected(Box<Conn>, u32),
    /// Disconnected by the user meanwhile.
    Stopped(Option<oneshot::Sender<()>>),
    /// Given up.
    Failed(Error),
}

/// The client's background task.
pub(crate) struct Task {
    config: Arc<Config>,
    shared: Arc<Shared>,
    pub(crate) callbacks: Callbacks,
    rx: mpsc::UnboundedReceiver<Command>,
    /// For [`AckSender`]s; weak so that dropping every handle ends the task.
    tx: mpsc::WeakUnboundedSender<Command>,
    /// Emits waiting for a connection.
    backlog: VecDeque<Command>,
    /// Counts connections; acknowledgements of server events belong to one.
    generation: u64,
    assembler: BinaryAssembler,
}

impl Task {
    pub(crate) fn new(
        config: Config,
        shared: Arc<Shared>,
        callbacks: Callbacks,
        rx: mpsc::UnboundedReceiver<Command>,
        tx: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        let assembler = BinaryAssembler::with_max_attachments(config.max_attachments);
        Self {
            config: Arc::new(config),
            shared,
            callbacks,
            rx,
            tx,
            backlog: VecDeque::new(),
            generation: 0,
            assembler,
        }
    }

    /// Serves connections until the client stops.
    pub(crate) async fn run(mut self, mut conn: Conn) {
        let done = loop {
            let end = self.serve(&mut conn).await;
            self.connection_lost();
            match end {
                End::Stopped(reason, done) => {
                    self.disconnected(reason);
                    break done;
                }
                End::Dropped(reason) => {
                    tracing::debug!(namespace = %self.shared.namespace, %reason, "connection lost");
                    self.disconnected(reason);
                    if !self.config.reconnection {
                        break None;
                    }
                    match self.reconnect().await {
                        Reconnect::Connected(new, attempts) => {
                            conn = *new;
                            *lock(&self.shared.sid) = Some(conn.sid.clone());
                            self.shared.reconnects.fetch_add(1, Ordering::AcqRel);
                            if let Some(cb) = &self.callbacks.reconnect {
                                cb(attempts);
                            }
                            if let Some(cb) = &self.callbacks.connect {
                                cb();
                            }
                        }
                        Reconnect::Stopped(done) => break done,
                        Reconnect::Failed(error) => {
                            tracing::debug!(namespace = %self.shared.namespace, %error, "reconnection failed");
                            if let Some(cb) = &self.callbacks.reconnect_failed {
                                cb(&error);
                            }
                            break None;
                        }
                    }
                }
            }
        };
        self.shutdown();
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn disconnected(&self, reason: DisconnectReason) {
        if let Some(cb) = &self.callbacks.disconnect {
            cb(reason);
        }
    }

    /// Forget the connection: its id, its half-received packet, and the
    /// acknowledgements it can no longer deliver.
    fn connection_lost(&mut self) {
        *lock(&self.shared.sid) = None;
        self.assembler.reset();
        self.generation += 1;
        // Dropping the senders fails the waiting `emit_with_ack` calls;
        // events still queued keep theirs.
        lock(&self.shared.acks).retain(|_, ack| ack.sent_in.is_none());
    }

    /// The client is done: refuse further commands and fail what waits.
    fn shutdown(&mut self) {
        *lock(&self.shared.sid) = None;
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        self.backlog.clear();
        lock(&self.shared.acks).clear();
    }

    /// Moves packets until the connection ends.
    async fn serve(&mut self, conn: &mut Conn) -> End {
        while let Some(command) = self.backlog.pop_front() {
            if let Some(end) = self.command(conn, command).await {
                return end;
            }
        }
        loop {
            tokio::select! {
                message = conn.ws.recv() => {
                    let flow = match message {
                        Some(Ok(Message::Text(text))) => self.on_text(conn, text),
                        Some(Ok(Message::Binary(data))) => {
                            let fed = self.assembler.feed_binary(data);
                            self.on_socketio(fed)
                        }
                        Some(Ok(Message::Close(_))) | None => {
                            Flow::End(End::Dropped(DisconnectReason::TransportClose))
                        }
                        Some(Ok(_)) => Flow::Continue,
                        Some(Err(_)) => Flow::End(End::Dropped(DisconnectReason::TransportError)),
                    };
                    match flow {
                        Flow::Continue => {}
                        Flow::ServerDisconnect => {
                            close(conn, None).await;
                            return End::Stopped(DisconnectReason::IoServerDisconnect, None);
                        }
                        Flow::End(end) => return end,
                    }
                }
                command = self.rx.recv() => {
                    let Some(command) = command else {
                        return self.leave(conn, None).await;
                    };
                    if let Some(end) = self.command(conn, command).await {
                        return end;
                    }
                    // Take what else is queued now: it goes out in one write.
                    for _ in 0..COMMAND_BATCH {
                        let Ok(command) = self.rx.try_recv() else { break };
                        if let Some(end) = self.command(conn, command).await {
                            return end;
                        }
                    }
                }
                () = &mut conn.deadline => {
                    return End::Dropped(DisconnectReason::PingTimeout);
                }
            }
        }
    }

    /// Carries out one command on the connection.
    async fn command(&mut self, conn: &mut Conn, command: Command) -> Option<End> {
        match command {
            Command::Send {
                frames,
                ack_id,
                generation,
            } => {
                if generation.is_some_and(|g| g != self.generation) {
                    // An acknowledgement for an earlier connection.
                    return None;
                }
                if let Some(id) = ack_id {
                    if let Some(ack) = lock(&self.shared.acks).get_mut(&id) {
                        ack.sent_in = Some(self.generation);
                    }
                }
                for frame in frames {
                    if conn.ws.queue(frame).is_err() {
                        return Some(End::Dropped(DisconnectReason::TransportError));
                    }
                }
                None
            }
            Command::Disconnect(done) => Some(self.leave(conn, Some(done)).await),
        }
    }

    /// Leaves the namespace and closes the connection.
    async fn leave(&mut self, conn: &mut Conn, done: Option<oneshot::Sender<()>>) -> End {
        let leave = Packet::disconnect(self.shared.namespace.clone());
        close(conn, Some(&leave)).await;
        End::Stopped(DisconnectReason::IoClientDisconnect, done)
    }

    fn on_text(&mut self, conn: &mut Conn, text: Utf8Bytes) -> Flow {
        match EioPacket::from_ws_text(text) {
            Ok(EioPacket::Ping(data)) => {
                conn.ping_received();
                match conn.ws.queue(EioPacket::Pong(data).ws_frame().into()) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::End(End::Dropped(DisconnectReason::TransportError)),
                }
            }
            Ok(EioPacket::Message(text)) => {
                let fed = self.assembler.feed_text(text);
                self.on_socketio(fed)
            }
            Ok(EioPacket::Close) => Flow::End(End::Dropped(DisconnectReason::TransportClose)),
            Ok(_) => Flow::Continue,
            Err(_) => Flow::End(End::Dropped(DisconnectReason::ParseError)),
        }
    }

    fn on_socketio(&self, fed: Result<Option<Packet>, socketio_proto::Error>) -> Flow {
        let packet = match fed {
            Ok(Some(packet)) => packet,
            Ok(None) => return Flow::Continue,
            Err(_) => return Flow::End(End::Dropped(DisconnectReason::ParseError)),
        };
        if packet.namespace != self.shared.namespace {
            return Flow::Continue;
        }
        match packet.kind {
            PacketKind::Event | PacketKind::BinaryEvent => self.on_event(packet),
            PacketKind::Ack | PacketKind::BinaryAck => self.on_ack(packet),
            PacketKind::Disconnect => return Flow::ServerDisconnect,
            PacketKind::Connect | PacketKind::ConnectError => {}
        }
        Flow::Continue
    }

    fn on_event(&self, packet: Packet) {
        let Ok(name) = packet.event_name() else {
            return;
        };
        let Some(handler) = self.shared.handler(&name) else {
            return;
        };
        let Ok(args) = packet.args_values() else {
            return;
        };
        let ack = packet.ack_id.and_then(|id| {
            let tx = self.tx.upgrade()?;
            Some(AckSender::new(
                tx,
                self.shared.namespace.clone(),
                id,
                self.generation,
            ))
        });
        handler(
            Data {
                args,
                binary: packet.attachments,
            },
            ack,
        );
    }

    fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.ack_id else { return };
        let Some(ack) = lock(&self.shared.acks).remove(&id) else {
            return;
        };
        let args = packet.args_values().unwrap_or_default();
        let _ = ack.tx.send(Data {
            args,
            binary: packet.attachments,
        });
    }

    /// Retries with backoff (waiting before each attempt) until connected,
    /// stopped or out of attempts. Emits made meanwhile are kept for the new
    /// connection.
    async fn reconnect(&mut self) -> Reconnect {
        let mut attempt: u32 = 0;
        let mut last_error = Error::Disconnected;
        loop {
            if self.config.max_attempts.is_some_and(|max| attempt >= max) {
                return Reconnect::Failed(last_error);
            }
            let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            if let Err(done) = self.queueing(tokio::time::sleep(delay)).await {
                return Reconnect::Stopped(done);
            }
            let config = self.config.clone();
            match self.queueing(async move { establish(&config).await }).await {
                Err(done) => return Reconnect::Stopped(done),
                Ok(Ok(conn)) => return Reconnect::Connected(Box::new(conn), attempt),
                Ok(Err(error @ Error::ConnectRefused { .. })) => return Reconnect::Failed(error),
                Ok(Err(error)) => {
                    tracing::debug!(namespace = %self.shared.namespace, attempt, %error, "reconnection attempt failed");
                    last_error = error;
                }
            }
        }
    }

    /// Runs `fut` while keeping emits for later; `Err` if the client was
    /// disconnected meanwhile.
    async fn queueing<F: Future>(
        &mut self,
        fut: F,
    ) -> Result<F::Output, Option<oneshot::Sender<()>>> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                output = &mut fut => return Ok(output),
                command = self.rx.recv() => match command {
                    // Acknowledgements belong to the lost connection.
                    Some(Command::Send { generation: Some(_), .. }) => {}
                    Some(command @ Command::Send { .. }) => self.backlog.push_back(command),
                    Some(Command::Disconnect(done)) => return Err(Some(done)),
                    None => return Err(None),
                },
            }
        }
    }
}

impl Drop for Task {
    /// Also on a panic in a handler: the client must not look connected,
    /// and nobody must wait for an acknowledgement that cannot come.
    fn drop(&mut self) {
        *lock(&self.shared.sid) = None;
        lock(&self.shared.acks).clear();
    }
}

/// Closes a connection gracefully: `packet` (if any) and the Engine.IO close
/// packet, then the WebSocket closing handshake, bounded in time.
async fn close(conn: &mut Conn, packet: Option<&Packet>) {
    if let Some(packet) = packet {
        for frame in frames(packet) {
            let _ = conn.ws.queue(frame);
        }
    }
    let _ = conn.ws.queue(EioPacket::Close.ws_frame().into());
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.ws.close(None)).await;
}
