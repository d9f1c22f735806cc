//! A connection's subscriptions by channel, kept small: a connection has a
//! handful at most, usually one, so they are a vector sorted by channel
//! name (binary search) rather than a hash map, whose smallest table costs
//! several times one entry on every idle connection.

use hub::ChannelName;

/// One subscription of the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sub {
    pub(super) generation: u64,
    /// When the subscription token expires (Unix seconds).
    pub(super) exp: Option<u64>,
}

/// The subscriptions, sorted by channel name; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Subs(Vec<(ChannelName, Sub)>);

impl Subs {
    fn find(&self, channel: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(c, _)| c.as_str().cmp(channel))
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn contains_key(&self, channel: &str) -> bool {
        self.find(channel).is_ok()
    }

    pub(super) fn get(&self, channel: &str) -> Option<&Sub> {
        self.find(channel).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn get_mut(&mut self, channel: &str) -> Option<&mut Sub> {
        self.find(channel).ok().map(|i| &mut self.0[i].1)
    }

    /// Adds or replaces the subscription to `channel`.
    pub(super) fn insert(&mut self, channel: ChannelName, sub: Sub) {
        match self.find(&channel) {
            Ok(i) => self.0[i].1 = sub,
            Err(i) => {
                if self.0.len() == self.0.capacity() {
                    // Grow by doubling from one, not from the default four:
                    // most connections never have a second subscription.
                    self.0.reserve_exact(self.0.capacity().max(1));
                }
                self.0.insert(i, (channel, sub));
            }
        }
    }

    pub(super) fn remove(&mut self, channel: &str) -> Option<Sub> {
        let i = self.find(channel).ok()?;
        let (_, sub) = self.0.remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(sub)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&ChannelName, &Sub)> {
        self.0.iter().map(|(c, s)| (c, s))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ChannelName> {
        self.0.iter().map(|(c, _)| c)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Sub> {
        self.0.iter().map(|(_, s)| s)
    }

    /// Removes every subscription, returning their channels.
    pub(super) fn take_channels(&mut self) -> Vec<ChannelName> {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::new(name).unwrap()
    }

    fn sub(generation: u64) -> Sub {
        Sub {
            generation,
            exp: None,
        }
    }

    #[test]
    fn sorted_lookup_insert_remove() {
        let mut subs = Subs::default();
        for (i, name) in ["m", "a", "z", "c"].iter().enumerate() {
            subs.insert(ch(name), sub(i as u64 + 1));
        }
        assert_eq!(subs.len(), 4);
        let names: Vec<&str> = subs.keys().map(|c| c.as_str()).collect();
        assert_eq!(names, ["a", "c", "m", "z"]);
        assert_eq!(subs.get("z").map(|s| s.generation), Some(3));
        assert!(subs.get("b").is_none());
        subs.insert(ch("z"), sub(9));
        assert_eq!(subs.len(), 4);
        assert_eq!(subs.get("z").map(|s| s.generation), Some(9));
        if let Some(s) = subs.get_mut("a") {
            s.exp = Some(5);
        }
        assert_eq!(subs.values().filter_map(|s| s.exp).min(), Some(5));
        assert_eq!(subs.remove("c").map(|s| s.generation), Some(4));
        assert!(subs.remove("c").is_none());
        assert!(!subs.contains_key("c"));
        assert!(subs.contains_key("m"));
        let all = subs.take_channels();
        assert_eq!(all.len(), 3);
        assert_eq!(subs.len(), 0);
    }

    #[test]
    fn one_subscription_takes_one_slot() {
        let mut subs = Subs::default();
        subs.insert(ch("a"), sub(1));
        assert_eq!(subs.0.capacity(), 1);
        subs.insert(ch("b"), sub(2));
        assert_eq!(subs.0.capacity(), 2);
        subs.remove("a");
        subs.remove("b");
        assert_eq!(subs.0.capacity(), 0);
    }
}
