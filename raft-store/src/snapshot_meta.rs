//! Switchboard's own record of a snapshot's meta: which log position it
//! covers and the membership applied there.
//!
//! The snapshot file stores this record, not openraft's `SnapshotMeta`, so
//! the file format is frozen here (see the golden test) and a reader such as
//! `sbctl` needs no openraft. Its layout is byte-for-byte the one openraft
//! 0.10's serde derive writes for `SnapshotMeta` with the advanced leader id,
//! so files written before this record existed still read; with the `raft`
//! feature the conversions to and from openraft's types live here too, and a
//! test checks the layouts stay equal.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::site_node::SiteNode;

/// A log position: the leader that proposed it (term and node) and the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    /// The leader's term.
    pub term: u64,
    /// The leader's site id.
    pub node_id: u64,
    /// The entry's index in the log.
    pub index: u64,
}

/// Membership as applied at a log position: voter sets (two during a joint
/// change) and every member's node record (learners are in `nodes` only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// The entry that carried this membership.
    pub log_id: Option<LogPosition>,
    /// Voter sets.
    pub configs: Vec<BTreeSet<u64>>,
    /// Every member, voter or learner.
    pub nodes: BTreeMap<u64, SiteNode>,
}

/// What a snapshot covers: format version 1 of the snapshot file's meta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMetaRecord {
    /// The last entry the snapshot includes.
    pub last_log_id: Option<LogPosition>,
    /// The membership applied at that point.
    pub last_membership: MembershipRecord,
    /// Reserved, always empty: the slot openraft 0.9 used for a snapshot id.
    pub reserved: String,
}

impl SnapshotMetaRecord {
    /// The index of the last entry covered, 0 for an empty snapshot.
    pub fn last_log_index(&self) -> u64 {
        self.last_log_id.map_or(0, |id| id.index)
    }
}

#[cfg(feature = "raft")]
mod openraft_conversions {
    use openraft::StoredMembership;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::membership::Membership;

    use super::LogPosition;
    use super::MembershipRecord;
    use super::SnapshotMetaRecord;
    use crate::error::Error;
    use crate::types::LogId;
    use crate::types::SnapshotMeta;
    use crate::types::StoredMembership as Stored;

    impl From<&LogId> for LogPosition {
        fn from(id: &LogId) -> Self {
            LogPosition {
                term: id.leader_id.term,
                node_id: id.leader_id.node_id,
                index: id.index,
            }
        }
    }

    impl From<LogPosition> for LogId {
        fn from(position: LogPosition) -> Self {
            LogId::new(
                LeaderId {
                    term: position.term,
                    node_id: position.node_id,
                },
                position.index,
            )
        }
    }

    impl From<&Stored> for MembershipRecord {
        fn from(stored: &Stored) -> Self {
            MembershipRecord {
                log_id: stored.log_id().as_ref().map(LogPosition::from),
                configs: stored.membership().get_joint_config().clone(),
                nodes: stored
                    .membership()
                    .nodes()
                    .map(|(id, node)| (*id, node.clone()))
                    .collect(),
            }
        }
    }

    impl TryFrom<&MembershipRecord> for Stored {
        type Error = Error;

        /// Refuses a record whose voters are not all among its nodes.
        fn try_from(record: &MembershipRecord) -> Result<Self, Error> {
            let membership = Membership::new(record.configs.clone(), record.nodes.clone())
                .map_err(|e| Error::Corrupt {
                    what: "snapshot membership",
                    reason: e.to_string(),
                })?;
            Ok(StoredMembership::new(
                record.log_id.map(LogId::from),
                membership,
            ))
        }
    }

    impl From<&SnapshotMeta> for SnapshotMetaRecord {
        fn from(meta: &SnapshotMeta) -> Self {
            SnapshotMetaRecord {
                last_log_id: meta.last_log_id.as_ref().map(LogPosition::from),
                last_membership: MembershipRecord::from(&meta.last_membership),
                reserved: String::new(),
            }
        }
    }

    impl TryFrom<&SnapshotMetaRecord> for SnapshotMeta {
        type Error = Error;

        fn try_from(record: &SnapshotMetaRecord) -> Result<Self, Error> {
            Ok(SnapshotMeta {
                last_log_id: record.last_log_id.map(LogId::from),
                last_membership: Stored::try_from(&record.last_membership)?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    fn sample() -> SnapshotMetaRecord {
        let node = SiteNode {
            name: "tsukuba".into(),
            raft_addr: "10.0.0.1:7000".into(),
            api_addr: "10.0.0.1:7001".into(),
            http_addr: "10.0.0.1:7002".into(),
            labels: BTreeMap::from([("power".into(), "a".into())]),
        };
        SnapshotMetaRecord {
            last_log_id: Some(LogPosition {
                term: 3,
                node_id: 1,
                index: 300,
            }),
            last_membership: MembershipRecord {
                log_id: Some(LogPosition {
                    term: 2,
                    node_id: 1,
                    index: 7,
                }),
                configs: vec![BTreeSet::from([1])],
                nodes: BTreeMap::from([(1, node)]),
            },
            reserved: String::new(),
        }
    }

    /// Frozen: the bytes of format version 1. A change here breaks every
    /// snapshot and backup on disk.
    #[test]
    fn golden_bytes_of_version_1() {
        let bytes = wire::encode(&sample());
        let expected = concat!(
            "01", // wire format version
            "01",
            "03",
            "01",
            "ac02", // last_log_id: Some, term 3, node 1, index 300
            "01",
            "02",
            "01",
            "07", // membership log id: Some, term 2, node 1, index 7
            "01",
            "01",
            "01", // one config: {1}
            "01",
            "01", // one node, id 1
            "07",
            "7473756b756261", // name
            "0d",
            "31302e302e302e313a37303030", // raft_addr
            "0d",
            "31302e302e302e313a37303031", // api_addr
            "0d",
            "31302e302e302e313a37303032", // http_addr
            "01",
            "05",
            "706f776572",
            "01",
            "61", // labels
            "00", // reserved
        );
        assert_eq!(hex(&bytes), expected);
        let back: SnapshotMetaRecord = wire::decode("meta", &bytes).expect("decodes");
        assert_eq!(back, sample());
    }

    #[cfg(feature = "raft")]
    #[test]
    fn layout_equals_openraft_serde() {
        let record = sample();
        let meta = crate::types::SnapshotMeta::try_from(&record).expect("voters are nodes");
        assert_eq!(wire::encode(&meta), wire::encode(&record));
        assert_eq!(SnapshotMetaRecord::from(&meta), record);
        let decoded: crate::types::SnapshotMeta =
            wire::decode("meta", &wire::encode(&record)).expect("openraft reads the record");
        assert_eq!(decoded, meta);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
