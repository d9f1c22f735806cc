//! Recovery: can a client that stopped at a stream position catch up from
//! history, and with what?
//!
//! A client remembers the epoch and offset of the last publication it saw.
//! On resubscribe it sends them, and gets either every publication it missed
//! (in offset order, `recovered: true`) or `recovered: false` with the
//! current position and nothing else, so it reloads its state from the
//! application. There is no middle ground: a partial answer would be a
//! silent gap. The same rule guards history reads that continue from a
//! position ([`check_continuation`]).
//!
//! These functions work on any [`Store`]; they read, never write.

use crate::channel::ChannelName;
use crate::error::{Error, Result};
use crate::publication::{Publication, StreamPosition};
use crate::store::{HistoryFilter, HistoryResult, Store};

/// The outcome of [`recover`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovery {
    /// Whether `publications` is exactly everything after the client's position.
    pub recovered: bool,
    /// The missed publications in offset order; empty when not recovered.
    pub publications: Vec<Publication>,
    /// The stream's current position: where the client continues from.
    pub position: StreamPosition,
}

/// Tries to recover `channel` from `since`.
///
/// Recovered when the epoch matches, `since.offset` is not past the end,
/// every publication after it is still in history, and there are at most
/// `max_publications` of them (`None`: no limit). Otherwise not recovered,
/// with the current position.
pub async fn recover(
    store: &dyn Store,
    channel: &ChannelName,
    since: &StreamPosition,
    max_publications: Option<usize>,
) -> Result<Recovery> {
    let filter = HistoryFilter {
        since: Some(since.clone()),
        // One more than allowed, to tell "exactly the limit" from "more".
        limit: max_publications.map(|m| m.saturating_add(1)),
        reverse: false,
    };
    let HistoryResult {
        publications,
        position,
    } = store.history(channel, filter).await?;
    Ok(recovery_from(
        since,
        publications,
        position,
        max_publications,
    ))
}

/// Decides recovery from a forward history read after `since`.
pub fn recovery_from(
    since: &StreamPosition,
    publications: Vec<Publication>,
    position: StreamPosition,
    max_publications: Option<usize>,
) -> Recovery {
    let complete = is_complete(since, &publications, &position)
        && max_publications.is_none_or(|max| publications.len() <= max);
    if complete {
        Recovery {
            recovered: true,
            publications,
            position,
        }
    } else {
        Recovery {
            recovered: false,
            publications: Vec::new(),
            position,
        }
    }
}

/// Whether `publications` are exactly the offsets `since.offset + 1 ..=
/// position.offset` of the same epoch.
fn is_complete(
    since: &StreamPosition,
    publications: &[Publication],
    position: &StreamPosition,
) -> bool {
    if since.epoch != position.epoch || since.offset > position.offset {
        return false;
    }
    let missed = position.offset - since.offset;
    publications.len() as u64 == missed
        && publications
            .iter()
            .zip(since.offset + 1..)
            .all(|(p, expected)| p.offset == expected)
}

/// Checks a history read that asked for publications after (or, reversed,
/// before) a position: the epoch must match and the position must exist;
/// a forward read must also continue without a gap. Otherwise
/// [`Error::UnrecoverablePosition`] (code 112).
pub fn check_continuation(filter: &HistoryFilter, result: &HistoryResult) -> Result<()> {
    let Some(since) = &filter.since else {
        return Ok(());
    };
    let position = &result.position;
    if since.epoch != position.epoch || since.offset > position.offset {
        return Err(Error::UnrecoverablePosition);
    }
    if filter.reverse || filter.limit == Some(0) || since.offset == position.offset {
        return Ok(());
    }
    match result.publications.first() {
        Some(first) if first.offset == since.offset + 1 => Ok(()),
        _ => Err(Error::UnrecoverablePosition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pubs(offsets: impl IntoIterator<Item = u64>) -> Vec<Publication> {
        offsets
            .into_iter()
            .map(|offset| Publication {
                offset,
                ..Publication::new("x")
            })
            .collect()
    }

    fn pos(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition::new(offset, epoch)
    }

    #[test]
    fn recovery_rules() {
        // (since, history after since, current position, limit, recovered)
        let cases = [
            (pos(3, "e"), pubs(4..=5), pos(5, "e"), None, true),
            (pos(5, "e"), pubs([]), pos(5, "e"), None, true),
            (pos(0, "e"), pubs(1..=2), pos(2, "e"), None, true),
            (pos(3, "e"), pubs(4..=5), pos(5, "e"), Some(2), true),
            (pos(3, "e"), pubs(4..=6), pos(6, "e"), Some(2), false),
            (pos(3, "old"), pubs(4..=5), pos(5, "e"), None, false),
            (pos(7, "e"), pubs([]), pos(5, "e"), None, false),
            // Trimmed: 4 is gone.
            (pos(3, "e"), pubs(5..=6), pos(6, "e"), None, false),
            // History emptied (TTL or removal) while the offset moved on.
            (pos(3, "e"), pubs([]), pos(6, "e"), None, false),
            // A hole in the middle (a broken store) is not papered over.
            (pos(3, "e"), pubs([4, 6]), pos(6, "e"), None, false),
        ];
        for (since, history, position, limit, recovered) in cases {
            let r = recovery_from(&since, history.clone(), position.clone(), limit);
            assert_eq!(r.recovered, recovered, "{since:?} {position:?} {limit:?}");
            assert_eq!(r.position, position);
            if recovered {
                assert_eq!(r.publications, history);
            } else {
                assert!(r.publications.is_empty());
            }
        }
    }

    #[test]
    fn continuation_rules() {
        let since = |offset, epoch: &str| HistoryFilter::since(pos(offset, epoch));
        let result = |offsets: Vec<u64>, top| HistoryResult {
            publications: pubs(offsets),
            position: pos(top, "e"),
        };
        assert!(check_continuation(&HistoryFilter::default(), &result(vec![], 9)).is_ok());
        assert!(check_continuation(&since(2, "e"), &result(vec![3, 4], 4)).is_ok());
        assert!(check_continuation(&since(4, "e"), &result(vec![], 4)).is_ok());
        let unrecoverable = [
            (since(2, "x"), result(vec![3, 4], 4)),
            (since(5, "e"), result(vec![], 4)),
            (since(1, "e"), result(vec![3, 4], 4)),
            (since(1, "e"), result(vec![], 4)),
        ];
        for (filter, res) in unrecoverable {
            let err = check_continuation(&filter, &res).unwrap_err();
            assert_eq!(err.code(), 112, "{filter:?}");
        }
        let reverse = HistoryFilter {
            reverse: true,
            ..since(4, "e")
        };
        assert!(check_continuation(&reverse, &result(vec![2, 1], 4)).is_ok());
        let position_only = HistoryFilter {
            limit: Some(0),
            ..since(1, "e")
        };
        assert!(check_continuation(&position_only, &result(vec![], 4)).is_ok());
    }
}
