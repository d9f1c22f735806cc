//! The adapter: where room membership lives and how operations on many
//! sockets reach them.
//!
//! Every operation that selects sockets by room — broadcasts (with or
//! without acks), `fetchSockets`, `socketsJoin`/`socketsLeave`,
//! `disconnectSockets`, `serverSideEmit` — and the state that connection
//! recovery needs (the event log and dropped sessions) goes through the
//! [`Adapter`] trait. [`LocalAdapter`] keeps it all in memory for one node;
//! an adapter for several nodes implements the same trait, forwarding what
//! other nodes must do and calling back into [`LocalNamespace`] for what
//! this node must do. Operations whose answer may come from other nodes
//! return futures. An adapter learns its namespace through
//! [`Adapter::init`], so it can act on local sockets when a message from
//! another node arrives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use socketio_proto::Packet;

use crate::config::RecoveryConfig;
use crate::error::{AckError, AdapterError, DisconnectReason, EmitError};
use crate::namespace::Namespace;
use crate::recovery::{Recovery, Restored};
use crate::socket::{frames, Data};
use crate::sync::{read, write};
use crate::Socket;

/// A room name.
pub type Room = Arc<str>;

/// A socket id.
pub type SocketId = Arc<str>;

/// A boxed future, as adapter operations that may span nodes return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which sockets an operation applies to: those in any of `rooms` (all if
/// empty), minus those in `except` and the socket `except_id`.
#[derive(Debug, Clone, Default)]
pub struct BroadcastOptions {
    /// Target rooms; empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Rooms whose sockets are left out.
    pub except: Vec<Room>,
    /// A socket left out (the sender of a `socket.broadcast`).
    pub except_id: Option<SocketId>,
    /// This node only.
    pub local: bool,
    /// The event may be dropped for sockets that are not ready; it is not
    /// logged for recovery.
    pub volatile: bool,
}

impl BroadcastOptions {
    /// Whether a socket with `id`, member of `rooms`, is selected.
    pub fn selects(&self, id: &str, rooms: &HashSet<Room>) -> bool {
        if self.except_id.as_deref() == Some(id) || self.except.iter().any(|r| rooms.contains(r)) {
            return false;
        }
        self.rooms.is_empty() || self.rooms.iter().any(|r| rooms.contains(r))
    }
}

/// What `fetchSockets` tells about a socket, whichever node it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketData {
    /// The socket id.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// The rooms it is in (its own id among them).
    pub rooms: Vec<String>,
    /// The `auth` payload it connected with.
    pub auth: serde_json::Value,
    /// The HTTP request that opened its connection.
    pub handshake: HandshakeData,
}

/// The parts of a socket's opening HTTP request that travel between nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandshakeData {
    /// Path and query of the request.
    pub url: String,
    /// Its headers (values that are not UTF-8 are left out).
    pub headers: BTreeMap<String, String>,
    /// The peer address, when the server recorded it.
    pub address: Option<String>,
}

/// An event sent to many sockets that each acknowledge it.
#[derive(Debug, Clone)]
pub struct AckRequest {
    /// The event name.
    pub event: String,
    /// Its arguments: a JSON array, with placeholders for `binary`.
    pub args: serde_json::Value,
    /// Binary attachments.
    pub binary: Vec<Bytes>,
    /// How long each socket has to acknowledge.
    pub timeout: Duration,
}

/// This node's sockets of one namespace, as an adapter reaches them.
#[derive(Clone)]
pub struct LocalNamespace(pub(crate) Weak<Namespace>);

impl std::fmt::Debug for LocalNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LocalNamespace").finish()
    }
}

impl LocalNamespace {
    /// The local socket `id`.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        self.0.upgrade()?.socket(id)
    }

    /// Queues `frames` on each listed local socket; returns how many took
    /// them. Volatile frames are dropped for sockets with a backlog.
    pub fn deliver(
        &self,
        ids: &[SocketId],
        frames: &[engineio::SharedFrame],
        volatile: bool,
    ) -> usize {
        ids.iter()
            .filter_map(|id| self.socket(id))
            .filter(|s| {
                if volatile {
                    frames.iter().all(|f| s.engine().send_volatile(f.clone()))
                } else {
                    s.send_frames(frames).is_ok()
                }
            })
            .count()
    }

    /// The namespace's name (`None` once the namespace is gone).
    pub fn name(&self) -> Option<String> {
        Some(self.0.upgrade()?.name.as_str().to_owned())
    }

    /// What `fetchSockets` reports about the local socket `id`.
    pub fn socket_data(&self, id: &str) -> Option<SocketData> {
        let socket = self.socket(id)?;
        let request = socket.handshake();
        let headers = request
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        Some(SocketData {
            id: socket.id().to_owned(),
            namespace: socket.namespace().to_owned(),
            rooms: socket.rooms(),
            auth: socket.auth().clone(),
            handshake: HandshakeData {
                url: request.uri.to_string(),
                headers,
                address: request
                    .extensions
                    .get::<std::net::SocketAddr>()
                    .map(|a| a.to_string()),
            },
        })
    }

    /// Emits `request` to each listed local socket with one ack id and
    /// collects every acknowledgement (or its error) within the timeout.
    pub fn emit_with_ack(
        &self,
        ids: &[SocketId],
        request: &AckRequest,
    ) -> BoxFuture<'static, Vec<Result<Data, AckError>>> {
        let Some(ns) = self.0.upgrade() else {
            return Box::pin(std::future::ready(Vec::new()));
        };
        let sockets: Vec<Socket> = ids.iter().filter_map(|id| ns.socket(id)).collect();
        let id = ns.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = Packet::binary_event(
            ns.name.clone(),
            &request.event,
            &request.args,
            request.binary.clone(),
            Some(id),
        );
        let frames = match packet {
            Ok(packet) => frames(&packet),
            Err(e) => {
                let err = AckError::Encode(e.to_string());
                return Box::pin(std::future::ready(
                    sockets.iter().map(|_| Err(err.clone())).collect(),
                ));
            }
        };
        let timeout = request.timeout;
        let handles: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                let rx = socket.expect_ack(id);
                let sent = socket.send_frames(&frames).is_ok();
                tokio::spawn(async move {
                    if !sent {
                        return Err(AckError::Disconnected);
                    }
                    socket.wait_ack(id, rx, timeout).await
                })
            })
            .collect();
        Box::pin(async move {
            let mut results = Vec::with_capacity(handles.len());
            for handle in handles {
                results.push(handle.await.unwrap_or(Err(AckError::Disconnected)));
            }
            results
        })
    }

    /// Runs this node's handler for a server-side event another node sent
    /// (`serverSideEmit`); returns whether there was one.
    pub fn server_event(&self, event: &str, args: Vec<serde_json::Value>) -> bool {
        let Some(ns) = self.0.upgrade() else {
            return false;
        };
        let handler = read(&ns.template.server_events).get(event).cloned();
        match handler {
            Some(handler) => {
                handler(args);
                true
            }
            None => false,
        }
    }
}

/// Room membership and many-socket operations for one namespace. See the
/// module docs.
pub trait Adapter: Send + Sync + 'static {
    /// Called once, when the namespace this adapter serves is created: the
    /// handle an adapter spanning several nodes keeps to act on local
    /// sockets when other nodes ask.
    fn init(&self, _ns: LocalNamespace) {}

    /// Adds socket `id` to `room`.
    fn join(&self, id: &SocketId, room: &Room);
    /// Removes socket `id` from `room`.
    fn leave(&self, id: &str, room: &str);
    /// Removes socket `id` from every room; returns the rooms it was in.
    fn leave_all(&self, id: &str) -> Vec<Room>;
    /// The rooms socket `id` is in.
    fn rooms_of(&self, id: &str) -> Vec<Room>;
    /// This node's sockets selected by `opts`.
    fn select_local(&self, opts: &BroadcastOptions) -> Vec<SocketId>;

    /// Delivers encoded frames to every selected socket (of every node,
    /// unless `opts.local`); returns how many local sockets took them.
    fn broadcast(
        &self,
        ns: &LocalNamespace,
        frames: &[engineio::SharedFrame],
        opts: &BroadcastOptions,
    ) -> usize {
        ns.deliver(&self.select_local(opts), frames, opts.volatile)
    }

    /// Emits an event to every selected socket (of every node, unless
    /// `opts.local`) and collects each acknowledgement within
    /// `request.timeout`.
    fn broadcast_with_ack(
        &self,
        ns: &LocalNamespace,
        request: AckRequest,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<Result<Data, AckError>>, AdapterError>> {
        let local = ns.emit_with_ack(&self.select_local(opts), &request);
        Box::pin(async move { Ok(local.await) })
    }

    /// What is known about the selected sockets, of every node (unless
    /// `opts.local`). The in-memory adapter returns this node's.
    fn fetch_sockets(
        &self,
        ns: &LocalNamespace,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketData>, AdapterError>> {
        let sockets = self
            .select_local(opts)
            .iter()
            .filter_map(|id| ns.socket_data(id))
            .collect();
        Box::pin(std::future::ready(Ok(sockets)))
    }

    /// Makes the selected sockets (of every node) join `rooms`.
    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.select_local(opts) {
            for room in rooms {
                self.join(&id, room);
            }
        }
    }

    /// Makes the selected sockets (of every node) leave `rooms`.
    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.select_local(opts) {
            for room in rooms {
                self.leave(&id, room);
            }
        }
    }

    /// Disconnects the selected sockets (of every node).
    fn disconnect_sockets(&self, ns: &LocalNamespace, opts: &BroadcastOptions) {
        for socket in self
            .select_local(opts)
            .iter()
            .filter_map(|id| ns.socket(id))
        {
            socket.disconnect();
        }
    }

    /// Sends an event to the other nodes' servers (not to clients); returns
    /// how many nodes it reached. One node has no one to tell.
    fn server_side_emit(
        &self,
        _event: &str,
        _args: serde_json::Value,
    ) -> BoxFuture<'static, Result<usize, EmitError>> {
        Box::pin(std::future::ready(Ok(0)))
    }

    /// A new recovery offset, or `None` when recovery is off.
    fn next_offset(&self) -> Option<u64>;
    /// Logs an event sent with `offset` to the sockets `opts` selects.
    fn log_for_recovery(
        &self,
        offset: u64,
        opts: &BroadcastOptions,
        frames: &[engineio::SharedFrame],
    );
    /// Keeps a dropped socket's id and rooms under `pid`.
    fn save_session(&self, pid: Arc<str>, id: SocketId, rooms: Vec<Room>);
    /// Takes back session `pid` with the events sent after `offset`, if
    /// nothing was lost.
    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>>;
}

/// The in-memory adapter of a single node (the default).
#[derive(Default)]
pub struct LocalAdapter {
    rooms: RwLock<HashMap<Room, HashSet<SocketId>>>,
    sockets: RwLock<HashMap<SocketId, HashSet<Room>>>,
    recovery: Option<Recovery>,
}

impl std::fmt::Debug for LocalAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAdapter")
            .field("rooms", &read(&self.rooms).len())
            .field("sockets", &read(&self.sockets).len())
            .finish_non_exhaustive()
    }
}

impl LocalAdapter {
    /// An empty adapter; `recovery` turns on the event log and session
    /// store that connection state recovery needs.
    pub fn new(recovery: Option<RecoveryConfig>) -> Self {
        Self {
            recovery: recovery.map(Recovery::new),
            ..Self::default()
        }
    }
}

impl Adapter for LocalAdapter {
    fn join(&self, id: &SocketId, room: &Room) {
        // A socket's own room is implied by its entry in `sockets`: not
        // indexing it saves two sets per socket.
        let mut sockets = write(&self.sockets);
        let joined = sockets.entry(id.clone()).or_default();
        if room == id {
            return;
        }
        joined.insert(room.clone());
        drop(sockets);
        write(&self.rooms)
            .entry(room.clone())
            .or_default()
            .insert(id.clone());
    }

    fn leave(&self, id: &str, room: &str) {
        let mut rooms = write(&self.rooms);
        if let Some(members) = rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
        drop(rooms);
        if let Some(joined) = write(&self.sockets).get_mut(id) {
            joined.remove(room);
        }
    }

    fn leave_all(&self, id: &str) -> Vec<Room> {
        let Some((own, joined)) = write(&self.sockets).remove_entry(id) else {
            return Vec::new();
        };
        let mut rooms = write(&self.rooms);
        for room in &joined {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(id);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
        std::iter::once(own).chain(joined).collect()
    }

    fn rooms_of(&self, id: &str) -> Vec<Room> {
        read(&self.sockets)
            .get_key_value(id)
            .map(|(own, joined)| {
                std::iter::once(own.clone())
                    .chain(joined.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn select_local(&self, opts: &BroadcastOptions) -> Vec<SocketId> {
        let rooms = read(&self.rooms);
        let sockets = read(&self.sockets);
        // Members of a room; a socket id names the socket's own room.
        let members = |room: &Room| -> Vec<&SocketId> {
            match rooms.get(room) {
                Some(members) => members.iter().collect(),
                None => sockets
                    .get_key_value(room)
                    .map(|(id, _)| id)
                    .into_iter()
                    .collect(),
            }
        };
        let excluded: HashSet<&str> = opts
            .except
            .iter()
            .flat_map(&members)
            .map(|id| &**id)
            .chain(opts.except_id.as_deref())
            .collect();
        if opts.rooms.is_empty() {
            sockets
                .keys()
                .filter(|id| !excluded.contains(&***id))
                .cloned()
                .collect()
        } else if let [room] = opts.rooms.as_slice() {
            // One room: its members are distinct already, no need to track
            // which were seen (hashing every id of a large room).
            members(room)
                .into_iter()
                .filter(|id| !excluded.contains(&***id))
                .cloned()
                .collect()
        } else {
            let mut seen = HashSet::new();
            opts.rooms
                .iter()
                .flat_map(&members)
                .filter(|id| !excluded.contains(&***id) && seen.insert(Arc::clone(id)))
                .cloned()
                .collect()
        }
    }

    fn next_offset(&self) -> Option<u64> {
        self.recovery.as_ref().map(Recovery::next_offset)
    }

    fn log_for_recovery(
        &self,
        offset: u64,
        opts: &BroadcastOptions,
        frames: &[engineio::SharedFrame],
    ) {
        if let Some(recovery) = &self.recovery {
            recovery.log(offset, opts.clone(), frames.to_vec());
        }
    }

    fn save_session(&self, pid: Arc<str>, id: SocketId, rooms: Vec<Room>) {
        if let Some(recovery) = &self.recovery {
            recovery.save(pid, id, rooms);
        }
    }

    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>> {
        let restored = self.recovery.as_ref().and_then(|r| r.restore(pid, offset));
        Box::pin(std::future::ready(restored))
    }
}

/// Builds the adapter of each namespace (by name) when it is created.
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;

/// Reason helper shared with sockets.
pub(crate) fn recoverable(reason: DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::PingTimeout
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(mut v: Vec<SocketId>) -> Vec<String> {
        v.sort();
        v.iter().map(|s| s.to_string()).collect()
    }

    fn arc(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn selects_by_rooms_and_exceptions() {
        let a = LocalAdapter::new(None);
        for (id, rooms) in [
            ("s1", &["red", "blue"][..]),
            ("s2", &["blue"][..]),
            ("s3", &[][..]),
        ] {
            a.join(&arc(id), &arc(id));
            for r in rooms {
                a.join(&arc(id), &arc(r));
            }
        }
        let all = BroadcastOptions::default();
        assert_eq!(ids(a.select_local(&all)), ["s1", "s2", "s3"]);
        let blue = BroadcastOptions {
            rooms: vec![arc("blue")],
            ..Default::default()
        };
        assert_eq!(ids(a.select_local(&blue)), ["s1", "s2"]);
        let blue_not_red = BroadcastOptions {
            except: vec![arc("red")],
            ..blue.clone()
        };
        assert_eq!(ids(a.select_local(&blue_not_red)), ["s2"]);
        let not_sender = BroadcastOptions {
            except_id: Some(arc("s2")),
            ..blue
        };
        assert_eq!(ids(a.select_local(&not_sender)), ["s1"]);
        let either = BroadcastOptions {
            rooms: vec![arc("red"), arc("blue")],
            ..Default::default()
        };
        assert_eq!(ids(a.select_local(&either)), ["s1", "s2"], "no duplicates");
    }

    #[test]
    fn leave_all_forgets_the_socket_and_empty_rooms() {
        let a = LocalAdapter::new(None);
        a.join(&arc("s1"), &arc("red"));
        a.join(&arc("s1"), &arc("s1"));
        let mut left = a.leave_all("s1");
        left.sort();
        assert_eq!(left, [arc("red"), arc("s1")]);
        assert!(a.rooms_of("s1").is_empty());
        assert!(read(&a.rooms).is_empty());
        assert!(a.select_local(&BroadcastOptions::default()).is_empty());
    }

    #[test]
    fn recovery_replays_only_what_the_session_missed() {
        let a = LocalAdapter::new(Some(RecoveryConfig::default()));
        let frame = |t: &str| vec![engineio::SharedFrame::text(t)];
        let red = BroadcastOptions {
            rooms: vec![arc("red")],
            ..Default::default()
        };
        let blue = BroadcastOptions {
            rooms: vec![arc("blue")],
            ..Default::default()
        };
        let o1 = a.next_offset().unwrap();
        a.log_for_recovery(o1, &red, &frame("seen"));
        a.save_session(arc("pid"), arc("s1"), vec![arc("red"), arc("s1")]);
        let o2 = a.next_offset().unwrap();
        a.log_for_recovery(o2, &red, &frame("missed"));
        let o3 = a.next_offset().unwrap();
        a.log_for_recovery(o3, &blue, &frame("other room"));
        let restored = futures_ready(a.restore_session("pid", &o1.to_string())).unwrap();
        assert_eq!(&*restored.id, "s1");
        let texts: Vec<&[u8]> = restored.missed.iter().map(|f| f.payload()).collect();
        assert_eq!(texts, [b"missed".as_slice()]);
        // A session is restored once.
        assert!(futures_ready(a.restore_session("pid", &o1.to_string())).is_none());
    }

    /// Polls a future that is ready at once (the in-memory adapter's).
    fn futures_ready<T>(f: BoxFuture<'static, T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = f;
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the in-memory adapter answers at once"),
        }
    }
}
