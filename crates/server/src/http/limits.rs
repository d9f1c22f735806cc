//! Connection limits of the accept loop: how many TCP connections may be
//! open at once, overall and from one IP address, and what a connection
//! over a limit gets.
//!
//! Owns the counts ([`Limits`]), the [`Slot`] a connection holds while it
//! is open (kept inside its IO by [`Counted`], so that a WebSocket handed
//! off by an HTTP upgrade keeps counting until it closes) and the refusal:
//! one HTTP 503 answer with `Retry-After`, then the connection is closed.
//! It does not accept connections nor route requests (`http` does), and
//! does not limit what an open connection sends (the session does).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::util::{text, Body};

/// What a refused client is told to wait before retrying, in seconds.
const RETRY_AFTER_SECS: &str = "5";
/// How long a refused connection may take to send its request head.
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long answering a refused connection may take in all.
const REFUSAL_TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most refused connections being answered at once; more are closed
/// without an answer (a flood must not cost a task each).
const MAX_REFUSING: usize = 1024;

/// Which limit a connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// `max_connections`.
    Total,
    /// `max_connections_per_ip`.
    PerIp,
}

/// Open connections, counted overall and by IP address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// The limits of one listener and the connections counted against them.
#[derive(Clone)]
pub(crate) struct Limits {
    /// 0 is no limit.
    max_total: usize,
    /// 0 is no limit.
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
    refusing: Arc<Semaphore>,
}

impl Limits {
    /// Limits of `max_total` connections and `max_per_ip` from one
    /// address (0: no limit).
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Arc::default(),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Slot, Over> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if self.max_total != 0 && counts.total >= self.max_total {
            return Err(Over::Total);
        }
        if self.max_per_ip != 0 {
            let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
            if from_ip >= self.max_per_ip {
                return Err(Over::PerIp);
            }
        }
        counts.total += 1;
        *counts.by_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Answers `tcp` with one 503 (over TLS with `tls`) and closes it, in a
    /// task of its own; when too many refusals are under way, closes it at
    /// once.
    pub(crate) fn refuse(&self, tcp: TcpStream, over: Over, tls: Option<TlsAcceptor>) {
        let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() else {
            drop(tcp);
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                Ok::<_, Infallible>(refusal(over))
            });
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(REFUSAL_READ_TIMEOUT)
                    .keep_alive(false);
                b
            };
            let answer = async move {
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(REFUSAL_TOTAL_TIMEOUT, answer).await;
        });
    }
}

/// The answer to a request on a connection over a limit.
fn refusal(over: Over) -> Response<Body> {
    let message = match over {
        Over::Total => "too many connections\n",
        Over::PerIp => "too many connections from this address\n",
    };
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// One open connection's place in the counts; dropping it frees the place
/// (and forgets the address when it has no connection left).
pub(crate) struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

/// An IO stream that holds its connection's [`Slot`]: the place is freed
/// when the stream is dropped, after an HTTP upgrade too.
pub(crate) struct Counted<IO> {
    io: IO,
    _slot: Slot,
}

impl<IO> Counted<IO> {
    /// `io`, counted by `slot`.
    pub(crate) fn new(io: IO, slot: Slot) -> Self {
        Self { io, _slot: slot }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_freed_and_addresses_forgotten() {
        let limits = Limits::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = limits.admit(a).unwrap();
        let a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Over::PerIp));
        let b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Over::Total));
        drop(a1);
        let b2 = limits.admit(b).unwrap();
        drop((a2, b1, b2));
        let counts = limits.counts.lock().unwrap();
        assert_eq!(counts.total, 0);
        assert!(counts.by_ip.is_empty());
    }

    #[test]
    fn zero_is_no_limit() {
        let limits = Limits::new(0, 0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let slots: Vec<_> = (0..1000).map(|_| limits.admit(ip).unwrap()).collect();
        assert_eq!(limits.counts.lock().unwrap().total, 1000);
        drop(slots);
        assert!(limits.counts.lock().unwrap().by_ip.is_empty());
    }
}
