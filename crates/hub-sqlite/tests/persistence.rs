//! What the database adds: streams survive a restart, batched writes keep
//! per-channel order under concurrency, writes finish when their futures
//! are dropped, flush commits, failed writes reset their streams, and open
//! errors are reported clearly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ch, config, datas, offsets, opts, Fixture};
use hub::{
    HistoryFilter, Hub, NamespaceOptions, Namespaces, Publication, PublishOptions, PublishRequest,
    Store, StreamPosition,
};
use hub_sqlite::{Clock, OpenError, SqliteStore, SqliteStoreConfig, StoreError, SCHEMA_VERSION};

#[tokio::test]
async fn restart_keeps_epochs_offsets_and_history() {
    let mut f = Fixture::new();
    let (a, b) = (ch("a"), ch("b"));
    let mut last = None;
    for i in 1..=5 {
        last = Some(
            f.store
                .publish(&a, Publication::new(format!("a{i}")), &opts(3, 600))
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    // b only had its position read: its epoch was handed out, so it must
    // survive as well.
    let b_pos = f.store.position(&b).await.unwrap();

    f.reopen();

    assert_eq!(f.store.position(&a).await.unwrap(), last.position);
    assert_eq!(f.store.position(&b).await.unwrap(), b_pos);
    let h = f.store.history(&a, HistoryFilter::default()).await.unwrap();
    assert_eq!(h.position, last.position);
    assert_eq!(datas(&f.store, &a).await, ["a3", "a4", "a5"]);
    let next = f
        .store
        .publish(&a, Publication::new("a6"), &opts(3, 600))
        .await
        .unwrap();
    assert_eq!(
        next.position,
        StreamPosition::new(6, last.position.epoch.clone())
    );
    assert_eq!(datas(&f.store, &a).await, ["a4", "a5", "a6"]);
    let nb = f
        .store
        .publish(&b, Publication::new("b1"), &opts(3, 600))
        .await
        .unwrap();
    assert_eq!(nb.position, StreamPosition::new(1, b_pos.epoch));
}

#[tokio::test]
async fn restart_keeps_idempotency_keys_and_ttls() {
    let mut f = Fixture::new();
    let c = ch("c");
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..opts(10, 100)
    };
    let first = f
        .store
        .publish(&c, Publication::new("1"), &keyed)
        .await
        .unwrap();
    f.reopen();
    let again = f
        .store
        .publish(&c, Publication::new("1"), &keyed)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    // The publication's TTL kept running while the store was closed.
    f.reopen();
    f.advance(101);
    let h = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert!(h.publications.is_empty());
    assert_eq!(h.position, first.position);
}

#[tokio::test]
async fn a_stream_that_expired_while_closed_gets_a_new_epoch() {
    let mut f = Fixture::with(|c| c.history_meta_ttl(Duration::from_secs(100)));
    let c = ch("c");
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 1000))
        .await
        .unwrap();
    f.reopen_with(|c| c.history_meta_ttl(Duration::from_secs(100)));
    f.advance(101);
    let r = f
        .store
        .publish(&c, Publication::new("2"), &opts(10, 1000))
        .await
        .unwrap();
    assert_eq!(r.position.offset, 1);
    assert_ne!(r.position.epoch, first.position.epoch);
    assert_eq!(datas(&f.store, &c).await, ["2"]);
}

#[tokio::test]
async fn a_read_keeps_the_stream_alive_across_a_restart() {
    let mut f = Fixture::with(|c| c.history_meta_ttl(Duration::from_secs(100)));
    let c = ch("c");
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 1000))
        .await
        .unwrap();
    f.advance(90);
    // This read extends the meta expiry by 90 s: enough to be written.
    f.store.position(&c).await.unwrap();
    f.reopen_with(|c| c.history_meta_ttl(Duration::from_secs(100)));
    f.advance(50);
    assert_eq!(f.store.position(&c).await.unwrap(), first.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_keep_per_channel_order() {
    let f = Fixture::new();
    let store = Arc::new(f.store.clone());
    let shared = ch("shared");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = ch(&format!("own-{t}"));
            let mut answers = Vec::new();
            for i in 0..200u64 {
                let data = format!("{t}:{i}");
                let r = store
                    .publish(&own, Publication::new(data.clone()), &opts(1000, 600))
                    .await
                    .unwrap();
                assert_eq!(r.position.offset, i + 1);
                // Several calls in flight on the shared channel at once.
                answers.push(store.publish(&shared, Publication::new(data), &opts(10_000, 600)));
                if answers.len() == 4 {
                    for a in answers.drain(..) {
                        a.await.unwrap();
                    }
                }
            }
            for a in answers {
                a.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for t in 0..8 {
        let own = ch(&format!("own-{t}"));
        let expected: Vec<String> = (0..200).map(|i| format!("{t}:{i}")).collect();
        assert_eq!(datas(&*store, &own).await, expected);
    }
    let h = store
        .history(&shared, HistoryFilter::default())
        .await
        .unwrap();
    let offsets: Vec<u64> = h.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (1..=1600).collect::<Vec<u64>>(), "contiguous");
    // Each task's publications appear in the order it made them.
    for t in 0..8 {
        let prefix = format!("{t}:");
        let mine: Vec<u64> = h
            .publications
            .iter()
            .filter_map(|p| {
                let s = std::str::from_utf8(&p.data).unwrap();
                s.strip_prefix(&prefix).map(|i| i.parse().unwrap())
            })
            .collect();
        assert_eq!(mine, (0..200).collect::<Vec<u64>>());
    }
}

#[tokio::test]
async fn offsets_follow_call_order_not_completion_order() {
    let f = Fixture::new();
    let c = ch("c");
    let futures: Vec<_> = (0..50)
        .map(|i| {
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(100, 60))
        })
        .collect();
    // Awaited backwards.
    let mut got = Vec::new();
    for fut in futures.into_iter().rev() {
        got.push(fut.await.unwrap().position.offset);
    }
    got.reverse();
    assert_eq!(got, (1..=50).collect::<Vec<u64>>());
}

#[tokio::test]
async fn dropped_futures_still_commit() {
    let mut f = Fixture::new();
    let c = ch("c");
    for i in 0..100 {
        drop(
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(1000, 600)),
        );
    }
    drop(f.store.remove_history(&ch("other")));
    f.store.flush().await.unwrap();
    assert_eq!(f.count("SELECT count(*) FROM publications"), 100);
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(datas(&f.store, &c).await, expected);
    // And without a flush: dropping the store waits for the writer.
    for i in 100..110 {
        drop(
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(1000, 600)),
        );
    }
    f.reopen();
    assert_eq!(
        f.store.position(&c).await.unwrap().offset,
        110,
        "all committed before the reopen"
    );
    assert_eq!(f.count("SELECT count(*) FROM publications"), 110);
}

#[tokio::test]
async fn flush_commits_everything_accepted() {
    // A long batch delay would otherwise keep writes waiting.
    let f = Fixture::with(|c| c.batch_max_delay(Duration::from_secs(30)));
    let c = ch("c");
    let pending: Vec<_> = (0..20)
        .map(|i| {
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(100, 60))
        })
        .collect();
    let started = std::time::Instant::now();
    f.store.flush().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "flush cut the delay short"
    );
    assert_eq!(
        f.count("SELECT count(*) FROM publications"),
        20,
        "committed, as another connection sees"
    );
    assert_eq!(f.count("SELECT top FROM streams"), 20);
    for p in pending {
        p.await.unwrap();
    }
}

#[tokio::test]
async fn batch_size_one_commits_each_publish_alone() {
    let f = Fixture::with(|c| c.batch_max_size(1));
    let c = ch("c");
    let pending: Vec<_> = (0..30)
        .map(|i| {
            f.store
                .publish(&c, Publication::new(format!("{i}")), &opts(10, 60))
        })
        .collect();
    for p in pending {
        p.await.unwrap();
    }
    assert_eq!(
        offsets(&f.store, &c, HistoryFilter::default()).await,
        (21..=30).collect::<Vec<u64>>()
    );
}

/// The store error inside a hub error.
fn store_error(err: &hub::Error) -> &StoreError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<StoreError>())
        .unwrap_or_else(|| panic!("no store error in {err:?}"))
}

#[tokio::test]
async fn a_failed_batch_resets_the_stream_instead_of_leaving_a_hole() {
    // One publish per batch, so the second publish is still queued when
    // the first one's batch fails.
    let tune = |c: SqliteStoreConfig| c.busy_timeout(Duration::from_millis(300)).batch_max_size(1);
    let mut f = Fixture::with(tune);
    let c = ch("c");
    let keyed = |k: &str| PublishOptions {
        idempotency_key: Some(k.into()),
        ..opts(10, 600)
    };
    let first = f
        .store
        .publish(&c, Publication::new("1"), &opts(10, 600))
        .await
        .unwrap();

    // Another connection holds the write lock: the writer's batch fails.
    let blocker = f.raw();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let failed = f.store.publish(&c, Publication::new("2"), &keyed("k"));
    let queued_behind = f.store.publish(&c, Publication::new("3"), &opts(10, 600));
    let err = failed.await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(
        matches!(store_error(&err), StoreError::WriteFailed(_)),
        "{err:?}"
    );

    // The offsets handed out for 2 and 3 never existed: a new epoch.
    let pos = f.store.position(&c).await.unwrap();
    assert_ne!(pos.epoch, first.position.epoch);
    assert_eq!(pos.offset, 0);
    blocker.execute_batch("ROLLBACK").unwrap();

    // 3 was queued for the lost stream: refused, not written with a hole
    // before it.
    let err = queued_behind.await.unwrap_err();
    assert!(
        matches!(store_error(&err), StoreError::StreamReset),
        "{err:?}"
    );

    // The key of the failed publish is free again.
    let retried = f
        .store
        .publish(&c, Publication::new("2"), &keyed("k"))
        .await
        .unwrap();
    assert!(!retried.duplicate);
    assert_eq!(retried.position, StreamPosition::new(1, pos.epoch.clone()));
    let h = f.store.history(&c, HistoryFilter::default()).await.unwrap();
    assert_eq!(h.position, retried.position);
    assert_eq!(datas(&f.store, &c).await, ["2"]);
    f.reopen_with(tune);
    assert_eq!(f.store.position(&c).await.unwrap(), retried.position);
    assert_eq!(datas(&f.store, &c).await, ["2"]);
}

#[tokio::test]
async fn open_creates_directories_and_reports_problems() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let nested = dir.path().join("a/b/c/store.db");
    let store = SqliteStore::open(&nested, config(&clock)).unwrap();
    assert_eq!(store.path(), nested);
    drop(store);
    #[cfg(unix)]
    for folder in ["a", "a/b", "a/b/c"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(folder))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{folder} is the owner's only");
    }
    let mode: String = rusqlite::Connection::open(&nested)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = rusqlite::Connection::open(&nested)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    // A newer schema is refused.
    let newer = dir.path().join("newer.db");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    match SqliteStore::open(&newer, config(&clock)) {
        Err(OpenError::UnsupportedSchema {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, SCHEMA_VERSION)),
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }

    // Not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&junk, config(&clock)).unwrap_err();
    assert!(
        matches!(err, OpenError::Setup { .. } | OpenError::Open { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("junk.db"), "{err}");

    // A directory where the file's parent should be.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"").unwrap();
    let err = SqliteStore::open(blocked.join("store.db"), config(&clock)).unwrap_err();
    assert!(matches!(err, OpenError::CreateDir { .. }), "{err:?}");

    let err = SqliteStore::open(
        dir.path().join("x.db"),
        SqliteStoreConfig::default().readers(0),
    )
    .unwrap_err();
    assert!(matches!(err, OpenError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn a_hub_on_sqlite_recovers_clients_across_a_restart() {
    let mut f = Fixture::new();
    let namespaces = || {
        Namespaces::with_default(NamespaceOptions {
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            ..Default::default()
        })
        .unwrap()
    };
    let c = ch("news");
    let seen = {
        let hub = Hub::builder(namespaces())
            .store(Arc::new(f.store.clone()))
            .build();
        hub.publish(&c, PublishRequest::new("1")).await.unwrap();
        hub.position(&c).await.unwrap()
    };
    {
        let hub = Hub::builder(namespaces())
            .store(Arc::new(f.store.clone()))
            .build();
        hub.publish(&c, PublishRequest::new("2")).await.unwrap();
        hub.publish(&c, PublishRequest::new("3")).await.unwrap();
        hub.flush().await.unwrap();
    }
    f.reopen();
    let hub = Hub::builder(namespaces())
        .store(Arc::new(f.store.clone()))
        .build();
    let recovery = hub.recover(&c, &seen).await.unwrap();
    assert!(recovery.recovered);
    let data: Vec<_> = recovery
        .publications
        .iter()
        .map(|p| p.data.clone())
        .collect();
    assert_eq!(data, ["2", "3"]);
    assert_eq!(recovery.position.epoch, seen.epoch);
}
