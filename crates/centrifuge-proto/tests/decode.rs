//! Golden vectors for decoding: every command as the SDKs write it, frames
//! of several commands, and everything a client can get wrong.

use std::collections::BTreeMap;

use centrifuge_proto::*;

fn one(line: &str) -> Result<Command, Error> {
    decode_command(line, Limits::DEFAULT_MAX_DEPTH)
}

fn ok(line: &str) -> Command {
    match one(line) {
        Ok(c) => c,
        Err(e) => panic!("{line}: {e}"),
    }
}

fn raw(text: &str) -> RawJson {
    text.parse().unwrap()
}

fn bad_request(line: &str) -> (u32, Method, String) {
    match one(line) {
        Err(e @ Error::BadRequest { .. }) => {
            assert_eq!(
                e.action(),
                ErrorAction::Reply {
                    id: e.command_id().unwrap(),
                    error: ErrorCode::BadRequest
                }
            );
            let Error::BadRequest { id, method, reason } = e else {
                unreachable!()
            };
            (id, method, reason)
        }
        other => panic!("{line}: expected BadRequest, got {other:?}"),
    }
}

fn closes(line: &str) -> Error {
    match one(line) {
        Err(e) => {
            assert_eq!(
                e.action(),
                ErrorAction::Close(Disconnect::BAD_REQUEST),
                "{e}"
            );
            assert_eq!(e.command_id(), None);
            e
        }
        Ok(c) => panic!("{line}: expected an error, got {c:?}"),
    }
}

// ---- every command -------------------------------------------------------

#[test]
fn connect_as_centrifuge_js_sends_it() {
    // centrifuge-js assigns the id after building the command, so it comes
    // last.
    let cmd = ok(concat!(
        r#"{"connect":{"token":"tok","data":{"a": 1,"b":[true,null]},"#,
        r#""subs":{"news":{"recover":true,"offset":3,"epoch":"ep"}},"#,
        r#""name":"js","version":"5.1.0","headers":{"X-A":"1"}},"id":1}"#
    ));
    let Command::Connect { id, req } = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(id, 1);
    assert_eq!(req.token, "tok");
    assert_eq!(
        req.data.as_ref().map(RawJson::as_str),
        Some(r#"{"a": 1,"b":[true,null]}"#)
    );
    assert_eq!(req.name, "js");
    assert_eq!(req.version, "5.1.0");
    assert_eq!(
        req.headers,
        BTreeMap::from([("X-A".to_owned(), "1".to_owned())])
    );
    let sub = &req.subs["news"];
    assert_eq!(
        sub,
        &SubscribeRequest {
            recover: true,
            offset: 3,
            epoch: "ep".into(),
            ..Default::default()
        }
    );
}

#[test]
fn connect_as_centrifuge_python_sends_it() {
    // Python's json.dumps puts spaces after separators.
    let cmd = ok(r#"{"id": 1, "connect": {"token": "t", "name": "python", "data": {"x": "y"}}}"#);
    assert_eq!(
        cmd,
        Command::Connect {
            id: 1,
            req: ConnectRequest {
                token: "t".into(),
                name: "python".into(),
                data: Some(raw(r#"{"x": "y"}"#)),
                ..Default::default()
            }
        }
    );
}

#[test]
fn connect_empty() {
    assert_eq!(
        ok(r#"{"connect":{},"id":1}"#),
        Command::Connect {
            id: 1,
            req: ConnectRequest::default()
        }
    );
}

#[test]
fn subscribe_all_fields() {
    let cmd = ok(concat!(
        r#"{"subscribe":{"channel":"chat:room#1,2","token":"st","recover":true,"#,
        r#""epoch":"xyz","offset":18446744073709551615,"data":"hello","positioned":true,"#,
        r#""recoverable":true,"join_leave":true,"delta":"fossil"},"id":2}"#
    ));
    assert_eq!(
        cmd,
        Command::Subscribe {
            id: 2,
            req: SubscribeRequest {
                channel: "chat:room#1,2".into(),
                token: "st".into(),
                recover: true,
                epoch: "xyz".into(),
                offset: u64::MAX,
                data: Some(raw(r#""hello""#)),
                positioned: true,
                recoverable: true,
                join_leave: true,
                delta: "fossil".into(),
            }
        }
    );
    assert_eq!(cmd.channel(), Some("chat:room#1,2"));
    assert_eq!(cmd.method(), Some(Method::Subscribe));
}

#[test]
fn subscribe_minimal() {
    assert_eq!(
        ok(r#"{"subscribe":{"channel":"news"},"id":2}"#),
        Command::Subscribe {
            id: 2,
            req: SubscribeRequest {
                channel: "news".into(),
                ..Default::default()
            }
        }
    );
}

#[test]
fn unsubscribe_presence_presence_stats() {
    assert_eq!(
        ok(r#"{"unsubscribe":{"channel":"news"},"id":3}"#),
        Command::Unsubscribe {
            id: 3,
            req: UnsubscribeRequest {
                channel: "news".into()
            }
        }
    );
    assert_eq!(
        ok(r#"{"presence":{"channel":"news"},"id":5}"#),
        Command::Presence {
            id: 5,
            req: PresenceRequest {
                channel: "news".into()
            }
        }
    );
    assert_eq!(
        ok(r#"{"presence_stats":{"channel":"news"},"id":6}"#),
        Command::PresenceStats {
            id: 6,
            req: PresenceStatsRequest {
                channel: "news".into()
            }
        }
    );
}

#[test]
fn publish_keeps_data_byte_for_byte() {
    // Number spellings, key order, escapes and whitespace survive.
    let data = r#"{"z": 1.50, "a":[1e2,-0,"\u00e9\n"], "é": {}}"#;
    let line = format!(r#"{{"publish":{{"channel":"chat","data":{data}}},"id":4}}"#);
    let Command::Publish { id, req } = ok(&line) else {
        panic!()
    };
    assert_eq!(id, 4);
    assert_eq!(req.channel, "chat");
    assert_eq!(req.data.as_str(), data);
}

#[test]
fn publish_null_data_is_a_payload() {
    let Command::Publish { req, .. } = ok(r#"{"id":4,"publish":{"channel":"c","data":null}}"#)
    else {
        panic!()
    };
    assert_eq!(req.data, RawJson::null());
}

#[test]
fn history_all_fields() {
    assert_eq!(
        ok(
            r#"{"history":{"channel":"c","limit":10,"since":{"offset":5,"epoch":"e"},"reverse":true},"id":7}"#
        ),
        Command::History {
            id: 7,
            req: HistoryRequest {
                channel: "c".into(),
                limit: 10,
                since: Some(StreamPosition {
                    offset: 5,
                    epoch: "e".into()
                }),
                reverse: true,
            }
        }
    );
    // centrifuge-js sends `since` without an epoch when it has none, and a
    // negative limit for "everything".
    assert_eq!(
        ok(r#"{"history":{"channel":"c","limit":-1,"since":{"offset":5}},"id":7}"#),
        Command::History {
            id: 7,
            req: HistoryRequest {
                channel: "c".into(),
                limit: -1,
                since: Some(StreamPosition {
                    offset: 5,
                    epoch: String::new()
                }),
                reverse: false,
            }
        }
    );
    let Command::History { req, .. } = ok(r#"{"history":{"channel":"c","since":null},"id":7}"#)
    else {
        panic!()
    };
    assert_eq!(req.since, None);
}

#[test]
fn rpc_refresh_sub_refresh() {
    assert_eq!(
        ok(r#"{"rpc":{"method":"sum","data":[1,2]},"id":8}"#),
        Command::Rpc {
            id: 8,
            req: RpcRequest {
                method: "sum".into(),
                data: Some(raw("[1,2]"))
            }
        }
    );
    assert_eq!(
        ok(r#"{"rpc":{},"id":8}"#),
        Command::Rpc {
            id: 8,
            req: RpcRequest::default()
        }
    );
    assert_eq!(
        ok(r#"{"refresh":{"token":"t2"},"id":9}"#),
        Command::Refresh {
            id: 9,
            req: RefreshRequest { token: "t2".into() }
        }
    );
    assert_eq!(
        ok(r#"{"sub_refresh":{"channel":"c","token":"st2"},"id":10}"#),
        Command::SubRefresh {
            id: 10,
            req: SubRefreshRequest {
                channel: "c".into(),
                token: "st2".into()
            }
        }
    );
}

#[test]
fn send_has_no_id() {
    let cmd = ok(r#"{"send":{"data":{"x":1}}}"#);
    assert_eq!(
        cmd,
        Command::Send(SendRequest {
            data: Some(raw(r#"{"x":1}"#))
        })
    );
    assert_eq!(cmd.id(), None);
    assert_eq!(cmd.method(), Some(Method::Send));
    // An id, if a client adds one, is ignored.
    assert_eq!(ok(r#"{"send":{"data":{"x":1}},"id":3}"#), cmd);
    assert_eq!(
        ok(r#"{"send":{}}"#),
        Command::Send(SendRequest { data: None })
    );
}

#[test]
fn pong() {
    assert_eq!(ok("{}"), Command::Pong);
    assert_eq!(ok(" { } \r"), Command::Pong);
    assert_eq!(ok(r#"{"id":0}"#), Command::Pong);
    assert_eq!(ok(r#"{"id":null,"subscribe":null}"#), Command::Pong);
    assert_eq!(Command::Pong.id(), None);
    assert_eq!(Command::Pong.method(), None);
}

// ---- lenience: unknown fields, nulls ------------------------------------

#[test]
fn unknown_fields_are_ignored() {
    // Newer SDK fields (flag, tf, type) and outright junk, at every level.
    let cmd = ok(concat!(
        r#"{"subscribe":{"channel":"c","flag":7,"tf":{"op":"and","nodes":[{"key":"k"}]},"#,
        r#""type":1,"future":[1,{"x":null}]},"id":2,"extra":true,"ping":{}}"#
    ));
    assert_eq!(
        cmd,
        Command::Subscribe {
            id: 2,
            req: SubscribeRequest {
                channel: "c".into(),
                ..Default::default()
            }
        }
    );
    let cmd =
        ok(r#"{"id":1,"connect":{"subs":{"a":{"recover":true,"x":[]}},"dict":"d","profile":"p"}}"#);
    let Command::Connect { req, .. } = cmd else {
        panic!()
    };
    assert!(req.subs["a"].recover);
}

#[test]
fn null_means_absent_except_for_payloads() {
    let cmd = ok(concat!(
        r#"{"id":2,"subscribe":{"channel":"c","token":null,"recover":null,"#,
        r#""offset":null,"epoch":null,"data":null}}"#
    ));
    assert_eq!(
        cmd,
        Command::Subscribe {
            id: 2,
            req: SubscribeRequest {
                channel: "c".into(),
                data: Some(RawJson::null()),
                ..Default::default()
            }
        }
    );
    let Command::Connect { req, .. } =
        ok(r#"{"id":1,"connect":{"subs":null,"headers":null,"token":null}}"#)
    else {
        panic!()
    };
    assert_eq!(req, ConnectRequest::default());
}

// ---- wrong types: answered with 107 --------------------------------------

#[test]
fn wrong_field_types_identify_the_command() {
    let cases = [
        (
            r#"{"id":5,"subscribe":{"channel":123}}"#,
            5,
            Method::Subscribe,
        ),
        // The id comes after the body, as centrifuge-js writes it.
        (
            r#"{"subscribe":{"channel":"c","offset":"5"},"id":6}"#,
            6,
            Method::Subscribe,
        ),
        (
            r#"{"subscribe":{"channel":"c","offset":-1},"id":6}"#,
            6,
            Method::Subscribe,
        ),
        (
            r#"{"subscribe":{"channel":"c","offset":1.5},"id":6}"#,
            6,
            Method::Subscribe,
        ),
        (
            r#"{"subscribe":{"channel":"c","recover":1},"id":6}"#,
            6,
            Method::Subscribe,
        ),
        (
            r#"{"subscribe":{"channel":"c","recover":"true"},"id":6}"#,
            6,
            Method::Subscribe,
        ),
        (r#"{"id":5,"subscribe":[]}"#, 5, Method::Subscribe),
        (r#"{"id":5,"subscribe":["c"]}"#, 5, Method::Subscribe),
        (r#"{"id":5,"subscribe":"c"}"#, 5, Method::Subscribe),
        (r#"{"id":5,"subscribe":true}"#, 5, Method::Subscribe),
        (
            r#"{"id":7,"history":{"channel":"c","limit":1.5}}"#,
            7,
            Method::History,
        ),
        (
            r#"{"id":7,"history":{"channel":"c","limit":3000000000}}"#,
            7,
            Method::History,
        ),
        (
            r#"{"id":7,"history":{"channel":"c","since":[5,"e"]}}"#,
            7,
            Method::History,
        ),
        (
            r#"{"id":7,"history":{"channel":"c","since":5}}"#,
            7,
            Method::History,
        ),
        (
            r#"{"id":7,"history":{"channel":"c","since":{"offset":"5"}}}"#,
            7,
            Method::History,
        ),
        (r#"{"id":1,"connect":{"token":1}}"#, 1, Method::Connect),
        (r#"{"id":1,"connect":{"subs":[]}}"#, 1, Method::Connect),
        (
            r#"{"id":1,"connect":{"subs":{"a":[]}}}"#,
            1,
            Method::Connect,
        ),
        (
            r#"{"id":1,"connect":{"subs":{"a":{"offset":true}}}}"#,
            1,
            Method::Connect,
        ),
        (
            r#"{"id":1,"connect":{"headers":{"a":1}}}"#,
            1,
            Method::Connect,
        ),
        (r#"{"id":8,"rpc":{"method":[]}}"#, 8, Method::Rpc),
        (r#"{"id":9,"refresh":{"token":{}}}"#, 9, Method::Refresh),
        (
            r#"{"id":10,"sub_refresh":{"channel":"c","token":5}}"#,
            10,
            Method::SubRefresh,
        ),
        (
            r#"{"id":3,"unsubscribe":{"channel":false}}"#,
            3,
            Method::Unsubscribe,
        ),
        (
            r#"{"id":4,"publish":{"channel":"c","data":1,"channel":"d"}}"#,
            4,
            Method::Publish,
        ),
    ];
    for (line, id, method) in cases {
        let (got_id, got_method, reason) = bad_request(line);
        assert_eq!((got_id, got_method), (id, method), "{line}: {reason}");
        assert!(!reason.is_empty());
    }
}

#[test]
fn missing_required_fields() {
    for (line, method) in [
        (r#"{"id":2,"subscribe":{}}"#, Method::Subscribe),
        (r#"{"id":2,"subscribe":{"channel":""}}"#, Method::Subscribe),
        (
            r#"{"id":2,"subscribe":{"channel":null}}"#,
            Method::Subscribe,
        ),
        (r#"{"id":3,"unsubscribe":{}}"#, Method::Unsubscribe),
        (r#"{"id":4,"publish":{"data":1}}"#, Method::Publish),
        (r#"{"id":4,"publish":{"channel":"c"}}"#, Method::Publish),
        (r#"{"id":5,"presence":{}}"#, Method::Presence),
        (r#"{"id":6,"presence_stats":{}}"#, Method::PresenceStats),
        (r#"{"id":7,"history":{}}"#, Method::History),
        (
            r#"{"id":10,"sub_refresh":{"token":"t"}}"#,
            Method::SubRefresh,
        ),
    ] {
        assert_eq!(bad_request(line).1, method, "{line}");
    }
}

#[test]
fn method_errors_with_an_id() {
    // No method, or one this crate does not know: 104.
    for line in [
        r#"{"id":1}"#,
        r#"{"id":1,"ping":{}}"#,
        r#"{"id":1,"subscribe":null}"#,
    ] {
        let e = one(line).unwrap_err();
        assert!(matches!(e, Error::UnknownMethod { id: 1 }), "{line}: {e:?}");
        assert_eq!(
            e.action(),
            ErrorAction::Reply {
                id: 1,
                error: ErrorCode::MethodNotFound
            }
        );
    }
    // Two methods: 107.
    let e = one(r#"{"id":1,"subscribe":{"channel":"c"},"publish":{"channel":"c","data":1}}"#)
        .unwrap_err();
    assert!(matches!(
        e,
        Error::AmbiguousMethod {
            id: 1,
            methods: [Method::Subscribe, Method::Publish]
        }
    ));
    assert_eq!(
        e.action(),
        ErrorAction::Reply {
            id: 1,
            error: ErrorCode::BadRequest
        }
    );
}

// ---- malformed: the connection is closed with 3501 ------------------------

#[test]
fn malformed_json_closes() {
    for line in [
        "not json",
        "{",
        r#"{"id":1,"#,
        r#"{"id":1,"subscribe":{"channel":"c"}"#,
        r#"{"id":1,"subscribe":{"channel":"c"}}}"#,
        "{} {}",
        "{}x",
        "[]",
        "[1,{}]",
        r#""str""#,
        "1",
        "null",
        r#"{'id':1}"#,
        r#"{"id":1,"subscribe":{"channel":"c",}}"#,
        "{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":\"a\u{1}b\"}}",
        r#"{"id":1,"publish":{"channel":"c","data":NaN}}"#,
        r#"{"id":1,"publish":{"channel":"c","data":"\x"}}"#,
    ] {
        assert!(matches!(closes(line), Error::Malformed(_)), "{line}");
    }
}

#[test]
fn bad_ids_close() {
    for line in [
        r#"{"id":"5","subscribe":{"channel":"c"}}"#,
        r#"{"id":-1,"subscribe":{"channel":"c"}}"#,
        r#"{"id":1.5,"subscribe":{"channel":"c"}}"#,
        r#"{"id":4294967296,"subscribe":{"channel":"c"}}"#,
        r#"{"id":1,"id":2,"subscribe":{"channel":"c"}}"#,
    ] {
        assert!(matches!(closes(line), Error::Malformed(_)), "{line}");
    }
    assert!(matches!(
        one(r#"{"id":4294967295,"presence":{"channel":"c"}}"#),
        Ok(Command::Presence { id: u32::MAX, .. })
    ));
}

#[test]
fn methods_other_than_send_need_an_id() {
    for (line, method) in [
        (r#"{"subscribe":{"channel":"c"}}"#, Method::Subscribe),
        (r#"{"id":0,"connect":{}}"#, Method::Connect),
        (
            r#"{"send":{},"publish":{"channel":"c","data":1}}"#,
            Method::Publish,
        ),
    ] {
        let e = closes(line);
        assert!(
            matches!(e, Error::MissingId { method: m } if m == method),
            "{line}: {e:?}"
        );
    }
}

// ---- frames ---------------------------------------------------------------

#[test]
fn several_commands_in_one_frame() {
    let frame = concat!(
        r#"{"connect":{"token":"t"},"id":1}"#,
        "\n",
        r#"{"subscribe":{"channel":"a"},"id":2}"#,
        "\n",
        r#"{"subscribe":{"channel":"b"},"id":3}"#,
        "\n",
        "{}",
        "\n",
        r#"{"send":{"data":1}}"#,
    );
    let cmds: Vec<_> = decode_frame(frame, &Limits::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(cmds.len(), 5);
    assert_eq!(
        cmds.iter().map(Command::id).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3), None, None]
    );
    assert_eq!(cmds[2].channel(), Some("b"));
    assert_eq!(cmds[3], Command::Pong);
}

#[test]
fn frame_edges() {
    let limits = Limits::default();
    let count = |f: &str| decode_frame(f, &limits).unwrap().count();
    assert_eq!(count(""), 0);
    assert_eq!(count("\n"), 0);
    assert_eq!(count("{}"), 1);
    assert_eq!(count("{}\n"), 1);
    assert_eq!(count("{}\r\n"), 1);
    // Only one trailing newline is allowed; more are empty commands.
    let results: Vec<_> = decode_frame("{}\n\n", &limits).unwrap().collect();
    assert!(matches!(
        results[..],
        [Ok(Command::Pong), Err(Error::EmptyCommand)]
    ));
    let results: Vec<_> = decode_frame("{}\n \n{}", &limits).unwrap().collect();
    assert!(matches!(
        results[..],
        [
            Ok(Command::Pong),
            Err(Error::EmptyCommand),
            Ok(Command::Pong)
        ]
    ));
    assert_eq!(
        Error::EmptyCommand.action(),
        ErrorAction::Close(Disconnect::BAD_REQUEST)
    );
}

#[test]
fn one_bad_command_does_not_hide_the_others() {
    let frame = concat!(
        r#"{"subscribe":{"channel":1},"id":1}"#,
        "\n",
        "garbage",
        "\n",
        r#"{"subscribe":{"channel":"ok"},"id":3}"#,
    );
    let results: Vec<_> = decode_frame(frame, &Limits::default()).unwrap().collect();
    assert!(matches!(results[0], Err(Error::BadRequest { id: 1, .. })));
    assert!(matches!(results[1], Err(Error::Malformed(_))));
    assert!(matches!(results[2], Ok(Command::Subscribe { id: 3, .. })));
}

// ---- limits ---------------------------------------------------------------

#[test]
fn frame_size_limit() {
    let limits = Limits {
        max_frame_len: 10,
        ..Limits::default()
    };
    assert!(decode_frame("{}\n{}\n{}\n", &limits).is_ok()); // 9 bytes
    assert!(decode_frame(r#"{"id":0}  "#, &limits).is_ok()); // 10 bytes
    let e = decode_frame(r#"{"id":0}   "#, &limits).unwrap_err();
    assert!(matches!(e, Error::FrameTooLarge { len: 11, limit: 10 }));
    assert_eq!(e.action(), ErrorAction::Close(Disconnect::MESSAGE_TOO_BIG));
    assert_eq!(e.to_string(), "frame of 11 bytes exceeds the limit of 10");
}

#[test]
fn command_count_limit() {
    let limits = Limits {
        max_commands: 3,
        ..Limits::default()
    };
    assert_eq!(decode_frame("{}\n{}\n{}", &limits).unwrap().count(), 3);
    assert_eq!(decode_frame("{}\n{}\n{}\n", &limits).unwrap().count(), 3);
    let e = decode_frame("{}\n{}\n{}\n{}", &limits).unwrap_err();
    assert!(matches!(e, Error::TooManyCommands { limit: 3 }));
    assert_eq!(e.action(), ErrorAction::Close(Disconnect::BAD_REQUEST));
    // Empty lines count too.
    assert!(decode_frame("\n\n\n\n", &limits).is_err());
    // The default allows a big resubscribe batch.
    let batch: Vec<String> = (1..=1000)
        .map(|i| format!(r#"{{"subscribe":{{"channel":"c{i}"}},"id":{i}}}"#))
        .collect();
    let frame = batch.join("\n");
    let limits = Limits {
        max_frame_len: usize::MAX,
        ..Limits::default()
    };
    assert_eq!(
        decode_frame(&frame, &limits)
            .unwrap()
            .filter(Result::is_ok)
            .count(),
        1000
    );
}

#[test]
fn depth_limit() {
    // The command object and the method body are levels 1 and 2.
    let nested = |levels: usize| {
        format!(
            r#"{{"id":1,"publish":{{"channel":"c","data":{}1{}}}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert!(decode_command(&nested(3), 5).is_ok());
    let e = decode_command(&nested(4), 5).unwrap_err();
    assert!(matches!(e, Error::TooDeep { limit: 5 }));
    assert_eq!(e.action(), ErrorAction::Close(Disconnect::BAD_REQUEST));
    // Brackets inside strings do not count.
    let line = format!(
        r#"{{"id":1,"publish":{{"channel":"c","data":"{}\"{}"}}}}"#,
        "[".repeat(50),
        "{".repeat(50)
    );
    assert!(decode_command(&line, 3).is_ok());
    // The default admits 126 levels of payload, as serde_json can parse.
    let Ok(Command::Publish { req, .. }) = one(&nested(126)) else {
        panic!()
    };
    assert!(req.data.to_value().is_ok());
    assert!(matches!(
        one(&nested(127)),
        Err(Error::TooDeep { limit: 128 })
    ));
}

#[test]
fn ten_thousand_levels_error_without_crashing() {
    let deep = |open: &str, close: &str| format!("{}{}", open.repeat(10_000), close.repeat(10_000));
    let arrays = deep("[", "]");
    let objects = deep(r#"{"a":"#, "}");
    let lines = [
        arrays.clone(),
        objects.clone(),
        format!(r#"{{"id":1,"publish":{{"channel":"c","data":{arrays}}}}}"#),
        format!(r#"{{"id":1,"publish":{{"channel":"c","data":{objects}1}}}}"#),
        format!(r#"{{"id":1,"connect":{{"subs":{{"c":{{"x":{arrays}}}}}}}}}"#),
        format!(r#"{{"id":1,"subscribe":{{"channel":{arrays}}}}}"#),
        format!(r#"{{"unknown":{arrays},"id":1}}"#),
        format!("{}1", r#"{"a":"#.repeat(10_000)), // unterminated
    ];
    for line in &lines {
        // With the default limits every one of them is refused up front.
        assert!(
            matches!(
                one(line),
                Err(Error::TooDeep { limit: 128 } | Error::Malformed(_))
            ),
            "{}",
            &line[..40]
        );
        let frame = format!("{line}\n{{}}");
        let limits = Limits {
            max_frame_len: usize::MAX,
            ..Limits::default()
        };
        let results: Vec<_> = decode_frame(&frame, &limits).unwrap().collect();
        assert!(results[0].is_err());
        assert!(matches!(results[1], Ok(Command::Pong)));
    }
    // Without a depth limit nothing crashes either: serde_json skips and
    // captures raw values without recursion, and stops typed fields at
    // its recursion limit.
    for line in &lines {
        let _ = decode_command(line, usize::MAX);
    }
    let Ok(Command::Publish { req, .. }) = decode_command(&lines[2], usize::MAX) else {
        panic!()
    };
    assert!(req.data.to_value().is_err(), "serde_json's limit of 128");
    assert!(serde_json::from_str::<serde_json::Value>(&arrays).is_err());
    assert!(RawJson::from_string(arrays).is_ok());
}
