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

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
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
        let mut tcp = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        tcp.set_nodelay(true)?;
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
