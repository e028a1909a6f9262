//! The applied state in RocksDB, behind openraft's `RaftStateMachine`.
//!
//! The pure [`State`] is the working copy; after each batch of entries the
//! rows the batch touched and the last applied log id go to RocksDB in one
//! write batch, then a new read-only view is published for readers. Readers
//! never lock: they load the latest view from an `ArcSwap`.
//!
//! Snapshots never stop apply: the builder takes an O(1) clone of the
//! persistent state and writes the file on a blocking thread while apply
//! goes on.

use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use rocksdb::DB;
use rocksdb::WriteBatch;
use tokio::sync::watch;

use crate::error::Error;
use crate::raft_records;
use crate::reply::Outcome;
use crate::reply::Reply;
use crate::snapshot_file::SnapshotFile;
use crate::snapshot_file::read_snapshot;
use crate::state::ChangeSet;
use crate::state::State;
use crate::store::CF_APPLIED;
use crate::store::CF_STATE;
use crate::store::cf;
use crate::store::change_feed::ChangeEvent;
use crate::store::change_feed::ChangeFeed;
use crate::store::change_feed::IndexedEvent;
use crate::store::idle_thread::run_idle;
use crate::store::snapshot_dir::SnapshotDir;
use crate::store::writer::Writer;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;
use openraft::type_config::alias::SnapshotOf;

pub(crate) const KEY_LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";

/// The bounds of the state column family's key space (all row prefixes are below 0xFF).
const STATE_KEYS_START: &[u8] = &[0x00];
const STATE_KEYS_END: &[u8] = &[0xFF, 0xFF];

/// A read-only view of the applied state, as of one log index.
#[derive(Clone, Debug, Default)]
pub struct AppliedState {
    /// The state.
    pub state: State,
    /// The last entry applied.
    pub last_applied: Option<LogId>,
    /// The membership applied with it.
    pub membership: StoredMembership,
}

impl AppliedState {
    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.last_applied.as_ref().map_or(0, |id| id.index)
    }
}

/// Lock-free access to the latest applied state, for the API's reads.
#[derive(Clone)]
pub struct StateReader {
    current: Arc<ArcSwap<AppliedState>>,
    applied: watch::Receiver<u64>,
}

impl StateReader {
    /// The latest applied state.
    pub fn load(&self) -> Arc<AppliedState> {
        self.current.load_full()
    }

    /// A receiver that changes whenever the applied index moves.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }
}

/// The state machine store.
pub struct StateMachineStore {
    db: Arc<DB>,
    writer: Writer,
    applied: AppliedState,
    changes: ChangeSet,
    published: Arc<ArcSwap<AppliedState>>,
    applied_index: watch::Sender<u64>,
    snapshots: SnapshotDir,
    feed: ChangeFeed,
}

impl StateMachineStore {
    /// Loads the applied state from RocksDB.
    pub(crate) fn open(db: Arc<DB>, writer: Writer, snapshots: SnapshotDir) -> Result<Self, Error> {
        let rows = db
            .iterator_cf(cf(&db, CF_STATE), rocksdb::IteratorMode::Start)
            .map(|item| {
                item.map_err(|source| Error::Rocks {
                    context: "reading state",
                    source,
                })
            });
        let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
        let state = State::from_rows(rows)?;
        let read = |key: &[u8]| {
            db.get_cf(cf(&db, CF_APPLIED), key)
                .map_err(|source| Error::Rocks {
                    context: "reading applied",
                    source,
                })
        };
        let last_applied: Option<LogId> = match read(KEY_LAST_APPLIED)? {
            Some(bytes) => raft_records::decode("last applied log id", &bytes)?,
            None => None,
        };
        let membership: StoredMembership = match read(KEY_MEMBERSHIP)? {
            Some(bytes) => raft_records::decode("membership", &bytes)?,
            None => StoredMembership::default(),
        };
        let applied = AppliedState {
            state,
            last_applied,
            membership,
        };
        let applied = finish_interrupted_install(&db, &snapshots, applied)?;
        let (applied_index, _) = watch::channel(applied.applied_index());
        let feed = ChangeFeed::new(applied.applied_index() + 1);
        Ok(StateMachineStore {
            feed,
            db,
            writer,
            published: Arc::new(ArcSwap::from_pointee(applied.clone())),
            applied,
            changes: ChangeSet::default(),
            applied_index,
            snapshots,
        })
    }

    /// The feed of changes, for watches.
    pub fn feed(&self) -> ChangeFeed {
        self.feed.clone()
    }

    /// A reader of the applied state for the API.
    pub fn reader(&self) -> StateReader {
        StateReader {
            current: self.published.clone(),
            applied: self.applied_index.subscribe(),
        }
    }

    /// The snapshot directory (where received snapshots are staged).
    pub fn snapshot_dir(&self) -> SnapshotDir {
        self.snapshots.clone()
    }

    fn publish(&self) {
        self.published.store(Arc::new(self.applied.clone()));
        self.applied_index
            .send_replace(self.applied.applied_index());
        metrics::gauge!("switchboard_state_applied_index").set(self.applied.applied_index() as f64);
        metrics::gauge!("switchboard_state_routes").set(self.applied.state.routes().len() as f64);
    }

    fn applied_rows_batch(&self) -> WriteBatch {
        applied_rows_batch(&self.db, &self.applied)
    }

    /// Writes the touched rows and the applied log id in one batch.
    async fn persist(&mut self) -> Result<(), Error> {
        let mut batch = self.applied_rows_batch();
        let state_cf = cf(&self.db, CF_STATE);
        if self.changes.replaced() {
            // A restore replaced the whole state: rewrite every row.
            batch.delete_range_cf(state_cf, STATE_KEYS_START, STATE_KEYS_END);
            for (key, value) in self.applied.state.rows() {
                batch.put_cf(state_cf, key, value);
            }
        } else {
            for key in self.changes.keys() {
                match self.applied.state.row_value(key) {
                    Some(value) => batch.put_cf(state_cf, key.encode(), value),
                    None => batch.delete_cf(state_cf, key.encode()),
                }
            }
        }
        self.changes.clear();
        // Buffered: every applied entry is in the synced log, so a lost state
        // write is re-applied from it after a crash; the rows and the applied
        // id are in one batch, so they are lost or kept together. Not waited
        // for: reads are served from memory, the writer keeps the order, and
        // a failed write fails every later one (see `Writer`), so the rows
        // on disk are always those of one applied index. A process that dies
        // with batches still queued loses them, as a power loss loses any
        // buffered write: the log has every entry again.
        self.writer.write_behind(batch).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut entries = entries;
        let mut answers = Vec::new();
        let mut events = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let index = log_id.index;
            let node_info_before = self.applied.state.node_info().version();
            let replaced_before = self.changes.replaced();
            let (reply, membership) = apply_payload(
                &mut self.applied.state,
                log_id,
                entry.payload,
                &mut self.changes,
            );
            if let Some(membership) = membership {
                self.applied.membership = membership;
            }
            self.applied.last_applied = Some(log_id);
            events.extend(self.changes.take_route_changes().into_iter().map(|change| {
                IndexedEvent {
                    index,
                    event: ChangeEvent::Route(change),
                }
            }));
            if self.changes.replaced() && !replaced_before {
                events.push(IndexedEvent {
                    index,
                    event: ChangeEvent::Reset,
                });
            }
            let (era, epoch) = self.applied.state.node_info().version();
            if (era, epoch) != node_info_before {
                events.push(IndexedEvent {
                    index,
                    event: ChangeEvent::NodeInfo { era, epoch },
                });
            }
            if let Some(responder) = responder {
                answers.push((responder, reply));
            }
        }
        self.persist().await?;
        // Published before anyone is answered: a caller that reads right after
        // its write, at this site, sees it.
        self.publish();
        self.feed.publish(self.applied.applied_index(), events);
        for (responder, reply) in answers {
            responder.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let installed = self.install(meta, snapshot).await;
        if installed.is_err() {
            metrics::counter!("switchboard_snapshot_failures_total", "phase" => "install")
                .increment(1);
        }
        installed
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        Ok(self.snapshots.current()?)
    }
}

impl StateMachineStore {
    /// Installs a snapshot sent by the leader: see `install_snapshot`.
    async fn install(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        let staged = snapshot.path.clone();
        let (file_meta, rows) = tokio::task::spawn_blocking(move || read_snapshot(&snapshot))
            .await
            .map_err(io::Error::other)??;
        if file_meta != crate::snapshot_meta::SnapshotMetaRecord::from(meta) {
            return Err(Error::Corrupt {
                what: "snapshot",
                reason: "file meta differs from the sent meta".into(),
            }
            .into());
        }
        let row_count = rows.len();
        let state = State::from_rows(rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        // Adopted first, synced: a crash after this leaves a current snapshot
        // newer than the applied state, which `open` installs again. The
        // other order could leave a state ahead of every snapshot, with the
        // log it replaced gone, so no lagging site could be caught up.
        self.snapshots.adopt(&staged, meta)?;
        self.applied = AppliedState {
            state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.changes.clear();
        let batch = replacing_batch(&self.db, &self.applied, rows);
        // Synced: openraft drops the log the snapshot covers right after this.
        self.writer.write_synced(batch).await?;
        self.publish();
        let index = self.applied.applied_index();
        self.feed.publish(
            index,
            [IndexedEvent {
                index,
                event: ChangeEvent::Reset,
            }],
        );
        metrics::histogram!("switchboard_snapshot_install_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            rows = row_count,
            last_log_id = ?meta.last_log_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "installed snapshot"
        );
        Ok(())
    }
}

/// Builds a snapshot from an O(1) copy of the state, off the apply path.
pub struct SnapshotBuilder {
    applied: AppliedState,
    snapshots: SnapshotDir,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let applied = self.applied.clone();
        let snapshots = self.snapshots.clone();
        let built = run_idle("snapshot-build", move || snapshots.build(&applied))
            .await
            .and_then(|built| built.map_err(io::Error::from));
        if built.is_err() {
            metrics::counter!("switchboard_snapshot_failures_total", "phase" => "build")
                .increment(1);
        }
        built
    }
}

/// A batch that records `applied`'s log id and membership.
fn applied_rows_batch(db: &DB, applied: &AppliedState) -> WriteBatch {
    let mut batch = WriteBatch::default();
    let applied_cf = cf(db, CF_APPLIED);
    batch.put_cf(
        applied_cf,
        KEY_LAST_APPLIED,
        raft_records::encode(&applied.last_applied),
    );
    batch.put_cf(
        applied_cf,
        KEY_MEMBERSHIP,
        raft_records::encode(&applied.membership),
    );
    batch
}

/// A batch that replaces every state row with `rows` (a snapshot's, of
/// `applied`) and records `applied`'s log id and membership with them.
fn replacing_batch(db: &DB, applied: &AppliedState, rows: Vec<(Vec<u8>, Vec<u8>)>) -> WriteBatch {
    let state_cf = cf(db, CF_STATE);
    let mut batch = applied_rows_batch(db, applied);
    batch.delete_range_cf(state_cf, STATE_KEYS_START, STATE_KEYS_END);
    for (key, value) in rows {
        batch.put_cf(state_cf, key, value);
    }
    batch
}

/// Finishes a snapshot install that a crash cut short: the snapshot file
/// was adopted (so it is current) but the state it carries was not written.
/// Returns the state to start from: the snapshot's if it is newer than
/// `applied`, else `applied` unchanged.
fn finish_interrupted_install(
    db: &DB,
    snapshots: &SnapshotDir,
    applied: AppliedState,
) -> Result<AppliedState, Error> {
    let newer = snapshots
        .current_meta()
        .filter(|meta| meta.last_log_id > applied.last_applied);
    let (Some(meta), Some(snapshot)) = (newer, snapshots.current()?) else {
        return Ok(applied);
    };
    let (file_meta, rows) = read_snapshot(&snapshot.snapshot)?;
    assert_eq!(
        file_meta,
        crate::snapshot_meta::SnapshotMetaRecord::from(&meta),
        "the current snapshot's file holds the meta it was adopted with"
    );
    let state = State::from_rows(rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
    let installed = AppliedState {
        state,
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
    };
    let mut options = rocksdb::WriteOptions::default();
    // Synced, before the site serves: the log this snapshot replaced may be
    // gone already.
    options.set_sync(true);
    db.write_opt(replacing_batch(db, &installed, rows), &options)
        .map_err(|source| Error::Rocks {
            context: "finishing an interrupted snapshot install",
            source,
        })?;
    tracing::warn!(
        last_log_id = ?meta.last_log_id,
        "finished a snapshot install that a crash had cut short"
    );
    Ok(installed)
}

/// Applies one entry's payload to `state`: the pure part of apply, shared
/// with offline recovery. Returns the reply and, for a membership entry,
/// the membership it installs.
pub(crate) fn apply_payload(
    state: &mut State,
    log_id: LogId,
    payload: openraft::type_config::alias::EntryPayloadOf<TypeConfig>,
    changes: &mut ChangeSet,
) -> (Reply, Option<StoredMembership>) {
    let index = log_id.index;
    let noop = Reply {
        log_index: index,
        outcome: Outcome::Noop,
    };
    match payload {
        EntryPayload::Blank => (noop, None),
        EntryPayload::Normal(proposal) => {
            let command = proposal.command.name();
            metrics::counter!("switchboard_state_commands_applied_total", "command" => command)
                .increment(1);
            let started = std::time::Instant::now();
            let reply = state.apply(index, &proposal, changes);
            metrics::histogram!("switchboard_state_apply_duration_seconds", "command" => command)
                .record(started.elapsed().as_secs_f64());
            (reply, None)
        }
        EntryPayload::Membership(membership) => {
            let voters: Vec<u64> = membership.voter_ids().collect();
            let sites = membership
                .nodes()
                .map(|(id, node)| {
                    (
                        *id,
                        node.name.clone(),
                        node.api_addr.clone(),
                        voters.contains(id),
                    )
                })
                .collect();
            state.apply_membership(sites, changes);
            (noop, Some(StoredMembership::new(Some(log_id), membership)))
        }
    }
}
