//! Connection-level behaviour: reassembly at every split point, control
//! frames between fragments, and every path that closes the connection.

use bytes::BytesMut;
use proptest::prelude::*;
use ws_proto::frame::encode_frame;
use ws_proto::{CloseCode, Config, Connection, Error, FrameHeader, Message, OpCode, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut header = FrameHeader::new(opcode, 0);
    header.fin = fin;
    header.mask = Some(KEY);
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

/// Feeds `wire` in pieces of `step` bytes; collects messages or the error.
fn feed(conn: &mut Connection, wire: &[u8], step: usize) -> Result<Vec<Message>, Error> {
    let mut messages = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (used, msg) = conn.receive(rest)?;
            rest = &rest[used..];
            messages.extend(msg);
        }
    }
    Ok(messages)
}

/// The close frame a server queued, decoded by a client.
fn close_code_sent(server: &mut Connection) -> Option<CloseCode> {
    let out = server.take_output();
    let mut client = Connection::new(Role::Client, Config::default());
    let msgs = feed(&mut client, &out, out.len()).expect("server output decodes");
    msgs.into_iter().find_map(|m| match m {
        Message::Close(Some(f)) => Some(f.code),
        _ => None,
    })
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn expect_close(wire: &[u8], config: Config, code: u16) {
    let mut s = Connection::new(Role::Server, config);
    let err = feed(&mut s, wire, wire.len()).expect_err("must fail");
    assert_eq!(err.close_code(), Some(CloseCode::new(code)), "{err}");
    assert!(s.is_closed());
    assert_eq!(close_code_sent(&mut s), Some(CloseCode::new(code)));
}

proptest! {
    #[test]
    fn client_to_server_round_trip_any_split(
        payload in proptest::collection::vec(any::<u8>(), 0..70_000),
        text in "\\PC{0,200}",
        step in 1usize..5000,
    ) {
        let mut client = Connection::new(Role::Client, Config::default());
        client.send(Message::binary(payload.clone())).unwrap();
        client.send(Message::text(text.clone())).unwrap();
        let wire = client.take_output();
        let mut s = server();
        let msgs = feed(&mut s, &wire, step).unwrap();
        prop_assert_eq!(msgs, vec![Message::binary(payload), Message::text(text)]);
    }

    #[test]
    fn server_to_client_round_trip_every_split(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut s = server();
        s.send(Message::binary(payload.clone())).unwrap();
        let wire = s.take_output();
        for cut in 0..=wire.len() {
            let mut client = Connection::new(Role::Client, Config::default());
            let mut msgs = feed(&mut client, &wire[..cut], cut.max(1)).unwrap();
            msgs.extend(feed(&mut client, &wire[cut..], wire.len()).unwrap());
            prop_assert_eq!(msgs, vec![Message::binary(payload.clone())]);
        }
    }

    #[test]
    fn fragmented_text_with_ping_between(text in "\\PC{1,100}", cut in 0usize..400, step in 1usize..64) {
        let bytes = text.as_bytes();
        let cut = cut.min(bytes.len());
        let mut wire = client_frame(false, OpCode::Text, &bytes[..cut]);
        wire.extend(client_frame(true, OpCode::Ping, b"p"));
        wire.extend(client_frame(true, OpCode::Continuation, &bytes[cut..]));
        let mut s = server();
        let msgs = feed(&mut s, &wire, step).unwrap();
        prop_assert_eq!(msgs, vec![Message::Ping("p".into()), Message::text(text.clone())]);
        // the pong went out unmasked
        prop_assert_eq!(&s.take_output()[..], b"\x8a\x01p");
    }
}

#[test]
fn close_handshake_echoes_code() {
    let mut s = server();
    let msgs = feed(
        &mut s,
        &client_frame(true, OpCode::Close, b"\x03\xe8bye"),
        3,
    )
    .unwrap();
    assert!(matches!(&msgs[..], [Message::Close(Some(f))] if f.code == CloseCode::NORMAL));
    assert!(s.is_closed());
    assert_eq!(&s.take_output()[..], b"\x88\x02\x03\xe8");
    assert!(matches!(
        s.send(Message::text("late")),
        Err(Error::SendAfterClose)
    ));
}

#[test]
fn empty_close_gets_empty_reply() {
    let mut s = server();
    feed(&mut s, &client_frame(true, OpCode::Close, b""), 1).unwrap();
    assert_eq!(&s.take_output()[..], b"\x88\x00");
}

#[test]
fn we_initiate_close() {
    let mut s = server();
    s.close(Some(ws_proto::CloseFrame::new(
        CloseCode::GOING_AWAY,
        "bye",
    )))
    .unwrap();
    assert!(s.close_sent() && !s.is_closed());
    feed(&mut s, &client_frame(true, OpCode::Close, b"\x03\xe9"), 8).unwrap();
    assert!(s.is_closed());
    assert_eq!(&s.take_output()[..], b"\x88\x05\x03\xe9bye");
}

#[test]
fn violations_close_with_1002() {
    let c = Config::default;
    let mut unmasked = BytesMut::new();
    encode_frame(&mut unmasked, FrameHeader::new(OpCode::Text, 0), b"hi");
    expect_close(&unmasked, c(), 1002);
    let mut rsv = client_frame(true, OpCode::Text, b"hi");
    rsv[0] |= 0x40; // RSV1 without deflate
    expect_close(&rsv, c(), 1002);
    let mut rsv3 = client_frame(true, OpCode::Binary, b"hi");
    rsv3[0] |= 0x10;
    expect_close(&rsv3, c(), 1002);
    let mut opcode = client_frame(true, OpCode::Binary, b"");
    opcode[0] = 0x83;
    expect_close(&opcode, c(), 1002);
    expect_close(&client_frame(false, OpCode::Ping, b""), c(), 1002);
    expect_close(&client_frame(true, OpCode::Ping, &[0; 126]), c(), 1002);
    expect_close(&client_frame(true, OpCode::Continuation, b"x"), c(), 1002);
    let mut two_starts = client_frame(false, OpCode::Text, b"a");
    two_starts.extend(client_frame(true, OpCode::Text, b"b"));
    expect_close(&two_starts, c(), 1002);
    expect_close(&client_frame(true, OpCode::Close, b"\x03"), c(), 1002);
    expect_close(&client_frame(true, OpCode::Close, b"\x03\xed"), c(), 1002); // 1005
    expect_close(&client_frame(true, OpCode::Close, b"\x00\x00"), c(), 1002);
    expect_close(&client_frame(true, OpCode::Close, b"\x13\x88"), c(), 1002); // 5000
}

#[test]
fn client_rejects_masked_server_frames() {
    let mut client = Connection::new(Role::Client, Config::default());
    let err = feed(&mut client, &client_frame(true, OpCode::Text, b"x"), 10).unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn invalid_utf8_closes_with_1007() {
    expect_close(
        &client_frame(true, OpCode::Text, b"\xce\xba\xe1\xbd"),
        Config::default(),
        1007,
    );
    expect_close(
        &client_frame(true, OpCode::Close, b"\x03\xe8\xff"),
        Config::default(),
        1007,
    );
}

#[test]
fn invalid_utf8_fails_before_the_message_ends() {
    // First fragment already holds an impossible sequence: fail on it, not
    // on the final fragment (which never comes).
    let mut s = server();
    let err = feed(
        &mut s,
        &client_frame(false, OpCode::Text, b"ok\xed\xa0\x80"),
        100,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidUtf8));
    // Even inside one frame, before its payload is complete.
    let mut s = server();
    let frame = client_frame(
        true,
        OpCode::Text,
        b"\xf4\x90 and a long tail that never arrives",
    );
    let err = feed(&mut s, &frame[..9], 100).unwrap_err();
    assert!(matches!(err, Error::InvalidUtf8));
}

#[test]
fn size_limits_close_with_1009() {
    let small = || Config::default().max_frame_size(100).max_message_size(150);
    expect_close(
        &client_frame(true, OpCode::Binary, &[0; 101]),
        small(),
        1009,
    );
    let mut frags = client_frame(false, OpCode::Binary, &[0; 100]);
    frags.extend(client_frame(true, OpCode::Continuation, &[0; 60]));
    expect_close(&frags, small(), 1009);
    // The declared length alone is enough: no payload needs to arrive.
    let header = client_frame(true, OpCode::Binary, &[0; 101]);
    let mut s = Connection::new(Role::Server, small());
    let err = feed(&mut s, &header[..8], 8).unwrap_err();
    assert!(matches!(
        err,
        Error::FrameTooBig {
            size: 101,
            limit: 100
        }
    ));
    // A 2^63-1 length is refused without allocating.
    let mut huge = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    huge.extend_from_slice(&KEY);
    expect_close(&huge, Config::default(), 1009);
}

#[test]
fn shared_frame_bytes_are_not_copied() {
    let frame = ws_proto::SharedFrame::binary(vec![7u8; 4096]);
    let mut a = server();
    a.send_shared(&frame).unwrap();
    let mut slices = [std::io::IoSlice::new(&[]); 4];
    let n = a.output_slices(&mut slices);
    assert_eq!(n, 1);
    assert_eq!(slices[0].as_ptr(), frame.wire_bytes().as_ptr());
}

#[test]
fn idle_connection_holds_no_buffers_after_a_message() {
    let mut s = server();
    let msgs = feed(&mut s, &client_frame(true, OpCode::Text, b"hello"), 64).unwrap();
    assert_eq!(msgs.len(), 1);
    s.send(msgs[0].clone()).unwrap();
    let pending = s.pending_output();
    s.advance_output(pending);
    assert_eq!(s.pending_output(), 0);
    assert!(!s.is_mid_message());
}

#[test]
fn a_header_alone_does_not_reserve_the_declared_size() {
    let mut s = server();
    // 8 MiB declared (under the 16 MiB frame limit), nothing sent after it.
    let mut header = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0x80, 0, 0];
    header.extend_from_slice(&KEY);
    let (used, msg) = s.receive(&header).unwrap();
    assert_eq!((used, msg), (header.len(), None));
    assert!(s.is_mid_message());
    assert!(s.buffered_bytes() <= 64 * 1024, "{}", s.buffered_bytes());
    // The payload still arrives whole, growing the buffer as it comes.
    let payload = vec![7u8; 8 << 20];
    let mut masked = payload.clone();
    ws_proto::mask::apply_mask(&mut masked, KEY);
    let msgs = feed(&mut s, &masked, 1 << 16).unwrap();
    assert_eq!(msgs, vec![Message::binary(payload)]);
}

#[test]
fn failure_clears_partial_message_state() {
    let mut s = server();
    let mut wire = client_frame(false, OpCode::Text, b"partial");
    wire.extend(client_frame(
        true,
        OpCode::Text,
        b"new message instead of continuation",
    ));
    assert!(feed(&mut s, &wire, wire.len()).is_err());
    assert!(s.is_closed());
    assert!(!s.is_mid_message());
}
