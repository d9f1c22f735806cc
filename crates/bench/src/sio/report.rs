//! Markdown tables from the JSON lines of the Socket.IO scenarios.
//!
//! `bench/run-socketio.sh` collects every result line of a run into one
//! `.jsonl` file; [`render`] turns it into the tables of the "Socket.IO"
//! section of `docs/benchmarks.md`: for each scenario the figure of each
//! server, and duplex's ratio to each peer next to the goal. When a cell
//! was measured several times the median is shown; lines the script wrote
//! for failed runs (`"error": ...`) show up as "failed".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Deserialize;

/// The server whose ratios to the others are shown.
const OURS: &str = "duplex";
/// Column order of the servers; others follow.
const KNOWN: [&str; 3] = ["duplex", "socketioxide", "socket.io"];

/// One line of a results file (fields of every scenario, all optional).
#[derive(Debug, Deserialize)]
struct Line {
    scenario: String,
    server: Option<String>,
    sockets: Option<usize>,
    seconds: Option<f64>,
    server_cpu_seconds: Option<f64>,
    server_user_seconds: Option<f64>,
    client_cpu_seconds: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    // sio-echo
    events: Option<u64>,
    events_per_server_cpu_sec: Option<f64>,
    events_per_sec: Option<f64>,
    // sio-broadcast
    rate: Option<f64>,
    window: Option<u64>,
    deliveries: Option<u64>,
    deliveries_per_sec: Option<f64>,
    deliveries_per_server_cpu_sec: Option<f64>,
    // sio-idle
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    kib_per_socket: Option<f64>,
    slope_kib_per_socket: Option<f64>,
    dropped: Option<u64>,
    error: Option<String>,
    // The run's "meta" line, written by bench/run-socketio.sh.
    date: Option<String>,
    kernel: Option<String>,
    cpu: Option<String>,
    cores: Option<u32>,
    loadavg: Option<String>,
    git: Option<String>,
    socketioxide: Option<String>,
    node: Option<String>,
    socket_io: Option<String>,
    duration: Option<f64>,
    warmup: Option<f64>,
    repeat: Option<u32>,
}

/// Every measurement of one table cell for one server, by series name.
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

    /// `min – max` of one series, or just the value if measured once.
    fn range(&self, name: &str, fmt: impl Fn(f64) -> String) -> String {
        let Some(values) = self.series.get(name).filter(|v| !v.is_empty()) else {
            return if self.failures > 0 { "failed" } else { "–" }.to_owned();
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.len() == 1 {
            fmt(min)
        } else {
            format!("{} – {}", fmt(min), fmt(max))
        }
    }

    /// Median server CPU µs per item, `user + kernel`.
    fn split_us(&self) -> String {
        match (self.median("user_us"), self.median("kernel_us")) {
            (Some(u), Some(k)) => format!("{u:.2} + {k:.2}"),
            _ => "–".to_owned(),
        }
    }

    fn median(&self, name: &str) -> Option<f64> {
        median(self.series.get(name)?)
    }

    /// The median of one series, formatted, with the failures if any.
    fn show(&self, name: &str, fmt: impl Fn(f64) -> String) -> String {
        match self.median(name) {
            Some(v) => {
                let mut s = fmt(v);
                if self.failures > 0 {
                    s.push_str(&format!(" ({} failed)", self.failures));
                }
                s
            }
            None if self.failures > 0 => "failed".to_owned(),
            None => "–".to_owned(),
        }
    }
}

/// Cells of one scenario: key (sockets, ...) -> server -> cell.
type Table<K> = BTreeMap<K, BTreeMap<String, Cell>>;

/// Broadcast cells are keyed by sockets, rate (as bits, for ordering) and
/// window.
type BroadcastKey = (usize, u64, u64);

/// Renders the markdown tables for the JSON lines in `jsonl`.
pub fn render(jsonl: &str) -> Result<String> {
    let mut servers: Vec<String> = Vec::new();
    let mut echo: Table<usize> = BTreeMap::new();
    let mut bcast: Table<BroadcastKey> = BTreeMap::new();
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
        let sockets = line.sockets.unwrap_or(0);
        let util = |cpu: Option<f64>| match (cpu, line.seconds) {
            (Some(c), Some(s)) if s > 0.0 => Some(c / s),
            _ => None,
        };
        // Server CPU µs per event or delivery: user space, and the kernel.
        let per_item = |count: Option<u64>| match (count, line.server_cpu_seconds) {
            (Some(n), Some(cpu)) if n > 0 => {
                let user = line.server_user_seconds.map(|u| u / n as f64 * 1e6);
                (user, user.map(|u| cpu / n as f64 * 1e6 - u))
            }
            _ => (None, None),
        };
        match line.scenario.as_str() {
            "sio-echo" => {
                let cell = echo.entry(sockets).or_default().entry(server).or_default();
                if line.error.is_some() {
                    cell.failures += 1;
                    continue;
                }
                cell.push("per_cpu", line.events_per_server_cpu_sec);
                cell.push("per_sec", line.events_per_sec);
                cell.push("p50", line.p50_us);
                cell.push("p99", line.p99_us);
                cell.push("server_util", util(line.server_cpu_seconds));
                cell.push("client_util", util(line.client_cpu_seconds));
                let (user, kernel) = per_item(line.events);
                cell.push("user_us", user);
                cell.push("kernel_us", kernel);
            }
            "sio-broadcast" => {
                let key = (
                    sockets,
                    line.rate.unwrap_or(0.0).to_bits(),
                    line.window.unwrap_or(0),
                );
                let cell = bcast.entry(key).or_default().entry(server).or_default();
                if line.error.is_some() {
                    cell.failures += 1;
                    continue;
                }
                cell.push("per_sec", line.deliveries_per_sec);
                cell.push("per_cpu", line.deliveries_per_server_cpu_sec);
                cell.push("p50", line.p50_us);
                cell.push("p99", line.p99_us);
                cell.push("server_util", util(line.server_cpu_seconds));
                cell.push("client_util", util(line.client_cpu_seconds));
                let (user, kernel) = per_item(line.deliveries);
                cell.push("user_us", user);
                cell.push("kernel_us", kernel);
            }
            "sio-idle" => idle.push(line),
            _ => {}
        }
    }
    servers.sort_by_key(|s| KNOWN.iter().position(|k| k == s).unwrap_or(KNOWN.len()));

    let mut out = String::new();
    if let Some(meta) = &meta {
        write_meta(&mut out, meta)?;
    }
    if !echo.is_empty() {
        write_echo(&mut out, &servers, &echo)?;
    }
    if !bcast.is_empty() {
        write_broadcast(&mut out, &servers, &bcast)?;
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
        "Run {} (git {}) on {} ({} cores, Linux {}, load average {} at the start); \
         socketioxide {}, socket.io {} on Node {}; {} s measured after {} s of warm-up \
         per throughput cell; {}.\n",
        text(&m.date),
        text(&m.git),
        text(&m.cpu),
        m.cores.map_or("?".to_owned(), |c| c.to_string()),
        text(&m.kernel),
        text(&m.loadavg),
        text(&m.socketioxide),
        text(&m.socket_io),
        text(&m.node),
        m.duration.map_or("?".to_owned(), |d| d.to_string()),
        m.warmup.map_or("?".to_owned(), |w| w.to_string()),
        match m.repeat {
            Some(n) if n > 1 => format!("each throughput cell run {n} times, medians shown"),
            _ => "each cell run once".to_owned(),
        },
    )?;
    Ok(())
}

/// The peers: every server but ours, if ours is there at all.
fn peers(servers: &[String]) -> Vec<&String> {
    if servers.iter().any(|s| s == OURS) {
        servers.iter().filter(|s| *s != OURS).collect()
    } else {
        Vec::new()
    }
}

/// ` a / b |` for the medians of `series` in two cells, `– |` if missing.
fn ratio(
    cells: &BTreeMap<String, Cell>,
    ours: &str,
    theirs: &str,
    series: &str,
    inverse: bool,
) -> String {
    let a = cells.get(ours).and_then(|c| c.median(series));
    let b = cells.get(theirs).and_then(|c| c.median(series));
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
            let r = if inverse { b / a } else { a / b };
            format!(" {r:.2}x |")
        }
        _ => " – |".to_owned(),
    }
}

/// Goal shown in a ratio column's header.
fn goal(peer: &str) -> &'static str {
    match peer {
        "socketioxide" => " (goal ≥ 1.2x)",
        "socket.io" => " (goal ≥ 2.5x)",
        _ => "",
    }
}

fn write_header(
    out: &mut String,
    lead: &[&str],
    servers: &[String],
    peers: &[&String],
) -> Result<()> {
    write!(out, "|")?;
    for l in lead {
        write!(out, " {l} |")?;
    }
    for s in servers {
        write!(out, " {s} |")?;
    }
    for p in peers {
        write!(out, " {OURS} / {p}{} |", goal(p))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "|{}",
        " ---: |".repeat(lead.len() + servers.len() + peers.len())
    )?;
    Ok(())
}

fn write_echo(out: &mut String, servers: &[String], echo: &Table<usize>) -> Result<()> {
    let peers = peers(servers);
    writeln!(
        out,
        "Echo with acks: acknowledged 20-byte events per server CPU-second \
         (higher is better):\n"
    )?;
    write_header(out, &["sockets"], servers, &peers)?;
    for (&sockets, cells) in echo {
        write!(out, "| {} |", fmt_count(sockets))?;
        for s in servers {
            let shown = cells
                .get(s)
                .map_or("–".into(), |c| c.show("per_cpu", fmt_rate));
            write!(out, " {shown} |")?;
        }
        for p in &peers {
            out.push_str(&ratio(cells, OURS, p, "per_cpu", false));
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "\nEcho details: the spread of the headline figure over the runs, \
         wall-clock acked events per second, emit-to-ack latency, CPU use of \
         the server and of the client (1.00 = one full core; medians):\n"
    )?;
    writeln!(
        out,
        "| sockets | server | per server CPU-s (range) | server µs / event: user + kernel | events/s | p50 µs | p99 µs | server CPU | client CPU |"
    )?;
    writeln!(
        out,
        "| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for (&sockets, cells) in echo {
        for s in servers {
            let Some(c) = cells.get(s) else { continue };
            writeln!(
                out,
                "| {} | {s} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_count(sockets),
                c.range("per_cpu", fmt_rate),
                c.split_us(),
                c.show("per_sec", fmt_rate),
                c.show("p50", fmt_int),
                c.show("p99", fmt_int),
                c.show("server_util", fmt_util),
                c.show("client_util", fmt_util),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn fmt_broadcast_key(&(sockets, rate, window): &BroadcastKey) -> String {
    let rate = f64::from_bits(rate);
    let rate = if rate > 0.0 {
        format!("{rate}")
    } else {
        "max".to_owned()
    };
    format!("| {} | {rate} | {window} |", fmt_count(sockets))
}

fn write_broadcast(
    out: &mut String,
    servers: &[String],
    bcast: &Table<BroadcastKey>,
) -> Result<()> {
    let peers = peers(servers);
    let lead = ["sockets", "bcasts/s", "window"];
    let is_max = |key: &BroadcastKey| f64::from_bits(key.1) <= 0.0;
    if bcast.keys().any(is_max) {
        writeln!(
            out,
            "Room broadcast throughput: messages delivered per second to the \
             room's sockets, publishing as fast as acks and the window of \
             broadcasts in flight allow (higher is better):\n"
        )?;
        write_header(out, &lead, servers, &peers)?;
        for (key, cells) in bcast.iter().filter(|(k, _)| is_max(k)) {
            write_row(out, key, cells, servers, &peers, "per_sec")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Room broadcast cost: deliveries per server CPU-second, at the maximum \
         rate and at a fixed offered load (higher is better):\n"
    )?;
    write_header(out, &lead, servers, &peers)?;
    for (key, cells) in bcast {
        write_row(out, key, cells, servers, &peers, "per_cpu")?;
    }
    writeln!(
        out,
        "\nRoom broadcast latency, from the publisher's send to a room socket's \
         receipt: p50 / p99 in ms (lower is better):\n"
    )?;
    write!(out, "|")?;
    for l in lead {
        write!(out, " {l} |")?;
    }
    for s in servers {
        write!(out, " {s} |")?;
    }
    writeln!(out)?;
    writeln!(out, "|{}", " ---: |".repeat(lead.len() + servers.len()))?;
    for (key, cells) in bcast {
        write!(out, "{}", fmt_broadcast_key(key))?;
        for s in servers {
            let shown = cells.get(s).map_or("–".into(), |c| {
                format!("{} / {}", c.show("p50", fmt_ms), c.show("p99", fmt_ms))
            });
            write!(out, " {shown} |")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "\nBroadcast details: the spread over the runs, and the CPU use of \
         the server and of the client (1.00 = one full core; medians):\n"
    )?;
    writeln!(
        out,
        "| sockets | bcasts/s | window | server | deliveries/s (range) | per server CPU-s (range) | server µs / delivery: user + kernel | server CPU | client CPU |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for (key, cells) in bcast {
        for s in servers {
            let Some(c) = cells.get(s) else { continue };
            writeln!(
                out,
                "{} {s} | {} | {} | {} | {} | {} |",
                fmt_broadcast_key(key),
                c.range("per_sec", fmt_rate),
                c.range("per_cpu", fmt_rate),
                c.split_us(),
                c.show("server_util", fmt_util),
                c.show("client_util", fmt_util),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// One row of a broadcast table: each server's median of `series`, then
/// duplex's ratio to each peer.
fn write_row(
    out: &mut String,
    key: &BroadcastKey,
    cells: &BTreeMap<String, Cell>,
    servers: &[String],
    peers: &[&String],
    series: &str,
) -> Result<()> {
    write!(out, "{}", fmt_broadcast_key(key))?;
    for s in servers {
        let shown = cells
            .get(s)
            .map_or("–".into(), |c| c.show(series, fmt_rate));
        write!(out, " {shown} |")?;
    }
    for p in peers {
        out.push_str(&ratio(cells, OURS, p, series, false));
    }
    writeln!(out)?;
    Ok(())
}

fn write_idle(out: &mut String, servers: &[String], idle: &[Line]) -> Result<()> {
    let peers = peers(servers);
    // Slope from each server's first step to its last.
    let mut slopes: BTreeMap<String, Cell> = BTreeMap::new();
    let mut span = None;
    for s in servers {
        let steps: Vec<&Line> = idle
            .iter()
            .filter(|l| l.server.as_deref().unwrap_or("?") == s && l.error.is_none())
            .collect();
        let cell = slopes.entry(s.clone()).or_default();
        cell.failures = idle
            .iter()
            .filter(|l| l.server.as_deref().unwrap_or("?") == s && l.error.is_some())
            .count();
        if let (Some(first), Some(last)) = (steps.first(), steps.last()) {
            let (a, b) = (first.sockets.unwrap_or(0), last.sockets.unwrap_or(0));
            let (ra, rb) = (first.rss_after_kib, last.rss_after_kib);
            if let (true, Some(ra), Some(rb)) = (b > a, ra, rb) {
                cell.push(
                    "slope",
                    Some(crate::procfs::kib_per_connection(ra, rb, a, b)),
                );
                span = Some((a, b));
            }
        }
    }
    let span = span.map_or(String::new(), |(a, b)| {
        format!(" from {} to {} sockets", fmt_count(a), fmt_count(b))
    });
    writeln!(
        out,
        "Memory per idle connected socket: server RSS growth per socket{span} \
         (KiB, lower is better; goal for duplex ≤ 4 KiB):\n"
    )?;
    write!(out, "|")?;
    for s in servers {
        write!(out, " {s} |")?;
    }
    for p in &peers {
        write!(out, " {p} / {OURS} |")?;
    }
    writeln!(out)?;
    writeln!(out, "|{}", " ---: |".repeat(servers.len() + peers.len()))?;
    write!(out, "|")?;
    for s in servers {
        write!(out, " {} |", slopes[s].show("slope", |v| format!("{v:.2}")))?;
    }
    for p in &peers {
        out.push_str(&ratio(&slopes, OURS, p, "slope", true));
    }
    writeln!(out)?;

    writeln!(out, "\nIdle steps:\n")?;
    writeln!(
        out,
        "| server | sockets | RSS before | RSS after | KiB / socket (overall) | KiB / socket (slope from previous step) | dropped |"
    )?;
    writeln!(out, "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    for s in servers {
        for line in idle
            .iter()
            .filter(|l| l.server.as_deref().unwrap_or("?") == s)
        {
            if let Some(error) = &line.error {
                writeln!(
                    out,
                    "| {s} | {} | failed: {error} | | | | |",
                    line.sockets.map_or("–".to_owned(), fmt_count)
                )?;
                continue;
            }
            writeln!(
                out,
                "| {s} | {} | {} | {} | {} | {} | {} |",
                line.sockets.map_or("–".to_owned(), fmt_count),
                line.rss_before_kib.map_or("–".into(), fmt_kib),
                line.rss_after_kib.map_or("–".into(), fmt_kib),
                line.kib_per_socket
                    .map_or("–".into(), |v| format!("{v:.2}")),
                line.slope_kib_per_socket
                    .map_or("–".into(), |v| format!("{v:.2}")),
                line.dropped.map_or("–".into(), |d| d.to_string()),
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

fn fmt_int(v: f64) -> String {
    format!("{v:.0}")
}

fn fmt_util(v: f64) -> String {
    format!("{v:.2}")
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
    fn renders_every_table() {
        let jsonl = r#"
{"scenario":"meta","date":"20250101T000000Z","cpu":"x","cores":2,"socketioxide":"0.18.9","node":"v20","socket_io":"4.8.4","duration":5,"warmup":1}
{"scenario":"sio-echo","server":"socket.io","sockets":100,"seconds":5.0,"server_cpu_seconds":5.0,"events_per_server_cpu_sec":50000.0,"events_per_sec":50000.0,"client_cpu_seconds":2.0,"p50_us":1000.0,"p99_us":3000.0}
{"scenario":"sio-echo","server":"duplex","sockets":100,"seconds":5.0,"events":300000,"server_cpu_seconds":2.0,"server_user_seconds":0.5,"events_per_server_cpu_sec":150000.0,"events_per_sec":60000.0,"client_cpu_seconds":5.0,"p50_us":100.0,"p99_us":300.0}
{"scenario":"sio-echo","server":"duplex","sockets":100,"seconds":5.0,"events":260000,"server_cpu_seconds":2.0,"server_user_seconds":0.26,"events_per_server_cpu_sec":130000.0,"events_per_sec":60000.0,"client_cpu_seconds":5.0,"p50_us":100.0,"p99_us":300.0}
{"scenario":"sio-echo","server":"socketioxide","sockets":100,"error":"boom"}
{"scenario":"sio-broadcast","server":"duplex","sockets":1000,"rate":0.0,"window":2,"seconds":5.0,"deliveries_per_sec":400000.0,"deliveries_per_server_cpu_sec":500000.0,"server_cpu_seconds":4.0,"client_cpu_seconds":5.0,"p50_us":2500.0,"p99_us":12000.0}
{"scenario":"sio-broadcast","server":"socketioxide","sockets":1000,"rate":0.0,"window":2,"seconds":5.0,"deliveries_per_sec":200000.0,"deliveries_per_server_cpu_sec":200000.0,"server_cpu_seconds":5.0,"client_cpu_seconds":3.0,"p50_us":5000.0,"p99_us":9000.0}
{"scenario":"sio-idle","server":"duplex","sockets":1000,"rss_before_kib":2000,"rss_after_kib":6000,"kib_per_socket":4.0,"slope_from_sockets":0,"slope_kib_per_socket":4.0,"dropped":0}
{"scenario":"sio-idle","server":"duplex","sockets":2000,"rss_before_kib":2000,"rss_after_kib":9000,"kib_per_socket":3.5,"slope_from_sockets":1000,"slope_kib_per_socket":3.0,"dropped":0}
{"scenario":"sio-idle","server":"socket.io","sockets":1000,"rss_before_kib":40000,"rss_after_kib":52000,"kib_per_socket":12.0,"slope_from_sockets":0,"slope_kib_per_socket":12.0,"dropped":0}
{"scenario":"sio-idle","server":"socket.io","sockets":2000,"rss_before_kib":40000,"rss_after_kib":64000,"kib_per_socket":12.0,"slope_from_sockets":1000,"slope_kib_per_socket":12.0,"dropped":0}
"#;
        let md = render(jsonl).unwrap();
        assert!(md.starts_with("Run 20250101T000000Z"), "{md}");
        assert!(
            md.contains("| 100 | 140.0k | failed | 50.0k | – | 2.80x |"),
            "{md}"
        );
        assert!(
            md.contains("| 100 | duplex | 130.0k – 150.0k | 1.33 + 5.85 | 60.0k |"),
            "{md}"
        );
        assert!(
            md.contains("| 1,000 | max | 2 | 400.0k | 200.0k | – | 2.00x | – |"),
            "{md}"
        );
        assert!(
            md.contains("| 1,000 | max | 2 | duplex | 400.0k | 500.0k | – | 0.80 | 1.00 |"),
            "{md}"
        );
        // Slopes 1k -> 2k: duplex 3.00, socket.io 12.00, ratio 4x.
        assert!(md.contains("| 3.00 | – | 12.00 | – | 4.00x |"), "{md}");
        assert!(
            md.contains("| socket.io | 2,000 | 39.1 MiB | 62.5 MiB | 12.00 | 12.00 | 0 |"),
            "{md}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(fmt_count(10_000), "10,000");
        assert_eq!(fmt_ms(250.0), "0.25");
        assert_eq!(fmt_ms(25_000.0), "25");
    }
}
