//! Names of every Redis key and pub/sub topic the cluster uses.
//!
//! Namespace and room names are user data and may hold any character, so
//! a namespace is written with its length first (`5:/chat`): no two
//! (namespace, room) pairs give the same topic.

/// Key and topic names under one prefix.
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

    fn ns(&self, kind: &str, ns: &str) -> String {
        format!("{}:{kind}:{}:{ns}", self.prefix, ns.len())
    }

    /// Broadcasts to every socket of namespace `ns` (and its server-side
    /// events): every node that has the namespace listens.
    pub(crate) fn all(&self, ns: &str) -> String {
        self.ns("all", ns)
    }

    /// Broadcasts to `room` of `ns`: nodes with a socket in it listen.
    pub(crate) fn room(&self, ns: &str, room: &str) -> String {
        format!("{}:{room}", self.ns("room", ns))
    }

    /// Requests every node answers (fetchSockets, broadcasts with acks).
    pub(crate) fn requests(&self) -> String {
        format!("{}:req", self.prefix)
    }

    /// Answers to requests sent by `node`.
    pub(crate) fn responses(&self, node: &str) -> String {
        format!("{}:res:{node}", self.prefix)
    }

    /// Sorted set of live nodes, scored by their last heartbeat (ms).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Counter handing out node tags (the high bits of recovery offsets).
    pub(crate) fn node_tags(&self) -> String {
        format!("{}:node-tags", self.prefix)
    }

    /// Which node holds Engine.IO session `sid`.
    pub(crate) fn session_owner(&self, sid: &str) -> String {
        format!("{}:eio:{sid}", self.prefix)
    }

    /// The recovery log of `ns`: a stream whose entry ids are sequence
    /// numbers (`<seq>-0`).
    pub(crate) fn log(&self, ns: &str) -> String {
        self.ns("log", ns)
    }

    /// Offset → sequence number of the log entries of `ns`.
    pub(crate) fn log_index(&self, ns: &str) -> String {
        self.ns("logidx", ns)
    }

    /// The last sequence number of the log of `ns`.
    pub(crate) fn log_seq(&self, ns: &str) -> String {
        self.ns("logseq", ns)
    }

    /// A disconnected socket's saved state, under its private id.
    pub(crate) fn saved_session(&self, ns: &str, pid: &str) -> String {
        format!("{}:{pid}", self.ns("pid", ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_rooms_cannot_collide() {
        let k = Keys::new("p");
        assert_ne!(k.room("/a:room", "x"), k.room("/a", "room:x"));
        assert_eq!(k.room("/", "r"), "p:room:1:/:r");
        assert_eq!(k.all("/chat"), "p:all:5:/chat");
    }
}
