//! The hub end to end over the in-memory backends: fan-out order,
//! subscribe/unsubscribe bookkeeping, join/leave, presence, recovery,
//! history through the hub, and failure paths.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ch, settle, BrokenStore, DelayedStore, Recorder, Seen};
use hub::{
    Broker, ClientInfo, EncodedPublication, Error, HistoryFilter, Hub, HubConfig, LocalBroker,
    MemoryPresence, NamespaceConfig, NamespaceOptions, Namespaces, PresenceStats, PresenceStore,
    Publication, PublishRequest, StreamPosition, SubscribeOptions, Subscribed,
};

fn history(size: usize, ttl_secs: u64) -> NamespaceOptions {
    NamespaceOptions {
        history_size: size,
        history_ttl: Duration::from_secs(ttl_secs),
        allow_recovery: true,
        ..Default::default()
    }
}

fn namespaces() -> Namespaces {
    let named = |name: &str, options: NamespaceOptions| NamespaceConfig {
        name: name.into(),
        options,
    };
    Namespaces::new(
        NamespaceOptions::default(),
        [
            named("h", history(100, 300)),
            named("small", history(3, 300)),
            named("ttl", history(100, 10)),
            named(
                "room",
                NamespaceOptions {
                    presence: true,
                    join_leave: true,
                    ..history(100, 300)
                },
            ),
            named(
                "forced",
                NamespaceOptions {
                    join_leave: true,
                    force_push_join_leave: true,
                    ..Default::default()
                },
            ),
        ],
    )
    .unwrap()
}

struct Node {
    hub: Hub,
    broker: Arc<LocalBroker>,
    presence: Arc<MemoryPresence>,
}

fn node() -> Node {
    node_with(|b| b)
}

fn node_with(f: impl FnOnce(hub::HubBuilder) -> hub::HubBuilder) -> Node {
    let broker = Arc::new(LocalBroker::new());
    let presence = Arc::new(MemoryPresence::new());
    let hub = f(Hub::builder(namespaces())
        .broker(broker.clone())
        .presence(presence.clone()))
    .build();
    Node {
        hub,
        broker,
        presence,
    }
}

fn as_client(client: &str, user: &str) -> SubscribeOptions {
    SubscribeOptions {
        info: ClientInfo::new(user, client),
        ..Default::default()
    }
}

async fn subscribe_live(hub: &Hub, channel: &str, client: &str) -> Arc<Recorder> {
    subscribe_with(hub, channel, as_client(client, "u")).await.0
}

async fn subscribe_with(
    hub: &Hub,
    channel: &str,
    opts: SubscribeOptions,
) -> (Arc<Recorder>, hub::SubscribeResult) {
    let rec = Recorder::new();
    let Subscribed { result, activation } = hub
        .subscribe(&ch(channel), rec.clone(), opts)
        .await
        .unwrap();
    activation.activate();
    (rec, result)
}

async fn publish(hub: &Hub, channel: &str, data: &str) -> hub::PublishResult {
    hub.publish(&ch(channel), PublishRequest::new(data.to_owned()))
        .await
        .unwrap()
}

#[tokio::test]
async fn publishes_reach_subscribers_with_offsets() {
    let n = node();
    let a = subscribe_live(&n.hub, "h:news", "c1").await;
    let b = subscribe_live(&n.hub, "h:news", "c2").await;
    let other = subscribe_live(&n.hub, "h:other", "c3").await;
    let r1 = publish(&n.hub, "h:news", "\"one\"").await;
    let r2 = publish(&n.hub, "h:news", "\"two\"").await;
    assert_eq!((r1.position.offset, r2.position.offset), (1, 2));
    assert_eq!(r1.position.epoch, r2.position.epoch);
    assert!(!r1.duplicate);
    assert_eq!(a.data(), ["\"one\"", "\"two\""]);
    assert_eq!(b.offsets(), [1, 2]);
    assert!(other.seen().is_empty());
}

#[tokio::test]
async fn every_subscriber_gets_the_same_shared_publication() {
    use std::sync::Mutex;
    struct Keep(Mutex<Vec<Arc<EncodedPublication>>>);
    impl hub::Subscriber for Keep {
        fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
            self.0.lock().unwrap().push(p.clone());
            true
        }
    }
    let n = node();
    let keeps: Vec<Arc<Keep>> = (0..3)
        .map(|_| Arc::new(Keep(Mutex::new(Vec::new()))))
        .collect();
    for (i, k) in keeps.iter().enumerate() {
        let s = n
            .hub
            .subscribe(&ch("h:x"), k.clone(), as_client(&format!("c{i}"), "u"))
            .await
            .unwrap();
        s.activation.activate();
    }
    let result = publish(&n.hub, "h:x", "{}").await;
    let first = keeps[0].0.lock().unwrap()[0].clone();
    assert_eq!(first.epoch(), result.position.epoch);
    assert_eq!(first.position(), result.position);
    for k in &keeps[1..] {
        assert!(
            Arc::ptr_eq(&first, &k.0.lock().unwrap()[0]),
            "one Arc for all: encode once"
        );
    }
}

#[tokio::test]
async fn channels_without_history_publish_without_offsets() {
    let n = node();
    let rec = subscribe_live(&n.hub, "news", "c1").await;
    let (_, result) = subscribe_with(&n.hub, "news", as_client("c2", "u")).await;
    assert_eq!(result.position, None, "no history, no position");
    let r = publish(&n.hub, "news", "1").await;
    assert_eq!(r.publication.offset, 0);
    assert!(r.position.is_zero());
    publish(&n.hub, "news", "2").await;
    assert_eq!(
        rec.data(),
        ["1", "2"],
        "offset 0 is never taken for a duplicate"
    );
    let err = n
        .hub
        .history(&ch("news"), HistoryFilter::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), 108);
}

#[tokio::test]
async fn skip_history_publishes_without_offset() {
    let n = node();
    let rec = subscribe_live(&n.hub, "h:x", "c1").await;
    publish(&n.hub, "h:x", "kept").await;
    let skipped = n
        .hub
        .publish(
            &ch("h:x"),
            PublishRequest {
                skip_history: true,
                ..PublishRequest::new("skipped")
            },
        )
        .await
        .unwrap();
    assert_eq!(skipped.publication.offset, 0);
    publish(&n.hub, "h:x", "kept2").await;
    assert_eq!(rec.data(), ["kept", "skipped", "kept2"]);
    assert_eq!(rec.offsets(), [1, 0, 2]);
    let h = n
        .hub
        .history(&ch("h:x"), HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(h.publications.len(), 2);
}

#[tokio::test]
async fn unknown_namespace_is_code_102() {
    let n = node();
    let err = n
        .hub
        .publish(&ch("nope:x"), PublishRequest::new("1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 102);
    let err = n
        .hub
        .subscribe(&ch("nope:x"), Recorder::new(), as_client("c", "u"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_fan_out_in_offset_order_per_channel() {
    let n = node();
    let channels = ["h:a", "h:b", "h:c"];
    let mut recorders = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        recorders.push((c, subscribe_live(&n.hub, c, &format!("c{i}")).await));
    }
    let everything = Recorder::new();
    for (i, c) in channels.iter().enumerate() {
        n.hub
            .subscribe(
                &ch(c),
                everything.clone(),
                as_client(&format!("all{i}"), "u"),
            )
            .await
            .unwrap()
            .activation
            .activate();
    }
    let per_task = 200;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let hub = n.hub.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let c = channels[(t + i) % channels.len()];
                    hub.publish(&ch(c), PublishRequest::new(format!("{t}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for (c, rec) in &recorders {
        let offsets = rec.offsets();
        let expected: Vec<u64> = (1..=offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "{c}: every offset once, in order");
        assert_eq!(everything.offsets_in(c), expected);
        total += offsets.len();
    }
    assert_eq!(total, 8 * per_task);
}

#[tokio::test(start_paused = true)]
async fn writes_completing_out_of_order_are_fanned_out_in_order() {
    // Call k completes after (20 - k) ms: the last write finishes first.
    let store = DelayedStore::new(|call| Duration::from_millis(20 - call.min(19)));
    let n = node_with(|b| b.store(store.clone()));
    let rec = subscribe_live(&n.hub, "h:x", "c1").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let hub = n.hub.clone();
            tokio::spawn(async move {
                hub.publish(&ch("h:x"), PublishRequest::new(format!("{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        let done = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("publish stalled");
        results.push(done.unwrap().position.offset);
    }
    results.sort_unstable();
    assert_eq!(results, (1..=20).collect::<Vec<u64>>());
    assert_eq!(rec.offsets(), (1..=20).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_publish_neither_stalls_the_channel_nor_loses_its_fan_out() {
    // The first write is slow, the rest are quick.
    let store = DelayedStore::new(|call| Duration::from_millis(if call == 0 { 100 } else { 1 }));
    let n = node_with(|b| b.store(store.clone()));
    let rec = subscribe_live(&n.hub, "h:x", "c1").await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        n.hub.publish(&ch("h:x"), PublishRequest::new("slow")),
    )
    .await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    let quick = tokio::spawn({
        let hub = n.hub.clone();
        async move { hub.publish(&ch("h:x"), PublishRequest::new("quick")).await }
    });
    // A stalled sequencer would wait forever: fail instead of hanging.
    let quick = tokio::time::timeout(Duration::from_secs(5), quick)
        .await
        .expect("publish stalled behind the abandoned one")
        .unwrap()
        .unwrap();
    assert_eq!(quick.position.offset, 2);
    assert_eq!(
        rec.data(),
        ["slow", "quick"],
        "the abandoned write still went out, first"
    );
}

#[tokio::test]
async fn idempotent_publish_fans_out_once() {
    let n = node();
    let rec = subscribe_live(&n.hub, "h:x", "c1").await;
    let keyed = || PublishRequest {
        idempotency_key: Some("order-7".into()),
        ..PublishRequest::new("paid")
    };
    let first = n.hub.publish(&ch("h:x"), keyed()).await.unwrap();
    let again = n.hub.publish(&ch("h:x"), keyed()).await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.position, again.position);
    assert_eq!(rec.offsets(), [1]);
    // Idempotency holds without history too.
    let rec2 = subscribe_live(&n.hub, "news", "c2").await;
    n.hub.publish(&ch("news"), keyed()).await.unwrap();
    n.hub.publish(&ch("news"), keyed()).await.unwrap();
    assert_eq!(rec2.data(), ["paid"]);
}

#[tokio::test]
async fn subscribe_and_unsubscribe_bookkeeping() {
    let n = node();
    let c = ch("h:x");
    assert!(!n.broker.is_subscribed("h:x"));
    let r1 = subscribe_live(&n.hub, "h:x", "c1").await;
    assert!(
        n.broker.is_subscribed("h:x"),
        "broker subscribed with the first subscriber"
    );
    let _r2 = subscribe_live(&n.hub, "h:x", "c2").await;
    let _r3 = subscribe_live(&n.hub, "h:y", "c1").await;
    assert_eq!(n.hub.num_subscribers(&c), 2);
    assert!(n.hub.is_subscribed(&c, "c1"));
    assert_eq!(n.hub.channels(), [(ch("h:x"), 2), (ch("h:y"), 1)]);
    assert_eq!(n.hub.stats().num_channels, 2);
    assert_eq!(n.hub.stats().num_subscriptions, 3);

    let dup = n
        .hub
        .subscribe(&c, Recorder::new(), as_client("c1", "u"))
        .await
        .unwrap_err();
    assert!(matches!(dup, Error::AlreadySubscribed { .. }));
    assert_eq!(dup.code(), 105);

    assert!(n.hub.unsubscribe(&c, "c1").await);
    assert!(
        !n.hub.unsubscribe(&c, "c1").await,
        "second time: not subscribed"
    );
    assert!(n.broker.is_subscribed("h:x"), "c2 is still there");
    publish(&n.hub, "h:x", "after").await;
    assert!(r1.seen().is_empty(), "unsubscribed before the publication");
    assert!(n.hub.unsubscribe(&c, "c2").await);
    assert!(
        !n.broker.is_subscribed("h:x"),
        "broker unsubscribed after the last one"
    );
    assert_eq!(n.hub.channels(), [(ch("h:y"), 1)]);
    assert!(!n.hub.unsubscribe(&ch("h:never"), "c1").await);

    // A channel can come back.
    let again = subscribe_live(&n.hub, "h:x", "c1").await;
    assert!(n.broker.is_subscribed("h:x"));
    publish(&n.hub, "h:x", "back").await;
    assert_eq!(again.data(), ["back"]);
    assert_eq!(n.broker.subscribed_channels(), [ch("h:x"), ch("h:y")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscribe_unsubscribe_keeps_broker_in_step() {
    let n = node();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let hub = n.hub.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let client = format!("c{t}-{i}");
                    let s = hub
                        .subscribe(&ch("h:churn"), Recorder::new(), as_client(&client, "u"))
                        .await
                        .unwrap();
                    s.activation.activate();
                    assert!(hub.unsubscribe(&ch("h:churn"), &client).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(n.hub.num_subscribers(&ch("h:churn")), 0);
    assert!(n.hub.channels().is_empty());
    assert!(!n.broker.is_subscribed("h:churn"));
}

#[tokio::test]
async fn join_and_leave_events() {
    let n = node();
    let watcher = subscribe_with(
        &n.hub,
        "room:1",
        SubscribeOptions {
            join_leave: true,
            ..as_client("w", "uw")
        },
    )
    .await
    .0;
    let quiet = subscribe_live(&n.hub, "room:1", "q").await;
    let guest = subscribe_live(&n.hub, "room:1", "g").await;
    assert!(n.hub.unsubscribe(&ch("room:1"), "g").await);
    let join = |client: &str| Seen::Join {
        channel: "room:1".into(),
        client: client.into(),
    };
    let leave = |client: &str| Seen::Leave {
        channel: "room:1".into(),
        client: client.into(),
    };
    assert_eq!(
        watcher.join_leaves(),
        [join("w"), join("q"), join("g"), leave("g")]
    );
    assert!(quiet.join_leaves().is_empty(), "did not ask for join/leave");
    assert!(guest.join_leaves().is_empty());

    // Forced: everyone gets them, asked or not.
    let a = subscribe_live(&n.hub, "forced:1", "a").await;
    let _b = subscribe_live(&n.hub, "forced:1", "b").await;
    n.hub.unsubscribe(&ch("forced:1"), "b").await;
    assert_eq!(
        a.join_leaves(),
        [
            Seen::Join {
                channel: "forced:1".into(),
                client: "a".into()
            },
            Seen::Join {
                channel: "forced:1".into(),
                client: "b".into()
            },
            Seen::Leave {
                channel: "forced:1".into(),
                client: "b".into()
            },
        ]
    );

    // Off: nobody gets them, even when asking.
    let asks = subscribe_with(
        &n.hub,
        "h:1",
        SubscribeOptions {
            join_leave: true,
            ..as_client("x", "u")
        },
    )
    .await
    .0;
    let _y = subscribe_live(&n.hub, "h:1", "y").await;
    assert!(asks.join_leaves().is_empty());
}

#[tokio::test]
async fn presence_through_the_hub() {
    let n = node();
    let c = ch("room:lobby");
    subscribe_with(&n.hub, "room:lobby", as_client("c1", "alice")).await;
    subscribe_with(&n.hub, "room:lobby", as_client("c2", "alice")).await;
    subscribe_with(&n.hub, "room:lobby", as_client("c3", "bob")).await;
    assert_eq!(
        n.hub.presence_stats(&c).await.unwrap(),
        PresenceStats {
            num_clients: 3,
            num_users: 2
        }
    );
    let clients: Vec<String> = n
        .hub
        .presence(&c)
        .await
        .unwrap()
        .iter()
        .map(|i| i.client.to_string())
        .collect();
    assert_eq!(clients, ["c1", "c2", "c3"]);
    n.hub.unsubscribe(&c, "c3").await;
    assert_eq!(
        n.hub.presence_stats(&c).await.unwrap(),
        PresenceStats {
            num_clients: 2,
            num_users: 1
        }
    );
    // Namespaces without presence answer 108 and record nothing.
    subscribe_live(&n.hub, "h:x", "c1").await;
    assert_eq!(n.hub.presence(&ch("h:x")).await.unwrap_err().code(), 108);
    assert_eq!(
        n.hub.presence_stats(&ch("h:x")).await.unwrap_err().code(),
        108
    );
    assert_eq!(n.presence.stats(&ch("h:x")).await.unwrap().num_clients, 0);
    // Refresh re-adds this node's entries (for expiring presence stores).
    n.presence.remove(&c, "c1").await.unwrap();
    n.hub.refresh_presence().await.unwrap();
    assert_eq!(n.hub.presence_stats(&c).await.unwrap().num_clients, 2);
}

#[tokio::test]
async fn subscribe_reports_position_and_recovers() {
    let n = node();
    for i in 1..=5 {
        publish(&n.hub, "h:x", &i.to_string()).await;
    }
    let (_, fresh) = subscribe_with(&n.hub, "h:x", as_client("fresh", "u")).await;
    let position = fresh.position.clone().unwrap();
    assert_eq!(position.offset, 5);
    assert!(fresh.recovery.is_none());

    // Recovered: missed 4 and 5.
    let (rec, result) = subscribe_with(
        &n.hub,
        "h:x",
        SubscribeOptions {
            recover_since: Some(StreamPosition::new(3, position.epoch.clone())),
            ..as_client("back", "u")
        },
    )
    .await;
    let recovery = result.recovery.unwrap();
    assert!(recovery.recovered);
    let missed: Vec<u64> = recovery.publications.iter().map(|p| p.offset).collect();
    assert_eq!(missed, [4, 5]);
    assert_eq!(result.position, Some(position.clone()));
    publish(&n.hub, "h:x", "6").await;
    assert_eq!(
        rec.offsets(),
        [6],
        "live continues after the recovered part"
    );

    // Another epoch: not recovered, current position, nothing else.
    let (_, result) = subscribe_with(
        &n.hub,
        "h:x",
        SubscribeOptions {
            recover_since: Some(StreamPosition::new(3, "stale")),
            ..as_client("old", "u")
        },
    )
    .await;
    let recovery = result.recovery.unwrap();
    assert!(!recovery.recovered);
    assert!(recovery.publications.is_empty());
    assert_eq!(
        recovery.position,
        StreamPosition::new(6, position.epoch.clone())
    );

    // Via the hub directly.
    let r = n
        .hub
        .recover(&ch("h:x"), &StreamPosition::new(5, position.epoch.clone()))
        .await
        .unwrap();
    assert!(r.recovered);
    assert_eq!(r.publications.len(), 1);
    assert_eq!(n.hub.position(&ch("h:x")).await.unwrap().offset, 6);
}

#[tokio::test]
async fn trimmed_history_is_not_recovered() {
    let n = node();
    let first = publish(&n.hub, "small:x", "1").await;
    for i in 2..=10 {
        publish(&n.hub, "small:x", &i.to_string()).await;
    }
    let epoch = first.position.epoch;
    let lost = n
        .hub
        .recover(&ch("small:x"), &StreamPosition::new(2, epoch.clone()))
        .await
        .unwrap();
    assert!(!lost.recovered, "3..=7 were trimmed");
    assert_eq!(lost.position.offset, 10);
    let ok = n
        .hub
        .recover(&ch("small:x"), &StreamPosition::new(7, epoch.clone()))
        .await
        .unwrap();
    assert!(ok.recovered);
    assert_eq!(
        ok.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [8, 9, 10]
    );
}

#[tokio::test]
async fn recovery_respects_the_publication_limit() {
    let n = node_with(|b| {
        b.config(HubConfig {
            recovery_max_publications: Some(3),
            ..Default::default()
        })
    });
    let first = publish(&n.hub, "h:x", "1").await;
    for i in 2..=10 {
        publish(&n.hub, "h:x", &i.to_string()).await;
    }
    let epoch = first.position.epoch;
    assert!(
        !n.hub
            .recover(&ch("h:x"), &StreamPosition::new(6, epoch.clone()))
            .await
            .unwrap()
            .recovered
    );
    assert!(
        n.hub
            .recover(&ch("h:x"), &StreamPosition::new(7, epoch))
            .await
            .unwrap()
            .recovered
    );
}

#[tokio::test(start_paused = true)]
async fn history_through_the_hub_with_ttl() {
    let n = node();
    let c = ch("ttl:x");
    let first = publish(&n.hub, "ttl:x", "1").await;
    tokio::time::advance(Duration::from_secs(6)).await;
    publish(&n.hub, "ttl:x", "2").await;
    let all = n.hub.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(all.publications.len(), 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    let left = n.hub.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(
        left.publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        left.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );

    // Continuing from 0 would skip the expired publication 1: refused.
    let err = n
        .hub
        .history(
            &c,
            HistoryFilter::since(StreamPosition::new(0, first.position.epoch.clone())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), 112);
    let ok = n
        .hub
        .history(
            &c,
            HistoryFilter::since(StreamPosition::new(1, first.position.epoch.clone())),
        )
        .await
        .unwrap();
    assert_eq!(ok.publications.len(), 1);
    let stale = n
        .hub
        .history(&c, HistoryFilter::since(StreamPosition::new(1, "stale")))
        .await;
    assert_eq!(stale.unwrap_err().code(), 112);

    // Everything expired: position stays, epoch too.
    tokio::time::advance(Duration::from_secs(10)).await;
    let empty = n.hub.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(empty.publications.is_empty());
    assert_eq!(
        empty.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );

    // remove_history keeps the numbering.
    publish(&n.hub, "ttl:x", "3").await;
    n.hub.remove_history(&c).await.unwrap();
    let removed = n.hub.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(removed.publications.is_empty());
    assert_eq!(removed.position.offset, 3);
}

#[tokio::test]
async fn deliveries_wait_for_activation() {
    let n = node();
    let rec = Recorder::new();
    let Subscribed { result, activation } = n
        .hub
        .subscribe(
            &ch("room:x"),
            rec.clone(),
            SubscribeOptions {
                join_leave: true,
                ..as_client("c1", "u")
            },
        )
        .await
        .unwrap();
    assert_eq!(result.position.as_ref().map(|p| p.offset), Some(0));
    publish(&n.hub, "room:x", "1").await;
    publish(&n.hub, "room:x", "2").await;
    assert!(rec.seen().is_empty(), "held back until the reply is out");
    activation.activate();
    assert_eq!(rec.offsets(), [1, 2]);
    assert_eq!(
        rec.join_leaves(),
        [Seen::Join {
            channel: "room:x".into(),
            client: "c1".into()
        }]
    );
    publish(&n.hub, "room:x", "3").await;
    assert_eq!(rec.offsets(), [1, 2, 3]);
}

#[tokio::test]
async fn dropping_the_activation_activates() {
    let n = node();
    let rec = Recorder::new();
    let subscribed = n
        .hub
        .subscribe(&ch("h:x"), rec.clone(), as_client("c1", "u"))
        .await
        .unwrap();
    publish(&n.hub, "h:x", "1").await;
    drop(subscribed);
    assert_eq!(rec.offsets(), [1]);
}

#[tokio::test]
async fn nothing_at_or_before_the_known_position_is_delivered_twice() {
    let n = node();
    let rec = Recorder::new();
    for i in 1..=3 {
        publish(&n.hub, "h:x", &i.to_string()).await;
    }
    let subscribed = n
        .hub
        .subscribe(&ch("h:x"), rec.clone(), as_client("c1", "u"))
        .await
        .unwrap();
    let position = subscribed.result.position.clone().unwrap();
    assert_eq!(position.offset, 3);
    // A late copy of an old publication arrives (as a broker might redeliver).
    let old = Arc::new(EncodedPublication::new(
        ch("h:x"),
        Publication {
            offset: 3,
            ..Publication::new("3")
        },
        position.epoch.as_str(),
    ));
    n.broker.publish(&old).await.unwrap();
    subscribed.activation.activate();
    publish(&n.hub, "h:x", "4").await;
    n.broker.publish(&old).await.unwrap();
    // Another epoch is not filtered: the transport decides what it means.
    let other_epoch = Arc::new(EncodedPublication::new(
        ch("h:x"),
        Publication {
            offset: 1,
            ..Publication::new("new epoch")
        },
        "other",
    ));
    n.broker.publish(&other_epoch).await.unwrap();
    assert_eq!(rec.data(), ["4", "new epoch"]);
}

/// A hole in the offsets (publications lost before they reached this node,
/// as when a broker's catch-up finds them gone from history) is the
/// subscriber's to handle: one that ends its subscription is told
/// (`insufficient_state`) instead of getting the publication, and is
/// removed; one that does not (the default) gets the publication.
#[tokio::test]
async fn a_hole_in_the_offsets_is_insufficient_state() {
    #[derive(Default)]
    struct Ends {
        got: std::sync::Mutex<Vec<u64>>,
        told: std::sync::Mutex<Vec<u64>>,
    }
    impl hub::Subscriber for Ends {
        fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
            self.got.lock().unwrap().push(p.offset());
            true
        }
        fn insufficient_state(&self, p: &Arc<EncodedPublication>) -> bool {
            self.told.lock().unwrap().push(p.offset());
            true
        }
    }
    let n = node();
    let c = ch("h:gap");
    let ends = Arc::new(Ends::default());
    n.hub
        .subscribe(&c, ends.clone(), as_client("e", "u"))
        .await
        .unwrap()
        .activation
        .activate();
    let keeps = subscribe_live(&n.hub, "h:gap", "k").await;
    publish(&n.hub, "h:gap", "1").await;
    publish(&n.hub, "h:gap", "2").await;
    let epoch = n.hub.position(&c).await.unwrap().epoch;
    let at = |offset: u64, epoch: &str| {
        Arc::new(EncodedPublication::new(
            c.clone(),
            Publication {
                offset,
                ..Publication::new(offset.to_string())
            },
            epoch,
        ))
    };
    // Offsets 3 and 4 never reach this node; 5 does.
    n.broker.publish(&at(5, &epoch)).await.unwrap();
    assert_eq!(*ends.got.lock().unwrap(), [1, 2]);
    assert_eq!(*ends.told.lock().unwrap(), [5]);
    assert!(!n.hub.is_subscribed(&c, "e"), "removed at once");
    assert_eq!(keeps.offsets(), [1, 2, 5]);
    // The next offset, or another epoch, is no hole.
    n.broker.publish(&at(6, &epoch)).await.unwrap();
    n.broker.publish(&at(1, "other")).await.unwrap();
    assert_eq!(keeps.offsets(), [1, 2, 5, 6, 1]);
    assert!(n.hub.is_subscribed(&c, "k"));
}

#[tokio::test]
async fn a_refusing_subscriber_is_removed_and_cleaned_up() {
    let n = node();
    let c = ch("room:x");
    let watcher = subscribe_with(
        &n.hub,
        "room:x",
        SubscribeOptions {
            join_leave: true,
            ..as_client("w", "uw")
        },
    )
    .await
    .0;
    let slow = subscribe_live(&n.hub, "room:x", "slow").await;
    slow.refuse();
    publish(&n.hub, "room:x", "1").await;
    assert!(!n.hub.is_subscribed(&c, "slow"), "removed at once");
    settle().await;
    assert_eq!(n.hub.presence_stats(&c).await.unwrap().num_clients, 1);
    assert!(watcher.join_leaves().contains(&Seen::Leave {
        channel: "room:x".into(),
        client: "slow".into()
    }));
    assert!(!n.hub.unsubscribe(&c, "slow").await, "already gone");

    // The last subscriber refusing releases the broker subscription.
    let lone = subscribe_live(&n.hub, "h:lone", "l").await;
    lone.refuse();
    publish(&n.hub, "h:lone", "1").await;
    settle().await;
    assert!(!n.broker.is_subscribed("h:lone"));
    assert!(n.hub.channels().iter().all(|(c, _)| c != "h:lone"));
}

#[tokio::test]
async fn too_many_held_back_events_drop_the_subscriber() {
    let n = node_with(|b| {
        b.config(HubConfig {
            max_pending_events: 2,
            ..Default::default()
        })
    });
    let subscribed = n
        .hub
        .subscribe(&ch("h:x"), Recorder::new(), as_client("c1", "u"))
        .await
        .unwrap();
    for i in 0..3 {
        publish(&n.hub, "h:x", &i.to_string()).await;
    }
    assert!(!n.hub.is_subscribed(&ch("h:x"), "c1"));
    subscribed.activation.activate();
    settle().await;
    assert!(!n.broker.is_subscribed("h:x"));
}

#[tokio::test]
async fn backend_failures_undo_the_subscription() {
    let n = node_with(|b| b.store(Arc::new(BrokenStore)));
    let err = n
        .hub
        .subscribe(&ch("room:x"), Recorder::new(), as_client("c1", "u"))
        .await
        .unwrap_err();
    assert!(err.is_temporary());
    assert_eq!(err.code(), 108);
    assert!(!n.hub.is_subscribed(&ch("room:x"), "c1"));
    assert_eq!(
        n.presence.stats(&ch("room:x")).await.unwrap().num_clients,
        0
    );
    assert!(!n.broker.is_subscribed("room:x"));
    let err = n
        .hub
        .publish(&ch("h:x"), PublishRequest::new("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage(_)));
    // A failed publish does not stall the channel's sequencer.
    let err = n
        .hub
        .publish(&ch("h:x"), PublishRequest::new("2"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage(_)));
    // Publications without history still go through the store (which
    // answers them at once, but may keep idempotency keys): failure reported.
    assert!(n
        .hub
        .publish(&ch("news"), PublishRequest::new("3"))
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_subscribe_is_rolled_back() {
    let store = DelayedStore::new(|_| Duration::ZERO);
    *store.read_delay.lock().unwrap() = Duration::from_millis(50);
    let n = node_with(|b| b.store(store.clone()));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        n.hub
            .subscribe(&ch("room:x"), Recorder::new(), as_client("c1", "u")),
    )
    .await;
    assert!(gave_up.is_err());
    settle().await;
    assert!(!n.hub.is_subscribed(&ch("room:x"), "c1"));
    assert_eq!(
        n.presence.stats(&ch("room:x")).await.unwrap().num_clients,
        0
    );
    assert!(!n.broker.is_subscribed("room:x"));
}

#[tokio::test]
async fn hub_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let n = node();
    let c = ch("h:x");
    let publish = n.hub.publish(&c, PublishRequest::new("1"));
    assert_send(&publish);
    publish.await.unwrap();
    let subscribe = n.hub.subscribe(&c, Recorder::new(), as_client("c", "u"));
    assert_send(&subscribe);
    drop(subscribe.await.unwrap());
    let unsubscribe = n.hub.unsubscribe(&c, "c");
    assert_send(&unsubscribe);
    assert!(unsubscribe.await);
    assert_send(&n.hub.history(&c, HistoryFilter::default()));
    assert_send(&n.hub.presence(&c));
}

#[tokio::test]
async fn user_limited_channels_are_ordinary_channels_to_the_hub() {
    // Who may subscribe is the server's check, with channel::allowed_user.
    let n = node();
    let c = ch("dm#42,57");
    assert!(c.allows_user("42") && c.allows_user("57") && !c.allows_user("7"));
    let rec = subscribe_live(&n.hub, "dm#42,57", "c42").await;
    publish(&n.hub, "dm#42,57", "hi").await;
    assert_eq!(rec.data(), ["hi"]);
}
