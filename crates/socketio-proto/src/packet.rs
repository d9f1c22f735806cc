//! The packet: decoding, validation, construction and encoding.
//!
//! [`Packet::decode`] turns one engine.io text message into a [`Packet`]
//! without copying: the namespace and the JSON payload are slices of the
//! input. It checks everything the wire format defines — type digit,
//! attachment count, namespace syntax, acknowledgement id, and the JSON shape
//! each type requires — but does not interpret payloads beyond that. Binary
//! packets come back as [`Decoded::AwaitingAttachments`]; the
//! [`BinaryAssembler`](crate::BinaryAssembler) completes them. Encoding
//! writes the header and payload with a single allocation, so a broadcast can
//! encode once and share the result. Namespaces, rooms, and when
//! acknowledgements time out are the server crate's concern.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ws_proto::Utf8Bytes;

use crate::json::{self, Shape};
use crate::namespace::{self, Namespace};
use crate::{Error, PacketKind, PartialPacket};

/// One Socket.IO packet.
///
/// Wire format: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`,
/// followed, for BINARY_EVENT and BINARY_ACK, by that many binary
/// engine.io messages.
///
/// Packets from [`Packet::decode`], [`Packet::new`] and the named
/// constructors are valid. The fields are public for cheap access; a packet
/// whose fields were changed by hand is encoded as it stands, so keep the
/// rules listed on [`Packet::new`].
///
/// ```
/// use socketio_proto::{Decoded, Packet, PacketKind};
///
/// let Decoded::Complete(p) = Packet::decode(r#"2/chat,7["msg","hi"]"#.into())? else {
///     unreachable!("not a binary packet");
/// };
/// assert_eq!(p.kind, PacketKind::Event);
/// assert_eq!(p.namespace, "/chat");
/// assert_eq!(p.ack_id, Some(7));
/// assert_eq!(p.event_name()?, "msg");
///
/// let reply = Packet::ack(p.namespace.clone(), 7, &("ok",))?;
/// let (text, attachments) = reply.encode();
/// assert_eq!(text.as_str(), r#"3/chat,7["ok"]"#);
/// assert!(attachments.is_empty());
/// # Ok::<(), socketio_proto::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketKind,
    /// The namespace; `/` when the header names none.
    pub namespace: Namespace,
    /// The acknowledgement id: the id an EVENT asks to be acknowledged with,
    /// or the id an ACK answers.
    pub ack_id: Option<u64>,
    /// The raw JSON payload, as it appeared on the wire. For binary packets
    /// it holds `{"_placeholder":true,"num":N}` objects where the
    /// attachments go.
    pub payload: Option<Utf8Bytes>,
    /// The binary attachments of a BINARY_EVENT or BINARY_ACK, in order.
    pub attachments: Vec<Bytes>,
}

/// The result of [`Packet::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A packet that is complete as it is.
    Complete(Packet),
    /// A BINARY_EVENT or BINARY_ACK header that announced one or more
    /// attachments, which arrive as the next binary messages.
    AwaitingAttachments(PartialPacket),
}

/// What the header parser found: ranges into the text, not yet sliced.
struct Parsed {
    kind: PacketKind,
    attachments: usize,
    namespace: Option<std::ops::Range<usize>>,
    ack_id: Option<u64>,
    payload: Option<std::ops::Range<usize>>,
}

/// Index of the first non-digit at or after `i`.
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Parses ASCII digits; `None` on overflow or if empty.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

fn parse(text: &Utf8Bytes) -> Result<Parsed, Error> {
    // Bytes throughout: the text is valid UTF-8 already, and every split
    // falls on an ASCII delimiter.
    let b = text.as_bytes();
    let &first = b.first().ok_or(Error::EmptyPacket)?;
    let kind = PacketKind::from_digit(first).ok_or_else(|| {
        Error::UnknownPacketType(text.as_str().chars().next().unwrap_or_default())
    })?;
    let mut i = 1;

    let mut attachments = 0;
    let end = digits_end(b, i);
    let dash = b.get(end) == Some(&b'-');
    if kind.is_binary() {
        if !dash {
            return Err(Error::MissingAttachmentCount);
        }
        let count = b.get(i..end).and_then(parse_u64);
        attachments = count
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::InvalidAttachmentCount)?;
        i = end + 1;
    } else if dash && end > i {
        return Err(Error::UnexpectedAttachmentCount(kind));
    }

    let mut ns = None;
    if b.get(i) == Some(&b'/') {
        let rest = b.get(i..).unwrap_or_default();
        let (ns_end, next) = match rest.iter().position(|&c| c == b',') {
            Some(p) => (i + p, i + p + 1),
            None => (b.len(), b.len()),
        };
        if !namespace::is_valid(b.get(i..ns_end).unwrap_or_default()) {
            return Err(Error::InvalidNamespace);
        }
        ns = Some(i..ns_end);
        i = next;
    }

    let mut ack_id = None;
    let end = digits_end(b, i);
    if end > i {
        if !kind.allows_ack_id() {
            return Err(Error::UnexpectedAckId(kind));
        }
        ack_id = Some(
            b.get(i..end)
                .and_then(parse_u64)
                .ok_or(Error::InvalidAckId)?,
        );
        i = end;
    }

    let payload = (i < b.len()).then_some(i..b.len());
    validate(
        kind,
        ack_id,
        payload.as_ref().and_then(|r| b.get(r.clone())),
    )?;
    Ok(Parsed {
        kind,
        attachments,
        namespace: ns,
        ack_id,
        payload,
    })
}

/// The per-type rules on ack id and payload.
fn validate(kind: PacketKind, ack_id: Option<u64>, payload: Option<&[u8]>) -> Result<(), Error> {
    if ack_id.is_some() && !kind.allows_ack_id() {
        return Err(Error::UnexpectedAckId(kind));
    }
    if ack_id.is_none() && kind.is_ack() {
        return Err(Error::MissingAckId(kind));
    }
    let Some(payload) = payload else {
        return match kind {
            PacketKind::Connect | PacketKind::Disconnect => Ok(()),
            _ => Err(Error::MissingPayload(kind)),
        };
    };
    let shape = match kind {
        PacketKind::Disconnect => return Err(Error::UnexpectedPayload(kind)),
        PacketKind::Connect => Shape::Object,
        PacketKind::Event | PacketKind::BinaryEvent => Shape::EventArray,
        PacketKind::Ack | PacketKind::BinaryAck => Shape::Array,
        PacketKind::ConnectError => Shape::ObjectOrString,
    };
    json::check_shape(payload, shape, kind)
}

/// Slices already-validated UTF-8 at ASCII boundaries without re-checking
/// the text.
fn sub(text: &Utf8Bytes, range: std::ops::Range<usize>) -> Option<Utf8Bytes> {
    text.slice(range)
}

/// The decimal digits of `n`, written into the end of `buf`.
fn decimal_digits(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// Appends the decimal digits of `n`.
fn push_decimal(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    for &d in decimal_digits(n, &mut buf) {
        out.push(char::from(d));
    }
}

/// Appends the decimal digits of `n` to bytes.
fn push_decimal_bytes(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal_digits(n, &mut buf));
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

fn into_utf8(buf: Vec<u8>) -> Result<Utf8Bytes, Error> {
    Utf8Bytes::try_from(Bytes::from(buf))
        .map_err(|_| Error::Serialize(json::custom_error("serializer produced invalid UTF-8")))
}

/// `["name",args...]` from a name and arguments serializing to an array.
fn event_payload<T: Serialize + ?Sized>(name: &str, args: &T) -> Result<Utf8Bytes, Error> {
    let mut buf = Vec::with_capacity(name.len() + 64);
    buf.push(b'[');
    json::push_json_str(&mut buf, name);
    let mark = buf.len();
    serde_json::to_writer(&mut buf, args).map_err(Error::Serialize)?;
    json::splice_args(&mut buf, mark)?;
    into_utf8(buf)
}

/// `[args...]` from arguments serializing to an array (or null).
fn ack_payload<T: Serialize + ?Sized>(args: &T) -> Result<Utf8Bytes, Error> {
    let mut buf = Vec::with_capacity(64);
    serde_json::to_writer(&mut buf, args).map_err(Error::Serialize)?;
    json::normalize_args(&mut buf)?;
    into_utf8(buf)
}

impl Packet {
    /// Decodes one text message (the engine.io message payload, without its
    /// `4` prefix).
    ///
    /// Zero-copy: the namespace and payload share `text`'s buffer. A
    /// BINARY_EVENT or BINARY_ACK announcing one or more attachments comes
    /// back as [`Decoded::AwaitingAttachments`]; feed it the following binary
    /// messages, or let a [`BinaryAssembler`](crate::BinaryAssembler) do
    /// it, which also caps the announced count. This function allocates
    /// nothing for the count, whatever it claims.
    ///
    /// Accepted leniently, as the reference implementation does: a
    /// namespace not followed by `,` when nothing comes after it (`0/admin`),
    /// an explicit main namespace (`2/,["a"]`), leading zeros in numbers, JSON
    /// whitespace, and a CONNECT_ERROR payload that is a bare string
    /// (protocol v4). The placeholders in a binary packet are not checked
    /// against the attachment count.
    ///
    /// # Errors
    ///
    /// Any violation of the format: see the variants of [`Error`]. Notably
    /// ACK needs an ack id; EVENT needs a non-empty array starting with a
    /// string; CONNECT takes an optional object; DISCONNECT takes nothing;
    /// CONNECT, DISCONNECT and CONNECT_ERROR take no ack id; JSON nested
    /// deeper than 128 levels is rejected.
    ///
    /// ```
    /// use socketio_proto::{Decoded, Packet};
    ///
    /// let Decoded::AwaitingAttachments(partial) =
    ///     Packet::decode(r#"51-["hello",{"_placeholder":true,"num":0}]"#.into())?
    /// else {
    ///     unreachable!()
    /// };
    /// assert_eq!(partial.expected(), 1);
    /// let Decoded::Complete(p) = partial.push(bytes::Bytes::from_static(&[1, 2, 3])) else {
    ///     unreachable!()
    /// };
    /// assert_eq!(p.event_name()?, "hello");
    /// assert_eq!(p.attachments.len(), 1);
    ///
    /// assert!(Packet::decode(r#"3["no ack id"]"#.into()).is_err());
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn decode(text: Utf8Bytes) -> Result<Decoded, Error> {
        let parsed = parse(&text)?;
        let namespace = match parsed.namespace {
            Some(r) if r.len() > 1 => {
                Namespace::from_checked(sub(&text, r).ok_or(Error::InvalidNamespace)?)
            }
            _ => Namespace::main(),
        };
        let payload = match parsed.payload {
            Some(r) => Some(sub(&text, r).ok_or_else(|| {
                Error::InvalidJson(json::custom_error("payload is not valid UTF-8"))
            })?),
            None => None,
        };
        let packet = Packet {
            kind: parsed.kind,
            namespace,
            ack_id: parsed.ack_id,
            payload,
            attachments: Vec::new(),
        };
        Ok(if parsed.attachments == 0 {
            Decoded::Complete(packet)
        } else {
            Decoded::AwaitingAttachments(PartialPacket::new(packet, parsed.attachments))
        })
    }

    /// Builds a packet from parts, checking the same rules as the decoder:
    ///
    /// - ACK and BINARY_ACK need an ack id; CONNECT, DISCONNECT and
    ///   CONNECT_ERROR take none;
    /// - the payload must be JSON of the type's shape: EVENT a non-empty
    ///   array starting with a string, ACK an array, CONNECT an object or
    ///   nothing, CONNECT_ERROR an object (or string), DISCONNECT nothing;
    /// - only BINARY_EVENT and BINARY_ACK have attachments.
    ///
    /// Use it to send pre-serialized JSON without copying it.
    ///
    /// # Errors
    ///
    /// The [`Error`] that decoding the encoded packet would give, or
    /// [`Error::UnexpectedAttachmentCount`].
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet, PacketKind};
    ///
    /// let args = ws_proto::Utf8Bytes::from(r#"[{"pre":"serialized"}]"#);
    /// let p = Packet::new(PacketKind::Ack, Namespace::main(), Some(3), Some(args), vec![])?;
    /// assert_eq!(p.encode().0.as_str(), r#"33[{"pre":"serialized"}]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn new(
        kind: PacketKind,
        namespace: Namespace,
        ack_id: Option<u64>,
        payload: Option<Utf8Bytes>,
        attachments: Vec<Bytes>,
    ) -> Result<Packet, Error> {
        if !attachments.is_empty() && !kind.is_binary() {
            return Err(Error::UnexpectedAttachmentCount(kind));
        }
        validate(kind, ack_id, payload.as_ref().map(Utf8Bytes::as_bytes))?;
        Ok(Packet {
            kind,
            namespace,
            ack_id,
            payload,
            attachments,
        })
    }

    /// A CONNECT packet without payload: a client joining `namespace`.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// assert_eq!(Packet::connect(Namespace::main()).encode().0.as_str(), "0");
    /// assert_eq!(Packet::connect(Namespace::new("/admin")?).encode().0.as_str(), "0/admin,");
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn connect(namespace: Namespace) -> Packet {
        Packet::bare(PacketKind::Connect, namespace, None)
    }

    /// A CONNECT packet with a payload, such as a client's auth object.
    ///
    /// # Errors
    ///
    /// [`Error::PayloadNotObject`] unless `payload` serializes to a JSON
    /// object; [`Error::Serialize`] if it does not serialize.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let auth = serde_json::json!({"token": "123"});
    /// let p = Packet::connect_with(Namespace::new("/admin")?, &auth)?;
    /// assert_eq!(p.encode().0.as_str(), r#"0/admin,{"token":"123"}"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn connect_with<T: Serialize + ?Sized>(
        namespace: Namespace,
        payload: &T,
    ) -> Result<Packet, Error> {
        let buf = serde_json::to_vec(payload).map_err(Error::Serialize)?;
        if buf.first() != Some(&b'{') {
            return Err(Error::PayloadNotObject);
        }
        Ok(Packet::bare(
            PacketKind::Connect,
            namespace,
            Some(into_utf8(buf)?),
        ))
    }

    /// The server's CONNECT reply accepting a client into `namespace`:
    /// `0{"sid":"..."}`, or `0/admin,{"sid":"..."}`.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::connect_reply(Namespace::new("/admin")?, "oSO0OpakMV_3jnilAAAA");
    /// assert_eq!(p.encode().0.as_str(), r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn connect_reply(namespace: Namespace, sid: &str) -> Packet {
        let mut buf = String::with_capacity(sid.len() + 10);
        buf.push_str("{\"sid\":");
        json::push_json_string(&mut buf, sid);
        buf.push('}');
        Packet::bare(PacketKind::Connect, namespace, Some(Utf8Bytes::from(buf)))
    }

    /// A CONNECT_ERROR packet refusing `namespace`: `4{"message":"..."}`.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::connect_error(Namespace::main(), "Not authorized");
    /// assert_eq!(p.encode().0.as_str(), r#"4{"message":"Not authorized"}"#);
    /// ```
    pub fn connect_error(namespace: Namespace, message: &str) -> Packet {
        let mut buf = String::with_capacity(message.len() + 14);
        buf.push_str("{\"message\":");
        json::push_json_string(&mut buf, message);
        buf.push('}');
        Packet::bare(
            PacketKind::ConnectError,
            namespace,
            Some(Utf8Bytes::from(buf)),
        )
    }

    /// A CONNECT_ERROR packet with extra `data` for the client's
    /// `connect_error` handler: `4{"message":"...","data":...}`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if `data` does not serialize.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::connect_error_with_data(Namespace::main(), "Nope", &[1, 2])?;
    /// assert_eq!(p.encode().0.as_str(), r#"4{"message":"Nope","data":[1,2]}"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn connect_error_with_data<T: Serialize + ?Sized>(
        namespace: Namespace,
        message: &str,
        data: &T,
    ) -> Result<Packet, Error> {
        let mut buf = Vec::with_capacity(message.len() + 64);
        buf.extend_from_slice(b"{\"message\":");
        json::push_json_str(&mut buf, message);
        buf.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut buf, data).map_err(Error::Serialize)?;
        buf.push(b'}');
        Ok(Packet::bare(
            PacketKind::ConnectError,
            namespace,
            Some(into_utf8(buf)?),
        ))
    }

    /// A DISCONNECT packet leaving `namespace`.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// assert_eq!(Packet::disconnect(Namespace::new("/admin")?).encode().0.as_str(), "1/admin,");
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn disconnect(namespace: Namespace) -> Packet {
        Packet::bare(PacketKind::Disconnect, namespace, None)
    }

    /// An EVENT packet `["name", args...]`.
    ///
    /// `args` must serialize to a JSON array, whose elements become the
    /// event's arguments: a tuple (`&("a", 1)`, or `&(x,)` for one
    /// argument), a slice, a `Vec`, or `&()` for none. Elements may be
    /// `Box<RawValue>` or `&RawValue` to pass pre-serialized JSON through.
    ///
    /// # Errors
    ///
    /// [`Error::ArgsNotArray`] if `args` serializes to something other than
    /// an array or `null`; [`Error::Serialize`] if it does not serialize.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "hey", &("Jude",), None)?;
    /// assert_eq!(p.encode().0.as_str(), r#"2["hey","Jude"]"#);
    /// let p = Packet::event(Namespace::new("/admin")?, "foo", &(), Some(13))?;
    /// assert_eq!(p.encode().0.as_str(), r#"2/admin,13["foo"]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn event<T: Serialize + ?Sized>(
        namespace: Namespace,
        name: &str,
        args: &T,
        ack_id: Option<u64>,
    ) -> Result<Packet, Error> {
        Ok(Packet {
            kind: PacketKind::Event,
            namespace,
            ack_id,
            payload: Some(event_payload(name, args)?),
            attachments: Vec::new(),
        })
    }

    /// An ACK packet answering event `ack_id` with `args`, which must
    /// serialize to a JSON array (or `null` for none), as for
    /// [`Packet::event`].
    ///
    /// # Errors
    ///
    /// [`Error::ArgsNotArray`] or [`Error::Serialize`], as for
    /// [`Packet::event`].
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// assert_eq!(Packet::ack(Namespace::main(), 12, &())?.encode().0.as_str(), "312[]");
    /// // Echo an event's arguments back without re-parsing them into values.
    /// let Ok(socketio_proto::Decoded::Complete(ev)) = Packet::decode(r#"25["echo",{"a":1},2]"#.into())
    /// else { unreachable!() };
    /// let ack = Packet::ack(ev.namespace.clone(), 5, &ev.args()?)?;
    /// assert_eq!(ack.encode().0.as_str(), r#"35[{"a":1},2]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn ack<T: Serialize + ?Sized>(
        namespace: Namespace,
        ack_id: u64,
        args: &T,
    ) -> Result<Packet, Error> {
        Ok(Packet {
            kind: PacketKind::Ack,
            namespace,
            ack_id: Some(ack_id),
            payload: Some(ack_payload(args)?),
            attachments: Vec::new(),
        })
    }

    /// A BINARY_EVENT packet: like [`Packet::event`], with `args` already
    /// holding a [`Placeholder`](crate::Placeholder) (or
    /// [`placeholder`](crate::placeholder) value) where each attachment
    /// goes. The encoder writes the attachment count. Without attachments
    /// it is a plain EVENT, as the reference encoder makes it.
    ///
    /// # Errors
    ///
    /// As for [`Packet::event`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use socketio_proto::{Namespace, Packet, Placeholder};
    ///
    /// let p = Packet::binary_event(
    ///     Namespace::main(),
    ///     "baz",
    ///     &(Placeholder::new(0),),
    ///     vec![Bytes::from_static(&[1, 2, 3, 4])],
    ///     None,
    /// )?;
    /// let (text, attachments) = p.encode();
    /// assert_eq!(text.as_str(), r#"51-["baz",{"_placeholder":true,"num":0}]"#);
    /// assert_eq!(attachments, [Bytes::from_static(&[1, 2, 3, 4])]);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn binary_event<T: Serialize + ?Sized>(
        namespace: Namespace,
        name: &str,
        args: &T,
        attachments: Vec<Bytes>,
        ack_id: Option<u64>,
    ) -> Result<Packet, Error> {
        Ok(Packet {
            kind: if attachments.is_empty() {
                PacketKind::Event
            } else {
                PacketKind::BinaryEvent
            },
            namespace,
            ack_id,
            payload: Some(event_payload(name, args)?),
            attachments,
        })
    }

    /// A BINARY_ACK packet: like [`Packet::ack`], with placeholders in
    /// `args` for the attachments (a plain ACK without attachments).
    ///
    /// # Errors
    ///
    /// As for [`Packet::ack`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use socketio_proto::{Namespace, Packet, Placeholder};
    ///
    /// let p = Packet::binary_ack(
    ///     Namespace::main(),
    ///     15,
    ///     &("bar", Placeholder::new(0)),
    ///     vec![Bytes::from_static(&[1, 2, 3, 4])],
    /// )?;
    /// assert_eq!(p.encode().0.as_str(), r#"61-15["bar",{"_placeholder":true,"num":0}]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn binary_ack<T: Serialize + ?Sized>(
        namespace: Namespace,
        ack_id: u64,
        args: &T,
        attachments: Vec<Bytes>,
    ) -> Result<Packet, Error> {
        Ok(Packet {
            kind: if attachments.is_empty() {
                PacketKind::Ack
            } else {
                PacketKind::BinaryAck
            },
            namespace,
            ack_id: Some(ack_id),
            payload: Some(ack_payload(args)?),
            attachments,
        })
    }

    /// An EVENT named `name` carrying the arguments of `source` (an EVENT,
    /// ACK, or binary form of either) copied verbatim, without parsing them;
    /// the fast way to re-emit or broadcast what a client sent. If `source`
    /// has attachments they are shared (not copied) and the result is a
    /// BINARY_EVENT; its placeholders still match.
    ///
    /// # Errors
    ///
    /// As for [`Packet::args_json`] on `source`.
    ///
    /// ```
    /// use socketio_proto::{Decoded, Namespace, Packet};
    ///
    /// let Decoded::Complete(msg) = Packet::decode(r#"2["message",1,"2",{"3":[true]}]"#.into())? else {
    ///     unreachable!()
    /// };
    /// let back = Packet::event_from(Namespace::main(), "message-back", &msg, None)?;
    /// assert_eq!(back.encode().0.as_str(), r#"2["message-back",1,"2",{"3":[true]}]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn event_from(
        namespace: Namespace,
        name: &str,
        source: &Packet,
        ack_id: Option<u64>,
    ) -> Result<Packet, Error> {
        let args = source.args_json()?;
        let mut buf = String::with_capacity(name.len() + args.len() + 4);
        buf.push('[');
        json::push_json_string(&mut buf, name);
        if !args.is_empty() {
            buf.push(',');
            buf.push_str(args);
        }
        buf.push(']');
        Ok(Packet {
            kind: if source.attachments.is_empty() {
                PacketKind::Event
            } else {
                PacketKind::BinaryEvent
            },
            namespace,
            ack_id,
            payload: Some(Utf8Bytes::from(buf)),
            attachments: source.attachments.clone(),
        })
    }

    /// An ACK answering `ack_id` with the arguments of `source` (an EVENT,
    /// ACK, or binary form of either) copied verbatim, without parsing them:
    /// the fast path for echoing an event's arguments back. Attachments are
    /// shared as for [`Packet::event_from`], making a BINARY_ACK.
    ///
    /// # Errors
    ///
    /// As for [`Packet::args_json`] on `source`.
    ///
    /// ```
    /// use socketio_proto::{Decoded, Packet};
    ///
    /// let Decoded::Complete(ev) = Packet::decode(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#.into())? else {
    ///     unreachable!()
    /// };
    /// let ack = Packet::ack_from(ev.namespace.clone(), 456, &ev)?;
    /// assert_eq!(ack.encode().0.as_str(), r#"3456[1,"2",{"3":[false]}]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn ack_from(namespace: Namespace, ack_id: u64, source: &Packet) -> Result<Packet, Error> {
        let args = source.args_json()?;
        let mut buf = String::with_capacity(args.len() + 2);
        buf.push('[');
        buf.push_str(args);
        buf.push(']');
        Ok(Packet {
            kind: if source.attachments.is_empty() {
                PacketKind::Ack
            } else {
                PacketKind::BinaryAck
            },
            namespace,
            ack_id: Some(ack_id),
            payload: Some(Utf8Bytes::from(buf)),
            attachments: source.attachments.clone(),
        })
    }

    fn bare(kind: PacketKind, namespace: Namespace, payload: Option<Utf8Bytes>) -> Packet {
        Packet {
            kind,
            namespace,
            ack_id: None,
            payload,
            attachments: Vec::new(),
        }
    }

    /// The payload text, if any.
    pub fn payload_str(&self) -> Option<&str> {
        self.payload.as_ref().map(Utf8Bytes::as_str)
    }

    /// The event name of an EVENT or BINARY_EVENT, reading only the first
    /// array element: borrowed unless the name has JSON escapes.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnEvent`] for other kinds; [`Error::MissingPayload`] or
    /// [`Error::InvalidPayload`] if the payload was altered into something
    /// that does not start with a string.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "chat message", &("hi",), None)?;
    /// assert_eq!(p.event_name()?, "chat message");
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn event_name(&self) -> Result<Cow<'_, str>, Error> {
        self.event_view()?.name()
    }

    /// The arguments as raw JSON, borrowed from the payload: for EVENT and
    /// BINARY_EVENT the elements after the name, for ACK and BINARY_ACK all
    /// elements. Placeholders are left in place.
    ///
    /// `Vec<&RawValue>` serializes back to a JSON array verbatim, so it can
    /// be handed straight to [`Packet::ack`] or [`Packet::event`].
    ///
    /// # Errors
    ///
    /// [`Error::NotAnEvent`] for CONNECT, DISCONNECT and CONNECT_ERROR;
    /// payload errors if the payload was altered into something invalid.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "move", &(1, [2, 3]), None)?;
    /// let args = p.args()?;
    /// assert_eq!(args.len(), 2);
    /// assert_eq!(args[1].get(), "[2,3]");
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn args(&self) -> Result<Vec<&RawValue>, Error> {
        self.elements()
    }

    /// The payload of an EVENT or BINARY_EVENT, read once for both its name
    /// and its arguments: [`EventView::name`] and [`EventView::args_values`]
    /// give what [`Packet::event_name`] and [`Packet::args_values`] give.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnEvent`] for other types; [`Error::MissingPayload`].
    ///
    /// ```
    /// use socketio_proto::{Decoded, Packet};
    ///
    /// let Decoded::Complete(p) = Packet::decode(r#"2["echo","hi",1]"#.into())? else {
    ///     unreachable!()
    /// };
    /// let event = p.event_view()?;
    /// assert_eq!(event.name()?, "echo");
    /// assert_eq!(event.args_values()?, vec![serde_json::json!("hi"), serde_json::json!(1)]);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn event_view(&self) -> Result<EventView<'_>, Error> {
        if !self.kind.is_event() {
            return Err(Error::NotAnEvent(self.kind));
        }
        let payload = self
            .payload
            .as_ref()
            .ok_or(Error::MissingPayload(self.kind))?;
        Ok(EventView {
            kind: self.kind,
            payload,
        })
    }

    /// Appends the encoding of `Packet::ack(namespace, ack_id, args)` to
    /// `out` without building the packet: a server can put its transport's
    /// framing in front and send the buffer as it is. On error `out` is left
    /// as it was.
    ///
    /// # Errors
    ///
    /// As for [`Packet::ack`].
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let mut out = b"4".to_vec();
    /// Packet::write_ack(&mut out, &Namespace::new("/chat")?, 7, &("ok", 1))?;
    /// assert_eq!(out, br#"43/chat,7["ok",1]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn write_ack<T: Serialize + ?Sized>(
        out: &mut Vec<u8>,
        namespace: &Namespace,
        ack_id: u64,
        args: &T,
    ) -> Result<(), Error> {
        let start = out.len();
        out.push(PacketKind::Ack.digit());
        if !namespace.is_main() {
            out.extend_from_slice(namespace.as_bytes());
            out.push(b',');
        }
        push_decimal_bytes(out, ack_id);
        let mark = out.len();
        let written = serde_json::to_writer(&mut *out, args).map_err(Error::Serialize);
        let shaped = written.and_then(|()| {
            let tail = out.get(mark..).unwrap_or_default();
            if tail == b"null" {
                out.truncate(mark);
                out.extend_from_slice(b"[]");
                Ok(())
            } else if tail.first() == Some(&b'[') {
                Ok(())
            } else {
                Err(Error::ArgsNotArray)
            }
        });
        if shaped.is_err() {
            out.truncate(start);
        }
        shaped
    }

    /// The arguments as `serde_json::Value`s (see [`Packet::args`]), for
    /// callers that want a tree. Placeholders stay in place as objects.
    ///
    /// # Errors
    ///
    /// As for [`Packet::args`].
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::ack(Namespace::main(), 1, &("a", 2))?;
    /// assert_eq!(p.args_values()?, vec![serde_json::json!("a"), serde_json::json!(2)]);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn args_values(&self) -> Result<Vec<serde_json::Value>, Error> {
        if !self.kind.allows_ack_id() {
            return Err(Error::NotAnEvent(self.kind));
        }
        let payload = self
            .payload
            .as_ref()
            .ok_or(Error::MissingPayload(self.kind))?;
        json::array_values(payload, self.kind.is_event(), self.kind)
    }

    /// The arguments as raw JSON text, without parsing them: the elements
    /// [`Packet::args`] would return, comma-separated, without the brackets
    /// (`1,{"a":2}` for the EVENT payload `["name",1,{"a":2}]`; `""` for
    /// none). Reads only the event name and the brackets.
    ///
    /// # Errors
    ///
    /// As for [`Packet::args`]. A payload changed by hand is only checked
    /// for its outline here.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "move", &(1, [2, 3]), None)?;
    /// assert_eq!(p.args_json()?, "1,[2,3]");
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn args_json(&self) -> Result<&str, Error> {
        if !self.kind.allows_ack_id() {
            return Err(Error::NotAnEvent(self.kind));
        }
        let payload = self.payload_str().ok_or(Error::MissingPayload(self.kind))?;
        json::elements_text(payload, self.kind.is_event(), self.kind)
    }

    fn elements<'a, T: Deserialize<'a>>(&'a self) -> Result<Vec<T>, Error> {
        if !self.kind.allows_ack_id() {
            return Err(Error::NotAnEvent(self.kind));
        }
        let payload = self.payload_str().ok_or(Error::MissingPayload(self.kind))?;
        json::array_elements(payload, self.kind.is_event(), self.kind)
    }

    /// Deserializes the whole payload into `T`, borrowing from it where `T`
    /// allows; e.g. an event as `(String, MyArgs)`, or a CONNECT auth object.
    ///
    /// # Errors
    ///
    /// [`Error::MissingPayload`] if there is none; [`Error::InvalidPayload`]
    /// or [`Error::InvalidJson`] if it does not deserialize into `T`.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "add", &(2, 3), None)?;
    /// let (name, a, b): (&str, i32, i32) = p.payload_as()?;
    /// assert_eq!((name, a + b), ("add", 5));
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn payload_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        let payload = self.payload_str().ok_or(Error::MissingPayload(self.kind))?;
        serde_json::from_str(payload).map_err(|e| json::json_error(e, self.kind))
    }

    /// The type written on the wire: EVENT and ACK become BINARY_EVENT and
    /// BINARY_ACK when the packet has attachments.
    pub fn wire_kind(&self) -> PacketKind {
        if self.attachments.is_empty() {
            self.kind
        } else {
            self.kind.to_binary()
        }
    }

    /// The exact length in bytes of the encoded text.
    pub fn encoded_len(&self) -> usize {
        let kind = self.wire_kind();
        let mut len = 1;
        if kind.is_binary() {
            len += decimal_len(self.attachments.len() as u64) + 1;
        }
        if !self.namespace.is_main() {
            len += self.namespace.as_bytes().len() + 1;
        }
        if let Some(id) = self.ack_id {
            len += decimal_len(id);
        }
        len + self.payload.as_ref().map_or(0, Utf8Bytes::len)
    }

    /// Appends the encoded text to `out`, e.g. after an engine.io `4`
    /// prefix, so that the whole frame takes one allocation.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::main(), "hello", &(), None)?;
    /// let mut frame = String::with_capacity(1 + p.encoded_len());
    /// frame.push('4');
    /// p.encode_into(&mut frame);
    /// assert_eq!(frame, r#"42["hello"]"#);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn encode_into(&self, out: &mut String) {
        let kind = self.wire_kind();
        out.reserve(self.encoded_len());
        out.push(char::from(kind.digit()));
        if kind.is_binary() {
            push_decimal(out, self.attachments.len() as u64);
            out.push('-');
        }
        if !self.namespace.is_main() {
            out.push_str(self.namespace.as_str());
            out.push(',');
        }
        if let Some(id) = self.ack_id {
            push_decimal(out, id);
        }
        if let Some(payload) = &self.payload {
            out.push_str(payload.as_str());
        }
    }

    /// Encodes the packet: the text message, in one exactly-sized
    /// allocation, and the attachments to send after it as binary messages
    /// (empty unless [`Packet::wire_kind`] is binary; cloning `Bytes` copies
    /// no data). Both can be shared across every socket of a broadcast.
    ///
    /// ```
    /// use socketio_proto::{Namespace, Packet};
    ///
    /// let p = Packet::event(Namespace::new("/admin")?, "bar", &(), None)?;
    /// let (text, attachments) = p.encode();
    /// assert_eq!(text.as_str(), r#"2/admin,["bar"]"#);
    /// assert!(attachments.is_empty());
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn encode(&self) -> (Utf8Bytes, Vec<Bytes>) {
        let mut out = String::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        let attachments = if self.wire_kind().is_binary() {
            self.attachments.clone()
        } else {
            Vec::new()
        };
        (Utf8Bytes::from(out), attachments)
    }
}

/// An EVENT's payload, from [`Packet::event_view`].
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    kind: PacketKind,
    payload: &'a Utf8Bytes,
}

impl<'a> EventView<'a> {
    /// The event name, as [`Packet::event_name`] gives it.
    ///
    /// # Errors
    ///
    /// As for [`Packet::event_name`].
    pub fn name(&self) -> Result<Cow<'a, str>, Error> {
        json::first_string(self.payload.as_bytes(), self.kind)
    }

    /// The arguments after the name, as [`Packet::args_values`] gives them.
    ///
    /// # Errors
    ///
    /// As for [`Packet::args_values`].
    pub fn args_values(&self) -> Result<Vec<serde_json::Value>, Error> {
        json::array_values(self.payload, true, self.kind)
    }
}
