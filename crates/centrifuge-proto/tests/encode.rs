//! Golden vectors for encoding: every reply and push shape, written by hand
//! from `client.proto` and the way Centrifugo omits zero values.

use std::collections::BTreeMap;

use centrifuge_proto::*;

fn raw(text: &str) -> RawJson {
    text.parse().unwrap()
}

fn reply(id: u32, result: ReplyResult) -> String {
    let mut out = String::new();
    encode_reply(&mut out, id, &result);
    check_json(&out);
    out
}

fn push(channel: &str, p: Push) -> String {
    let text = encode_push(channel, &p).as_str().to_owned();
    let mut frame = FrameBuf::new();
    frame.push(channel, &p);
    assert_eq!(frame.as_str(), text);
    check_json(&text);
    text
}

/// Every message is one line of valid JSON.
fn check_json(text: &str) {
    assert!(!text.contains('\n'), "{text}");
    serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|e| panic!("{text}: {e}"));
}

fn info(user: &str, client: &str) -> ClientInfo {
    ClientInfo {
        user: user.into(),
        client: client.into(),
        ..Default::default()
    }
}

// ---- replies --------------------------------------------------------------

#[test]
fn connect_result() {
    assert_eq!(
        reply(
            1,
            ReplyResult::Connect(ConnectResult {
                client: "c1".into(),
                ..Default::default()
            })
        ),
        r#"{"id":1,"connect":{"client":"c1"}}"#
    );
    let full = ConnectResult {
        client: "c1".into(),
        version: "0.1.0".into(),
        expires: true,
        ttl: 60,
        data: Some(raw(r#"{"k":"v"}"#)),
        subs: BTreeMap::from([(
            "news".to_owned(),
            SubscribeResult {
                recoverable: true,
                epoch: "e".into(),
                offset: 3,
                ..Default::default()
            },
        )]),
        ping: 25,
        pong: true,
        session: "s".into(),
        node: "n".into(),
    };
    assert_eq!(
        reply(1, ReplyResult::Connect(full)),
        concat!(
            r#"{"id":1,"connect":{"client":"c1","version":"0.1.0","expires":true,"ttl":60,"#,
            r#""data":{"k":"v"},"subs":{"news":{"recoverable":true,"epoch":"e","offset":3}},"#,
            r#""ping":25,"pong":true,"session":"s","node":"n"}}"#
        )
    );
}

#[test]
fn subscribe_result() {
    assert_eq!(
        reply(2, ReplyResult::Subscribe(SubscribeResult::default())),
        r#"{"id":2,"subscribe":{}}"#
    );
    let full = SubscribeResult {
        expires: true,
        ttl: 30,
        recoverable: true,
        epoch: "xyz".into(),
        publications: vec![
            Publication::new(raw(r#"{"n":1}"#), 4),
            Publication::new(raw(r#"{"n":2}"#), 5),
        ],
        recovered: true,
        offset: 5,
        positioned: true,
        data: Some(raw("[]")),
        was_recovering: true,
        delta: true,
    };
    assert_eq!(
        reply(2, ReplyResult::Subscribe(full)),
        concat!(
            r#"{"id":2,"subscribe":{"expires":true,"ttl":30,"recoverable":true,"epoch":"xyz","#,
            r#""publications":[{"data":{"n":1},"offset":4},{"data":{"n":2},"offset":5}],"#,
            r#""recovered":true,"offset":5,"positioned":true,"data":[],"was_recovering":true,"#,
            r#""delta":true}}"#
        )
    );
}

#[test]
fn empty_results() {
    assert_eq!(
        reply(3, ReplyResult::Unsubscribe),
        r#"{"id":3,"unsubscribe":{}}"#
    );
    assert_eq!(reply(4, ReplyResult::Publish), r#"{"id":4,"publish":{}}"#);
    assert_eq!(
        reply(8, ReplyResult::Rpc(RpcResult::default())),
        r#"{"id":8,"rpc":{}}"#
    );
    assert_eq!(
        reply(9, ReplyResult::Refresh(RefreshResult::default())),
        r#"{"id":9,"refresh":{}}"#
    );
    assert_eq!(
        reply(10, ReplyResult::SubRefresh(SubRefreshResult::default())),
        r#"{"id":10,"sub_refresh":{}}"#
    );
}

#[test]
fn presence_result() {
    assert_eq!(
        reply(5, ReplyResult::Presence(PresenceResult::default())),
        r#"{"id":5,"presence":{"presence":{}}}"#
    );
    let presence = BTreeMap::from([
        (
            "c1".to_owned(),
            ClientInfo {
                conn_info: Some(raw(r#"{"name":"Alice"}"#)),
                chan_info: Some(raw("7")),
                ..info("u1", "c1")
            },
        ),
        // An anonymous user still has its `user` key.
        ("c2".to_owned(), info("", "c2")),
    ]);
    assert_eq!(
        reply(5, ReplyResult::Presence(PresenceResult { presence })),
        concat!(
            r#"{"id":5,"presence":{"presence":{"#,
            r#""c1":{"user":"u1","client":"c1","conn_info":{"name":"Alice"},"chan_info":7},"#,
            r#""c2":{"user":"","client":"c2"}}}}"#
        )
    );
}

#[test]
fn presence_stats_result_always_has_both_counts() {
    assert_eq!(
        reply(
            6,
            ReplyResult::PresenceStats(PresenceStatsResult::default())
        ),
        r#"{"id":6,"presence_stats":{"num_clients":0,"num_users":0}}"#
    );
    assert_eq!(
        reply(
            6,
            ReplyResult::PresenceStats(PresenceStatsResult {
                num_clients: 3,
                num_users: 2
            })
        ),
        r#"{"id":6,"presence_stats":{"num_clients":3,"num_users":2}}"#
    );
}

#[test]
fn history_result_always_has_all_fields() {
    assert_eq!(
        reply(7, ReplyResult::History(HistoryResult::default())),
        r#"{"id":7,"history":{"publications":[],"epoch":"","offset":0}}"#
    );
    let result = HistoryResult {
        publications: vec![Publication {
            info: Some(info("u", "c")),
            tags: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            ..Publication::new(raw(r#""x""#), 9)
        }],
        epoch: "ep".into(),
        offset: 9,
    };
    assert_eq!(
        reply(7, ReplyResult::History(result)),
        concat!(
            r#"{"id":7,"history":{"publications":[{"data":"x","info":{"user":"u","client":"c"},"#,
            r#""offset":9,"tags":{"k":"v"}}],"epoch":"ep","offset":9}}"#
        )
    );
}

#[test]
fn rpc_refresh_sub_refresh_results() {
    assert_eq!(
        reply(
            8,
            ReplyResult::Rpc(RpcResult {
                data: Some(raw(r#"{"sum":3}"#))
            })
        ),
        r#"{"id":8,"rpc":{"data":{"sum":3}}}"#
    );
    assert_eq!(
        reply(
            9,
            ReplyResult::Refresh(RefreshResult {
                client: "c1".into(),
                version: "1.0".into(),
                expires: true,
                ttl: 3600
            })
        ),
        r#"{"id":9,"refresh":{"client":"c1","version":"1.0","expires":true,"ttl":3600}}"#
    );
    assert_eq!(
        reply(
            10,
            ReplyResult::SubRefresh(SubRefreshResult {
                expires: true,
                ttl: 30
            })
        ),
        r#"{"id":10,"sub_refresh":{"expires":true,"ttl":30}}"#
    );
}

#[test]
fn error_replies() {
    let error = |id, e: ReplyError| {
        let mut out = String::new();
        encode_error_reply(&mut out, id, &e);
        check_json(&out);
        out
    };
    assert_eq!(
        error(11, ErrorCode::BadRequest.into()),
        r#"{"id":11,"error":{"code":107,"message":"bad request"}}"#
    );
    assert_eq!(
        error(11, ErrorCode::Internal.into()),
        r#"{"id":11,"error":{"code":100,"message":"internal server error","temporary":true}}"#
    );
    assert_eq!(
        error(11, ErrorCode::TooManyRequests.into()),
        r#"{"id":11,"error":{"code":111,"message":"too many requests","temporary":true}}"#
    );
    assert_eq!(
        error(11, ReplyError::new(4000, "custom \"app\" error", false)),
        r#"{"id":11,"error":{"code":4000,"message":"custom \"app\" error"}}"#
    );
    // centrifuge-python reads `message` unconditionally.
    assert_eq!(
        error(11, ReplyError::new(4001, "", true)),
        r#"{"id":11,"error":{"code":4001,"message":"","temporary":true}}"#
    );
    let all: Vec<String> = ErrorCode::ALL
        .into_iter()
        .map(|c| error(1, c.into()))
        .collect();
    assert_eq!(
        all[9],
        r#"{"id":1,"error":{"code":109,"message":"token expired"}}"#
    );
    assert_eq!(
        all[12],
        r#"{"id":1,"error":{"code":112,"message":"unrecoverable position"}}"#
    );
}

// ---- pushes ---------------------------------------------------------------

#[test]
fn publication_push() {
    assert_eq!(
        push("c", Push::Publication(Publication::new(RawJson::null(), 0))),
        r#"{"push":{"channel":"c","pub":{"data":null}}}"#
    );
    let full = Publication {
        data: raw(r#"{"text":"hi"}"#),
        info: Some(ClientInfo {
            conn_info: Some(raw(r#"{"n":"A"}"#)),
            ..info("42", "c9")
        }),
        offset: 17,
        tags: BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]),
        delta: true,
        time: 1_700_000_000_000,
    };
    let expected = concat!(
        r#"{"push":{"channel":"chat","pub":{"data":{"text":"hi"},"#,
        r#""info":{"user":"42","client":"c9","conn_info":{"n":"A"}},"offset":17,"#,
        r#""tags":{"a":"1","b":"2"},"delta":true,"time":1700000000000}}}"#
    );
    assert_eq!(push("chat", Push::Publication(full.clone())), expected);
    // The encode-once path writes the same bytes.
    let shared = encode_publication_push("chat", &full);
    assert_eq!(shared.as_str(), expected);
    let mut frame = FrameBuf::new();
    frame.publication("chat", &full);
    assert_eq!(frame.as_str(), expected);
}

#[test]
fn join_and_leave_pushes() {
    assert_eq!(
        push("c", Push::Join(info("u", "c1"))),
        r#"{"push":{"channel":"c","join":{"info":{"user":"u","client":"c1"}}}}"#
    );
    assert_eq!(
        push(
            "c",
            Push::Leave(ClientInfo {
                chan_info: Some(raw(r#"{"role":"admin"}"#)),
                ..info("u", "c1")
            })
        ),
        r#"{"push":{"channel":"c","leave":{"info":{"user":"u","client":"c1","chan_info":{"role":"admin"}}}}}"#
    );
}

#[test]
fn unsubscribe_push() {
    assert_eq!(
        push("c", Push::Unsubscribe(Unsubscribe::SERVER)),
        r#"{"push":{"channel":"c","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#
    );
    assert_eq!(
        push("c", Push::Unsubscribe(Unsubscribe::INSUFFICIENT_STATE)),
        r#"{"push":{"channel":"c","unsubscribe":{"code":2500,"reason":"insufficient state"}}}"#
    );
    assert!(Unsubscribe::resubscribes(Unsubscribe::EXPIRED.code));
    assert!(!Unsubscribe::resubscribes(Unsubscribe::SERVER.code));
}

#[test]
fn message_push_has_no_channel() {
    assert_eq!(
        push("", Push::Message(raw(r#""hello""#))),
        r#"{"push":{"message":{"data":"hello"}}}"#
    );
}

#[test]
fn subscribe_push() {
    assert_eq!(
        push("c", Push::Subscribe(SubscribePush::default())),
        r#"{"push":{"channel":"c","subscribe":{}}}"#
    );
    assert_eq!(
        push(
            "c",
            Push::Subscribe(SubscribePush {
                recoverable: true,
                epoch: "e".into(),
                offset: 1,
                positioned: true,
                data: Some(raw("{}")),
            })
        ),
        r#"{"push":{"channel":"c","subscribe":{"recoverable":true,"epoch":"e","offset":1,"positioned":true,"data":{}}}}"#
    );
}

#[test]
fn connect_push() {
    assert_eq!(
        push(
            "",
            Push::Connect(ConnectResult {
                client: "c1".into(),
                version: "1".into(),
                ping: 25,
                ..Default::default()
            })
        ),
        r#"{"push":{"connect":{"client":"c1","version":"1","ping":25}}}"#
    );
}

#[test]
fn disconnect_push() {
    assert_eq!(
        push("", Push::Disconnect(Disconnect::SHUTDOWN)),
        r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#
    );
    // Terminal codes leave `reconnect` out (false).
    assert_eq!(
        push("", Push::Disconnect(Disconnect::INVALID_TOKEN)),
        r#"{"push":{"disconnect":{"code":3500,"reason":"invalid token"}}}"#
    );
    for (d, code, reason, reconnect) in [
        (Disconnect::SHUTDOWN, 3001, "shutdown", true),
        (Disconnect::SLOW, 3008, "slow", true),
        (Disconnect::NO_PONG, 3012, "no pong", true),
        (Disconnect::INVALID_TOKEN, 3500, "invalid token", false),
        (Disconnect::BAD_REQUEST, 3501, "bad request", false),
        (Disconnect::STALE, 3502, "stale", false),
        (
            Disconnect::CONNECTION_LIMIT,
            3504,
            "connection limit",
            false,
        ),
        (
            Disconnect::PERMISSION_DENIED,
            3507,
            "permission denied",
            false,
        ),
    ] {
        assert_eq!((d.code, &*d.reason, d.reconnect), (code, reason, reconnect));
    }
}

#[test]
fn refresh_push() {
    assert_eq!(
        push(
            "",
            Push::Refresh(RefreshPush {
                expires: true,
                ttl: 10
            })
        ),
        r#"{"push":{"refresh":{"expires":true,"ttl":10}}}"#
    );
}

#[test]
fn strings_are_escaped() {
    let channel = "a\"b\\c\nd\u{1}é";
    let text = push(channel, Push::Join(info("ü\t", "c")));
    assert_eq!(
        text,
        r#"{"push":{"channel":"a\"b\\c\nd\u0001é","join":{"info":{"user":"ü\t","client":"c"}}}}"#
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["push"]["channel"], channel);
    let presence = BTreeMap::from([("k\"ey".to_owned(), info("u", "k\"ey"))]);
    let text = reply(1, ReplyResult::Presence(PresenceResult { presence }));
    assert_eq!(
        text,
        r#"{"id":1,"presence":{"presence":{"k\"ey":{"user":"u","client":"k\"ey"}}}}"#
    );
}

#[test]
fn payload_newlines_never_reach_the_frame() {
    let data: RawJson = "{\n  \"a\": \"x\\ny\"\n}".parse().unwrap();
    let text = push("c", Push::Message(data));
    assert_eq!(
        text,
        r#"{"push":{"channel":"c","message":{"data":{  "a": "x\ny"}}}}"#
    );
}

// ---- frames ---------------------------------------------------------------

#[test]
fn frame_joins_messages_with_newlines() {
    let mut frame = FrameBuf::with_capacity(256);
    assert!(frame.is_empty());
    frame.reply(1, &ReplyResult::Publish);
    let shared = encode_publication_push("c", &Publication::new(raw("1"), 1));
    frame.append_encoded(&shared);
    frame.ping();
    frame.error(2, &ErrorCode::PermissionDenied.into());
    frame.push("", &Push::Disconnect(Disconnect::SLOW));
    let expected = concat!(
        r#"{"id":1,"publish":{}}"#,
        "\n",
        r#"{"push":{"channel":"c","pub":{"data":1,"offset":1}}}"#,
        "\n",
        "{}",
        "\n",
        r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#,
        "\n",
        r#"{"push":{"disconnect":{"code":3008,"reason":"slow","reconnect":true}}}"#,
    );
    assert_eq!(frame.as_str(), expected);
    assert_eq!(frame.messages(), 5);
    assert_eq!(frame.len(), expected.len());
    // The way the SDKs read a frame.
    for line in frame.as_str().trim().split('\n') {
        check_json(line);
    }
    let taken = frame.take_utf8_bytes();
    assert_eq!(taken.as_str(), expected);
    assert!(frame.is_empty());
    frame.ping();
    assert_eq!(frame.as_str(), "{}");
    frame.clear();
    assert_eq!((frame.as_str(), frame.messages()), ("", 0));
}

#[test]
fn a_ping_is_an_empty_object() {
    let mut frame = FrameBuf::new();
    frame.ping();
    assert_eq!(frame.take(), "{}");
}
