//! [`Client`]: the handle applications hold, and what it shares with the
//! connection task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use socketio_proto::{Namespace, Packet};
use tokio::sync::{mpsc, oneshot};
use ws::Message;

use crate::builder::{Callbacks, ClientBuilder, Config};
use crate::Error;

/// An event's arguments: JSON values (binary arguments appear as
/// `{"_placeholder":true,"num":N}`) and the binary attachments they point
/// to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    /// The arguments after the event name (for an acknowledgement: all of
    /// them).
    pub args: Vec<serde_json::Value>,
    /// Binary attachments, indexed by the placeholders' `num`.
    pub binary: Vec<Bytes>,
}

impl Data {
    /// Deserializes argument `index` into `T`; `None` if there is no such
    /// argument or it does not fit `T`.
    pub fn arg<T: serde::de::DeserializeOwned>(&self, index: usize) -> Option<T> {
        let value = self.args.get(index)?;
        T::deserialize(value).ok()
    }
}

pub(crate) type EventHandler = Arc<dyn Fn(Data, Option<AckSender>) + Send + Sync>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An acknowledgement the client waits for.
pub(crate) struct PendingAck {
    pub(crate) tx: oneshot::Sender<Data>,
    /// The connection generation that carried the event; `None` while it is
    /// still queued.
    pub(crate) sent_in: Option<u64>,
}

/// State shared by the handles and the connection task.
pub(crate) struct Shared {
    pub(crate) namespace: Namespace,
    /// The Socket.IO id while connected.
    pub(crate) sid: Mutex<Option<Arc<str>>>,
    pub(crate) reconnects: AtomicU64,
    next_ack: AtomicU64,
    pub(crate) acks: Mutex<HashMap<u64, PendingAck>>,
    pub(crate) handlers: RwLock<HashMap<String, EventHandler>>,
}

impl Shared {
    pub(crate) fn handler(&self, event: &str) -> Option<EventHandler> {
        self.handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
            .cloned()
    }
}

/// What the handles ask of the connection task.
pub(crate) enum Command {
    /// Send the frames of one packet.
    Send {
        frames: Vec<Message>,
        /// The ack id the packet asks for, if any.
        ack_id: Option<u64>,
        /// For acknowledgements of server events: the connection generation
        /// they belong to (they are dropped on any other).
        generation: Option<u64>,
    },
    /// Leave the namespace and close; answer when done.
    Disconnect(oneshot::Sender<()>),
}

/// The WebSocket messages of one packet: the Engine.IO message (`4` and the
/// Socket.IO text, one allocation), then each attachment.
pub(crate) fn frames(packet: &Packet) -> Vec<Message> {
    let mut text = String::with_capacity(1 + packet.encoded_len());
    text.push('4');
    packet.encode_into(&mut text);
    let binary = packet.wire_kind().is_binary();
    let mut frames = Vec::with_capacity(1 + if binary { packet.attachments.len() } else { 0 });
    frames.push(Message::text(text));
    if binary {
        frames.extend(packet.attachments.iter().cloned().map(Message::Binary));
    }
    frames
}

/// Answers an event the server sent with an acknowledgement callback.
///
/// Dropping it without sending leaves the server waiting (until its own
/// timeout).
#[derive(Debug)]
pub struct AckSender {
    tx: mpsc::UnboundedSender<Command>,
    namespace: Namespace,
    id: u64,
    generation: u64,
}

impl AckSender {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Command>,
        namespace: Namespace,
        id: u64,
        generation: u64,
    ) -> Self {
        Self {
            tx,
            namespace,
            id,
            generation,
        }
    }

    /// The acknowledgement id the server asked for.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Acknowledges with `args` (a tuple, slice or `Vec` of arguments).
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), Error> {
        let packet = Packet::ack(self.namespace.clone(), self.id, args).map_err(Error::Encode)?;
        self.send_packet(&packet)
    }

    /// Acknowledges with arguments holding placeholders
    /// ([`placeholder`](crate::placeholder)) for `binary`.
    pub fn send_binary<T: Serialize + ?Sized>(
        self,
        args: &T,
        binary: Vec<Bytes>,
    ) -> Result<(), Error> {
        let ns = self.namespace.clone();
        // A binary packet must carry at least one attachment.
        let packet = if binary.is_empty() {
            Packet::ack(ns, self.id, args)
        } else {
            Packet::binary_ack(ns, self.id, args, binary)
        }
        .map_err(Error::Encode)?;
        self.send_packet(&packet)
    }

    fn send_packet(&self, packet: &Packet) -> Result<(), Error> {
        self.tx
            .send(Command::Send {
                frames: frames(packet),
                ack_id: None,
                generation: Some(self.generation),
            })
            .map_err(|_| Error::Disconnected)
    }
}

/// A Socket.IO client connected to one namespace. Cheap to clone; every
/// clone drives the same connection.
///
/// One background task owns the WebSocket: it answers the server's pings,
/// runs event handlers, sends what the handles queue, and reconnects when
/// the connection drops. Emits made while it reconnects are queued and sent
/// once the namespace is joined again. When every handle is dropped the
/// client disconnects (so a handler that holds a clone of its own client
/// keeps it alive until [`Client::disconnect`]).
///
/// ```no_run
/// use std::time::Duration;
/// use socketio_client::Client;
///
/// # async fn run() -> Result<(), socketio_client::Error> {
/// let client = Client::builder("http://127.0.0.1:3000")
///     .namespace("/chat")
///     .auth(serde_json::json!({ "token": "secret" }))
///     .on("message", |data, ack| {
///         println!("message: {:?}", data.args);
///         if let Some(ack) = ack {
///             let _ = ack.send(&("thanks",));
///         }
///     })
///     .connect()
///     .await?;
/// client.emit("message", &("hello", 1))?;
/// let reply = client
///     .emit_with_ack("question", &("why?",), Duration::from_secs(5))
///     .await?;
/// println!("answer: {:?}", reply.args);
/// client.disconnect().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.shared.namespace.as_str())
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client for the server at `url`: `http://`,
    /// `https://`, `ws://` or `wss://`, e.g. `"http://127.0.0.1:3000"`. A
    /// path in the URL (`http://host/admin`) names the namespace, as in the
    /// reference client; a query string is sent with the handshake.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    pub(crate) async fn start(
        config: Config,
        handlers: HashMap<String, EventHandler>,
        callbacks: Callbacks,
    ) -> Result<Client, Error> {
        let shared = Arc::new(Shared {
            namespace: config.namespace.clone(),
            sid: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            next_ack: AtomicU64::new(0),
            acks: Mutex::new(HashMap::new()),
            handlers: RwLock::new(handlers),
        });
        let conn = crate::task::establish(&config).await?;
        *lock(&shared.sid) = Some(conn.sid.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = crate::task::Task::new(config, shared.clone(), callbacks, rx, tx.downgrade());
        if let Some(on_connect) = &task.callbacks.connect {
            on_connect();
        }
        tokio::spawn(task.run(conn));
        Ok(Client { shared, tx })
    }

    /// The Socket.IO id of the connection to the namespace; `None` while
    /// disconnected. It changes with each reconnection.
    pub fn id(&self) -> Option<String> {
        lock(&self.shared.sid).as_deref().map(str::to_owned)
    }

    /// The namespace this client joined.
    pub fn namespace(&self) -> &str {
        self.shared.namespace.as_str()
    }

    /// Whether the namespace connection is up now.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared.sid).is_some()
    }

    /// How many times the client has reconnected after a drop.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Acquire)
    }

    /// Registers (or replaces) the handler for `event` on a connected
    /// client; see [`ClientBuilder::on`].
    pub fn on<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Data, Option<AckSender>) + Send + Sync + 'static,
    {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event.into(), Arc::new(handler));
    }

    /// Removes the handler for `event`.
    pub fn off(&self, event: &str) {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(event);
    }

    /// Emits `event` with `args` (a tuple such as `&("a", 1)` or `&(x,)`, a
    /// slice, a `Vec`, or `&()` for none). Queued at once; the client's task
    /// writes it (after reconnecting, if the connection is down).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `args` is not an array; [`Error::Disconnected`]
    /// once the client is disconnected for good.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), Error> {
        let packet = Packet::event(self.shared.namespace.clone(), event, args, None)
            .map_err(Error::Encode)?;
        self.send(&packet, None)
    }

    /// Emits `event` with arguments holding placeholders
    /// ([`placeholder`](crate::placeholder)`(n)` or
    /// [`Placeholder`](crate::Placeholder)) for the `binary` attachments.
    ///
    /// # Errors
    ///
    /// As for [`Client::emit`].
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<Bytes>,
    ) -> Result<(), Error> {
        let packet = self.binary_event(event, args, binary, None)?;
        self.send(&packet, None)
    }

    /// Emits `event` and waits up to `timeout` for the server's
    /// acknowledgement.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no acknowledgement arrives in time;
    /// [`Error::Disconnected`] if the connection that carried the event
    /// dropped first, or the client is disconnected; [`Error::Encode`] as
    /// for [`Client::emit`].
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Data, Error> {
        let id = self.shared.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = Packet::event(self.shared.namespace.clone(), event, args, Some(id))
            .map_err(Error::Encode)?;
        self.send_with_ack(id, &packet, timeout).await
    }

    /// [`Client::emit_binary`] with an acknowledgement, as
    /// [`Client::emit_with_ack`].
    ///
    /// # Errors
    ///
    /// As for [`Client::emit_with_ack`].
    pub async fn emit_binary_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<Data, Error> {
        let id = self.shared.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = self.binary_event(event, args, binary, Some(id))?;
        self.send_with_ack(id, &packet, timeout).await
    }

    /// Leaves the namespace (a DISCONNECT packet), closes the connection and
    /// stops the client's task; waits until that is done. Later emits fail
    /// with [`Error::Disconnected`]. Does nothing if already disconnected.
    pub async fn disconnect(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Disconnect(done)).is_ok() {
            let _ = wait.await;
        }
    }

    fn binary_event<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        binary: Vec<Bytes>,
        ack_id: Option<u64>,
    ) -> Result<Packet, Error> {
        let ns = self.shared.namespace.clone();
        // A binary packet must carry at least one attachment.
        if binary.is_empty() {
            Packet::event(ns, event, args, ack_id)
        } else {
            Packet::binary_event(ns, event, args, binary, ack_id)
        }
        .map_err(Error::Encode)
    }

    fn send(&self, packet: &Packet, ack_id: Option<u64>) -> Result<(), Error> {
        self.tx
            .send(Command::Send {
                frames: frames(packet),
                ack_id,
                generation: None,
            })
            .map_err(|_| Error::Disconnected)
    }

    async fn send_with_ack(
        &self,
        id: u64,
        packet: &Packet,
        timeout: Duration,
    ) -> Result<Data, Error> {
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.acks).insert(id, PendingAck { tx, sent_in: None });
        if let Err(e) = self.send(packet, Some(id)) {
            lock(&self.shared.acks).remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => {
                lock(&self.shared.acks).remove(&id);
                Err(Error::Timeout)
            }
        }
    }
}
