//! The database file: connection setup, the versioned schema, and how a
//! [`Publication`] maps to a row and back.
//!
//! Three tables: `streams` (per channel: epoch, top offset, when its meta
//! data expires), `publications` (the kept history, keyed by channel and
//! offset) and `idempotency` (recent keys with the result they got). The
//! schema version lives in SQLite's `user_version` pragma. Which statements
//! run when is the writer's and reader's business, not this module's.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hub::{ClientInfo, Publication};
use rusqlite::{params, Connection, Row};

use crate::config::SqliteStoreConfig;
use crate::error::{OpenError, StoreError};

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE streams (
    channel      TEXT    NOT NULL PRIMARY KEY,
    epoch        TEXT    NOT NULL,
    top          INTEGER NOT NULL,
    meta_expires INTEGER NOT NULL,
    meta_ttl     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX streams_by_meta_expires ON streams (meta_expires);

CREATE TABLE publications (
    channel       TEXT    NOT NULL,
    stream_offset INTEGER NOT NULL,
    expires       INTEGER NOT NULL,
    time_ns       INTEGER NOT NULL,
    data          BLOB    NOT NULL,
    info_user     TEXT,
    info_client   TEXT,
    conn_info     BLOB,
    chan_info     BLOB,
    tags          TEXT,
    PRIMARY KEY (channel, stream_offset)
) WITHOUT ROWID;
CREATE INDEX publications_by_expires ON publications (expires);

CREATE TABLE idempotency (
    channel       TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    expires       INTEGER NOT NULL,
    stream_offset INTEGER NOT NULL,
    epoch         TEXT    NOT NULL,
    PRIMARY KEY (channel, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_expires ON idempotency (expires);
";

/// Opens the writer's connection: creates the file, switches it to WAL,
/// and creates or checks the schema.
pub(crate) fn open_writer(
    path: &Path,
    config: &SqliteStoreConfig,
) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let setup = |source| OpenError::Setup {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(config.busy_timeout).map_err(setup)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(setup)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    tune(&conn, config).map_err(setup)?;
    let tx = conn.transaction().map_err(setup)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(setup)?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA).map_err(setup)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(setup)?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(OpenError::UnsupportedSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            })
        }
    }
    tx.commit().map_err(setup)?;
    Ok(conn)
}

/// Opens a connection that only reads (lookups and history reads).
pub(crate) fn open_reader(
    path: &Path,
    config: &SqliteStoreConfig,
) -> Result<Connection, OpenError> {
    let conn = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let setup = |source| OpenError::Setup {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(config.busy_timeout).map_err(setup)?;
    tune(&conn, config).map_err(setup)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(setup)?;
    Ok(conn)
}

fn tune(conn: &Connection, config: &SqliteStoreConfig) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", config.synchronous.pragma_value())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Statements are few and reused: keep them all prepared.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// A publication ready to insert: encoded by the publishing thread, so the
/// writer thread only binds values.
#[derive(Debug)]
pub(crate) struct PubRow {
    pub(crate) offset: i64,
    pub(crate) expires: i64,
    pub(crate) time_ns: i64,
    pub(crate) data: Bytes,
    pub(crate) info_user: Option<Arc<str>>,
    pub(crate) info_client: Option<Arc<str>>,
    pub(crate) conn_info: Option<Bytes>,
    pub(crate) chan_info: Option<Bytes>,
    pub(crate) tags: Option<String>,
}

impl PubRow {
    /// Encodes `p` (its offset is set later, see [`Self::offset`]).
    pub(crate) fn encode(p: &Publication) -> Result<Self, StoreError> {
        let tags = if p.tags.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&p.tags)
                    .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
            )
        };
        let info = p.info.as_ref();
        Ok(Self {
            offset: 0,
            expires: 0,
            time_ns: time_ns(p.time),
            data: p.data.clone(),
            info_user: info.map(|i| i.user.clone()),
            info_client: info.map(|i| i.client.clone()),
            conn_info: info.and_then(|i| i.conn_info.clone()),
            chan_info: info.and_then(|i| i.chan_info.clone()),
            tags,
        })
    }
}

/// Inserts (or replaces) one publication of `channel`.
pub(crate) fn insert_publication(
    conn: &Connection,
    channel: &str,
    row: &PubRow,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO publications
             (channel, stream_offset, expires, time_ns, data,
              info_user, info_client, conn_info, chan_info, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        channel,
        row.offset,
        row.expires,
        row.time_ns,
        &row.data[..],
        row.info_user.as_deref(),
        row.info_client.as_deref(),
        row.conn_info.as_deref(),
        row.chan_info.as_deref(),
        row.tags.as_deref(),
    ])?;
    Ok(())
}

/// The columns [`decode_publication`] reads, in its order (the reader's
/// queries spell them out; a test checks they match).
#[cfg(test)]
pub(crate) const PUBLICATION_COLUMNS: &str =
    "stream_offset, time_ns, data, info_user, info_client, conn_info, chan_info, tags";

/// Reads a publication from a row selected with [`PUBLICATION_COLUMNS`].
pub(crate) fn decode_publication(row: &Row<'_>) -> Result<Publication, StoreError> {
    let offset = to_offset(row.get(0)?)?;
    let time_ns: i64 = row.get(1)?;
    let data: Vec<u8> = row.get(2)?;
    let user: Option<String> = row.get(3)?;
    let client: Option<String> = row.get(4)?;
    let conn_info: Option<Vec<u8>> = row.get(5)?;
    let chan_info: Option<Vec<u8>> = row.get(6)?;
    let tags: Option<String> = row.get(7)?;
    let info = client.map(|client| ClientInfo {
        user: user.unwrap_or_default().into(),
        client: client.into(),
        conn_info: conn_info.map(Bytes::from),
        chan_info: chan_info.map(Bytes::from),
    });
    let tags: BTreeMap<String, String> = match tags {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("tags at offset {offset}: {e}")))?,
        None => BTreeMap::new(),
    };
    Ok(Publication {
        offset,
        data: Bytes::from(data),
        info,
        tags,
        time: from_time_ns(time_ns),
    })
}

/// A stored offset back to `u64` (offsets are never negative).
pub(crate) fn to_offset(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative offset {value}")))
}

/// An offset as SQLite's integer.
pub(crate) fn from_offset(offset: u64) -> Result<i64, StoreError> {
    i64::try_from(offset).map_err(|_| StoreError::Corrupt(format!("offset {offset} too large")))
}

/// Nanoseconds since the Unix epoch, negative before it, saturating
/// about 292 years away.
pub(crate) fn time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
    }
}

fn from_time_ns(ns: i64) -> SystemTime {
    match u64::try_from(ns) {
        Ok(ns) => UNIX_EPOCH + Duration::from_nanos(ns),
        Err(_) => UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 1),
        ] {
            assert_eq!(from_time_ns(time_ns(t)), t);
        }
    }

    #[test]
    fn offsets_are_checked() {
        assert!(to_offset(-1).is_err());
        assert_eq!(to_offset(7).unwrap(), 7);
        assert!(from_offset(u64::MAX).is_err());
    }
}
