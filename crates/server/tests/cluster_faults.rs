//! Faults of a cluster over Redis: Redis stopping and coming back (a
//! redis-server of the test's own), subscription connections cut while
//! publications flow, and a node SIGKILLed while its clients receive (the
//! `duplex` binary as child processes). Publications are counted: every
//! publish either fails with an explicit error or reaches every subscriber
//! exactly once, and clients that move to another node recover what they
//! missed with nothing lost and nothing twice.

mod cluster_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{
    api, cleanup, eventually, get, metric, prefix, redis_url, start, BinNode, Client, RedisServer,
    TempDir,
};
use serde_json::{json, Value};
use tokio::sync::Mutex;

fn numbers(pubs: &[Value]) -> Vec<u64> {
    pubs.iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stops_and_returns() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let a = start(&url, "fault", "a").await;
    let b = start(&url, "fault", "b").await;
    let mut on_a = Client::connect(a.addr, "alice").await;
    let mut on_b = Client::connect(b.addr, "bob").await;
    on_a.subscribe("feed").await;
    on_b.subscribe("feed").await;
    for n in 0..3u64 {
        api(
            a.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await
        .result();
    }
    assert_eq!(numbers(&on_a.publications("feed", 3).await), [0, 1, 2]);
    assert_eq!(numbers(&on_b.publications("feed", 3).await), [0, 1, 2]);
    for addr in [a.addr, b.addr] {
        assert_eq!(get(addr, "/health").await.status, 200);
    }

    redis.stop();
    for addr in [a.addr, b.addr] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                get(addr, "/health").await.status == 503
            })
            .await,
            "/health turns 503"
        );
        let health = get(addr, "/health").await.json();
        assert_eq!(health["status"], "unavailable");
        let reason = health["reason"].as_str().unwrap();
        assert!(reason.starts_with("redis broker"), "{reason}");
        assert_eq!(metric(addr, "duplex_broker_connected").await, 0.0);
    }
    // Publishing fails explicitly: HTTP 503 with 108, temporary.
    let mut refused = 0;
    for n in 100..105u64 {
        let r = api(
            a.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.json()["error"]["code"], 108, "{r:?}");
        assert_eq!(r.json()["error"]["temporary"], true, "{r:?}");
        refused += 1;
    }
    // From a client too; and the client stays connected meanwhile.
    let reply = on_b
        .call("publish", json!({"channel": "feed", "data": {"n": 200}}))
        .await;
    assert_eq!(reply["error"]["code"], 108, "{reply}");
    assert_eq!(reply["error"]["temporary"], true, "{reply}");
    refused += 1;
    let reply = on_a.call("presence", json!({"channel": "feed"})).await;
    assert_eq!(reply["error"]["code"], 108, "{reply}");
    assert_eq!((on_a.closed, on_b.closed), (None, None));
    assert_eq!(refused, 6);

    redis.restart();
    for addr in [a.addr, b.addr] {
        assert!(
            eventually(Duration::from_secs(15), || async {
                get(addr, "/health").await.status == 200
            })
            .await,
            "/health back to 200"
        );
        assert!(metric(addr, "duplex_broker_reconnects_total").await >= 2.0);
        assert_eq!(metric(addr, "duplex_broker_connected").await, 1.0);
    }
    // Resubscribed: publications flow again, to both nodes.
    for n in 3..6u64 {
        api(
            b.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await
        .result();
    }
    // Exactly what was accepted arrives: nothing refused shows up later.
    assert_eq!(numbers(&on_a.publications("feed", 3).await), [3, 4, 5]);
    assert_eq!(numbers(&on_b.publications("feed", 3).await), [3, 4, 5]);
    assert!(on_a.push_within(Duration::from_millis(300)).await.is_none());
    // The restarted Redis kept nothing: a new epoch, which the history
    // says (clients recovering with the old one get recovered: false).
    let h = api(a.addr, "history", json!({"channel": "feed", "limit": -1}))
        .await
        .result();
    assert_eq!(numbers(h["publications"].as_array().unwrap()), [3, 4, 5]);
    // The cluster's own state came back too.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let info = api(a.addr, "info", json!({})).await.result();
            info["nodes"].as_array().map_or(0, Vec::len) == 2
        })
        .await
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_subscriptions_lose_nothing_for_live_subscribers() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = start(&url, "cut", "a").await;
    let b = start(&url, "cut", "b").await;
    let mut on_b = Client::connect(b.addr, "bob").await;
    on_b.subscribe("feed").await;
    // Cut every subscription connection every few milliseconds while a
    // publishes from its API: publications land while b is cut off.
    let killer = {
        let url = url.clone();
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            for _ in 0..40 {
                let _: Result<i64, _> = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async(&mut conn)
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let total = 200u64;
    let mut accepted = Vec::new();
    for n in 0..total {
        let r = api(
            a.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await;
        assert_eq!(r.status, 200, "the command connection is not cut: {r:?}");
        accepted.push(n);
    }
    killer.await.unwrap();
    let got = on_b.publications("feed", accepted.len()).await;
    assert_eq!(numbers(&got), accepted, "every one once, in order");
    let offsets: Vec<u64> = got.iter().map(|p| p["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (1..=total).collect::<Vec<u64>>());
    assert!(on_b.push_within(Duration::from_millis(300)).await.is_none());
    let caught_up = metric(b.addr, "duplex_broker_publications_caught_up_total").await;
    assert!(caught_up > 0.0, "some arrived by catching up");
    assert_eq!(
        metric(b.addr, "duplex_broker_publications_missed_total").await,
        0.0
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A gap longer than history: b's subscription connection is cut, and while
/// it is away a publishes more than the channel keeps (3). On return b
/// catches up with what is left and sees the hole; its subscribers are not
/// left with it silently: each subscription ends with unsubscribe code 2500
/// "insufficient state" (a push on the plain WebSocket, an `unsubscribe`
/// event on Socket.IO), the client subscribes again recovering from its
/// last offset and learns `recovered: false`, and publications flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_longer_than_history_ends_the_subscription_with_insufficient_state() {
    let redis = RedisServer::start();
    let url = redis.url();
    let short = || hub::NamespaceConfig {
        name: "short".into(),
        options: hub::NamespaceOptions {
            history_size: 3,
            history_ttl: Duration::from_secs(600),
            allow_recovery: true,
            allow_subscribe_for_client: true,
            ..Default::default()
        },
    };
    let mut config_a = cluster_support::config(&url, "gap", "a");
    config_a.namespaces.push(short());
    let mut config_b = cluster_support::config(&url, "gap", "b");
    config_b.namespaces.push(short());
    let a = duplex_server::run::start(config_a).await.unwrap();
    let b = duplex_server::run::start(config_b).await.unwrap();
    let mut on_b = Client::connect(b.addr, "bob").await;
    let reply = on_b
        .call(
            "subscribe",
            json!({"channel": "short:feed", "recoverable": true}),
        )
        .await;
    let epoch = reply["subscribe"]["epoch"].as_str().unwrap().to_owned();
    // A Socket.IO client on b too (duplex's mapping), recording the events.
    let (tx, mut sio_events) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = socketio_client::Client::builder(format!("http://{}", b.addr))
        .reconnection(false)
        .timeout(Duration::from_secs(10))
        .auth(json!({"token": cluster_support::token("carol")}));
    for event in ["publication", "unsubscribe"] {
        let tx = tx.clone();
        builder = builder.on(event, move |data, _ack| {
            let arg = data.args.first().cloned().unwrap_or(Value::Null);
            let _ = tx.send((event, arg));
        });
    }
    let sio = builder.connect().await.unwrap();
    let sio_call = |event: &'static str, arg: Value| {
        let sio = &sio;
        async move {
            let ack = sio
                .emit_with_ack(event, &(arg,), Duration::from_secs(10))
                .await
                .unwrap();
            ack.args.into_iter().next().unwrap_or(Value::Null)
        }
    };
    let sub = sio_call(
        "subscribe",
        json!({"channel": "short:feed", "join_leave": false}),
    )
    .await;
    assert_eq!(sub["epoch"], epoch.as_str(), "{sub}");
    let addr_a = a.addr;
    let publish = move |n: u64| async move {
        api(
            addr_a,
            "publish",
            json!({"channel": "short:feed", "data": {"n": n}}),
        )
        .await
        .result()
    };
    publish(0).await;
    let first = on_b.publications("short:feed", 1).await;
    assert_eq!(first[0]["offset"], 1);

    // Cut the subscription connections, then publish a burst at once (the
    // reconnect waits 50 ms or more); again until b has missed some.
    let client = redis::Client::open(url.clone()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut n = 1u64;
    for _ in 0..20 {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut burst = tokio::task::JoinSet::new();
        for k in n..n + 12 {
            burst.spawn(publish(k));
        }
        while let Some(done) = burst.join_next().await {
            done.unwrap();
        }
        n += 12;
        let missed =
            || async { metric(b.addr, "duplex_broker_publications_missed_total").await > 0.0 };
        if eventually(Duration::from_secs(3), missed).await {
            break;
        }
    }
    assert!(
        metric(b.addr, "duplex_broker_publications_missed_total").await > 0.0,
        "b never missed more than history keeps"
    );

    // The client got publications in order, without a hole, then the end
    // of its subscription.
    let mut offsets = vec![1u64];
    let unsubscribe = loop {
        let push = on_b.push().await;
        if let Some(p) = push.get("pub") {
            offsets.push(p["offset"].as_u64().unwrap());
        } else if let Some(u) = push.get("unsubscribe") {
            assert_eq!(push["channel"], "short:feed", "{push}");
            break u.clone();
        }
    };
    assert_eq!(unsubscribe["code"], 2500, "{unsubscribe}");
    assert_eq!(unsubscribe["reason"], "insufficient state");
    let last = *offsets.last().unwrap();
    assert_eq!(
        offsets,
        (1..=last).collect::<Vec<u64>>(),
        "no hole delivered"
    );
    assert!(last < n, "the hole is after what was delivered");
    // The same on Socket.IO.
    let mut sio_offsets = Vec::new();
    let sio_unsubscribe = loop {
        let (event, arg) = tokio::time::timeout(Duration::from_secs(10), sio_events.recv())
            .await
            .expect("a Socket.IO event in time")
            .unwrap();
        match event {
            "publication" => sio_offsets.push(arg["offset"].as_u64().unwrap()),
            _ => break arg,
        }
    };
    assert_eq!(sio_unsubscribe["channel"], "short:feed");
    assert_eq!(sio_unsubscribe["code"], 2500, "{sio_unsubscribe}");
    assert_eq!(sio_unsubscribe["reason"], "insufficient state");
    let sio_last = *sio_offsets.last().unwrap();
    assert_eq!(sio_offsets, (1..=sio_last).collect::<Vec<u64>>());
    assert!(sio_last < n);

    // As an SDK does on 2500: subscribe again, recovering.
    let reply = on_b
        .call(
            "subscribe",
            json!({"channel": "short:feed", "recoverable": true, "recover": true,
                   "epoch": epoch, "offset": last}),
        )
        .await;
    // `recovered: false` is left out on the wire, as Centrifugo does.
    assert_eq!(reply["subscribe"]["was_recovering"], true, "{reply}");
    assert_ne!(reply["subscribe"]["recovered"], true, "{reply}");
    let top = reply["subscribe"]["offset"].as_u64().unwrap();
    assert_eq!(top, n, "every publication got an offset");
    let sub = sio_call(
        "subscribe",
        json!({"channel": "short:feed", "join_leave": false, "recover": true,
               "epoch": epoch, "offset": sio_last}),
    )
    .await;
    assert_eq!(sub["was_recovering"], true, "{sub}");
    assert_ne!(sub["recovered"], true, "{sub}");
    let reply_again = publish(n).await;
    assert_eq!(reply_again["offset"], n + 1);
    let got = on_b.publications("short:feed", 1).await;
    assert_eq!(got[0]["offset"], n + 1);
    assert_eq!(got[0]["data"]["n"], n);
    let (event, arg) = tokio::time::timeout(Duration::from_secs(10), sio_events.recv())
        .await
        .expect("the next publication on Socket.IO")
        .unwrap();
    assert_eq!((event, &arg["offset"]), ("publication", &json!(n + 1)));
    assert_eq!(on_b.closed, None);
    assert!(sio.is_connected());
    a.shutdown().await;
    b.shutdown().await;
}

/// What one client got: publication numbers in arrival order, how many came
/// by recovery, and its client ids (one per connection).
#[derive(Debug, Default)]
struct Got {
    numbers: Vec<u64>,
    offsets: Vec<u64>,
    recovered: usize,
    ids: Vec<String>,
}

/// A client like the SDKs: subscribes to `channel` on `first` with
/// recovery on, and when its connection drops, waits a little, connects to
/// `fallback` and subscribes again recovering from its last position. Runs
/// until it has `total` publications or `give_up` passes; returns the
/// connection (still open).
async fn follower(
    first: SocketAddr,
    fallback: SocketAddr,
    user: String,
    total: usize,
    got: Arc<Mutex<Got>>,
) -> Client {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut client = Client::connect(first, &user).await;
    got.lock().await.ids.push(client.id.clone());
    let reply = client
        .call("subscribe", json!({"channel": "feed", "recoverable": true}))
        .await;
    let mut epoch = reply["subscribe"]["epoch"].as_str().unwrap().to_owned();
    let mut offset = reply["subscribe"]["offset"].as_u64().unwrap_or(0);
    while got.lock().await.numbers.len() < total && tokio::time::Instant::now() < give_up {
        match client.push_within(Duration::from_millis(200)).await {
            Some(push) => {
                if let Some(p) = push.get("pub") {
                    offset = p["offset"].as_u64().unwrap();
                    let mut g = got.lock().await;
                    g.numbers.push(p["data"]["n"].as_u64().unwrap());
                    g.offsets.push(offset);
                }
            }
            None if client.closed.is_some() => {
                // Reconnect elsewhere after a pause, as an SDK's backoff does.
                tokio::time::sleep(Duration::from_millis(150)).await;
                client = loop {
                    match Client::try_connect(fallback, &user).await {
                        Ok(c) => break c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                got.lock().await.ids.push(client.id.clone());
                let reply = client
                    .call(
                        "subscribe",
                        json!({"channel": "feed", "recoverable": true, "recover": true,
                               "epoch": epoch, "offset": offset}),
                    )
                    .await;
                let r = &reply["subscribe"];
                assert_eq!(r["recovered"], true, "{reply}");
                epoch = r["epoch"].as_str().unwrap().to_owned();
                let mut g = got.lock().await;
                for p in r["publications"].as_array().cloned().unwrap_or_default() {
                    offset = p["offset"].as_u64().unwrap();
                    g.numbers.push(p["data"]["n"].as_u64().unwrap());
                    g.offsets.push(offset);
                    g.recovered += 1;
                }
            }
            None => {}
        }
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_recover_on_another_with_nothing_lost_or_twice() {
    let url = redis_url();
    let prefix = prefix("sigkill");
    let dir = TempDir::new();
    let mut a = BinNode::spawn(&url, &prefix, "a", &dir.0);
    let b = BinNode::spawn(&url, &prefix, "b", &dir.0);
    // Four clients on a, one on b that also watches joins and leaves.
    let total = 300usize;
    let mut tasks = Vec::new();
    let mut results = Vec::new();
    for i in 0..4 {
        let got = Arc::new(Mutex::new(Got::default()));
        results.push(got.clone());
        tasks.push(tokio::spawn(follower(
            a.addr,
            b.addr,
            format!("user-{i}"),
            total,
            got,
        )));
    }
    let mut watcher = Client::connect(b.addr, "watcher").await;
    let reply = watcher
        .call("subscribe", json!({"channel": "feed", "join_leave": true}))
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            let p = api(b.addr, "presence_stats", json!({"channel": "feed"}))
                .await
                .result();
            p["num_clients"] == 5
        })
        .await
    );
    let info = api(b.addr, "info", json!({})).await.result();
    assert_eq!(info["nodes"].as_array().unwrap().len(), 2, "{info}");

    // Publish through b's API, numbered; kill a a third of the way in.
    let mut offsets = Vec::new();
    for n in 0..total as u64 {
        if n == 100 {
            a.kill();
        }
        let r = api(
            b.addr,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await
        .result();
        offsets.push(r["offset"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(offsets, (1..=total as u64).collect::<Vec<u64>>());
    // Keep the moved clients connected: their leaving would be announced.
    let mut moved = Vec::new();
    for task in tasks {
        moved.push(task.await.unwrap());
    }
    let expected: Vec<u64> = (0..total as u64).collect();
    let mut old_ids = BTreeSet::new();
    let mut new_ids = BTreeSet::new();
    for got in &results {
        let got = got.lock().await;
        let lost = expected.iter().filter(|n| !got.numbers.contains(n)).count();
        let twice = got.numbers.len() - got.numbers.iter().collect::<BTreeSet<_>>().len();
        assert_eq!((lost, twice), (0, 0), "lost, duplicated: {got:?}");
        assert_eq!(got.numbers, expected, "in order");
        assert_eq!(got.offsets, offsets);
        assert!(
            got.recovered > 0,
            "published while reconnecting, recovered: {got:?}"
        );
        assert_eq!(got.ids.len(), 2, "moved once: {:?}", got.ids);
        old_ids.insert(got.ids[0].clone());
        new_ids.insert(got.ids[1].clone());
    }
    // The watcher on b got everything live; and, as the dead node's
    // presence entries expired (TTL 2 s), one leave from b's sweep for each
    // of its clients (perhaps while the publications were still coming).
    let mut live = Vec::new();
    let mut left = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (live.len() < total || left != old_ids) && tokio::time::Instant::now() < deadline {
        let Some(push) = watcher.push_within(Duration::from_millis(500)).await else {
            continue;
        };
        if let Some(p) = push.get("pub") {
            live.push(p.clone());
        }
        if let Some(leave) = push.get("leave") {
            left.insert(leave["info"]["client"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(numbers(&live), expected);
    assert_eq!(left, old_ids, "one leave per client of the dead node");
    let presence = api(b.addr, "presence", json!({"channel": "feed"}))
        .await
        .result();
    let present: BTreeSet<String> = presence["presence"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected_present = new_ids.clone();
    expected_present.insert(watcher.id.clone());
    assert_eq!(present, expected_present);
    // And `info` forgets the dead node after its heartbeat TTL.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let info = api(b.addr, "info", json!({})).await.result();
            info["nodes"].as_array().map_or(0, Vec::len) == 1
        })
        .await
    );
    assert!(metric(b.addr, "duplex_cluster_presence_expired_total").await >= 4.0);
    assert!(moved.iter().all(|c| c.closed.is_none()));
    drop(b);
    cleanup(&url, &prefix).await;
}
