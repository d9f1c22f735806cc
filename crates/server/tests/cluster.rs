//! Several nodes as one over Redis (`broker`), in-process nodes made with
//! `run::start` on the machine's Redis, each test under its own key
//! prefix: a publication on any node reaches every subscriber on every node
//! once and in offset order; a node receives from Redis only the channels
//! its own subscribers need (read from `/metrics` of four nodes); a client
//! recovers on another node; the server API answers for the whole cluster
//! from any node (`info`, `channels`, `presence`, `subscribe`,
//! `unsubscribe`, `disconnect`).
//!
//! Faults (Redis stopping, a node SIGKILLed) are in `cluster_faults.rs`.

mod cluster_support;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_support::{api, cleanup, eventually, get, metric, prefix, redis_url, start, Client};
use serde_json::{json, Value};

/// The `data` of publications, as numbers.
fn numbers(pubs: &[Value]) -> Vec<u64> {
    pubs.iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect()
}

fn offsets(pubs: &[Value]) -> Vec<u64> {
    pubs.iter().map(|p| p["offset"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_from_any_node_reach_every_subscriber_once_in_order() {
    let url = redis_url();
    let prefix = prefix("two-nodes");
    let a = start(&url, &prefix, "a").await;
    let b = start(&url, &prefix, "b").await;
    let mut on_a = Client::connect(a.addr, "alice").await;
    let mut on_b = Client::connect(b.addr, "bob").await;
    on_a.subscribe("chat").await;
    on_b.subscribe("chat").await;

    // 60 from the API of a, 60 from a client on b, at the same time.
    let api_task = tokio::spawn(async move {
        for n in 0..60u64 {
            let r = api(
                a.addr,
                "publish",
                json!({"channel": "chat", "data": {"n": n}}),
            )
            .await;
            r.result();
        }
        a
    });
    let mut publisher = Client::connect(b.addr, "carol").await;
    for n in 1000..1060u64 {
        let reply = publisher
            .call("publish", json!({"channel": "chat", "data": {"n": n}}))
            .await;
        assert!(reply.get("publish").is_some(), "{reply}");
    }
    let a = api_task.await.unwrap();

    let got_a = on_a.publications("chat", 120).await;
    let got_b = on_b.publications("chat", 120).await;
    for got in [&got_a, &got_b] {
        assert_eq!(
            offsets(got),
            (1..=120).collect::<Vec<u64>>(),
            "once, in order"
        );
        let from_api: Vec<u64> = numbers(got).into_iter().filter(|n| *n < 1000).collect();
        let from_client: Vec<u64> = numbers(got).into_iter().filter(|n| *n >= 1000).collect();
        assert_eq!(from_api, (0..60).collect::<Vec<u64>>());
        assert_eq!(from_client, (1000..1060).collect::<Vec<u64>>());
    }
    assert_eq!(numbers(&got_a), numbers(&got_b), "both nodes see one order");
    // Nothing more comes.
    assert!(on_a.push_within(Duration::from_millis(200)).await.is_none());

    // History lives in Redis: both nodes answer the same.
    for addr in [a.addr, b.addr] {
        let h = api(addr, "history", json!({"channel": "chat", "limit": -1}))
            .await
            .result();
        assert_eq!(h["offset"], 120);
        assert_eq!(h["publications"].as_array().unwrap().len(), 120);
    }
    let ha = api(a.addr, "history", json!({"channel": "chat"}))
        .await
        .result();
    let hb = api(b.addr, "history", json!({"channel": "chat"}))
        .await
        .result();
    assert_eq!(ha["epoch"], hb["epoch"]);

    a.shutdown().await;
    b.shutdown().await;
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_receives_from_redis_only_what_its_subscribers_need() {
    let url = redis_url();
    let prefix = prefix("targeted");
    let mut nodes = Vec::new();
    for name in ["n0", "n1", "n2", "n3"] {
        nodes.push(start(&url, &prefix, name).await);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let mut subscribers = Vec::new();
    for user in ["s1", "s2"] {
        let mut c = Client::connect(addrs[0], user).await;
        c.subscribe("only-on-n0").await;
        subscribers.push(c);
    }
    // Clients elsewhere, subscribed to something else.
    let mut elsewhere = Vec::new();
    for (i, addr) in addrs.iter().enumerate().skip(1) {
        let mut c = Client::connect(*addr, &format!("o{i}")).await;
        c.subscribe(&format!("other-{i}")).await;
        elsewhere.push(c);
    }
    let before: Vec<f64> = {
        let mut v = Vec::new();
        for addr in &addrs {
            v.push(metric(*addr, "duplex_broker_publications_received_total").await);
        }
        v
    };
    // Publish from every node, the subscribers' included.
    for n in 0..40u64 {
        let addr = addrs[(n % 4) as usize];
        api(
            addr,
            "publish",
            json!({"channel": "only-on-n0", "data": {"n": n}}),
        )
        .await
        .result();
    }
    for c in &mut subscribers {
        let got = c.publications("only-on-n0", 40).await;
        assert_eq!(numbers(&got), (0..40).collect::<Vec<u64>>());
    }
    let mut received = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let now = metric(*addr, "duplex_broker_publications_received_total").await;
        received.push(now - before[i]);
    }
    assert_eq!(
        received,
        [40.0, 0.0, 0.0, 0.0],
        "n0 gets each publication once (for both its subscribers); n1-n3 get nothing"
    );
    assert_eq!(metric(addrs[0], "duplex_broker_connected").await, 1.0);
    // Topics: n0 has one channel, each other node one of its own (plus the
    // two control topics everywhere).
    for addr in &addrs {
        assert_eq!(metric(*addr, "duplex_broker_topics").await, 3.0);
    }
    for node in nodes {
        node.shutdown().await;
    }
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node() {
    let url = redis_url();
    let prefix = prefix("recover");
    let a = start(&url, &prefix, "a").await;
    let b = start(&url, &prefix, "b").await;
    let mut c = Client::connect(a.addr, "dana").await;
    let reply = c
        .call("subscribe", json!({"channel": "feed", "recoverable": true}))
        .await;
    let sub = reply["subscribe"].clone();
    assert_eq!(sub["recoverable"], true, "{reply}");
    for n in 0..5u64 {
        api(
            b.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await
        .result();
    }
    let got = c.publications("feed", 5).await;
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    let last = got.last().unwrap()["offset"].as_u64().unwrap();
    assert_eq!(last, 5);
    drop(c);
    // Published while the client is away, on either node.
    for n in 5..15u64 {
        let addr = if n % 2 == 0 { a.addr } else { b.addr };
        api(
            addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await
        .result();
    }
    let mut c = Client::connect(b.addr, "dana").await;
    let reply = c
        .call(
            "subscribe",
            json!({"channel": "feed", "recoverable": true, "recover": true, "epoch": epoch, "offset": last}),
        )
        .await;
    let r = &reply["subscribe"];
    assert_eq!(r["recovered"], true, "{reply}");
    assert_eq!(r["epoch"], epoch.as_str());
    assert_eq!(r["offset"], 15);
    let recovered = r["publications"].as_array().unwrap();
    assert_eq!(numbers(recovered), (5..15).collect::<Vec<u64>>());
    assert_eq!(offsets(recovered), (6..=15).collect::<Vec<u64>>());
    // And live after that, without a duplicate.
    api(
        a.addr,
        "publish",
        json!({"channel": "feed", "data": {"n": 15}}),
    )
    .await
    .result();
    let live = c.publications("feed", 1).await;
    assert_eq!(offsets(&live), [16]);
    assert!(c.push_within(Duration::from_millis(200)).await.is_none());
    a.shutdown().await;
    b.shutdown().await;
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_answers_for_the_whole_cluster_from_any_node() {
    let url = redis_url();
    let prefix = prefix("api");
    let a = start(&url, &prefix, "node-a").await;
    let b = start(&url, &prefix, "node-b").await;
    let c = start(&url, &prefix, "node-c").await;
    let mut alice = Client::connect(a.addr, "alice").await;
    let mut alice2 = Client::connect(b.addr, "alice").await;
    let mut bob = Client::connect(b.addr, "bob").await;
    let reply = alice
        .call("subscribe", json!({"channel": "room", "join_leave": true}))
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    bob.subscribe("room").await;
    bob.subscribe("live:ticker").await;

    // info: every node, with its own numbers.
    let info = api(c.addr, "info", json!({})).await.result();
    let nodes = info["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"], "{info}");
    let by_name = |name: &str| nodes.iter().find(|n| n["name"] == name).unwrap().clone();
    assert_eq!(by_name("node-a")["uid"], a.node.uid());
    // Heartbeats lag by up to a third of the node TTL: wait for b's.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let info = api(c.addr, "info", json!({})).await.result();
            info["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == "node-b")
                .is_some_and(|n| n["num_clients"] == 2 && n["num_users"] == 2 && n["num_subs"] == 2)
        })
        .await
    );

    // channels: summed over nodes, with a pattern.
    let channels = api(c.addr, "channels", json!({})).await.result();
    assert_eq!(
        channels,
        json!({"channels": {"room": {"num_clients": 2}, "live:ticker": {"num_clients": 1}}})
    );
    let channels = api(a.addr, "channels", json!({"pattern": "live:*"}))
        .await
        .result();
    assert_eq!(
        channels,
        json!({"channels": {"live:ticker": {"num_clients": 1}}})
    );

    // presence: everyone, wherever connected.
    let presence = api(c.addr, "presence", json!({"channel": "room"}))
        .await
        .result();
    let clients: BTreeSet<&str> = presence["presence"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        clients,
        BTreeSet::from([alice.id.as_str(), bob.id.as_str()])
    );
    let stats = api(b.addr, "presence_stats", json!({"channel": "room"}))
        .await
        .result();
    assert_eq!(stats, json!({"num_clients": 2, "num_users": 2}));

    // subscribe from c: alice's connections on a and b both get it.
    api(
        c.addr,
        "subscribe",
        json!({"user": "alice", "channel": "news"}),
    )
    .await
    .result();
    for client in [&mut alice, &mut alice2] {
        let push = client.push_where(|p| p.get("subscribe").is_some()).await;
        assert_eq!(push["channel"], "news", "{push}");
    }
    api(
        a.addr,
        "publish",
        json!({"channel": "news", "data": {"n": 1}}),
    )
    .await
    .result();
    for client in [&mut alice, &mut alice2] {
        assert_eq!(numbers(&client.publications("news", 1).await), [1]);
    }
    // One connection only, by client id, from another node.
    api(
        b.addr,
        "unsubscribe",
        json!({"user": "alice", "channel": "news", "client": alice.id}),
    )
    .await
    .result();
    let push = alice.push_where(|p| p.get("unsubscribe").is_some()).await;
    assert_eq!(push["channel"], "news");
    assert!(alice2
        .push_within(Duration::from_millis(300))
        .await
        .is_none());

    // disconnect from a: bob, connected to b.
    api(a.addr, "disconnect", json!({"user": "bob"}))
        .await
        .result();
    assert_eq!(bob.closed_with().await, Some(3503));
    assert!(
        eventually(Duration::from_secs(5), || async {
            let p = api(c.addr, "presence_stats", json!({"channel": "room"}))
                .await
                .result();
            p == json!({"num_clients": 1, "num_users": 1})
        })
        .await
    );
    // alice on a saw bob leave.
    let leave = alice.push_where(|p| p.get("leave").is_some()).await;
    assert_eq!(leave["leave"]["info"]["user"], "bob");
    // whitelist keeps a connection.
    api(
        c.addr,
        "disconnect",
        json!({"user": "alice", "whitelist": [alice.id], "code": 4000, "reason": "bye"}),
    )
    .await
    .result();
    assert_eq!(alice2.closed_with().await, Some(4000));
    assert!(alice
        .push_within(Duration::from_millis(300))
        .await
        .is_none());
    assert_eq!(alice.closed, None);

    // A node that stops cleanly leaves `info` at once.
    c.shutdown().await;
    let info = api(a.addr, "info", json!({})).await.result();
    let names: Vec<&str> = info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a", "node-b"]);
    let health = get(a.addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["broker"], "connected");
    a.shutdown().await;
    b.shutdown().await;
    cleanup(&url, &prefix).await;
}

/// A Socket.IO long-polling request that reaches a node other than the one
/// holding its session (a load balancer without sticky sessions) is told
/// why, not just "Session ID unknown".
#[tokio::test]
async fn polling_on_the_wrong_node_names_sticky_sessions() {
    let url = redis_url();
    let prefix = prefix("sticky");
    let a = start(&url, &prefix, "a").await;
    let b = start(&url, &prefix, "b").await;
    let open = get(a.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(open.status, 200, "{}", open.body);
    let handshake: Value = serde_json::from_str(&open.body[1..]).unwrap();
    let sid = handshake["sid"].as_str().unwrap();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let wrong = get(b.addr, &path).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    let body: Value = serde_json::from_str(&wrong.body).unwrap();
    assert_eq!(body["code"], 1);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("sticky sessions"),
        "{body}"
    );
    // A session no node holds gets the same answer on a clustered node; a
    // single node (no broker) keeps the plain "Session ID unknown", tested
    // in the engineio crate.
    a.shutdown().await;
    b.shutdown().await;
    cleanup(&url, &prefix).await;
}
