//! `--processes N`: the `duplex-bench` binary itself, spreading fan-out,
//! sub-idle and storm connections over two client processes, against the
//! in-process server of [`common`] (whose subscriber list shows every
//! connection of every process). The merged result lines must count the
//! connections and deliveries of both processes.

mod common;
mod ws_server;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::start_server;
use serde_json::Value;

/// Runs `duplex-bench ARGS` (off the runtime, so the in-process server
/// keeps serving) and returns its output.
async fn bench(args: Vec<String>) -> Output {
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_duplex-bench"))
            .args(&args)
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("duplex-bench timed out")
        .unwrap()
}

/// The result lines of a run that must succeed.
async fn lines(args: &[&str]) -> Vec<Value> {
    let out = bench(args.iter().map(|&a| a.to_owned()).collect()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// `fanout --subscribers N` against `addr`, with `extra` arguments first.
fn fanout_args(addr: &str, subscribers: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra.iter().map(|&a| a.to_owned()).collect();
    args.extend(
        [
            "fanout",
            "--subscriber",
            "ws",
            "--url",
            &format!("ws://{addr}/connection/websocket"),
            "--api-url",
            &format!("http://{addr}"),
            "--api-key",
            "k",
            "--token-secret",
            "s",
            "--subscribers",
            &subscribers.to_string(),
            "--window",
            "4",
            "--duration",
            "0.6",
            "--warmup",
            "0.2",
            "--ramp",
            "8",
            "--server-pid",
            &std::process::id().to_string(),
        ]
        .map(str::to_owned),
    );
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_merges_both_processes() {
    let (addr, subs) = start_server().await;
    let subscribers = 21;
    let args = fanout_args(&addr, subscribers, &["--processes", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lines(&args).await;
    assert_eq!(out.len(), 1, "{out:?}");
    let r = &out[0];
    // Every subscriber of both processes subscribed once.
    assert_eq!(subs.lock().unwrap().len(), subscribers);
    assert_eq!(r["scenario"], "fanout");
    assert_eq!(u(r, "processes"), 2);
    assert_eq!(u(r, "subscribers"), subscribers as u64);
    let publications = u(r, "publications");
    assert!(publications > 10, "{r}");
    // Every publication of the window reaches every subscriber of both
    // processes, give or take the ones in flight at its edges; one
    // process's deliveries alone would be about half.
    let expected = publications * subscribers as u64;
    let slack = 2 * 4 * subscribers as u64;
    let deliveries = u(r, "deliveries");
    assert!(
        deliveries + slack >= expected && deliveries <= expected + slack,
        "{deliveries} deliveries for {expected}: {r}"
    );
    let (p50, p99, max) = (f(r, "p50_us"), f(r, "p99_us"), f(r, "max_us"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max * 1.07, "{r}");
    let cdf = r["cdf_us"].as_array().unwrap();
    assert!(cdf.len() > 50, "{r}");
    assert!(f(r, "client_cpu_seconds") >= 0.0);
    assert!(f(r, "deliveries_per_server_cpu_sec") > 0.0);

    // One process: the same fields, without `processes`.
    let (addr, _) = start_server().await;
    let args = fanout_args(&addr, 3, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let one = lines(&args).await;
    let mut with = keys(&one[0]);
    assert!(!with.contains("processes"));
    with.insert("processes".to_owned());
    assert_eq!(with, keys(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_idle_steps_add_up() {
    let (addr, subs) = start_server().await;
    let url = format!("ws://{addr}/connection/websocket");
    let pid = std::process::id().to_string();
    let out = lines(&[
        "--processes",
        "2",
        "sub-idle",
        "--subscriber",
        "ws",
        "--url",
        &url,
        "--token-secret",
        "s",
        "--connections",
        "7,30",
        "--settle",
        "0",
        "--server-pid",
        &pid,
    ])
    .await;
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(subs.lock().unwrap().len(), 30);
    for (r, (connections, from)) in out.iter().zip([(7, 0), (30, 7)]) {
        assert_eq!(r["scenario"], "sub-idle");
        assert_eq!(u(r, "processes"), 2);
        assert_eq!(u(r, "connections"), connections, "{r}");
        assert_eq!(u(r, "slope_from_connections"), from, "{r}");
        assert_eq!(u(r, "dropped"), 0, "{r}");
        assert!(u(r, "rss_after_kib") > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_counts_both_processes() {
    let (addr, subs) = start_server().await;
    let url = format!("ws://{addr}/connection/websocket");
    let out = lines(&[
        "--processes",
        "2",
        "storm",
        "--subscriber",
        "ws",
        "--url",
        &url,
        "--token-secret",
        "s",
        "--connections",
        "25",
        "--concurrency",
        "5",
    ])
    .await;
    let r = &out[0];
    assert_eq!(subs.lock().unwrap().len(), 25);
    assert_eq!((u(r, "completed"), u(r, "failed")), (25, 0), "{r}");
    assert_eq!(u(r, "processes"), 2);
    // 5 connects in flight, shared out: 3 per process.
    assert_eq!(u(r, "concurrency"), 5);
    assert!(f(r, "p50_ms") <= f(r, "max_ms") * 1.07, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_process_fails_the_run() {
    // Nothing listens on port 1: the children cannot open their
    // subscribers. (Not a port taken and released: a test running beside
    // this one may be given it for its own server, and would then count
    // these subscribers as its own.)
    let dead = "127.0.0.1:1".to_owned();
    let (api, _) = start_server().await;
    let mut args = fanout_args(&dead, 4, &["--processes", "2"]);
    let api_url = args.iter().position(|a| a == "--api-url").unwrap() + 1;
    args[api_url] = format!("http://{api}");
    let out = bench(args).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("client process"), "{stderr}");

    // And --processes is refused where it is not supported.
    let out = bench(
        ["--processes", "2", "echo", "--url", "ws://127.0.0.1:1/"]
            .map(str::to_owned)
            .to_vec(),
    )
    .await;
    assert!(!out.status.success());
}
