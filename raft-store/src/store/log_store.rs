//! The Raft log and vote in RocksDB, behind openraft's `RaftLogStorage`.
//!
//! Keys: the `log` column family maps the big-endian log index to the entry;
//! the `raft` column family holds the vote, the committed log id and the last
//! purged log id. Every write says whether it is synced and why.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use rocksdb::DB;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::WriteBatch;

use crate::error::Error;
use crate::raft_records;
use crate::raft_records::Recorded;
use crate::store::CF_LOG;
use crate::store::CF_RAFT;
use crate::store::cf;
use crate::store::writer::Durability;
use crate::store::writer::Writer;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

const KEY_VOTE: &[u8] = b"vote";
pub(crate) const KEY_COMMITTED: &[u8] = b"committed";
pub(crate) const KEY_PURGED: &[u8] = b"purged";

/// Most entries one read returns; openraft asks for at most
/// `max_payload_entries` per message, so this only guards a runaway range.
pub const LOG_READ_ENTRIES_MAX: usize = 64 * 1024;

/// The log store. Cloning shares the database and the writer.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    writer: Writer,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn to_io(error: Error) -> io::Error {
    error.into()
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, writer: Writer) -> Self {
        LogStore { db, writer }
    }

    fn read_raft_key<T: Recorded>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        let value = self
            .db
            .get_pinned_cf(cf(&self.db, CF_RAFT), key)
            .map_err(|source| Error::Rocks {
                context: "reading raft state",
                source,
            })?;
        value
            .map(|bytes| raft_records::decode(what, &bytes))
            .transpose()
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, Error> {
        let mut iterator = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match iterator.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|source| Error::Rocks {
                    context: "reading last log entry",
                    source,
                })?;
                let entry: Entry = raft_records::decode("log entry", &value)?;
                Ok(Some(entry.log_id()))
            }
        }
    }

    /// Entries with indexes in `start..end_excluded`, in order, at most
    /// `LOG_READ_ENTRIES_MAX` of them (read again from the next index for
    /// more).
    pub(crate) fn read_entries(&self, start: u64, end_excluded: u64) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        if start >= end_excluded {
            return Ok(entries);
        }
        let key = index_key(start);
        let iterator = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&key, Direction::Forward),
        );
        for item in iterator {
            let (key, value) = item.map_err(|source| Error::Rocks {
                context: "reading log",
                source,
            })?;
            let index =
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| Error::Corrupt {
                    what: "log key",
                    reason: format!("{} bytes", key.len()),
                })?);
            if index >= end_excluded {
                break;
            }
            let entry: Entry = raft_records::decode("log entry", &value)?;
            assert_eq!(
                entry.log_id().index,
                index,
                "a log entry is stored under its own index"
            );
            entries.push(entry);
            if entries.len() >= LOG_READ_ENTRIES_MAX {
                break;
            }
        }
        Ok(entries)
    }

    /// The last purged log id.
    pub fn purged(&self) -> Result<Option<LogId>, Error> {
        self.read_raft_key(KEY_PURGED, "purged log id")
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end_excluded = match range.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => u64::MAX,
        };
        self.read_entries(start, end_excluded).map_err(to_io)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_raft_key(KEY_VOTE, "vote").map_err(to_io)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id = self.purged().map_err(to_io)?;
        let last_log_id = self
            .last_entry_log_id()
            .map_err(to_io)?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_VOTE, raft_records::encode(vote));
        // Synced: a site must never vote twice in one term, even after a power loss.
        self.writer.write_synced(batch).await.map_err(to_io)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_COMMITTED,
            raft_records::encode(&committed),
        );
        // Buffered: losing it only means re-learning the commit index from the
        // leader; it lets a restarted site re-apply its committed log sooner.
        // Not waited for: only `read_committed` reads it (after a barrier),
        // and the apply that follows every commit should not wait for the
        // writer; if the process dies first, it is lost like any buffered
        // write.
        self.writer.write_behind(batch).await.map_err(to_io)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        // `save_committed` does not wait for its write (read at startup only).
        self.writer.all_queued_written().await.map_err(to_io)?;
        Ok(self
            .read_raft_key::<Option<LogId>>(KEY_COMMITTED, "committed log id")
            .map_err(to_io)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        let mut count = 0usize;
        for entry in entries {
            batch.put_cf(
                log,
                index_key(entry.log_id().index),
                raft_records::encode(&entry),
            );
            count += 1;
        }
        metrics::counter!("switchboard_storage_log_entries_appended_total").increment(count as u64);
        // Synced before openraft is told: an acknowledged entry must survive a
        // power loss. Readable as soon as `write` returns; `callback` fires
        // from the writer thread once the group's fsync is done.
        let durable = Box::new(move |result: Result<(), io::Error>| callback.io_completed(result));
        self.writer
            .write(batch, Durability::Synced, Some(durable))
            .await
            .map_err(to_io)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), index_key(from), index_key(u64::MAX));
        batch.delete_cf(cf(&self.db, CF_LOG), index_key(u64::MAX));
        // Synced: a truncated conflicting suffix must never come back after a crash.
        self.writer.write_synced(batch).await.map_err(to_io)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_PURGED,
            raft_records::encode(&log_id),
        );
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            index_key(0),
            index_key(log_id.index + 1),
        );
        // Synced, and the sync also makes durable every buffered state write
        // queued before it (one WAL, one writer keeping the queue's order; a
        // purge follows the snapshot, which follows the applies it covers):
        // the applied state covering the purged entries is on disk before
        // the entries are gone.
        self.writer.write_synced(batch).await.map_err(to_io)?;
        metrics::gauge!("switchboard_storage_purged_index").set(log_id.index as f64);
        Ok(())
    }
}
