//! Losing Redis: killed connections are re-established and resubscribed
//! with nothing lost afterwards; while Redis is down every operation fails
//! fast with a temporary error and health says why; scripts Redis forgot
//! are sent again. Each test runs a redis-server of its own.

mod common;

use std::time::{Duration, Instant};

use common::{as_client, ch, command_calls, config, eventually, raw, Node, RedisServer};
use hub::{HistoryFilter, PresenceStore, PublishRequest, Store};

const WAIT: Duration = Duration::from_secs(5);

async fn client_kill(url: &str, kind: &str) -> i64 {
    let mut conn = raw(url).await;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg(kind)
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_reconnect_resubscribe_and_lose_nothing_after() {
    let server = RedisServer::start();
    let url = server.url();
    let a = Node::start(config(&url, "kill")).await;
    let b = Node::start(config(&url, "kill")).await;
    let on_b = b.subscribe("h:k", "b1").await;
    let plain_b = b.subscribe("plain", "b2").await;
    a.publish("h:k", "before").await;
    assert!(eventually(WAIT, || on_b.publications() == 1).await);

    // Cut every subscription connection.
    let killed = client_kill(&url, "pubsub").await;
    assert_eq!(
        killed, 1,
        "b's subscription connection (a subscribes nothing)"
    );
    let (health, up) = b.backend.wait_connected(WAIT).await;
    assert!(up, "{health:?}");
    assert!(
        eventually(WAIT, || b.backend.health().reconnects >= 1).await,
        "{:?}",
        b.backend.health()
    );
    assert!(b.backend.wait_connected(WAIT).await.1);
    for i in 0..20 {
        a.publish("h:k", &format!("after-{i}")).await;
        a.publish("plain", &i.to_string()).await;
    }
    assert!(
        eventually(WAIT, || on_b.publications() == 21
            && plain_b.publications() == 20)
        .await,
        "resubscribed: got {} and {}",
        on_b.publications(),
        plain_b.publications()
    );
    assert_eq!(on_b.offsets(), (1..=21).collect::<Vec<u64>>());

    // Cut the command connections (every normal client but the killer).
    let killed = client_kill(&url, "normal").await;
    assert!(killed >= 2, "killed {killed}");
    // The first command after the kill may fail (it raced the kill); the
    // connection comes back by itself.
    assert!(
        eventually(WAIT, || {
            let h = a.backend.health();
            h.connected && h.reconnects >= 1
        })
        .await
    );
    let mut published = 0;
    let deadline = Instant::now() + WAIT;
    while published < 10 && Instant::now() < deadline {
        let r = a
            .hub
            .publish(&ch("h:k"), PublishRequest::new(format!("late-{published}")))
            .await;
        match r {
            Ok(_) => published += 1,
            Err(err) => {
                assert!(err.is_temporary(), "{err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(published, 10);
    assert!(eventually(WAIT, || on_b.publications() == 31).await);
    assert_eq!(on_b.offsets(), (1..=31).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_fail_fast_while_redis_is_down_and_recover_after() {
    let mut server = RedisServer::start();
    let url = server.url();
    let a = Node::start(config(&url, "down")).await;
    let b = Node::start(config(&url, "down")).await;
    let on_b = b.subscribe("h:d", "b1").await;
    let leaving = b.subscribe("h:other", "b2").await;
    a.publish("h:d", "1").await;
    assert!(eventually(WAIT, || on_b.publications() == 1).await);

    server.stop();
    assert!(
        eventually(WAIT, || {
            let (ha, hb) = (a.backend.health(), b.backend.health());
            !ha.commands && !ha.subscriptions && !hb.commands && !hb.subscriptions
        })
        .await,
        "both nodes notice (ping interval 100 ms)"
    );
    let health = a.backend.health();
    assert!(!health.commands && !health.subscriptions, "{health:?}");
    assert!(health.last_error.is_some());
    let reason = health.reason().unwrap();
    assert!(reason.starts_with("redis broker"), "{reason}");

    let started = Instant::now();
    let store = a.backend.store();
    let presence = a.backend.presence();
    let errors = vec![
        a.hub
            .publish(&ch("h:d"), PublishRequest::new("x"))
            .await
            .unwrap_err(),
        a.hub
            .publish(&ch("plain"), PublishRequest::new("x"))
            .await
            .unwrap_err(),
        a.hub
            .history(&ch("h:d"), HistoryFilter::default())
            .await
            .unwrap_err(),
        a.hub.position(&ch("h:d")).await.unwrap_err(),
        a.hub
            .subscribe(&ch("h:new"), common::Recorder::new(), as_client("n", "u"))
            .await
            .unwrap_err(),
        a.hub.presence(&ch("room:1")).await.unwrap_err(),
        store.remove_history(&ch("h:d")).await.unwrap_err(),
        presence
            .add(&ch("room:1"), &hub::ClientInfo::new("u", "c"))
            .await
            .unwrap_err(),
    ];
    let took = started.elapsed();
    assert!(took < Duration::from_millis(200), "failed fast: {took:?}");
    for err in &errors {
        assert!(err.is_temporary(), "{err}");
        // The hub maps every backend failure to 108 (not available), temporary.
        assert_eq!(err.code(), 108, "{err}");
        assert!(err.to_string().contains("redis"), "{err}");
    }
    assert!(matches!(errors[0], hub::Error::Storage(_)));
    assert!(matches!(errors[4], hub::Error::Broker(_)));
    assert!(matches!(errors[5], hub::Error::Presence(_)));
    // Unsubscribing while down works (the channel is only forgotten).
    assert!(b.hub.unsubscribe(&ch("h:other"), "b2").await);
    assert_eq!(b.broker.stats().topics, 1);

    server.restart();
    assert!(
        a.backend.wait_connected(WAIT).await.1,
        "{:?}",
        a.backend.health()
    );
    assert!(
        b.backend.wait_connected(WAIT).await.1,
        "{:?}",
        b.backend.health()
    );
    // The restarted Redis kept nothing (no persistence): a new epoch. The
    // subscriber on b is subscribed again and gets what follows.
    let first = a.publish("h:d", "2").await;
    assert_eq!(first.position.offset, 1);
    a.publish("h:d", "3").await;
    assert!(
        eventually(WAIT, || on_b.publications() == 3).await,
        "got {:?}",
        on_b.data()
    );
    assert_eq!(on_b.data(), ["1", "2", "3"]);
    // h:other was not subscribed again.
    let received = b.broker.stats().received;
    a.publish("h:other", "x").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.broker.stats().received, received);
    assert_eq!(leaving.publications(), 0);
    assert_eq!(
        store
            .history(&ch("h:d"), HistoryFilter::default())
            .await
            .unwrap()
            .publications
            .len(),
        2
    );
}

#[tokio::test]
async fn forgotten_scripts_are_sent_again() {
    let server = RedisServer::start();
    let url = server.url();
    let a = Node::start(config(&url, "noscript")).await;
    let on_a = a.subscribe("h:n", "a1").await;
    a.publish("h:n", "1").await;
    let mut conn = raw(&url).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = command_calls(&mut conn).await;
    // Several publishes in flight at once hit NOSCRIPT together and are
    // re-sent in their order.
    let store = a.backend.store();
    let writes: Vec<_> = (2..=6)
        .map(|i| {
            store.publish(
                &ch("h:n"),
                hub::Publication::new(i.to_string()),
                &hub::PublishOptions::with_history(100, Duration::from_secs(60)),
            )
        })
        .collect();
    for (i, w) in writes.into_iter().enumerate() {
        assert_eq!(w.await.unwrap().position.offset, i as u64 + 2);
    }
    let after = command_calls(&mut conn).await;
    let delta =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    assert!(delta("eval") >= 1, "fell back to EVAL: {after:?}");
    assert!(eventually(WAIT, || on_a.publications() == 6).await);
    assert_eq!(on_a.data(), ["1", "2", "3", "4", "5", "6"]);
}

async fn clients(url: &str) -> usize {
    let mut conn = raw(url).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Leave out the connection asking.
    list.lines().count() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_node_closes_its_connections() {
    let server = RedisServer::start();
    let url = server.url();
    assert_eq!(clients(&url).await, 0);
    let a = Node::start(config(&url, "drop")).await;
    let _sub = a.subscribe("h:x", "a1").await;
    a.publish("h:x", "1").await;
    // The subscription connection may still be completing its handshake
    // on a busy machine: wait for it, then check there are no more.
    let mut open = 0;
    for _ in 0..200 {
        open = clients(&url).await;
        if open >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open, 2, "one command and one subscription connection");
    drop(a);
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = clients(&url).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "both connections closed");
}
