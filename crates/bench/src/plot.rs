//! `duplex-bench plot`: SVG charts from results files of JSON lines,
//! drawn with `plotters` (SVG backend only: text goes out as SVG text
//! elements, so no fonts or system libraries are needed).
//!
//! Three kinds of chart, each drawn when the results hold its lines:
//! - **throughput vs connections**, one chart per scenario (and message
//!   size, or fan-out load): the per-server-CPU-second figure of each
//!   server against the connection count, log scale, medians of repeats;
//! - **memory vs connections**: server RSS growth over the idle steps of
//!   `idle`, `sio-idle` and `sub-idle`, one line per server and scenario;
//! - **latency CDF**: for every cell with a latency distribution
//!   (`cdf_us`: fan-out, polling vs WebSocket), one line per server,
//!   latency on a log scale; of repeated runs, the one with the median p99.
//!
//! Owns reading the lines and drawing; what the lines mean is the
//! scenarios'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use plotters::prelude::*;
use serde_json::Value;

/// Series colours, in the order servers are first met (duplex first).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// One line of a chart: its name and points, sorted by x.
type Series = (String, Vec<(f64, f64)>);

/// Measurements to plot: (file, title) -> series name -> x -> values of y.
type Points = BTreeMap<(String, String), BTreeMap<String, BTreeMap<u64, Vec<f64>>>>;

/// A chart to draw.
#[derive(Debug)]
struct Chart {
    /// Log-scale x axis (else linear from 0).
    x_log: bool,
    file: String,
    title: String,
    x_desc: &'static str,
    y_desc: &'static str,
    series: Vec<Series>,
}

/// Reads the results files and writes every chart they allow into `out`
/// (created if missing); returns the files written.
pub fn run(files: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    let mut lines = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: line {}", file.display(), n + 1))?;
            if v.get("error").is_none() {
                lines.push(v);
            }
        }
    }
    let mut charts = throughput_charts(&lines);
    charts.extend(memory_chart(&lines));
    charts.extend(soak_chart(&lines));
    charts.extend(cdf_charts(&lines));
    if charts.is_empty() {
        anyhow::bail!("nothing to plot: no echo, fan-out, idle or latency lines");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let colours = colour_map(&charts);
    let mut written = Vec::new();
    for chart in &charts {
        let path = out.join(&chart.file);
        draw(&path, chart, &colours)?;
        written.push(path);
    }
    Ok(written)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// Median of a list (mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) && mid > 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values.get(mid).copied().unwrap_or(0.0)
    }
}

/// Turns `(chart, series, x) -> [y]` into charts of medians.
fn collect(points: Points, x_desc: &'static str, y_desc: &'static str) -> Vec<Chart> {
    points
        .into_iter()
        .map(|((file, title), by_server)| Chart {
            x_log: true,
            file,
            title,
            x_desc,
            y_desc,
            series: by_server
                .into_iter()
                .map(|(server, xs)| {
                    let pts = xs
                        .into_iter()
                        .map(|(x, ys)| (x as f64, median(ys)))
                        .collect();
                    (server, pts)
                })
                .collect(),
        })
        .collect()
}

/// Per-server-CPU-second throughput against connections, per scenario.
fn throughput_charts(lines: &[Value]) -> Vec<Chart> {
    let mut points: Points = BTreeMap::new();
    for v in lines {
        let Some(scenario) = str_of(v, "scenario") else {
            continue;
        };
        let (chart, x, y) = match scenario {
            "echo" => {
                let size = num(v, "size").unwrap_or(0.0);
                (
                    (
                        format!("throughput-echo-{size}B.svg"),
                        format!(
                            "WebSocket echo, {size}-byte messages: messages per server CPU-second"
                        ),
                    ),
                    num(v, "connections"),
                    num(v, "msgs_per_server_cpu_sec"),
                )
            }
            "sio-echo" => (
                (
                    "throughput-sio-echo.svg".to_owned(),
                    "Socket.IO echo with acks: events per server CPU-second".to_owned(),
                ),
                num(v, "sockets"),
                num(v, "events_per_server_cpu_sec"),
            ),
            "fanout" => {
                let rate = num(v, "rate").unwrap_or(0.0);
                let window = num(v, "window").unwrap_or(0.0);
                let subs = num(v, "subscribers").unwrap_or(0.0);
                let load = if rate > 0.0 {
                    // Offered deliveries per second, the runner's unit.
                    let offered = (rate * subs).round();
                    (
                        format!("{offered}ps"),
                        format!("{offered} deliveries/s offered"),
                    )
                } else {
                    ("max".to_owned(), "as fast as possible".to_owned())
                };
                (
                    (
                        format!("throughput-fanout-{}-w{window}.svg", load.0),
                        format!(
                            "Fan-out ({}, window {window}): deliveries per server CPU-second",
                            load.1
                        ),
                    ),
                    num(v, "subscribers"),
                    num(v, "deliveries_per_server_cpu_sec"),
                )
            }
            _ => continue,
        };
        let (Some(x), Some(y)) = (x, y) else { continue };
        let server = str_of(v, "server").unwrap_or("?").to_owned();
        points
            .entry(chart)
            .or_default()
            .entry(server)
            .or_default()
            .entry(x as u64)
            .or_default()
            .push(y);
    }
    collect(points, "connections", "per server CPU-second")
}

/// Server RSS growth against connections, every idle scenario in one chart.
fn memory_chart(lines: &[Value]) -> Option<Chart> {
    let mut by_series: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for v in lines {
        let scenario = str_of(v, "scenario").unwrap_or_default();
        let x = match scenario {
            "idle" | "sub-idle" => num(v, "connections"),
            "sio-idle" => num(v, "sockets"),
            _ => continue,
        };
        let (Some(x), Some(before), Some(after)) =
            (x, num(v, "rss_before_kib"), num(v, "rss_after_kib"))
        else {
            continue;
        };
        let server = str_of(v, "server").unwrap_or("?");
        by_series
            .entry(format!("{server} ({scenario})"))
            .or_default()
            .entry(x as u64)
            .or_default()
            .push((after - before) / 1024.0);
    }
    if by_series.is_empty() {
        return None;
    }
    let mut points = BTreeMap::new();
    points.insert(
        (
            "memory-vs-connections.svg".to_owned(),
            "Server memory (RSS growth) vs idle connections".to_owned(),
        ),
        by_series,
    );
    let mut chart = collect(points, "connections", "RSS growth, MiB").pop()?;
    chart.x_log = false;
    Some(chart)
}

/// Server RSS over the time of a soak (`soak-sample` lines), one line per
/// server.
fn soak_chart(lines: &[Value]) -> Option<Chart> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for v in lines {
        if str_of(v, "scenario") != Some("soak-sample") {
            continue;
        }
        if let (Some(t), Some(rss)) = (num(v, "t"), num(v, "rss_kib")) {
            let server = str_of(v, "server").unwrap_or("duplex");
            series
                .entry(format!("{server} RSS"))
                .or_default()
                .push((t / 60.0, rss / 1024.0));
        }
    }
    if series.is_empty() {
        return None;
    }
    Some(Chart {
        x_log: false,
        file: "soak-rss.svg".to_owned(),
        title: "Server memory (RSS) during the soak".to_owned(),
        x_desc: "minutes",
        y_desc: "RSS, MiB",
        series: series.into_iter().collect(),
    })
}

/// Latency CDFs, one chart per cell that has `cdf_us`.
fn cdf_charts(lines: &[Value]) -> Vec<Chart> {
    // (file, title) -> server -> runs of (p99, cdf)
    type Runs = BTreeMap<(String, String), BTreeMap<String, Vec<(f64, Vec<(f64, f64)>)>>>;
    let mut runs: Runs = BTreeMap::new();
    for v in lines {
        let Some(cdf) = v.get("cdf_us").and_then(Value::as_array) else {
            continue;
        };
        let scenario = str_of(v, "scenario").unwrap_or("?");
        let subs = num(v, "subscribers")
            .or_else(|| num(v, "connections"))
            .unwrap_or(0.0);
        let rate = num(v, "rate").unwrap_or(0.0);
        let window = num(v, "window").unwrap_or(0.0);
        let load = if rate > 0.0 {
            format!("{rate}")
        } else {
            "max".to_owned()
        };
        let key = (
            format!("latency-cdf-{scenario}-{subs}-{load}-w{window}.svg"),
            format!(
                "{scenario}: {subs} subscribers, {} publications/s, window {window}: latency CDF",
                load
            ),
        );
        let pts: Vec<(f64, f64)> = cdf
            .iter()
            .filter_map(|p| {
                let p = p.as_array()?;
                // x: latency in ms, y: quantile.
                Some((p.get(1)?.as_f64()? / 1000.0, p.first()?.as_f64()?))
            })
            .filter(|&(ms, _)| ms > 0.0)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let server = str_of(v, "server").unwrap_or("?").to_owned();
        let transport = str_of(v, "transport").map(str::to_owned);
        let name = match transport {
            Some(t) if !server.contains(&t) && scenario != "fanout" => format!("{server} ({t})"),
            _ => server,
        };
        runs.entry(key)
            .or_default()
            .entry(name)
            .or_default()
            .push((num(v, "p99_us").unwrap_or(0.0), pts));
    }
    runs.into_iter()
        .map(|((file, title), by_server)| Chart {
            x_log: true,
            file,
            title,
            x_desc: "publish-to-receipt latency, ms (log scale)",
            y_desc: "fraction of deliveries",
            series: by_server
                .into_iter()
                .map(|(server, mut runs)| {
                    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mid = runs.len() / 2;
                    let pts = runs.swap_remove(mid).1;
                    (server, pts)
                })
                .collect(),
        })
        .collect()
}

/// A colour per series name, stable across charts.
fn colour_map(charts: &[Chart]) -> BTreeMap<String, RGBColor> {
    let mut names: Vec<&str> = Vec::new();
    for c in charts {
        for (name, _) in &c.series {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    // duplex first, then the others in the order met.
    names.sort_by_key(|n| !n.starts_with("duplex"));
    names
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), COLOURS[i % COLOURS.len()]))
        .collect()
}

/// Draws one chart: log-scale or linear x, linear y from 0.
fn draw(path: &Path, chart: &Chart, colours: &BTreeMap<String, RGBColor>) -> Result<()> {
    let all = chart.series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, 0.0f64, 0.0f64);
    for &(x, y) in all {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if !(x_min.is_finite() && x_min > 0.0) {
        x_min = 1.0;
    }
    let y_hi = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    if chart.x_log {
        // A single x value (or one point) still needs a range.
        let (lo, hi) = (x_min / 1.5, (x_max * 1.5).max(x_min * 2.0));
        draw_on(path, chart, colours, (lo..hi).log_scale(), y_hi)
    } else {
        draw_on(path, chart, colours, 0.0..(x_max * 1.05).max(1.0), y_hi)
    }
}

fn draw_on<X>(
    path: &Path,
    chart: &Chart,
    colours: &BTreeMap<String, RGBColor>,
    x_range: X,
    y_hi: f64,
) -> Result<()>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, 0.0..y_hi)
        .map_err(|e| err(&e))?;
    ctx.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .x_label_formatter(&|x| fmt_axis(*x))
        .y_label_formatter(&|y| fmt_axis(*y))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, pts) in &chart.series {
        let colour = colours.get(name).copied().unwrap_or(BLACK);
        ctx.draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        if pts.len() <= 20 {
            ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Axis labels: 1.5k, 2.0M, 0.25.
fn fmt_axis(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_kind() {
        let dir = std::env::temp_dir().join(format!("duplex-bench-plot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("r.jsonl");
        std::fs::write(
            &input,
            r#"{"scenario":"meta"}
{"scenario":"fanout","server":"duplex-ws","transport":"ws","subscribers":1000,"rate":0.0,"window":8,"deliveries_per_server_cpu_sec":500000.0,"p99_us":900.0,"cdf_us":[[0.5,100.0],[0.99,900.0],[1.0,1200.0]]}
{"scenario":"fanout","server":"duplex-ws","transport":"ws","subscribers":10000,"rate":0.0,"window":8,"deliveries_per_server_cpu_sec":400000.0,"p99_us":900.0,"cdf_us":[[0.5,100.0],[1.0,1200.0]]}
{"scenario":"fanout","server":"socket.io","transport":"sio-room","subscribers":1000,"rate":0.0,"window":8,"deliveries_per_server_cpu_sec":100000.0,"p99_us":900.0,"cdf_us":[[0.5,300.0],[1.0,5000.0]]}
{"scenario":"sub-idle","server":"duplex-ws","connections":1000,"rss_before_kib":1000,"rss_after_kib":3000}
{"scenario":"sub-idle","server":"duplex-ws","connections":5000,"rss_before_kib":1000,"rss_after_kib":11000}
{"scenario":"echo","server":"duplex","connections":100,"size":20,"msgs_per_server_cpu_sec":150000.0}
{"scenario":"fanout","server":"x","subscribers":1,"error":"boom"}
"#,
        )
        .unwrap();
        let out = dir.join("plots");
        let written = run(&[input], &out).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.contains(&"throughput-fanout-max-w8.svg".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"throughput-echo-20B.svg".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"memory-vs-connections.svg".to_owned()),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("latency-cdf-fanout-1000-")),
            "{names:?}"
        );
        let svg = std::fs::read_to_string(out.join("throughput-fanout-max-w8.svg")).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("duplex-ws") && svg.contains("socket.io"));
        assert!(svg.contains("<polyline"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
