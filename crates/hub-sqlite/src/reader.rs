//! History reads: a few threads, each with its own read-only connection,
//! answering [`ReadJob`]s from a shared queue.
//!
//! A job reaches a reader only after the writer has processed every command
//! that touched the channel when the read was asked for (the store waits for
//! that), so a read sees every publish accepted before it. Each job reads
//! the stream row and the publications in one read transaction, so the
//! position it returns matches the publications. Deciding what to wait for
//! is the store's job, not this module's.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use hub::{ChannelName, HistoryFilter, HistoryResult, StreamPosition};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::cache::lock;
use crate::config::Clock;
use crate::error::{OpenError, StoreError};
use crate::schema::{decode_publication, to_offset};

/// One history read.
pub(crate) struct ReadJob {
    pub(crate) channel: ChannelName,
    pub(crate) filter: HistoryFilter,
    /// The position the cache had when the read was asked for; used if the
    /// database has no stream row (its creation failed).
    pub(crate) position: StreamPosition,
    pub(crate) reply: oneshot::Sender<Result<HistoryResult, StoreError>>,
}

/// Starts one reader thread per connection; they stop when every sender of
/// the returned queue is gone.
pub(crate) fn spawn(conns: Vec<Connection>, clock: Clock) -> Result<Sender<ReadJob>, OpenError> {
    let (tx, rx) = mpsc::channel();
    let rx = Arc::new(Mutex::new(rx));
    for (i, conn) in conns.into_iter().enumerate() {
        let rx = rx.clone();
        let clock = clock.clone();
        std::thread::Builder::new()
            .name(format!("hub-sqlite-reader-{i}"))
            .spawn(move || run(conn, &rx, &clock))
            .map_err(|source| OpenError::Thread {
                what: "reader",
                source,
            })?;
    }
    Ok(tx)
}

fn run(mut conn: Connection, rx: &Mutex<Receiver<ReadJob>>, clock: &Clock) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match lock(rx).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let result = read(&mut conn, &job, clock.now_ms());
        let _ = job.reply.send(result);
    }
}

fn read(conn: &mut Connection, job: &ReadJob, now: i64) -> Result<HistoryResult, StoreError> {
    let tx = conn.transaction()?;
    let channel = job.channel.as_str();
    let stream: Option<(String, i64)> = tx
        .prepare_cached("SELECT epoch, top FROM streams WHERE channel = ?1")?
        .query_row([channel], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let position = match stream {
        Some((epoch, top)) => StreamPosition::new(to_offset(top)?, epoch),
        None => job.position.clone(),
    };
    let filter = &job.filter;
    let limit = filter
        .limit
        .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    // Expired publications at the front are hidden (the writer deletes them
    // lazily): everything before the first live one is gone.
    let since = filter
        .since
        .as_ref()
        .map(|s| i64::try_from(s.offset).unwrap_or(i64::MAX));
    let (sql, bound) = if filter.reverse {
        (REVERSE, since.unwrap_or(i64::MAX))
    } else {
        (FORWARD, since.unwrap_or(0))
    };
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query(params![channel, bound, now, limit])?;
    let mut publications = Vec::new();
    while let Some(row) = rows.next()? {
        publications.push(decode_publication(row)?);
    }
    drop(rows);
    drop(stmt);
    tx.commit()?;
    Ok(HistoryResult {
        publications,
        position,
    })
}

/// Publications after `?2`, oldest first; `?3` is now, `?4` the limit (-1
/// for none). The sub-select finds the first live publication.
const FORWARD: &str =
    "SELECT stream_offset, time_ns, data, info_user, info_client, conn_info, chan_info, tags
     FROM publications
     WHERE channel = ?1 AND stream_offset > ?2
       AND stream_offset >= (SELECT stream_offset FROM publications
                             WHERE channel = ?1 AND expires > ?3
                             ORDER BY stream_offset LIMIT 1)
     ORDER BY stream_offset ASC LIMIT ?4";

/// Publications before `?2`, newest first; otherwise as [`FORWARD`].
const REVERSE: &str =
    "SELECT stream_offset, time_ns, data, info_user, info_client, conn_info, chan_info, tags
     FROM publications
     WHERE channel = ?1 AND stream_offset < ?2
       AND stream_offset >= (SELECT stream_offset FROM publications
                             WHERE channel = ?1 AND expires > ?3
                             ORDER BY stream_offset LIMIT 1)
     ORDER BY stream_offset DESC LIMIT ?4";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::PUBLICATION_COLUMNS;

    #[test]
    fn queries_select_the_decoded_columns() {
        for sql in [FORWARD, REVERSE] {
            assert!(sql.contains(PUBLICATION_COLUMNS), "{sql}");
        }
    }
}
