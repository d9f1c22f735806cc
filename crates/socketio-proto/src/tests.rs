//! Whole-codec tests: the examples of the v5 specification and its
//! compliance test suite, every rejection, and property-based round trips.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::*;

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

/// Decodes `text` followed by `attachments` through an assembler.
fn decode_all(text: &str, attachments: &[Bytes]) -> Result<Packet, Error> {
    let mut asm = BinaryAssembler::new();
    let mut out = asm.feed_text(text.into())?;
    for a in attachments {
        assert!(out.is_none(), "packet completed before all attachments");
        out = asm.feed_binary(a.clone())?;
    }
    Ok(out.expect("packet incomplete after all attachments"))
}

fn decode_err(text: &str) -> Error {
    match Packet::decode(text.into()) {
        Err(e) => e,
        Ok(d) => panic!("{text:?} decoded to {d:?}"),
    }
}

/// Checks that `packet` encodes to exactly `text` + `attachments`, and that
/// decoding those gives `packet` back.
fn check_wire(packet: &Packet, text: &str, attachments: &[Bytes]) {
    let (enc, atts) = packet.encode();
    assert_eq!(enc.as_str(), text);
    assert_eq!(atts, attachments);
    assert_eq!(packet.encoded_len(), text.len());
    assert_eq!(&decode_all(text, attachments).unwrap(), packet, "{text}");
}

fn buf(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

#[test]
fn spec_connect() {
    let p = decode_all("0", &[]).unwrap();
    assert_eq!(p.kind, PacketKind::Connect);
    assert!(p.namespace.is_main() && p.ack_id.is_none() && p.payload.is_none());
    check_wire(&Packet::connect(Namespace::main()), "0", &[]);
    check_wire(
        &Packet::connect_reply(Namespace::main(), "wZX3oN0bSVIhsaknAAAI"),
        r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
        &[],
    );
    check_wire(&Packet::connect(ns("/admin")), "0/admin,", &[]);
    check_wire(
        &Packet::connect_reply(ns("/admin"), "oSO0OpakMV_3jnilAAAA"),
        r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        &[],
    );
    let auth = Packet::connect_with(ns("/admin"), &json!({"token": "123"})).unwrap();
    check_wire(&auth, r#"0/admin,{"token":"123"}"#, &[]);
    assert_eq!(auth.payload_as::<Value>().unwrap(), json!({"token": "123"}));
    check_wire(
        &Packet::connect_error(Namespace::main(), "Not authorized"),
        r#"4{"message":"Not authorized"}"#,
        &[],
    );
}

#[test]
fn spec_events() {
    check_wire(
        &Packet::event(Namespace::main(), "foo", &(), None).unwrap(),
        r#"2["foo"]"#,
        &[],
    );
    check_wire(
        &Packet::event(ns("/admin"), "bar", &(), None).unwrap(),
        r#"2/admin,["bar"]"#,
        &[],
    );
    let p = Packet::binary_event(
        Namespace::main(),
        "baz",
        &(Placeholder::new(0),),
        vec![buf(&[1, 2, 3, 4])],
        None,
    )
    .unwrap();
    check_wire(
        &p,
        r#"51-["baz",{"_placeholder":true,"num":0}]"#,
        &[buf(&[1, 2, 3, 4])],
    );
    let p = Packet::binary_event(
        ns("/admin"),
        "baz",
        &[placeholder(0), placeholder(1)],
        vec![buf(&[1, 2]), buf(&[3, 4])],
        None,
    )
    .unwrap();
    check_wire(
        &p,
        r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &[buf(&[1, 2]), buf(&[3, 4])],
    );
    let decoded = decode_all(
        r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &[buf(&[1, 2]), buf(&[3, 4])],
    )
    .unwrap();
    assert_eq!(decoded.event_name().unwrap(), "baz");
    let args = decoded.args_values().unwrap();
    assert_eq!(
        args.iter().map(Placeholder::from_value).collect::<Vec<_>>(),
        [Some(Placeholder::new(0)), Some(Placeholder::new(1))]
    );
}

#[test]
fn spec_acknowledgements() {
    let main = Namespace::main;
    check_wire(
        &Packet::event(main(), "foo", &(), Some(12)).unwrap(),
        r#"212["foo"]"#,
        &[],
    );
    check_wire(&Packet::ack(main(), 12, &()).unwrap(), "312[]", &[]);
    check_wire(
        &Packet::event(ns("/admin"), "foo", &(), Some(13)).unwrap(),
        r#"2/admin,13["foo"]"#,
        &[],
    );
    check_wire(
        &Packet::ack(ns("/admin"), 13, &("bar",)).unwrap(),
        r#"3/admin,13["bar"]"#,
        &[],
    );
    check_wire(
        &Packet::binary_event(
            main(),
            "foo",
            &(Placeholder::new(0),),
            vec![buf(&[1, 2, 3, 4])],
            Some(14),
        )
        .unwrap(),
        r#"51-14["foo",{"_placeholder":true,"num":0}]"#,
        &[buf(&[1, 2, 3, 4])],
    );
    check_wire(
        &Packet::ack(main(), 14, &["bar"]).unwrap(),
        r#"314["bar"]"#,
        &[],
    );
    check_wire(
        &Packet::event(main(), "foo", &(), Some(15)).unwrap(),
        r#"215["foo"]"#,
        &[],
    );
    check_wire(
        &Packet::binary_ack(
            main(),
            15,
            &("bar", Placeholder::new(0)),
            vec![buf(&[1, 2, 3, 4])],
        )
        .unwrap(),
        r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
        &[buf(&[1, 2, 3, 4])],
    );
}

#[test]
fn spec_disconnect() {
    check_wire(&Packet::disconnect(Namespace::main()), "1", &[]);
    check_wire(&Packet::disconnect(ns("/admin")), "1/admin,", &[]);
}

#[test]
fn spec_sample_session() {
    // Engine.IO's `4` message prefix is stripped before Socket.IO decoding.
    let p = decode_all(r#"2/admin,1["tellme"]"#, &[]).unwrap();
    assert_eq!((p.namespace.as_str(), p.ack_id), ("/admin", Some(1)));
    assert_eq!(p.event_name().unwrap(), "tellme");
    check_wire(
        &Packet::binary_ack(ns("/admin"), 1, &(Placeholder::new(0),), vec![buf(b"bin")]).unwrap(),
        r#"61-/admin,1[{"_placeholder":true,"num":0}]"#,
        &[buf(b"bin")],
    );
    check_wire(
        &Packet::connect_reply(ns("/admin"), "-G5j-67EZFp-q59rADQM"),
        r#"0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#,
        &[],
    );
    check_wire(
        &Packet::event(Namespace::main(), "hey", &("Jude",), None).unwrap(),
        r#"2["hey","Jude"]"#,
        &[],
    );
}

#[test]
fn compliance_suite_inputs() {
    // Namespace without the trailing comma, as the suite sends it.
    let p = decode_all("0/custom", &[]).unwrap();
    assert_eq!(
        (p.kind, p.namespace.as_str()),
        (PacketKind::Connect, "/custom")
    );
    let p = decode_all("1/custom", &[]).unwrap();
    assert_eq!(
        (p.kind, p.namespace.as_str()),
        (PacketKind::Disconnect, "/custom")
    );
    let p = decode_all("0/random", &[]).unwrap();
    check_wire(
        &Packet::connect_error(p.namespace, "Invalid namespace"),
        r#"4/random,{"message":"Invalid namespace"}"#,
        &[],
    );
    let p = decode_all(r#"0{"token":"123"}"#, &[]).unwrap();
    assert_eq!(p.payload_str(), Some(r#"{"token":"123"}"#));
    let p = decode_all(r#"0/custom,{"token":"abc"}"#, &[]).unwrap();
    assert_eq!(p.payload_str(), Some(r#"{"token":"abc"}"#));

    // message → message-back with the same arguments.
    let p = decode_all(r#"2["message",1,"2",{"3":[true]}]"#, &[]).unwrap();
    let back = Packet::event(Namespace::main(), "message-back", &p.args().unwrap(), None).unwrap();
    assert_eq!(
        back.encode().0.as_str(),
        r#"2["message-back",1,"2",{"3":[true]}]"#
    );
    let fast = Packet::event_from(Namespace::main(), "message-back", &p, None).unwrap();
    assert_eq!(fast, back);

    // message-with-ack → ack with the same arguments.
    let p = decode_all(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#, &[]).unwrap();
    let ack = Packet::ack(p.namespace.clone(), p.ack_id.unwrap(), &p.args().unwrap()).unwrap();
    assert_eq!(ack.encode().0.as_str(), r#"3456[1,"2",{"3":[false]}]"#);
    assert_eq!(Packet::ack_from(p.namespace.clone(), 456, &p).unwrap(), ack);

    let atts = [buf(&[1, 2, 3]), buf(&[4, 5, 6])];
    let p = decode_all(
        r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &atts,
    )
    .unwrap();
    let ack = Packet::binary_ack(
        p.namespace.clone(),
        p.ack_id.unwrap(),
        &p.args().unwrap(),
        p.attachments.clone(),
    )
    .unwrap();
    let (text, out) = ack.encode();
    assert_eq!(
        text.as_str(),
        r#"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(out, atts);
    assert_eq!(Packet::ack_from(p.namespace.clone(), 789, &p).unwrap(), ack);
    let fwd = Packet::event_from(Namespace::main(), "message-back", &p, None).unwrap();
    check_wire(
        &fwd,
        r#"52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &atts,
    );

    // Invalid formats the suite expects a server to refuse.
    assert!(matches!(decode_err("abc"), Error::UnknownPacketType('a')));
    assert!(matches!(
        decode_err("2{}"),
        Error::InvalidPayload {
            kind: PacketKind::Event,
            ..
        }
    ));
    assert!(matches!(
        decode_err(r#"2abc["message-with-ack",1,"2",{"3":[false]}]"#),
        Error::InvalidJson(_)
    ));
}

#[test]
fn lenient_but_valid_forms() {
    // Explicit main namespace; leading zeros; JSON whitespace; ack id 0.
    let p = decode_all(r#"2/,007 [ "a" , 1 ] "#, &[]).unwrap();
    assert!(p.namespace.is_main());
    assert_eq!(p.ack_id, Some(7));
    assert_eq!(p.event_name().unwrap(), "a");
    assert_eq!(p.encode().0.as_str(), r#"27 [ "a" , 1 ] "#);
    assert_eq!(decode_all(r#"20["a"]"#, &[]).unwrap().ack_id, Some(0));
    // Largest ack id.
    let max = format!(r#"2{}["a"]"#, u64::MAX);
    assert_eq!(decode_all(&max, &[]).unwrap().ack_id, Some(u64::MAX));
    // Protocol v4 CONNECT_ERROR with a bare string.
    let p = decode_all(r#"4"Not authorized""#, &[]).unwrap();
    assert_eq!(p.payload_as::<String>().unwrap(), "Not authorized");
    // CONNECT_ERROR with data.
    check_wire(
        &Packet::connect_error_with_data(ns("/x"), "no", &json!({"retry": 5})).unwrap(),
        r#"4/x,{"message":"no","data":{"retry":5}}"#,
        &[],
    );
    // Non-ASCII everywhere.
    let p = decode_all(r#"2/ünï,["héllo","😀"]"#, &[]).unwrap();
    assert_eq!(p.namespace, "/ünï");
    assert_eq!(p.event_name().unwrap(), "héllo");
    // Escaped event names.
    let p = decode_all(r#"2["a\"b\\c\u00e9"]"#, &[]).unwrap();
    assert_eq!(p.event_name().unwrap(), "a\"b\\cé");
}

#[test]
fn decode_is_zero_copy() {
    let text = ws_proto::Utf8Bytes::from(r#"2/admin,1["x",{"big":"payload"}]"#);
    let base = text.as_bytes().as_ptr() as usize;
    let Decoded::Complete(p) = Packet::decode(text.clone()).unwrap() else {
        panic!("binary")
    };
    let payload = p.payload.as_ref().unwrap();
    assert_eq!(payload.as_bytes().as_ptr() as usize, base + 9);
    assert_eq!(p.namespace.as_bytes().as_ptr() as usize, base + 1);
}

#[test]
fn rejections() {
    use Error as E;
    use PacketKind as K;
    type Check = fn(&Error) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, E::EmptyPacket)),
        ("7", |e| matches!(e, E::UnknownPacketType('7'))),
        ("9[]", |e| matches!(e, E::UnknownPacketType('9'))),
        ("-", |e| matches!(e, E::UnknownPacketType('-'))),
        (" 2[\"x\"]", |e| matches!(e, E::UnknownPacketType(' '))),
        ("é", |e| matches!(e, E::UnknownPacketType('é'))),
        // ACK without id.
        (r#"3["x"]"#, |e| matches!(e, E::MissingAckId(K::Ack))),
        (r#"3/admin,[]"#, |e| matches!(e, E::MissingAckId(K::Ack))),
        (r#"61-[]"#, |e| matches!(e, E::MissingAckId(K::BinaryAck))),
        // Attachment counts on non-binary types.
        (r#"21-["x"]"#, |e| {
            matches!(e, E::UnexpectedAttachmentCount(K::Event))
        }),
        (r#"31-1[]"#, |e| {
            matches!(e, E::UnexpectedAttachmentCount(K::Ack))
        }),
        ("01-", |e| {
            matches!(e, E::UnexpectedAttachmentCount(K::Connect))
        }),
        ("41-{}", |e| {
            matches!(e, E::UnexpectedAttachmentCount(K::ConnectError))
        }),
        // Bad or missing counts on binary types.
        (r#"5["x"]"#, |e| matches!(e, E::MissingAttachmentCount)),
        (r#"51["x"]"#, |e| matches!(e, E::MissingAttachmentCount)),
        (r#"5/a,["x"]"#, |e| matches!(e, E::MissingAttachmentCount)),
        ("6", |e| matches!(e, E::MissingAttachmentCount)),
        (r#"5-["x"]"#, |e| matches!(e, E::InvalidAttachmentCount)),
        (r#"5999999999999999999999-["x"]"#, |e| {
            matches!(e, E::InvalidAttachmentCount)
        }),
        (r#"518446744073709551616-["x"]"#, |e| {
            matches!(e, E::InvalidAttachmentCount)
        }),
        // Namespaces.
        ("2/a\nb,[\"x\"]", |e| matches!(e, E::InvalidNamespace)),
        ("0/ad\tmin", |e| matches!(e, E::InvalidNamespace)),
        ("0/\u{7f},", |e| matches!(e, E::InvalidNamespace)),
        ("2admin,[\"x\"]", |e| matches!(e, E::InvalidJson(_))),
        // Ack ids.
        (r#"218446744073709551616["x"]"#, |e| {
            matches!(e, E::InvalidAckId)
        }),
        (r#"399999999999999999999999[]"#, |e| {
            matches!(e, E::InvalidAckId)
        }),
        ("01", |e| matches!(e, E::UnexpectedAckId(K::Connect))),
        (r#"0/admin,1{}"#, |e| {
            matches!(e, E::UnexpectedAckId(K::Connect))
        }),
        ("11", |e| matches!(e, E::UnexpectedAckId(K::Disconnect))),
        (r#"41{"message":"x"}"#, |e| {
            matches!(e, E::UnexpectedAckId(K::ConnectError))
        }),
        // Missing and unexpected payloads.
        ("2", |e| matches!(e, E::MissingPayload(K::Event))),
        ("21", |e| matches!(e, E::MissingPayload(K::Event))),
        ("2/admin,", |e| matches!(e, E::MissingPayload(K::Event))),
        ("2/admin", |e| matches!(e, E::MissingPayload(K::Event))),
        ("31", |e| matches!(e, E::MissingPayload(K::Ack))),
        ("4", |e| matches!(e, E::MissingPayload(K::ConnectError))),
        ("51-", |e| matches!(e, E::MissingPayload(K::BinaryEvent))),
        ("1{}", |e| matches!(e, E::UnexpectedPayload(K::Disconnect))),
        ("1/admin,x", |e| {
            matches!(e, E::UnexpectedPayload(K::Disconnect))
        }),
        ("1 ", |e| matches!(e, E::UnexpectedPayload(K::Disconnect))),
        // Invalid JSON, trailing garbage.
        (r#"2["x""#, |e| matches!(e, E::InvalidJson(_))),
        (r#"2["x",]"#, |e| matches!(e, E::InvalidJson(_))),
        (r#"2["x"] garbage"#, |e| matches!(e, E::InvalidJson(_))),
        (r#"2["x"]["y"]"#, |e| matches!(e, E::InvalidJson(_))),
        (r#"2["x"],"#, |e| matches!(e, E::InvalidJson(_))),
        ("0{bad}", |e| matches!(e, E::InvalidJson(_))),
        ("0{}}", |e| matches!(e, E::InvalidJson(_))),
        ("2 ", |e| matches!(e, E::InvalidJson(_))),
        ("2[\"a\u{1}\"]", |e| matches!(e, E::InvalidJson(_))),
        (r#"2["\ud800"]"#, |e| matches!(e, E::InvalidJson(_))),
        // Wrong shapes.
        ("2{}", |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        ("2[]", |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        ("2[1]", |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        (r#"2[null,"x"]"#, |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        (r#"2[["x"]]"#, |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        (r#"2"x""#, |e| {
            matches!(e, E::InvalidPayload { kind: K::Event, .. })
        }),
        (r#"50-{}"#, |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::BinaryEvent,
                    ..
                }
            )
        }),
        ("31{}", |e| {
            matches!(e, E::InvalidPayload { kind: K::Ack, .. })
        }),
        (r#"31"x""#, |e| {
            matches!(e, E::InvalidPayload { kind: K::Ack, .. })
        }),
        ("0[]", |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::Connect,
                    ..
                }
            )
        }),
        ("0null", |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::Connect,
                    ..
                }
            )
        }),
        (r#"0"x""#, |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::Connect,
                    ..
                }
            )
        }),
        ("4[]", |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::ConnectError,
                    ..
                }
            )
        }),
        ("4null", |e| {
            matches!(
                e,
                E::InvalidPayload {
                    kind: K::ConnectError,
                    ..
                }
            )
        }),
    ];
    for (text, check) in cases {
        let err = decode_err(text);
        assert!(check(&err), "{text:?} gave {err:?}");
        // Every error renders a message.
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for depth in [129, 10_000, 1_000_000] {
        let open = "[".repeat(depth);
        let close = "]".repeat(depth);
        for text in [
            format!(r#"2["x",{open}{close}]"#),
            format!(r#"31{open}{close}"#),
            format!(r#"0{{"a":{open}{close}}}"#),
            format!(r#"2["x",{}"#, "{\"a\":".repeat(depth)),
        ] {
            assert!(matches!(decode_err(&text), Error::InvalidJson(_)));
        }
    }
    // Within the limit is fine.
    let ok = format!(r#"2["x",{}{}]"#, "[".repeat(100), "]".repeat(100));
    assert!(decode_all(&ok, &[]).is_ok());
}

#[test]
fn constructor_rejections() {
    let main = Namespace::main;
    assert!(matches!(
        Packet::event(main(), "x", &1, None),
        Err(Error::ArgsNotArray)
    ));
    assert!(matches!(
        Packet::event(main(), "x", &json!({"a": 1}), None),
        Err(Error::ArgsNotArray)
    ));
    assert!(matches!(
        Packet::ack(main(), 1, &"x"),
        Err(Error::ArgsNotArray)
    ));
    assert!(matches!(
        Packet::connect_with(main(), &[1]),
        Err(Error::PayloadNotObject)
    ));
    // A map with non-string keys does not serialize to JSON.
    let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    assert!(matches!(
        Packet::ack(main(), 1, &(bad,)),
        Err(Error::Serialize(_))
    ));
    // `null` means no arguments.
    assert_eq!(
        Packet::ack(main(), 1, &Value::Null).unwrap().payload_str(),
        Some("[]")
    );
    // Packet::new enforces the decoder's rules.
    use PacketKind as K;
    let p = |s: &str| Some(ws_proto::Utf8Bytes::from(s));
    assert!(Packet::new(K::Event, main(), Some(1), p(r#"["x"]"#), vec![]).is_ok());
    assert!(Packet::new(K::Event, main(), None, p("[1]"), vec![]).is_err());
    assert!(Packet::new(K::Ack, main(), None, p("[]"), vec![]).is_err());
    assert!(Packet::new(K::Connect, main(), Some(1), None, vec![]).is_err());
    assert!(Packet::new(K::Disconnect, main(), None, p("{}"), vec![]).is_err());
    assert!(matches!(
        Packet::new(K::Event, main(), None, p(r#"["x"]"#), vec![buf(b"x")]),
        Err(Error::UnexpectedAttachmentCount(K::Event))
    ));
    assert!(Packet::new(K::BinaryEvent, main(), None, p(r#"["x"]"#), vec![buf(b"x")]).is_ok());
}

#[test]
fn helpers_on_the_wrong_kind() {
    let p = Packet::connect(Namespace::main());
    assert!(matches!(p.event_name(), Err(Error::NotAnEvent(_))));
    assert!(matches!(p.args(), Err(Error::NotAnEvent(_))));
    assert!(matches!(p.args_json(), Err(Error::NotAnEvent(_))));
    assert!(Packet::ack_from(Namespace::main(), 1, &p).is_err());
    assert!(Packet::event_from(Namespace::main(), "x", &p, None).is_err());
    assert!(matches!(
        p.payload_as::<Value>(),
        Err(Error::MissingPayload(_))
    ));
    let ack = Packet::ack(Namespace::main(), 1, &(1, 2)).unwrap();
    assert!(matches!(
        ack.event_name(),
        Err(Error::NotAnEvent(PacketKind::Ack))
    ));
    assert_eq!(ack.args().unwrap().len(), 2);
    // Hand-altered payloads give errors, not panics.
    let mut broken = Packet::event(Namespace::main(), "x", &(), None).unwrap();
    for text in ["", "[", "[1]", r#"["x"#, r#"["x\"#, "{}", "nonsense"] {
        broken.payload = Some(text.into());
        assert!(broken.event_name().is_err(), "{text}");
        assert!(broken.args().is_err(), "{text}");
        assert!(broken.args_json().is_err(), "{text}");
    }
    broken.payload = None;
    assert!(broken.event_name().is_err());
    assert!(broken.args_values().is_err());
}

#[test]
fn encoding_promotes_and_sizes_exactly() {
    // An EVENT given attachments by hand is written as BINARY_EVENT.
    let mut p = Packet::event(Namespace::main(), "x", &(), Some(3)).unwrap();
    p.attachments.push(buf(b"a"));
    assert_eq!(p.wire_kind(), PacketKind::BinaryEvent);
    let (text, atts) = p.encode();
    assert_eq!(text.as_str(), r#"51-3["x"]"#);
    assert_eq!(atts.len(), 1);
    // Attachments on a kind that cannot carry them are not sent.
    let mut c = Packet::connect(Namespace::main());
    c.attachments.push(buf(b"a"));
    assert_eq!(c.encode(), (ws_proto::Utf8Bytes::from("0"), vec![]));
    // encode_into never grows an exactly sized buffer.
    let many: Vec<Bytes> = (0..12).map(|_| buf(b"z")).collect();
    let p = Packet::binary_ack(ns("/long-namespace"), u64::MAX, &[1, 2, 3], many).unwrap();
    let mut out = String::with_capacity(p.encoded_len());
    let cap = out.capacity();
    p.encode_into(&mut out);
    assert_eq!(out.capacity(), cap);
    assert_eq!(out.len(), p.encoded_len());
    assert_eq!(out, format!("612-/long-namespace,{}[1,2,3]", u64::MAX));
}

#[test]
fn reserved_events() {
    for name in RESERVED_EVENTS {
        assert!(is_reserved_event(name));
    }
    assert!(!is_reserved_event("Connect"));
}

fn arb_namespace() -> impl Strategy<Value = Namespace> {
    prop_oneof![
        Just("/".to_owned()),
        Just("/admin".to_owned()),
        Just("/a-b_c".to_owned()),
        "/[a-zA-Z0-9_-]{1,12}",
        "/[^,\\x00-\\x1f\\x7f]{0,10}",
    ]
    .prop_map(|s| Namespace::new(s).unwrap())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_attachments() -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from),
        1..5,
    )
}

proptest! {
    #[test]
    fn event_round_trip(
        namespace in arb_namespace(),
        name in any::<String>(),
        args in prop::collection::vec(arb_json(), 0..5),
        ack_id in prop::option::of(any::<u64>()),
    ) {
        let p = Packet::event(namespace, &name, &args, ack_id).unwrap();
        let (text, atts) = p.encode();
        prop_assert!(atts.is_empty());
        prop_assert_eq!(text.len(), p.encoded_len());
        let q = decode_all(&text, &[]).unwrap();
        prop_assert_eq!(&q, &p);
        prop_assert_eq!(q.event_name().unwrap(), name.as_str());
        prop_assert_eq!(q.args_values().unwrap(), args.clone());
        prop_assert_eq!(q.args().unwrap().len(), args.len());
        let (n, rest): (String, Vec<Value>) = {
            let mut all: Vec<Value> = q.payload_as().unwrap();
            let n = all.remove(0);
            (n.as_str().unwrap().to_owned(), all)
        };
        prop_assert_eq!(n, name);
        prop_assert_eq!(&rest, &args);
        // Forwarding the raw arguments equals re-serializing them.
        let fwd = Packet::event_from(q.namespace.clone(), "fwd", &q, ack_id).unwrap();
        let slow = Packet::event(q.namespace.clone(), "fwd", &q.args().unwrap(), ack_id).unwrap();
        prop_assert_eq!(&fwd, &slow);
        let ack = Packet::ack_from(q.namespace.clone(), 1, &q).unwrap();
        prop_assert_eq!(ack.args_values().unwrap(), args);
        prop_assert_eq!(Packet::ack_from(q.namespace.clone(), 1, &ack).unwrap(), ack);
    }

    #[test]
    fn ack_round_trip(
        namespace in arb_namespace(),
        args in prop::collection::vec(arb_json(), 0..5),
        ack_id in any::<u64>(),
    ) {
        let p = Packet::ack(namespace, ack_id, &args).unwrap();
        let q = decode_all(&p.encode().0, &[]).unwrap();
        prop_assert_eq!(&q, &p);
        prop_assert_eq!(q.args_values().unwrap(), args);
    }

    #[test]
    fn binary_round_trip(
        namespace in arb_namespace(),
        name in any::<String>(),
        extra in prop::collection::vec(arb_json(), 0..3),
        attachments in arb_attachments(),
        ack_id in prop::option::of(any::<u64>()),
        is_ack in any::<bool>(),
    ) {
        let mut args: Vec<Value> = (0..attachments.len()).map(placeholder).collect();
        args.extend(extra);
        let p = if is_ack {
            Packet::binary_ack(namespace, ack_id.unwrap_or(0), &args, attachments.clone())
        } else {
            Packet::binary_event(namespace, &name, &args, attachments.clone(), ack_id)
        }
        .unwrap();
        let (text, atts) = p.encode();
        prop_assert_eq!(&atts, &attachments);
        let q = decode_all(&text, &atts).unwrap();
        prop_assert_eq!(&q, &p);
        prop_assert_eq!(q.args_values().unwrap(), args);
    }

    #[test]
    fn connect_round_trip(
        namespace in arb_namespace(),
        sid in any::<String>(),
        message in any::<String>(),
    ) {
        for p in [
            Packet::connect(namespace.clone()),
            Packet::connect_reply(namespace.clone(), &sid),
            Packet::connect_error(namespace.clone(), &message),
            Packet::disconnect(namespace.clone()),
        ] {
            let q = decode_all(&p.encode().0, &[]).unwrap();
            prop_assert_eq!(&q, &p);
        }
        let reply = Packet::connect_reply(namespace, &sid);
        prop_assert_eq!(reply.payload_as::<Value>().unwrap(), json!({"sid": sid}));
    }

    /// Arbitrary text never panics; whatever decodes re-encodes to text that
    /// decodes to the same packet.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_reencode(&text)?;
    }

    /// Text that looks like a header, so the later parsing stages are
    /// reached often.
    #[test]
    fn header_like_text_never_panics(
        text in "[0-7][0-9]{0,3}-?(/[a-z,\\n]{0,4})?,?[0-9]{0,3}(\\[|\\{|\")?[\"a-z0-9,:\\[\\]{}_ ]{0,12}"
    ) {
        check_reencode(&text)?;
    }
}

fn check_reencode(text: &str) -> Result<(), TestCaseError> {
    if let Ok(decoded) = Packet::decode(text.into()) {
        let (p, expected) = match decoded {
            Decoded::Complete(p) => (p, 0),
            Decoded::AwaitingAttachments(partial) => {
                let n = partial.expected();
                let mut d = Decoded::AwaitingAttachments(partial);
                // Do not trust the announced count: push at most a few.
                for i in 0..n.min(4) {
                    if let Decoded::AwaitingAttachments(pp) = d {
                        d = pp.push(Bytes::from(vec![i as u8]));
                    }
                }
                match d {
                    Decoded::Complete(p) => (p, n),
                    Decoded::AwaitingAttachments(_) => return Ok(()),
                }
            }
        };
        let (enc, atts) = p.encode();
        prop_assert_eq!(atts.len(), expected);
        prop_assert_eq!(enc.len(), p.encoded_len());
        let q = decode_all(&enc, &atts).unwrap();
        prop_assert_eq!(q, p);
    }
    Ok(())
}

#[test]
fn write_ack_matches_the_ack_packet() {
    for (namespace, id) in [("/", 0u64), ("/", 7), ("/chat", 12_345_678_901)] {
        for args in [
            json!(["ok", 1]),
            json!([]),
            Value::Null,
            json!([{"a": "é"}]),
        ] {
            let mut out = b"4".to_vec();
            Packet::write_ack(&mut out, &ns(namespace), id, &args).unwrap();
            let expected = Packet::ack(ns(namespace), id, &args).unwrap().encode().0;
            assert_eq!(
                out.get(1..).unwrap(),
                expected.as_bytes(),
                "{namespace} {id} {args}"
            );
        }
    }
    // Arguments that are not an array: an error, and the buffer as it was.
    let mut out = b"4".to_vec();
    assert!(matches!(
        Packet::write_ack(&mut out, &ns("/"), 1, &json!({"a": 1})),
        Err(Error::ArgsNotArray)
    ));
    assert_eq!(out, b"4");
}

#[test]
fn event_view_matches_name_and_args() {
    for text in [
        r#"2["echo","hi",1]"#,
        r#"2/chat,5["with \"escapes\"",{"a":[1,2]}]"#,
        r#"2["only"]"#,
        r#"2 [ "spaced" , true ] "#,
        r#"2["é",["ü"]]"#,
    ] {
        let p = decode_all(text, &[]).unwrap();
        let view = p.event_view().unwrap();
        assert_eq!(view.name().unwrap(), p.event_name().unwrap(), "{text}");
        assert_eq!(
            view.args_values().unwrap(),
            p.args_values().unwrap(),
            "{text}"
        );
    }
    let ack = decode_all(r#"31["x"]"#, &[]).unwrap();
    assert!(matches!(
        ack.event_view(),
        Err(Error::NotAnEvent(PacketKind::Ack))
    ));
}
