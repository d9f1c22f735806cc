//! One Engine.IO session: its id, its queue of outgoing packets, which
//! transport carries it, and how it ends.
//!
//! The transports (a pending poll, or the WebSocket task) wait on the
//! session's [`Notify`] and drain the queue; anyone holding a [`Socket`] can
//! queue packets from any task. Heartbeats run on a small task per session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

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
    /// The WebSocket task's waker while it waits for frames; taken by
    /// whoever queues for it (or closes the session), so that a burst of
    /// packets wakes it once. Kept here rather than as a notifier waiter in
    /// the task: a waiter is 64 bytes of every idle session's task, this is
    /// 16 in the session, and the queueing side already holds this lock.
    pub(crate) writer: Option<Waker>,
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
    /// Frames were queued (or the session was closed) since the WebSocket
    /// task last drained the queue (set and cleared under the state lock;
    /// read without it as a hint).
    pub(crate) queued: AtomicBool,
    /// Woken on each pong, so the next ping is scheduled from it.
    pub(crate) pong: Notify,
    max_queued: usize,
    request: RequestInfo,
    /// The application's state for this session (see [`Socket::set_data`]).
    data: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// What a session keeps of its handshake request, compactly: the method,
/// the path and query and the header block are one owned buffer, turned
/// back into request parts on demand.
#[derive(Debug)]
struct RequestInfo {
    /// `method\0path?query\0`, then `name\0value\0` for each header, in
    /// order (none of them may hold a NUL byte).
    head: Box<[u8]>,
    version: http::Version,
    peer: Option<std::net::SocketAddr>,
}

impl RequestInfo {
    /// An owned copy of the request: the server's header values are slices
    /// of the HTTP connection's read buffer, and keeping them would keep
    /// that whole buffer alive for the session's life.
    fn new(parts: &http::request::Parts) -> Self {
        let path_and_query = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
        let mut head = Vec::with_capacity(
            parts.method.as_str().len()
                + path_and_query.len()
                + 2
                + parts
                    .headers
                    .iter()
                    .map(|(name, value)| name.as_str().len() + value.len() + 2)
                    .sum::<usize>(),
        );
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(0);
        head.extend_from_slice(path_and_query.as_bytes());
        head.push(0);
        for (name, value) in &parts.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.push(0);
            head.extend_from_slice(value.as_bytes());
            head.push(0);
        }
        Self {
            head: head.into_boxed_slice(),
            version: parts.version,
            peer: parts.extensions.get::<std::net::SocketAddr>().copied(),
        }
    }

    fn to_parts(&self) -> http::request::Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        let mut fields = self.head.split(|b| *b == 0);
        if let Some(method) = fields.next().and_then(|m| http::Method::from_bytes(m).ok()) {
            parts.method = method;
        }
        // A request without a path and query kept the default URI (`/`).
        parts.uri = fields
            .next()
            .and_then(|pq| http::Uri::try_from(pq).ok())
            .unwrap_or_default();
        parts.version = self.version;
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
                writer: None,
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
        self.wake_writer(state);
        Ok(())
    }

    /// Wakes the transport to write what was queued, unless the WebSocket
    /// task is inside the handler: it drains the queue right after (a push
    /// that the task's drain misses sees the flag the task cleared before
    /// that drain: it locks the state after clearing it). Releases the
    /// lock before waking anyone.
    pub(crate) fn wake_writer(&self, mut state: MutexGuard<'_, State>) {
        if self.dispatching.load(Ordering::Acquire) {
            return;
        }
        let writer = state.writer.take();
        drop(state);
        self.wake.notify_one();
        if let Some(writer) = writer {
            writer.wake();
        }
    }

    /// Registers the WebSocket task to be woken when frames are queued or
    /// the session closes (see [`State::writer`]).
    pub(crate) fn set_writer(&self, waker: &Waker) {
        let mut state = self.lock();
        match &state.writer {
            Some(kept) if kept.will_wake(waker) => {}
            _ => state.writer = Some(waker.clone()),
        }
    }

    /// Marks the session closed; `true` for the first caller only.
    pub(crate) fn mark_closed(&self, reason: CloseReason) -> bool {
        let mut state = self.lock();
        if state.closed.is_some() {
            return false;
        }
        state.closed = Some(reason);
        // The WebSocket task looks at the session when this is set.
        self.queued.store(true, Ordering::Release);
        let writer = state.writer.take();
        drop(state);
        self.wake.notify_one();
        self.wake.notify_waiters();
        if let Some(writer) = writer {
            writer.wake();
        }
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
        self.session.wake_writer(state);
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

#[cfg(test)]
mod request_info_tests {
    use super::RequestInfo;

    #[test]
    fn the_handshake_request_comes_back_whole() {
        let peer: std::net::SocketAddr = "[::1]:4321".parse().unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri("http://example.com/socket.io/?EIO=4&transport=websocket")
            .version(http::Version::HTTP_11)
            .header("cookie", "a=1")
            .header("x-many", "one")
            .header("x-many", "two")
            .header("user-agent", "t\u{e9}st".as_bytes())
            .body(())
            .unwrap();
        req.extensions_mut().insert(peer);
        let (parts, ()) = req.into_parts();
        let back = RequestInfo::new(&parts).to_parts();
        assert_eq!(back.method, http::Method::POST);
        // Only the path and query are kept, as before.
        assert_eq!(back.uri, "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(back.version, http::Version::HTTP_11);
        assert_eq!(back.headers, parts.headers);
        assert_eq!(back.extensions.get::<std::net::SocketAddr>(), Some(&peer));
    }

    #[test]
    fn a_request_without_headers_or_path() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.uri = http::Uri::from_static("example.com:443");
        let back = RequestInfo::new(&parts).to_parts();
        assert_eq!(back.method, http::Method::GET);
        assert_eq!(back.uri, "/");
        assert!(back.headers.is_empty());
        assert!(back.extensions.get::<std::net::SocketAddr>().is_none());
    }
}
