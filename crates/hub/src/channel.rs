//! Channel names: validation, namespaces and user-limited channels.
//!
//! A channel name is 1–255 characters of `A-Za-z0-9_-:.@=#,`. The part before
//! the first `:` names the channel's namespace (`chat:lobby` is in `chat`);
//! a name without `:` is in the default namespace. A `#` makes the channel
//! user-limited: the comma-separated list after the last `#` names the only
//! users who may subscribe (`notifications#42`, `dm#42,57`).
//!
//! This module only reads names. What a namespace allows lives in
//! [`crate::namespace`]; who may publish is the server's decision.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

/// The longest channel name accepted, in bytes (all allowed characters are ASCII).
pub const MAX_CHANNEL_LEN: usize = 255;

/// Separates the namespace from the rest of a channel name.
pub const NAMESPACE_BOUNDARY: char = ':';

/// Starts the list of users allowed in a user-limited channel.
pub const USER_BOUNDARY: char = '#';

/// Separates the users of a user-limited channel.
pub const USER_SEPARATOR: char = ',';

/// Why a string is not a valid channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is the empty string.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than [`MAX_CHANNEL_LEN`].
    #[error("channel name is {len} bytes long, the limit is {max}")]
    TooLong {
        /// The length of the rejected name, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character outside `A-Za-z0-9_-:.@=#,`.
    #[error("channel name has the character {ch:?} at byte {index}; allowed are A-Z a-z 0-9 and _-:.@=#,")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the name.
        index: usize,
    },
    /// The name starts with `:`, naming an empty namespace.
    #[error("channel name has an empty namespace before ':'")]
    EmptyNamespace,
}

fn allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'@' | b'=' | b'#' | b',')
}

/// Checks `name` against the channel name rules.
pub fn validate(name: &str) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelNameError::TooLong {
            len: name.len(),
            max: MAX_CHANNEL_LEN,
        });
    }
    if let Some(index) = name.bytes().position(|b| !allowed_byte(b)) {
        // `index` is the start of a character: every allowed byte is ASCII, so
        // the first disallowed byte is where the first disallowed char begins.
        let ch = name[index..].chars().next().unwrap_or('\u{fffd}');
        return Err(ChannelNameError::InvalidChar { ch, index });
    }
    if name.starts_with(NAMESPACE_BOUNDARY) {
        return Err(ChannelNameError::EmptyNamespace);
    }
    Ok(())
}

/// The namespace of a channel name: the text before the first `:`, or `None`
/// for a channel in the default namespace.
pub fn namespace(name: &str) -> Option<&str> {
    name.split_once(NAMESPACE_BOUNDARY).map(|(ns, _)| ns)
}

/// The users allowed in a user-limited channel, or `None` if the channel has
/// no `#` and so is not user-limited. Empty entries are skipped, so `dm#`
/// allows nobody.
pub fn allowed_users(name: &str) -> Option<impl Iterator<Item = &str>> {
    name.rsplit_once(USER_BOUNDARY)
        .map(|(_, users)| users.split(USER_SEPARATOR).filter(|u| !u.is_empty()))
}

/// Whether `user` may subscribe to `channel` as far as the channel's name is
/// concerned: always for a channel without `#`; for a user-limited channel
/// only if `user` is in its list. The anonymous user (`""`) is never in a
/// list.
///
/// ```
/// use hub::channel::allowed_user;
/// assert!(allowed_user("news", "7"));
/// assert!(allowed_user("notifications#42", "42"));
/// assert!(!allowed_user("notifications#42", "4"));
/// assert!(allowed_user("dm#42,57", "57"));
/// assert!(!allowed_user("dm#42,57", ""));
/// ```
pub fn allowed_user(channel: &str, user: &str) -> bool {
    match allowed_users(channel) {
        None => true,
        Some(mut users) => !user.is_empty() && users.any(|u| u == user),
    }
}

/// A validated channel name. Cheap to clone (one reference count).
///
/// ```
/// use hub::ChannelName;
/// let ch = ChannelName::new("chat:lobby").unwrap();
/// assert_eq!(ch.namespace(), Some("chat"));
/// assert!(ChannelName::new("bad channel").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Validates `name` and wraps it.
    pub fn new(name: impl AsRef<str>) -> Result<Self, ChannelNameError> {
        let name = name.as_ref();
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the text before the first `:`, `None` for the default namespace.
    pub fn namespace(&self) -> Option<&str> {
        namespace(&self.0)
    }

    /// Whether the name has a `#` and so limits its subscribers to listed users.
    pub fn is_user_limited(&self) -> bool {
        self.0.contains(USER_BOUNDARY)
    }

    /// Whether `user` may subscribe, as [`allowed_user`] decides.
    pub fn allows_user(&self, user: &str) -> bool {
        allowed_user(&self.0, user)
    }
}

impl Deref for ChannelName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl FromStr for ChannelName {
    type Err = ChannelNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(&s)?;
        Ok(Self(Arc::from(s)))
    }
}

impl PartialEq<str> for ChannelName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ChannelName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::try_from(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let long = "a".repeat(MAX_CHANNEL_LEN);
        let too_long = "a".repeat(MAX_CHANNEL_LEN + 1);
        let cases: &[(&str, Result<(), ChannelNameError>)] = &[
            ("news", Ok(())),
            ("a", Ok(())),
            (&long, Ok(())),
            ("chat:lobby", Ok(())),
            ("chat:room:1", Ok(())),
            ("notifications#42", Ok(())),
            ("dm#42,57", Ok(())),
            ("A-Z_a.z@x=y", Ok(())),
            ("ns:", Ok(())),
            ("#", Ok(())),
            ("", Err(ChannelNameError::Empty)),
            (
                &too_long,
                Err(ChannelNameError::TooLong {
                    len: MAX_CHANNEL_LEN + 1,
                    max: MAX_CHANNEL_LEN,
                }),
            ),
            (
                "bad channel",
                Err(ChannelNameError::InvalidChar { ch: ' ', index: 3 }),
            ),
            (
                "$private",
                Err(ChannelNameError::InvalidChar { ch: '$', index: 0 }),
            ),
            (
                "a/b",
                Err(ChannelNameError::InvalidChar { ch: '/', index: 1 }),
            ),
            (
                "a*",
                Err(ChannelNameError::InvalidChar { ch: '*', index: 1 }),
            ),
            (
                "a&b",
                Err(ChannelNameError::InvalidChar { ch: '&', index: 1 }),
            ),
            (
                "ünï",
                Err(ChannelNameError::InvalidChar { ch: 'ü', index: 0 }),
            ),
            (
                "aé",
                Err(ChannelNameError::InvalidChar { ch: 'é', index: 1 }),
            ),
            (
                "tab\t",
                Err(ChannelNameError::InvalidChar { ch: '\t', index: 3 }),
            ),
            (":rest", Err(ChannelNameError::EmptyNamespace)),
        ];
        for (name, expected) in cases {
            assert_eq!(&validate(name), expected, "{name:?}");
            assert_eq!(
                ChannelName::new(name).map(|c| c.as_str().to_owned()),
                expected.clone().map(|()| name.to_string()),
            );
        }
    }

    #[test]
    fn too_long_counts_bytes_of_multibyte_input() {
        // 128 two-byte chars = 256 bytes: rejected for length before charset.
        let name = "é".repeat(128);
        assert!(matches!(
            validate(&name),
            Err(ChannelNameError::TooLong { len: 256, .. })
        ));
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace("news"), None);
        assert_eq!(namespace("chat:lobby"), Some("chat"));
        assert_eq!(namespace("chat:room:1"), Some("chat"));
        assert_eq!(namespace("ns:"), Some("ns"));
        assert_eq!(namespace("personal:notifications#42"), Some("personal"));
        let ch = ChannelName::new("a:b").unwrap();
        assert_eq!(ch.namespace(), Some("a"));
    }

    #[test]
    fn user_limited_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("news", "", true),
            ("news", "42", true),
            ("notifications#42", "42", true),
            ("notifications#42", "4", false),
            ("notifications#42", "421", false),
            ("notifications#42", "", false),
            ("dm#42,57", "42", true),
            ("dm#42,57", "57", true),
            ("dm#42,57", "5", false),
            ("dm#42,57", "42,57", false),
            ("dm#", "", false),
            ("dm#", "x", false),
            ("dm#,42,", "42", true),
            ("dm#,,", "", false),
            ("chat:dm#a@x.io,b", "a@x.io", true),
            // The users follow the last '#'.
            ("a#1#2", "2", true),
            ("a#1#2", "1", false),
        ];
        for (channel, user, allowed) in cases {
            assert_eq!(
                allowed_user(channel, user),
                *allowed,
                "{channel:?} {user:?}"
            );
        }
        assert!(ChannelName::new("dm#1,2").unwrap().is_user_limited());
        assert!(!ChannelName::new("news").unwrap().is_user_limited());
        let users: Vec<&str> = allowed_users("dm#1,,2").unwrap().collect();
        assert_eq!(users, ["1", "2"]);
        assert!(allowed_users("news").is_none());
    }

    #[test]
    fn serde_validates() {
        let ok: ChannelName = serde_json::from_str("\"chat:x\"").unwrap();
        assert_eq!(ok, "chat:x");
        assert!(serde_json::from_str::<ChannelName>("\"a b\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"chat:x\"");
    }

    #[test]
    fn borrow_lookups() {
        let mut map = std::collections::HashMap::new();
        map.insert(ChannelName::new("x").unwrap(), 1);
        assert_eq!(map.get("x"), Some(&1));
    }
}
