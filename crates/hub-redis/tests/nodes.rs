//! Several duplex nodes (hubs, each with its own Redis backend) sharing one
//! Redis: cross-node fan-out, targeted subscriptions, recovery on another
//! node, cluster-wide presence with expiry, joins and leaves, idempotency.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{as_client, ch, cleanup, config, eventually, prefix, redis_url, Node, Recorder, Seen};
use hub::{PresenceStats, PublishRequest, StreamPosition, SubscribeOptions};
use hub_redis::RedisConfig;

const WAIT: Duration = Duration::from_secs(5);

async fn two_nodes(test: &str) -> (Node, Node, String) {
    two_nodes_with(test, |c| c).await
}

async fn two_nodes_with(
    test: &str,
    f: impl Fn(RedisConfig) -> RedisConfig,
) -> (Node, Node, String) {
    let prefix = prefix(test);
    let a = Node::start(f(config(&redis_url(), &prefix))).await;
    let b = Node::start(f(config(&redis_url(), &prefix))).await;
    (a, b, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_on_one_node_reaches_the_other_once_in_order() {
    let (a, b, prefix) = two_nodes("fan-out").await;
    let on_b = b.subscribe("h:x", "b1").await;
    let on_a = a.subscribe("h:x", "a1").await;
    // Publishers on both nodes, concurrently.
    let tasks: Vec<_> = [a.hub.clone(), b.hub.clone()]
        .into_iter()
        .enumerate()
        .flat_map(|(n, hub)| {
            (0..2).map(move |t| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        hub.publish(&ch("h:x"), PublishRequest::new(format!("{n}-{t}-{i}")))
                            .await
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let expected: Vec<u64> = (1..=200).collect();
    for (name, rec) in [("a", &on_a), ("b", &on_b)] {
        assert!(
            eventually(WAIT, || rec.publications() >= 200).await,
            "node {name} got {} of 200",
            rec.publications()
        );
        assert_eq!(
            rec.offsets(),
            expected,
            "node {name}: each offset once, in order"
        );
    }
    assert_eq!(on_a.data(), on_b.data(), "both nodes see one order");
    let epochs: std::collections::HashSet<String> = on_b
        .seen()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Pub { epoch, .. } => Some(epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs.len(), 1);
    // Nothing more arrives later (no duplicates in flight).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(on_b.publications(), 200);
    assert_eq!(b.broker.stats().publications, 200);
    let health = b.backend.health();
    assert!(health.connected && health.reconnects == 0, "{health:?}");
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn a_node_receives_only_the_channels_its_subscribers_need() {
    let (a, b, prefix) = two_nodes("targeted").await;
    let on_a = a.subscribe("h:only-a", "a1").await;
    let on_b = b.subscribe("h:only-b", "b1").await;
    for i in 0..20 {
        a.publish("h:only-a", &i.to_string()).await;
    }
    for i in 0..5 {
        a.publish("h:only-b", &i.to_string()).await;
    }
    // Channels nobody subscribes to, with and without history.
    for i in 0..7 {
        a.publish("h:nobody", &i.to_string()).await;
        b.publish("plain", &i.to_string()).await;
    }
    assert!(
        eventually(WAIT, || on_a.publications() == 20
            && on_b.publications() == 5)
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.broker.stats().received, 20, "a: only h:only-a");
    assert_eq!(b.broker.stats().received, 5, "b: only h:only-b");
    assert_eq!((a.broker.stats().topics, b.broker.stats().topics), (1, 1));

    // After its last subscriber leaves, b gets nothing for the channel.
    assert!(b.hub.unsubscribe(&ch("h:only-b"), "b1").await);
    assert_eq!(b.broker.stats().topics, 0);
    for i in 0..5 {
        a.publish("h:only-b", &i.to_string()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.broker.stats().received, 5);
    assert_eq!(on_b.publications(), 5);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn publications_without_history_cross_nodes_in_call_order() {
    let (a, b, prefix) = two_nodes("no-history").await;
    let on_b = b.subscribe("h:mixed", "b1").await;
    let on_b_plain = b.subscribe("plain", "b2").await;
    // Mixed: some kept (with offsets), some skip history.
    for i in 0..20 {
        let mut request = PublishRequest::new(i.to_string());
        request.skip_history = i % 3 == 0;
        a.hub.publish(&ch("h:mixed"), request).await.unwrap();
    }
    for i in 0..10 {
        a.publish("plain", &i.to_string()).await;
    }
    assert!(
        eventually(WAIT, || on_b.publications() == 20
            && on_b_plain.publications() == 10)
        .await
    );
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(on_b.data(), expected);
    let offsets = on_b.offsets();
    assert_eq!(offsets.iter().filter(|o| **o == 0).count(), 7);
    let kept: Vec<u64> = offsets.into_iter().filter(|o| *o != 0).collect();
    assert_eq!(kept, (1..=13).collect::<Vec<u64>>());
    assert_eq!(on_b_plain.offsets(), [0; 10]);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn a_client_recovers_on_another_node() {
    let (a, b, prefix) = two_nodes("recovery").await;
    for i in 1..=3 {
        a.publish("h:r", &i.to_string()).await;
    }
    let (_, result) = a.subscribe_with("h:r", as_client("c1", "u")).await;
    let position = result.position.unwrap();
    assert_eq!(position.offset, 3);
    for i in 4..=8 {
        a.publish("h:r", &i.to_string()).await;
    }
    // The client's connection to a breaks; it reconnects to b.
    a.hub.unsubscribe(&ch("h:r"), "c1").await;
    let (rec, result) = b
        .subscribe_with(
            "h:r",
            SubscribeOptions {
                recover_since: Some(position.clone()),
                ..as_client("c1", "u")
            },
        )
        .await;
    let recovery = result.recovery.unwrap();
    assert!(recovery.recovered);
    let got: Vec<u64> = recovery.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, [4, 5, 6, 7, 8]);
    assert_eq!(&recovery.publications[0].data[..], b"4");
    assert_eq!(
        recovery.position,
        StreamPosition::new(8, position.epoch.clone())
    );
    // Live from there on, without repeats.
    a.publish("h:r", "9").await;
    assert!(eventually(WAIT, || rec.publications() == 1).await);
    assert_eq!(rec.offsets(), [9]);
    // A position from another epoch does not recover.
    let (_, stale) = b
        .subscribe_with(
            "h:r",
            SubscribeOptions {
                recover_since: Some(StreamPosition::new(3, "otherepo")),
                ..as_client("c2", "u")
            },
        )
        .await;
    let stale = stale.recovery.unwrap();
    assert!(!stale.recovered && stale.publications.is_empty());
    assert_eq!(stale.position.offset, 9);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn presence_is_shared_and_a_stopped_node_expires() {
    let ttl = Duration::from_millis(1200);
    let (a, b, prefix) = two_nodes_with("presence", |c| RedisConfig {
        presence_ttl: ttl,
        ..c
    })
    .await;
    let room = ch("room:lobby");
    let mut with_info = as_client("a1", "alice");
    with_info.info.conn_info = Some(bytes::Bytes::from_static(br#"{"name":"Alice"}"#));
    with_info.info.chan_info = Some(bytes::Bytes::from_static(b"[1]"));
    a.subscribe_with("room:lobby", with_info.clone()).await;
    a.subscribe_with("room:lobby", as_client("a2", "alice"))
        .await;
    b.subscribe_with("room:lobby", as_client("b1", "bob")).await;
    for node in [&a, &b] {
        let clients: Vec<String> = node
            .hub
            .presence(&room)
            .await
            .unwrap()
            .iter()
            .map(|i| i.client.to_string())
            .collect();
        assert_eq!(clients, ["a1", "a2", "b1"]);
        let first = node.hub.presence(&room).await.unwrap().remove(0);
        assert_eq!(first, with_info.info, "info round-trips exactly");
        assert_eq!(
            node.hub.presence_stats(&room).await.unwrap(),
            PresenceStats {
                num_clients: 3,
                num_users: 2
            }
        );
    }
    // b keeps refreshing; a stops (as if it crashed: no unsubscribes).
    let refresher = {
        let hub = b.hub.clone();
        let every = RedisConfig {
            presence_ttl: ttl,
            ..Default::default()
        }
        .presence_refresh_interval();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                hub.refresh_presence().await.unwrap();
            }
        })
    };
    let stopped = std::time::Instant::now();
    tokio::time::sleep(ttl / 2).await;
    assert_eq!(
        b.hub.presence_stats(&room).await.unwrap().num_clients,
        3,
        "not expired early"
    );
    // a's entries were last written before `stopped`: by ttl after it
    // (plus a little for the reads themselves) they are gone.
    tokio::time::sleep(ttl / 2 + Duration::from_millis(150)).await;
    let clients: Vec<String> = b
        .hub
        .presence(&room)
        .await
        .unwrap()
        .iter()
        .map(|i| i.client.to_string())
        .collect();
    assert_eq!(clients, ["b1"], "a's entries expired, b's were refreshed");
    assert!(stopped.elapsed() < ttl * 2, "expired within a bounded time");
    // Unsubscribing removes at once, on every node's view.
    b.hub.unsubscribe(&room, "b1").await;
    assert_eq!(a.hub.presence_stats(&room).await.unwrap().num_clients, 0);
    refresher.abort();
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn joins_and_leaves_cross_nodes() {
    let (a, b, prefix) = two_nodes("join-leave").await;
    let (watcher, _) = b
        .subscribe_with(
            "room:1",
            SubscribeOptions {
                join_leave: true,
                ..as_client("w", "uw")
            },
        )
        .await;
    a.subscribe("room:1", "g").await;
    assert!(a.hub.unsubscribe(&ch("room:1"), "g").await);
    let expected = [
        Seen::Join("w".into()),
        Seen::Join("g".into()),
        Seen::Leave("g".into()),
    ];
    assert!(eventually(WAIT, || watcher.join_leaves().len() == 3).await);
    assert_eq!(watcher.join_leaves(), expected);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn an_idempotency_key_publishes_once_across_nodes() {
    let (a, b, prefix) = two_nodes("idempotency").await;
    let on_b: Arc<Recorder> = b.subscribe("h:i", "b1").await;
    let keyed = || PublishRequest {
        idempotency_key: Some("order-1".into()),
        ..PublishRequest::new("once")
    };
    let first = a.hub.publish(&ch("h:i"), keyed()).await.unwrap();
    let second = b.hub.publish(&ch("h:i"), keyed()).await.unwrap();
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.position, second.position);
    a.publish("h:i", "after").await;
    assert!(eventually(WAIT, || on_b.publications() == 2).await);
    assert_eq!(on_b.data(), ["once", "after"]);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test]
async fn the_broker_can_publish_when_the_store_does_not() {
    let (a, b, prefix) = two_nodes_with("split", |c| RedisConfig {
        fan_out_from_store: false,
        ..c
    })
    .await;
    let on_b = b.subscribe("h:s", "b1").await;
    let plain = b.subscribe("plain", "b2").await;
    for i in 1..=5 {
        a.publish("h:s", &i.to_string()).await;
        a.publish("plain", &i.to_string()).await;
    }
    assert!(
        eventually(WAIT, || on_b.publications() == 5
            && plain.publications() == 5)
        .await
    );
    assert_eq!(on_b.offsets(), [1, 2, 3, 4, 5]);
    assert_eq!(plain.data(), ["1", "2", "3", "4", "5"]);
    cleanup(&redis_url(), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_churn_leaves_redis_in_step() {
    let (a, b, prefix) = two_nodes("churn").await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let hub = a.hub.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let client = format!("c{t}-{i}");
                    let rec = Recorder::new();
                    let s = hub
                        .subscribe(&ch("h:churn"), rec, as_client(&client, "u"))
                        .await
                        .unwrap();
                    drop(s.activation);
                    assert!(hub.unsubscribe(&ch("h:churn"), &client).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.broker.stats().topics, 0);
    let mut conn = common::raw(&redis_url()).await;
    let topic = format!("{prefix}:c:{{h:churn}}");
    let (_, subscribers): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&topic)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(subscribers, 0, "no node listens to {topic}");
    // And the channel still works afterwards.
    let on_a = a.subscribe("h:churn", "last").await;
    b.publish("h:churn", "x").await;
    assert!(eventually(WAIT, || on_a.publications() == 1).await);
    cleanup(&redis_url(), &prefix).await;
}
