//! Markdown tables from the JSON lines of the fan-out, storm and
//! subscribed-idle scenarios (`bench/run-fanout.sh` collects them in one
//! `.jsonl` file).
//!
//! Servers are told apart by their label (`duplex-ws`, `duplex-sio`,
//! `socketioxide`, `socket.io` in the runner). Labels starting with
//! `duplex` are ours; every other label is a peer, and each of our columns
//! gets its ratio to each peer. Fan-out cells that have a label ending in
//! `-polling` (duplex's Socket.IO clients on HTTP long-polling) go to a
//! table of their own, polling against WebSocket. Cells measured several times show the
//! median, and the detail tables the spread (min – max); lines the runner
//! wrote for failed runs (`"error": ...`) show as "failed".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Deserialize;

/// Column order of the servers; others follow in order of appearance.
const KNOWN: [&str; 4] = ["duplex-ws", "duplex-sio", "socketioxide", "socket.io"];

/// One line of a results file (fields of both scenarios, all optional).
#[derive(Debug, Deserialize)]
struct Line {
    scenario: String,
    server: Option<String>,
    subscribers: Option<usize>,
    connections: Option<usize>,
    rate: Option<f64>,
    window: Option<u64>,
    deliveries: Option<u64>,
    seconds: Option<f64>,
    deliveries_per_sec: Option<f64>,
    deliveries_per_server_cpu_sec: Option<f64>,
    server_cpu_seconds: Option<f64>,
    server_user_seconds: Option<f64>,
    client_cpu_seconds: Option<f64>,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    slope_kib_per_connection: Option<f64>,
    kib_per_connection: Option<f64>,
    dropped: Option<u64>,
    // storm, recovery-storm
    concurrency: Option<usize>,
    completed: Option<u64>,
    failed: Option<u64>,
    per_sec: Option<f64>,
    server_cpu_us_per_connection: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    listen_overflows: Option<u64>,
    missed: Option<u64>,
    recovered: Option<u64>,
    error: Option<String>,
    // The runner's "meta" line.
    date: Option<String>,
    git: Option<String>,
    cpu: Option<String>,
    cores: Option<u32>,
    kernel: Option<String>,
    loadavg: Option<String>,
    loadavg_end: Option<String>,
    socketioxide: Option<String>,
    socket_io: Option<String>,
    node: Option<String>,
    duration: Option<f64>,
    warmup: Option<f64>,
    repeat: Option<u32>,
}

/// Every measurement of one cell for one server, by series name.
#[derive(Debug, Default)]
struct Cell {
    series: BTreeMap<&'static str, Vec<f64>>,
    failures: usize,
}

impl Cell {
    fn push(&mut self, name: &'static str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.series.entry(name).or_default().push(v);
        }
    }

    fn median(&self, name: &str) -> Option<f64> {
        median(self.series.get(name)?)
    }

    fn show(&self, name: &str, fmt: impl Fn(f64) -> String) -> String {
        match self.median(name) {
            Some(v) if self.failures > 0 => format!("{} ({} failed)", fmt(v), self.failures),
            Some(v) => fmt(v),
            None if self.failures > 0 => "failed".to_owned(),
            None => "–".to_owned(),
        }
    }

    fn range(&self, name: &str, fmt: impl Fn(f64) -> String) -> String {
        let Some(values) = self.series.get(name).filter(|v| !v.is_empty()) else {
            return self.show(name, fmt);
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.len() == 1 {
            fmt(min)
        } else {
            format!("{} – {}", fmt(min), fmt(max))
        }
    }
}

/// A fan-out cell: subscribers, rate (as bits, for ordering), window.
type Key = (usize, u64, u64);

/// Renders the markdown tables for the JSON lines in `jsonl`.
pub fn render(jsonl: &str) -> Result<String> {
    let mut servers: Vec<String> = Vec::new();
    let mut fanout: BTreeMap<Key, BTreeMap<String, Cell>> = BTreeMap::new();
    let mut idle: Vec<Line> = Vec::new();
    let mut storms: Vec<Line> = Vec::new();
    let mut meta: Option<Line> = None;
    for line in crate::output::read_lines::<Line>(jsonl)? {
        match line.scenario.as_str() {
            "meta" => meta = Some(line),
            "fanout" => {
                let server = line.server.clone().unwrap_or_else(|| "?".to_owned());
                if !servers.contains(&server) {
                    servers.push(server.clone());
                }
                let key = (
                    line.subscribers.unwrap_or(0),
                    line.rate.unwrap_or(0.0).to_bits(),
                    line.window.unwrap_or(0),
                );
                let cell = fanout.entry(key).or_default().entry(server).or_default();
                if line.error.is_some() {
                    cell.failures += 1;
                    continue;
                }
                let util = |cpu: Option<f64>| match (cpu, line.seconds) {
                    (Some(c), Some(s)) if s > 0.0 => Some(c / s),
                    _ => None,
                };
                cell.push("per_cpu", line.deliveries_per_server_cpu_sec);
                cell.push("per_sec", line.deliveries_per_sec);
                cell.push("p50", line.p50_us);
                cell.push("p90", line.p90_us);
                cell.push("p99", line.p99_us);
                cell.push("max", line.max_us);
                cell.push("server_util", util(line.server_cpu_seconds));
                cell.push("client_util", util(line.client_cpu_seconds));
                if let (Some(n), Some(cpu), Some(user)) = (
                    line.deliveries.filter(|&n| n > 0),
                    line.server_cpu_seconds,
                    line.server_user_seconds,
                ) {
                    cell.push("user_us", Some(user / n as f64 * 1e6));
                    cell.push("kernel_us", Some((cpu - user) / n as f64 * 1e6));
                }
            }
            "storm" | "recovery-storm" => storms.push(line),
            "sub-idle" => {
                let server = line.server.clone().unwrap_or_else(|| "?".to_owned());
                if !servers.contains(&server) {
                    servers.push(server);
                }
                idle.push(line);
            }
            _ => {}
        }
    }
    servers.sort_by_key(|s| KNOWN.iter().position(|k| k == s).unwrap_or(KNOWN.len()));

    let mut out = String::new();
    if let Some(m) = &meta {
        write_meta(&mut out, m)?;
    }
    // Cells with polling clients are the polling-vs-WebSocket comparison.
    let (poll, fanout): (BTreeMap<_, _>, BTreeMap<_, _>) = fanout
        .into_iter()
        .partition(|(_, row)| row.keys().any(|s| s.ends_with("-polling")));
    let main: Vec<String> = servers
        .iter()
        .filter(|s| fanout.values().any(|row| row.contains_key(*s)))
        .cloned()
        .collect();
    if !fanout.is_empty() {
        write_fanout(&mut out, &main, &fanout)?;
    }
    if !poll.is_empty() {
        write_polling(&mut out, &poll)?;
    }
    if !storms.is_empty() {
        write_storms(&mut out, &storms)?;
    }
    if !idle.is_empty() {
        write_idle(&mut out, &servers, &idle)?;
    }
    Ok(out)
}

fn write_meta(out: &mut String, m: &Line) -> Result<()> {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    writeln!(
        out,
        "Run {} (git {}) on {} ({} cores, Linux {}); load average {} at the start, {} at the \
         end; socketioxide {}, socket.io {} on Node {}; {} s measured after {} s of warm-up per \
         cell; {}.\n",
        text(&m.date),
        text(&m.git),
        text(&m.cpu),
        m.cores.map_or("?".to_owned(), |c| c.to_string()),
        text(&m.kernel),
        text(&m.loadavg),
        text(&m.loadavg_end),
        text(&m.socketioxide),
        text(&m.socket_io),
        text(&m.node),
        m.duration.map_or("?".to_owned(), |d| d.to_string()),
        m.warmup.map_or("?".to_owned(), |w| w.to_string()),
        match m.repeat {
            Some(n) if n > 1 => format!("each fan-out cell run {n} times, medians shown"),
            _ => "each cell run once".to_owned(),
        },
    )?;
    Ok(())
}

fn is_ours(server: &str) -> bool {
    server.starts_with("duplex")
}

/// (ours, theirs) pairs for the ratio columns.
fn pairs(servers: &[String]) -> Vec<(&String, &String)> {
    let ours: Vec<&String> = servers.iter().filter(|s| is_ours(s)).collect();
    let peers: Vec<&String> = servers.iter().filter(|s| !is_ours(s)).collect();
    ours.iter()
        .flat_map(|o| peers.iter().map(move |p| (*o, *p)))
        .collect()
}

fn fmt_key(&(subs, rate, window): &Key) -> String {
    let rate = f64::from_bits(rate);
    let load = if rate > 0.0 {
        format!(
            "{} pub/s ({} deliveries/s)",
            rate,
            fmt_rate(rate * subs as f64)
        )
    } else {
        "max".to_owned()
    };
    format!("| {} | {load} | {window} |", fmt_count(subs))
}

fn write_fanout(
    out: &mut String,
    servers: &[String],
    cells: &BTreeMap<Key, BTreeMap<String, Cell>>,
) -> Result<()> {
    let pairs = pairs(servers);
    let lead = "| subscribers | publications | window |";
    writeln!(
        out,
        "Fan-out cost: deliveries per server CPU-second (higher is better; goal for duplex at \
         10,000 subscribers: ≥ 1,000,000 with p99 ≤ 50 ms):\n"
    )?;
    write!(out, "{lead}")?;
    for s in servers {
        write!(out, " {s} |")?;
    }
    for (o, p) in &pairs {
        write!(out, " {o} / {p} |")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "|{}",
        " ---: |".repeat(3 + servers.len() + pairs.len())
    )?;
    for (key, row) in cells {
        write!(out, "{}", fmt_key(key))?;
        for s in servers {
            let shown = row
                .get(s)
                .map_or("–".to_owned(), |c| c.show("per_cpu", fmt_rate));
            write!(out, " {shown} |")?;
        }
        for (o, p) in &pairs {
            let a = row.get(*o).and_then(|c| c.median("per_cpu"));
            let b = row.get(*p).and_then(|c| c.median("per_cpu"));
            match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => write!(out, " {:.2}x |", a / b)?,
                _ => write!(out, " – |")?,
            }
        }
        writeln!(out)?;
    }

    writeln!(
        out,
        "\nFan-out latency, publish to receipt: p50 / p99 / max in ms (lower is better):\n"
    )?;
    write!(out, "{lead}")?;
    for s in servers {
        write!(out, " {s} |")?;
    }
    writeln!(out)?;
    writeln!(out, "|{}", " ---: |".repeat(3 + servers.len()))?;
    for (key, row) in cells {
        write!(out, "{}", fmt_key(key))?;
        for s in servers {
            let shown = row.get(s).map_or("–".to_owned(), |c| {
                format!(
                    "{} / {} / {}",
                    c.show("p50", fmt_ms),
                    c.show("p99", fmt_ms),
                    c.show("max", fmt_ms)
                )
            });
            write!(out, " {shown} |")?;
        }
        writeln!(out)?;
    }

    writeln!(
        out,
        "\nFan-out details: spread over the runs, server CPU per delivery split into user \
         space and kernel, CPU use of the server and of the client (1.00 = one full core; \
         medians):\n"
    )?;
    writeln!(
        out,
        "| subscribers | publications | window | server | deliveries/s (range) | per server CPU-s \
         (range) | server µs / delivery: user + kernel | p90 ms | server CPU | client CPU |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for (key, row) in cells {
        for s in servers {
            let Some(c) = row.get(s) else { continue };
            let split = match (c.median("user_us"), c.median("kernel_us")) {
                (Some(u), Some(k)) => format!("{u:.2} + {k:.2}"),
                _ => "–".to_owned(),
            };
            writeln!(
                out,
                "{} {s} | {} | {} | {split} | {} | {} | {} |",
                fmt_key(key),
                c.range("per_sec", fmt_rate),
                c.range("per_cpu", fmt_rate),
                c.show("p90", fmt_ms),
                c.show("server_util", |v| format!("{v:.2}")),
                c.show("client_util", |v| format!("{v:.2}")),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn write_polling(out: &mut String, cells: &BTreeMap<Key, BTreeMap<String, Cell>>) -> Result<()> {
    writeln!(
        out,
        "Polling vs WebSocket: the same publications to duplex's Socket.IO clients on HTTP \
         long-polling and on WebSocket, and to plain-WebSocket clients, at a fixed rate \
         (medians; server CPU per delivered message, user + kernel):\n"
    )?;
    writeln!(
        out,
        "| subscribers | publications | window | server | deliveries/s | server µs / message: \
         user + kernel | messages / server CPU-s | p50 / p99 / max ms | client CPU |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for (key, row) in cells {
        let mut labels: Vec<&String> = row.keys().collect();
        labels.sort_by_key(|s| KNOWN.iter().position(|k| k == s).unwrap_or(KNOWN.len()));
        for s in labels {
            let c = &row[s];
            let split = match (c.median("user_us"), c.median("kernel_us")) {
                (Some(u), Some(k)) => format!("{u:.2} + {k:.2}"),
                _ => "–".to_owned(),
            };
            writeln!(
                out,
                "{} {s} | {} | {split} | {} | {} / {} / {} | {} |",
                fmt_key(key),
                c.show("per_sec", fmt_rate),
                c.range("per_cpu", fmt_rate),
                c.show("p50", fmt_ms),
                c.show("p99", fmt_ms),
                c.show("max", fmt_ms),
                c.show("client_util", |v| format!("{v:.2}")),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn write_storms(out: &mut String, storms: &[Line]) -> Result<()> {
    writeln!(
        out,
        "Connection storms: N clients connect and subscribe at once (or with a bounded \
         number in flight); a recovery storm reconnects N subscribers at once, each \
         recovering the publications it missed. Time from TCP connect to the subscribe \
         reply; listen-queue overflows counted host-wide:\n"
    )?;
    writeln!(
        out,
        "| scenario | server | clients | in flight | completed | failed | seconds | clients/s \
         | server µs / client | p50 / p99 / max ms | listen overflows | recovered |"
    )?;
    writeln!(
        out,
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for l in storms {
        let server = l.server.as_deref().unwrap_or("?");
        let conns = l.connections.map_or("–".to_owned(), fmt_count);
        let conc = l.concurrency.map_or("–".to_owned(), fmt_count);
        if let Some(e) = &l.error {
            writeln!(
                out,
                "| {} | {server} | {conns} | {conc} | failed: {e} | | | | | | | |",
                l.scenario
            )?;
            continue;
        }
        let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("–".to_owned(), f);
        let recovered = match (l.recovered, l.missed) {
            (Some(r), Some(m)) => format!("{r} ({m} missed each)"),
            _ => "–".to_owned(),
        };
        writeln!(
            out,
            "| {} | {server} | {conns} | {conc} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {recovered} |",
            l.scenario,
            l.completed.map_or("–".to_owned(), |v| v.to_string()),
            l.failed.map_or("–".to_owned(), |v| v.to_string()),
            opt(l.seconds, |v| format!("{v:.2}")),
            opt(l.per_sec, fmt_rate),
            opt(l.server_cpu_us_per_connection, |v| format!("{v:.0}")),
            opt(l.p50_ms, fmt_ms_value),
            opt(l.p99_ms, fmt_ms_value),
            opt(l.max_ms, fmt_ms_value),
            l.listen_overflows.map_or("–".to_owned(), |v| v.to_string()),
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// Milliseconds, given in milliseconds.
fn fmt_ms_value(ms: f64) -> String {
    fmt_ms(ms * 1000.0)
}

fn write_idle(out: &mut String, servers: &[String], idle: &[Line]) -> Result<()> {
    writeln!(
        out,
        "Memory per idle subscribed connection: server RSS growth (KiB per connection; the \
         slope from the previous step is the per-connection cost; goals for duplex: ≤ 2 KiB \
         plain WebSocket, ≤ 4 KiB Socket.IO):\n"
    )?;
    writeln!(
        out,
        "| server | connections | RSS before | RSS after | KiB / connection (overall) | KiB / \
         connection (slope) | dropped |"
    )?;
    writeln!(out, "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    for s in servers {
        for l in idle.iter().filter(|l| l.server.as_deref() == Some(s)) {
            let conns = l.connections.map_or("–".to_owned(), fmt_count);
            if let Some(e) = &l.error {
                writeln!(out, "| {s} | {conns} | failed: {e} | | | | |")?;
                continue;
            }
            writeln!(
                out,
                "| {s} | {conns} | {} | {} | {} | {} | {} |",
                l.rss_before_kib.map_or("–".into(), fmt_kib),
                l.rss_after_kib.map_or("–".into(), fmt_kib),
                l.kib_per_connection
                    .map_or("–".into(), |v| format!("{v:.2}")),
                l.slope_kib_per_connection
                    .map_or("–".into(), |v| format!("{v:.2}")),
                l.dropped.map_or("–".into(), |d| d.to_string()),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
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

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
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

fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ratios_latency_and_idle() {
        let jsonl = r#"
{"scenario":"meta","date":"20260101T000000Z","cores":2,"loadavg":"1.0 1.0 1.0","repeat":3}
{"scenario":"fanout","server":"socket.io","subscribers":10000,"rate":0.0,"window":8,"deliveries":1000000,"seconds":5.0,"deliveries_per_sec":200000.0,"deliveries_per_server_cpu_sec":100000.0,"server_cpu_seconds":10.0,"server_user_seconds":4.0,"client_cpu_seconds":2.5,"p50_us":20000.0,"p90_us":30000.0,"p99_us":40000.0,"max_us":50000.0}
{"scenario":"fanout","server":"duplex-ws","subscribers":10000,"rate":0.0,"window":8,"deliveries":1000000,"seconds":5.0,"deliveries_per_sec":400000.0,"deliveries_per_server_cpu_sec":500000.0,"server_cpu_seconds":2.0,"server_user_seconds":1.0,"client_cpu_seconds":2.5,"p50_us":2000.0,"p90_us":3000.0,"p99_us":4000.0,"max_us":5000.0}
{"scenario":"fanout","server":"duplex-ws","subscribers":10000,"rate":0.0,"window":8,"deliveries":1000000,"seconds":5.0,"deliveries_per_sec":400000.0,"deliveries_per_server_cpu_sec":300000.0,"server_cpu_seconds":2.0,"server_user_seconds":1.0,"client_cpu_seconds":2.5,"p50_us":2000.0,"p90_us":3000.0,"p99_us":4000.0,"max_us":5000.0}
{"scenario":"fanout","server":"socketioxide","subscribers":10000,"rate":0.0,"window":8,"error":"boom"}
{"scenario":"sub-idle","server":"duplex-ws","transport":"ws","connections":1000,"rss_before_kib":1000,"rss_after_kib":3000,"kib_per_connection":2.0,"slope_from_connections":0,"slope_kib_per_connection":2.0,"dropped":0}
{"scenario":"fanout","server":"duplex-sio-polling","subscribers":1000,"rate":20.0,"window":16,"deliveries":100,"seconds":5.0,"deliveries_per_sec":20.0,"deliveries_per_server_cpu_sec":50000.0,"server_cpu_seconds":0.002,"server_user_seconds":0.001,"p50_us":1000.0,"p99_us":2000.0,"max_us":3000.0}
{"scenario":"fanout","server":"duplex-sio","subscribers":1000,"rate":20.0,"window":16,"deliveries":100,"seconds":5.0,"deliveries_per_sec":20.0,"deliveries_per_server_cpu_sec":100000.0,"server_cpu_seconds":0.001,"server_user_seconds":0.0005,"p50_us":500.0,"p99_us":900.0,"max_us":1000.0}
{"scenario":"storm","server":"duplex-ws","connections":5000,"concurrency":500,"completed":5000,"failed":0,"seconds":0.5,"per_sec":10000.0,"server_cpu_us_per_connection":66.0,"p50_ms":20.0,"p99_ms":150.0,"max_ms":200.0,"listen_overflows":0}
{"scenario":"recovery-storm","server":"duplex-ws","connections":5000,"concurrency":5000,"completed":5000,"failed":0,"seconds":0.5,"per_sec":10000.0,"server_cpu_us_per_connection":78.0,"p50_ms":200.0,"p99_ms":400.0,"max_ms":410.0,"listen_overflows":0,"missed":10,"recovered":5000}
"#;
        let md = render(jsonl).unwrap();
        assert!(md.starts_with("Run 20260101T000000Z"), "{md}");
        // Median of 500k and 300k is 400k: 4x socket.io.
        assert!(
            md.contains("| 10,000 | max | 8 | 400.0k | failed | 100.0k | – | 4.00x |"),
            "{md}"
        );
        assert!(md.contains("| 2.00 / 4.00 / 5.00 |"), "{md}");
        assert!(md.contains("| 300.0k – 500.0k | 1.00 + 1.00 |"), "{md}");
        assert!(
            md.contains("| duplex-ws | 1,000 | 1.0 MiB | 2.9 MiB | 2.00 | 2.00 | 0 |"),
            "{md}"
        );
        // The polling cell is in its own table, not in the peers' one.
        assert!(!md.contains("duplex-sio-polling / "), "{md}");
        assert!(
            md.contains("| 1,000 | 20 pub/s (20.0k deliveries/s) | 16 | duplex-sio-polling | 20 | 10.00 + 10.00 | 50.0k | 1.00 / 2.00 / 3.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| storm | duplex-ws | 5,000 | 500 | 5000 | 0 | 0.50 | 10.0k | 66 | 20 / 150 / 200 | 0 | – |"),
            "{md}"
        );
        assert!(md.contains("| 5000 (10 missed each) |"), "{md}");
    }
}
