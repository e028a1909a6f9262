//! Rebuilding a cluster from the one site that survived a disaster (as
//! etcd's `--force-new-cluster`): offline, on the survivor's data dir.
//!
//! The survivor keeps its applied state and every entry of its log: those
//! after the applied index are applied too, as etcd commits its whole log.
//! They may have been committed by a quorum this site no longer hears from
//! (it had them, but had not learned they were committed, or had not yet
//! applied them), so an acknowledged write in them must not be dropped; the
//! ones no quorum had committed are writes whose callers got no answer, and
//! applying them is what a retry would have done. Its Raft membership
//! becomes itself alone; the log is then emptied behind its last entry
//! (which becomes the purged index); node info enters a new era, because
//! writes other sites acknowledged that never reached this one are lost,
//! and cached documents of the old era must not outrank the recovered
//! cluster's. Other sites then join as new members with empty data dirs.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use openraft::Membership;

use rocksdb::DB;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;

use crate::error::Error;
use crate::raft_records;
use crate::site_node::SiteNode;
use crate::state::ChangeSet;
use crate::state::State;
use crate::store::AppliedState;
use crate::store::CF_APPLIED;
use crate::store::CF_LOG;
use crate::store::CF_RAFT;
use crate::store::CF_STATE;
use crate::store::Identity;
use crate::store::OpenedStore;
use crate::store::cf;
use crate::store::log_store::KEY_COMMITTED;
use crate::store::log_store::KEY_PURGED;
use crate::store::open;
use crate::store::state_machine::KEY_LAST_APPLIED;
use crate::store::state_machine::KEY_MEMBERSHIP;
use crate::store::state_machine::apply_payload;
use crate::types::LogId;
use crate::types::StoredMembership;

/// What a recovery kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The index the survivor had applied before recovery.
    pub applied_before: u64,
    /// The index the recovered state is at: the survivor's last log entry.
    pub applied_index: u64,
    /// Routes it holds.
    pub routes: usize,
    /// Relays it holds.
    pub relays: usize,
    /// The node-info era it starts with.
    pub era: u64,
}

/// Makes the data dir a one-site cluster of `identity.site_id` at `node`
/// (default: the addresses the membership holds for it).
///
/// Offline: the site must not be running. Every write here is synced in one
/// batch, so a crash during recovery leaves the old or the new data dir,
/// never a mix.
pub fn recover_single_site(
    data_dir: &Path,
    identity: &Identity,
    node: Option<SiteNode>,
) -> Result<Recovered, Error> {
    let opened = open(data_dir, identity)?;
    let applied = opened.reader.load();
    let last_applied = applied.last_applied.ok_or_else(|| Error::Corrupt {
        what: "data dir",
        reason: "nothing was ever applied here; there is nothing to recover".into(),
    })?;
    let site_id = identity.site_id;
    let node = match node {
        Some(node) => node,
        None => applied
            .membership
            .membership()
            .get_node(&site_id)
            .cloned()
            .ok_or_else(|| Error::Corrupt {
                what: "membership",
                reason: format!("site {site_id} is not in its own membership; give its addresses"),
            })?,
    };
    let mut state = applied.state.clone();
    let mut changes = ChangeSet::default();
    let last_applied_before = last_applied;
    let last_applied = apply_the_rest_of_the_log(&opened, &mut state, &mut changes, last_applied)?;
    state.apply_membership(
        vec![(site_id, node.name.clone(), node.api_addr.clone(), true)],
        &mut changes,
    );
    state.start_new_era(&mut changes);
    let membership = Membership::new(
        vec![BTreeSet::from([site_id])],
        BTreeMap::from([(site_id, node)]),
    )
    .map_err(|e| Error::Corrupt {
        what: "membership",
        reason: e.to_string(),
    })?;
    let stored = StoredMembership::new(Some(last_applied), membership);

    let db = &opened.db;
    let batch = recovery_batch(db, &state, &changes, &stored, last_applied);
    let mut options = WriteOptions::default();
    // Synced: the site must not come back half recovered.
    options.set_sync(true);
    db.write_opt(batch, &options)
        .map_err(|source| Error::Rocks {
            context: "writing the recovery",
            source,
        })?;

    // The purged log can only reach new sites through a snapshot, and the
    // old one names the old membership: build one of the recovered state.
    let recovered_state = AppliedState {
        state,
        last_applied: Some(last_applied),
        membership: stored,
    };
    opened.snapshots.build(&recovered_state)?;
    let recovered = Recovered {
        applied_before: last_applied_before.index,
        applied_index: last_applied.index,
        routes: recovered_state.state.routes().len(),
        relays: recovered_state.state.relays().count(),
        era: recovered_state.state.node_info().era,
    };
    let stopped = opened.stopped.clone();
    drop(applied);
    drop(opened);
    stopped.wait(CLOSE_WAIT);
    Ok(recovered)
}

/// Applies every log entry after `applied` to `state`, in order; returns
/// the id of the last one (or `applied`, if the log ends there). Membership
/// entries change only the state's site rows: recovery replaces the
/// membership itself. The work is bounded by the log, which snapshots keep
/// to `logs_since_last` + `logs_kept` entries.
fn apply_the_rest_of_the_log(
    opened: &OpenedStore,
    state: &mut State,
    changes: &mut ChangeSet,
    applied: LogId,
) -> Result<LogId, Error> {
    let mut last = applied;
    loop {
        let entries = opened.log.read_entries(last.index + 1, u64::MAX)?;
        if entries.is_empty() {
            return Ok(last);
        }
        for entry in entries {
            assert_eq!(
                entry.log_id.index,
                last.index + 1,
                "the log has no holes after the applied index"
            );
            last = entry.log_id;
            apply_payload(state, entry.log_id, entry.payload, changes);
        }
    }
}

/// How long recovery waits for the database to close before returning.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The one batch that makes the data dir a cluster of one: the changed
/// state rows, the new membership at the applied index, and the log
/// dropped up to it.
fn recovery_batch(
    db: &DB,
    state: &State,
    changes: &ChangeSet,
    stored: &StoredMembership,
    last_applied: LogId,
) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for key in changes.keys() {
        match state.row_value(key) {
            Some(value) => batch.put_cf(cf(db, CF_STATE), key.encode(), value),
            None => batch.delete_cf(cf(db, CF_STATE), key.encode()),
        }
    }
    batch.put_cf(
        cf(db, CF_APPLIED),
        KEY_MEMBERSHIP,
        raft_records::encode(stored),
    );
    batch.put_cf(
        cf(db, CF_APPLIED),
        KEY_LAST_APPLIED,
        raft_records::encode(&Some(last_applied)),
    );
    // The log is dropped: its entries after the applied index may never have
    // been committed, and the ones before are in the state. The applied index
    // becomes the purged index, so the log continues from there.
    batch.delete_range_cf(cf(db, CF_LOG), 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
    batch.delete_cf(cf(db, CF_LOG), u64::MAX.to_be_bytes());
    batch.put_cf(
        cf(db, CF_RAFT),
        KEY_PURGED,
        raft_records::encode(&last_applied),
    );
    batch.put_cf(
        cf(db, CF_RAFT),
        KEY_COMMITTED,
        raft_records::encode(&Some(last_applied)),
    );
    batch
}
