//! Sending to many sockets: pick targets by room, encode the packet once,
//! queue the same frames on every target.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use socketio_proto::Packet;

use crate::adapter::{AckRequest, BroadcastOptions};
use crate::error::{AckError, AdapterError, EmitError};
use crate::namespace::Namespace;
use crate::remote::RemoteSocket;
use crate::socket::Data;
use crate::Socket;

/// Selects sockets of a namespace (by rooms, with exceptions) and acts on
/// them all.
#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    opts: BroadcastOptions,
    timeout: Duration,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("namespace", &self.ns.name.as_str())
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        Self {
            ns,
            opts: BroadcastOptions::default(),
            timeout: Duration::from_secs(5),
        }
    }

    pub(crate) fn except_id(mut self, id: Arc<str>) -> Self {
        self.opts.except_id = Some(id);
        self
    }

    /// Adds `room` to the targets (sockets in any listed room).
    pub fn to(mut self, room: &str) -> Self {
        self.opts.rooms.push(Arc::from(room));
        self
    }

    /// Leaves out sockets in `room`.
    pub fn except(mut self, room: &str) -> Self {
        self.opts.except.push(Arc::from(room));
        self
    }

    /// Timeout for [`BroadcastOperator::emit_with_ack`] (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The event may be lost for sockets that are not ready to take it
    /// (never logged for recovery, never closes a slow socket).
    pub fn volatile(mut self) -> Self {
        self.opts.volatile = true;
        self
    }

    /// Only this node's sockets (for adapters spanning several nodes).
    pub fn local(mut self) -> Self {
        self.opts.local = true;
        self
    }

    /// The selected sockets of this node.
    pub fn sockets(&self) -> Vec<Socket> {
        self.ns
            .adapter
            .select_local(&self.opts)
            .iter()
            .filter_map(|id| self.ns.socket(id))
            .collect()
    }

    /// The selected sockets of every node (`fetchSockets`). When some
    /// nodes do not answer in time, the sockets of those that did (see
    /// [`BroadcastOperator::try_fetch_sockets`] to tell).
    pub async fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        match self.try_fetch_sockets().await {
            Ok(sockets) => sockets,
            Err(err) => {
                tracing::warn!(%err, "fetchSockets: answering with this node's sockets only");
                self.sockets()
                    .iter()
                    .filter_map(|s| self.ns.local.socket_data(s.id()))
                    .map(|data| RemoteSocket::new(self.ns.clone(), data))
                    .collect()
            }
        }
    }

    /// The selected sockets of every node, or why not all nodes answered.
    pub async fn try_fetch_sockets(&self) -> Result<Vec<RemoteSocket>, AdapterError> {
        let data = self
            .ns
            .adapter
            .fetch_sockets(&self.ns.local, &self.opts)
            .await?;
        Ok(data
            .into_iter()
            .map(|data| RemoteSocket::new(self.ns.clone(), data))
            .collect())
    }

    /// Emits to every selected socket; the packet is encoded once. Returns
    /// how many sockets it was queued on.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<usize, EmitError> {
        self.emit_binary(event, args, Vec::new())
    }

    /// Emits with arguments holding placeholders for `binary`, to every
    /// selected socket; encoded once.
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<bytes::Bytes>,
    ) -> Result<usize, EmitError> {
        let frames = self.ns.event_frames(event, args, binary, &self.opts)?;
        Ok(self
            .ns
            .adapter
            .broadcast(&self.ns.local, &frames, &self.opts))
    }

    /// Emits to every selected socket (of every node) and collects each
    /// acknowledgement (or its error) within the timeout. Sockets of a node
    /// that does not answer at all are missing from the result.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<Vec<Result<Data, AckError>>, EmitError> {
        self.emit_binary_with_ack(event, args, Vec::new()).await
    }

    /// [`BroadcastOperator::emit_with_ack`] with arguments holding
    /// placeholders for `binary`.
    pub async fn emit_binary_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<bytes::Bytes>,
    ) -> Result<Vec<Result<Data, AckError>>, EmitError> {
        let encode = |e: String| EmitError::Encode(e);
        let args = serde_json::to_value(args).map_err(|e| encode(e.to_string()))?;
        // Checks that the arguments make an event before any node sees them.
        Packet::event(self.ns.name.clone(), event, &args, Some(0))
            .map_err(|e| encode(e.to_string()))?;
        let request = AckRequest {
            event: event.to_owned(),
            args,
            binary,
            timeout: self.timeout,
        };
        match self
            .ns
            .adapter
            .broadcast_with_ack(&self.ns.local, request, &self.opts)
            .await
        {
            Ok(results) => Ok(results),
            Err(AdapterError::Encode(e)) => Err(EmitError::Encode(e)),
            Err(err) => {
                tracing::warn!(%err, "broadcast with acks: some nodes did not answer");
                Ok(Vec::new())
            }
        }
    }

    /// Makes every selected socket join `room` (`socketsJoin`).
    pub fn join(&self, room: &str) {
        self.ns.adapter.add_sockets(&self.opts, &[Arc::from(room)]);
    }

    /// Makes every selected socket leave `room` (`socketsLeave`).
    pub fn leave(&self, room: &str) {
        self.ns.adapter.del_sockets(&self.opts, &[Arc::from(room)]);
    }

    /// Disconnects every selected socket (`disconnectSockets`).
    pub fn disconnect(&self) {
        self.ns
            .adapter
            .disconnect_sockets(&self.ns.local, &self.opts);
    }

    /// Sends an event to the other nodes' servers (`serverSideEmit`);
    /// returns how many nodes it reached (none with one node).
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<usize, EmitError> {
        let args = serde_json::to_value(args).map_err(|e| EmitError::Encode(e.to_string()))?;
        self.ns.adapter.server_side_emit(event, args).await
    }
}
