//! The Store contract on SQLite: the same behaviour as the memory store's
//! own tests (offsets, trimming, TTLs, epochs, idempotency, filters), plus
//! what only a database has (round-tripping every field, cleanup of rows).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{ch, datas, offsets, opts, Fixture};
use hub::{
    ClientInfo, HistoryFilter, MemoryStore, Publication, PublishOptions, Store, StreamPosition,
};

#[tokio::test]
async fn offsets_increase_per_channel_with_one_epoch() {
    let f = Fixture::new();
    let (a, b) = (ch("a"), ch("b"));
    let mut epochs = Vec::new();
    for i in 1..=5u64 {
        let r = f
            .store
            .publish(&a, Publication::new("x"), &opts(10, 60))
            .await
            .unwrap();
        assert_eq!(r.publication.offset, i);
        assert_eq!(r.position.offset, i);
        assert!(!r.duplicate);
        epochs.push(r.position.epoch);
    }
    epochs.dedup();
    assert_eq!(epochs.len(), 1);
    assert_eq!(epochs[0].len(), 8);
    let rb = f
        .store
        .publish(&b, Publication::new("y"), &opts(10, 60))
        .await
        .unwrap();
    assert_eq!(rb.position.offset, 1, "offsets are per channel");
    assert_ne!(rb.position.epoch, epochs[0], "epochs are per channel");
}

#[tokio::test]
async fn no_history_means_no_offset() {
    let f = Fixture::new();
    let r = f
        .store
        .publish(&ch("a"), Publication::new("x"), &opts(0, 60))
        .await
        .unwrap();
    assert_eq!(r.publication.offset, 0);
    assert!(r.position.is_zero());
    let r = f
        .store
        .publish(&ch("a"), Publication::new("x"), &opts(10, 0))
        .await
        .unwrap();
    assert!(r.position.is_zero());
    f.store.flush().await.unwrap();
    assert_eq!(f.store.cached_channels(), 0, "nothing recorded");
    assert_eq!(f.count("SELECT count(*) FROM streams"), 0);
    assert_eq!(f.count("SELECT count(*) FROM publications"), 0);
}

#[tokio::test]
async fn trims_to_size() {
    let f = Fixture::new();
    let c = ch("c");
    for _ in 0..10 {
        f.store
            .publish(&c, Publication::new("x"), &opts(3, 60))
            .await
            .unwrap();
    }
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        [8, 9, 10]
    );
    assert_eq!(f.count("SELECT count(*) FROM publications"), 3);
}

#[tokio::test]
async fn trims_to_size_within_one_batch_and_follows_size_changes() {
    let f = Fixture::new();
    let c = ch("c");
    // Issued together, these land in few batches; sizes change on the way.
    let sizes = [5, 5, 5, 5, 5, 5, 2, 10, 10, 10];
    let pending: Vec<_> = sizes
        .iter()
        .map(|&size| f.store.publish(&c, Publication::new("x"), &opts(size, 60)))
        .collect();
    for p in pending {
        p.await.unwrap();
    }
    // Like the memory store: size 2 at offset 7 kept 6..=7, later
    // publications only grew from there.
    let memory = MemoryStore::new();
    for &size in &sizes {
        memory
            .publish(&c, Publication::new("x"), &opts(size, 60))
            .await
            .unwrap();
    }
    let expected = offsets(&memory, &c, HistoryFilter::default()).await;
    assert_eq!(expected, [6, 7, 8, 9, 10]);
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        expected
    );
}

#[tokio::test]
async fn filters() {
    let f = Fixture::new();
    let store = &f.store;
    let c = ch("c");
    for i in 1..=6 {
        store
            .publish(&c, Publication::new(format!("{i}")), &opts(10, 60))
            .await
            .unwrap();
    }
    let since = |offset| Some(StreamPosition::new(offset, "ignored-here"));
    let q = |since: Option<StreamPosition>, limit, reverse| HistoryFilter {
        since,
        limit,
        reverse,
    };
    let none: [u64; 0] = [];
    assert_eq!(
        offsets(store, &c, q(None, None, false)).await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(offsets(store, &c, q(None, Some(2), false)).await, [1, 2]);
    assert_eq!(offsets(store, &c, q(None, Some(0), false)).await, none);
    assert_eq!(
        offsets(store, &c, q(None, None, true)).await,
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(offsets(store, &c, q(None, Some(2), true)).await, [6, 5]);
    assert_eq!(
        offsets(store, &c, q(since(3), None, false)).await,
        [4, 5, 6]
    );
    assert_eq!(offsets(store, &c, q(since(3), Some(1), false)).await, [4]);
    assert_eq!(offsets(store, &c, q(since(6), None, false)).await, none);
    assert_eq!(
        offsets(store, &c, q(since(0), None, false)).await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(offsets(store, &c, q(since(4), None, true)).await, [3, 2, 1]);
    assert_eq!(offsets(store, &c, q(since(4), Some(2), true)).await, [3, 2]);
    assert_eq!(
        offsets(store, &c, q(since(99), None, true)).await,
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(
        offsets(store, &c, q(since(u64::MAX), None, false)).await,
        none
    );
    let r = store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(r.position.offset, 6);
    assert_eq!(&r.publications[0].data[..], b"1");
    assert_eq!(datas(store, &c).await, ["1", "2", "3", "4", "5", "6"]);
}

#[tokio::test]
async fn ttl_expiry_is_lazy_and_keeps_the_epoch() {
    let f = Fixture::new();
    let c = ch("c");
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 10))
        .await
        .unwrap();
    f.advance(6);
    f.store
        .publish(&c, Publication::new("2"), &opts(10, 10))
        .await
        .unwrap();
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        [1, 2]
    );
    f.advance(5);
    assert_eq!(offsets(&f.store, &c, HistoryFilter::default()).await, [2]);
    f.advance(5);
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(r.publications.is_empty());
    assert_eq!(
        r.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );
    let third = f
        .store
        .publish(&c, Publication::new("3"), &opts(10, 10))
        .await
        .unwrap();
    assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
    assert_eq!(
        f.count("SELECT count(*) FROM publications"),
        1,
        "the batch that stored 3 deleted the expired ones"
    );
}

#[tokio::test]
async fn mixed_ttls_expire_only_a_prefix() {
    let f = Fixture::new();
    let c = ch("c");
    f.store
        .publish(&c, Publication::new("long"), &opts(10, 100))
        .await
        .unwrap();
    f.store
        .publish(&c, Publication::new("short"), &opts(10, 10))
        .await
        .unwrap();
    f.advance(20);
    // The short one expired, but the long one before it did not: history
    // stays contiguous, as in the memory store.
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        [1, 2]
    );
    f.store.cleanup().await.unwrap();
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        [1, 2]
    );
    f.advance(100);
    assert!(offsets(&f.store, &c, HistoryFilter::default())
        .await
        .is_empty());
}

#[tokio::test]
async fn meta_expiry_starts_a_new_epoch() {
    let f = Fixture::with(|c| c.history_meta_ttl(Duration::from_secs(100)));
    let c = ch("c");
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 1000))
        .await
        .unwrap();
    f.advance(50);
    // A read keeps the stream alive.
    assert_eq!(f.store.position(&c).await.unwrap(), first.position);
    f.advance(99);
    assert_eq!(f.store.position(&c).await.unwrap(), first.position);
    f.advance(101);
    let again = f
        .store
        .publish(&c, Publication::new("2"), &opts(10, 1000))
        .await
        .unwrap();
    assert_eq!(again.position.offset, 1);
    assert_ne!(again.position.epoch, first.position.epoch);
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(r.position, again.position);
    let data: Vec<_> = r.publications.iter().map(|p| p.data.clone()).collect();
    assert_eq!(data, [Bytes::from("2")], "the old stream's history is gone");
}

#[tokio::test]
async fn publish_meta_ttl_overrides_the_default() {
    let f = Fixture::new();
    let c = ch("c");
    let short_meta = PublishOptions {
        history_meta_ttl: Some(Duration::from_secs(10)),
        ..opts(10, 5)
    };
    let first = f
        .store
        .publish(&c, Publication::new("1"), &short_meta)
        .await
        .unwrap();
    f.advance(11);
    let pos = f.store.position(&c).await.unwrap();
    assert_eq!(pos.offset, 0);
    assert_ne!(pos.epoch, first.position.epoch);
}

#[tokio::test]
async fn position_creates_the_stream_and_keeps_its_epoch() {
    let f = Fixture::new();
    let c = ch("c");
    let pos = f.store.position(&c).await.unwrap();
    assert_eq!(pos.offset, 0);
    assert_eq!(pos.epoch.len(), 8);
    let r = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 10))
        .await
        .unwrap();
    assert_eq!(r.position, StreamPosition::new(1, pos.epoch.clone()));
    // A history read on a new channel creates it too.
    let h = f
        .store
        .history(&ch("fresh"), HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(h.position.offset, 0);
    assert_eq!(h.position.epoch.len(), 8);
}

#[tokio::test]
async fn remove_history_keeps_offset_and_epoch() {
    let f = Fixture::new();
    let c = ch("c");
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 60))
        .await
        .unwrap();
    f.store
        .publish(&c, Publication::new("2"), &opts(10, 60))
        .await
        .unwrap();
    f.store.remove_history(&c).await.unwrap();
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(r.publications.is_empty());
    assert_eq!(
        r.position,
        StreamPosition::new(2, first.position.epoch.clone())
    );
    let third = f
        .store
        .publish(&c, Publication::new("3"), &opts(10, 60))
        .await
        .unwrap();
    assert_eq!(third.position, StreamPosition::new(3, first.position.epoch));
    assert_eq!(offsets(&f.store, &c, HistoryFilter::default()).await, [3]);
    f.store.remove_history(&ch("never-used")).await.unwrap();
}

#[tokio::test]
async fn remove_history_is_ordered_with_publishes() {
    let f = Fixture::new();
    let c = ch("c");
    // Neither awaited before the next call: the removal still falls
    // between them, in call order.
    let one = f.store.publish(&c, Publication::new("1"), &opts(10, 60));
    let removed = f.store.remove_history(&c);
    let two = f.store.publish(&c, Publication::new("2"), &opts(10, 60));
    two.await.unwrap();
    removed.await.unwrap();
    one.await.unwrap();
    assert_eq!(offsets(&f.store, &c, HistoryFilter::default()).await, [2]);
}

#[tokio::test]
async fn idempotency_window() {
    let f = Fixture::new();
    let c = ch("c");
    let keyed = |key: &str| PublishOptions {
        idempotency_key: Some(key.into()),
        ..opts(10, 600)
    };
    let first = f
        .store
        .publish(&c, Publication::new("1"), &keyed("k"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    f.advance(299);
    let again = f
        .store
        .publish(&c, Publication::new("1"), &keyed("k"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    assert_eq!(again.publication.offset, 1);
    assert_eq!(offsets(&f.store, &c, HistoryFilter::default()).await, [1]);
    // Keys are per channel.
    let other = f
        .store
        .publish(&ch("d"), Publication::new("1"), &keyed("k"))
        .await
        .unwrap();
    assert!(!other.duplicate);
    // After the window the key publishes again.
    f.advance(2);
    let later = f
        .store
        .publish(&c, Publication::new("1"), &keyed("k"))
        .await
        .unwrap();
    assert!(!later.duplicate);
    assert_eq!(later.position.offset, 2);
    // And is remembered anew.
    let dup = f
        .store
        .publish(&c, Publication::new("1"), &keyed("k"))
        .await
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.position.offset, 2);
}

#[tokio::test]
async fn a_duplicate_issued_before_the_first_commits_waits_for_it() {
    let f = Fixture::new();
    let c = ch("c");
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..opts(10, 600)
    };
    let first = f.store.publish(&c, Publication::new("1"), &keyed);
    let again = f.store.publish(&c, Publication::new("1"), &keyed);
    let again = again.await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position.offset, 1);
    // The duplicate answered only after the first was committed.
    assert_eq!(f.count("SELECT count(*) FROM publications"), 1);
    assert!(!first.await.unwrap().duplicate);
}

#[tokio::test]
async fn idempotency_without_history() {
    let f = Fixture::new();
    let c = ch("c");
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    let first = f
        .store
        .publish(&c, Publication::new("1"), &keyed)
        .await
        .unwrap();
    let again = f
        .store
        .publish(&c, Publication::new("1"), &keyed)
        .await
        .unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert!(again.position.is_zero());
    assert_eq!(again.publication.offset, 0);
    assert_eq!(f.count("SELECT count(*) FROM streams"), 0, "no stream made");
}

#[tokio::test]
async fn huge_ttls_do_not_overflow() {
    let f = Fixture::new();
    let o = PublishOptions {
        history_meta_ttl: Some(Duration::MAX),
        idempotency_key: Some("k".into()),
        ..PublishOptions::with_history(usize::MAX, Duration::MAX)
    };
    let r = f
        .store
        .publish(&ch("c"), Publication::new("1"), &o)
        .await
        .unwrap();
    assert_eq!(r.position.offset, 1);
    f.advance(20 * 365 * 86_400);
    assert_eq!(f.store.position(&ch("c")).await.unwrap().offset, 1);
}

#[tokio::test]
async fn every_publication_field_round_trips() {
    let f = Fixture::new();
    let c = ch("c");
    let time = std::time::UNIX_EPOCH + Duration::new(1_700_000_123, 456_789_012);
    let mut tags = BTreeMap::new();
    tags.insert("kind".to_string(), "greeting".to_string());
    tags.insert("ünï".to_string(), "\"quoted\"\n".to_string());
    let full = Publication {
        offset: 999, // replaced by the store
        data: Bytes::from_static(b"{\"text\":\"hi\",\"bin\":\"\\u0000\"}"),
        info: Some(ClientInfo {
            user: "42".into(),
            client: "c-1".into(),
            conn_info: Some(Bytes::from_static(b"{\"name\":\"Ann\"}")),
            chan_info: Some(Bytes::from_static(b"[1,2]")),
        }),
        tags,
        time,
    };
    let bare = Publication {
        offset: 0,
        data: Bytes::new(),
        info: Some(ClientInfo {
            user: "".into(),
            client: "".into(),
            conn_info: Some(Bytes::new()),
            chan_info: None,
        }),
        tags: BTreeMap::new(),
        time: std::time::UNIX_EPOCH - Duration::from_nanos(1),
    };
    let none = Publication {
        info: None,
        ..Publication::new("null")
    };
    let mut expected = Vec::new();
    for p in [full, bare, none] {
        let r = f.store.publish(&c, p.clone(), &opts(10, 60)).await.unwrap();
        let mut stored = p;
        stored.offset = r.position.offset;
        assert_eq!(r.publication, stored, "the answer carries the publication");
        expected.push(stored);
    }
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(r.publications, expected);
}

#[tokio::test]
async fn reads_see_publishes_not_yet_awaited() {
    // A long batch delay: the read must not see a stale database.
    let f = Fixture::with(|c| c.batch_max_delay(Duration::from_millis(50)));
    let c = ch("c");
    let pending: Vec<_> = (0..5)
        .map(|i| {
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(10, 60))
        })
        .collect();
    let r = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(r.position.offset, 5);
    assert_eq!(r.publications.len(), 5);
    for p in pending {
        p.await.unwrap();
    }
}

#[tokio::test]
async fn cleanup_deletes_expired_rows_and_forgets_idle_channels() {
    let f = Fixture::with(|c| {
        c.history_meta_ttl(Duration::from_secs(100))
            .idempotency_ttl(Duration::from_secs(10))
            .cache_idle_ttl(Duration::from_secs(30))
    });
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    f.store
        .publish(&ch("a"), Publication::new("1"), &opts(10, 10))
        .await
        .unwrap();
    f.store
        .publish(&ch("b"), Publication::new("1"), &keyed)
        .await
        .unwrap();
    let long = f
        .store
        .publish(&ch("long"), Publication::new("1"), &opts(10, 1000))
        .await
        .unwrap();
    assert_eq!(f.store.cached_channels(), 3);
    assert_eq!(f.count("SELECT count(*) FROM idempotency"), 1);

    f.advance(11);
    let stats = f.store.cleanup().await.unwrap();
    assert_eq!((stats.keys, stats.publications), (1, 1));
    assert_eq!(f.count("SELECT count(*) FROM idempotency"), 0);
    assert_eq!(f.count("SELECT count(*) FROM publications"), 1);
    assert_eq!(stats.evicted, 0, "nothing idle yet");

    f.advance(30);
    let stats = f.store.cleanup().await.unwrap();
    assert_eq!(stats.evicted, 3, "idle channels leave the cache");
    assert_eq!(f.store.cached_channels(), 0);
    // An evicted channel comes back from the database unchanged.
    assert_eq!(f.store.position(&ch("long")).await.unwrap(), long.position);

    f.advance(80);
    let stats = f.store.cleanup().await.unwrap();
    assert_eq!(stats.streams, 1, "a's stream expired; long was read later");
    assert_eq!(f.count("SELECT count(*) FROM streams"), 1);
    f.advance(100);
    let stats = f.store.cleanup().await.unwrap();
    assert_eq!(stats.streams, 1);
    assert_eq!(f.count("SELECT count(*) FROM streams"), 0);
    assert_eq!(f.count("SELECT count(*) FROM publications"), 0);
}

#[tokio::test]
async fn periodic_cleanup_runs_on_its_own() {
    let f = Fixture::with(|c| {
        c.cleanup_interval(Duration::from_millis(20))
            .idempotency_ttl(Duration::from_secs(1))
    });
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    f.store
        .publish(&ch("b"), Publication::new("1"), &keyed)
        .await
        .unwrap();
    assert_eq!(f.count("SELECT count(*) FROM idempotency"), 1);
    f.advance(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.count("SELECT count(*) FROM idempotency") != 0 {
        assert!(std::time::Instant::now() < deadline, "no cleanup ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn behaves_like_the_memory_store_on_a_mixed_script() {
    // The same calls on both stores give the same offsets, positions
    // (up to epoch names) and histories.
    let f = Fixture::new();
    let memory = MemoryStore::new();
    let channels = [ch("x"), ch("y")];
    let mut log_sql = Vec::new();
    let mut log_mem = Vec::new();
    for step in 0..60u64 {
        let c = &channels[(step % 2) as usize];
        let o = PublishOptions {
            idempotency_key: (step % 7 == 0).then(|| format!("k{}", step % 14)),
            ..opts(1 + (step % 5) as usize, 60)
        };
        let a = f
            .store
            .publish(c, Publication::new(format!("{step}")), &o)
            .await
            .unwrap();
        let b = memory
            .publish(c, Publication::new(format!("{step}")), &o)
            .await
            .unwrap();
        log_sql.push((a.position.offset, a.duplicate));
        log_mem.push((b.position.offset, b.duplicate));
        if step % 11 == 0 {
            f.store.remove_history(c).await.unwrap();
            memory.remove_history(c).await.unwrap();
        }
        let filter = HistoryFilter {
            since: Some(StreamPosition::new(step / 3, "")),
            limit: Some(3),
            reverse: step % 2 == 0,
        };
        assert_eq!(
            offsets(&f.store, c, filter.clone()).await,
            offsets(&memory, c, filter).await,
            "step {step}"
        );
    }
    assert_eq!(log_sql, log_mem);
    for c in &channels {
        assert_eq!(datas(&f.store, c).await, datas(&memory, c).await);
    }
}
