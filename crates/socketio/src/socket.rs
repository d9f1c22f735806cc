//! One socket: a client's connection to one namespace. Events in and out,
//! acknowledgements both ways, rooms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use socketio_proto::{Packet, PacketKind};
use tokio::sync::oneshot;

use crate::adapter::BroadcastOptions;
use crate::broadcast::BroadcastOperator;
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::namespace::Namespace;
use crate::sync::{lock, read, write};

/// An event's arguments: JSON values (binary arguments appear as
/// `{"_placeholder":true,"num":N}`) and the binary attachments they point to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    /// The arguments after the event name.
    pub args: Vec<serde_json::Value>,
    /// Binary attachments, indexed by the placeholders' `num`.
    pub binary: Vec<Bytes>,
}

type EventHandler = Arc<dyn Fn(Socket, Data, Option<AckSender>) + Send + Sync>;

/// Hashes event names for the handler table with FNV-1a: a few
/// instructions for a short name where SipHash takes a hundred, and no
/// per-map keys. Flooding is no concern: the table holds only the names the
/// server registered; clients merely look names up.
pub(crate) type NameHash = std::hash::BuildHasherDefault<Fnv1a>;

/// The FNV-1a hash state (64-bit).
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
type AnyHandler = Arc<dyn Fn(Socket, &str, Data, Option<AckSender>) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, DisconnectReason) + Send + Sync>;

pub(crate) struct SocketInner {
    id: Arc<str>,
    pub(crate) ns: Arc<Namespace>,
    pub(crate) engine: engineio::Socket,
    auth: Auth,
    handlers: RwLock<HashMap<Box<str>, EventHandler, NameHash>>,
    /// Called for events without a handler of their own.
    any: RwLock<Option<AnyHandler>>,
    on_disconnect: Mutex<Option<DisconnectHandler>>,
    /// By ack id: ids are the namespace's counter, so the quick hash
    /// serves (and the map is 16 bytes smaller than with a random state).
    acks: Mutex<HashMap<u64, oneshot::Sender<Data>, NameHash>>,
    connected: AtomicBool,
    /// Set once the namespace's connect handler has run. Until then the
    /// events and acks the client sends wait in `early`: the client may
    /// send as soon as it sees CONNECT, possibly before `on_connect` has
    /// registered the handlers (async middleware runs on another task).
    ready: AtomicBool,
    early: Mutex<Vec<Packet>>,
    /// Private session id, when connection state recovery is on.
    pid: Option<Arc<str>>,
    recovered: bool,
}

/// The CONNECT payload, kept as JSON text: parsed, even a one-field object
/// (the `token` most clients send) takes a whole B-tree node of over 600
/// bytes for the socket's life. Parsed on the first [`Socket::auth`].
struct Auth {
    json: Box<str>,
    /// Boxed: rarely asked for, and a `Value` is 32 bytes inline.
    parsed: std::sync::OnceLock<Box<serde_json::Value>>,
}

impl Auth {
    fn new(value: &serde_json::Value) -> Self {
        let json = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
        Self {
            json: json.into_boxed_str(),
            parsed: std::sync::OnceLock::new(),
        }
    }

    fn value(&self) -> &serde_json::Value {
        self.parsed.get_or_init(|| {
            Box::new(serde_json::from_str(&self.json).unwrap_or_else(|_| serde_json::json!({})))
        })
    }
}

/// A client's connection to one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.id)
            .field("namespace", &self.0.ns.name.as_str())
            .finish_non_exhaustive()
    }
}

/// Answers an event the client sent with an acknowledgement callback.
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Acknowledges with `args` (a tuple, slice or `Vec` of arguments).
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), EmitError> {
        // The whole WebSocket frame in one buffer: room for the header,
        // the Engine.IO message type `4`, then the ACK.
        let room = engineio::SharedFrame::HEADER_ROOM;
        let mut buf = Vec::with_capacity(room + 64);
        buf.resize(room, 0);
        buf.push(b'4');
        Packet::write_ack(&mut buf, &self.socket.0.ns.name, self.id, args)
            .map_err(|e| EmitError::Encode(e.to_string()))?;
        let frame = engineio::SharedFrame::text_in_place(buf)
            .map_err(|e| EmitError::Encode(e.to_string()))?;
        self.socket.send_frame(frame)
    }

    /// Acknowledges with arguments holding placeholders for `binary`.
    pub fn send_binary<T: Serialize + ?Sized>(
        self,
        args: &T,
        binary: Vec<Bytes>,
    ) -> Result<(), EmitError> {
        // Without attachments this is a plain ACK.
        let packet = Packet::binary_ack(self.socket.0.ns.name.clone(), self.id, args, binary)
            .map_err(|e| EmitError::Encode(e.to_string()))?;
        self.socket.send_packet(&packet)
    }
}

/// Engine.IO frames of one encoded packet: the text, then each attachment.
pub(crate) fn frames(packet: &Packet) -> Vec<engineio::SharedFrame> {
    // The Engine.IO message prefix and the packet in one buffer.
    let mut text = String::with_capacity(1 + packet.encoded_len());
    text.push('4');
    packet.encode_into(&mut text);
    let attachments = if packet.wire_kind().is_binary() {
        packet.attachments.as_slice()
    } else {
        &[]
    };
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(engineio::SharedFrame::text(text));
    frames.extend(attachments.iter().map(engineio::binary_frame));
    frames
}

impl Socket {
    pub(crate) fn new(
        ns: Arc<Namespace>,
        engine: engineio::Socket,
        auth: serde_json::Value,
    ) -> Self {
        let pid = ns
            .recovery
            .as_ref()
            .map(|_| Arc::from(random_id().as_str()));
        let id = Arc::from(random_id().as_str());
        Self::with_identity(ns, engine, auth, id, pid, false)
    }

    /// A socket with a given id and pid (a recovered session's).
    pub(crate) fn with_identity(
        ns: Arc<Namespace>,
        engine: engineio::Socket,
        auth: serde_json::Value,
        id: Arc<str>,
        pid: Option<Arc<str>>,
        recovered: bool,
    ) -> Self {
        Socket(Arc::new(SocketInner {
            id,
            ns,
            engine,
            auth: Auth::new(&auth),
            handlers: RwLock::new(HashMap::default()),
            any: RwLock::new(None),
            on_disconnect: Mutex::new(None),
            acks: Mutex::new(HashMap::default()),
            connected: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            early: Mutex::new(Vec::new()),
            pid,
            recovered,
        }))
    }

    /// Whether this socket recovered a dropped session (same id, rooms,
    /// and the events it missed were replayed).
    pub fn recovered(&self) -> bool {
        self.0.recovered
    }

    pub(crate) fn pid(&self) -> Option<&Arc<str>> {
        self.0.pid.as_ref()
    }

    /// The socket id (distinct from the Engine.IO session id).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The socket id, shared: for keeping it without a copy of its own.
    pub fn id_arc(&self) -> Arc<str> {
        self.0.id.clone()
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        self.0.ns.name.as_str()
    }

    /// The `auth` payload the client connected with (`{}` if none, as in
    /// the reference server).
    pub fn auth(&self) -> &serde_json::Value {
        self.0.auth.value()
    }

    /// The `auth` payload as JSON text (`{}` if none). Reading a field from
    /// it does not keep a parsed copy for the socket's life, as
    /// [`Socket::auth`] does.
    pub fn auth_json(&self) -> &str {
        &self.0.auth.json
    }

    /// The HTTP request that opened the connection (query, headers).
    pub fn handshake(&self) -> http::request::Parts {
        self.0.engine.request()
    }

    /// The underlying Engine.IO session.
    pub fn engine(&self) -> &engineio::Socket {
        &self.0.engine
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// Registers the handler for `event`; it replaces an earlier one. The
    /// handler runs on the connection's task: spawn for slow work.
    pub fn on<F>(&self, event: &str, handler: F)
    where
        F: Fn(Socket, Data, Option<AckSender>) + Send + Sync + 'static,
    {
        write(&self.0.handlers).insert(event.into(), Arc::new(handler));
    }

    /// Registers the handler for every event that has no handler of its own
    /// (given the event's name); it replaces an earlier one. One catch-all
    /// costs less memory per socket than many handlers, and lets a server
    /// answer unknown events instead of ignoring them.
    pub fn on_any<F>(&self, handler: F)
    where
        F: Fn(Socket, &str, Data, Option<AckSender>) + Send + Sync + 'static,
    {
        *write(&self.0.any) = Some(Arc::new(handler));
    }

    /// Registers the handler called once when the socket disconnects.
    pub fn on_disconnect<F>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) + Send + Sync + 'static,
    {
        *lock(&self.0.on_disconnect) = Some(Arc::new(handler));
    }

    /// Emits `event` with `args` (a tuple, slice or `Vec`).
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits `event` with arguments holding placeholders for `binary`.
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<Bytes>,
    ) -> Result<(), EmitError> {
        // With recovery on, events to one socket carry an offset and are
        // logged like broadcasts to the socket's own room, so a recovered
        // socket gets them back too (as the reference server does).
        let opts = BroadcastOptions {
            rooms: vec![self.id_arc()],
            ..BroadcastOptions::default()
        };
        let frames = self.0.ns.event_frames(event, args, binary, &opts)?;
        self.send_frames(&frames)
    }

    /// Emits `event` and waits up to `timeout` for the client's
    /// acknowledgement.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        let id = self.0.ns.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = Packet::event(self.0.ns.name.clone(), event, args, Some(id))
            .map_err(|e| AckError::Encode(e.to_string()))?;
        let rx = self.expect_ack(id);
        if self.send_packet(&packet).is_err() {
            lock(&self.0.acks).remove(&id);
            return Err(AckError::Disconnected);
        }
        self.wait_ack(id, rx, timeout).await
    }

    pub(crate) fn expect_ack(&self, id: u64) -> oneshot::Receiver<Data> {
        let (tx, rx) = oneshot::channel();
        lock(&self.0.acks).insert(id, tx);
        rx
    }

    pub(crate) async fn wait_ack(
        &self,
        id: u64,
        rx: oneshot::Receiver<Data>,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                lock(&self.0.acks).remove(&id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Joins `room`.
    pub fn join(&self, room: &str) {
        self.0.ns.adapter.join(&self.id_arc(), &Arc::from(room));
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.0.ns.adapter.leave(self.id(), room);
    }

    /// The rooms the socket is in (its own id among them).
    pub fn rooms(&self) -> Vec<String> {
        self.0
            .ns
            .adapter
            .rooms_of(self.id())
            .iter()
            .map(|r| r.to_string())
            .collect()
    }

    /// Everyone in the namespace but this socket.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.0.ns.clone()).except_id(self.id_arc())
    }

    /// Sockets in `room`, except this one.
    pub fn to(&self, room: &str) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Disconnects the socket from its namespace (the client gets a
    /// DISCONNECT packet).
    pub fn disconnect(&self) {
        if self.connected() {
            let _ = self.send_packet(&Packet::disconnect(self.0.ns.name.clone()));
            self.closed(DisconnectReason::ServerNamespaceDisconnect);
        }
    }

    pub(crate) fn send_packet(&self, packet: &Packet) -> Result<(), EmitError> {
        // The frames are this packet's alone: moved, not cloned.
        for frame in frames(packet) {
            self.send_frame(frame)?;
        }
        Ok(())
    }

    fn send_frame(&self, frame: engineio::SharedFrame) -> Result<(), EmitError> {
        if self.0.engine.send(frame) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    pub(crate) fn send_frames(&self, frames: &[engineio::SharedFrame]) -> Result<(), EmitError> {
        for frame in frames {
            if !self.0.engine.send(frame.clone()) {
                return Err(EmitError::Disconnected);
            }
        }
        Ok(())
    }

    pub(crate) fn set_connected(&self) {
        self.0.connected.store(true, Ordering::Release);
    }

    /// An event arrived from the client.
    /// An event or ack from the client: handled now, or held until the
    /// connect handler has run.
    pub(crate) fn receive(&self, packet: Packet) {
        if !self.0.ready.load(Ordering::Acquire) {
            let mut early = lock(&self.0.early);
            // Checked again under the lock: `release_early` sets `ready`
            // while holding it, so nothing is pushed after the last drain.
            if !self.0.ready.load(Ordering::Acquire) {
                early.push(packet);
                return;
            }
        }
        self.handle(packet);
    }

    /// Called after the connect handler: handles what arrived meanwhile, in
    /// order, then lets packets through directly.
    pub(crate) fn release_early(&self) {
        loop {
            let batch = {
                let mut early = lock(&self.0.early);
                if early.is_empty() {
                    self.0.ready.store(true, Ordering::Release);
                    *early = Vec::new();
                    return;
                }
                std::mem::take(&mut *early)
            };
            for packet in batch {
                self.handle(packet);
            }
        }
    }

    fn handle(&self, packet: Packet) {
        match packet.kind {
            PacketKind::Ack | PacketKind::BinaryAck => self.on_ack(packet),
            _ => self.on_event(packet),
        }
    }

    fn on_event(&self, packet: Packet) {
        // The payload is looked at once for the name and the arguments.
        let Ok(event) = packet.event_view() else {
            return;
        };
        let Ok(name) = event.name() else {
            return;
        };
        let handler = read(&self.0.handlers).get(name.as_ref()).cloned();
        let any = match handler {
            Some(_) => None,
            // The name is borrowed from the packet, whose attachments move
            // into the data below: the catch-all gets its own copy.
            None => match read(&self.0.any).clone() {
                Some(any) => Some((any, name.into_owned())),
                None => return,
            },
        };
        let args = match event.args_values() {
            Ok(args) => args,
            Err(_) => return,
        };
        let ack = packet.ack_id.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        let data = Data {
            args,
            binary: packet.attachments,
        };
        match (handler, any) {
            (Some(handler), _) => handler(self.clone(), data, ack),
            (None, Some((any, name))) => any(self.clone(), &name, data, ack),
            (None, None) => {}
        }
    }

    /// An acknowledgement arrived from the client.
    fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.ack_id else { return };
        let Some(tx) = lock(&self.0.acks).remove(&id) else {
            return;
        };
        let args = packet.args_values().unwrap_or_default();
        let _ = tx.send(Data {
            args,
            binary: packet.attachments,
        });
    }

    /// Ends the socket: leave every room, forget it, tell the handler.
    pub(crate) fn closed(&self, reason: DisconnectReason) {
        if !self.0.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let rooms = self.0.ns.adapter.leave_all(self.id());
        if let (Some(pid), true) = (&self.0.pid, crate::adapter::recoverable(reason)) {
            self.0
                .ns
                .adapter
                .save_session(pid.clone(), self.id_arc(), rooms);
        }
        self.0.ns.remove(self.id());
        lock(&self.0.acks).clear();
        let handler = lock(&self.0.on_disconnect).take();
        if let Some(handler) = handler {
            handler(self.clone(), reason);
        }
        // Drop handlers: they may hold clones of this socket.
        write(&self.0.handlers).clear();
        write(&self.0.any).take();
    }
}

/// A fresh random id (the same form as Engine.IO's).
fn random_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod auth_tests {
    use super::Auth;
    use serde_json::json;

    #[test]
    fn auth_kept_as_text_and_parsed_on_demand() {
        let auth = Auth::new(&json!({"token": "abc", "n": 1}));
        assert!(auth.parsed.get().is_none());
        let back: serde_json::Value = serde_json::from_str(&auth.json).unwrap();
        assert_eq!(back, json!({"token": "abc", "n": 1}));
        assert_eq!(auth.value(), &json!({"token": "abc", "n": 1}));
        assert_eq!(&*Auth::new(&json!({})).json, "{}");
    }
}
