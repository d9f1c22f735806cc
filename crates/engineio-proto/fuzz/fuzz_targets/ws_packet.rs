//! WebSocket frames: the first input byte picks a text or binary frame, the
//! rest is the frame payload. Decoding must never panic, and a decoded
//! packet must encode to a frame that decodes to the same packet.

#![no_main]

use bytes::Bytes;
use engineio_proto::{Packet, Utf8Bytes, WsFrame};
use libfuzzer_sys::fuzz_target;

fn decode(frame: WsFrame) -> Result<Packet, engineio_proto::Error> {
    match frame {
        WsFrame::Text(text) => Packet::from_ws_text(text),
        WsFrame::Binary(data) => Ok(Packet::from_ws_binary(data)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    let frame = if kind & 1 == 0 {
        match Utf8Bytes::try_from(bytes) {
            Ok(text) => WsFrame::Text(text),
            Err(_) => return,
        }
    } else {
        WsFrame::Binary(bytes)
    };
    let Ok(packet) = decode(frame) else {
        return;
    };
    let encoded = packet.ws_frame();
    assert_eq!(decode(encoded).as_ref(), Ok(&packet));
});
