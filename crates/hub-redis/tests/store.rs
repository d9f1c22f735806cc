//! The store contract (hub::store) against a real Redis: offsets in call
//! order, epochs, size and TTL trims, meta expiry, idempotency windows,
//! history filters, remove_history, every publication field through
//! history, and writes that outlive a dropped future.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{ch, cleanup, config, connect, prefix, raw, redis_url};
use hub::{ClientInfo, HistoryFilter, Publication, PublishOptions, Store, StreamPosition};
use hub_redis::{RedisConfig, RedisStore};

struct Fixture {
    store: std::sync::Arc<RedisStore>,
    _backend: hub_redis::RedisBackend,
    prefix: String,
}

impl Fixture {
    async fn new(test: &str) -> Self {
        Self::with(test, |c| c).await
    }

    async fn with(test: &str, f: impl FnOnce(RedisConfig) -> RedisConfig) -> Self {
        let prefix = prefix(test);
        let backend = connect(f(config(&redis_url(), &prefix))).await;
        Self {
            store: backend.store(),
            _backend: backend,
            prefix,
        }
    }

    async fn offsets(&self, channel: &str, filter: HistoryFilter) -> Vec<u64> {
        let r = self.store.history(&ch(channel), filter).await.unwrap();
        r.publications.iter().map(|p| p.offset).collect()
    }

    async fn publish(
        &self,
        channel: &str,
        data: &str,
        opts: &PublishOptions,
    ) -> hub::PublishResult {
        self.store
            .publish(&ch(channel), Publication::new(data.to_owned()), opts)
            .await
            .unwrap()
    }

    async fn done(self) {
        cleanup(&redis_url(), &self.prefix).await;
    }
}

fn opts(size: usize, ttl: Duration) -> PublishOptions {
    PublishOptions::with_history(size, ttl)
}

fn minute(size: usize) -> PublishOptions {
    opts(size, Duration::from_secs(60))
}

#[tokio::test]
async fn offsets_increase_per_channel_with_one_epoch() {
    let f = Fixture::new("offsets").await;
    let mut epochs = Vec::new();
    for i in 1..=5u64 {
        let r = f.publish("a", "x", &minute(10)).await;
        assert_eq!((r.publication.offset, r.position.offset), (i, i));
        assert!(!r.duplicate);
        epochs.push(r.position.epoch);
    }
    epochs.dedup();
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0].len(), 8);
    let b = f.publish("b", "y", &minute(10)).await;
    assert_eq!(b.position.offset, 1, "offsets are per channel");
    assert_ne!(b.position.epoch, epochs[0], "epochs are per channel");
    f.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_follow_call_order_not_await_order() {
    let f = Fixture::new("call-order").await;
    let c = ch("c");
    // Every call is made before any is awaited; then they are awaited
    // newest first.
    let futures: Vec<_> = (0..300)
        .map(|i| {
            f.store
                .publish(&c, Publication::new(i.to_string()), &minute(1000))
        })
        .collect();
    let mut results = Vec::new();
    for fut in futures.into_iter().rev() {
        results.push(fut.await.unwrap());
    }
    results.reverse();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.position.offset, i as u64 + 1, "call {i}");
        assert_eq!(r.publication.data, i.to_string());
    }
    let kept = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    let data: Vec<String> = kept
        .publications
        .iter()
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .collect();
    let expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    assert_eq!(data, expected);
    f.done().await;
}

#[tokio::test]
async fn a_dropped_future_still_writes() {
    let f = Fixture::new("dropped").await;
    let c = ch("c");
    drop(f.store.publish(&c, Publication::new("gone"), &minute(10)));
    let next = f.publish("c", "seen", &minute(10)).await;
    assert_eq!(next.position.offset, 2, "the dropped publish took offset 1");
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(&r.publications[0].data[..], b"gone");
    f.done().await;
}

#[tokio::test]
async fn no_history_means_no_offset_and_no_keys() {
    let f = Fixture::new("no-history").await;
    let r = f.publish("a", "x", &minute(0)).await;
    assert_eq!(r.publication.offset, 0);
    assert!(r.position.is_zero());
    let r = f.publish("a", "x", &opts(10, Duration::ZERO)).await;
    assert!(r.position.is_zero());
    let mut conn = raw(&redis_url()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", f.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing stored: {keys:?}");
    f.done().await;
}

#[tokio::test]
async fn trims_to_size() {
    let f = Fixture::new("trim").await;
    for _ in 0..10 {
        f.publish("c", "x", &minute(3)).await;
    }
    assert_eq!(f.offsets("c", HistoryFilter::default()).await, [8, 9, 10]);
    f.done().await;
}

#[tokio::test]
async fn filters() {
    let f = Fixture::new("filters").await;
    for _ in 0..6 {
        f.publish("c", "x", &minute(10)).await;
    }
    let since = |offset| Some(StreamPosition::new(offset, "ignored-here"));
    let q = |since: Option<StreamPosition>, limit, reverse| HistoryFilter {
        since,
        limit,
        reverse,
    };
    let none: [u64; 0] = [];
    assert_eq!(
        f.offsets("c", q(None, None, false)).await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(f.offsets("c", q(None, Some(2), false)).await, [1, 2]);
    assert_eq!(f.offsets("c", q(None, Some(0), false)).await, none);
    assert_eq!(
        f.offsets("c", q(None, None, true)).await,
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(f.offsets("c", q(None, Some(2), true)).await, [6, 5]);
    assert_eq!(f.offsets("c", q(since(3), None, false)).await, [4, 5, 6]);
    assert_eq!(f.offsets("c", q(since(3), Some(1), false)).await, [4]);
    assert_eq!(f.offsets("c", q(since(6), None, false)).await, none);
    assert_eq!(
        f.offsets("c", q(since(0), None, false)).await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(f.offsets("c", q(since(4), None, true)).await, [3, 2, 1]);
    assert_eq!(f.offsets("c", q(since(4), Some(2), true)).await, [3, 2]);
    assert_eq!(
        f.offsets("c", q(since(99), None, true)).await,
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(f.offsets("c", q(since(0), None, true)).await, none);
    assert_eq!(f.offsets("c", q(since(1), None, true)).await, none);
    assert_eq!(f.offsets("c", q(since(u64::MAX), None, false)).await, none);
    assert_eq!(
        f.offsets("c", q(since(u64::MAX), Some(usize::MAX), true))
            .await,
        [6, 5, 4, 3, 2, 1]
    );
    let r = f
        .store
        .history(&ch("c"), HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(r.position.offset, 6);
    assert_eq!(&r.publications[0].data[..], b"x");
    f.done().await;
}

#[tokio::test]
async fn every_field_survives_history() {
    let f = Fixture::new("fields").await;
    let mut info = ClientInfo::new("user-1", "client-1");
    info.conn_info = Some(Bytes::from_static(br#"{"name":"Ann"}"#));
    info.chan_info = Some(Bytes::from_static(b"[1,2]"));
    let mut tags = BTreeMap::new();
    tags.insert("a".to_owned(), "1".to_owned());
    tags.insert("colon:key".to_owned(), "ünïcode".to_owned());
    let sent = Publication {
        offset: 0,
        data: Bytes::from_static(b"{\"bytes\":\"\\u0000\"}\x00\xff"),
        info: Some(info),
        tags,
        time: UNIX_EPOCH + Duration::new(1_750_000_000, 987_654_321),
    };
    let r = f
        .store
        .publish(&ch("c"), sent.clone(), &minute(10))
        .await
        .unwrap();
    assert_eq!(
        r.publication,
        Publication {
            offset: 1,
            ..sent.clone()
        }
    );
    let kept = f
        .store
        .history(&ch("c"), HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(kept.publications, [Publication { offset: 1, ..sent }]);
    f.done().await;
}

#[tokio::test]
async fn ttl_expiry_keeps_the_epoch() {
    let f = Fixture::new("ttl").await;
    let ttl = opts(10, Duration::from_millis(1000));
    let first = f.publish("c", "1", &ttl).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    f.publish("c", "2", &ttl).await;
    assert_eq!(f.offsets("c", HistoryFilter::default()).await, [1, 2]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        f.offsets("c", HistoryFilter::default()).await,
        [2],
        "1 expired"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = f
        .store
        .history(&ch("c"), HistoryFilter::default())
        .await
        .unwrap();
    assert!(r.publications.is_empty());
    assert_eq!(
        r.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );
    let third = f.publish("c", "3", &ttl).await;
    assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
    f.done().await;
}

#[tokio::test]
async fn meta_expiry_starts_a_new_epoch_and_reads_keep_it_alive() {
    let f = Fixture::with("meta", |c| RedisConfig {
        history_meta_ttl: Duration::from_millis(1000),
        ..c
    })
    .await;
    let c = ch("c");
    let o = opts(10, Duration::from_millis(300));
    let first = f.publish("c", "1", &o).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            f.store.position(&c).await.unwrap(),
            first.position,
            "kept alive"
        );
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = f.publish("c", "2", &o).await;
    assert_eq!(again.position.offset, 1);
    assert_ne!(again.position.epoch, first.position.epoch);
    // A namespace's own meta TTL wins over the store's.
    let own = PublishOptions {
        history_meta_ttl: Some(Duration::from_secs(60)),
        ..o.clone()
    };
    let long = f.publish("d", "1", &own).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(f.store.position(&ch("d")).await.unwrap(), long.position);
    f.done().await;
}

#[tokio::test]
async fn position_creates_the_stream_and_keeps_its_epoch() {
    let f = Fixture::new("position").await;
    let c = ch("c");
    let pos = f.store.position(&c).await.unwrap();
    assert_eq!(pos.offset, 0);
    assert_eq!(pos.epoch.len(), 8);
    assert_eq!(f.store.position(&c).await.unwrap(), pos);
    let r = f.publish("c", "1", &minute(10)).await;
    assert_eq!(r.position, StreamPosition::new(1, pos.epoch));
    f.done().await;
}

#[tokio::test]
async fn remove_history_keeps_offset_and_epoch() {
    let f = Fixture::new("remove").await;
    let c = ch("c");
    let first = f.publish("c", "1", &minute(10)).await;
    f.publish("c", "2", &minute(10)).await;
    f.store.remove_history(&c).await.unwrap();
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(r.publications.is_empty());
    assert_eq!(
        r.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );
    let third = f.publish("c", "3", &minute(10)).await;
    assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
    assert_eq!(f.offsets("c", HistoryFilter::default()).await, [3]);
    f.store.remove_history(&ch("never-used")).await.unwrap();
    f.done().await;
}

#[tokio::test]
async fn idempotency_window() {
    let f = Fixture::with("idempotency", |c| RedisConfig {
        idempotency_ttl: Duration::from_millis(700),
        ..c
    })
    .await;
    let keyed = |key: &str| PublishOptions {
        idempotency_key: Some(key.into()),
        ..minute(10)
    };
    let first = f.publish("c", "1", &keyed("k")).await;
    assert!(!first.duplicate);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = f.publish("c", "1", &keyed("k")).await;
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    assert_eq!(again.publication.offset, 1);
    assert_eq!(f.offsets("c", HistoryFilter::default()).await, [1]);
    assert!(
        !f.publish("d", "1", &keyed("k")).await.duplicate,
        "keys are per channel"
    );
    assert!(!f.publish("c", "1", &keyed("other")).await.duplicate);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = f.publish("c", "1", &keyed("k")).await;
    assert!(!later.duplicate, "the window closed");
    assert_eq!(later.position.offset, 3);
    let dup = f.publish("c", "1", &keyed("k")).await;
    assert!(dup.duplicate);
    assert_eq!(dup.position.offset, 3);

    // Without history: remembered with a zero position.
    let bare = PublishOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    let a = f.publish("e", "1", &bare).await;
    let b = f.publish("e", "1", &bare).await;
    assert!(!a.duplicate && b.duplicate);
    assert!(a.position.is_zero() && b.position.is_zero());
    f.done().await;
}

#[tokio::test]
async fn huge_sizes_and_ttls_do_not_overflow() {
    let f = Fixture::new("huge").await;
    let o = PublishOptions {
        history_meta_ttl: Some(Duration::MAX),
        ..PublishOptions::with_history(usize::MAX, Duration::MAX)
    };
    let r = f.publish("c", "1", &o).await;
    assert_eq!(r.position.offset, 1);
    let r = f
        .store
        .publish(
            &ch("c"),
            Publication {
                time: SystemTime::now(),
                ..Publication::new("2")
            },
            &o,
        )
        .await
        .unwrap();
    assert_eq!(r.position.offset, 2);
    assert_eq!(f.offsets("c", HistoryFilter::default()).await, [1, 2]);
    f.done().await;
}

#[tokio::test]
async fn stores_with_one_prefix_share_streams_and_prefixes_separate_them() {
    let f = Fixture::new("shared").await;
    let same = connect(config(&redis_url(), &f.prefix)).await.store();
    let other_prefix = prefix("shared-other");
    let other = connect(config(&redis_url(), &other_prefix)).await.store();
    let a = f.publish("c", "1", &minute(10)).await;
    let b = same
        .publish(&ch("c"), Publication::new("2"), &minute(10))
        .await
        .unwrap();
    assert_eq!(b.position, StreamPosition::new(2, a.position.epoch.clone()));
    let c = other
        .publish(&ch("c"), Publication::new("3"), &minute(10))
        .await
        .unwrap();
    assert_eq!(c.position.offset, 1);
    assert_ne!(c.position.epoch, a.position.epoch);
    f.done().await;
    cleanup(&redis_url(), &other_prefix).await;
}
