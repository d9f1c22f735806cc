//! Frame headers (RFC 6455 section 5.2): parsing and encoding.
//!
//! This module knows the wire layout of a frame header and nothing about what
//! a sequence of frames means: fragmentation, control-frame rules that span
//! frames, role rules and limits are checked by [`crate::Connection`]. Rules
//! that a single header can break on its own (unknown opcode, a fragmented or
//! over-long control frame, a 64-bit length with its top bit set) are
//! reported here.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolViolation;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// Continues a fragmented message.
    Continuation = 0x0,
    /// First frame of a text message.
    Text = 0x1,
    /// First frame of a binary message.
    Binary = 0x2,
    /// Close control frame.
    Close = 0x8,
    /// Ping control frame.
    Ping = 0x9,
    /// Pong control frame.
    Pong = 0xA,
}

impl OpCode {
    /// Decodes the low nibble of the first header byte; `None` for reserved
    /// opcodes (3-7, 0xB-0xF).
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// One frame header as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1: "per-message compressed" when permessage-deflate is in use.
    pub rsv1: bool,
    /// RSV2, reserved.
    pub rsv2: bool,
    /// RSV3, reserved.
    pub rsv3: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// Masking key: present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, 8 of extended length, 4 of mask.
    pub const MAX_LEN: usize = 14;

    /// A final, unmasked, uncompressed header.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        Self {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header, and
    /// `Ok(Some((header, header_len)))` once it is complete.
    ///
    /// ```
    /// use ws_proto::{FrameHeader, OpCode};
    /// let (h, n) = FrameHeader::parse(&[0x81, 0x05]).unwrap().unwrap();
    /// assert_eq!((h.opcode, h.payload_len, n), (OpCode::Text, 5, 2));
    /// assert!(FrameHeader::parse(&[0x81]).unwrap().is_none());
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolViolation> {
        let (first, second) = match buf {
            [a, b, ..] => (*a, *b),
            _ => return Ok(None),
        };
        let opcode =
            OpCode::from_u8(first & 0x0F).ok_or(ProtocolViolation::ReservedOpcode(first & 0x0F))?;
        let fin = first & 0x80 != 0;
        let masked = second & 0x80 != 0;
        let short_len = second & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolViolation::FragmentedControlFrame);
            }
            if usize::from(short_len) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolViolation::ControlFrameTooLong);
            }
        }
        let (payload_len, mut pos) = match short_len {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(b);
                    let len = u64::from_be_bytes(len);
                    if len >> 63 != 0 {
                        return Err(ProtocolViolation::LengthTopBitSet);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match buf.get(pos..pos + 4) {
                Some(b) => {
                    pos += 4;
                    Some([b[0], b[1], b[2], b[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some((
            Self {
                fin,
                rsv1: first & 0x40 != 0,
                rsv2: first & 0x20 != 0,
                rsv3: first & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// How many bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header into `out`, returning how many bytes it used.
    pub fn encode(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }

    /// Appends the header to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        let mut buf = [0u8; Self::MAX_LEN];
        let n = self.encode(&mut buf);
        out.put_slice(&buf[..n]);
    }
}

/// Appends a whole frame (header and payload, masked if `header.mask` is set)
/// to `out`. `header.payload_len` is overwritten with `payload.len()`.
///
/// ```
/// use bytes::BytesMut;
/// use ws_proto::{frame::encode_frame, FrameHeader, OpCode};
/// let mut out = BytesMut::new();
/// encode_frame(&mut out, FrameHeader::new(OpCode::Text, 0), b"Hello");
/// assert_eq!(&out[..], b"\x81\x05Hello");
/// ```
pub fn encode_frame(out: &mut BytesMut, mut header: FrameHeader, payload: &[u8]) {
    header.payload_len = payload.len() as u64;
    out.reserve(header.encoded_len() + payload.len());
    header.write_to(out);
    let start = out.len();
    out.put_slice(payload);
    if let Some(key) = header.mask {
        crate::mask::apply_mask(&mut out[start..], key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_header() -> impl Strategy<Value = FrameHeader> {
        (
            any::<bool>(),
            any::<[bool; 3]>(),
            prop::sample::select(vec![
                OpCode::Continuation,
                OpCode::Text,
                OpCode::Binary,
                OpCode::Close,
                OpCode::Ping,
                OpCode::Pong,
            ]),
            any::<Option<[u8; 4]>>(),
            prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..(1 << 63)],
        )
            .prop_map(|(fin, rsv, opcode, mask, len)| {
                let control = opcode.is_control();
                FrameHeader {
                    fin: fin || control,
                    rsv1: rsv[0],
                    rsv2: rsv[1],
                    rsv3: rsv[2],
                    opcode,
                    mask,
                    payload_len: if control { len % 126 } else { len },
                }
            })
    }

    proptest! {
        #[test]
        fn header_round_trip_at_every_split(h in arb_header()) {
            let mut buf = [0u8; FrameHeader::MAX_LEN];
            let n = h.encode(&mut buf);
            prop_assert_eq!(n, h.encoded_len());
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::parse(&buf[..cut]).unwrap(), None);
            }
            prop_assert_eq!(FrameHeader::parse(&buf[..n]).unwrap(), Some((h, n)));
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 5.7
        let (h, n) = FrameHeader::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let (h, _) = FrameHeader::parse(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin);
        let (h, n) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = FrameHeader::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn single_header_violations() {
        assert_eq!(
            FrameHeader::parse(&[0x83, 0]),
            Err(ProtocolViolation::ReservedOpcode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0x8B, 0]),
            Err(ProtocolViolation::ReservedOpcode(0xB))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0]),
            Err(ProtocolViolation::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 126]),
            Err(ProtocolViolation::ControlFrameTooLong)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolViolation::LengthTopBitSet)
        );
    }
}
