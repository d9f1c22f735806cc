//! A socket as `fetchSockets` returns it: on this node or another one.
//!
//! Owns the handle the application gets back; what it knows travels as
//! [`SocketData`], and what it does goes through the namespace's adapter
//! (an emit to the socket's own room, a `socketsJoin` on it...), so it
//! works the same wherever the socket is connected. Finding the sockets is
//! the adapter's business.

use std::sync::Arc;

use serde::Serialize;

use crate::adapter::{HandshakeData, SocketData};
use crate::broadcast::BroadcastOperator;
use crate::error::EmitError;
use crate::namespace::Namespace;
use crate::Socket;

/// A socket of any node, as [`BroadcastOperator::fetch_sockets`] found it.
#[derive(Clone)]
pub struct RemoteSocket {
    data: SocketData,
    local: Option<Socket>,
    ns: Arc<Namespace>,
}

impl std::fmt::Debug for RemoteSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSocket")
            .field("id", &self.data.id)
            .field("namespace", &self.data.namespace)
            .field("local", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

impl RemoteSocket {
    pub(crate) fn new(ns: Arc<Namespace>, data: SocketData) -> Self {
        let local = ns.socket(&data.id);
        Self { data, local, ns }
    }

    /// The socket id.
    pub fn id(&self) -> &str {
        &self.data.id
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        &self.data.namespace
    }

    /// The rooms it was in when fetched (its own id among them).
    pub fn rooms(&self) -> &[String] {
        &self.data.rooms
    }

    /// The `auth` payload it connected with.
    pub fn auth(&self) -> &serde_json::Value {
        &self.data.auth
    }

    /// The HTTP request that opened its connection.
    pub fn handshake(&self) -> &HandshakeData {
        &self.data.handshake
    }

    /// Everything known about it.
    pub fn data(&self) -> &SocketData {
        &self.data
    }

    /// The socket itself, when it is connected to this node.
    pub fn local(&self) -> Option<&Socket> {
        self.local.as_ref()
    }

    fn target(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns.clone()).to(&self.data.id)
    }

    /// Emits `event` to it, wherever it is connected.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        match &self.local {
            Some(socket) => socket.emit(event, args),
            None => self.target().emit(event, args).map(|_| ()),
        }
    }

    /// Makes it join `room`.
    pub fn join(&self, room: &str) {
        match &self.local {
            Some(socket) => socket.join(room),
            None => self.target().join(room),
        }
    }

    /// Makes it leave `room`.
    pub fn leave(&self, room: &str) {
        match &self.local {
            Some(socket) => socket.leave(room),
            None => self.target().leave(room),
        }
    }

    /// Disconnects it from its namespace.
    pub fn disconnect(&self) {
        match &self.local {
            Some(socket) => socket.disconnect(),
            None => self.target().disconnect(),
        }
    }
}
