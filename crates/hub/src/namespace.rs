//! Namespace options: what a channel allows, looked up by the channel's
//! namespace.
//!
//! Options are configuration (they deserialize from the server's config file,
//! with Centrifugo's option names) and [`Namespaces`] resolves a channel to
//! its options. A channel without `:` uses the default options; a channel in
//! a namespace that is not configured is unknown (error 102).
//!
//! The hub itself acts on `presence`, `join_leave`, `force_push_join_leave`,
//! `history_size` and `history_ttl`. The `allow_*`/`force_*` permission
//! options are carried here for the server, which decides who may do what.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::channel::ChannelName;
use crate::error::Error;

/// Declares [`NamespaceOptions`] and the flat config form of a named
/// namespace from one field list, so both refuse unknown keys (serde's
/// `flatten` would silently accept typos).
macro_rules! namespace_options {
    ($($(#[$attr:meta])* $field:ident: $ty:ty,)*) => {
        /// The options of one namespace (or of channels outside any namespace).
        ///
        /// Every option is off by default. Durations deserialize from a number of
        /// seconds (`300`) or a string with a unit (`"300s"`, `"5m"`, `"1h"`,
        /// `"500ms"`, `"7d"`). Unknown keys are refused.
        #[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct NamespaceOptions {
            $($(#[$attr])* pub $field: $ty,)*
        }

        /// `NamespaceConfig` as written in config: the name beside the options.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FlatNamespace {
            name: String,
            $($(#[$attr])* #[serde(default)] $field: $ty,)*
        }

        impl From<FlatNamespace> for NamespaceConfig {
            fn from(flat: FlatNamespace) -> Self {
                NamespaceConfig {
                    name: flat.name,
                    options: NamespaceOptions { $($field: flat.$field,)* },
                }
            }
        }
    };
}

namespace_options! {
    /// Keep presence (who is subscribed) for channels in this namespace.
    presence: bool,
    /// Send join and leave events to subscribers that ask for them.
    join_leave: bool,
    /// Send join and leave events to every subscriber, asked or not.
    force_push_join_leave: bool,
    /// How many publications history keeps per channel; 0 keeps none.
    history_size: usize,
    /// How long history keeps a publication; zero keeps none.
    #[serde(deserialize_with = "deserialize_duration")]
    history_ttl: Duration,
    /// How long a channel's stream position (epoch and offset) outlives its
    /// last publication; `None` uses the store's default. Must exceed
    /// `history_ttl`.
    #[serde(deserialize_with = "deserialize_opt_duration")]
    history_meta_ttl: Option<Duration>,
    /// Let subscribers ask for stream positioning (offset checks).
    allow_positioning: bool,
    /// Position every subscription, asked or not.
    force_positioning: bool,
    /// Let subscribers recover missed publications on resubscribe.
    allow_recovery: bool,
    /// Make every subscription recoverable, asked or not.
    force_recovery: bool,
    /// Let any connected client publish from the client side.
    allow_publish_for_client: bool,
    /// Let subscribers of a channel publish into it from the client side.
    allow_publish_for_subscriber: bool,
    /// Let any connected client subscribe without a subscription token.
    allow_subscribe_for_client: bool,
    /// Let anonymous connections (empty user) subscribe.
    allow_subscribe_for_anonymous: bool,
    /// Let any connected client ask for presence.
    allow_presence_for_client: bool,
    /// Let subscribers ask for presence.
    allow_presence_for_subscriber: bool,
    /// Let any connected client ask for history.
    allow_history_for_client: bool,
    /// Let subscribers ask for history.
    allow_history_for_subscriber: bool,
}

impl NamespaceOptions {
    /// Whether history is on: both `history_size` and `history_ttl` are set.
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }

    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if (self.history_size > 0) == self.history_ttl.is_zero() {
            return Err("history_size and history_ttl must be set together".into());
        }
        let needs_history = [
            ("allow_positioning", self.allow_positioning),
            ("force_positioning", self.force_positioning),
            ("allow_recovery", self.allow_recovery),
            ("force_recovery", self.force_recovery),
        ];
        for (name, on) in needs_history {
            if on && !self.history_enabled() {
                return Err(format!(
                    "{name} needs history (history_size and history_ttl)"
                ));
            }
        }
        if self.force_push_join_leave && !self.join_leave {
            return Err("force_push_join_leave needs join_leave".into());
        }
        if let Some(meta) = self.history_meta_ttl {
            if self.history_enabled() && meta <= self.history_ttl {
                return Err("history_meta_ttl must be longer than history_ttl".into());
            }
        }
        Ok(())
    }
}

/// A named namespace as it appears in config: `{"name": "chat", "presence": true, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "FlatNamespace")]
pub struct NamespaceConfig {
    /// The namespace name: the part of channel names before `:`.
    pub name: String,
    /// Its options, written beside the name.
    pub options: NamespaceOptions,
}

/// Why a namespace configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A namespace name is empty or has characters outside `A-Za-z0-9_-.@=,`.
    #[error("invalid namespace name {0:?}: use 1-64 of A-Z a-z 0-9 _ - . @ = ,")]
    InvalidName(String),
    /// Two namespaces have the same name.
    #[error("namespace {0:?} is defined twice")]
    Duplicate(String),
    /// A namespace's options contradict each other.
    #[error("namespace {namespace}: {reason}")]
    Invalid {
        /// The namespace, `"(default)"` for the default options.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
}

/// Resolves channels to their namespace options. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    inner: Arc<NamespacesInner>,
}

#[derive(Debug, Default)]
struct NamespacesInner {
    default: NamespaceOptions,
    named: HashMap<String, NamespaceOptions>,
}

impl Namespaces {
    /// Checks and collects the options: `default` for channels without a
    /// namespace, `namespaces` for the rest.
    pub fn new(
        default: NamespaceOptions,
        namespaces: impl IntoIterator<Item = NamespaceConfig>,
    ) -> Result<Self, ConfigError> {
        default.validate().map_err(|reason| ConfigError::Invalid {
            namespace: "(default)".into(),
            reason,
        })?;
        let mut named = HashMap::new();
        for ns in namespaces {
            let valid_name = !ns.name.is_empty()
                && ns.name.len() <= 64
                && ns.name.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'-' | b'.' | b'@' | b'=' | b',')
                });
            if !valid_name {
                return Err(ConfigError::InvalidName(ns.name));
            }
            ns.options
                .validate()
                .map_err(|reason| ConfigError::Invalid {
                    namespace: ns.name.clone(),
                    reason,
                })?;
            if named.contains_key(&ns.name) {
                return Err(ConfigError::Duplicate(ns.name));
            }
            named.insert(ns.name, ns.options);
        }
        Ok(Self {
            inner: Arc::new(NamespacesInner { default, named }),
        })
    }

    /// Only default options, no namespaces.
    pub fn with_default(default: NamespaceOptions) -> Result<Self, ConfigError> {
        Self::new(default, [])
    }

    /// The options for `channel`, or [`Error::UnknownChannel`] when its
    /// namespace is not configured.
    pub fn resolve(&self, channel: &ChannelName) -> Result<&NamespaceOptions, Error> {
        self.get(channel.namespace())
            .ok_or_else(|| Error::UnknownChannel {
                namespace: channel.namespace().unwrap_or_default().to_owned(),
            })
    }

    /// The options of a namespace by name (`None` for the default options).
    pub fn get(&self, namespace: Option<&str>) -> Option<&NamespaceOptions> {
        match namespace {
            None => Some(&self.inner.default),
            Some(name) => self.inner.named.get(name),
        }
    }

    /// The configured namespace names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.named.keys().map(String::as_str)
    }
}

/// Parses a duration as config writes it: whole or fractional seconds as a
/// number, or a string of a number and a unit (`ms`, `s`, `m`, `h`, `d`; a
/// bare number in a string is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 300, \"300s\", \"5m\""))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m, h or d"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|e| format!("invalid duration {text:?}: {e}"))
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds or a string like \"300s\", \"5m\", \"1h\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(v).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

fn deserialize_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationVisitor).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::new(name).unwrap()
    }

    #[test]
    fn deserializes_with_centrifugo_names() {
        let json = r#"{
            "name": "chat",
            "presence": true,
            "join_leave": true,
            "history_size": 100,
            "history_ttl": "5m",
            "allow_recovery": true,
            "allow_publish_for_client": true,
            "allow_subscribe_for_anonymous": true
        }"#;
        let ns: NamespaceConfig = serde_json::from_str(json).unwrap();
        assert_eq!(ns.name, "chat");
        assert!(ns.options.presence && ns.options.join_leave);
        assert_eq!(ns.options.history_size, 100);
        assert_eq!(ns.options.history_ttl, Duration::from_secs(300));
        assert!(ns.options.allow_recovery);
        assert!(ns.options.allow_publish_for_client);
        assert!(ns.options.allow_subscribe_for_anonymous);
        assert!(!ns.options.force_recovery);
        assert!(ns.options.validate().is_ok());
    }

    #[test]
    fn unknown_option_is_refused() {
        let err = serde_json::from_str::<NamespaceConfig>(r#"{"name":"a","histroy_size":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("histroy_size"), "{err}");
        let err = serde_json::from_str::<NamespaceOptions>(r#"{"presense":true}"#).unwrap_err();
        assert!(err.to_string().contains("presense"));
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("300", Some(Duration::from_secs(300))),
            ("\"300\"", Some(Duration::from_secs(300))),
            ("\"300s\"", Some(Duration::from_secs(300))),
            ("\"5m\"", Some(Duration::from_secs(300))),
            ("\"1h\"", Some(Duration::from_secs(3600))),
            ("\"2d\"", Some(Duration::from_secs(172_800))),
            ("\"250ms\"", Some(Duration::from_millis(250))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("\"1.5s\"", Some(Duration::from_millis(1500))),
            ("-1", None),
            ("\"5 parsecs\"", None),
            ("\"s\"", None),
            ("true", None),
        ];
        for (text, expected) in cases {
            let json = format!("{{\"history_ttl\": {text}}}");
            let got = serde_json::from_str::<NamespaceOptions>(&json).map(|o| o.history_ttl);
            assert_eq!(got.ok(), *expected, "{text}");
        }
        let meta: NamespaceOptions =
            serde_json::from_str(r#"{"history_meta_ttl": "30d"}"#).unwrap();
        assert_eq!(meta.history_meta_ttl, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(NamespaceOptions::default().history_meta_ttl, None);
    }

    #[test]
    fn validation() {
        let history = NamespaceOptions {
            history_size: 10,
            history_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        assert!(history.validate().is_ok());
        assert!(history.history_enabled());
        let bad: Vec<NamespaceOptions> = vec![
            NamespaceOptions {
                history_size: 10,
                ..Default::default()
            },
            NamespaceOptions {
                history_ttl: Duration::from_secs(1),
                ..Default::default()
            },
            NamespaceOptions {
                force_recovery: true,
                ..Default::default()
            },
            NamespaceOptions {
                allow_positioning: true,
                ..Default::default()
            },
            NamespaceOptions {
                force_push_join_leave: true,
                ..Default::default()
            },
            NamespaceOptions {
                history_meta_ttl: Some(Duration::from_secs(30)),
                ..history.clone()
            },
        ];
        for options in bad {
            assert!(options.validate().is_err(), "{options:?}");
        }
    }

    #[test]
    fn resolves_channels() {
        let chat = NamespaceConfig {
            name: "chat".into(),
            options: NamespaceOptions {
                presence: true,
                ..Default::default()
            },
        };
        let ns = Namespaces::new(NamespaceOptions::default(), [chat]).unwrap();
        assert!(!ns.resolve(&ch("news")).unwrap().presence);
        assert!(ns.resolve(&ch("chat:lobby")).unwrap().presence);
        assert!(ns.resolve(&ch("notifications#42")).is_ok());
        let err = ns.resolve(&ch("other:x")).unwrap_err();
        assert_eq!(err.code(), 102);
        assert!(matches!(err, Error::UnknownChannel { namespace } if namespace == "other"));
        assert_eq!(ns.names().collect::<Vec<_>>(), ["chat"]);
    }

    #[test]
    fn refuses_bad_namespaces() {
        let named = |name: &str| NamespaceConfig {
            name: name.into(),
            options: NamespaceOptions::default(),
        };
        assert_eq!(
            Namespaces::new(Default::default(), [named("a"), named("a")]).unwrap_err(),
            ConfigError::Duplicate("a".into())
        );
        for name in ["", "a:b", "a#b", "a b"] {
            assert_eq!(
                Namespaces::new(Default::default(), [named(name)]).unwrap_err(),
                ConfigError::InvalidName(name.into())
            );
        }
        let bad = NamespaceConfig {
            name: "h".into(),
            options: NamespaceOptions {
                history_size: 1,
                ..Default::default()
            },
        };
        assert!(matches!(
            Namespaces::new(Default::default(), [bad]),
            Err(ConfigError::Invalid { namespace, .. }) if namespace == "h"
        ));
    }
}
