//! Validated namespace names.
//!
//! A [`Namespace`] is the `/name` part of a packet, held as a cheaply
//! clonable, zero-copy slice of the text it was decoded from. Validation only
//! ensures the name can be written into a packet header unambiguously; which
//! namespaces exist, and who may join them, is the server crate's business.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use ws_proto::Utf8Bytes;

use crate::Error;

/// A namespace name: starts with `/`, contains no `,` and no ASCII control
/// character. The main namespace is `/`.
///
/// Equality, ordering and hashing are those of the name as a `str`, so a
/// `HashMap<Namespace, _>` can be queried with a `&str`.
///
/// ```
/// use socketio_proto::Namespace;
///
/// let admin = Namespace::new("/admin")?;
/// assert_eq!(admin, "/admin");
/// assert!(!admin.is_main());
/// assert!(Namespace::main().is_main());
/// assert!(Namespace::new("admin").is_err());
/// assert!(Namespace::new("/a,b").is_err());
/// # Ok::<(), socketio_proto::Error>(())
/// ```
#[derive(Clone)]
pub struct Namespace(Utf8Bytes);

impl Namespace {
    /// The main namespace, `/`. Does not allocate.
    pub const fn main() -> Self {
        Namespace(Utf8Bytes::from_static("/"))
    }

    /// Validates `name` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNamespace`] unless `name` starts with `/` and has no
    /// `,` or ASCII control character.
    pub fn new(name: impl Into<Utf8Bytes>) -> Result<Self, Error> {
        let name = name.into();
        if is_valid(name.as_bytes()) {
            Ok(Namespace(name))
        } else {
            Err(Error::InvalidNamespace)
        }
    }

    /// Wraps text the decoder has already checked.
    pub(crate) fn from_checked(name: Utf8Bytes) -> Self {
        Namespace(name)
    }

    /// The name, e.g. `"/admin"`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name's bytes (no UTF-8 re-check, unlike [`Namespace::as_str`]).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether this is the main namespace, `/`, which the encoder leaves out
    /// of the header.
    pub fn is_main(&self) -> bool {
        self.0.as_bytes() == b"/"
    }

    /// The name as shared UTF-8 bytes.
    pub fn as_utf8_bytes(&self) -> &Utf8Bytes {
        &self.0
    }

    /// Unwraps the shared UTF-8 bytes.
    pub fn into_utf8_bytes(self) -> Utf8Bytes {
        self.0
    }
}

/// Whether `name` is acceptable as a namespace.
pub(crate) fn is_valid(name: &[u8]) -> bool {
    name.first() == Some(&b'/') && !name.iter().any(|&b| b == b',' || b < 0x20 || b == 0x7f)
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::main()
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Namespace {}

impl PartialOrd for Namespace {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Namespace {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Namespace {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `str`'s hash for the `Borrow<str>` impl.
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Namespace {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Namespace {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Borrow<str> for Namespace {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&str> for Namespace {
    type Error = Error;
    fn try_from(name: &str) -> Result<Self, Error> {
        Namespace::new(name)
    }
}

impl TryFrom<String> for Namespace {
    type Error = Error;
    fn try_from(name: String) -> Result<Self, Error> {
        Namespace::new(name)
    }
}

impl TryFrom<Utf8Bytes> for Namespace {
    type Error = Error;
    fn try_from(name: Utf8Bytes) -> Result<Self, Error> {
        Namespace::new(name)
    }
}

impl From<Namespace> for Utf8Bytes {
    fn from(ns: Namespace) -> Self {
        ns.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn validation() {
        for ok in [
            "/",
            "/admin",
            "/a-b_c",
            "/a/b",
            "/ünï",
            "/with space",
            "/?x=1",
        ] {
            assert!(Namespace::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "admin", "/a,b", ",", "/a\nb", "/\u{7f}", "/\0"] {
            assert!(
                matches!(Namespace::new(bad), Err(Error::InvalidNamespace)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn map_lookup_by_str() {
        let mut map = HashMap::new();
        map.insert(Namespace::new("/admin").unwrap(), 1);
        map.insert(Namespace::main(), 0);
        assert_eq!(map.get("/admin"), Some(&1));
        assert_eq!(map.get("/"), Some(&0));
        assert_eq!(map.get("/other"), None);
    }

    #[test]
    fn default_is_main() {
        assert!(Namespace::default().is_main());
        assert_eq!(Namespace::default(), "/");
        assert_eq!(format!("{:?}", Namespace::main()), "\"/\"");
    }
}
