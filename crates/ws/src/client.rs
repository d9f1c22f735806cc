//! Client side: `ws://` and `wss://` URLs, TCP and rustls, and the client
//! handshake over any stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ws_proto::deflate::DeflateConfig;
use ws_proto::handshake::{self, ClientOptions, ClientResponse};
use ws_proto::{Connection, Role};

use crate::{Error, WebSocket, WebSocketConfig};

/// A TCP stream, possibly wrapped in TLS.
#[derive(Debug)]
pub enum MaybeTlsStream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The parts of a `ws://` or `wss://` URL a connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    tls: bool,
    /// Host as written, without brackets around IPv6 addresses.
    host: String,
    port: u16,
    /// `Host` header value (host plus any explicit port).
    authority: String,
    /// Path and query.
    path: String,
}

fn parse_url(url: &str) -> Result<Target, Error> {
    let bad = |reason| Error::Url {
        url: url.to_owned(),
        reason,
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("ws://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest)
    } else {
        return Err(bad("the scheme must be ws:// or wss://"));
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("the URL needs a host (and no user info)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = &v6[end + 1..];
        (&v6[..end], port.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        None if tls => 443,
        None => 80,
    };
    if host.is_empty() {
        return Err(bad("the URL needs a host"));
    }
    Ok(Target {
        tls,
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// Opens client connections with shared settings; cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), ws::Error> {
/// let connector = ws::Connector::new().deflate(ws::DeflateConfig::default());
/// let (mut socket, _response) = connector.connect("ws://127.0.0.1:9001/").await?;
/// socket.send(ws::Message::text("hello")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Connector {
    options: ClientOptions,
    config: WebSocketConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    handshake_timeout: Duration,
}

impl Default for Connector {
    fn default() -> Self {
        Self {
            options: ClientOptions::default(),
            config: WebSocketConfig::default(),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Connector {
    /// Default settings: no compression, the webpki root certificates.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers permessage-deflate.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.options.deflate = Some(config);
        self
    }

    /// Subprotocols to offer.
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.options.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// An extra request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.extra_headers.push((name.into(), value.into()));
        self
    }

    /// Connection settings.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// TLS settings for `wss://` (default: webpki roots, TLS 1.2 and 1.3).
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long the server has to answer the upgrade.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Connects to `url` (`ws://` or `wss://`).
    pub async fn connect(
        &self,
        url: &str,
    ) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse), Error> {
        let target = parse_url(url)?;
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        let stream = if target.tls {
            let tls = match &self.tls {
                Some(tls) => tls.clone(),
                None => default_tls()?,
            };
            let name = ServerName::try_from(target.host.clone()).map_err(|_| Error::Url {
                url: url.to_owned(),
                reason: "the host is not a valid TLS server name",
            })?;
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            MaybeTlsStream::Tls(Box::new(tls))
        } else {
            MaybeTlsStream::Plain(tcp)
        };
        self.handshake(stream, &target.authority, &target.path)
            .await
    }

    /// Runs the client handshake over an already-open stream.
    pub async fn handshake<S>(
        &self,
        mut io: S,
        host: &str,
        path: &str,
    ) -> Result<(WebSocket<S>, ClientResponse), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request = handshake::client_request(host, path, &self.options);
        let exchange = async {
            io.write_all(request.bytes()).await?;
            let mut buf = BytesMut::with_capacity(1024);
            loop {
                if io.read_buf(&mut buf).await? == 0 {
                    return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                if let Some((response, used)) = handshake::parse_response(&buf, &request)? {
                    return Ok((response, crate::stream::leftover(&buf[used..])));
                }
            }
        };
        let (response, leftover) = tokio::time::timeout(self.handshake_timeout, exchange)
            .await
            .map_err(|_| Error::Timeout("the upgrade response"))??;
        let mut proto = Connection::new(Role::Client, self.config.protocol.clone());
        if let (Some(params), Some(deflate)) = (response.deflate, &self.options.deflate) {
            proto = proto.with_deflate(params, deflate);
        }
        let socket = WebSocket::from_parts(io, proto, leftover, &self.config);
        Ok((socket, response))
    }
}

fn default_tls() -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to `url` with default settings.
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse), Error> {
    Connector::new().connect(url).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "127.0.0.1", 9001, "/")
        );
        let t = parse_url("wss://example.com/chat?room=1#frag").unwrap();
        assert_eq!(
            (t.tls, t.port, t.path.as_str(), t.authority.as_str()),
            (true, 443, "/chat?room=1", "example.com")
        );
        let t = parse_url("ws://[::1]:8000?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8000, "/?x=1")
        );
        for bad in [
            "http://x",
            "ws://",
            "ws://:80",
            "ws://h:notaport/",
            "ws://u@h/",
            "ws://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
