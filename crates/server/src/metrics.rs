//! Counters and gauges, and their Prometheus text rendering for `/metrics`.
//!
//! Owns the numbers; transports and the API bump them. Hot-path counters
//! are relaxed atomics; labelled counters (error codes, API methods) sit
//! behind a short mutex because they change rarely. Gauges that another
//! part already knows (hub channel counts, registry sizes) are read at
//! render time instead of being kept twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::node::Transport;

/// Per-transport counters.
#[derive(Debug, Default)]
pub struct TransportCounters {
    /// Connections accepted (after the handshake).
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Client commands / events received.
    pub messages_in: AtomicU64,
    /// Replies and pushes sent (messages, not frames).
    pub messages_out: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes sent.
    pub bytes_out: AtomicU64,
}

/// A row of the per-transport table: name, type, help, which counter.
type TransportRow = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TransportCounters) -> &AtomicU64,
);

/// Every number the node reports.
#[derive(Debug)]
pub struct Metrics {
    /// Plain WebSocket (`/connection/websocket`).
    pub websocket: TransportCounters,
    /// Socket.IO.
    pub socketio: TransportCounters,
    /// Connections refused with 503 for being over `max_connections` or
    /// `max_connections_per_ip`.
    pub connections_refused: AtomicU64,
    /// Publications accepted from the HTTP API.
    pub publications_api: AtomicU64,
    /// Publications accepted from clients.
    pub publications_client: AtomicU64,
    /// Error replies by code (100–112), from clients and the API.
    errors: Mutex<BTreeMap<u32, u64>>,
    /// Disconnects by close code.
    disconnects: Mutex<BTreeMap<u16, u64>>,
    /// API requests by method and HTTP status.
    api_requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// API commands received, by method: one per request that passed the
    /// HTTP checks, plus one per command inside a `batch`.
    api_commands: Mutex<BTreeMap<String, u64>>,
    /// When these counters started (the node's start).
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            websocket: TransportCounters::default(),
            socketio: TransportCounters::default(),
            connections_refused: AtomicU64::new(0),
            publications_api: AtomicU64::new(0),
            publications_client: AtomicU64::new(0),
            errors: Mutex::default(),
            disconnects: Mutex::default(),
            api_requests: Mutex::default(),
            api_commands: Mutex::default(),
            started: Instant::now(),
        }
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_insert(0) += 1;
}

impl Metrics {
    /// The counters of one transport.
    pub fn transport(&self, transport: Transport) -> &TransportCounters {
        match transport {
            Transport::WebSocket => &self.websocket,
            Transport::SocketIo => &self.socketio,
        }
    }

    /// Counts an error reply with `code`.
    pub fn error(&self, code: u32) {
        bump(&self.errors, code);
    }

    /// Counts a disconnect with close `code`.
    pub fn disconnect(&self, code: u16) {
        bump(&self.disconnects, code);
    }

    /// Counts an API request.
    pub fn api_request(&self, method: &str, status: u16) {
        bump(&self.api_requests, (method.to_owned(), status));
    }

    /// Counts one API command received (top level or inside a batch).
    pub fn api_command(&self, method: &str) {
        bump(&self.api_commands, method.to_owned());
    }

    /// API requests counted with `method` and HTTP `status` so far.
    pub fn api_requests_with(&self, method: &str, status: u16) -> u64 {
        self.api_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(method.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// How long since the counters started (the node's uptime).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Errors counted with `code` so far.
    pub fn errors_with_code(&self, code: u32) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&code)
            .copied()
            .unwrap_or(0)
    }

    /// Renders the counters kept here as Prometheus text. `extra` gauges
    /// (name, help, value) are appended, for numbers owned elsewhere.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let per_transport: [TransportRow; 6] = [
            (
                "duplex_connections_total",
                "counter",
                "Connections accepted.",
                |t| &t.connections_total,
            ),
            (
                "duplex_connections",
                "gauge",
                "Connections open now.",
                |t| &t.connections_open,
            ),
            (
                "duplex_messages_received_total",
                "counter",
                "Client messages received.",
                |t| &t.messages_in,
            ),
            (
                "duplex_messages_sent_total",
                "counter",
                "Messages sent to clients.",
                |t| &t.messages_out,
            ),
            (
                "duplex_bytes_received_total",
                "counter",
                "Bytes received from clients.",
                |t| &t.bytes_in,
            ),
            (
                "duplex_bytes_sent_total",
                "counter",
                "Bytes sent to clients.",
                |t| &t.bytes_out,
            ),
        ];
        for (name, kind, help, field) in per_transport {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (label, t) in [("websocket", &self.websocket), ("socketio", &self.socketio)] {
                let _ = writeln!(out, "{name}{{transport=\"{label}\"}} {}", load(field(t)));
            }
        }
        let _ = writeln!(
            out,
            "# HELP duplex_connections_refused_total Connections refused with 503 over a connection limit.\n# TYPE duplex_connections_refused_total counter\nduplex_connections_refused_total {}",
            load(&self.connections_refused)
        );
        let _ = writeln!(
            out,
            "# HELP duplex_publications_total Publications accepted.\n# TYPE duplex_publications_total counter"
        );
        let _ = writeln!(
            out,
            "duplex_publications_total{{source=\"api\"}} {}",
            load(&self.publications_api)
        );
        let _ = writeln!(
            out,
            "duplex_publications_total{{source=\"client\"}} {}",
            load(&self.publications_client)
        );
        let _ = writeln!(
            out,
            "# HELP duplex_errors_total Error replies by code.\n# TYPE duplex_errors_total counter"
        );
        for (code, n) in self.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "duplex_errors_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP duplex_disconnects_total Disconnects by close code.\n# TYPE duplex_disconnects_total counter"
        );
        for (code, n) in self
            .disconnects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "duplex_disconnects_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP duplex_api_requests_total Server API requests by method and status.\n# TYPE duplex_api_requests_total counter"
        );
        for ((method, status), n) in self
            .api_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "duplex_api_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP duplex_api_commands_total Server API commands received by method (each command of a batch counted too).\n# TYPE duplex_api_commands_total counter"
        );
        for (method, n) in self
            .api_commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "duplex_api_commands_total{{method=\"{method}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP duplex_uptime_seconds Seconds since the node started.\n# TYPE duplex_uptime_seconds gauge\nduplex_uptime_seconds {}",
            self.uptime().as_secs()
        );
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.websocket
            .connections_total
            .fetch_add(3, Ordering::Relaxed);
        m.error(103);
        m.error(103);
        m.api_request("publish", 200);
        m.api_command("publish");
        m.api_command("publish");
        let text = m.render(&[("duplex_channels", "Channels.", 2.0)]);
        assert!(text.contains("duplex_connections_total{transport=\"websocket\"} 3"));
        assert!(text.contains("duplex_errors_total{code=\"103\"} 2"));
        assert!(text.contains("duplex_api_requests_total{method=\"publish\",status=\"200\"} 1"));
        assert!(text.contains("duplex_channels 2"));
        assert!(text.contains("duplex_api_commands_total{method=\"publish\"} 2"));
        assert!(text.contains("duplex_uptime_seconds "));
        assert_eq!(m.api_requests_with("publish", 200), 1);
        assert_eq!(m.api_requests_with("publish", 400), 0);
        assert_eq!(m.errors_with_code(103), 2);
    }
}
