//! Load generator for duplex's end-to-end WebSocket benchmarks.
//!
//! The client side speaks WebSocket through duplex's own sans-IO protocol
//! core (`ws_proto`) directly over tokio `TcpStream`s, so the same client
//! loads every server in the comparison (duplex, fastwebsockets,
//! tokio-tungstenite) and its cost is the same for all of them.
//!
//! Two scenarios:
//! - [`echo`]: N connections, each keeping exactly one message in flight;
//!   reports messages per server CPU-second (the server's CPU time is read
//!   from `/proc/PID/stat`), messages per wall-clock second and latency
//!   percentiles.
//! - [`idle`]: opens connections that complete the handshake and then send
//!   nothing, and reports how much the server's resident memory grows per
//!   connection (`VmRSS` from `/proc/PID/status`).
//!
//! The `duplex-bench` binary wraps both; `bench/run-echo.sh` runs the whole
//! comparison matrix.
//!
//! The fan-out, sub-idle and storm scenarios can spread their connections
//! over several client processes (`--processes N`, [`workers`]) when one
//! process may not hold enough descriptors.

pub mod centrifuge;
pub mod client;
pub mod cluster;
pub mod echo;
pub mod fanout;
pub mod fanout_report;
pub mod histogram;
pub mod http;
pub mod idle;
pub mod jwt;
pub mod output;
pub mod plot;
pub mod procfs;
pub mod progress;
pub mod ramp;
pub mod report;
pub mod sio;
pub mod soak;
pub mod storm;
pub mod sub_idle;
pub mod subscriber;
pub mod target;
pub mod workers;
