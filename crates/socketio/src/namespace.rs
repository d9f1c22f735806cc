//! A namespace: its connection handler, middleware, this node's sockets,
//! and the adapter that holds its rooms.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::Serialize;
use socketio_proto::Packet;

use crate::adapter::{Adapter, BroadcastOptions, LocalNamespace};
use crate::config::RecoveryConfig;
use crate::error::EmitError;
use crate::socket::{frames, NameHash};
use crate::sync::{read, write};
use crate::Socket;

/// An EVENT, or a BINARY_EVENT when there are attachments.
pub(crate) fn event_packet<T: Serialize + ?Sized>(
    ns: socketio_proto::Namespace,
    event: &str,
    args: &T,
    binary: Vec<Bytes>,
) -> Result<Packet, socketio_proto::Error> {
    Packet::binary_event(ns, event, args, binary, None)
}

/// Called with each socket that connected to the namespace.
pub(crate) type ConnectHandler = Arc<dyn Fn(Socket) + Send + Sync>;

/// Runs before a socket is admitted; `Err(message)` refuses it, and the
/// client sees `message` in its `connect_error`.
pub(crate) type Middleware =
    Arc<dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Handles an event another node's server sent (`serverSideEmit`).
pub(crate) type ServerEventHandler = Arc<dyn Fn(Vec<serde_json::Value>) + Send + Sync>;

/// What a namespace is made from: shared by every namespace a dynamic
/// matcher creates.
#[derive(Clone)]
pub(crate) struct Template {
    pub(crate) on_connect: ConnectHandler,
    pub(crate) middlewares: Arc<RwLock<Vec<Middleware>>>,
    pub(crate) server_events: Arc<RwLock<HashMap<Box<str>, ServerEventHandler>>>,
}

pub(crate) struct Namespace {
    pub(crate) name: socketio_proto::Namespace,
    pub(crate) template: Template,
    /// By socket id. The ids are the server's own random strings, so the
    /// quick hash of event names serves here too.
    sockets: RwLock<HashMap<Arc<str>, Socket, NameHash>>,
    pub(crate) adapter: Arc<dyn Adapter>,
    /// A handle on this namespace for the adapter.
    pub(crate) local: LocalNamespace,
    /// Ack ids for this namespace: one counter, so that a broadcast with
    /// acks can use a single id on every socket.
    pub(crate) next_ack: AtomicU64,
    /// Connection state recovery settings, when enabled.
    pub(crate) recovery: Option<RecoveryConfig>,
}

impl Namespace {
    pub(crate) fn new(
        name: socketio_proto::Namespace,
        template: Template,
        recovery: Option<RecoveryConfig>,
        adapter: Arc<dyn Adapter>,
    ) -> Arc<Self> {
        let ns = Arc::new_cyclic(|me| Self {
            name,
            template,
            sockets: RwLock::new(HashMap::default()),
            adapter,
            local: LocalNamespace(me.clone()),
            next_ack: AtomicU64::new(0),
            recovery,
        });
        ns.adapter.init(ns.local.clone());
        ns
    }

    pub(crate) fn socket(&self, id: &str) -> Option<Socket> {
        read(&self.sockets).get(id).cloned()
    }

    /// The frames of an event, with its recovery offset appended and the
    /// event logged for replay when recovery is on.
    pub(crate) fn event_frames<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<Bytes>,
        opts: &BroadcastOptions,
    ) -> Result<Vec<engineio::SharedFrame>, EmitError> {
        let encode = |e: socketio_proto::Error| EmitError::Encode(e.to_string());
        let offset = if opts.volatile {
            None
        } else {
            self.adapter.next_offset()
        };
        let Some(offset) = offset else {
            return Ok(frames(
                &event_packet(self.name.clone(), event, args, binary).map_err(encode)?,
            ));
        };
        let mut value = serde_json::to_value(args).map_err(|e| EmitError::Encode(e.to_string()))?;
        match &mut value {
            serde_json::Value::Array(items) => items.push(offset.to_string().into()),
            serde_json::Value::Null => value = serde_json::json!([offset.to_string()]),
            _ => return Err(EmitError::Encode("event arguments must be an array".into())),
        }
        let frames =
            frames(&event_packet(self.name.clone(), event, &value, binary).map_err(encode)?);
        self.adapter.log_for_recovery(offset, opts, &frames);
        Ok(frames)
    }

    pub(crate) fn middlewares(&self) -> Vec<Middleware> {
        read(&self.template.middlewares).clone()
    }

    pub(crate) fn insert(&self, socket: Socket) {
        write(&self.sockets).insert(socket.id_arc(), socket);
    }

    pub(crate) fn remove(&self, id: &str) {
        write(&self.sockets).remove(id);
    }
}
