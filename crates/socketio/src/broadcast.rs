//! Sending to many sockets: pick targets by room, encode the packet once,
//! queue the same frames on every target.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use socketio_proto::Packet;

use crate::adapter::BroadcastOptions;
use crate::error::{AckError, EmitError};
use crate::namespace::Namespace;
use crate::socket::{frames, Data};
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

    /// The selected sockets of every node (`fetchSockets`).
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
        self.ns
            .adapter
            .fetch_sockets(&self.ns.local, &self.opts)
            .await
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

    /// Emits to every selected socket and collects each acknowledgement
    /// (or its error) within the timeout.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<Vec<Result<Data, AckError>>, EmitError> {
        let id = self.ns.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = Packet::event(self.ns.name.clone(), event, args, Some(id))
            .map_err(|e| EmitError::Encode(e.to_string()))?;
        let frames = frames(&packet);
        let waits: Vec<_> = self
            .sockets()
            .into_iter()
            .map(|socket| {
                let rx = socket.expect_ack(id);
                let sent = socket.send_frames(&frames).is_ok();
                let timeout = self.timeout;
                async move {
                    if !sent {
                        return Err(AckError::Disconnected);
                    }
                    socket.wait_ack(id, rx, timeout).await
                }
            })
            .collect();
        let mut results = Vec::with_capacity(waits.len());
        let handles: Vec<_> = waits.into_iter().map(tokio::spawn).collect();
        for handle in handles {
            results.push(handle.await.unwrap_or(Err(AckError::Disconnected)));
        }
        Ok(results)
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
