//! What the benchmark reads about the server process from `/proc`.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (all threads of the
//! process), in clock ticks; resident memory is `VmRSS` of
//! `/proc/PID/status`, in KiB. Linux only.

use std::process::Command;

use anyhow::{bail, Context as _, Result};

/// Clock ticks per second (`getconf CLK_TCK`), 100 if it cannot be asked.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// User and system CPU time of process `pid` (`utime`, `stime` of
/// `/proc/PID/stat`, all threads), in clock ticks.
pub fn cpu_times(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_times(&stat).with_context(|| format!("parsing {path}"))
}

/// User plus system CPU time of process `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    cpu_times(pid).map(|(user, system)| user + system)
}

/// Parses `(utime, stime)` out of the text of a `/proc/PID/stat` file.
pub fn parse_cpu_times(stat: &str) -> Result<(u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: count fields from the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no ')' after the command name");
    };
    // rest starts with field 3 (state); utime and stime are fields 14 and 15.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut next = |name: &str| -> Result<u64> {
        fields
            .next()
            .with_context(|| format!("missing {name}"))?
            .parse()
            .with_context(|| format!("bad {name}"))
    };
    Ok((next("utime")?, next("stime")?))
}

/// Seconds between two tick readings (`None` if either is missing).
pub fn ticks_to_seconds(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    let ticks_per_sec = clock_ticks_per_sec() as f64;
    match (before, after) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks_per_sec),
        _ => None,
    }
}

/// A process's CPU time over a measured window from two [`cpu_times`]
/// readings: `(total, user)` seconds, `None` without readings.
pub fn window_cpu(
    before: Option<(u64, u64)>,
    after: Option<(u64, u64)>,
) -> (Option<f64>, Option<f64>) {
    let total = |(user, system): (u64, u64)| user + system;
    (
        ticks_to_seconds(before.map(total), after.map(total)),
        ticks_to_seconds(before.map(|t| t.0), after.map(|t| t.0)),
    )
}

/// Resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rss_kib(&status).with_context(|| format!("parsing {path}"))
}

/// Parses the `VmRSS` line out of the text of a `/proc/PID/status` file.
pub fn parse_rss_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?;
    let kib = line.trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("bad VmRSS {kib:?}"))
}

/// Server memory per connection between two points of an idle ramp: the
/// RSS growth from `rss_from_kib` (with `from` connections) to `rss_to_kib`
/// (with `to`), divided by the connections added. From 0 it is the overall
/// average; between two steps, the slope.
pub fn kib_per_connection(rss_from_kib: u64, rss_to_kib: u64, from: usize, to: usize) -> f64 {
    (rss_to_kib as f64 - rss_from_kib as f64) / (to - from) as f64
}

/// The host's count of connections dropped because a listen queue was
/// full (`TcpExt: ListenOverflows` of `/proc/net/netstat`); system-wide,
/// so meaningful on an otherwise quiet host.
pub fn listen_overflows() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").context("reading /proc/net/netstat")?;
    parse_netstat(&text, "TcpExt:", "ListenOverflows")
}

/// One counter of `/proc/net/netstat`: a header line of names and a line
/// of values, both starting with `prefix`.
pub fn parse_netstat(text: &str, prefix: &str, name: &str) -> Result<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        bail!("no {prefix} lines");
    };
    let at = names
        .split_ascii_whitespace()
        .position(|n| n == name)
        .with_context(|| format!("no {name} counter"))?;
    values
        .split_ascii_whitespace()
        .nth(at)
        .with_context(|| format!("no value for {name}"))?
        .parse()
        .with_context(|| format!("bad value for {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_name() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 1 0";
        assert_eq!(parse_cpu_times(stat).unwrap(), (1234, 567));
        assert!(parse_cpu_times("42 noparen").is_err());
        assert!(parse_cpu_times("42 (a) S 1 2").is_err());
    }

    #[test]
    fn window_cpu_splits_user_from_total() {
        let (total, user) = window_cpu(Some((100, 50)), Some((300, 150)));
        let per_tick = 1.0 / clock_ticks_per_sec() as f64;
        assert_eq!(total, Some(300.0 * per_tick));
        assert_eq!(user, Some(200.0 * per_tick));
        assert_eq!(window_cpu(None, Some((1, 1))), (None, None));
    }

    #[test]
    fn memory_per_connection() {
        assert_eq!(kib_per_connection(2000, 3000, 0, 1000), 1.0);
        assert_eq!(kib_per_connection(3000, 11000, 1000, 5000), 2.0);
        // RSS can shrink between steps; the slope says so.
        assert_eq!(kib_per_connection(3000, 2000, 1000, 2000), -1.0);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(parse_rss_kib(status).unwrap(), 2048);
        assert!(parse_rss_kib("Name:\tx\n").is_err());
    }

    #[test]
    fn parses_netstat() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 13\nIpExt: A\nIpExt: 1\n";
        assert_eq!(
            parse_netstat(text, "TcpExt:", "ListenOverflows").unwrap(),
            12
        );
        assert!(parse_netstat(text, "TcpExt:", "Nope").is_err());
        assert!(parse_netstat("", "TcpExt:", "ListenOverflows").is_err());
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        rss_kib(pid).unwrap();
        cpu_ticks(pid).unwrap();
        assert!(clock_ticks_per_sec() > 0);
    }
}
