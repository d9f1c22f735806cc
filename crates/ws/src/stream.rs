//! [`WebSocket`]: one established connection over an async transport.
//!
//! Owns the IO loop around [`ws_proto::Connection`]: reading into a
//! per-thread scratch buffer (an idle connection keeps no read buffer of its
//! own; only the bytes of a read that held more than one message are kept),
//! writing queued frames with vectored writes, flushing what is queued before
//! each blocking read so replies to a burst go out in one write, keepalive
//! pings, and the closing sequence (flush the close frame, then shut the
//! transport down). Protocol rules are `ws-proto`'s business.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use ws_proto::{CloseCode, CloseFrame, Connection, Message, Role, SharedFrame};

use crate::{Error, WebSocketConfig};

/// Size of the per-thread read buffer: one read takes at most this much.
const SCRATCH_SIZE: usize = 64 * 1024;

/// Most slices handed to one vectored write.
const MAX_WRITE_SLICES: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// Bytes that followed a handshake, in a buffer of their own: splitting
/// them off the handshake buffer would keep that whole buffer alive for the
/// connection's life.
pub(crate) fn leftover(bytes: &[u8]) -> BytesMut {
    if bytes.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(bytes)
    }
}

/// Keepalive timer state, present only when pings are configured.
#[derive(Debug)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    last_heard: Instant,
    ping_sent_at: Option<Instant>,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// A terminal error is waiting for the close frame to be flushed.
    Failing,
    /// Closed: flush, shut down, then report the end.
    ShuttingDown,
    /// `recv` has reported the end.
    Done,
}

/// An established WebSocket connection.
///
/// Receive with [`WebSocket::recv`]; send with [`WebSocket::send`], or queue
/// several messages with [`WebSocket::queue`] and write them together with
/// [`WebSocket::flush`] (queued output is also flushed by `recv` before it
/// waits for input, so a receive loop that queues replies needs no explicit
/// flush).
pub struct WebSocket<S> {
    io: S,
    proto: Connection,
    /// Input read but not yet decoded.
    pending: BytesMut,
    phase: Phase,
    /// Boxed: rare, and kept out of every idle connection's size.
    failure: Option<Box<Error>>,
    max_write_buffer: usize,
    close_timeout: Duration,
    keepalive: Option<Box<Keepalive>>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("proto", &self.proto)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport on which the opening handshake already happened.
    pub fn from_raw(io: S, role: Role, config: &WebSocketConfig) -> Self {
        Self::from_parts(
            io,
            Connection::new(role, config.protocol.clone()),
            BytesMut::new(),
            config,
        )
    }

    pub(crate) fn from_parts(
        io: S,
        proto: Connection,
        leftover: BytesMut,
        config: &WebSocketConfig,
    ) -> Self {
        let keepalive = config.ping_interval.map(|interval| {
            let now = Instant::now();
            Box::new(Keepalive {
                interval,
                timeout: config.ping_timeout,
                sleep: Box::pin(tokio::time::sleep_until(now + interval)),
                last_heard: now,
                ping_sent_at: None,
            })
        });
        Self {
            io,
            proto,
            pending: leftover,
            phase: Phase::Open,
            failure: None,
            max_write_buffer: config.max_write_buffer,
            close_timeout: config.close_timeout,
            keepalive,
        }
    }

    /// The protocol state (role, compression, queued bytes).
    pub fn protocol(&self) -> &Connection {
        &self.proto
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.proto.pending_output()
    }

    /// Receives the next message. Pings are answered automatically and still
    /// reported. Returns `None` once the connection is closed (after a
    /// `Close` message, or after an error was reported).
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues a message without writing it. Fails with
    /// [`Error::WriteBufferFull`] when the peer is not keeping up.
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.check_write_room()?;
        Ok(self.proto.send(message)?)
    }

    /// Queues a frame encoded once for many connections (see
    /// [`SharedFrame`]); bytes are shared, not copied, where possible.
    pub fn queue_shared(&mut self, frame: &SharedFrame) -> Result<(), Error> {
        self.check_write_room()?;
        Ok(self.proto.send_shared(frame)?)
    }

    fn check_write_room(&self) -> Result<(), Error> {
        if self.proto.pending_output() > self.max_write_buffer {
            Err(Error::WriteBufferFull {
                limit: self.max_write_buffer,
            })
        } else {
            Ok(())
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_write_queued(cx)).await
    }

    /// Sends a message: queue it and write everything queued.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.proto.send(message)?;
        self.flush().await
    }

    /// Closes the connection: sends a close frame, waits (up to the close
    /// timeout) for the peer's, then shuts the transport down.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.proto.close(frame)?;
        let deadline = self.close_timeout;
        let drain = async {
            while let Some(message) = self.recv().await {
                message?;
            }
            Ok::<_, Error>(())
        };
        match tokio::time::timeout(deadline, drain).await {
            Ok(result) => result,
            Err(_) => {
                self.proto.set_transport_closed();
                let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
                self.phase = Phase::Done;
                Err(Error::Timeout("the peer's close frame"))
            }
        }
    }

    /// Poll form of [`WebSocket::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.phase {
                Phase::Open => {}
                Phase::Failing => {
                    // Best effort: the close frame explains the failure.
                    let _ = ready!(self.poll_write_queued(cx));
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.phase = Phase::Done;
                    return Poll::Ready(self.failure.take().map(|e| Err(*e)));
                }
                Phase::ShuttingDown => {
                    if let Err(e) = ready!(self.poll_write_queued(cx)) {
                        self.phase = Phase::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.phase = Phase::Done;
                    return Poll::Ready(None);
                }
                Phase::Done => return Poll::Ready(None),
            }

            if !self.pending.is_empty() {
                match self.proto.receive(&self.pending) {
                    Ok((used, message)) => {
                        self.pending.advance(used);
                        if self.pending.is_empty() {
                            self.pending = BytesMut::new();
                        }
                        if let Some(message) = message {
                            return Poll::Ready(Some(Ok(self.delivered(cx, message))));
                        }
                    }
                    Err(e) => {
                        self.pending = BytesMut::new();
                        self.fail(Error::Protocol(e));
                    }
                }
                continue;
            }

            // About to wait for input: write what is queued first.
            if self.proto.pending_output() > 0 {
                if let Poll::Ready(Err(e)) = self.poll_write_queued(cx) {
                    self.proto.set_transport_closed();
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if self.proto.is_closed() {
                self.phase = Phase::ShuttingDown;
                continue;
            }
            if let Some(err) = self.poll_keepalive(cx) {
                self.fail(err);
                continue;
            }

            match ready!(self.poll_read_and_decode(cx)) {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(self.delivered(cx, message)))),
                Ok(None) => continue,
                Err(ReadEnd::Eof) => {
                    let clean = self.proto.close_sent();
                    self.proto.set_transport_closed();
                    self.phase = Phase::Done;
                    return Poll::Ready(if clean {
                        None
                    } else {
                        Some(Err(Error::AbnormalClosure))
                    });
                }
                Err(ReadEnd::Io(e)) => {
                    self.proto.set_transport_closed();
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Err(ReadEnd::Protocol(e)) => self.fail(Error::Protocol(e)),
            }
        }
    }

    /// Bookkeeping for a message about to be handed to the caller.
    fn delivered(&mut self, cx: &mut Context<'_>, message: Message) -> Message {
        if let Message::Close(_) = message {
            // Try to get the close reply out now, in case the caller stops
            // polling after seeing the close.
            let _ = self.poll_write_queued(cx);
        }
        message
    }

    fn fail(&mut self, err: Error) {
        self.failure = Some(Box::new(err));
        self.phase = Phase::Failing;
    }

    /// Reads once into the scratch buffer and decodes. Bytes beyond the first
    /// complete message are kept in `pending`.
    fn poll_read_and_decode(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>, ReadEnd>> {
        SCRATCH.with(|cell| {
            let mut owned;
            let mut borrowed;
            let scratch: &mut [u8] = match cell.try_borrow_mut() {
                Ok(b) => {
                    borrowed = b;
                    &mut borrowed[..]
                }
                Err(_) => {
                    owned = vec![0u8; SCRATCH_SIZE];
                    &mut owned[..]
                }
            };
            let mut buf = ReadBuf::new(scratch);
            if let Err(e) = ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                return Poll::Ready(Err(ReadEnd::Io(e)));
            }
            let input = buf.filled();
            if input.is_empty() {
                return Poll::Ready(Err(ReadEnd::Eof));
            }
            if let Some(k) = &mut self.keepalive {
                k.last_heard = Instant::now();
                k.ping_sent_at = None;
            }
            let mut pos = 0;
            while pos < input.len() {
                let (used, message) = self
                    .proto
                    .receive(&input[pos..])
                    .map_err(ReadEnd::Protocol)?;
                pos += used;
                if message.is_some() {
                    if pos < input.len() {
                        self.pending.extend_from_slice(&input[pos..]);
                    }
                    return Poll::Ready(Ok(message));
                }
            }
            Poll::Ready(Ok(None))
        })
    }

    /// Drives the keepalive timer; returns an error when the peer missed
    /// its deadline.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        let k = self.keepalive.as_mut()?;
        while k.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match k.ping_sent_at {
                Some(sent) if k.last_heard < sent => {
                    self.proto
                        .fail_with(CloseCode::POLICY_VIOLATION, "keepalive timeout");
                    return Some(Error::Timeout("a keepalive pong"));
                }
                _ if now >= k.last_heard + k.interval => {
                    if self.proto.send(Message::Ping(Default::default())).is_ok() {
                        k.ping_sent_at = Some(now);
                        k.sleep.as_mut().reset(now + k.timeout);
                        let _ = self.poll_write_queued(cx);
                        return None;
                    }
                    return None;
                }
                _ => {
                    k.ping_sent_at = None;
                    let next = k.last_heard + k.interval;
                    k.sleep.as_mut().reset(next);
                }
            }
        }
        None
    }

    /// Writes queued output until it is all written or the transport would
    /// block.
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.proto.pending_output() > 0 {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let n = self.proto.output_slices(&mut slices);
                let io = Pin::new(&mut self.io);
                if n == 1 {
                    ready!(io.poll_write(cx, &slices[0]))?
                } else {
                    ready!(io.poll_write_vectored(cx, &slices[..n]))?
                }
            };
            if written == 0 {
                return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())));
            }
            self.proto.advance_output(written);
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

/// Why a read produced no message.
enum ReadEnd {
    Eof,
    Io(std::io::Error),
    Protocol(ws_proto::Error),
}
