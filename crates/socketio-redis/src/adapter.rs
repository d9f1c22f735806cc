//! The Redis adapter of one namespace: room membership of this node's
//! sockets, and every many-socket operation spread over the cluster.
//!
//! Owns the local room index and which room topics this node listens to
//! (a room's topic while the room has a local socket, the namespace's
//! topic always), what an operation publishes and where, how a message
//! from another node acts on local sockets, and connection state recovery
//! in Redis. Connections and routing are the cluster's (`cluster`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use redis::Value;
use socketio::{
    AckError, AckRequest, Adapter, AdapterError, BoxFuture, BroadcastOptions, Data, EmitError,
    LocalNamespace, RecoveryConfig, Restored, Room, SocketData, SocketId,
};

use crate::cluster::Inner;
use crate::error::ClusterError;
use crate::wire::{self, Attachment, Body, Header, Targets};

/// Connection state recovery settings and this namespace's offset counter.
struct Recovery {
    config: RecoveryConfig,
    next: AtomicU64,
    /// The command connection's reconnect count when the last event was
    /// logged: a change means events may have been lost in between.
    link_ups: AtomicU64,
    /// An event could not be logged: the next entry is preceded by a gap
    /// marker, so no client recovers across it.
    gap: AtomicBool,
}

/// A saved session, as stored in Redis.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSession {
    id: String,
    rooms: Vec<String>,
}

#[derive(Default)]
struct Index {
    rooms: HashMap<Room, HashSet<SocketId>>,
    sockets: HashMap<SocketId, HashSet<Room>>,
}

/// The adapter of one namespace on one node.
pub(crate) struct RedisAdapter {
    cluster: Arc<Inner>,
    name: String,
    local: OnceLock<LocalNamespace>,
    index: RwLock<Index>,
    recovery: Option<Recovery>,
}

impl Drop for RedisAdapter {
    fn drop(&mut self) {
        let index = self.index.get_mut().unwrap_or_else(|p| p.into_inner());
        for room in index.rooms.keys() {
            self.cluster
                .subs
                .set(self.cluster.keys.room(&self.name, room), false);
        }
        self.cluster
            .subs
            .set(self.cluster.keys.all(&self.name), false);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisAdapter {
    pub(crate) fn new(
        cluster: Arc<Inner>,
        name: &str,
        recovery: Option<RecoveryConfig>,
    ) -> Arc<Self> {
        let link_ups = cluster.commands.link.ups.load(Ordering::Relaxed);
        Arc::new(Self {
            name: name.to_owned(),
            local: OnceLock::new(),
            index: RwLock::default(),
            recovery: recovery.map(|config| Recovery {
                config,
                next: AtomicU64::new(1),
                link_ups: AtomicU64::new(link_ups),
                gap: AtomicBool::new(false),
            }),
            cluster,
        })
    }

    fn ns(&self) -> Option<&LocalNamespace> {
        self.local.get()
    }

    /// Topics that reach every node with a socket `targets` may select.
    fn topics(&self, targets: &Targets) -> Vec<String> {
        if targets.rooms.is_empty() {
            vec![self.cluster.keys.all(&self.name)]
        } else {
            let mut seen = HashSet::new();
            targets
                .rooms
                .iter()
                .filter(|r| seen.insert(r.as_str()))
                .map(|room| self.cluster.keys.room(&self.name, room))
                .collect()
        }
    }

    /// Publishes a sequenced message for the sockets `opts` selects on
    /// other nodes (nothing when `opts.local`).
    fn publish(
        &self,
        opts: &BroadcastOptions,
        body: impl FnOnce(Targets) -> Body,
        attachments: &[Attachment],
    ) {
        if opts.local {
            return;
        }
        let targets = Targets::from_opts(opts);
        let topics = self.topics(&targets);
        if let Err(err) =
            self.cluster
                .publish_sequenced(&topics, &self.name, body(targets), attachments)
        {
            tracing::warn!(%err, namespace = %self.name, "could not publish to the cluster");
        }
    }

    /// A message from another node on a room or namespace topic.
    pub(crate) fn on_message(&self, header: Header, attachments: Vec<Attachment>) {
        let Some(ns) = self.ns() else { return };
        match header.body {
            Body::Broadcast { targets } => {
                let frames: Result<Vec<_>, _> =
                    attachments.iter().map(Attachment::to_frame).collect();
                match frames {
                    Ok(frames) => {
                        let ids = self.select_local(&targets.to_local_opts());
                        ns.deliver(&ids, &frames, targets.volatile);
                    }
                    Err(err) => tracing::warn!(%err, "dropping a broadcast"),
                }
            }
            Body::Join { targets, rooms } => {
                for id in self.select_local(&targets.to_local_opts()) {
                    for room in &rooms {
                        self.join(&id, &Room::from(room.as_str()));
                    }
                }
            }
            Body::Leave { targets, rooms } => {
                for id in self.select_local(&targets.to_local_opts()) {
                    for room in &rooms {
                        self.leave(&id, room);
                    }
                }
            }
            Body::Disconnect { targets } => {
                for id in self.select_local(&targets.to_local_opts()) {
                    if let Some(socket) = ns.socket(&id) {
                        socket.disconnect();
                    }
                }
            }
            Body::ServerEvent { event, args } => {
                ns.server_event(&event, args);
            }
            _ => {}
        }
    }

    /// A request from another node; answers it.
    pub(crate) fn on_request(&self, header: Header, attachments: Vec<Attachment>) {
        let from = header.node;
        match header.body {
            Body::FetchSockets { request, targets } => {
                let sockets = match self.ns() {
                    Some(ns) => self
                        .select_local(&targets.to_local_opts())
                        .iter()
                        .filter_map(|id| ns.socket_data(id))
                        .collect(),
                    None => Vec::new(),
                };
                self.cluster
                    .answer(&from, Body::Sockets { request, sockets }, &[]);
            }
            Body::AckBroadcast {
                request,
                targets,
                event,
                args,
                timeout_ms,
            } => {
                let Some(ns) = self.ns() else {
                    self.cluster.answer(
                        &from,
                        Body::Acks {
                            request,
                            acks: Vec::new(),
                        },
                        &[],
                    );
                    return;
                };
                let ack = AckRequest {
                    event,
                    args,
                    binary: attachments
                        .into_iter()
                        .map(Attachment::into_bytes)
                        .collect(),
                    timeout: Duration::from_millis(timeout_ms),
                };
                let waiting = ns.emit_with_ack(&self.select_local(&targets.to_local_opts()), &ack);
                let cluster = self.cluster.clone();
                tokio::spawn(async move {
                    let (acks, attachments) = wire::encode_acks(waiting.await);
                    cluster.answer(&from, Body::Acks { request, acks }, &attachments);
                });
            }
            _ => {}
        }
    }

    fn index_read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs an event for recovery: appended to the namespace's stream by
    /// script, before the broadcast that carries it is published (the
    /// command connection keeps the order).
    fn log(
        &self,
        recovery: &Recovery,
        offset: u64,
        opts: &BroadcastOptions,
        frames: &[engineio::SharedFrame],
    ) {
        let link = &self.cluster.commands.link;
        if !link.is_up() {
            recovery.gap.store(true, Ordering::Release);
            return;
        }
        let ups = link.ups.load(Ordering::Relaxed);
        if recovery.link_ups.swap(ups, Ordering::AcqRel) != ups {
            recovery.gap.store(true, Ordering::Release);
        }
        let header = Header {
            node: self.cluster.node.clone(),
            seq: 0,
            ns: self.name.clone(),
            body: Body::Broadcast {
                targets: Targets::from_opts(opts),
            },
        };
        let attachments: Vec<Attachment> = frames.iter().map(Attachment::from_frame).collect();
        let payload = match wire::encode(&header, &attachments) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(%err, "could not log an event for recovery");
                recovery.gap.store(true, Ordering::Release);
                return;
            }
        };
        let gap = recovery.gap.swap(false, Ordering::AcqRel);
        let keys = &self.cluster.keys;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.cluster.log_sha)
            .arg(3)
            .arg(keys.log(&self.name))
            .arg(keys.log_index(&self.name))
            .arg(keys.log_seq(&self.name))
            .arg(offset)
            .arg(payload)
            .arg(recovery.config.max_buffered_packets.max(1))
            .arg(ms(recovery.config.max_disconnection_duration).max(1))
            .arg(if gap { "1" } else { "0" });
        drop(self.cluster.commands.send(cmd));
    }
}

impl Adapter for RedisAdapter {
    fn init(&self, ns: LocalNamespace) {
        let _ = self.local.set(ns);
        self.cluster
            .subs
            .set(self.cluster.keys.all(&self.name), true);
    }

    fn join(&self, id: &SocketId, room: &Room) {
        let mut index = self.index_write();
        if !index
            .sockets
            .entry(id.clone())
            .or_default()
            .insert(room.clone())
        {
            return;
        }
        let members = index.rooms.entry(room.clone()).or_default();
        members.insert(id.clone());
        if members.len() == 1 {
            // Under the index lock, so subscribe and unsubscribe of one
            // room are queued in the order the room filled and emptied.
            self.cluster
                .subs
                .set(self.cluster.keys.room(&self.name, room), true);
        }
    }

    fn leave(&self, id: &str, room: &str) {
        let mut index = self.index_write();
        let Some(joined) = index.sockets.get_mut(id) else {
            return;
        };
        if !joined.remove(room) {
            return;
        }
        if let Some(members) = index.rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                index.rooms.remove(room);
                self.cluster
                    .subs
                    .set(self.cluster.keys.room(&self.name, room), false);
            }
        }
    }

    fn leave_all(&self, id: &str) -> Vec<Room> {
        let mut index = self.index_write();
        let Some(joined) = index.sockets.remove(id) else {
            return Vec::new();
        };
        for room in &joined {
            if let Some(members) = index.rooms.get_mut(room) {
                members.remove(id);
                if members.is_empty() {
                    index.rooms.remove(room);
                    self.cluster
                        .subs
                        .set(self.cluster.keys.room(&self.name, room), false);
                }
            }
        }
        joined.into_iter().collect()
    }

    fn rooms_of(&self, id: &str) -> Vec<Room> {
        self.index_read()
            .sockets
            .get(id)
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn select_local(&self, opts: &BroadcastOptions) -> Vec<SocketId> {
        let index = self.index_read();
        let excluded: HashSet<&str> = opts
            .except
            .iter()
            .filter_map(|room| index.rooms.get(room))
            .flatten()
            .map(|id| &**id)
            .chain(opts.except_id.as_deref())
            .collect();
        if opts.rooms.is_empty() {
            index
                .sockets
                .keys()
                .filter(|id| !excluded.contains(&***id))
                .cloned()
                .collect()
        } else {
            let mut seen = HashSet::new();
            opts.rooms
                .iter()
                .filter_map(|room| index.rooms.get(room))
                .flatten()
                .filter(|id| !excluded.contains(&***id) && seen.insert(Arc::clone(id)))
                .cloned()
                .collect()
        }
    }

    fn broadcast(
        &self,
        ns: &LocalNamespace,
        frames: &[engineio::SharedFrame],
        opts: &BroadcastOptions,
    ) -> usize {
        let delivered = ns.deliver(&self.select_local(opts), frames, opts.volatile);
        let attachments: Vec<Attachment> = frames.iter().map(Attachment::from_frame).collect();
        self.publish(opts, |targets| Body::Broadcast { targets }, &attachments);
        delivered
    }

    fn broadcast_with_ack(
        &self,
        ns: &LocalNamespace,
        request: AckRequest,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<Result<Data, AckError>>, AdapterError>> {
        let local = ns.emit_with_ack(&self.select_local(opts), &request);
        if opts.local {
            return Box::pin(async move { Ok(local.await) });
        }
        let cluster = self.cluster.clone();
        let name = self.name.clone();
        let targets = Targets::from_opts(opts);
        Box::pin(async move {
            let wait = request.timeout + cluster.config.request_timeout;
            let binary: Vec<Attachment> = request
                .binary
                .iter()
                .cloned()
                .map(Attachment::Binary)
                .collect();
            let remote = cluster.request(
                &name,
                |id| Body::AckBroadcast {
                    request: id,
                    targets,
                    event: request.event.clone(),
                    args: request.args.clone(),
                    timeout_ms: ms(request.timeout),
                },
                &binary,
                wait,
            );
            let (mut results, (answers, outcome)) = tokio::join!(local, remote);
            if let Err(err) = outcome {
                // Keep every ack that came: only the silent nodes' sockets
                // are missing.
                tracing::warn!(%err, namespace = %name, "broadcast with acks: not every node answered");
            }
            for (header, attachments) in answers {
                if let Body::Acks { acks, .. } = header.body {
                    results.extend(wire::decode_acks(acks, attachments));
                }
            }
            Ok(results)
        })
    }

    fn fetch_sockets(
        &self,
        ns: &LocalNamespace,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketData>, AdapterError>> {
        let mut sockets: Vec<SocketData> = self
            .select_local(opts)
            .iter()
            .filter_map(|id| ns.socket_data(id))
            .collect();
        if opts.local {
            return Box::pin(std::future::ready(Ok(sockets)));
        }
        let cluster = self.cluster.clone();
        let name = self.name.clone();
        let targets = Targets::from_opts(opts);
        Box::pin(async move {
            let wait = cluster.config.request_timeout;
            let (answers, outcome) = cluster
                .request(
                    &name,
                    |id| Body::FetchSockets {
                        request: id,
                        targets,
                    },
                    &[],
                    wait,
                )
                .await;
            outcome?;
            for (header, _) in answers {
                if let Body::Sockets {
                    sockets: theirs, ..
                } = header.body
                {
                    sockets.extend(theirs);
                }
            }
            Ok(sockets)
        })
    }

    fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.select_local(opts) {
            for room in rooms {
                self.join(&id, room);
            }
        }
        let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
        self.publish(opts, |targets| Body::Join { targets, rooms }, &[]);
    }

    fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for id in self.select_local(opts) {
            for room in rooms {
                self.leave(&id, room);
            }
        }
        let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
        self.publish(opts, |targets| Body::Leave { targets, rooms }, &[]);
    }

    fn disconnect_sockets(&self, ns: &LocalNamespace, opts: &BroadcastOptions) {
        for socket in self
            .select_local(opts)
            .iter()
            .filter_map(|id| ns.socket(id))
        {
            socket.disconnect();
        }
        self.publish(opts, |targets| Body::Disconnect { targets }, &[]);
    }

    fn server_side_emit(
        &self,
        event: &str,
        args: serde_json::Value,
    ) -> BoxFuture<'static, Result<usize, EmitError>> {
        let args = match args {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Null => Vec::new(),
            other => vec![other],
        };
        let topic = self.cluster.keys.all(&self.name);
        let body = Body::ServerEvent {
            event: event.to_owned(),
            args,
        };
        let published = self
            .cluster
            .publish_sequenced(&[topic], &self.name, body, &[]);
        let subscribed = self.cluster.subs.link.is_up();
        Box::pin(async move {
            let replies = published.map_err(|e| EmitError::Encode(e.to_string()))?;
            let mut reached = 0;
            for reply in replies {
                match reply.await {
                    // Every node with the namespace got it, this one too.
                    Ok(Value::Int(n)) => {
                        let n = usize::try_from(n).unwrap_or(0);
                        reached += if subscribed { n.saturating_sub(1) } else { n };
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%err, "serverSideEmit did not reach redis");
                        return Err(EmitError::Disconnected);
                    }
                }
            }
            Ok(reached)
        })
    }

    fn next_offset(&self) -> Option<u64> {
        let recovery = self.recovery.as_ref()?;
        let n = recovery.next.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1);
        Some((self.cluster.node_tag << 40) | n)
    }

    fn log_for_recovery(
        &self,
        offset: u64,
        opts: &BroadcastOptions,
        frames: &[engineio::SharedFrame],
    ) {
        if let Some(recovery) = &self.recovery {
            self.log(recovery, offset, opts, frames);
        }
    }

    fn save_session(&self, pid: Arc<str>, id: SocketId, rooms: Vec<Room>) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let saved = SavedSession {
            id: id.to_string(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        };
        let Ok(json) = serde_json::to_vec(&saved) else {
            return;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.cluster.keys.saved_session(&self.name, &pid))
            .arg(json)
            .arg("PX")
            .arg(ms(recovery.config.max_disconnection_duration).max(1));
        drop(self.cluster.commands.send(cmd));
    }

    fn restore_session(&self, pid: &str, offset: &str) -> BoxFuture<'static, Option<Restored>> {
        if self.recovery.is_none() {
            return Box::pin(std::future::ready(None));
        }
        let keys = &self.cluster.keys;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.cluster.restore_sha)
            .arg(3)
            .arg(keys.saved_session(&self.name, pid))
            .arg(keys.log(&self.name))
            .arg(keys.log_index(&self.name))
            .arg(offset);
        let reply = self.cluster.commands.send(cmd);
        let limit = self.cluster.config.command_timeout;
        Box::pin(async move {
            let reply = match tokio::time::timeout(limit, reply).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(err)) => {
                    tracing::warn!(%err, "could not restore a session from redis");
                    return None;
                }
                Err(_) => return None,
            };
            match parse_restore(reply) {
                Ok(restored) => restored,
                Err(err) => {
                    tracing::warn!(%err, "unexpected restore reply");
                    None
                }
            }
        })
    }
}

/// The restore script's reply: the session and what it missed, or `None`
/// when it cannot be recovered.
fn parse_restore(reply: Value) -> Result<Option<Restored>, ClusterError> {
    let bad = |what: &str| ClusterError::Decode(format!("restore reply: {what}"));
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(bad("not an array")),
    };
    let mut items = items.into_iter();
    let saved: Vec<u8> = match items.next() {
        Some(v) => redis::from_redis_value(v).map_err(|e| bad(&e.to_string()))?,
        None => return Err(bad("empty")),
    };
    let saved: SavedSession = serde_json::from_slice(&saved).map_err(|e| bad(&e.to_string()))?;
    let Some(Value::Array(entries)) = items.next() else {
        // The client's offset left the log: events were lost.
        return Ok(None);
    };
    let rooms: HashSet<Room> = saved.rooms.iter().map(|r| Room::from(r.as_str())).collect();
    let mut missed = Vec::new();
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            return Err(bad("entry"));
        };
        let fields = match parts.pop() {
            Some(Value::Array(fields)) => fields,
            _ => return Err(bad("entry fields")),
        };
        let mut payload = None;
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let name: Vec<u8> = redis::from_redis_value(name).map_err(|e| bad(&e.to_string()))?;
            match name.as_slice() {
                // Events may have gone unlogged here.
                b"gap" => return Ok(None),
                b"d" => {
                    payload = Some(
                        redis::from_redis_value::<Vec<u8>>(value)
                            .map_err(|e| bad(&e.to_string()))?,
                    )
                }
                _ => {}
            }
        }
        let Some(payload) = payload else { continue };
        let (header, attachments) = wire::decode(&payload)?;
        let Body::Broadcast { targets } = header.body else {
            continue;
        };
        if targets.to_local_opts().selects(&saved.id, &rooms) {
            for attachment in &attachments {
                missed.push(attachment.to_frame()?);
            }
        }
    }
    Ok(Some(Restored {
        id: Arc::from(saved.id.as_str()),
        rooms: saved.rooms.iter().map(|r| Arc::from(r.as_str())).collect(),
        missed,
    }))
}
