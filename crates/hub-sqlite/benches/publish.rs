//! Publish throughput of the SQLite store against the in-memory store, and
//! against itself committing one transaction per publish
//! (`batch_max_size = 1`), to show what batching buys.
//!
//! Three shapes of load, all with history on (size 100, TTL 5 min) over 10
//! channels and a 100-byte JSON payload:
//! - `burst`: 1000 publishes issued at once, then awaited (what many
//!   clients publishing at the same moment look like to the store);
//! - `clients`: 64 tasks, each publishing 16 times and awaiting each one
//!   before the next (closed loop, like API clients);
//! - `sequential`: one publish awaited at a time (the latency of a lone
//!   publisher).
//!
//! Run: `cargo bench -p duplex-hub-sqlite -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use hub::{ChannelName, MemoryStore, Publication, PublishOptions, Store};
use hub_sqlite::{SqliteStore, SqliteStoreConfig};

const CHANNELS: usize = 10;
const BURST: usize = 1000;
const CLIENTS: usize = 64;
const PER_CLIENT: usize = 16;

struct Setup {
    channels: Vec<ChannelName>,
    opts: PublishOptions,
    payload: Bytes,
}

impl Setup {
    fn publication(&self) -> Publication {
        Publication::new(self.payload.clone())
    }
}

fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let open = |name: &str, config: SqliteStoreConfig| -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(dir.join(name), config).unwrap())
    };
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "sqlite_batched",
            open("batched.db", SqliteStoreConfig::default()),
        ),
        (
            "sqlite_batched_delay_2ms",
            open(
                "delay.db",
                SqliteStoreConfig::default().batch_max_delay(Duration::from_millis(2)),
            ),
        ),
        (
            "sqlite_per_publish",
            open("single.db", SqliteStoreConfig::default().batch_max_size(1)),
        ),
    ]
}

fn publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path());
    let setup = Arc::new(Setup {
        channels: (0..CHANNELS)
            .map(|i| ChannelName::new(format!("bench:{i}")).unwrap())
            .collect(),
        opts: PublishOptions::with_history(100, Duration::from_secs(300)),
        payload: Bytes::from(format!("{{\"text\":\"{}\"}}", "x".repeat(89))),
    });
    assert_eq!(setup.payload.len(), 100);

    let mut group = c.benchmark_group("burst");
    group.throughput(Throughput::Elements(BURST as u64));
    for (name, store) in &stores {
        group.bench_with_input(BenchmarkId::from_parameter(name), store, |b, store| {
            b.iter(|| {
                rt.block_on(async {
                    let pending: Vec<_> = (0..BURST)
                        .map(|i| {
                            store.publish(
                                &setup.channels[i % CHANNELS],
                                setup.publication(),
                                &setup.opts,
                            )
                        })
                        .collect();
                    for p in pending {
                        p.await.unwrap();
                    }
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("clients");
    group.throughput(Throughput::Elements((CLIENTS * PER_CLIENT) as u64));
    for (name, store) in &stores {
        group.bench_with_input(BenchmarkId::from_parameter(name), store, |b, store| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..CLIENTS)
                        .map(|client| {
                            let store = store.clone();
                            let setup = setup.clone();
                            tokio::spawn(async move {
                                let channel = &setup.channels[client % CHANNELS];
                                for _ in 0..PER_CLIENT {
                                    store
                                        .publish(channel, setup.publication(), &setup.opts)
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sequential");
    group.throughput(Throughput::Elements(1));
    for (name, store) in &stores {
        group.bench_with_input(BenchmarkId::from_parameter(name), store, |b, store| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                rt.block_on(store.publish(
                    &setup.channels[i % CHANNELS],
                    setup.publication(),
                    &setup.opts,
                ))
                .unwrap()
            })
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!` + `criterion_main!` expand to, written out so
    // that no undocumented `pub fn` is generated (the workspace warns).
    let mut c = Criterion::default().configure_from_args();
    publish(&mut c);
    c.final_summary();
}
