//! Sites mirrored from Raft membership, node-info epochs and eras, and
//! the signing keys node info is signed with.

use imbl::OrdMap;

use super::ChangeSet;
use super::RowKey;
use super::SigningKeyRecord;
use super::SiteRecord;
use super::State;
use super::refused;
use crate::command::NewSigningKey;
use crate::ids::SiteId;
use crate::reply::Outcome;
use crate::reply::RefusalCode;

impl State {
    /// Mirrors Raft membership (applied from a membership entry): sites with
    /// their API address and whether they vote. A changed list is a new
    /// node-info epoch.
    pub fn apply_membership(
        &mut self,
        sites: Vec<(SiteId, String, String, bool)>,
        changes: &mut ChangeSet,
    ) {
        let mut next: OrdMap<SiteId, SiteRecord> = OrdMap::new();
        for (id, name, api_addr, voter) in sites {
            let draining = self.sites.get(&id).is_some_and(|site| site.draining);
            next.insert(
                id,
                SiteRecord {
                    name,
                    api_addr,
                    voter,
                    draining,
                },
            );
        }
        if next == self.sites {
            return;
        }
        for id in self.sites.keys().chain(next.keys()) {
            changes.touch(RowKey::Site(*id));
        }
        self.sites = next;
        self.bump_epoch(changes);
    }

    /// Starts a new node-info era (a recovery or restore lost history):
    /// documents of the old era never outrank the new ones.
    pub fn start_new_era(&mut self, changes: &mut ChangeSet) {
        self.node_info.era += 1;
        self.bump_epoch(changes);
    }

    /// Node info's content changed: a new epoch, issued now.
    pub(super) fn bump_epoch(&mut self, changes: &mut ChangeSet) {
        self.node_info.epoch += 1;
        self.node_info.epoch_since_ms = self.meta.clock_ms;
        changes.touch(RowKey::NodeInfo);
    }

    pub(super) fn node_info_outcome(&self) -> Outcome {
        Outcome::NodeInfo {
            era: self.node_info.era,
            epoch: self.node_info.epoch,
        }
    }

    pub(super) fn add_signing_key(
        &mut self,
        key: &NewSigningKey,
        changes: &mut ChangeSet,
    ) -> Outcome {
        match (self.node_info.current_key(), &key.endorsement) {
            (None, _) => self.node_info.cluster_id = key.cluster_id.clone(),
            (Some(current), Some(endorsement)) => {
                if endorsement.by_key_id != current.key_id || key.key_id <= current.key_id {
                    return refused(
                        RefusalCode::FailedPrecondition,
                        format!(
                            "a new key must follow key {} and be endorsed by it",
                            current.key_id
                        ),
                    );
                }
                if key.cluster_id != self.node_info.cluster_id {
                    return refused(
                        RefusalCode::InvalidArgument,
                        "the key names another cluster".into(),
                    );
                }
            }
            (Some(current), None) => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!(
                        "signing key {} exists; a new key needs its endorsement",
                        current.key_id
                    ),
                );
            }
        }
        self.node_info.keys.push(SigningKeyRecord {
            key_id: key.key_id,
            public_key: key.public_key.clone(),
            sealed_private_key: key.sealed_private_key.clone(),
            endorsement: key.endorsement.clone(),
            added_at_ms: self.meta.clock_ms,
        });
        let excess = self
            .node_info
            .keys
            .len()
            .saturating_sub(SIGNING_KEYS_KEPT_MAX);
        self.node_info.keys.drain(..excess);
        self.bump_epoch(changes);
        self.node_info_outcome()
    }
}

/// Signing keys kept (the newest signs; older ones stay so clients that
/// missed rotations can follow the endorsements).
pub const SIGNING_KEYS_KEPT_MAX: usize = 8;
