//! Spreading one scenario's connections over several client processes
//! (`--processes N`), for runs that need more descriptors than one process
//! may hold (20,000 open files per process on the benchmark host).
//!
//! The parent re-executes its own binary ([`std::env::current_exe`]) N
//! times with the hidden `worker` subcommand. Each child reads a [`Job`]
//! (its share of the connections) as the first JSON line of its standard
//! input, then [`Cmd`]s, one JSON line each, and answers with [`Event`]s,
//! one JSON line each on its standard output. The parent keeps the
//! publisher (fan-out), reads the server's RSS and CPU, merges the
//! children's counts and latency histograms and prints the usual result
//! lines. A child exits as soon as its standard input closes, so children
//! never outlive the parent; the parent kills the ones left when it stops.
//!
//! Owns the process plumbing and the line protocol; what a child does with
//! its job is each scenario's (`worker` functions of [`crate::fanout`],
//! [`crate::sub_idle`] and [`crate::storm`]).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::ops::Range;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::histogram::Histogram;
use crate::subscriber::SubscribeSpec;

/// The hidden subcommand a child runs.
pub const WORKER_SUBCOMMAND: &str = "worker";

/// How long the parent waits for one answer of every child (opening a
/// share of connections included).
pub const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// A child's share of the work (the first line of its standard input).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum Job {
    /// Fan-out subscribers numbered `first..first + count`; then
    /// [`Cmd::Measure`] and [`Cmd::Report`].
    Fanout {
        /// How to connect and subscribe.
        spec: SubscribeSpec,
        /// Number of the first subscriber (it names its user).
        first: usize,
        /// Subscribers to open.
        count: usize,
        /// Connects in flight while opening.
        ramp: usize,
    },
    /// Idle subscribed connections, opened on [`Cmd::Open`].
    SubIdle {
        /// How to connect and subscribe.
        spec: SubscribeSpec,
        /// Connects in flight while opening.
        ramp: usize,
    },
    /// A storm of clients numbered `first..first + count`, on [`Cmd::Go`]
    /// (after [`Cmd::Prepare`] for a recovery storm).
    Storm {
        /// How to connect and subscribe.
        spec: SubscribeSpec,
        /// Number of the first client.
        first: usize,
        /// Clients.
        count: usize,
        /// Connects in flight at most (0: all at once).
        concurrency: usize,
        /// Recovery storm: publications each client must recover.
        recover: Option<u64>,
    },
}

/// What the parent asks of a child after its job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Cmd {
    /// Fan-out: start (`on`) or stop counting deliveries.
    Measure {
        /// Whether the measured window starts.
        on: bool,
    },
    /// Fan-out: send [`Event::Measured`].
    Report,
    /// Sub-idle: open the connections numbered `from..to` (keeping the
    /// earlier ones), then send [`Event::Opened`].
    Open {
        /// First connection number.
        from: usize,
        /// One past the last.
        to: usize,
    },
    /// Sub-idle: send [`Event::Opened`] again (fresh `dropped`).
    Status,
    /// Recovery storm: subscribe, note positions, disconnect; then send
    /// [`Event::Prepared`].
    Prepare,
    /// Storm: start; send [`Event::StormDone`] at the end and keep the
    /// connections until standard input closes.
    Go,
}

/// What a child tells the parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The job is set up (fan-out: `opened` subscribers are subscribed).
    Ready {
        /// Connections open.
        opened: usize,
    },
    /// Fan-out: deliveries received so far by this child's subscribers
    /// (sent whenever each of them may have received one more).
    Delivered {
        /// The running total.
        total: u64,
    },
    /// Fan-out: the measured window's figures.
    Measured {
        /// Deliveries in the window.
        deliveries: u64,
        /// Slowest, in nanoseconds.
        max_ns: u64,
        /// Publish-to-receipt nanoseconds ([`Histogram::to_pairs`]).
        latency: Vec<(usize, u64)>,
        /// This child's CPU ticks over the window, if it could read them.
        cpu_ticks: Option<u64>,
    },
    /// Sub-idle: connections open and connections the server closed.
    Opened {
        /// Connections this child holds open (and ever opened).
        open: usize,
        /// Of those, how many the server closed since.
        dropped: u64,
    },
    /// Recovery storm: positions noted, everyone disconnected.
    Prepared,
    /// Storm: this child's share is over.
    StormDone {
        /// Clients connected and subscribed.
        completed: u64,
        /// Clients that failed.
        failed: u64,
        /// Recovery storm: clients that recovered exactly.
        recovered: u64,
        /// The first failure, if any.
        first_error: Option<String>,
        /// Connect-to-subscribe microseconds ([`Histogram::to_pairs`]).
        latency: Vec<(usize, u64)>,
        /// Slowest, in microseconds.
        max_us: u64,
    },
    /// The child failed and exits.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Not sent: the parent's note that a child's output ended.
    Exited,
}

/// `total` items split into `n` contiguous blocks of about equal size,
/// starting at `start`.
///
/// ```
/// let s = duplex_bench::workers::shares(10, 7, 3);
/// assert_eq!(s, vec![10..13, 13..15, 15..17]);
/// ```
pub fn shares(start: usize, total: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.max(1);
    let mut from = start;
    (0..n)
        .map(|i| {
            let len = total / n + usize::from(i < total % n);
            from += len;
            from - len..from
        })
        .collect()
}

/// `value` (connects in flight, say) divided over `n` processes, rounded
/// up; 0 stays 0 (no limit).
pub fn per_process(value: usize, n: usize) -> usize {
    value.div_ceil(n.max(1))
}

/// The source addresses of child `i` of `n` out of `addrs`: disjoint
/// slices when there are at least `n`, else one address each in turn
/// (several processes may share an address: the kernel hands out distinct
/// ports).
///
/// ```
/// use std::net::IpAddr;
/// let a: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
///     .iter().map(|s| s.parse().unwrap()).collect();
/// assert_eq!(duplex_bench::workers::source_slice(&a, 0, 2).len(), 2);
/// assert_eq!(duplex_bench::workers::source_slice(&a, 1, 2), &a[2..]);
/// assert_eq!(duplex_bench::workers::source_slice(&a, 4, 5), &a[1..2]);
/// assert!(duplex_bench::workers::source_slice(&[], 0, 2).is_empty());
/// ```
pub fn source_slice(addrs: &[IpAddr], i: usize, n: usize) -> &[IpAddr] {
    if addrs.is_empty() {
        return addrs;
    }
    if addrs.len() >= n {
        let r = &shares(0, addrs.len(), n)[i];
        &addrs[r.clone()]
    } else {
        let at = i % addrs.len();
        &addrs[at..=at]
    }
}

/// The running children of one scenario, seen from the parent.
#[derive(Debug)]
pub struct Workers {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    events: Option<mpsc::UnboundedReceiver<(usize, Event)>>,
}

impl Workers {
    /// Starts one child per job (`--client-threads threads`), this
    /// process's source addresses shared out among them.
    pub fn spawn(jobs: &[Job], threads: usize) -> Result<Self> {
        let exe = std::env::current_exe().context("finding this program's path")?;
        let sources = crate::client::source_addrs();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut workers = Self {
            children: Vec::with_capacity(jobs.len()),
            stdins: Vec::with_capacity(jobs.len()),
            events: Some(rx),
        };
        for (i, job) in jobs.iter().enumerate() {
            let mut cmd = Command::new(&exe);
            let mine = source_slice(&sources, i, jobs.len());
            if !mine.is_empty() {
                let list: Vec<String> = mine.iter().map(ToString::to_string).collect();
                cmd.arg("--source-addrs").arg(list.join(","));
            }
            cmd.arg(WORKER_SUBCOMMAND)
                .arg("--client-threads")
                .arg(threads.max(1).to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting client process {i} ({})", exe.display()))?;
            let stdout = child.stdout.take().context("no pipe from the child")?;
            workers.stdins.push(child.stdin.take());
            workers.children.push(child);
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || read_events(i, stdout, &tx))
                .context("starting a reader thread")?;
            workers.send(i, job)?;
        }
        Ok(workers)
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Writes `message` as one JSON line to child `i`.
    pub fn send<T: Serialize>(&mut self, i: usize, message: &T) -> Result<()> {
        let mut line = serde_json::to_string(message)?;
        line.push('\n');
        let stdin = self
            .stdins
            .get_mut(i)
            .and_then(Option::as_mut)
            .with_context(|| format!("client process {i} is closed"))?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("writing to client process {i}"))
    }

    /// Sends `cmd` to every child.
    pub fn send_all(&mut self, cmd: &Cmd) -> Result<()> {
        (0..self.len()).try_for_each(|i| self.send(i, cmd))
    }

    /// Hands the children's events over (once), e.g. to a task that
    /// routes them; [`Workers::collect`] cannot be used after.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<(usize, Event)>> {
        self.events.take()
    }

    /// Waits for one answer from every child: `pick` keeps the events it
    /// returns `Some` for, ignores the others (`None`) and fails on the
    /// ones it refuses; an error event or a child exiting is an error.
    /// Answers come back in child order.
    pub async fn collect<T>(
        &mut self,
        mut pick: impl FnMut(Event) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let n = self.len();
        let events = self
            .events
            .as_mut()
            .context("the events were handed to a router")?;
        let mut got: Vec<Option<T>> = (0..n).map(|_| None).collect();
        let mut missing = n;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while missing > 0 {
            let (i, event) = tokio::time::timeout_at(deadline, events.recv())
                .await
                .context("timed out waiting for the client processes")?
                .context("every client process is gone")?;
            let event = check(i, event)?;
            if let Some(value) = pick(event).with_context(|| format!("client process {i}"))? {
                match got.get_mut(i) {
                    Some(slot @ None) => {
                        *slot = Some(value);
                        missing -= 1;
                    }
                    _ => bail!("client process {i} answered twice"),
                }
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Closes every child's standard input (they exit, closing their
    /// connections) and waits for them.
    pub fn finish(mut self) -> Result<()> {
        self.stdins.clear();
        for (i, child) in self.children.iter_mut().enumerate() {
            let status = child
                .wait()
                .with_context(|| format!("client process {i}"))?;
            if !status.success() {
                bail!("client process {i} ended with {status}");
            }
        }
        self.children.clear();
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stdins.clear();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Turns a child's error event or its exit into an error.
pub fn check(i: usize, event: Event) -> Result<Event> {
    match event {
        Event::Error { message } => bail!("client process {i}: {message}"),
        Event::Exited => bail!("client process {i} exited"),
        event => Ok(event),
    }
}

/// A reader thread: child `i`'s output lines, parsed, to `tx`; then
/// [`Event::Exited`].
fn read_events(
    i: usize,
    stdout: std::process::ChildStdout,
    tx: &mpsc::UnboundedSender<(usize, Event)>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let event = serde_json::from_str(&line).unwrap_or_else(|e| Event::Error {
            message: format!("unreadable line {:?}: {e}", crate::output::clip(&line)),
        });
        if tx.send((i, event)).is_err() {
            return;
        }
    }
    let _ = tx.send((i, Event::Exited));
}

/// Merges the latency buckets of children into `into`.
pub fn merge_pairs(into: &mut Histogram, pairs: &[(usize, u64)]) -> Result<()> {
    into.merge(&Histogram::from_pairs(pairs)?);
    Ok(())
}

/// The child's side: writes one event line to standard output. If the
/// parent is gone, the child exits.
pub fn emit(event: &Event) {
    let Ok(mut line) = serde_json::to_string(event) else {
        std::process::exit(3);
    };
    line.push('\n');
    let mut out = std::io::stdout().lock();
    if out
        .write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// The child's side: its job (first line of standard input) and the
/// commands that follow. A thread reads standard input; when it closes
/// (the parent stopped or died), the process exits.
pub fn read_job() -> Result<(Job, mpsc::UnboundedReceiver<Cmd>)> {
    let mut input = BufReader::new(std::io::stdin());
    let mut first = String::new();
    if input.read_line(&mut first).context("reading the job")? == 0 {
        std::process::exit(0);
    }
    let job = serde_json::from_str(&first)
        .with_context(|| format!("bad job line {:?}", crate::output::clip(&first)))?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("parent".into())
        .spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str(&line) {
                    Ok(cmd) => {
                        if tx.send(cmd).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        emit(&Event::Error {
                            message: format!("bad command {:?}: {e}", crate::output::clip(&line)),
                        });
                        std::process::exit(2);
                    }
                }
            }
            std::process::exit(0);
        })
        .context("starting the input thread")?;
    Ok((job, rx))
}

/// The child's side: runs the job; an error is reported to the parent
/// (and returned).
pub async fn run_child(job: Job, cmds: mpsc::UnboundedReceiver<Cmd>) -> Result<()> {
    crate::progress::hide_all();
    let result = match job {
        Job::Fanout {
            spec,
            first,
            count,
            ramp,
        } => crate::fanout::worker(&spec, first..first + count, ramp, cmds).await,
        Job::SubIdle { spec, ramp } => crate::sub_idle::worker(&spec, ramp, cmds).await,
        Job::Storm {
            spec,
            first,
            count,
            concurrency,
            recover,
        } => crate::storm::worker(&spec, first..first + count, concurrency, recover, cmds).await,
    };
    if let Err(e) = &result {
        emit(&Event::Error {
            message: format!("{e:#}"),
        });
    }
    result
}

/// The child's side: the next command (an error if the parent's input
/// thread is gone).
pub async fn next_cmd(cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> Result<Cmd> {
    cmds.recv().await.context("the parent is gone")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_everything_once() {
        for total in [0, 1, 5, 29, 30] {
            for n in 1..5 {
                let s = shares(3, total, n);
                assert_eq!(s.len(), n);
                assert_eq!(s[0].start, 3);
                assert!(s.windows(2).all(|w| w[0].end == w[1].start));
                assert_eq!(s[n - 1].end, 3 + total);
                let (min, max) = (
                    s.iter().map(ExactSizeIterator::len).min().unwrap(),
                    s.iter().map(ExactSizeIterator::len).max().unwrap(),
                );
                assert!(max - min <= 1, "{s:?}");
            }
        }
        assert_eq!(per_process(200, 3), 67);
        assert_eq!(per_process(0, 3), 0);
        assert_eq!(per_process(1, 2), 1);
    }

    #[test]
    fn messages_round_trip() {
        let job = Job::Storm {
            spec: SubscribeSpec {
                kind: crate::subscriber::SubKind::Sio,
                target: crate::target::Target {
                    addr: "127.0.0.1:8000".parse().unwrap(),
                    host: "127.0.0.1:8000".into(),
                    path: "/socket.io/?EIO=4&transport=websocket".into(),
                },
                channel: "bench".into(),
                token_secret: Some("s".into()),
                read_buf: 4096,
            },
            first: 10,
            count: 5,
            concurrency: 0,
            recover: Some(3),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains('\n'));
        let back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);

        let cmd = Cmd::Open { from: 1, to: 9 };
        let text = serde_json::to_string(&cmd).unwrap();
        assert_eq!(text, r#"{"cmd":"open","from":1,"to":9}"#);
        assert_eq!(serde_json::from_str::<Cmd>(&text).unwrap(), cmd);

        let event = Event::Measured {
            deliveries: 7,
            max_ns: 9,
            latency: vec![(3, 4)],
            cpu_ticks: None,
        };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
        assert!(serde_json::from_str::<Event>(r#"{"event":"nope"}"#).is_err());
    }

    #[test]
    fn errors_and_exits_fail() {
        assert!(check(0, Event::Exited).is_err());
        let e = check(
            1,
            Event::Error {
                message: "boom".into(),
            },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("client process 1: boom"));
        assert_eq!(check(0, Event::Prepared).unwrap(), Event::Prepared);
    }
}
