//! Turning the user's server URL into the Engine.IO WebSocket URL.

use std::fmt::Write as _;

use crate::Error;

/// The parts of the URL given to the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerUrl {
    /// `wss` rather than `ws`.
    pub(crate) tls: bool,
    /// Host and optional port, as written.
    pub(crate) authority: String,
    /// The path, if not empty or `/`: the namespace, as the reference client
    /// reads `http://host/admin`.
    pub(crate) path: Option<String>,
    /// The query string, without `?`, if any.
    pub(crate) query: Option<String>,
}

impl ServerUrl {
    /// Parses `http`, `https`, `ws` and `wss` URLs.
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no scheme: expected http://, https://, ws:// or wss://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(bad("the scheme must be http, https, ws or wss")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("the URL needs a host (and no user info)"));
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        Ok(ServerUrl {
            tls,
            authority: authority.to_owned(),
            path: (!path.is_empty() && path != "/").then(|| path.to_owned()),
            query: query.filter(|q| !q.is_empty()).map(str::to_owned),
        })
    }

    /// The Engine.IO WebSocket URL: `ws[s]://authority{path}?EIO=4&
    /// transport=websocket`, then the URL's own query and `extra` pairs.
    pub(crate) fn engine_url(&self, path: &str, extra: &[(String, String)]) -> String {
        let mut url = String::with_capacity(64 + self.authority.len() + path.len());
        url.push_str(if self.tls { "wss://" } else { "ws://" });
        url.push_str(&self.authority);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        if !url.ends_with('/') {
            url.push('/');
        }
        url.push_str("?EIO=4&transport=websocket");
        if let Some(q) = &self.query {
            url.push('&');
            url.push_str(q);
        }
        for (k, v) in extra {
            url.push('&');
            percent_encode(&mut url, k);
            url.push('=');
            percent_encode(&mut url, v);
        }
        url
    }
}

/// Appends `s` percent-encoded: everything but RFC 3986 unreserved
/// characters is escaped.
fn percent_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds() {
        let u = ServerUrl::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(
            u.engine_url("/socket.io/", &[]),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(u.path, None);

        let u = ServerUrl::parse("https://example.com/admin?x=1#frag").unwrap();
        assert!(u.tls);
        assert_eq!(u.path.as_deref(), Some("/admin"));
        assert_eq!(
            u.engine_url("custom", &[("a b".into(), "é&".into())]),
            "wss://example.com/custom/?EIO=4&transport=websocket&x=1&a%20b=%C3%A9%26"
        );

        let u = ServerUrl::parse("ws://[::1]:80/?").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path, u.query),
            ("[::1]:80", None, None)
        );

        for bad in [
            "127.0.0.1:3000",
            "ftp://x",
            "http://",
            "http://u@h/",
            "http:///x",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
