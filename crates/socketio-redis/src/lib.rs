//! A Redis adapter for the `socketio` server, so that several Socket.IO
//! servers sharing one Redis behave as one.
//!
//! Build a [`RedisCluster`] per process, put its adapter into the server's
//! configuration, and every many-socket operation spans the nodes: room
//! broadcasts (with `except`), broadcasts with acknowledgements collected
//! from every node, `fetchSockets`, `socketsJoin`/`socketsLeave`,
//! `disconnectSockets`, `serverSideEmit`, and connection state recovery on
//! whichever node a client comes back to.
//!
//! ```no_run
//! use socketio::{RecoveryConfig, SocketIo, SocketIoConfig};
//! use socketio_redis::{ClusterConfig, RedisCluster};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = RedisCluster::connect(ClusterConfig::new("redis://127.0.0.1:6379")).await?;
//! let config = SocketIoConfig::default().recovery(RecoveryConfig::default());
//! let io = SocketIo::new(cluster.configure(config));
//! io.namespace("/", |socket| {
//!     socket.on("chat", |socket, data, _| {
//!         // Reaches the room's sockets on every node.
//!         let _ = socket.to("lobby").emit("chat", &data.args);
//!     });
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // The guard explains to polling clients sent to the wrong node that
//! // sticky sessions are required.
//! cluster.guard(&io).serve(listener).await?;
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! **Targeted fan-out.** Each room of each namespace has its own pub/sub
//! topic, and a node is subscribed to a room's topic only while it has a
//! local socket in that room (a socket's own room counts, so emitting to
//! one socket of another node reaches that node only). A broadcast to
//! rooms is delivered to local sockets at once and published once to each
//! targeted room's topic; a broadcast to the whole namespace goes to the
//! namespace's topic, which every node with that namespace listens to. So
//! Redis sends a node only what its own sockets need, not every message to
//! every node.
//!
//! **Several rooms, one delivery.** A broadcast to rooms `a` and `b` except
//! room `c` is published to `a`'s and `b`'s topics; each copy carries the
//! whole selection (rooms, except-rooms, except-id) and the sender's
//! sequence number. A node subscribed to both topics gets two copies: it
//! acts on the first, selecting its local sockets that are in any target
//! room and in no excepted one, and drops the second. The check is one
//! number per sending node: a node numbers its messages under a lock while
//! queueing them on its single command connection, Redis runs them in that
//! order, and pushes them to each subscriber connection in that order; so
//! a number not above the last one seen from that node is a copy.
//! `socketsJoin`, `socketsLeave` and `disconnectSockets` travel the same
//! way (targeted at their rooms); `serverSideEmit` goes on the namespace
//! topic and reports how many other nodes received it.
//!
//! **Requests.** `fetchSockets` and broadcasts with acks need answers. They
//! go on one request topic every node listens to; each node answers on the
//! requester's own answer topic, also when it has no such namespace. How
//! many answers to expect is the receiver count Redis returns for the
//! `PUBLISH` of the request (minus the requester): it is exact at delivery
//! time, whereas a heartbeat registry would keep counting a node that just
//! died until its heartbeat expires. The heartbeat registry (a sorted set
//! scored by time, [`RedisCluster::nodes`]) still tells which nodes are
//! alive. A request ends when every expected node answered or after the
//! timeout ([`ClusterConfig::request_timeout`], plus the ack timeout for
//! broadcasts with acks); a node that does not answer turns
//! `try_fetch_sockets` into [`socketio::AdapterError::Timeout`] (the
//! `socketio` API then falls back to this node's sockets, with a warning).
//! Each node waits for its own sockets' acks and answers once, so acks
//! from every node are collected into one list.
//!
//! **Connection state recovery** lives in Redis, so a client can come back
//! to any node. Offsets are this node's tag (unique, from a Redis counter)
//! in the high bits and a local counter below: unique in the cluster
//! without a round trip when the event is encoded. Each logged event is
//! appended by a Lua script to the namespace's stream (entry ids are
//! sequence numbers from a counter, `MAXLEN ~ maxBufferedPackets`, all keys
//! expiring after `maxDisconnectionDuration` of quiet) with an index from
//! offset to sequence number. A dropped socket's id and rooms are saved
//! under its private id with that TTL. Restoring is one script: take the
//! session, find the client's offset in the index and check the entry is
//! still in the stream, and return every entry after it; the node keeps
//! those that selected the socket's id or rooms. If an event could not be
//! logged (Redis was unreachable), the next entry is preceded by a gap
//! marker and nobody recovers across it: a client is recovered with every
//! event it missed, or not at all.
//!
//! **Polling without sticky sessions** is not served: Engine.IO's long
//! polling keeps the session on one node. [`StickyGuard`] records which
//! node holds each polling session and answers a request that reached the
//! wrong node with HTTP 400, Engine.IO error code 1 and a message naming
//! the holding node and the fix (sticky sessions, or the websocket
//! transport only), instead of a bare `Session ID unknown`.
//!
//! **Failures.** Both Redis connections reconnect with backoff and jitter;
//! after a reconnect every wanted topic is subscribed again. While the
//! command connection is down, publishes fail at once (the local part of
//! every operation still works) and requests fail with
//! [`socketio::AdapterError::Unavailable`]. Messages published while a
//! node's subscription connection was down are lost for that node.
//!
//! **Ordering caveats.** A join takes effect for other nodes' broadcasts
//! once Redis confirmed the subscription (one round trip;
//! [`RedisCluster::settled`] waits for it). Local sockets get a broadcast
//! before remote ones.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod adapter;
mod cluster;
mod config;
mod conn;
mod error;
mod keys;
mod scripts;
mod sticky;
mod subs;
mod wire;

pub use cluster::{ClusterHealth, ClusterStats, RedisCluster};
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use sticky::{sticky_message, StickyGuard};
