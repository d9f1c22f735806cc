//! Property tests: commands survive encode → decode unchanged, every
//! encoded push matches an independent model of the wire format, and no
//! input makes the decoder panic.

use std::collections::BTreeMap;

use centrifuge_proto::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_raw() -> impl Strategy<Value = RawJson> {
    arb_value().prop_map(|v| RawJson::from_value(&v))
}

fn arb_channel() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9_:#,.@=-]{1,24}", ".{1,8}"]
}

fn arb_id() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn arb_subscribe(channel: BoxedStrategy<String>) -> impl Strategy<Value = SubscribeRequest> {
    (
        channel,
        any::<String>(),
        any::<bool>(),
        any::<String>(),
        any::<u64>(),
        proptest::option::of(arb_raw()),
        any::<(bool, bool, bool)>(),
        prop_oneof![Just(String::new()), Just("fossil".to_owned())],
    )
        .prop_map(
            |(
                channel,
                token,
                recover,
                epoch,
                offset,
                data,
                (positioned, recoverable, join_leave),
                delta,
            )| {
                SubscribeRequest {
                    channel,
                    token,
                    recover,
                    epoch,
                    offset,
                    data,
                    positioned,
                    recoverable,
                    join_leave,
                    delta,
                }
            },
        )
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            arb_id(),
            any::<String>(),
            proptest::option::of(arb_raw()),
            prop::collection::btree_map(
                any::<String>(),
                arb_subscribe(Just(String::new()).boxed()),
                0..3
            ),
            any::<(String, String)>(),
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
        )
            .prop_map(|(id, token, data, subs, (name, version), headers)| {
                Command::Connect {
                    id,
                    req: ConnectRequest {
                        token,
                        data,
                        subs,
                        name,
                        version,
                        headers,
                    },
                }
            }),
        (arb_id(), arb_subscribe(arb_channel().boxed()))
            .prop_map(|(id, req)| Command::Subscribe { id, req }),
        (arb_id(), arb_channel()).prop_map(|(id, channel)| Command::Unsubscribe {
            id,
            req: UnsubscribeRequest { channel }
        }),
        (arb_id(), arb_channel(), arb_raw()).prop_map(|(id, channel, data)| Command::Publish {
            id,
            req: PublishRequest { channel, data }
        }),
        (arb_id(), arb_channel()).prop_map(|(id, channel)| Command::Presence {
            id,
            req: PresenceRequest { channel }
        }),
        (arb_id(), arb_channel()).prop_map(|(id, channel)| Command::PresenceStats {
            id,
            req: PresenceStatsRequest { channel }
        }),
        (
            arb_id(),
            arb_channel(),
            any::<i32>(),
            proptest::option::of((any::<u64>(), any::<String>())),
            any::<bool>()
        )
            .prop_map(|(id, channel, limit, since, reverse)| Command::History {
                id,
                req: HistoryRequest {
                    channel,
                    limit,
                    since: since.map(|(offset, epoch)| StreamPosition { offset, epoch }),
                    reverse
                }
            }),
        (arb_id(), proptest::option::of(arb_raw()), any::<String>()).prop_map(
            |(id, data, method)| Command::Rpc {
                id,
                req: RpcRequest { data, method }
            }
        ),
        (arb_id(), any::<String>()).prop_map(|(id, token)| Command::Refresh {
            id,
            req: RefreshRequest { token }
        }),
        (arb_id(), arb_channel(), any::<String>()).prop_map(|(id, channel, token)| {
            Command::SubRefresh {
                id,
                req: SubRefreshRequest { channel, token },
            }
        }),
        proptest::option::of(arb_raw()).prop_map(|data| Command::Send(SendRequest { data })),
        Just(Command::Pong),
    ]
}

fn arb_info() -> impl Strategy<Value = ClientInfo> {
    (
        any::<String>(),
        any::<String>(),
        proptest::option::of(arb_raw()),
        proptest::option::of(arb_raw()),
    )
        .prop_map(|(user, client, conn_info, chan_info)| ClientInfo {
            user,
            client,
            conn_info,
            chan_info,
        })
}

fn arb_publication() -> impl Strategy<Value = Publication> {
    (
        arb_raw(),
        proptest::option::of(arb_info()),
        any::<u64>(),
        prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
        any::<bool>(),
        any::<i64>(),
    )
        .prop_map(|(data, info, offset, tags, delta, time)| Publication {
            data,
            info,
            offset,
            tags,
            delta,
            time,
        })
}

/// The wire format of a client info, built independently of the encoder.
fn info_model(info: &ClientInfo) -> Value {
    let mut m = json!({"user": info.user, "client": info.client});
    if let Some(c) = &info.conn_info {
        m["conn_info"] = c.to_value().unwrap();
    }
    if let Some(c) = &info.chan_info {
        m["chan_info"] = c.to_value().unwrap();
    }
    m
}

/// The wire format of a publication: zero values left out.
fn publication_model(p: &Publication) -> Value {
    let mut m = json!({"data": p.data.to_value().unwrap()});
    if let Some(info) = &p.info {
        m["info"] = info_model(info);
    }
    if p.offset != 0 {
        m["offset"] = json!(p.offset);
    }
    if !p.tags.is_empty() {
        m["tags"] = json!(p.tags);
    }
    if p.delta {
        m["delta"] = json!(true);
    }
    if p.time != 0 {
        m["time"] = json!(p.time);
    }
    m
}

fn parse_line(text: &str) -> Value {
    assert!(!text.contains('\n'), "{text}");
    serde_json::from_str(text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn commands_round_trip(cmd in arb_command()) {
        let text = cmd.to_json();
        prop_assert!(!text.contains('\n'));
        let decoded = decode_command(&text, Limits::DEFAULT_MAX_DEPTH);
        prop_assert_eq!(decoded.ok(), Some(cmd));
    }

    #[test]
    fn frames_round_trip(cmds in prop::collection::vec(arb_command(), 0..8), trailing in any::<bool>()) {
        let mut frame = cmds.iter().map(Command::to_json).collect::<Vec<_>>().join("\n");
        if trailing && !frame.is_empty() {
            frame.push('\n');
        }
        let limits = Limits { max_frame_len: usize::MAX, ..Limits::default() };
        let decoded: Result<Vec<_>, _> = decode_frame(&frame, &limits).unwrap().collect();
        prop_assert_eq!(decoded.unwrap(), cmds);
    }

    #[test]
    fn wrong_types_keep_the_id(id in arb_id(), channel in arb_channel(), bad in prop_oneof![
        Just("1"), Just("true"), Just("[]"), Just("{}"), Just("-1.5")
    ]) {
        let mut cmd = Command::Subscribe {
            id,
            req: SubscribeRequest { channel, ..Default::default() },
        }
        .to_json();
        // Replace the channel's string with a value of another type.
        let start = cmd.find(r#""channel":"#).unwrap() + r#""channel":"#.len();
        let end = cmd.rfind("}}").unwrap();
        cmd.replace_range(start..end, bad);
        let e = decode_command(&cmd, Limits::DEFAULT_MAX_DEPTH).unwrap_err();
        prop_assert_eq!(e.action(), ErrorAction::Reply { id, error: ErrorCode::BadRequest });
    }

    #[test]
    fn publication_push_matches_model(channel in any::<String>(), p in arb_publication()) {
        let text = encode_publication_push(&channel, &p);
        let mut push = json!({"pub": publication_model(&p)});
        if !channel.is_empty() {
            push["channel"] = json!(channel);
        }
        prop_assert_eq!(parse_line(&text), json!({"push": push}));
    }

    #[test]
    fn history_and_presence_match_model(
        id in arb_id(),
        pubs in prop::collection::vec(arb_publication(), 0..4),
        epoch in any::<String>(),
        offset in any::<u64>(),
        presence in prop::collection::btree_map(any::<String>(), arb_info(), 0..4),
    ) {
        let mut frame = FrameBuf::new();
        frame.reply(id, &ReplyResult::History(HistoryResult {
            publications: pubs.clone(),
            epoch: epoch.clone(),
            offset,
        }));
        frame.reply(id, &ReplyResult::Presence(PresenceResult { presence: presence.clone() }));
        let lines: Vec<_> = frame.as_str().split('\n').map(parse_line).collect();
        prop_assert_eq!(lines.len(), 2);
        let pubs: Vec<_> = pubs.iter().map(publication_model).collect();
        prop_assert_eq!(&lines[0], &json!({"id": id, "history": {
            "publications": pubs, "epoch": epoch, "offset": offset
        }}));
        let presence: BTreeMap<_, _> = presence.iter().map(|(k, v)| (k.clone(), info_model(v))).collect();
        prop_assert_eq!(&lines[1], &json!({"id": id, "presence": {"presence": presence}}));
    }

    #[test]
    fn raw_json_normalizes_pretty_text(v in arb_value()) {
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let raw: RawJson = pretty.parse().unwrap();
        prop_assert!(!raw.as_str().contains('\n'));
        // (Compared with serde_json's own reading of the text: without its
        // float_roundtrip feature a float may not survive the text form.)
        prop_assert_eq!(raw.to_value().unwrap(), serde_json::from_str::<Value>(&pretty).unwrap());
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(commands) = decode_frame(&text, &Limits::default()) {
            for result in commands {
                if let Err(e) = result {
                    let _ = (e.action(), e.command_id(), e.to_string());
                }
            }
        }
    }

    #[test]
    fn mutated_commands_never_panic(cmd in arb_command(), at in any::<prop::sample::Index>(), byte in prop_oneof![
        Just('"'), Just('{'), Just('}'), Just('['), Just(']'), Just(','), Just(':'), Just('\\'), Just('\n'), Just('0'), Just(' ')
    ], delete in any::<bool>()) {
        let mut text = cmd.to_json();
        let mut i = at.index(text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        if delete && i < text.len() {
            text.remove(i);
        } else {
            text.insert(i, byte);
        }
        for result in decode_frame(&text, &Limits::default()).unwrap() {
            match result {
                // Whatever still decodes must re-encode to something that
                // decodes the same.
                Ok(c) => prop_assert_eq!(decode_command(&c.to_json(), usize::MAX).ok(), Some(c)),
                Err(e) => { let _ = e.action(); }
            }
        }
    }
}
