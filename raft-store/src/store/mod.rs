//! RocksDB storage for openraft: the log store, the state machine store,
//! snapshot files, the group-commit writer thread and the data-dir identity.
//!
//! On disk, under the data dir:
//! - `IDENTITY`: cluster id and site id, written on first start.
//! - `db/`: one RocksDB with four column families: `log` (index -> entry),
//!   `raft` (vote, committed, purged), `state` (the state machine's rows) and
//!   `applied` (last applied log id, membership).
//! - `snapshots/`: the current snapshot file, and files being built or received.

mod change_feed;
mod dir_lock;
mod identity;
mod idle_thread;
mod log_store;
mod recover;
mod snapshot_dir;
mod state_machine;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rocksdb::BlockBasedOptions;
use rocksdb::Cache;
use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::DB;
use rocksdb::DBCompressionType;
use rocksdb::DBRecoveryMode;
use rocksdb::Options;

pub use self::change_feed::ChangeEvent;
pub use self::change_feed::ChangeFeed;
pub use self::change_feed::Compacted;
pub use self::change_feed::CutOff;
pub use self::change_feed::IndexedEvent;
pub use self::change_feed::Interest;
pub use self::change_feed::LiveEvents;
pub use self::change_feed::Subscription;
pub use self::dir_lock::DataDirLock;
pub use self::dir_lock::LOCK_FILE;
pub use self::identity::Identity;
pub use self::log_store::LogStore;
pub use self::recover::Recovered;
pub use self::recover::recover_single_site;
pub use self::snapshot_dir::SnapshotDir;
pub use self::snapshot_dir::SnapshotRecord;
pub use self::state_machine::AppliedState;
pub use self::state_machine::SnapshotBuilder;
pub use self::state_machine::StateMachineStore;
pub use self::state_machine::StateReader;
pub use self::writer::Durability;
pub use self::writer::Stopped;
pub use self::writer::Writer;
use crate::error::Error;
pub use crate::snapshot_file::SnapshotFile;
pub use crate::snapshot_file::read_chunk;
pub use crate::snapshot_file::read_snapshot;

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_APPLIED: &str = "applied";
const COLUMN_FAMILIES: [&str; 4] = [CF_LOG, CF_RAFT, CF_STATE, CF_APPLIED];

/// Total WAL size before RocksDB flushes the column families that pin the
/// oldest WAL file. Without it a rarely written family (the vote) keeps every
/// WAL file alive and the WAL grows without bound.
pub const WAL_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Memtable size per column family before a flush.
pub const MEMTABLE_BYTES: usize = 16 * 1024 * 1024;
/// Shared block cache; the state is also held in memory, so reads here are
/// mostly the log tail for replication.
pub const BLOCK_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Background flush and compaction threads: the machines have 2 cores.
pub const BACKGROUND_JOBS: i32 = 2;

/// Looks up a column family that `open` created.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created when the database opens")
}

fn database_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_total_wal_size(WAL_BYTES_MAX);
    // Archived WAL files are deleted at once (no TTL, no size allowance).
    options.set_wal_ttl_seconds(0);
    options.set_wal_size_limit_mb(0);
    // A torn last WAL record (crash mid-write) is dropped; anything before it is kept.
    options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    options.set_max_background_jobs(BACKGROUND_JOBS);
    options.set_bytes_per_sync(1024 * 1024);
    options.set_wal_bytes_per_sync(0);
    options.set_keep_log_file_num(4);
    options.set_max_log_file_size(8 * 1024 * 1024);
    options.set_max_open_files(512);
    options
}

fn family_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut options = Options::default();
    options.set_write_buffer_size(MEMTABLE_BYTES);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_block_based_table_factory(&table);
    options
}

/// Everything openraft and the API need from one data dir.
pub struct OpenedStore {
    /// The Raft log and vote.
    pub log: LogStore,
    /// The state machine.
    pub state_machine: StateMachineStore,
    /// The applied state, read without locks.
    pub reader: StateReader,
    /// Route and node-info changes, for watches.
    pub feed: ChangeFeed,
    /// Snapshot files.
    pub snapshots: SnapshotDir,
    /// The database.
    pub db: Arc<DB>,
    /// Set once every handle is dropped and the database is closed.
    pub stopped: Stopped,
}

/// Opens (or creates) the storage under `data_dir`, after checking that the
/// dir belongs to `identity`.
pub fn open(data_dir: &Path, identity: &Identity) -> Result<OpenedStore, Error> {
    identity.claim(data_dir)?;
    // Held by the writer thread until the database is closed.
    let lock = DataDirLock::acquire(data_dir)?;
    // Made (and its entry synced) here: RocksDB syncs the files it makes
    // inside, not the directory's own entry in the data dir.
    let db_dir = data_dir.join("db");
    crate::snapshot_file::create_dir_synced(&db_dir)?;
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let families =
        COLUMN_FAMILIES.map(|name| ColumnFamilyDescriptor::new(name, family_options(&cache)));
    let db = DB::open_cf_descriptors(&database_options(), &db_dir, families).map_err(|source| {
        Error::Rocks {
            context: "opening the database",
            source,
        }
    })?;
    let db = Arc::new(db);
    let writer = Writer::start(db.clone(), lock)?;
    let snapshots = SnapshotDir::open(&data_dir.join("snapshots"))?;
    let state_machine = StateMachineStore::open(db.clone(), writer.clone(), snapshots.clone())?;
    let reader = state_machine.reader();
    let feed = state_machine.feed();
    let stopped = writer.stopped();
    let log = LogStore::new(db.clone(), writer);
    Ok(OpenedStore {
        log,
        state_machine,
        reader,
        feed,
        snapshots,
        db,
        stopped,
    })
}

/// What the database holds on disk, in bytes: its write-ahead log and its
/// sorted tables. Read from the directory (a few dozen files), not from
/// RocksDB, so it works while the database is busy or closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes in the write-ahead log files (`*.log`).
    pub wal_bytes: u64,
    /// Bytes in the sorted table files (`*.sst`).
    pub sst_bytes: u64,
}

/// What the database under `data_dir` holds on disk now; a missing
/// directory or a file removed while it is read counts as empty.
pub fn disk_usage(data_dir: &Path) -> DiskUsage {
    let mut usage = DiskUsage::default();
    let Ok(entries) = std::fs::read_dir(data_dir.join("db")) else {
        return usage;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(ext) = path.extension() else {
            continue;
        };
        let Ok(len) = entry.metadata().map(|m| m.len()) else {
            continue;
        };
        if ext == "log" {
            usage.wal_bytes += len;
        } else if ext == "sst" {
            usage.sst_bytes += len;
        }
    }
    usage
}

#[cfg(test)]
mod tests;
