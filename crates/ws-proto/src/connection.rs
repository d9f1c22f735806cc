//! The state machine of one established WebSocket connection.
//!
//! [`Connection`] takes the bytes read from the peer and returns whole
//! [`Message`]s; it takes messages to send and queues their encoded frames.
//! On the way in it reassembles fragments, unmasks, inflates, validates UTF-8
//! incrementally, enforces size limits and role rules, answers pings and
//! close frames, and turns every violation into the right close frame. It
//! keeps no read buffer: a partial frame header (at most 14 bytes) and the
//! message being assembled are all it holds, so an idle connection costs a
//! few hundred bytes.
//!
//! What it leaves to the IO layer: reading and writing sockets, timers
//! (keepalive pings, close timeouts) and closing the transport once
//! [`Connection::is_closed`] says the close handshake is over.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::deflate::{DeflateConfig, DeflateContext, DeflateParams};
use crate::error::{Error, ProtocolViolation};
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask_at;
use crate::message::{Message, Utf8Bytes};
use crate::utf8::{InvalidUtf8, Utf8Validator};
use crate::Role;

/// Limits and behaviour of a connection. Every field has a sane default.
///
/// ```
/// let config = ws_proto::Config::default().max_message_size(1 << 20);
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest single frame payload accepted (default 16 MiB); larger
    /// frames close the connection with 1009.
    pub max_frame_size: usize,
    /// Largest message accepted, after reassembly and decompression
    /// (default 64 MiB); larger messages close the connection with 1009.
    pub max_message_size: usize,
    /// Let a server accept unmasked client frames (default false: such
    /// frames are a protocol error, close 1002).
    pub accept_unmasked_frames: bool,
    /// Answer pings with pongs automatically (default true).
    pub auto_pong: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            accept_unmasked_frames: false,
            auto_pong: true,
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`Config::accept_unmasked_frames`].
    pub fn accept_unmasked_frames(mut self, accept: bool) -> Self {
        self.accept_unmasked_frames = accept;
        self
    }

    /// Sets [`Config::auto_pong`].
    pub fn auto_pong(mut self, auto: bool) -> Self {
        self.auto_pong = auto;
        self
    }
}

/// A server data frame encoded once and sent, as the same bytes, on any
/// number of connections: the basis of broadcast.
///
/// Connections that negotiated compression (or client connections, which
/// must mask) cannot share the bytes and re-encode the payload instead.
///
/// ```
/// use ws_proto::{Config, Connection, Role, SharedFrame};
/// let frame = SharedFrame::text("tick");
/// let mut a = Connection::new(Role::Server, Config::default());
/// let mut b = Connection::new(Role::Server, Config::default());
/// a.send_shared(&frame).unwrap();
/// b.send_shared(&frame).unwrap();
/// assert_eq!(a.pending_output(), 6);
/// ```
#[derive(Debug, Clone)]
pub struct SharedFrame {
    wire: Bytes,
    header_len: usize,
    opcode: OpCode,
}

impl SharedFrame {
    /// Frames a text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::encode(OpCode::Text, text.into().as_bytes())
    }

    /// Frames a binary message.
    pub fn binary(data: impl AsRef<[u8]>) -> Self {
        Self::encode(OpCode::Binary, data.as_ref())
    }

    /// Bytes to leave at the front of a buffer for
    /// [`SharedFrame::text_in_place`]: room for the longest unmasked header.
    pub const HEADER_ROOM: usize = 10;

    /// Frames a text message whose payload was written into `buf` after
    /// [`SharedFrame::HEADER_ROOM`] bytes (whatever they hold): the header
    /// goes into that room, so the payload is neither copied nor, beyond
    /// one UTF-8 check, read again. A `buf` shorter than the room frames an
    /// empty message.
    ///
    /// ```
    /// use ws_proto::SharedFrame;
    /// let mut buf = vec![0; SharedFrame::HEADER_ROOM];
    /// buf.extend_from_slice(b"tick");
    /// let frame = SharedFrame::text_in_place(buf).unwrap();
    /// assert_eq!(&frame.wire_bytes()[..], b"\x81\x04tick");
    /// assert!(SharedFrame::text_in_place(vec![0; 11].into_iter().chain([0xff]).collect()).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] if the payload is not UTF-8.
    pub fn text_in_place(mut buf: Vec<u8>) -> Result<Self, InvalidUtf8> {
        if buf.len() < Self::HEADER_ROOM {
            buf.resize(Self::HEADER_ROOM, 0);
        }
        let payload = buf.get(Self::HEADER_ROOM..).unwrap_or_default();
        std::str::from_utf8(payload).map_err(|_| InvalidUtf8)?;
        let header = FrameHeader::new(OpCode::Text, payload.len() as u64);
        let mut head = [0u8; FrameHeader::MAX_LEN];
        let n = header.encode(&mut head);
        let start = Self::HEADER_ROOM.saturating_sub(n);
        // An unmasked header is at most HEADER_ROOM bytes, so this always
        // fits; otherwise fall back to copying.
        match (buf.get_mut(start..Self::HEADER_ROOM), head.get(..n)) {
            (Some(room), Some(head)) if room.len() == n => room.copy_from_slice(head),
            _ => {
                let payload = buf.get(Self::HEADER_ROOM..).unwrap_or_default();
                return Ok(Self::encode(OpCode::Text, payload));
            }
        }
        let mut wire = Bytes::from(buf);
        wire.advance(start);
        Ok(Self {
            wire,
            header_len: n,
            opcode: OpCode::Text,
        })
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader::new(opcode, payload.len() as u64);
        let mut wire = BytesMut::new();
        crate::frame::encode_frame(&mut wire, header, payload);
        Self {
            wire: wire.freeze(),
            header_len: header.encoded_len(),
            opcode,
        }
    }

    /// The encoded frame, as sent to uncompressed server connections.
    pub fn wire_bytes(&self) -> &Bytes {
        &self.wire
    }

    /// The message payload.
    pub fn payload(&self) -> &[u8] {
        &self.wire[self.header_len..]
    }

    /// The payload as shared bytes (no copy).
    pub fn payload_bytes(&self) -> bytes::Bytes {
        self.wire.slice(self.header_len..)
    }

    /// Whether this is a text frame (else binary).
    pub fn is_text(&self) -> bool {
        self.opcode == OpCode::Text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseState {
    Open,
    /// We sent a close frame and wait for the peer's.
    Sent,
    /// Both sides are done (close frames exchanged, or the connection
    /// failed): flush the output, then close the transport.
    Closed,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes not yet read.
    remaining: u64,
    /// Payload bytes already read (for the mask phase).
    read: usize,
}

/// Encoded frames waiting to be written, in order. Small frames are copied
/// into `tail`; large payloads and shared frames are queued as they are.
#[derive(Debug, Default)]
struct Outbox {
    chunks: Chunks,
    chunks_len: usize,
    tail: BytesMut,
}

/// The queued chunks. One chunk (a write of a single shared frame, the usual
/// case) needs no allocation, and an idle connection keeps none: the queue
/// of a burst of several is freed once they are written.
#[derive(Debug, Default)]
enum Chunks {
    #[default]
    Empty,
    One(Bytes),
    Many(VecDeque<Bytes>),
}

impl Chunks {
    fn push_back(&mut self, bytes: Bytes) {
        *self = match std::mem::take(self) {
            Chunks::Empty => Chunks::One(bytes),
            Chunks::One(first) => {
                let mut many = VecDeque::with_capacity(4);
                many.push_back(first);
                many.push_back(bytes);
                Chunks::Many(many)
            }
            Chunks::Many(mut many) => {
                many.push_back(bytes);
                Chunks::Many(many)
            }
        };
    }

    fn front_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Chunks::Empty => None,
            Chunks::One(first) => Some(first),
            Chunks::Many(many) => many.front_mut(),
        }
    }

    /// Drops the first chunk; the queue's buffer goes with the last one.
    fn pop_front(&mut self) {
        match self {
            Chunks::Empty => {}
            Chunks::One(_) => *self = Chunks::Empty,
            Chunks::Many(many) => {
                many.pop_front();
                if many.is_empty() {
                    *self = Chunks::Empty;
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Bytes> {
        let (one, many) = match self {
            Chunks::Empty => (None, None),
            Chunks::One(first) => (Some(first), None),
            Chunks::Many(many) => (None, Some(many.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

impl Outbox {
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = std::mem::take(&mut self.tail).freeze();
            self.chunks_len += sealed.len();
            self.chunks.push_back(sealed);
        }
    }

    fn push_bytes(&mut self, bytes: Bytes) {
        self.seal_tail();
        self.chunks_len += bytes.len();
        self.chunks.push_back(bytes);
    }

    fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in self.chunks.iter() {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n < dst.len() && !self.tail.is_empty() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                self.chunks_len -= n;
                return;
            }
            n -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
        if n > 0 {
            let n = n.min(self.tail.len());
            self.tail.advance(n);
        }
        if self.tail.is_empty() && self.tail.capacity() > 0 {
            // Give the buffer back: an idle connection holds no write buffer.
            self.tail = BytesMut::new();
        }
    }
}

/// Compression, when negotiated: the context and the smallest message
/// worth compressing, boxed together so that a connection without it
/// carries one pointer.
struct Deflate {
    context: DeflateContext,
    /// Data messages shorter than this are sent uncompressed.
    compress_min_size: usize,
}

/// One WebSocket connection's protocol state. See the module docs.
pub struct Connection {
    role: Role,
    config: Config,
    deflate: Option<Box<Deflate>>,
    close: CloseState,
    /// Bytes of a frame header that arrived without the rest of it.
    header: [u8; FrameHeader::MAX_LEN],
    header_len: u8,
    frame: Option<FrameInProgress>,
    /// Opcode of the data message being assembled (Text or Binary).
    message_opcode: Option<OpCode>,
    message_compressed: bool,
    message: BytesMut,
    control: BytesMut,
    utf8: Utf8Validator,
    out: Outbox,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("close", &self.close)
            .field("compression", &self.deflate.is_some())
            .field("pending_output", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection without compression.
    pub fn new(role: Role, config: Config) -> Self {
        Self {
            role,
            config,
            deflate: None,
            close: CloseState::Open,
            header: [0; FrameHeader::MAX_LEN],
            header_len: 0,
            frame: None,
            message_opcode: None,
            message_compressed: false,
            message: BytesMut::new(),
            control: BytesMut::new(),
            utf8: Utf8Validator::default(),
            out: Outbox::default(),
        }
    }

    /// Enables permessage-deflate with the parameters the handshake
    /// negotiated.
    pub fn with_deflate(mut self, params: DeflateParams, config: &DeflateConfig) -> Self {
        self.deflate = Some(Box::new(Deflate {
            context: DeflateContext::new(params, self.role, config),
            compress_min_size: config.compress_min_size,
        }));
        self
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Feeds bytes read from the peer.
    ///
    /// Returns how many bytes of `input` were consumed and, if a message
    /// completed, that message. Call again with the rest of `input` until it
    /// is all consumed. Input may be split at any byte. Pings are answered
    /// and close frames replied to by queueing output (see
    /// [`Connection::output_slices`]); both are still reported.
    ///
    /// After an error the connection has queued a close frame with the
    /// matching code (see [`Error::close_code`]) and is closed: write out the
    /// pending output, then close the transport.
    pub fn receive(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), Error> {
        if self.close == CloseState::Closed {
            return Err(Error::Closed);
        }
        match self.receive_inner(input) {
            Ok(done) => Ok(done),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn receive_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), Error> {
        let mut pos = 0;
        loop {
            let mut frame = match self.frame {
                Some(frame) => frame,
                None => {
                    let Some(used) = self.read_header(&input[pos..])? else {
                        return Ok((input.len(), None));
                    };
                    pos += used;
                    match self.frame {
                        Some(frame) => frame,
                        None => continue,
                    }
                }
            };
            let available = input.len() - pos;
            let take = frame.remaining.min(available as u64) as usize;
            if take > 0 {
                self.payload_chunk(&frame, &input[pos..pos + take])?;
                pos += take;
                frame.remaining -= take as u64;
                frame.read += take;
            }
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok((pos, None));
            }
            self.frame = None;
            if let Some(message) = self.finish_frame(&frame)? {
                return Ok((pos, Some(message)));
            }
            if pos == input.len() {
                return Ok((pos, None));
            }
        }
    }

    /// Reads a header from the stash plus `input`. Returns the bytes of
    /// `input` used, or `None` if all of it went into the stash.
    fn read_header(&mut self, input: &[u8]) -> Result<Option<usize>, Error> {
        let (header, used) = if self.header_len == 0 {
            match FrameHeader::parse(input)? {
                Some(parsed) => parsed,
                None => {
                    self.header[..input.len()].copy_from_slice(input);
                    self.header_len = input.len() as u8;
                    return Ok(None);
                }
            }
        } else {
            let had = usize::from(self.header_len);
            let add = (FrameHeader::MAX_LEN - had).min(input.len());
            self.header[had..had + add].copy_from_slice(&input[..add]);
            match FrameHeader::parse(&self.header[..had + add])? {
                Some((header, len)) => {
                    self.header_len = 0;
                    (header, len - had)
                }
                None => {
                    self.header_len = (had + add) as u8;
                    return Ok(None);
                }
            }
        };
        self.start_frame(header)?;
        Ok(Some(used))
    }

    /// Checks a header against the connection's state and limits.
    fn start_frame(&mut self, h: FrameHeader) -> Result<(), Error> {
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolViolation::ReservedBits.into());
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) if !self.config.accept_unmasked_frames => {
                return Err(ProtocolViolation::UnmaskedFrame.into())
            }
            (Role::Client, true) => return Err(ProtocolViolation::MaskedFrame.into()),
            _ => {}
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(Error::FrameTooBig {
                size: h.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        if h.opcode.is_control() {
            if h.rsv1 {
                return Err(ProtocolViolation::ReservedBits.into());
            }
            self.control = BytesMut::with_capacity(h.payload_len as usize);
        } else {
            match (h.opcode, self.message_opcode) {
                (OpCode::Continuation, None) => {
                    return Err(ProtocolViolation::UnexpectedContinuation.into())
                }
                (OpCode::Continuation, Some(_)) => {
                    if h.rsv1 {
                        return Err(ProtocolViolation::ReservedBits.into());
                    }
                }
                (_, Some(_)) => return Err(ProtocolViolation::ExpectedContinuation.into()),
                (opcode, None) => {
                    if h.rsv1 && self.deflate.is_none() {
                        return Err(ProtocolViolation::ReservedBits.into());
                    }
                    self.message_opcode = Some(opcode);
                    self.message_compressed = h.rsv1;
                }
            }
            if !self.message_compressed {
                let total = self.message.len() as u64 + h.payload_len;
                if total > self.config.max_message_size as u64 {
                    return Err(Error::MessageTooBig {
                        limit: self.config.max_message_size,
                    });
                }
                // Reserve what arrives, not what the header claims: a
                // 14-byte header must not make us allocate megabytes.
                self.message
                    .reserve((h.payload_len as usize).min(Self::MAX_UPFRONT_RESERVE));
            }
        }
        self.frame = Some(FrameInProgress {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            read: 0,
        });
        Ok(())
    }

    /// Takes in a piece of the current frame's payload.
    fn payload_chunk(&mut self, frame: &FrameInProgress, chunk: &[u8]) -> Result<(), Error> {
        if frame.opcode.is_control() {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            if let Some(key) = frame.mask {
                apply_mask_at(&mut self.control[start..], key, frame.read);
            }
            return Ok(());
        }
        let start = self.message.len();
        if self.message_compressed {
            let Some(deflate) = self.deflate.as_deref_mut().map(|d| &mut d.context) else {
                return Err(ProtocolViolation::ReservedBits.into());
            };
            // Unmask through a small stack buffer on the way to the inflater.
            let mut scratch = [0u8; 1024];
            let mut offset = frame.read;
            for piece in chunk.chunks(scratch.len()) {
                let buf = &mut scratch[..piece.len()];
                buf.copy_from_slice(piece);
                if let Some(key) = frame.mask {
                    apply_mask_at(buf, key, offset);
                }
                offset += piece.len();
                deflate.decompress(buf, false, &mut self.message, self.config.max_message_size)?;
            }
        } else {
            self.message.extend_from_slice(chunk);
            if let Some(key) = frame.mask {
                apply_mask_at(&mut self.message[start..], key, frame.read);
            }
        }
        if self.message_opcode == Some(OpCode::Text) {
            self.utf8.feed(&self.message[start..])?;
        }
        Ok(())
    }

    /// A frame's payload is complete: act on it.
    fn finish_frame(&mut self, frame: &FrameInProgress) -> Result<Option<Message>, Error> {
        match frame.opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.control).freeze();
                if self.config.auto_pong && self.close == CloseState::Open {
                    self.queue_control(OpCode::Pong, &payload);
                }
                Ok(Some(Message::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Message::Pong(
                std::mem::take(&mut self.control).freeze(),
            ))),
            OpCode::Close => {
                let payload = std::mem::take(&mut self.control);
                let frame = CloseFrame::parse(&payload)?;
                if self.close == CloseState::Open {
                    // Echo the peer's code, as RFC 6455 5.5.1 suggests.
                    let mut reply = BytesMut::new();
                    if let Some(f) = &frame {
                        reply.extend_from_slice(&f.code.as_u16().to_be_bytes());
                    }
                    self.queue_control(OpCode::Close, &reply);
                }
                self.close = CloseState::Closed;
                Ok(Some(Message::Close(frame)))
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !frame.fin {
                    return Ok(None);
                }
                if self.message_compressed {
                    let start = self.message.len();
                    if let Some(deflate) = self.deflate.as_deref_mut().map(|d| &mut d.context) {
                        deflate.decompress(
                            &[],
                            true,
                            &mut self.message,
                            self.config.max_message_size,
                        )?;
                    }
                    if self.message_opcode == Some(OpCode::Text) {
                        self.utf8.feed(&self.message[start..])?;
                    }
                }
                let payload = std::mem::take(&mut self.message).freeze();
                let opcode = self.message_opcode.take();
                self.message_compressed = false;
                if opcode == Some(OpCode::Text) {
                    self.utf8.finish()?;
                    Ok(Some(Message::Text(Utf8Bytes::from_validated(payload))))
                } else {
                    Ok(Some(Message::Binary(payload)))
                }
            }
        }
    }

    /// Records a failure: queue the close frame the peer should see, drop
    /// the partial message, and mark the connection closed.
    fn fail(&mut self, err: Error) -> Error {
        if let (Some(code), CloseState::Open) = (err.close_code(), self.close) {
            let frame = CloseFrame::new(code, "");
            let mut payload = BytesMut::new();
            frame.write_payload(&mut payload);
            self.queue_control(OpCode::Close, &payload);
        }
        self.close = CloseState::Closed;
        self.message = BytesMut::new();
        self.control = BytesMut::new();
        self.frame = None;
        self.message_opcode = None;
        self.message_compressed = false;
        self.header_len = 0;
        self.utf8.reset();
        err
    }

    /// Queues a message. Text and binary messages are compressed if
    /// permessage-deflate is in use; `Close` starts the close handshake.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        match message {
            Message::Text(text) => self.send_data(OpCode::Text, text.as_bytes(), None),
            Message::Binary(data) => self.send_data(OpCode::Binary, &data, Some(&data)),
            Message::Ping(data) => self.send_control(OpCode::Ping, &data),
            Message::Pong(data) => self.send_control(OpCode::Pong, &data),
            Message::Close(frame) => self.close(frame),
        }
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_data(OpCode::Text, text.as_bytes(), None)
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_data(OpCode::Binary, data, None)
    }

    /// Queues a frame encoded once for many connections; its bytes are
    /// shared, not copied, when this connection can send them as they are.
    pub fn send_shared(&mut self, frame: &SharedFrame) -> Result<(), Error> {
        if self.close != CloseState::Open {
            return Err(Error::SendAfterClose);
        }
        if self.role == Role::Server && self.deflate.is_none() {
            self.out.push_bytes(frame.wire.clone());
            Ok(())
        } else {
            self.send_data(frame.opcode, frame.payload(), None)
        }
    }

    /// Starts the close handshake (or, if the peer started it, does nothing
    /// more: the reply was already queued).
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.close != CloseState::Open {
            return Ok(());
        }
        let mut payload = BytesMut::new();
        if let Some(frame) = frame {
            frame.write_payload(&mut payload);
        }
        self.queue_control(OpCode::Close, &payload);
        self.close = CloseState::Sent;
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if self.close != CloseState::Open {
            return Err(Error::SendAfterClose);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolViolation::ControlFrameTooLong.into());
        }
        self.queue_control(opcode, payload);
        Ok(())
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.mask = self.mask_key();
        crate::frame::encode_frame(&mut self.out.tail, header, payload);
    }

    fn mask_key(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(rand::random()),
            Role::Server => None,
        }
    }

    /// Most bytes reserved for a frame before its payload arrives.
    const MAX_UPFRONT_RESERVE: usize = 64 * 1024;

    /// Payloads at least this long are queued by reference, not copied.
    const SHARE_PAYLOAD_FROM: usize = 2048;

    fn send_data(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        owned: Option<&Bytes>,
    ) -> Result<(), Error> {
        if self.close != CloseState::Open {
            return Err(Error::SendAfterClose);
        }
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.mask = self.mask_key();
        if let Some(deflate) = self.deflate.as_deref_mut() {
            if payload.len() >= deflate.compress_min_size {
                let mut compressed = BytesMut::with_capacity(payload.len() / 2 + 64);
                deflate.context.compress(payload, &mut compressed)?;
                header.rsv1 = true;
                crate::frame::encode_frame(&mut self.out.tail, header, &compressed);
                return Ok(());
            }
        }
        match owned {
            Some(bytes) if header.mask.is_none() && bytes.len() >= Self::SHARE_PAYLOAD_FROM => {
                header.write_to(&mut self.out.tail);
                self.out.push_bytes(bytes.clone());
            }
            _ => crate::frame::encode_frame(&mut self.out.tail, header, payload),
        }
        Ok(())
    }

    /// Bytes queued for the peer.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Fills `dst` with the queued output in order; returns how many slices
    /// were filled. Write them (vectored), then call
    /// [`Connection::advance_output`] with the number of bytes written.
    pub fn output_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(dst)
    }

    /// Marks `n` bytes of output as written.
    pub fn advance_output(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Takes all queued output as one buffer (convenient for tests and simple
    /// callers; the IO layer uses [`Connection::output_slices`]).
    pub fn take_output(&mut self) -> BytesMut {
        let mut all = BytesMut::with_capacity(self.out.len());
        for chunk in self.out.chunks.iter() {
            all.extend_from_slice(chunk);
        }
        all.extend_from_slice(&self.out.tail);
        self.out = Outbox::default();
        all
    }

    /// We sent a close frame (or the connection failed).
    pub fn close_sent(&self) -> bool {
        self.close != CloseState::Open
    }

    /// The close handshake is over, or the connection failed: nothing more
    /// will be read or sent. Write the pending output, then close the
    /// transport.
    pub fn is_closed(&self) -> bool {
        self.close == CloseState::Closed
    }

    /// Heap bytes this connection holds in its own buffers (the message
    /// being assembled, a control payload, queued output); shared frames
    /// count in full. For memory accounting and limits.
    pub fn buffered_bytes(&self) -> usize {
        self.message.capacity()
            + self.control.capacity()
            + self.out.tail.capacity()
            + self.out.chunks_len
    }

    /// A message is partly received (for idle/timeout decisions).
    pub fn is_mid_message(&self) -> bool {
        self.frame.is_some() || self.message_opcode.is_some() || self.header_len > 0
    }

    /// Marks the connection closed without a close frame (the transport
    /// ended). Further sends fail.
    pub fn set_transport_closed(&mut self) {
        self.close = CloseState::Closed;
    }

    /// Close code helper for callers that fail the connection themselves,
    /// e.g. on a keepalive timeout.
    pub fn fail_with(&mut self, code: CloseCode, reason: &str) {
        if self.close == CloseState::Open {
            let mut payload = BytesMut::new();
            CloseFrame::new(code, reason).write_payload(&mut payload);
            self.queue_control(OpCode::Close, &payload);
        }
        self.close = CloseState::Closed;
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;

    fn server() -> Connection {
        Connection::new(Role::Server, Config::default())
    }

    /// Everything `output_slices` offers, concatenated.
    fn offered(conn: &Connection) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = conn.output_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn one_shared_frame_is_queued_without_a_queue_buffer() {
        let mut conn = server();
        conn.send_shared(&SharedFrame::text("hello")).unwrap();
        assert!(matches!(conn.out.chunks, Chunks::One(_)));
        assert_eq!(offered(&conn), b"\x81\x05hello");
        conn.advance_output(7);
        assert!(matches!(conn.out.chunks, Chunks::Empty));
        assert_eq!(conn.pending_output(), 0);
    }

    #[test]
    fn a_burst_keeps_its_order_and_frees_its_queue_once_written() {
        let mut conn = server();
        conn.send_shared(&SharedFrame::text("a")).unwrap();
        conn.send_text("b").unwrap();
        conn.send_shared(&SharedFrame::text("c")).unwrap();
        conn.send_text("d").unwrap();
        assert!(matches!(conn.out.chunks, Chunks::Many(_)));
        let all = b"\x81\x01a\x81\x01b\x81\x01c\x81\x01d";
        assert_eq!(offered(&conn), all);
        assert_eq!(conn.pending_output(), all.len());
        // Written in odd pieces, across chunk boundaries.
        conn.advance_output(1);
        assert_eq!(offered(&conn), &all[1..]);
        conn.advance_output(4);
        assert_eq!(offered(&conn), &all[5..]);
        conn.advance_output(3);
        assert_eq!(offered(&conn), &all[8..]);
        assert!(matches!(conn.out.chunks, Chunks::Many(_)));
        conn.advance_output(1);
        assert_eq!(offered(&conn), &all[9..]);
        assert!(matches!(conn.out.chunks, Chunks::Empty));
        conn.advance_output(3);
        assert_eq!(conn.pending_output(), 0);
        assert_eq!(conn.out.tail.capacity(), 0);
        // And the next write starts afresh.
        conn.send_shared(&SharedFrame::text("e")).unwrap();
        assert_eq!(offered(&conn), b"\x81\x01e");
        assert_eq!(conn.take_output().as_ref(), b"\x81\x01e");
        assert!(matches!(conn.out.chunks, Chunks::Empty));
    }

    #[test]
    fn slices_stop_at_the_destination_length() {
        let mut conn = server();
        for text in ["1", "2", "3"] {
            conn.send_shared(&SharedFrame::text(text)).unwrap();
        }
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(conn.output_slices(&mut slices), 2);
        assert_eq!(&*slices[1], b"\x81\x012");
    }
}
