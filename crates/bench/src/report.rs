//! Markdown tables from the JSON lines the scenarios print.
//!
//! `bench/run-echo.sh` collects every result line of a run into one
//! `.jsonl` file; [`render`] turns it into the tables of
//! `docs/benchmarks.md`: messages per server CPU-second for each server,
//! the ratios of duplex to each peer, a detail table (wall-clock rate,
//! latency, the server's user and kernel time per message, CPU use of both
//! sides) and the idle-memory table. When a cell
//! was measured several times the median is shown. Lines the script wrote
//! for failed runs (`"error": ...`) show up as "failed".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Deserialize;

/// The server whose ratios to the others are shown.
const OURS: &str = "duplex";
/// Column order for the servers of the comparison; others follow.
const KNOWN: [&str; 3] = ["duplex", "fastwebsockets", "tokio-tungstenite"];

/// One line of a results file (fields of both scenarios, all optional).
#[derive(Debug, Deserialize)]
struct Line {
    scenario: String,
    server: Option<String>,
    connections: Option<usize>,
    size: Option<usize>,
    seconds: Option<f64>,
    messages: Option<u64>,
    server_cpu_seconds: Option<f64>,
    server_user_seconds: Option<f64>,
    msgs_per_server_cpu_sec: Option<f64>,
    msgs_per_sec: Option<f64>,
    client_cpu_seconds: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    kib_per_connection: Option<f64>,
    slope_kib_per_connection: Option<f64>,
    error: Option<String>,
    // The run's "meta" line, written by bench/run-echo.sh.
    date: Option<String>,
    kernel: Option<String>,
    cpu: Option<String>,
    cores: Option<u32>,
    loadavg: Option<String>,
    fastwebsockets: Option<String>,
    tokio_tungstenite: Option<String>,
    duration: Option<f64>,
    warmup: Option<f64>,
}

/// Every measurement of one echo cell for one server.
#[derive(Debug, Default)]
struct Cell {
    per_cpu: Vec<f64>,
    per_sec: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    server_util: Vec<f64>,
    client_util: Vec<f64>,
    /// Server user-space and kernel CPU per message, in microseconds.
    user_us: Vec<f64>,
    kernel_us: Vec<f64>,
    failures: usize,
}

/// Renders the markdown tables for the JSON lines in `jsonl`.
pub fn render(jsonl: &str) -> Result<String> {
    let mut servers: Vec<String> = Vec::new();
    // (size, connections) -> server -> cell
    let mut echo: BTreeMap<(usize, usize), BTreeMap<String, Cell>> = BTreeMap::new();
    let mut idle: Vec<Line> = Vec::new();
    let mut meta: Option<Line> = None;
    for line in crate::output::read_lines::<Line>(jsonl)? {
        if line.scenario == "meta" {
            meta = Some(line);
            continue;
        }
        let server = line.server.clone().unwrap_or_else(|| "?".to_owned());
        if !servers.contains(&server) {
            servers.push(server.clone());
        }
        match line.scenario.as_str() {
            "echo" => {
                let key = (line.size.unwrap_or(0), line.connections.unwrap_or(0));
                let cell = echo.entry(key).or_default().entry(server).or_default();
                if line.error.is_some() {
                    cell.failures += 1;
                    continue;
                }
                let seconds = line.seconds.unwrap_or(0.0);
                push(&mut cell.per_cpu, line.msgs_per_server_cpu_sec);
                push(&mut cell.per_sec, line.msgs_per_sec);
                push(&mut cell.p50, line.p50_us);
                push(&mut cell.p99, line.p99_us);
                if let (Some(n), Some(cpu), Some(user)) = (
                    line.messages.filter(|&n| n > 0),
                    line.server_cpu_seconds,
                    line.server_user_seconds,
                ) {
                    let per_msg_us = |secs: f64| Some(secs / n as f64 * 1e6);
                    push(&mut cell.user_us, per_msg_us(user));
                    push(&mut cell.kernel_us, per_msg_us(cpu - user));
                }
                if seconds > 0.0 {
                    push(
                        &mut cell.server_util,
                        line.server_cpu_seconds.map(|c| c / seconds),
                    );
                    push(
                        &mut cell.client_util,
                        line.client_cpu_seconds.map(|c| c / seconds),
                    );
                }
            }
            "idle" => idle.push(line),
            _ => {}
        }
    }
    servers.sort_by_key(|s| KNOWN.iter().position(|k| k == s).unwrap_or(KNOWN.len()));

    let mut out = String::new();
    if let Some(meta) = &meta {
        write_meta(&mut out, meta)?;
    }
    if !echo.is_empty() {
        write_echo_tables(&mut out, &servers, &echo)?;
    }
    if !idle.is_empty() {
        write_idle_table(&mut out, &servers, &idle)?;
    }
    Ok(out)
}

fn write_meta(out: &mut String, m: &Line) -> Result<()> {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    writeln!(
        out,
        "Run {} on {} ({} cores, Linux {}, load average {} at the start); \
         fastwebsockets {}, tokio-tungstenite {}; {} s measured after {} s of warm-up per cell.\n",
        m.date.as_deref().map_or("?".to_owned(), fmt_date),
        text(&m.cpu),
        m.cores.map_or("?".to_owned(), |c| c.to_string()),
        text(&m.kernel),
        text(&m.loadavg),
        text(&m.fastwebsockets),
        text(&m.tokio_tungstenite),
        m.duration.map_or("?".to_owned(), |d| d.to_string()),
        m.warmup.map_or("?".to_owned(), |w| w.to_string()),
    )?;
    Ok(())
}

fn write_echo_tables(
    out: &mut String,
    servers: &[String],
    echo: &BTreeMap<(usize, usize), BTreeMap<String, Cell>>,
) -> Result<()> {
    let peers: Vec<&String> = servers.iter().filter(|s| *s != OURS).collect();
    let ours_present = servers.iter().any(|s| s == OURS);
    // Runs per cell; cells measured a different number of times say so.
    let runs = echo
        .values()
        .flat_map(|cells| cells.values())
        .map(|c| c.per_cpu.len())
        .max()
        .unwrap_or(0);
    let fmt_cell = |cell: Option<&Cell>, series: fn(&Cell) -> &Vec<f64>, fmt: fn(f64) -> String| {
        fmt_cell(cell, series, fmt, runs)
    };

    let median_of = if runs > 1 {
        format!(", median of {runs} runs")
    } else {
        String::new()
    };
    writeln!(
        out,
        "Messages per server CPU-second (higher is better{median_of}):\n"
    )?;
    write!(out, "| size | connections |")?;
    for s in servers {
        write!(out, " {s} |")?;
    }
    if ours_present {
        for p in &peers {
            write!(out, " {OURS} / {p} |")?;
        }
    }
    writeln!(out)?;
    let columns = 2 + servers.len() + if ours_present { peers.len() } else { 0 };
    writeln!(out, "|{}", " ---: |".repeat(columns))?;
    for (&(size, conns), cells) in echo {
        write!(out, "| {} | {} |", fmt_size(size), fmt_count(conns))?;
        for s in servers {
            write!(
                out,
                " {} |",
                fmt_cell(cells.get(s), |c| &c.per_cpu, fmt_rate)
            )?;
        }
        if ours_present {
            let ours = cells.get(OURS).and_then(|c| median(&c.per_cpu));
            for p in &peers {
                let theirs = cells.get(*p).and_then(|c| median(&c.per_cpu));
                match (ours, theirs) {
                    (Some(a), Some(b)) if b > 0.0 => write!(out, " {:.2}x |", a / b)?,
                    _ => write!(out, " – |")?,
                }
            }
        }
        writeln!(out)?;
    }

    writeln!(
        out,
        "\nDetails: wall-clock messages per second, round-trip latency, the server's CPU \
         per message split into user space and kernel, and CPU use of the server and of \
         the client (1.00 = one full core){median_of}:\n"
    )?;
    writeln!(
        out,
        "| size | connections | server | msgs / server CPU-s, min – max | msgs/s | p50 µs | p99 µs \
         | server user µs / msg | server kernel µs / msg | server CPU | client CPU |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for (&(size, conns), cells) in echo {
        for s in servers {
            let Some(cell) = cells.get(s) else { continue };
            writeln!(
                out,
                "| {} | {} | {s} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_size(size),
                fmt_count(conns),
                fmt_range(&cell.per_cpu),
                fmt_cell(Some(cell), |c| &c.per_sec, fmt_rate),
                fmt_cell(Some(cell), |c| &c.p50, |v| format!("{v:.0}")),
                fmt_cell(Some(cell), |c| &c.p99, |v| format!("{v:.0}")),
                fmt_cell(Some(cell), |c| &c.user_us, |v| format!("{v:.2}")),
                fmt_cell(Some(cell), |c| &c.kernel_us, |v| format!("{v:.2}")),
                fmt_cell(Some(cell), |c| &c.server_util, |v| format!("{v:.2}")),
                fmt_cell(Some(cell), |c| &c.client_util, |v| format!("{v:.2}")),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn write_idle_table(out: &mut String, servers: &[String], idle: &[Line]) -> Result<()> {
    writeln!(
        out,
        "Server memory per idle connection (RSS growth; the slope between steps is \
         the per-connection cost):\n"
    )?;
    writeln!(
        out,
        "| server | connections | RSS before | RSS after | KiB / connection (overall) | KiB / connection (slope) |"
    )?;
    writeln!(out, "| :--- | ---: | ---: | ---: | ---: | ---: |")?;
    for s in servers {
        for line in idle
            .iter()
            .filter(|l| l.server.as_deref().unwrap_or("?") == s)
        {
            if let Some(error) = &line.error {
                writeln!(
                    out,
                    "| {s} | {} | failed: {error} | | | |",
                    opt_count(line.connections)
                )?;
                continue;
            }
            writeln!(
                out,
                "| {s} | {} | {} | {} | {} | {} |",
                opt_count(line.connections),
                line.rss_before_kib.map_or("–".into(), fmt_kib),
                line.rss_after_kib.map_or("–".into(), fmt_kib),
                line.kib_per_connection
                    .map_or("–".into(), |v| format!("{v:.2}")),
                line.slope_kib_per_connection
                    .map_or("–".into(), |v| format!("{v:.2}")),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn push(values: &mut Vec<f64>, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        values.push(v);
    }
}

/// Median of `values` (mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// A cell's median of one series, "failed" if every run of it failed.
/// `usual_runs` is how many runs most cells had; a cell with another count
/// shows its own.
fn fmt_cell(
    cell: Option<&Cell>,
    series: fn(&Cell) -> &Vec<f64>,
    fmt: fn(f64) -> String,
    usual_runs: usize,
) -> String {
    let Some(cell) = cell else {
        return "–".to_owned();
    };
    match median(series(cell)) {
        Some(v) => {
            let runs = series(cell).len();
            let mut s = fmt(v);
            if runs != usual_runs {
                s.push_str(&format!(" (n={runs})"));
            }
            if cell.failures > 0 {
                s.push_str(&format!(" ({} failed)", cell.failures));
            }
            s
        }
        None if cell.failures > 0 => "failed".to_owned(),
        None => "–".to_owned(),
    }
}

/// `20250102T030405Z` as `2025-01-02 03:04 UTC`; anything else as it is.
fn fmt_date(stamp: &str) -> String {
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() == 16 && digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z' {
        format!(
            "{}-{}-{} {}:{} UTC",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13]
        )
    } else {
        stamp.to_owned()
    }
}

/// "min – max" of a series, or "–".
fn fmt_range(values: &[f64]) -> String {
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    match (min, max) {
        (Some(a), Some(b)) if values.len() > 1 => format!("{} – {}", fmt_rate(a), fmt_rate(b)),
        (Some(a), _) => fmt_rate(a),
        _ => "–".to_owned(),
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn fmt_count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt_count(n: Option<usize>) -> String {
    n.map_or("–".to_owned(), fmt_count)
}

fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ratios_and_failures() {
        let jsonl = r#"
{"scenario":"meta","date":"20250101T000000Z","cpu":"x","cores":2,"duration":5,"warmup":1}
{"scenario":"echo","server":"duplex","connections":100,"size":20,"seconds":5.0,"messages":400000,"server_cpu_seconds":2.0,"server_user_seconds":0.5,"msgs_per_server_cpu_sec":200000.0,"msgs_per_sec":80000.0,"client_cpu_seconds":5.0,"p50_us":100.0,"p99_us":300.0}
{"scenario":"echo","server":"fastwebsockets","connections":100,"size":20,"seconds":5.0,"server_cpu_seconds":2.0,"msgs_per_server_cpu_sec":160000.0,"msgs_per_sec":64000.0,"client_cpu_seconds":5.0,"p50_us":100.0,"p99_us":300.0}
{"scenario":"echo","server":"tokio-tungstenite","connections":100,"size":20,"error":"boom"}
{"scenario":"idle","server":"duplex","connections":1000,"rss_before_kib":2000,"rss_after_kib":3000,"kib_per_connection":1.0,"slope_from_connections":0,"slope_kib_per_connection":1.0}
"#;
        let md = render(jsonl).unwrap();
        assert!(
            md.starts_with("Run 2025-01-01 00:00 UTC on x (2 cores"),
            "{md}"
        );
        assert!(!md.contains("| ? |"), "{md}");
        assert!(
            md.contains("| 20 B | 100 | 200.0k | 160.0k | failed | 1.25x | – |"),
            "{md}"
        );
        // User and kernel time per message: 0.5 s and 1.5 s over 400,000;
        // a line without the split shows dashes.
        assert!(md.contains("| 300 | 1.25 | 3.75 | 0.40 | 1.00 |"), "{md}");
        assert!(md.contains("| 300 | – | – | 0.40 | 1.00 |"), "{md}");
        assert!(
            md.contains("| duplex | 1,000 | 2.0 MiB | 2.9 MiB | 1.00 | 1.00 |"),
            "{md}"
        );
    }

    #[test]
    fn medians_and_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(fmt_count(10_000), "10,000");
        assert_eq!(fmt_count(1), "1");
        assert_eq!(fmt_size(16384), "16 KiB");
        assert_eq!(fmt_date("20261125T214726Z"), "2026-11-25 21:47 UTC");
        assert_eq!(fmt_date("yesterday"), "yesterday");
    }
}
