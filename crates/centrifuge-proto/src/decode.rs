//! Frame and command decoding, with the limits that protect the server.
//!
//! A text frame holds one or more commands separated by `\n` (one trailing
//! `\n` is allowed). [`decode_frame`] checks the frame as a whole — its
//! size and how many commands it carries — before anything is parsed, then
//! hands out the commands one by one; each line is decoded independently,
//! so one bad command does not hide the others.
//!
//! Each command is parsed in two steps. First the envelope: the `id` and
//! the method keys, whose bodies are only validated and kept as raw slices
//! of the line. Then the body of the one method present, into its typed
//! request. A body of the wrong shape is therefore reported with the
//! command's id ([`Error::BadRequest`]) even though the SDKs write the id
//! *after* the body (`{"subscribe":{...},"id":2}`), so the server can answer
//! it with error 107 instead of guessing.
//!
//! Nesting depth is bounded before parsing by a single scan of the line
//! ([`Limits::max_depth`]). serde_json's own recursion limit (128) already
//! guards the typed fields, but it validates raw payloads iteratively and
//! would let a 1 MB `[[[[...]]]]` payload through to subscribers, whose
//! parsers may not be as careful.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::command::from_object;
use crate::{Command, Error, Method};

/// Bounds on what a client may send in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes ([`Error::FrameTooLarge`]).
    pub max_frame_len: usize,
    /// Most commands accepted in one frame ([`Error::TooManyCommands`]).
    pub max_commands: usize,
    /// Deepest nesting of arrays and objects accepted in one command,
    /// counting the command object itself and the method's body
    /// ([`Error::TooDeep`]).
    pub max_depth: usize,
}

impl Limits {
    /// Centrifugo's default WebSocket message size limit, 64 KiB.
    pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;
    /// Enough for an SDK resubscribing to a thousand channels in one batch
    /// after a reconnect.
    pub const DEFAULT_MAX_COMMANDS: usize = 1024;
    /// serde_json's recursion limit, so that any payload accepted here can
    /// later be parsed into a `serde_json::Value` too.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// No limits at all (the nesting of typed fields is still bounded by
    /// serde_json). For tests and trusted peers.
    pub const UNLIMITED: Limits = Limits {
        max_frame_len: usize::MAX,
        max_commands: usize::MAX,
        max_depth: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            max_commands: Self::DEFAULT_MAX_COMMANDS,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Checks a text frame against `limits` and returns an iterator over its
/// commands.
///
/// An empty frame (or a lone `\n`) holds no commands. Every other line,
/// including an empty one between two `\n`s, is a command.
///
/// # Errors
/// [`Error::FrameTooLarge`] and [`Error::TooManyCommands`], before any
/// command is decoded. Per-command errors come from the iterator.
///
/// ```
/// use centrifuge_proto::{decode_frame, Command, Limits};
///
/// let frame = "{\"subscribe\":{\"channel\":\"news\"},\"id\":1}\n{}";
/// let mut commands = decode_frame(frame, &Limits::default())?;
/// let Some(Ok(Command::Subscribe { id: 1, req })) = commands.next() else { panic!() };
/// assert_eq!(req.channel, "news");
/// assert!(matches!(commands.next(), Some(Ok(Command::Pong))));
/// assert!(commands.next().is_none());
/// # Ok::<(), centrifuge_proto::Error>(())
/// ```
pub fn decode_frame<'a>(frame: &'a str, limits: &Limits) -> Result<Commands<'a>, Error> {
    if frame.len() > limits.max_frame_len {
        return Err(Error::FrameTooLarge {
            len: frame.len(),
            limit: limits.max_frame_len,
        });
    }
    let body = frame.strip_suffix('\n').unwrap_or(frame);
    if body.is_empty() {
        return Ok(Commands {
            lines: None,
            max_depth: limits.max_depth,
        });
    }
    // A frame of n bytes holds at most n + 1 lines, so most frames skip
    // the count.
    if body.len() >= limits.max_commands {
        let count = body.bytes().filter(|&b| b == b'\n').count() + 1;
        if count > limits.max_commands {
            return Err(Error::TooManyCommands {
                limit: limits.max_commands,
            });
        }
    }
    Ok(Commands {
        lines: Some(body.split('\n')),
        max_depth: limits.max_depth,
    })
}

/// The commands of one frame, in order; see [`decode_frame`].
///
/// After an error the iterator goes on with the next line. Whether to go
/// on is the caller's choice: see [`Error::action`].
#[derive(Debug, Clone)]
pub struct Commands<'a> {
    lines: Option<std::str::Split<'a, char>>,
    max_depth: usize,
}

impl Iterator for Commands<'_> {
    type Item = Result<Command, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.lines.as_mut()?.next()?;
        Some(decode_command(line, self.max_depth))
    }
}

/// The method keys of a command, each body kept raw.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "nullable_id")]
    id: u32,
    #[serde(borrow, default)]
    connect: Option<&'a RawValue>,
    #[serde(borrow, default)]
    subscribe: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unsubscribe: Option<&'a RawValue>,
    #[serde(borrow, default)]
    publish: Option<&'a RawValue>,
    #[serde(borrow, default)]
    presence: Option<&'a RawValue>,
    #[serde(borrow, default)]
    presence_stats: Option<&'a RawValue>,
    #[serde(borrow, default)]
    history: Option<&'a RawValue>,
    #[serde(borrow, default)]
    rpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refresh: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sub_refresh: Option<&'a RawValue>,
    #[serde(borrow, default)]
    send: Option<&'a RawValue>,
}

fn nullable_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(deserializer)?.unwrap_or(0))
}

impl<'a> Envelope<'a> {
    /// The methods present, in `client.proto` order.
    fn methods(&self) -> impl Iterator<Item = (Method, &'a RawValue)> {
        [
            (Method::Connect, self.connect),
            (Method::Subscribe, self.subscribe),
            (Method::Unsubscribe, self.unsubscribe),
            (Method::Publish, self.publish),
            (Method::Presence, self.presence),
            (Method::PresenceStats, self.presence_stats),
            (Method::History, self.history),
            (Method::Rpc, self.rpc),
            (Method::Refresh, self.refresh),
            (Method::SubRefresh, self.sub_refresh),
            (Method::Send, self.send),
        ]
        .into_iter()
        .filter_map(|(m, body)| Some((m, body?)))
    }
}

/// Decodes one command (one line of a frame, without its `\n`).
///
/// How each shape decodes:
/// - `{}` (and any object with neither an id nor a method) is
///   [`Command::Pong`];
/// - `{"send":{...}}` is [`Command::Send`], with or without an id;
/// - `{"id":N,"<method>":{...}}` is that method's variant. A `null` body
///   counts as absent, as do unknown keys.
///
/// # Errors
/// - [`Error::EmptyCommand`]: the line is blank;
/// - [`Error::TooDeep`]: it nests deeper than `max_depth`;
/// - [`Error::Malformed`]: it is not a JSON object, or its `id` is not a
///   `u32` (nothing can be answered);
/// - [`Error::MissingId`]: a method other than `send` without an id;
/// - [`Error::UnknownMethod`]: an id but no method this crate knows;
/// - [`Error::AmbiguousMethod`]: an id and several methods;
/// - [`Error::BadRequest`]: the body has the wrong shape or lacks a
///   required field (the channel; publish's data).
pub fn decode_command(line: &str, max_depth: usize) -> Result<Command, Error> {
    if line.trim_matches([' ', '\t', '\r']).is_empty() {
        return Err(Error::EmptyCommand);
    }
    check_depth(line, max_depth)?;
    // serde's derived structs also accept arrays (fields in order).
    if !line.trim_start_matches([' ', '\t', '\r']).starts_with('{') {
        return Err(Error::Malformed(serde::de::Error::custom(
            "a command must be a JSON object",
        )));
    }
    let envelope: Envelope<'_> = serde_json::from_str(line).map_err(Error::Malformed)?;
    let id = envelope.id;
    let mut methods = envelope.methods();
    let Some((method, body)) = methods.next() else {
        return if id == 0 {
            Ok(Command::Pong)
        } else {
            Err(Error::UnknownMethod { id })
        };
    };
    if id == 0 {
        // Only `send` goes without an id; anything else could never be
        // answered.
        return match (method, methods.next()) {
            (Method::Send, None) => decode_body(0, method, body),
            (Method::Send, Some((other, _))) | (other, _) => {
                Err(Error::MissingId { method: other })
            }
        };
    }
    if let Some((second, _)) = methods.next() {
        return Err(Error::AmbiguousMethod {
            id,
            methods: [method, second],
        });
    }
    decode_body(id, method, body)
}

fn decode_body(id: u32, method: Method, body: &RawValue) -> Result<Command, Error> {
    let bad = |reason: String| Error::BadRequest { id, method, reason };
    let wrong_shape = |e: serde_json::Error| bad(e.to_string());
    let command = match method {
        Method::Connect => Command::Connect {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Subscribe => Command::Subscribe {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Unsubscribe => Command::Unsubscribe {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Publish => Command::Publish {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Presence => Command::Presence {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::PresenceStats => Command::PresenceStats {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::History => Command::History {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Rpc => Command::Rpc {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Refresh => Command::Refresh {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::SubRefresh => Command::SubRefresh {
            id,
            req: from_object(body).map_err(wrong_shape)?,
        },
        Method::Send => Command::Send(from_object(body).map_err(wrong_shape)?),
    };
    if command.channel().is_some_and(str::is_empty) {
        return Err(bad("channel required".to_owned()));
    }
    Ok(command)
}

/// Rejects `line` if arrays and objects nest deeper than `max_depth`,
/// without recursion and without parsing: brackets inside strings are
/// skipped, everything else is left to the parser. The command decoder runs
/// it on every line; the server API runs it on request bodies.
///
/// ```
/// use centrifuge_proto::check_depth;
/// assert!(check_depth(r#"{"a":[1,{"b":2}]}"#, 3).is_ok());
/// assert!(check_depth(r#"{"a":[1,{"b":[]}]}"#, 3).is_err());
/// assert!(check_depth(r#"{"a":"[[[[["}"#, 1).is_ok());
/// ```
pub fn check_depth(line: &str, max_depth: usize) -> Result<(), Error> {
    // Each level needs at least one byte.
    if line.len() <= max_depth {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in line.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(Error::TooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan() {
        assert!(check_depth(r#"{"a":[{"b":"[[[[[[[["}]}"#, 3).is_ok());
        assert!(check_depth(r#"{"a":[{"b":"\"[[[[[[[["}]}"#, 3).is_ok());
        assert!(check_depth(r#"{"a":[{"b":[]}]}"#, 3).is_err());
        assert!(check_depth(r#"[[]][[]][[]]"#, 2).is_ok());
        let deep = "[".repeat(10_000);
        assert!(matches!(
            check_depth(&deep, 128),
            Err(Error::TooDeep { limit: 128 })
        ));
    }

    #[test]
    fn frame_counts_only_when_needed() {
        let limits = Limits {
            max_commands: 2,
            ..Limits::default()
        };
        assert_eq!(decode_frame("{}\n{}", &limits).unwrap().count(), 2);
        assert_eq!(decode_frame("{}\n{}\n", &limits).unwrap().count(), 2);
        assert!(matches!(
            decode_frame("{}\n{}\n{}", &limits),
            Err(Error::TooManyCommands { limit: 2 })
        ));
        assert_eq!(decode_frame("", &limits).unwrap().count(), 0);
        assert_eq!(decode_frame("\n", &limits).unwrap().count(), 0);
    }
}
