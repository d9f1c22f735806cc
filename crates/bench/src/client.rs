//! One benchmark client connection: duplex's sans-IO protocol core
//! ([`ws_proto::Connection`]) driven over a tokio [`TcpStream`].
//!
//! The opening handshake is built by [`ws_proto::handshake::client_request`]
//! and checked by [`ws_proto::handshake::parse_response`]; after it, frames
//! are encoded by [`Connection::send_binary`] / [`Connection::send_text`],
//! written with vectored writes from [`Connection::output_slices`], and
//! decoded by [`Connection::receive`] from one reusable read buffer. Pings
//! from the server are answered by the protocol core. No compression is
//! offered, so every server is compared on plain frames.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use ws_proto::handshake::{client_request, parse_response, ClientOptions};
use ws_proto::{CloseCode, CloseFrame, Config, Connection, Message, Role};

use crate::target::Target;

/// Largest response header block accepted before giving up.
const MAX_HANDSHAKE_RESPONSE: usize = 16 * 1024;

/// An open WebSocket client connection.
#[derive(Debug)]
pub struct Client {
    tcp: TcpStream,
    conn: Connection,
    buf: Vec<u8>,
    /// Unconsumed input is `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Client {
    /// Connects to `target` and completes the opening handshake. `read_buf`
    /// is the size of the read buffer kept for the connection's lifetime.
    pub async fn connect(target: &Target, read_buf: usize) -> Result<Self> {
        let tcp = connect_tcp(target).await?;
        Self::handshake(tcp, target, read_buf).await
    }

    /// Completes the opening handshake on a connected socket.
    pub async fn handshake(mut tcp: TcpStream, target: &Target, read_buf: usize) -> Result<Self> {
        let req = client_request(&target.host, &target.path, &ClientOptions::default());
        tcp.write_all(req.bytes())
            .await
            .context("sending upgrade request")?;

        let mut head = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        let consumed = loop {
            let n = tcp
                .read(&mut chunk)
                .await
                .context("reading upgrade response")?;
            if n == 0 {
                bail!("server closed the connection during the handshake");
            }
            head.extend_from_slice(&chunk[..n]);
            if let Some((_response, consumed)) =
                parse_response(&head, &req).context("bad upgrade response")?
            {
                break consumed;
            }
            if head.len() > MAX_HANDSHAKE_RESPONSE {
                bail!("upgrade response header block exceeds {MAX_HANDSHAKE_RESPONSE} bytes");
            }
        };

        // Frames the server sent right behind its response are already ours.
        let leftover = &head[consumed..];
        let mut buf = vec![0u8; read_buf.max(leftover.len()).max(1)];
        buf[..leftover.len()].copy_from_slice(leftover);
        Ok(Self {
            tcp,
            conn: Connection::new(Role::Client, Config::default()),
            buf,
            start: 0,
            end: leftover.len(),
        })
    }

    /// Sends a binary message and writes it out.
    pub async fn send_binary(&mut self, payload: &[u8]) -> Result<()> {
        self.conn.send_binary(payload)?;
        self.flush().await
    }

    /// Sends a text message and writes it out.
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.conn.send_text(text)?;
        self.flush().await
    }

    /// Writes all queued output to the socket.
    pub async fn flush(&mut self) -> Result<()> {
        while self.conn.pending_output() > 0 {
            let written = {
                let mut slices = [IoSlice::new(&[]); 8];
                let n = self.conn.output_slices(&mut slices);
                self.tcp
                    .write_vectored(&slices[..n])
                    .await
                    .context("writing to the server")?
            };
            if written == 0 {
                bail!("server stopped accepting data");
            }
            self.conn.advance_output(written);
        }
        Ok(())
    }

    /// Reads until the next message (of any kind) is complete. Answers to
    /// pings and closes are written out before it returns.
    pub async fn next_message(&mut self) -> Result<Message> {
        loop {
            while self.start < self.end {
                let (used, message) = self
                    .conn
                    .receive(&self.buf[self.start..self.end])
                    .context("protocol error from the server")?;
                self.start += used;
                if let Some(message) = message {
                    if self.conn.pending_output() > 0 {
                        self.flush().await?;
                    }
                    return Ok(message);
                }
            }
            self.start = 0;
            self.end = 0;
            let n = self
                .tcp
                .read(&mut self.buf)
                .await
                .context("reading from the server")?;
            if n == 0 {
                bail!("server closed the connection");
            }
            self.end = n;
        }
    }

    /// Waits until the socket has something to read (or an error or end of
    /// stream to report). Cancel-safe: nothing is consumed.
    pub async fn readable(&self) -> Result<()> {
        if self.start < self.end {
            return Ok(());
        }
        self.tcp.readable().await.context("waiting to read")
    }

    /// The next message if one can be had without waiting: from what is
    /// buffered, else from one non-blocking read. `Ok(None)` when the
    /// socket has nothing more for now. Answers to pings are written out
    /// before it returns.
    pub async fn try_next_message(&mut self) -> Result<Option<Message>> {
        let mut read_once = false;
        loop {
            while self.start < self.end {
                let (used, message) = self
                    .conn
                    .receive(&self.buf[self.start..self.end])
                    .context("protocol error from the server")?;
                self.start += used;
                if let Some(message) = message {
                    if self.conn.pending_output() > 0 {
                        self.flush().await?;
                    }
                    return Ok(Some(message));
                }
            }
            if read_once {
                return Ok(None);
            }
            self.start = 0;
            self.end = 0;
            match self.tcp.try_read(&mut self.buf) {
                Ok(0) => bail!("server closed the connection"),
                Ok(n) => self.end = n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e).context("reading from the server"),
            }
            read_once = true;
        }
    }

    /// Starts the close handshake and waits for the server's close frame
    /// (or the end of the stream).
    pub async fn close(mut self) -> Result<()> {
        self.conn
            .close(Some(CloseFrame::new(CloseCode::NORMAL, "")))?;
        self.flush().await?;
        loop {
            match self.next_message().await {
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                // The server may drop the TCP connection right after its
                // close frame, or without one: either way we are done.
                Err(_) => break,
            }
        }
        let _ = self.tcp.shutdown().await;
        Ok(())
    }
}

/// Local addresses to connect from, taken in turn; empty: let the kernel
/// choose (127.0.0.1 towards a loopback server).
static SOURCES: std::sync::OnceLock<Vec<IpAddr>> = std::sync::OnceLock::new();
/// The next entry of [`SOURCES`] to use.
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Spreads this process's connections over `addrs` (e.g. 127.0.0.1 to
/// 127.0.0.4), each good for about 28,000 ephemeral ports towards one
/// server port. Only the first call has an effect; call it before opening
/// connections.
pub fn set_source_addrs(addrs: Vec<IpAddr>) {
    let _ = SOURCES.set(addrs);
}

/// The addresses set by [`set_source_addrs`] (empty if none).
pub fn source_addrs() -> Vec<IpAddr> {
    SOURCES.get().cloned().unwrap_or_default()
}

/// Parses `127.0.0.1-127.0.0.4` (an inclusive range of the last octet) or
/// a comma-separated list of addresses.
///
/// ```
/// let a = duplex_bench::client::parse_source_addrs("127.0.0.1-127.0.0.3").unwrap();
/// assert_eq!(a.len(), 3);
/// assert_eq!(a[2].to_string(), "127.0.0.3");
/// let b = duplex_bench::client::parse_source_addrs("127.0.0.1,127.0.0.9").unwrap();
/// assert_eq!(b[1].to_string(), "127.0.0.9");
/// assert!(duplex_bench::client::parse_source_addrs("127.0.0.5-127.0.0.1").is_err());
/// ```
pub fn parse_source_addrs(spec: &str) -> Result<Vec<IpAddr>> {
    if let Some((from, to)) = spec.split_once('-') {
        let from: std::net::Ipv4Addr = from.trim().parse().context("bad first address")?;
        let to: std::net::Ipv4Addr = to.trim().parse().context("bad last address")?;
        let (a, b) = (from.octets(), to.octets());
        if a[..3] != b[..3] || a[3] > b[3] {
            bail!("{spec:?}: a range must differ in the last octet only, increasing");
        }
        return Ok((a[3]..=b[3])
            .map(|last| IpAddr::from([a[0], a[1], a[2], last]))
            .collect());
    }
    spec.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .with_context(|| format!("bad address {s:?}"))
        })
        .collect()
}

/// Opens a TCP connection to `target` (from the next source address, if
/// any were set) with Nagle's algorithm off.
pub async fn connect_tcp(target: &Target) -> Result<TcpStream> {
    let source = SOURCES
        .get()
        .filter(|s| !s.is_empty())
        .map(|s| s[NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % s.len()]);
    let tcp = match source {
        None => TcpStream::connect(target.addr).await,
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding to {ip}"))?;
            socket.connect(target.addr).await
        }
    }
    .with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}
