//! The WebSocket transport: a session that starts on WebSocket, or a
//! polling session upgrading to it (probe, noop to the pending poll,
//! upgrade), then one task per session moving packets both ways.

use std::future::{poll_fn, Future};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use engineio_proto::{EngineError, Packet};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use ws::{Message, WebSocket};

use crate::engine::{error_response, Inner, ResponseBody};
use crate::socket::{CloseReason, Session, TransportKind};
use crate::{Handler, SharedFrame};

/// The ping packet, encoded once for every session.
fn ping_frame() -> SharedFrame {
    static PING: std::sync::OnceLock<SharedFrame> = std::sync::OnceLock::new();
    PING.get_or_init(|| SharedFrame::text("2")).clone()
}

/// Answers a WebSocket request: the 101 now, the session on a new task.
pub(crate) fn upgrade<H: Handler, B>(
    inner: &Arc<Inner<H>>,
    req: Request<B>,
    existing: Option<Arc<Session>>,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    if existing.is_none() {
        if let Some(hook) = &inner.config.allow_request {
            if let Err(e) = hook(&parts) {
                return error_response(e);
            }
        }
    }
    let mut req = Request::from_parts(parts, body);
    let (response, mut pending) = match ws::upgrade::<B, ResponseBody>(&mut req, &inner.acceptor) {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!("websocket upgrade refused: {e}");
            return error_response(EngineError::BadRequest);
        }
    };
    let (parts, _) = req.into_parts();
    let inner = inner.clone();
    // This task lives only for the handshake, but many run at once while
    // clients connect: awaited in place and with the (rare) upgrade of a
    // polling session boxed, it is a third of the size.
    tokio::spawn(async move {
        let Ok(socket) = (&mut pending).await else {
            return;
        };
        match existing {
            Some(session) => Box::pin(upgrade_session(inner, socket, session)).await,
            None => {
                let socket_handle = inner.open_session(TransportKind::WebSocket, parts);
                let session = socket_handle.session.clone();
                drop(socket_handle);
                // A task of its own: the handshake's state is freed, and an
                // idle session costs only what `run` keeps.
                tokio::spawn(run(inner, socket, session, true));
            }
        }
    });
    response
}

/// A WebSocket for a session already on WebSocket: the reference server
/// completes the handshake and closes it at once, leaving the session be.
pub(crate) fn refuse<H: Handler, B>(
    inner: &Arc<Inner<H>>,
    mut req: Request<B>,
) -> Response<ResponseBody> {
    let (response, pending) = match ws::upgrade::<B, ResponseBody>(&mut req, &inner.acceptor) {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!("websocket upgrade refused: {e}");
            return error_response(EngineError::BadRequest);
        }
    };
    tokio::spawn(async move {
        if let Ok(mut socket) = pending.await {
            let _ = socket.close(None).await;
        }
    });
    response
}

/// The upgrade dance for a polling session, then the normal loop.
async fn upgrade_session<H, S>(
    inner: Arc<Inner<H>>,
    mut socket: WebSocket<S>,
    session: Arc<Session>,
) where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::sleep(inner.config.upgrade_timeout);
    tokio::pin!(deadline);
    let mut probed = false;
    loop {
        let message = tokio::select! {
            _ = &mut deadline => {
                if probed {
                    session.lock().upgrading = false;
                }
                return;
            }
            m = socket.recv() => m,
        };
        match message {
            Some(Ok(Message::Text(text))) => match text.as_str() {
                "2probe" => {
                    let refused = {
                        let mut state = session.lock();
                        let refused = state.upgrading || state.closed.is_some();
                        state.upgrading = true;
                        refused
                    };
                    if refused {
                        // Another WebSocket is already upgrading this
                        // session: only one may take its packets.
                        let _ = socket.close(None).await;
                        return;
                    }
                    if socket.send(Message::text("3probe")).await.is_err() {
                        session.lock().upgrading = false;
                        return;
                    }
                    probed = true;
                    session.lock().noop_pending = true;
                    session.wake.notify_one();
                }
                "5" if probed => {
                    {
                        let mut state = session.lock();
                        if state.closed.is_some() {
                            return;
                        }
                        state.transport = TransportKind::WebSocket;
                        state.upgrading = false;
                    }
                    // Release a poll still waiting.
                    session.wake.notify_one();
                    break;
                }
                _ => {}
            },
            Some(Ok(_)) => {}
            _ => {
                if probed {
                    session.lock().upgrading = false;
                }
                return;
            }
        }
    }
    // An upgraded session keeps the heartbeat task it had on polling.
    tokio::spawn(run(inner, socket, session, false));
}

/// What woke the session's task.
enum Turn {
    /// A message (or the end) from the WebSocket.
    Message(Option<Result<Message, ws::Error>>),
    /// Frames were queued, or the session closed.
    Queued,
    /// The heartbeat timer.
    Timer,
}

/// Hands a packet read from the WebSocket to the engine. What the handler
/// queues on this session meanwhile does not wake this task: the loop
/// drains the queue as soon as the handler returns.
fn dispatch<H: Handler>(inner: &Inner<H>, session: &Arc<Session>, packet: Packet) {
    session.dispatching.store(true, Ordering::Release);
    inner.on_packet(session, packet);
    session.dispatching.store(false, Ordering::Release);
}

/// Moves packets both ways until the session or the socket ends; with
/// `heartbeat`, also pings an interval after the open and after each pong,
/// and ends the session when a pong is late.
///
/// Not an `async fn`: its future would move each argument (the WebSocket
/// among them) from the slot it was passed in into a second one, and keep
/// both for the session's life. The block below uses what it captured in
/// place.
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
fn run<H, S>(
    inner: Arc<Inner<H>>,
    mut socket: WebSocket<S>,
    session: Arc<Session>,
    heartbeat: bool,
) -> impl Future<Output = ()> + Send
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        let first_ping = if heartbeat {
            inner.config.ping_interval
        } else {
            std::time::Duration::from_secs(86_400 * 365)
        };
        let timer = tokio::time::sleep_until(tokio::time::Instant::now() + first_ping);
        tokio::pin!(timer);
        let mut awaiting_pong = false;
        let mut drained_last = false;
        let ended_by_client = 'session: loop {
            {
                let mut state = session.lock();
                if state.closed.is_some() {
                    break 'session None;
                }
                session.queued.store(false, Ordering::Relaxed);
                let mut drained = 0usize;
                while let Some(frame) = state.queue.pop_front() {
                    drained += 1;
                    if socket.queue_shared(&frame).is_err() {
                        break 'session Some(CloseReason::SlowClient);
                    }
                }
                // An idle session keeps no queue buffer (its first packets
                // would otherwise leave one for its whole life). Released on a
                // turn that found the queue empty (a heartbeat at the latest),
                // not after every drain: a busy session would pay a free and
                // an allocation per frame.
                if drained == 0 && state.queue.capacity() > 0 {
                    state.queue = std::collections::VecDeque::new();
                }
            }
            // Frames another task queued (a broadcast) come first: their writer
            // is the read call below, so reading first would cost a read that
            // finds nothing and a second one after the drain. Not on the turn
            // right after such a drain unless the task slept in between, so
            // that the socket is read however busy the queue. Then the socket,
            // then the queue again (after registering for wake-ups: whoever
            // queues after this check wakes the task), then the heartbeat.
            let mut queued_first = !drained_last;
            let turn = poll_fn(|cx| {
                if queued_first && session.queued.load(Ordering::Acquire) {
                    return Poll::Ready(Turn::Queued);
                }
                if let Poll::Ready(message) = socket.poll_recv(cx) {
                    return Poll::Ready(Turn::Message(message));
                }
                session.set_writer(cx.waker());
                if session.queued.load(Ordering::Acquire) {
                    return Poll::Ready(Turn::Queued);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Turn::Timer);
                }
                queued_first = true;
                Poll::Pending
            })
            .await;
            drained_last = matches!(turn, Turn::Queued);
            match turn {
                Turn::Message(message) => match message {
                    Some(Ok(Message::Text(text))) => match Packet::from_ws_text(text) {
                        Ok(packet) => dispatch(&inner, &session, packet),
                        Err(_) => break 'session Some(CloseReason::ParseError),
                    },
                    Some(Ok(Message::Binary(data))) => {
                        dispatch(&inner, &session, Packet::from_ws_binary(data));
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        break 'session Some(CloseReason::TransportClose)
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break 'session Some(CloseReason::TransportError),
                },
                Turn::Queued => {}
                Turn::Timer => {
                    if awaiting_pong {
                        break 'session Some(CloseReason::PingTimeout);
                    }
                    session.pong_seen.store(false, Ordering::Release);
                    if socket.queue_shared(&ping_frame()).is_err() {
                        break 'session Some(CloseReason::SlowClient);
                    }
                    awaiting_pong = true;
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + inner.config.ping_timeout);
                }
            }
            if awaiting_pong && session.pong_seen.load(Ordering::Acquire) {
                awaiting_pong = false;
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + inner.config.ping_interval);
            }
        };
        // The task is ending: its waker would keep the task's memory for as
        // long as the session is referenced.
        session.lock().writer = None;
        match ended_by_client {
            Some(reason) => inner.close_session(&session, reason),
            None => {
                // Closed by the server: deliver what was queued last (e.g. a
                // Socket.IO disconnect), then close the WebSocket.
                let frames: Vec<SharedFrame> = session.lock().queue.drain(..).collect();
                for frame in &frames {
                    let _ = socket.queue_shared(frame);
                }
                // Boxed: the close handshake's timer and state would otherwise
                // be part of every idle session's task.
                let _ = Box::pin(socket.close(None)).await;
            }
        }
    }
}
