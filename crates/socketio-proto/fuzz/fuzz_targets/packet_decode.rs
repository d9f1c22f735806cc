//! Feeds arbitrary text to `Packet::decode` and a `BinaryAssembler`, then
//! arbitrary follow-up messages, checking that nothing panics and that every
//! complete packet re-encodes to text that decodes to the same packet.
//!
//! Input layout: records separated by the byte 0x1e. The first record is the
//! packet text (lossily made UTF-8). Each later record is one more message:
//! `t<text>` is a text message, anything else (`b<bytes>` by convention) a
//! binary attachment.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio_proto::{BinaryAssembler, Decoded, Packet};

fn check(packet: &Packet) {
    // The helpers must not panic, whatever they return.
    let _ = packet.event_name();
    let _ = packet.args();
    let values = packet.args_values();

    // Forwarding raw argument text must agree with parsing it.
    if let Ok(ack) = Packet::ack_from(packet.namespace.clone(), 0, packet) {
        assert_eq!(ack.args_values().ok(), values.ok());
        assert_eq!(ack.attachments, packet.attachments);
        // Same arguments as re-serializing them (the raw copy keeps the
        // sender's whitespace, so compare values, not text).
        let via_serde = packet
            .args()
            .and_then(|args| Packet::event(packet.namespace.clone(), "fwd", &args, packet.ack_id));
        let forwarded = Packet::event_from(packet.namespace.clone(), "fwd", packet, packet.ack_id)
            .expect("event_from succeeds where ack_from does");
        assert_eq!(forwarded.event_name().ok().as_deref(), Some("fwd"));
        if let Ok(via_serde) = via_serde {
            assert_eq!(forwarded.args_values().ok(), via_serde.args_values().ok());
            assert_eq!(forwarded.ack_id, via_serde.ack_id);
        }
    }

    let (text, attachments) = packet.encode();
    assert_eq!(text.len(), packet.encoded_len());
    let mut asm = BinaryAssembler::with_max_attachments(usize::MAX);
    let mut again = asm.feed_text(text).expect("re-encoded packet must decode");
    for a in attachments {
        assert!(again.is_none());
        again = asm.feed_binary(a).expect("attachment accepted");
    }
    assert_eq!(again.as_ref(), Some(packet));
}

fuzz_target!(|data: &[u8]| {
    let mut records = data.split(|&b| b == 0x1e);
    let first = String::from_utf8_lossy(records.next().unwrap_or_default()).into_owned();

    // Stateless decode, pushing at most a few attachments whatever the
    // header announces.
    match Packet::decode(first.clone().into()) {
        Ok(Decoded::Complete(p)) => check(&p),
        Ok(Decoded::AwaitingAttachments(mut partial)) => {
            for i in 0..4u8 {
                match partial.push(Bytes::from(vec![i])) {
                    Decoded::Complete(p) => {
                        check(&p);
                        break;
                    }
                    Decoded::AwaitingAttachments(next) => partial = next,
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // The same text, then the remaining records, through an assembler.
    let mut asm = BinaryAssembler::with_max_attachments(4);
    let mut results = vec![asm.feed_text(first.into())];
    for record in records {
        results.push(match record.split_first() {
            Some((b't', text)) => asm.feed_text(String::from_utf8_lossy(text).into_owned().into()),
            Some((_, bytes)) => asm.feed_binary(Bytes::copy_from_slice(bytes)),
            None => asm.feed_binary(Bytes::new()),
        });
    }
    for result in results {
        if let Ok(Some(p)) = result {
            check(&p);
        }
    }
});
