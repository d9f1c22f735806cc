//! The duplex server: one port serving Centrifugo's JSON client protocol on
//! `/connection/websocket`, Socket.IO on `/socket.io/`, the server API on
//! `/api/`, health, metrics and (in `--dev`) a demo page, all over the same
//! channels kept by the [`hub`].
//!
//! This crate is wiring: configuration and CLI ([`config`], [`cli`]), tokens
//! ([`auth`]), the shared [`node`], the transports ([`client`], [`sio`]),
//! the [`api`], [`metrics`], the router ([`http`]), start/stop ([`run`])
//! and, with a broker, the other nodes ([`cluster`]).
//! Wire formats live in `centrifuge-proto`, `socketio` and `ws`; channels,
//! history and presence in `hub`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod node;
pub mod run;
pub mod session;
pub mod sio;
#[doc(hidden)]
pub mod testing;
pub mod util;
