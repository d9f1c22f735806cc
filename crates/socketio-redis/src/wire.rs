//! What nodes send each other through Redis, and how it is encoded.
//!
//! Every message is an envelope: a version byte, a JSON header (who sent
//! it, its sequence number, the namespace, and the operation), then binary
//! attachments (the already encoded Engine.IO frames of a broadcast, or the
//! binary arguments of an event), each with its kind and length:
//!
//! ```text
//! u8 version = 1 | u32 header_len | header JSON | u32 count | (u8 kind, u32 len, bytes)*
//! ```
//!
//! Frames travel encoded, so a receiving node queues them as they are,
//! without decoding or re-encoding the Socket.IO packet.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use socketio::{AckError, BroadcastOptions, Data, SocketData};

use crate::error::ClusterError;

const VERSION: u8 = 1;

/// Which sockets an operation selects, as sent between nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Targets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) except: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) except_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) volatile: bool,
}

impl Targets {
    pub(crate) fn from_opts(opts: &BroadcastOptions) -> Self {
        Self {
            rooms: opts.rooms.iter().map(|r| r.to_string()).collect(),
            except: opts.except.iter().map(|r| r.to_string()).collect(),
            except_id: opts.except_id.as_deref().map(str::to_owned),
            volatile: opts.volatile,
        }
    }

    /// The options for this node only.
    pub(crate) fn to_local_opts(&self) -> BroadcastOptions {
        BroadcastOptions {
            rooms: self.rooms.iter().map(|r| r.as_str().into()).collect(),
            except: self.except.iter().map(|r| r.as_str().into()).collect(),
            except_id: self.except_id.as_deref().map(Into::into),
            local: true,
            volatile: self.volatile,
        }
    }
}

/// One acknowledgement as sent back: the arguments, or why none came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireAck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) args: Option<Vec<serde_json::Value>>,
    /// How many attachments (in order) belong to this ack.
    #[serde(default)]
    pub(crate) binary: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The operation a message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Body {
    /// Encoded frames (the attachments) for the selected sockets.
    Broadcast { targets: Targets },
    /// The selected sockets join `rooms` (`socketsJoin`).
    Join {
        targets: Targets,
        rooms: Vec<String>,
    },
    /// The selected sockets leave `rooms` (`socketsLeave`).
    Leave {
        targets: Targets,
        rooms: Vec<String>,
    },
    /// The selected sockets are disconnected (`disconnectSockets`).
    Disconnect { targets: Targets },
    /// An event for the servers (`serverSideEmit`).
    ServerEvent {
        event: String,
        args: Vec<serde_json::Value>,
    },
    /// Request: describe the selected sockets (`fetchSockets`).
    FetchSockets { request: u64, targets: Targets },
    /// Request: emit to the selected sockets and return their acks; the
    /// attachments are the event's binary arguments.
    AckBroadcast {
        request: u64,
        targets: Targets,
        event: String,
        args: serde_json::Value,
        timeout_ms: u64,
    },
    /// Answer to `FetchSockets`.
    Sockets {
        request: u64,
        sockets: Vec<SocketData>,
    },
    /// Answer to `AckBroadcast`; attachments are the acks' binaries.
    Acks { request: u64, acks: Vec<WireAck> },
}

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The sending node.
    pub(crate) node: String,
    /// The sender's sequence number for messages on room and namespace
    /// topics (0 elsewhere); copies of one message share it.
    #[serde(default)]
    pub(crate) seq: u64,
    /// The namespace it concerns (empty for answers).
    #[serde(default)]
    pub(crate) ns: String,
    #[serde(flatten)]
    pub(crate) body: Body,
}

/// An attachment: a text frame, or binary data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attachment {
    Text(Bytes),
    Binary(Bytes),
}

impl Attachment {
    pub(crate) fn from_frame(frame: &engineio::SharedFrame) -> Self {
        if frame.is_text() {
            Attachment::Text(frame.payload_bytes())
        } else {
            Attachment::Binary(frame.payload_bytes())
        }
    }

    /// The frame again (a text attachment that is not UTF-8 is refused).
    pub(crate) fn to_frame(&self) -> Result<engineio::SharedFrame, ClusterError> {
        match self {
            Attachment::Text(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| ClusterError::Decode("text frame is not UTF-8".into()))?;
                Ok(engineio::SharedFrame::text(text.to_owned()))
            }
            Attachment::Binary(bytes) => Ok(engineio::SharedFrame::binary(bytes)),
        }
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Attachment::Text(b) | Attachment::Binary(b) => b,
        }
    }
}

/// Encodes a message.
pub(crate) fn encode(header: &Header, attachments: &[Attachment]) -> Result<Vec<u8>, ClusterError> {
    let json = serde_json::to_vec(header).map_err(|e| ClusterError::Decode(e.to_string()))?;
    let size: usize = attachments
        .iter()
        .map(|a| match a {
            Attachment::Text(b) | Attachment::Binary(b) => 5 + b.len(),
        })
        .sum();
    let mut out = BytesMut::with_capacity(9 + json.len() + size);
    out.put_u8(VERSION);
    out.put_u32(len_u32(json.len())?);
    out.put_slice(&json);
    out.put_u32(len_u32(attachments.len())?);
    for attachment in attachments {
        let (kind, bytes) = match attachment {
            Attachment::Text(b) => (0u8, b),
            Attachment::Binary(b) => (1u8, b),
        };
        out.put_u8(kind);
        out.put_u32(len_u32(bytes.len())?);
        out.put_slice(bytes);
    }
    Ok(out.to_vec())
}

fn len_u32(len: usize) -> Result<u32, ClusterError> {
    u32::try_from(len).map_err(|_| ClusterError::Decode("message too large".into()))
}

/// Decodes a message; never panics on malformed input.
pub(crate) fn decode(payload: &[u8]) -> Result<(Header, Vec<Attachment>), ClusterError> {
    let bad = |what: &str| ClusterError::Decode(format!("malformed message: {what}"));
    let mut buf = Bytes::copy_from_slice(payload);
    if buf.remaining() < 5 || buf.get_u8() != VERSION {
        return Err(bad("version"));
    }
    let header_len = buf.get_u32() as usize;
    if buf.remaining() < header_len {
        return Err(bad("header length"));
    }
    let header_bytes = buf.split_to(header_len);
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|e| bad(&format!("header: {e}")))?;
    if buf.remaining() < 4 {
        return Err(bad("attachment count"));
    }
    let count = buf.get_u32() as usize;
    // Each attachment takes at least 5 bytes: bounds the allocation.
    if count > buf.remaining() / 5 {
        return Err(bad("attachment count"));
    }
    let mut attachments = Vec::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 5 {
            return Err(bad("attachment header"));
        }
        let kind = buf.get_u8();
        let len = buf.get_u32() as usize;
        if buf.remaining() < len {
            return Err(bad("attachment length"));
        }
        let bytes = buf.split_to(len);
        attachments.push(match kind {
            0 => Attachment::Text(bytes),
            1 => Attachment::Binary(bytes),
            _ => return Err(bad("attachment kind")),
        });
    }
    if buf.has_remaining() {
        return Err(bad("trailing bytes"));
    }
    Ok((header, attachments))
}

/// Acks as sent back, with their binaries as attachments.
pub(crate) fn encode_acks(results: Vec<Result<Data, AckError>>) -> (Vec<WireAck>, Vec<Attachment>) {
    let mut acks = Vec::with_capacity(results.len());
    let mut attachments = Vec::new();
    for result in results {
        acks.push(match result {
            Ok(data) => {
                let binary = data.binary.len();
                attachments.extend(data.binary.into_iter().map(Attachment::Binary));
                WireAck {
                    args: Some(data.args),
                    binary,
                    error: None,
                }
            }
            Err(err) => WireAck {
                args: None,
                binary: 0,
                error: Some(
                    match err {
                        AckError::Timeout => "timeout",
                        AckError::Disconnected => "disconnected",
                        AckError::Encode(_) => "encode",
                    }
                    .into(),
                ),
            },
        });
    }
    (acks, attachments)
}

/// The acks back from their wire form.
pub(crate) fn decode_acks(
    acks: Vec<WireAck>,
    attachments: Vec<Attachment>,
) -> Vec<Result<Data, AckError>> {
    let mut attachments = attachments.into_iter();
    acks.into_iter()
        .map(|ack| match ack.args {
            Some(args) => Ok(Data {
                args,
                binary: attachments
                    .by_ref()
                    .take(ack.binary)
                    .map(Attachment::into_bytes)
                    .collect(),
            }),
            None => Err(match ack.error.as_deref() {
                Some("disconnected") => AckError::Disconnected,
                Some("encode") => AckError::Encode("on another node".into()),
                _ => AckError::Timeout,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let header = Header {
            node: "n1".into(),
            seq: 7,
            ns: "/".into(),
            body: Body::Broadcast {
                targets: Targets {
                    rooms: vec!["a".into(), "b".into()],
                    except: vec!["c".into()],
                    except_id: Some("id".into()),
                    volatile: false,
                },
            },
        };
        let attachments = vec![
            Attachment::Text(Bytes::from_static(b"42[\"x\"]")),
            Attachment::Binary(Bytes::from_static(&[0, 1, 2])),
        ];
        let bytes = encode(&header, &attachments).unwrap();
        let (h, a) = decode(&bytes).unwrap();
        assert_eq!(h, header);
        assert_eq!(a, attachments);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut huge = bytes[..5].to_vec();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn acks_keep_their_binaries_apart() {
        let results = vec![
            Ok(Data {
                args: vec![serde_json::json!(1)],
                binary: vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")],
            }),
            Err(AckError::Timeout),
            Ok(Data {
                args: vec![],
                binary: vec![Bytes::from_static(b"z")],
            }),
        ];
        let (acks, attachments) = encode_acks(results.clone());
        assert_eq!(decode_acks(acks, attachments), results);
    }
}
