//! One Engine.IO session: its id, its queue of outgoing packets, which
//! transport carries it, and how it ends.
//!
//! The transports (a pending poll, or the WebSocket task) wait on the
//! session's [`Notify`] and drain the queue; anyone holding a [`Socket`] can
//! queue packets from any task. Heartbeats run on a small task per session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use ws::SharedFrame;

/// The transport a session is using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// Why a session ended. The strings are the reference server's reasons,
/// which Socket.IO shows to applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport (or sent a close packet).
    TransportClose,
    /// The transport failed (read/write error, a second concurrent poll,
    /// a body over the size limit).
    TransportError,
    /// No pong arrived within the ping timeout.
    PingTimeout,
    /// The client sent something that is not an Engine.IO packet.
    ParseError,
    /// The server closed the session.
    ServerClose,
    /// The client was too slow to take its packets.
    SlowClient,
}

impl CloseReason {
    /// The reason as the reference implementation names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::ServerClose => "forced close",
            Self::SlowClient => "transport error",
        }
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) queue: VecDeque<SharedFrame>,
    pub(crate) transport: TransportKind,
    /// A WebSocket probe succeeded and the pending poll must be released
    /// with a noop.
    pub(crate) noop_pending: bool,
    /// A WebSocket is probing this polling session; a second one is refused.
    pub(crate) upgrading: bool,
    /// A poll request is waiting.
    pub(crate) poll_active: bool,
    pub(crate) closed: Option<CloseReason>,
}

/// Shared state of one session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: Box<str>,
    pub(crate) state: Mutex<State>,
    pub(crate) wake: Notify,
    pub(crate) pong_seen: AtomicBool,
    /// The WebSocket task is running the handler for a message it read:
    /// whatever is queued meanwhile is written when the handler returns, so
    /// queueing need not wake that task (which would cost it a spare turn).
    pub(crate) dispatching: AtomicBool,
    /// Frames were queued since the WebSocket task last drained the queue
    /// (set and cleared under the state lock; read without it as a hint).
    pub(crate) queued: AtomicBool,
    /// Woken on each pong, so the next ping is scheduled from it.
    pub(crate) pong: Notify,
    max_queued: usize,
    request: RequestInfo,
    /// The application's state for this session (see [`Socket::set_data`]).
    data: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// What a session keeps of its handshake request, compactly: the header
/// block is one owned buffer, turned back into a `HeaderMap` on demand.
#[derive(Debug)]
struct RequestInfo {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    /// `name\0value\0` for each header, in order.
    headers: Box<[u8]>,
    peer: Option<std::net::SocketAddr>,
}

impl RequestInfo {
    /// An owned copy of the request: the server's header values are slices
    /// of the HTTP connection's read buffer, and keeping them would keep
    /// that whole buffer alive for the session's life.
    fn new(parts: &http::request::Parts) -> Self {
        let mut headers = Vec::new();
        for (name, value) in &parts.headers {
            headers.extend_from_slice(name.as_str().as_bytes());
            headers.push(0);
            headers.extend_from_slice(value.as_bytes());
            headers.push(0);
        }
        let uri = parts
            .uri
            .path_and_query()
            .and_then(|pq| http::Uri::try_from(pq.as_str()).ok())
            .unwrap_or_default();
        Self {
            method: parts.method.clone(),
            uri,
            version: parts.version,
            headers: headers.into_boxed_slice(),
            peer: parts.extensions.get::<std::net::SocketAddr>().copied(),
        }
    }

    fn to_parts(&self) -> http::request::Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = self.version;
        let mut fields = self.headers.split(|b| *b == 0);
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name),
                http::HeaderValue::from_bytes(value),
            ) {
                parts.headers.append(name, value);
            }
        }
        if let Some(peer) = self.peer {
            parts.extensions.insert(peer);
        }
        parts
    }
}

impl Session {
    pub(crate) fn new(
        id: String,
        transport: TransportKind,
        max_queued: usize,
        request: http::request::Parts,
    ) -> Self {
        let request = RequestInfo::new(&request);
        Self {
            id: id.into_boxed_str(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                transport,
                noop_pending: false,
                upgrading: false,
                poll_active: false,
                closed: None,
            }),
            wake: Notify::new(),
            pong_seen: AtomicBool::new(true),
            dispatching: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            pong: Notify::new(),
            max_queued,
            request,
            data: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half
        // updated in a way that matters more than losing the session.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a packet; `false` if the session is closed or its queue is
    /// full (then the caller closes it as slow).
    pub(crate) fn push(&self, frame: SharedFrame) -> Result<(), CloseReason> {
        let mut state = self.lock();
        if let Some(reason) = state.closed {
            return Err(reason);
        }
        if state.queue.len() >= self.max_queued {
            return Err(CloseReason::SlowClient);
        }
        state.queue.push_back(frame);
        self.queued.store(true, Ordering::Release);
        drop(state);
        self.wake_writer();
        Ok(())
    }

    /// Wakes the transport to write what was queued, unless the WebSocket
    /// task is inside the handler: it drains the queue right after. Read
    /// after the queue's lock was released: a push that the task's drain
    /// missed sees the flag the task cleared before that drain.
    fn wake_writer(&self) {
        if !self.dispatching.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// Marks the session closed; `true` for the first caller only.
    pub(crate) fn mark_closed(&self, reason: CloseReason) -> bool {
        let mut state = self.lock();
        if state.closed.is_some() {
            return false;
        }
        state.closed = Some(reason);
        drop(state);
        self.wake.notify_one();
        self.wake.notify_waiters();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }
}

/// A handle to one session: queue packets, close it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Socket {
    pub(crate) session: Arc<Session>,
    pub(crate) closer: Arc<dyn Closer>,
}

/// Lets a socket ask its engine to end the session.
pub(crate) trait Closer: Send + Sync + std::fmt::Debug {
    fn close(&self, session: &Arc<Session>, reason: CloseReason);
}

impl Socket {
    /// The session id (`sid`).
    pub fn id(&self) -> &str {
        &self.session.id
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        self.session.lock().transport
    }

    /// The handshake request (method, URI with query, headers, and the
    /// peer address as a `SocketAddr` extension when known), rebuilt from
    /// the session's compact copy.
    pub fn request(&self) -> http::request::Parts {
        self.session.request.to_parts()
    }

    /// Attaches the application's state to this session, once; `false` if
    /// some was attached already. Lets a handler find its state from the
    /// socket without a lookup table.
    pub fn set_data<T: std::any::Any + Send + Sync>(&self, data: T) -> bool {
        self.session.data.set(Box::new(data)).is_ok()
    }

    /// The state attached with [`Socket::set_data`], if it is a `T`.
    pub fn data<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.session.data.get()?.downcast_ref::<T>()
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> bool {
        self.send(crate::text_frame(text))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: Bytes) -> bool {
        self.send(SharedFrame::binary(data))
    }

    /// Queues an encoded packet (see [`crate::text_frame`]). Returns false
    /// if the session is closed; a session whose queue is full is closed.
    pub fn send(&self, frame: SharedFrame) -> bool {
        match self.session.push(frame) {
            Ok(()) => true,
            Err(CloseReason::SlowClient) => {
                self.closer.close(&self.session, CloseReason::SlowClient);
                false
            }
            Err(_) => false,
        }
    }

    /// Queues a packet that may be dropped: if the session already has a
    /// backlog (a slow or disconnected transport), the packet is dropped
    /// and the session is left alone. Returns whether it was queued.
    pub fn send_volatile(&self, frame: SharedFrame) -> bool {
        const VOLATILE_BACKLOG: usize = 16;
        let mut state = self.session.lock();
        if state.closed.is_some() || state.queue.len() >= VOLATILE_BACKLOG {
            return false;
        }
        state.queue.push_back(frame);
        self.session.queued.store(true, Ordering::Release);
        drop(state);
        self.session.wake_writer();
        true
    }

    /// Ends the session.
    pub fn close(&self) {
        self.closer.close(&self.session, CloseReason::ServerClose);
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.session, &other.session)
    }
}

impl Eq for Socket {}

pub(crate) fn pong_received(session: &Session) {
    session.pong_seen.store(true, Ordering::Release);
    session.pong.notify_one();
}
