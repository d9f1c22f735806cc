//! What running nodes as one needs beyond channels: catching up after the
//! subscription connection was cut (nothing lost, nothing twice), sweeping
//! expired presence so that exactly one sweeper learns of each vanished
//! client, and the control side (node registry with TTL, broadcast and
//! direct control messages).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    as_client, ch, cleanup, config, eventually, prefix, raw, redis_url, Node, RedisServer,
};
use hub::{PresenceStore, PublishRequest};
use hub_redis::{ControlHandler, RedisConfig};

const WAIT: Duration = Duration::from_secs(5);

/// Kills every subscription connection of the test's own redis-server.
async fn kill_subscriptions(url: &str) -> i64 {
    let mut conn = raw(url).await;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// b waits long before reconnecting, so that what a publishes right after
/// the kill lands while b is cut off.
fn slow_to_reconnect(c: RedisConfig) -> RedisConfig {
    RedisConfig {
        reconnect_min: Duration::from_millis(400),
        reconnect_max: Duration::from_millis(800),
        ..c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_sent_while_the_subscription_was_down_are_caught_up_once() {
    let server = RedisServer::start();
    let url = server.url();
    let a = Node::start(config(&url, "catch-up")).await;
    let b = Node::start(slow_to_reconnect(config(&url, "catch-up"))).await;
    let on_b = b.subscribe("h:gap", "b1").await;
    let fresh = b.subscribe("h:fresh", "b2").await;
    for i in 0..5 {
        a.publish("h:gap", &format!("before-{i}")).await;
    }
    assert!(eventually(WAIT, || on_b.publications() == 5).await);

    let before = b.backend.health().reconnects;
    assert_eq!(
        kill_subscriptions(&url).await,
        1,
        "b's (a subscribes nothing)"
    );
    for i in 0..20 {
        a.publish("h:gap", &format!("during-{i}")).await;
    }
    a.publish("h:fresh", "while-down").await;
    assert!(
        eventually(WAIT, || {
            let h = b.backend.health();
            h.reconnects > before && h.connected
        })
        .await
    );
    for i in 0..5 {
        a.publish("h:gap", &format!("after-{i}")).await;
    }
    assert!(
        eventually(WAIT, || on_b.publications() >= 30).await,
        "got {}",
        on_b.publications()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        on_b.offsets(),
        (1..=30).collect::<Vec<u64>>(),
        "once, in order"
    );
    let data = on_b.data();
    assert_eq!(data[5], "during-0");
    assert_eq!(data[29], "after-4");
    // A channel that had no publication before the cut is caught up too.
    assert_eq!(fresh.data(), ["while-down"]);
    let stats = b.broker.stats();
    assert_eq!(stats.caught_up, 21, "{stats:?}");
    assert_eq!(stats.missed, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_too_short_for_the_gap_is_counted_as_missed() {
    let server = RedisServer::start();
    let url = server.url();
    let a = Node::start(config(&url, "missed")).await;
    let b = Node::start(slow_to_reconnect(config(&url, "missed"))).await;
    // `small:` keeps 3 publications.
    let on_b = b.subscribe("small:x", "b1").await;
    a.publish("small:x", "1").await;
    assert!(eventually(WAIT, || on_b.publications() == 1).await);
    let before = b.backend.health().reconnects;
    assert_eq!(kill_subscriptions(&url).await, 1);
    for i in 2..=10 {
        a.publish("small:x", &i.to_string()).await;
    }
    assert!(
        eventually(WAIT, || {
            let h = b.backend.health();
            h.reconnects > before && h.connected
        })
        .await
    );
    assert!(eventually(WAIT, || on_b.publications() == 4).await);
    assert_eq!(on_b.offsets(), [1, 8, 9, 10]);
    assert_eq!(b.broker.stats().missed, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_presence_is_skipped_by_reads_and_swept_once() {
    let prefix = prefix("sweep");
    let url = redis_url();
    let ttl = Duration::from_secs(1);
    let short = |c: RedisConfig| RedisConfig {
        presence_ttl: ttl,
        ..c
    };
    let a = Node::start(short(config(&url, &prefix))).await;
    let b = Node::start(short(config(&url, &prefix))).await;
    a.subscribe_with("room:s", as_client("a1", "alice")).await;
    b.subscribe_with("room:s", as_client("b1", "bob")).await;
    let room = ch("room:s");
    assert_eq!(b.hub.presence_stats(&room).await.unwrap().num_clients, 2);
    // Only b refreshes; a's entry lapses (and is not yet old enough for an
    // add to drop it unannounced: that takes another TTL).
    let deadline = std::time::Instant::now() + ttl * 3 / 2;
    while std::time::Instant::now() < deadline {
        b.hub.refresh_presence().await.unwrap();
        tokio::time::sleep(ttl / 4).await;
    }
    let clients: Vec<String> = b
        .hub
        .presence(&room)
        .await
        .unwrap()
        .iter()
        .map(|i| i.client.to_string())
        .collect();
    assert_eq!(clients, ["b1"], "reads skip the expired entry");
    // Two sweepers at once: one of them gets a1, the other nothing.
    let (pa, pb) = (a.backend.presence(), b.backend.presence());
    let (ra, rb) = tokio::join!(pa.expire(&room, 100), pb.expire(&room, 100));
    let mut swept: Vec<String> = ra
        .unwrap()
        .into_iter()
        .chain(rb.unwrap())
        .map(|i| format!("{}/{}", i.user, i.client))
        .collect();
    swept.sort();
    assert_eq!(swept, ["alice/a1"]);
    assert!(pa.expire(&room, 100).await.unwrap().is_empty());
    assert_eq!(pb.list(&room).await.unwrap().len(), 1);
    cleanup(&url, &prefix).await;
}

#[derive(Default)]
struct Inbox(Mutex<Vec<String>>);

impl ControlHandler for Inbox {
    fn handle_control(&self, message: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(message).into_owned());
    }
}

impl Inbox {
    fn got(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_and_the_node_registry() {
    let prefix = prefix("control");
    let url = redis_url();
    let a = Node::start(config(&url, &prefix)).await;
    let b = Node::start(config(&url, &prefix)).await;
    let (ca, cb) = (a.backend.control(), b.backend.control());
    let (ia, ib) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
    ca.listen("node-a", ia.clone()).await.unwrap();
    cb.listen("node-b", ib.clone()).await.unwrap();

    assert_eq!(ca.broadcast(b"hello all".to_vec()).await.unwrap(), 2);
    assert_eq!(ca.send("node-b", b"to b".to_vec()).await.unwrap(), 1);
    assert_eq!(ca.send("node-c", b"nobody".to_vec()).await.unwrap(), 0);
    assert!(eventually(WAIT, || ib.got().len() == 2).await);
    assert!(eventually(WAIT, || ia.got().len() == 1).await);
    assert_eq!(ib.got(), ["hello all", "to b"]);
    assert_eq!(ia.got(), ["hello all"]);
    // Control topics are not channels: the hub saw nothing odd.
    assert_eq!(b.broker.stats().undecodable, 0);
    assert_eq!(b.broker.stats().control, 2);

    let ttl = Duration::from_millis(400);
    ca.announce("node-a", b"A".to_vec(), ttl).await.unwrap();
    cb.announce("node-b", b"B1".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    cb.announce("node-b", b"B2".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    let nodes = cb.nodes().await.unwrap();
    assert_eq!(
        nodes,
        [
            ("node-a".to_owned(), b"A".to_vec()),
            ("node-b".to_owned(), b"B2".to_vec())
        ]
    );
    // a stops announcing: it drops off after its TTL.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let ids: Vec<String> = cb.nodes().await.unwrap().into_iter().map(|n| n.0).collect();
    assert_eq!(ids, ["node-b"]);
    cb.withdraw("node-b").await.unwrap();
    assert!(ca.nodes().await.unwrap().is_empty());

    // After stop, nothing more is handed over.
    cb.stop("node-b").await;
    assert_eq!(ca.broadcast(b"again".to_vec()).await.unwrap(), 1);
    assert!(eventually(WAIT, || ia.got().len() == 2).await);
    assert_eq!(ib.got().len(), 2);
    let _ = a
        .hub
        .publish(&ch("h:unused"), PublishRequest::new("1"))
        .await
        .unwrap();
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_while_redis_is_down_takes_effect_once_it_is_up() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let backend = hub_redis::RedisBackend::new(config(&url, "late")).unwrap();
    let inbox = Arc::new(Inbox::default());
    backend
        .control()
        .listen("late-node", inbox.clone())
        .await
        .expect("wanted for later, not refused");
    assert!(!backend.health().connected);
    server.restart();
    let (health, up) = backend.wait_connected(WAIT).await;
    assert!(up, "{health:?}");
    let other = Node::start(config(&url, "late")).await;
    assert_eq!(
        other
            .backend
            .control()
            .send("late-node", b"hi".to_vec())
            .await
            .unwrap(),
        1
    );
    assert!(eventually(WAIT, || inbox.got() == ["hi"]).await);
}
