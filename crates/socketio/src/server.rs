//! The server: namespaces (static and dynamic), the Engine.IO handler that
//! turns packets into socket events, connects with middleware, and the
//! connect timeout.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use bytes::Bytes;
use engineio::{CloseReason, Engine};
use socketio_proto::{BinaryAssembler, Packet, PacketKind};
use tokio::net::TcpListener;
use ws::Utf8Bytes;

use crate::broadcast::BroadcastOperator;
use crate::error::DisconnectReason;
use crate::namespace::{Middleware, Namespace, ServerEventHandler, Template};
use crate::sync::{lock, read, write};
use crate::{Socket, SocketIoConfig};

/// One Engine.IO session's Socket.IO state, kept as the session's data
/// (one allocation, no reference count of its own).
struct Client {
    /// Its sockets by namespace: almost always one.
    sockets: Mutex<Sockets>,
    /// A binary packet waiting for its attachments: boxed, and only while
    /// one is waiting (an assembler between packets holds nothing, so a
    /// fresh one per packet behaves the same).
    assembler: Mutex<Option<Box<BinaryAssembler>>>,
}

/// A client's sockets, one per namespace, in the order they connected. The
/// first is kept inline: most clients use one namespace and then need no
/// list buffer.
#[derive(Default)]
struct Sockets {
    first: Option<Socket>,
    more: Vec<Socket>,
}

impl Sockets {
    fn iter(&self) -> impl Iterator<Item = &Socket> {
        self.first.iter().chain(self.more.iter())
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push(&mut self, socket: Socket) {
        if self.first.is_none() {
            self.first = Some(socket);
        } else {
            self.more.push(socket);
        }
    }

    /// Keeps the sockets `keep` accepts, in order.
    fn retain(&mut self, mut keep: impl FnMut(&Socket) -> bool) {
        if self.first.as_ref().is_some_and(|s| !keep(s)) {
            self.first = None;
        }
        self.more.retain(keep);
        if self.first.is_none() && !self.more.is_empty() {
            self.first = Some(self.more.remove(0));
        }
        if self.more.is_empty() {
            self.more = Vec::new();
        }
    }

    /// Takes every socket out, in order.
    fn take_all(&mut self) -> Vec<Socket> {
        let Sockets { first, more } = std::mem::take(self);
        first.into_iter().chain(more).collect()
    }
}

type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub(crate) struct Server {
    config: SocketIoConfig,
    namespaces: RwLock<HashMap<Box<str>, Arc<Namespace>>>,
    dynamic: RwLock<Vec<(Matcher, Template)>>,
    /// Clients that must connect to a namespace by a deadline, oldest
    /// first (every deadline is open time + the same timeout). One sweeper
    /// task serves them all, rather than a timer task per connection.
    deadlines: Mutex<VecDeque<(Instant, engineio::Socket)>>,
    deadline_added: Arc<Notify>,
    sweeper_started: AtomicBool,
}

/// The Engine.IO handler that runs Socket.IO (opaque).
#[derive(Clone)]
pub struct SioHandler(Arc<Server>);

/// A Socket.IO server. Cheap to clone.
#[derive(Clone)]
pub struct SocketIo {
    engine: Engine<SioHandler>,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo").finish_non_exhaustive()
    }
}

/// Adds middleware (and server-side event handlers) to a namespace.
pub struct NamespaceRef {
    middlewares: Arc<RwLock<Vec<Middleware>>>,
    server_events: Arc<RwLock<HashMap<Box<str>, ServerEventHandler>>>,
}

impl NamespaceRef {
    /// Runs `middleware` before each socket is admitted; an `Err(message)`
    /// refuses the connection and the client sees `message` in its
    /// `connect_error`.
    pub fn middleware<F, Fut>(&self, middleware: F) -> &Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        write(&self.middlewares).push(Arc::new(move |socket| Box::pin(middleware(socket))));
        self
    }

    /// Handles `event` when another node's server sends it with
    /// `server_side_emit` (`io.on(event)` of the reference server); it
    /// replaces an earlier handler. Runs on the adapter's task: spawn for
    /// slow work.
    pub fn on_server_event<F>(&self, event: &str, handler: F) -> &Self
    where
        F: Fn(Vec<serde_json::Value>) + Send + Sync + 'static,
    {
        write(&self.server_events).insert(event.into(), Arc::new(handler));
        self
    }
}

impl SocketIo {
    /// A server with `config`. Add namespaces, then serve.
    pub fn new(config: SocketIoConfig) -> Self {
        let server = Arc::new(Server {
            config: config.clone(),
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
            deadlines: Mutex::new(VecDeque::new()),
            deadline_added: Arc::new(Notify::new()),
            sweeper_started: AtomicBool::new(false),
        });
        let engine = Engine::new(config.engine, SioHandler(server));
        Self { engine }
    }

    fn server(&self) -> &Arc<Server> {
        &self.engine.handler().0
    }

    /// Declares namespace `name` (e.g. `"/"`, `"/admin"`); `on_connect`
    /// runs for each socket that connects to it.
    pub fn namespace<F>(&self, name: &str, on_connect: F) -> NamespaceRef
    where
        F: Fn(Socket) + Send + Sync + 'static,
    {
        let template = Template {
            on_connect: Arc::new(on_connect),
            middlewares: Arc::default(),
            server_events: Arc::default(),
        };
        let middlewares = template.middlewares.clone();
        let server_events = template.server_events.clone();
        if let Ok(ns_name) = socketio_proto::Namespace::new(name.to_owned()) {
            let config = &self.server().config;
            let adapter = config.make_adapter(name);
            let ns = Namespace::new(ns_name, template, config.recovery.clone(), adapter);
            write(&self.server().namespaces).insert(name.into(), ns);
        }
        NamespaceRef {
            middlewares,
            server_events,
        }
    }

    /// Declares namespaces created on demand: a CONNECT to an unknown
    /// namespace whose name `matches` creates it with `on_connect`.
    pub fn dynamic_namespace<M, F>(&self, matches: M, on_connect: F) -> NamespaceRef
    where
        M: Fn(&str) -> bool + Send + Sync + 'static,
        F: Fn(Socket) + Send + Sync + 'static,
    {
        let template = Template {
            on_connect: Arc::new(on_connect),
            middlewares: Arc::default(),
            server_events: Arc::default(),
        };
        let middlewares = template.middlewares.clone();
        let server_events = template.server_events.clone();
        write(&self.server().dynamic).push((Arc::new(matches), template));
        NamespaceRef {
            middlewares,
            server_events,
        }
    }

    /// Every socket of namespace `name` (an operator for broadcasts,
    /// `fetchSockets`, `socketsJoin`...). `None` if there is no such
    /// namespace.
    pub fn of(&self, name: &str) -> Option<BroadcastOperator> {
        self.server().namespace(name).map(BroadcastOperator::new)
    }

    /// Sockets of the main namespace in `room`.
    pub fn to(&self, room: &str) -> Option<BroadcastOperator> {
        self.of("/").map(|op| op.to(room))
    }

    /// A tower layer serving Socket.IO under its path in front of another
    /// service (an axum `Router`, a hyper app).
    pub fn layer(&self) -> engineio::EngineLayer<SioHandler> {
        engineio::EngineLayer::new(self.engine.clone())
    }

    /// The Engine.IO server underneath (for `handle` in a larger HTTP app).
    pub fn engine(&self) -> &Engine<SioHandler> {
        &self.engine
    }

    /// Serves Socket.IO on `listener` (404 outside the path prefix).
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.engine.clone().serve(listener).await
    }

    /// Disconnects everyone connected to this node (server shutdown; the
    /// other nodes of a cluster keep their sockets).
    pub fn close(&self) {
        let namespaces: Vec<_> = read(&self.server().namespaces).values().cloned().collect();
        for ns in namespaces {
            BroadcastOperator::new(ns).local().disconnect();
        }
        self.engine.close_all();
    }
}

impl Server {
    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        read(&self.namespaces).get(name).cloned()
    }

    /// The namespace `name`, created from a matching dynamic template.
    fn namespace_or_dynamic(&self, name: &socketio_proto::Namespace) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.namespace(name.as_str()) {
            return Some(ns);
        }
        let template = read(&self.dynamic)
            .iter()
            .find(|(matches, _)| matches(name.as_str()))
            .map(|(_, t)| t.clone())?;
        let mut namespaces = write(&self.namespaces);
        let ns = namespaces.entry(name.as_str().into()).or_insert_with(|| {
            Namespace::new(
                name.clone(),
                template,
                self.config.recovery.clone(),
                self.config.make_adapter(name.as_str()),
            )
        });
        Some(ns.clone())
    }

    fn dispatch(&self, client: &Client, engine: &engineio::Socket, packet: Packet) {
        let socket = lock(&client.sockets)
            .iter()
            .find(|s| s.0.ns.name.as_bytes() == packet.namespace.as_bytes())
            .cloned();
        match packet.kind {
            PacketKind::Connect => {
                if socket.is_none() {
                    self.connect(client, engine, packet);
                }
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                if let Some(socket) = socket {
                    socket.receive(packet);
                }
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                if let Some(socket) = socket {
                    socket.receive(packet);
                }
            }
            PacketKind::Disconnect => {
                if let Some(socket) = socket {
                    lock(&client.sockets).retain(|s| s.namespace() != packet.namespace.as_str());
                    socket.closed(DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            PacketKind::ConnectError => engine.close(),
        }
    }

    fn connect(&self, client: &Client, engine: &engineio::Socket, packet: Packet) {
        let Some(ns) = self.namespace_or_dynamic(&packet.namespace) else {
            let refusal = Packet::connect_error(packet.namespace.clone(), "Invalid namespace");
            let _ = send(engine, &refusal);
            return;
        };
        let mut auth = packet
            .payload_as::<serde_json::Value>()
            .unwrap_or_else(|_| serde_json::json!({}));
        let resume = ns.recovery.as_ref().and_then(|_| take_resume(&mut auth));
        let middlewares = ns.middlewares();
        if resume.is_none() && middlewares.is_empty() {
            admit(
                client,
                &ns,
                Socket::new(ns.clone(), engine.clone(), auth),
                Vec::new(),
            );
            return;
        }
        let engine = engine.clone();
        tokio::spawn(async move {
            let restored = match resume {
                Some((pid, offset)) => ns
                    .adapter
                    .restore_session(&pid, &offset)
                    .await
                    .map(|r| (pid, r)),
                None => None,
            };
            let (socket, missed) = match restored {
                Some((pid, restored)) => {
                    let socket = Socket::with_identity(
                        ns.clone(),
                        engine.clone(),
                        auth,
                        restored.id,
                        Some(Arc::from(pid.as_str())),
                        true,
                    );
                    for room in &restored.rooms {
                        socket.join(room);
                    }
                    (socket, restored.missed)
                }
                None => (Socket::new(ns.clone(), engine.clone(), auth), Vec::new()),
            };
            let skip =
                socket.recovered() && ns.recovery.as_ref().is_some_and(|r| r.skip_middlewares);
            if !skip {
                for middleware in middlewares {
                    if let Err(message) = middleware(socket.clone()).await {
                        let _ = send(&engine, &Packet::connect_error(ns.name.clone(), &message));
                        return;
                    }
                }
            }
            if !engine.is_closed() {
                if let Some(client) = engine.data::<Client>() {
                    admit(client, &ns, socket, missed);
                }
            }
        });
    }
}

/// Takes `pid` and `offset` (a reconnecting client's claim to a dropped
/// session) out of the auth payload.
fn take_resume(auth: &mut serde_json::Value) -> Option<(String, String)> {
    let fields = auth.as_object_mut()?;
    let pid = fields.remove("pid");
    let offset = fields.remove("offset");
    Some((pid?.as_str()?.to_owned(), offset?.as_str()?.to_owned()))
}

fn send(engine: &engineio::Socket, packet: &Packet) -> bool {
    crate::socket::frames(packet)
        .into_iter()
        .all(|frame| engine.send(frame))
}

/// The socket passed its middleware: register it, answer the CONNECT (with
/// the recovery `pid` when recovery is on), replay what a recovered socket
/// missed, and run the namespace's connection handler.
fn admit(client: &Client, ns: &Arc<Namespace>, socket: Socket, missed: Vec<engineio::SharedFrame>) {
    {
        let mut sockets = lock(&client.sockets);
        sockets.retain(|s| s.namespace() != ns.name.as_str());
        sockets.push(socket.clone());
    }
    ns.insert(socket.clone());
    socket.set_connected();
    socket.join(socket.id());
    let reply = match socket.pid() {
        Some(pid) => Packet::connect_with(
            ns.name.clone(),
            &serde_json::json!({ "sid": socket.id(), "pid": &**pid }),
        )
        .unwrap_or_else(|_| Packet::connect_reply(ns.name.clone(), socket.id())),
        None => Packet::connect_reply(ns.name.clone(), socket.id()),
    };
    if socket.send_packet(&reply).is_err() || socket.send_frames(&missed).is_err() {
        return;
    }
    (ns.template.on_connect)(socket.clone());
    socket.release_early();
}

/// Closes clients that did not connect to any namespace in time. Ends when
/// the server is dropped.
async fn sweep_connect_deadlines(server: Weak<Server>) {
    loop {
        let Some(srv) = server.upgrade() else { return };
        let now = Instant::now();
        let mut expired = Vec::new();
        let next = {
            let mut queue = lock(&srv.deadlines);
            while queue.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, engine)) = queue.pop_front() {
                    let idle = engine
                        .data::<Client>()
                        .is_some_and(|c| lock(&c.sockets).is_empty());
                    if idle {
                        expired.push(engine);
                    }
                }
            }
            // The queue grows with a burst of connections (one entry per
            // connection for the connect timeout): give the room back once
            // they have gone through.
            let len = queue.len();
            if queue.capacity() > 64 && len < queue.capacity() / 4 {
                queue.shrink_to(len * 2);
            }
            queue.front().map(|(at, _)| *at)
        };
        let added = srv.deadline_added.clone();
        drop(srv);
        for engine in expired {
            engine.close();
        }
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => added.notified().await,
        }
    }
}

impl SioHandler {
    /// Feeds one Engine.IO message to the session's packet assembler and
    /// dispatches the packet it completes; a malformed packet ends the
    /// session.
    fn feed(
        &self,
        socket: &engineio::Socket,
        step: impl FnOnce(&mut BinaryAssembler) -> Result<Option<Packet>, socketio_proto::Error>,
    ) {
        let Some(client) = socket.data::<Client>() else {
            return;
        };
        let decoded = {
            let mut waiting = lock(&client.assembler);
            let mut assembler = waiting.take().unwrap_or_else(|| {
                Box::new(BinaryAssembler::with_max_attachments(
                    self.0.config.max_attachments,
                ))
            });
            let decoded = step(&mut assembler);
            if assembler.is_pending() {
                *waiting = Some(assembler);
            }
            decoded
        };
        match decoded {
            Ok(Some(packet)) => self.0.dispatch(client, socket, packet),
            Ok(None) => {}
            Err(_) => socket.close(),
        }
    }
}

impl engineio::Handler for SioHandler {
    fn on_open(&self, socket: &engineio::Socket) {
        socket.set_data(Client {
            sockets: Mutex::new(Sockets::default()),
            assembler: Mutex::new(None),
        });
        // A client that never connects to a namespace is dropped.
        let deadline = Instant::now() + self.0.config.connect_timeout;
        lock(&self.0.deadlines).push_back((deadline, socket.clone()));
        self.0.deadline_added.notify_one();
        if !self.0.sweeper_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep_connect_deadlines(Arc::downgrade(&self.0)));
        }
    }

    fn on_message(&self, socket: &engineio::Socket, text: Utf8Bytes) {
        self.feed(socket, |assembler| assembler.feed_text(text));
    }

    fn on_binary(&self, socket: &engineio::Socket, data: Bytes) {
        self.feed(socket, |assembler| assembler.feed_binary(data));
    }

    fn on_close(&self, socket: &engineio::Socket, reason: CloseReason) {
        let Some(client) = socket.data::<Client>() else {
            return;
        };
        let sockets = lock(&client.sockets).take_all();
        let reason = DisconnectReason::from_engine(reason);
        for s in sockets {
            s.closed(reason);
        }
    }
}
