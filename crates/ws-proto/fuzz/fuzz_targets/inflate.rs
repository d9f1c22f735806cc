//! Fuzzes permessage-deflate decompression, through a [`Connection`] and
//! directly through [`DeflateContext`].
//!
//! Input layout: `[cfg] [limit] { [kind] [len] [len payload bytes] }*`.
//!
//! * `cfg` bit 0: `server_no_context_takeover`; bit 1:
//!   `client_no_context_takeover`; bits 2-4: `client_max_window_bits - 8`;
//!   bit 5: 1000-byte `max_message_size`; bit 6: compression level 6 instead
//!   of 1 for the round trip below.
//! * `limit`: the output limit, times 8, of the direct `decompress` calls.
//! * each record is one frame: `kind` bits 0-1 choose continuation, text,
//!   binary or a control frame (bits 2-3: ping, pong, close, ping); bit 4
//!   clears FIN; bit 5 flips RSV1, which is set by default on text and
//!   binary frames (the start of a compressed message) and clear otherwise.
//!   `len` payload bytes follow (fewer if the input ends).
//!
//! Three checks run on every input:
//!
//! 1. The frames, masked, go to a server `Connection` with permessage-deflate
//!    (and unmasked to a client one), in one piece and one byte at a time:
//!    never a panic, the per-call invariants of [`drive`] (messages within
//!    `max_message_size`, text valid UTF-8, closed after any error), and both
//!    runs yield the same messages and fail or succeed alike.
//! 2. The payloads go, in order, straight to `DeflateContext::decompress`
//!    with the small `limit` (FIN taken from the record): on success the
//!    output never exceeds `limit`; on `TooBig` it is at most one byte past
//!    it (how the limit is detected), and its allocation stays within twice
//!    that; later calls after an error must work too.
//! 3. Round trip: each payload, as plain data, compressed by a client
//!    context and inflated by a server context with the same parameters,
//!    comes back unchanged.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::{DeflateConfig, DeflateContext, DeflateError, DeflateParams};
use ws_proto::frame::encode_frame;
use ws_proto::{Config, Connection, FrameHeader, OpCode, Role};
use ws_proto_fuzz::{drive, Splits};

/// One frame described by the input.
struct Record<'a> {
    opcode: OpCode,
    fin: bool,
    rsv1: bool,
    key: [u8; 4],
    payload: &'a [u8],
}

fn records(mut data: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = data {
        let (kind, len) = (*kind, usize::from(*len).min(rest.len()));
        let opcode = match kind & 3 {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            _ => [OpCode::Ping, OpCode::Pong, OpCode::Close, OpCode::Ping]
                [usize::from(kind >> 2 & 3)],
        };
        let starts_message = matches!(opcode, OpCode::Text | OpCode::Binary);
        out.push(Record {
            opcode,
            fin: kind & 0x10 == 0,
            rsv1: starts_message != (kind & 0x20 != 0),
            key: [kind, len as u8, out.len() as u8, 0xa5],
            payload: &rest[..len],
        });
        data = &rest[len..];
    }
    out
}

fn wire(records: &[Record], masked: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    for r in records {
        let mut header = FrameHeader::new(r.opcode, 0);
        header.fin = r.fin;
        header.rsv1 = r.rsv1;
        header.mask = masked.then_some(r.key);
        encode_frame(&mut out, header, r.payload);
    }
    out.to_vec()
}

fuzz_target!(|data: &[u8]| {
    let [cfg, limit, rest @ ..] = data else {
        return;
    };
    let params = DeflateParams {
        server_no_context_takeover: cfg & 1 != 0,
        client_no_context_takeover: cfg & 2 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 8 + (cfg >> 2 & 7),
    };
    let deflate_config = DeflateConfig {
        compression_level: if cfg & 0x40 != 0 { 6 } else { 1 },
        ..DeflateConfig::default()
    };
    let mut config = Config::default();
    if cfg & 0x20 != 0 {
        config = config.max_message_size(1000);
    }
    let limit = usize::from(*limit) * 8;
    let records = records(rest);

    // 1. Through connections, both roles, two ways of splitting.
    for role in [Role::Server, Role::Client] {
        let wire = wire(&records, role == Role::Server);
        let run = |splits| {
            let conn = Connection::new(role, config.clone()).with_deflate(params, &deflate_config);
            drive(conn, &config, &wire, splits)
        };
        let whole = run(Splits::new(&[]));
        let bytewise = run(Splits::new(&[1]));
        // Error kinds may legitimately differ with the split (an inflate
        // error in a later piece versus invalid UTF-8 already inflated), but
        // the messages and whether the input failed may not.
        assert_eq!(
            whole.messages, bytewise.messages,
            "{role:?}: messages differ"
        );
        assert_eq!(
            whole.error.is_some(),
            bytewise.error.is_some(),
            "{role:?}: one run failed, the other did not: {:?} / {:?}",
            whole.error,
            bytewise.error
        );
        assert_eq!(whole.closed, bytewise.closed);
    }

    // 2. Straight into the inflater, under a small limit.
    let mut inflater = DeflateContext::new(params, Role::Server, &DeflateConfig::default());
    let mut out = BytesMut::new();
    for r in &records {
        match inflater.decompress(r.payload, r.fin, &mut out, limit) {
            Ok(()) => assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len()),
            Err(DeflateError::TooBig { limit: reported }) => {
                assert_eq!(reported, limit);
                assert!(
                    out.len() <= limit + 1,
                    "{} bytes out, limit {limit}",
                    out.len()
                );
                assert!(
                    out.capacity() <= 2 * (limit + 1) + 128,
                    "{} bytes allocated, limit {limit}",
                    out.capacity()
                );
                out = BytesMut::new();
            }
            Err(DeflateError::Corrupt(_)) => out = BytesMut::new(),
            Err(e @ DeflateError::Negotiation(_)) => panic!("decompress returned {e}"),
        }
        if r.fin {
            out = BytesMut::new();
        }
    }

    // 3. Compress / inflate round trip with context takeover across messages.
    let mut compressor = DeflateContext::new(params, Role::Client, &deflate_config);
    let mut inflater = DeflateContext::new(params, Role::Server, &deflate_config);
    for r in &records {
        let mut compressed = BytesMut::new();
        compressor
            .compress(r.payload, &mut compressed)
            .expect("compression cannot fail");
        let mut plain = BytesMut::new();
        inflater
            .decompress(&compressed, true, &mut plain, usize::MAX)
            .expect("our own compressed data inflates");
        assert_eq!(&plain[..], r.payload, "round trip changed the payload");
    }
});
