//! Who may do what in a channel: the permission rules of client commands,
//! as pure functions of the namespace options, the channel name and the
//! connection.
//!
//! Owns the decisions only; the session core ([`super::Session`]) calls
//! them after resolving the namespace and before touching the hub.
//! Subscription tokens are checked by the core (a valid token allows a
//! subscription whatever these rules say).
//!
//! The rules follow Centrifugo's `allow_*` options, with one addition: a
//! user-limited channel (`notifications#42`, `dm#42,57`) limits publish,
//! presence and history to its listed users too, not only subscribe, so a
//! namespace that lets clients publish cannot be used to write into
//! someone else's personal channel.

use hub::{ChannelName, NamespaceOptions};

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Subscribe,
    Publish,
    Presence,
    History,
}

/// The connection asking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asker<'a> {
    /// User id, empty for anonymous.
    pub(crate) user: &'a str,
    /// Whether the connection is subscribed to the channel.
    pub(crate) subscribed: bool,
    /// The node runs in `--dev`: client publish is allowed everywhere.
    pub(crate) dev: bool,
}

/// Whether `asker` may do `action` in `channel` whose namespace has `opts`
/// (without a subscription token).
pub(crate) fn allowed(
    opts: &NamespaceOptions,
    channel: &ChannelName,
    action: Action,
    asker: Asker<'_>,
) -> bool {
    if channel.is_user_limited() {
        // Listed users only, for every action; the namespace's
        // allow_*_for_client options do not open it to others.
        if !channel.allows_user(asker.user) {
            return false;
        }
        return match action {
            Action::Subscribe => true,
            Action::Publish => {
                asker.dev
                    || opts.allow_publish_for_client
                    || (opts.allow_publish_for_subscriber && asker.subscribed)
            }
            Action::Presence => {
                opts.allow_presence_for_client || opts.allow_presence_for_subscriber
            }
            Action::History => opts.allow_history_for_client || opts.allow_history_for_subscriber,
        };
    }
    let anonymous = asker.user.is_empty();
    match action {
        Action::Subscribe => {
            opts.allow_subscribe_for_client && (!anonymous || opts.allow_subscribe_for_anonymous)
        }
        Action::Publish => {
            asker.dev
                || opts.allow_publish_for_client
                || (opts.allow_publish_for_subscriber && asker.subscribed)
        }
        Action::Presence => {
            opts.allow_presence_for_client
                || (opts.allow_presence_for_subscriber && asker.subscribed)
        }
        Action::History => {
            opts.allow_history_for_client || (opts.allow_history_for_subscriber && asker.subscribed)
        }
    }
}

/// Whether a subscriber asking for join/leave pushes may have them: it
/// needs access to presence, as in Centrifugo.
pub(crate) fn join_leave_allowed(opts: &NamespaceOptions) -> bool {
    opts.allow_presence_for_client || opts.allow_presence_for_subscriber
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::new(name).unwrap()
    }

    fn asker(user: &str, subscribed: bool) -> Asker<'_> {
        Asker {
            user,
            subscribed,
            dev: false,
        }
    }

    #[test]
    fn subscribe_rules() {
        let closed = NamespaceOptions::default();
        let clients = NamespaceOptions {
            allow_subscribe_for_client: true,
            ..Default::default()
        };
        let anyone = NamespaceOptions {
            allow_subscribe_for_anonymous: true,
            ..clients.clone()
        };
        let news = ch("news");
        let cases = [
            (&closed, "42", false),
            (&clients, "42", true),
            (&clients, "", false),
            (&anyone, "", true),
        ];
        for (opts, user, expected) in cases {
            assert_eq!(
                allowed(opts, &news, Action::Subscribe, asker(user, false)),
                expected,
                "{user:?} {opts:?}"
            );
        }
        // User-limited: the list decides, whatever the namespace says.
        for opts in [&closed, &clients, &anyone] {
            assert!(allowed(
                opts,
                &ch("notifications#42"),
                Action::Subscribe,
                asker("42", false)
            ));
            assert!(!allowed(
                opts,
                &ch("notifications#42"),
                Action::Subscribe,
                asker("4", false)
            ));
            assert!(!allowed(
                opts,
                &ch("notifications#42"),
                Action::Subscribe,
                asker("", false)
            ));
            assert!(allowed(
                opts,
                &ch("dm#42,57"),
                Action::Subscribe,
                asker("57", false)
            ));
        }
    }

    #[test]
    fn publish_presence_history_rules() {
        let sub_only = NamespaceOptions {
            allow_publish_for_subscriber: true,
            allow_presence_for_subscriber: true,
            allow_history_for_subscriber: true,
            ..Default::default()
        };
        let news = ch("news");
        for action in [Action::Publish, Action::Presence, Action::History] {
            assert!(
                !allowed(&sub_only, &news, action, asker("1", false)),
                "{action:?}"
            );
            assert!(
                allowed(&sub_only, &news, action, asker("1", true)),
                "{action:?}"
            );
            assert!(!allowed(
                &NamespaceOptions::default(),
                &news,
                action,
                asker("1", true)
            ));
        }
        let dev = Asker {
            user: "",
            subscribed: false,
            dev: true,
        };
        assert!(allowed(
            &NamespaceOptions::default(),
            &news,
            Action::Publish,
            dev
        ));
        assert!(!allowed(
            &NamespaceOptions::default(),
            &news,
            Action::History,
            dev
        ));
        // Client publish never opens someone else's personal channel.
        let open = NamespaceOptions {
            allow_publish_for_client: true,
            ..Default::default()
        };
        assert!(!allowed(
            &open,
            &ch("notifications#42"),
            Action::Publish,
            asker("7", false)
        ));
        assert!(allowed(
            &open,
            &ch("notifications#42"),
            Action::Publish,
            asker("42", false)
        ));
        let dev7 = Asker {
            user: "7",
            subscribed: false,
            dev: true,
        };
        assert!(!allowed(
            &open,
            &ch("notifications#42"),
            Action::Publish,
            dev7
        ));
    }
}
