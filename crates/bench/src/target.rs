//! The server under test, from a `ws://host:port/path` URL.
//!
//! Only plain `ws://` is supported: the benchmark measures the WebSocket
//! layer, not TLS. The host is resolved once, so opening ten thousand
//! connections does not resolve it ten thousand times.

use std::net::SocketAddr;

use anyhow::{bail, Context as _, Result};

/// Where to connect and what to put in the upgrade request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// The resolved socket address.
    pub addr: SocketAddr,
    /// The `Host` header value (`host:port` as written in the URL).
    pub host: String,
    /// The request target, e.g. `/` or `/echo?x=1`.
    pub path: String,
}

impl Target {
    /// Parses `url` and resolves its host.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let t = duplex_bench::target::Target::resolve("ws://127.0.0.1:9001/chat").await.unwrap();
    /// assert_eq!(t.addr.port(), 9001);
    /// assert_eq!(t.host, "127.0.0.1:9001");
    /// assert_eq!(t.path, "/chat");
    /// # });
    /// ```
    pub async fn resolve(url: &str) -> Result<Self> {
        let (authority, path) = split_url(url)?;
        let lookup = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']')
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&lookup)
            .await
            .with_context(|| format!("resolving {lookup}"))?
            .next()
            .with_context(|| format!("{lookup} resolves to no address"))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Splits `ws://authority/path` into its authority and path (`/` if empty).
fn split_url(url: &str) -> Result<(&str, &str)> {
    let Some(rest) = url.strip_prefix("ws://") else {
        bail!("unsupported URL {url:?}: only ws:// URLs are supported");
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => bail!("URL {url:?} has a query but no path"),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("URL {url:?} has no host");
    }
    Ok((authority, path))
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn splits_authority_and_path() {
        assert_eq!(split_url("ws://h:1/").unwrap(), ("h:1", "/"));
        assert_eq!(split_url("ws://h:1").unwrap(), ("h:1", "/"));
        assert_eq!(split_url("ws://h/a/b?c").unwrap(), ("h", "/a/b?c"));
        assert!(split_url("wss://h/").is_err());
        assert!(split_url("ws:///x").is_err());
    }
}
