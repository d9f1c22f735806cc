//! Names of the Redis keys and pub/sub topics this crate uses.
//!
//! Owns the layout under the configured prefix; nothing else in the crate
//! formats a key. Every per-channel name puts the channel in a hash tag
//! (`{channel}`), so that all of a channel's keys and its topic land in one
//! slot should the layout ever be served by Redis Cluster (channel names
//! cannot contain braces, so the tag is always the whole name).
//!
//! ```text
//! {prefix}:m:{channel}        hash  e = epoch, s = top offset, t = meta TTL (ms)
//! {prefix}:h:{channel}        stream of kept publications, ID = "<offset>-0",
//!                             fields x = expiry (ms since 1970, server clock), d = body
//! {prefix}:i:{channel}:<key>  string "<offset>:<epoch>", an idempotency key
//! {prefix}:p:{channel}        hash  client -> encoded ClientInfo (presence)
//! {prefix}:z:{channel}        zset  client -> expiry (ms, server clock)
//! {prefix}:c:{channel}        pub/sub topic of the channel
//! {prefix}:nodes              hash  node id -> what the node announced (control)
//! {prefix}:nodes:z            zset  node id -> expiry (ms, server clock)
//! {prefix}:ctl                pub/sub topic every node listens to (control)
//! {prefix}:ctl:<node>         pub/sub topic of one node (control replies)
//! ```

use hub::ChannelName;

/// Builds key and topic names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn name(&self, kind: &str, channel: &str) -> String {
        format!("{}:{kind}:{{{channel}}}", self.prefix)
    }

    pub(crate) fn meta(&self, channel: &ChannelName) -> String {
        self.name("m", channel)
    }

    pub(crate) fn history(&self, channel: &ChannelName) -> String {
        self.name("h", channel)
    }

    pub(crate) fn idempotency(&self, channel: &ChannelName, key: &str) -> Vec<u8> {
        let mut name = self.name("i", channel).into_bytes();
        name.push(b':');
        name.extend_from_slice(key.as_bytes());
        name
    }

    pub(crate) fn presence(&self, channel: &ChannelName) -> String {
        self.name("p", channel)
    }

    pub(crate) fn presence_expiry(&self, channel: &ChannelName) -> String {
        self.name("z", channel)
    }

    pub(crate) fn topic(&self, channel: &str) -> String {
        self.name("c", channel)
    }

    /// The hash of announced nodes.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The expiry times of announced nodes.
    pub(crate) fn nodes_expiry(&self) -> String {
        format!("{}:nodes:z", self.prefix)
    }

    /// The control topic every node listens to.
    pub(crate) fn control(&self) -> String {
        format!("{}:ctl", self.prefix)
    }

    /// The control topic of node `node`.
    pub(crate) fn control_of(&self, node: &str) -> String {
        format!("{}:ctl:{node}", self.prefix)
    }

    /// Whether `topic` is one of this prefix's control topics.
    pub(crate) fn is_control(&self, topic: &str) -> bool {
        topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(":ctl"))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
    }

    /// The channel a topic of this prefix belongs to.
    pub(crate) fn channel_of<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":c:{")?
            .strip_suffix('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_back_to_channels() {
        let keys = Keys::new("duplex");
        let c = ChannelName::new("ns:room#1,2").unwrap();
        let topic = keys.topic(&c);
        assert_eq!(topic, "duplex:c:{ns:room#1,2}");
        assert_eq!(keys.channel_of(&topic), Some("ns:room#1,2"));
        assert_eq!(Keys::new("other").channel_of(&topic), None);
        assert_eq!(keys.channel_of("duplex:m:{x}"), None);
        assert_eq!(keys.meta(&c), "duplex:m:{ns:room#1,2}");
        assert_eq!(keys.idempotency(&c, "k 1"), b"duplex:i:{ns:room#1,2}:k 1");
        assert!(keys.is_control(&keys.control()));
        assert!(keys.is_control(&keys.control_of("n1")));
        assert!(!keys.is_control(&topic));
        assert!(!keys.is_control("duplex:ctlx"));
        assert_eq!(keys.channel_of(&keys.control()), None);
    }
}
