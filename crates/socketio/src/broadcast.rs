//! Sending to many sockets: pick targets by room, encode the packet once,
//! queue the same frames on every target.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use socketio_proto::Packet;

use crate::error::{AckError, EmitError};
use crate::namespace::Namespace;
use crate::recovery::Targets;
use crate::socket::{frames, Data};
use crate::Socket;

/// Selects sockets of a namespace (by rooms, with exceptions) and acts on
/// them all.
#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    rooms: Vec<Arc<str>>,
    except: Vec<Arc<str>>,
    except_id: Option<Arc<str>>,
    timeout: Duration,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("namespace", &self.ns.name.as_str())
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .finish_non_exhaustive()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        Self {
            ns,
            rooms: Vec::new(),
            except: Vec::new(),
            except_id: None,
            timeout: Duration::from_secs(5),
        }
    }

    pub(crate) fn except_id(mut self, id: Arc<str>) -> Self {
        self.except_id = Some(id);
        self
    }

    /// Adds `room` to the targets (sockets in any listed room).
    pub fn to(mut self, room: &str) -> Self {
        self.rooms.push(Arc::from(room));
        self
    }

    /// Leaves out sockets in `room`.
    pub fn except(mut self, room: &str) -> Self {
        self.except.push(Arc::from(room));
        self
    }

    /// Timeout for [`BroadcastOperator::emit_with_ack`] (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The selected sockets (`fetchSockets`).
    pub fn sockets(&self) -> Vec<Socket> {
        self.ns
            .targets(&self.rooms, &self.except, self.except_id.as_deref())
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
        let frames = self.ns.event_frames(event, args, binary, || Targets {
            rooms: self.rooms.clone(),
            except: self.except.clone(),
            except_id: self.except_id.clone(),
        })?;
        let targets = self.sockets();
        Ok(targets
            .iter()
            .filter(|s| s.send_frames(&frames).is_ok())
            .count())
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
        for socket in self.sockets() {
            socket.join(room);
        }
    }

    /// Makes every selected socket leave `room` (`socketsLeave`).
    pub fn leave(&self, room: &str) {
        for socket in self.sockets() {
            socket.leave(room);
        }
    }

    /// Disconnects every selected socket (`disconnectSockets`).
    pub fn disconnect(&self) {
        for socket in self.sockets() {
            socket.disconnect();
        }
    }
}
