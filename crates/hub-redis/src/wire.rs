//! The bytes this crate keeps in Redis and sends over pub/sub.
//!
//! Owns the encoding of a publication's body (time, client info, tags, raw
//! data), of client info on its own (presence entries), and of the pub/sub
//! messages built from them. It knows nothing of keys, connections or Lua:
//! the publish script glues `p<offset>:<epoch>:` in front of a body this
//! module made, and [`decode_message`] takes the result apart.
//!
//! # Formats
//!
//! ```text
//! body     = version(1) time info? tags data
//! time     = zigzag-varint(seconds since the Unix epoch) varint(nanoseconds)
//! info?    = 0x00 | 0x01 info
//! info     = str(user) str(client) opt(conn_info) opt(chan_info)
//! tags     = varint(count) (str(key) str(value))*
//! data     = every remaining byte, exactly as published
//! str, opt = varint(length) bytes; opt is 0x00 (none) or 0x01 then bytes
//!
//! message  = "p" decimal(offset) ":" epoch ":" body   a publication
//!          | "j" version(1) info                      a join
//!          | "l" version(1) info                      a leave
//! ```
//!
//! Offsets are decimal because the Lua script writes them; epochs are
//! alphanumeric, so the two colons are unambiguous. The channel is not in
//! the message: the pub/sub topic names it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hub::{ClientInfo, JoinLeaveKind, Publication};

/// The version byte at the start of bodies and join/leave messages.
const VERSION: u8 = 1;

/// Why bytes from Redis could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes ended in the middle of a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A version byte this build does not know.
    #[error("unknown format version {0}")]
    Version(u8),
    /// A message kind other than `p`, `j` or `l`.
    #[error("unknown message kind {0:#04x}")]
    Kind(u8),
    /// A malformed field.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A decoded pub/sub message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A publication with its offset (0 without history) and epoch.
    Publication {
        /// The publication, offset included.
        publication: Publication,
        /// The epoch of its stream (empty without history).
        epoch: String,
    },
    /// A join or leave.
    JoinLeave {
        /// Which.
        kind: JoinLeaveKind,
        /// Who.
        info: ClientInfo,
    },
}

// ---- encoding ----

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_opt(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        None => out.push(0),
    }
}

fn put_info(out: &mut Vec<u8>, info: &ClientInfo) {
    put_bytes(out, info.user.as_bytes());
    put_bytes(out, info.client.as_bytes());
    put_opt(out, info.conn_info.as_deref());
    put_opt(out, info.chan_info.as_deref());
}

fn put_time(out: &mut Vec<u8>, time: SystemTime) {
    // Signed seconds so that times before 1970 survive too.
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    put_varint(out, ((secs << 1) ^ (secs >> 63)) as u64);
    put_varint(out, u64::from(nanos));
}

/// The body of `publication`: everything but its offset (and epoch).
pub fn encode_body(publication: &Publication) -> Vec<u8> {
    let tags_len: usize = publication
        .tags
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(32 + tags_len + publication.data.len());
    out.push(VERSION);
    put_time(&mut out, publication.time);
    match &publication.info {
        Some(info) => {
            out.push(1);
            put_info(&mut out, info);
        }
        None => out.push(0),
    }
    put_varint(&mut out, publication.tags.len() as u64);
    for (key, value) in &publication.tags {
        put_bytes(&mut out, key.as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.extend_from_slice(&publication.data);
    out
}

/// A client's info on its own (a presence entry).
pub fn encode_info(info: &ClientInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + info.user.len() + info.client.len());
    out.push(VERSION);
    put_info(&mut out, info);
    out
}

/// A publication message, as the publish script builds it in Lua. Used
/// when the publication goes out without the script.
pub fn encode_publication_message(offset: u64, epoch: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + epoch.len() + 24);
    out.push(b'p');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(epoch.as_bytes());
    out.push(b':');
    out.extend_from_slice(body);
    out
}

/// A join or leave message.
pub fn encode_join_leave(kind: JoinLeaveKind, info: &ClientInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + info.user.len() + info.client.len());
    out.push(match kind {
        JoinLeaveKind::Join => b'j',
        JoinLeaveKind::Leave => b'l',
    });
    out.push(VERSION);
    put_info(&mut out, info);
    out
}

// ---- decoding ----

/// Reads fields off the front of a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self, what: &'static str) -> Result<u8, WireError> {
        let (&b, rest) = self.rest.split_first().ok_or(WireError::Truncated(what))?;
        self.rest = rest;
        Ok(b)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Invalid(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.varint(what)?).map_err(|_| WireError::Invalid(what))?;
        if len > self.rest.len() {
            return Err(WireError::Truncated(what));
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| WireError::Invalid(what))
    }

    fn opt(&mut self, what: &'static str) -> Result<Option<Bytes>, WireError> {
        match self.byte(what)? {
            0 => Ok(None),
            1 => Ok(Some(Bytes::copy_from_slice(self.bytes(what)?))),
            _ => Err(WireError::Invalid(what)),
        }
    }

    fn version(&mut self) -> Result<(), WireError> {
        match self.byte("version")? {
            VERSION => Ok(()),
            other => Err(WireError::Version(other)),
        }
    }

    fn info(&mut self) -> Result<ClientInfo, WireError> {
        let user: Arc<str> = self.str("user")?.into();
        let client: Arc<str> = self.str("client")?.into();
        Ok(ClientInfo {
            user,
            client,
            conn_info: self.opt("conn_info")?,
            chan_info: self.opt("chan_info")?,
        })
    }

    fn time(&mut self) -> Result<SystemTime, WireError> {
        let zigzag = self.varint("time")?;
        let secs = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let nanos = u32::try_from(self.varint("time")?)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .ok_or(WireError::Invalid("time"))?;
        let time = if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        };
        time.ok_or(WireError::Invalid("time"))
    }
}

/// Decodes a body made by [`encode_body`] into a publication at `offset`.
pub fn decode_body(body: &[u8], offset: u64) -> Result<Publication, WireError> {
    let mut r = Reader { rest: body };
    r.version()?;
    let time = r.time()?;
    let info = match r.byte("info")? {
        0 => None,
        1 => Some(r.info()?),
        _ => return Err(WireError::Invalid("info")),
    };
    let count = r.varint("tags")?;
    let mut tags = BTreeMap::new();
    for _ in 0..count {
        let key = r.str("tag")?.to_owned();
        let value = r.str("tag")?.to_owned();
        tags.insert(key, value);
    }
    Ok(Publication {
        offset,
        data: Bytes::copy_from_slice(r.rest),
        info,
        tags,
        time,
    })
}

/// Decodes client info made by [`encode_info`].
pub fn decode_info(bytes: &[u8]) -> Result<ClientInfo, WireError> {
    let mut r = Reader { rest: bytes };
    r.version()?;
    let info = r.info()?;
    if !r.rest.is_empty() {
        return Err(WireError::Invalid("trailing bytes after info"));
    }
    Ok(info)
}

/// Splits `rest` at the first `:`.
fn until_colon<'a>(rest: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), WireError> {
    let at = rest
        .iter()
        .position(|&b| b == b':')
        .ok_or(WireError::Truncated(what))?;
    Ok((&rest[..at], &rest[at + 1..]))
}

/// Decodes a pub/sub message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    let (&kind, rest) = bytes.split_first().ok_or(WireError::Truncated("kind"))?;
    match kind {
        b'p' => {
            let (offset, rest) = until_colon(rest, "offset")?;
            let offset = std::str::from_utf8(offset)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(WireError::Invalid("offset"))?;
            let (epoch, body) = until_colon(rest, "epoch")?;
            let epoch = std::str::from_utf8(epoch).map_err(|_| WireError::Invalid("epoch"))?;
            Ok(Message::Publication {
                publication: decode_body(body, offset)?,
                epoch: epoch.to_owned(),
            })
        }
        b'j' | b'l' => {
            let info = decode_info(rest)?;
            let kind = if kind == b'j' {
                JoinLeaveKind::Join
            } else {
                JoinLeaveKind::Leave
            };
            Ok(Message::JoinLeave { kind, info })
        }
        other => Err(WireError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_publication() -> Publication {
        let mut info = ClientInfo::new("user-42", "client-1");
        info.conn_info = Some(Bytes::from_static(br#"{"name":"Ann"}"#));
        info.chan_info = Some(Bytes::new());
        let mut tags = BTreeMap::new();
        tags.insert("k".to_owned(), "v".to_owned());
        tags.insert("empty".to_owned(), String::new());
        tags.insert("ünï".to_owned(), "cödé:with:colons".to_owned());
        Publication {
            offset: 7,
            // Not JSON, not UTF-8, colons and zero bytes: data is opaque.
            data: Bytes::from_static(b"\x00:p1:e:\xff\xfe{\"a\":1}"),
            info: Some(info),
            tags,
            time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        }
    }

    #[test]
    fn bodies_round_trip_every_field() {
        let p = full_publication();
        let back = decode_body(&encode_body(&p), 7).unwrap();
        assert_eq!(back, p);
        let bare = Publication {
            offset: 0,
            ..Publication::new(Bytes::new())
        };
        assert_eq!(decode_body(&encode_body(&bare), 0).unwrap(), bare);
    }

    #[test]
    fn times_before_1970_and_far_ahead_round_trip() {
        for time in [
            UNIX_EPOCH - Duration::new(5, 250),
            UNIX_EPOCH - Duration::from_secs(86_400),
            UNIX_EPOCH + Duration::new(40_000_000_000, 999_999_999),
            SystemTime::now(),
        ] {
            let p = Publication {
                time,
                ..Publication::new("1")
            };
            assert_eq!(decode_body(&encode_body(&p), 0).unwrap().time, time);
        }
    }

    #[test]
    fn publication_messages_round_trip() {
        let p = full_publication();
        let message = encode_publication_message(7, "AbC123xy", &encode_body(&p));
        assert!(message.starts_with(b"p7:AbC123xy:\x01"));
        assert_eq!(
            decode_message(&message).unwrap(),
            Message::Publication {
                publication: p.clone(),
                epoch: "AbC123xy".into()
            }
        );
        let message = encode_publication_message(0, "", &encode_body(&p));
        let Message::Publication { publication, epoch } = decode_message(&message).unwrap() else {
            panic!("not a publication");
        };
        assert_eq!((publication.offset, epoch.as_str()), (0, ""));
        assert_eq!(publication.data, p.data);
        let big = encode_publication_message(u64::MAX, "e", &encode_body(&p));
        let Message::Publication { publication, .. } = decode_message(&big).unwrap() else {
            panic!("not a publication");
        };
        assert_eq!(publication.offset, u64::MAX);
    }

    #[test]
    fn join_leave_messages_round_trip() {
        let info = full_publication().info.unwrap();
        for kind in [JoinLeaveKind::Join, JoinLeaveKind::Leave] {
            let back = decode_message(&encode_join_leave(kind, &info)).unwrap();
            assert_eq!(
                back,
                Message::JoinLeave {
                    kind,
                    info: info.clone()
                }
            );
        }
        assert_eq!(
            decode_info(&encode_info(&info)).unwrap(),
            info,
            "presence entries"
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let p = full_publication();
        let message = encode_publication_message(7, "e", &encode_body(&p));
        // Cutting anywhere before the data is an error; cutting inside the
        // data only shortens it (data runs to the end by design).
        let data_start = message.len() - p.data.len();
        for cut in 0..data_start {
            assert!(decode_message(&message[..cut]).is_err(), "cut at {cut}");
        }
        let jl = encode_join_leave(JoinLeaveKind::Join, p.info.as_ref().unwrap());
        for cut in 0..jl.len() {
            assert!(decode_message(&jl[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode_message(b"x"), Err(WireError::Kind(b'x')));
        assert_eq!(
            decode_message(b"p:e:\x01"),
            Err(WireError::Invalid("offset"))
        );
        assert_eq!(
            decode_message(b"p-1:e:\x01"),
            Err(WireError::Invalid("offset"))
        );
        assert_eq!(decode_message(b"p1:e:\x02"), Err(WireError::Version(2)));
        assert_eq!(
            decode_body(b"\x01\x00\x00\x02", 0),
            Err(WireError::Invalid("info"))
        );
        // A varint that never ends.
        assert_eq!(
            decode_body(
                &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                0
            ),
            Err(WireError::Invalid("time"))
        );
        // A length past the end.
        assert_eq!(
            decode_info(b"\x01\x09ab"),
            Err(WireError::Truncated("user"))
        );
        assert!(decode_info(b"\x01\x00\x00\x00\x00junk").is_err());
        // Nanoseconds out of range.
        assert_eq!(
            decode_body(b"\x01\x00\xff\xff\xff\xff\x0f\x00\x00", 0),
            Err(WireError::Invalid("time"))
        );
    }
}
