//! The fan-out and storm scenarios end to end against a minimal in-process
//! server ([`common`]).

mod common;
mod ws_server;

use std::time::Duration;

use common::start_server;
use duplex_bench::fanout::{self, FanoutOptions, PublisherSpec};
use duplex_bench::storm::{self, StormOptions};
use duplex_bench::subscriber::{SubKind, SubscribeSpec};
use duplex_bench::target::Target;

async fn spec(addr: &str) -> SubscribeSpec {
    SubscribeSpec {
        kind: SubKind::Ws,
        target: Target::resolve(&format!("ws://{addr}/connection/websocket"))
            .await
            .unwrap(),
        channel: "bench".to_owned(),
        token_secret: Some("secret".to_owned()),
        read_buf: 4096,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_counts_every_delivery() {
    let (addr, _) = start_server().await;
    let subscribers = 20;
    let opts = FanoutOptions {
        subscribe: spec(&addr).await,
        publisher: PublisherSpec::Api {
            target: duplex_bench::http::resolve(&format!("http://{addr}"))
                .await
                .unwrap(),
            api_key: "k".to_owned(),
        },
        subscribers,
        size: 100,
        rate: 0.0,
        window: 4,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(200),
        server_pid: Some(std::process::id()),
        ramp_concurrency: 10,
        label: Some("fake".to_owned()),
    };
    let r = fanout::run(&opts).await.unwrap();
    assert_eq!(r.scenario, "fanout");
    assert!(r.publications > 10, "{r:?}");
    // Every publication of the window reaches every subscriber, give or
    // take the ones in flight at its edges.
    let expected = r.publications * subscribers as u64;
    let slack = 2 * opts.window * subscribers as u64;
    assert!(
        r.deliveries + slack >= expected && r.deliveries <= expected + slack,
        "{r:?}"
    );
    let (p50, p99, max) = (r.p50_us.unwrap(), r.p99_us.unwrap(), r.max_us.unwrap());
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max * 1.07, "{r:?}");
    assert!(r.cdf_us.len() > 50 && r.cdf_us.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(r.deliveries_per_server_cpu_sec.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_paces_to_the_rate() {
    let (addr, _) = start_server().await;
    let opts = FanoutOptions {
        subscribe: spec(&addr).await,
        publisher: PublisherSpec::Api {
            target: duplex_bench::http::resolve(&format!("http://{addr}"))
                .await
                .unwrap(),
            api_key: "k".to_owned(),
        },
        subscribers: 5,
        size: 64,
        rate: 40.0,
        window: 8,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        server_pid: None,
        ramp_concurrency: 5,
        label: None,
    };
    let r = fanout::run(&opts).await.unwrap();
    assert!((30..=50).contains(&r.publications), "{r:?}");
    assert!(r.server_cpu_seconds.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_opens_every_client() {
    let (addr, _) = start_server().await;
    let opts = StormOptions {
        subscribe: spec(&addr).await,
        connections: 50,
        concurrency: 0,
        recover: None,
        server_pid: Some(std::process::id()),
        label: None,
    };
    let r = storm::run(&opts).await.unwrap();
    assert_eq!((r.completed, r.failed), (50, 0), "{r:?}");
    assert!(r.per_sec > 0.0 && r.p50_ms.unwrap() <= r.max_ms.unwrap() * 1.07);

    // A server that is not there (port 1; not a released ephemeral port,
    // which another test's server may be given): every client fails, none
    // panics.
    let dead = "127.0.0.1:1".to_owned();
    let r = storm::run(&StormOptions {
        subscribe: spec(&dead).await,
        connections: 5,
        ..opts
    })
    .await
    .unwrap();
    assert_eq!((r.completed, r.failed), (0, 5), "{r:?}");
    assert!(r.first_error.is_some());
}
