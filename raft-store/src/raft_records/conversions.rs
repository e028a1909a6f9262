//! openraft's types to Switchboard's records and back, and the encoding of
//! every openraft value the store or the raft port writes.

use openraft::impls::leader_id_adv::LeaderId;
use openraft::membership::Membership;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderError;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AppendEntriesRecord;
use super::AppendEntriesReplyRecord;
use super::EntryRecord;
use super::MembershipConfigRecord;
use super::PayloadRecord;
use super::SnapshotReplyRecord;
use super::TransferLeaderRecord;
use super::TransferLeaderReplyRecord;
use super::TransferRefusalRecord;
use super::VoteRecord;
use super::VoteReplyRecord;
use super::VoteRequestRecord;
use crate::error::Error;
use crate::site_node::SiteNode;
use crate::snapshot_meta::LogPosition;
use crate::snapshot_meta::MembershipRecord;
use crate::snapshot_meta::SnapshotMetaRecord;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::wire;

/// An openraft value that is written as a Switchboard record.
pub trait Recorded: Sized {
    /// The record it is written as.
    type Record: Serialize + DeserializeOwned;
    /// The record of this value.
    fn to_record(&self) -> Self::Record;
    /// The value a record describes; refuses one openraft would not accept
    /// (a membership whose voters are not all members).
    fn from_record(record: Self::Record) -> Result<Self, Error>;
}

/// The versioned encoding of `value`'s record.
pub fn encode<T: Recorded>(value: &T) -> Vec<u8> {
    wire::encode(&value.to_record())
}

/// Reads what `encode` wrote.
pub fn decode<T: Recorded>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    T::from_record(wire::decode(what, bytes)?)
}

impl<T: Recorded> Recorded for Option<T> {
    type Record = Option<T::Record>;

    fn to_record(&self) -> Self::Record {
        self.as_ref().map(T::to_record)
    }

    fn from_record(record: Self::Record) -> Result<Self, Error> {
        record.map(T::from_record).transpose()
    }
}

impl<A: Recorded, B: Recorded> Recorded for (A, B) {
    type Record = (A::Record, B::Record);

    fn to_record(&self) -> Self::Record {
        (self.0.to_record(), self.1.to_record())
    }

    fn from_record(record: Self::Record) -> Result<Self, Error> {
        Ok((A::from_record(record.0)?, B::from_record(record.1)?))
    }
}

impl Recorded for LogId {
    type Record = LogPosition;

    fn to_record(&self) -> LogPosition {
        LogPosition::from(self)
    }

    fn from_record(record: LogPosition) -> Result<Self, Error> {
        Ok(LogId::from(record))
    }
}

impl Recorded for Vote {
    type Record = VoteRecord;

    fn to_record(&self) -> VoteRecord {
        VoteRecord {
            term: self.leader_id.term,
            node_id: self.leader_id.node_id,
            committed: self.committed,
        }
    }

    fn from_record(record: VoteRecord) -> Result<Self, Error> {
        Ok(Vote {
            leader_id: LeaderId {
                term: record.term,
                node_id: record.node_id,
            },
            committed: record.committed,
        })
    }
}

impl Recorded for Membership<u64, SiteNode> {
    type Record = MembershipConfigRecord;

    fn to_record(&self) -> MembershipConfigRecord {
        MembershipConfigRecord {
            configs: self.get_joint_config().clone(),
            nodes: self.nodes().map(|(id, node)| (*id, node.clone())).collect(),
        }
    }

    fn from_record(record: MembershipConfigRecord) -> Result<Self, Error> {
        Membership::new(record.configs, record.nodes).map_err(|e| Error::Corrupt {
            what: "membership",
            reason: e.to_string(),
        })
    }
}

impl Recorded for StoredMembership {
    type Record = MembershipRecord;

    fn to_record(&self) -> MembershipRecord {
        MembershipRecord::from(self)
    }

    fn from_record(record: MembershipRecord) -> Result<Self, Error> {
        StoredMembership::try_from(&record)
    }
}

impl Recorded for SnapshotMeta {
    type Record = SnapshotMetaRecord;

    fn to_record(&self) -> SnapshotMetaRecord {
        SnapshotMetaRecord::from(self)
    }

    fn from_record(record: SnapshotMetaRecord) -> Result<Self, Error> {
        SnapshotMeta::try_from(&record)
    }
}

impl Recorded for Entry {
    type Record = EntryRecord;

    fn to_record(&self) -> EntryRecord {
        use openraft::EntryPayload;
        let payload = match &self.payload {
            EntryPayload::Blank => PayloadRecord::Blank,
            EntryPayload::Normal(proposal) => PayloadRecord::Normal(proposal.clone()),
            EntryPayload::Membership(membership) => {
                PayloadRecord::Membership(membership.to_record())
            }
        };
        EntryRecord {
            log_id: self.log_id.to_record(),
            payload,
        }
    }

    fn from_record(record: EntryRecord) -> Result<Self, Error> {
        use openraft::EntryPayload;
        let payload = match record.payload {
            PayloadRecord::Blank => EntryPayload::Blank,
            PayloadRecord::Normal(proposal) => EntryPayload::Normal(proposal),
            PayloadRecord::Membership(membership) => {
                EntryPayload::Membership(Membership::from_record(membership)?)
            }
        };
        Ok(Entry {
            log_id: LogId::from_record(record.log_id)?,
            payload,
        })
    }
}

impl Recorded for AppendEntriesRequest<TypeConfig> {
    type Record = AppendEntriesRecord;

    fn to_record(&self) -> AppendEntriesRecord {
        AppendEntriesRecord {
            vote: self.vote.to_record(),
            prev_log_id: self.prev_log_id.to_record(),
            entries: self.entries.iter().map(Entry::to_record).collect(),
            leader_commit: self.leader_commit.to_record(),
        }
    }

    fn from_record(record: AppendEntriesRecord) -> Result<Self, Error> {
        Ok(AppendEntriesRequest {
            vote: Vote::from_record(record.vote)?,
            prev_log_id: Option::from_record(record.prev_log_id)?,
            entries: record
                .entries
                .into_iter()
                .map(Entry::from_record)
                .collect::<Result<_, _>>()?,
            leader_commit: Option::from_record(record.leader_commit)?,
        })
    }
}

impl Recorded for AppendEntriesResponse<TypeConfig> {
    type Record = AppendEntriesReplyRecord;

    fn to_record(&self) -> AppendEntriesReplyRecord {
        match self {
            AppendEntriesResponse::Success => AppendEntriesReplyRecord::Success,
            AppendEntriesResponse::PartialSuccess(matched) => {
                AppendEntriesReplyRecord::PartialSuccess(matched.to_record())
            }
            AppendEntriesResponse::Conflict => AppendEntriesReplyRecord::Conflict,
            AppendEntriesResponse::HigherVote(vote) => {
                AppendEntriesReplyRecord::HigherVote(vote.to_record())
            }
        }
    }

    fn from_record(record: AppendEntriesReplyRecord) -> Result<Self, Error> {
        Ok(match record {
            AppendEntriesReplyRecord::Success => AppendEntriesResponse::Success,
            AppendEntriesReplyRecord::PartialSuccess(matched) => {
                AppendEntriesResponse::PartialSuccess(Option::from_record(matched)?)
            }
            AppendEntriesReplyRecord::Conflict => AppendEntriesResponse::Conflict,
            AppendEntriesReplyRecord::HigherVote(vote) => {
                AppendEntriesResponse::HigherVote(Vote::from_record(vote)?)
            }
        })
    }
}

impl Recorded for VoteRequest<TypeConfig> {
    type Record = VoteRequestRecord;

    fn to_record(&self) -> VoteRequestRecord {
        VoteRequestRecord {
            vote: self.vote.to_record(),
            last_log_id: self.last_log_id.to_record(),
            leadership_transfer: self.leadership_transfer,
        }
    }

    fn from_record(record: VoteRequestRecord) -> Result<Self, Error> {
        Ok(VoteRequest {
            vote: Vote::from_record(record.vote)?,
            last_log_id: Option::from_record(record.last_log_id)?,
            leadership_transfer: record.leadership_transfer,
        })
    }
}

impl Recorded for VoteResponse<TypeConfig> {
    type Record = VoteReplyRecord;

    fn to_record(&self) -> VoteReplyRecord {
        VoteReplyRecord {
            vote: self.vote.to_record(),
            vote_granted: self.vote_granted,
            last_log_id: self.last_log_id.to_record(),
        }
    }

    fn from_record(record: VoteReplyRecord) -> Result<Self, Error> {
        Ok(VoteResponse {
            vote: Vote::from_record(record.vote)?,
            vote_granted: record.vote_granted,
            last_log_id: Option::from_record(record.last_log_id)?,
        })
    }
}

impl Recorded for TransferLeaderRequest<TypeConfig> {
    type Record = TransferLeaderRecord;

    fn to_record(&self) -> TransferLeaderRecord {
        TransferLeaderRecord {
            from_leader: self.from_leader().to_record(),
            to_node_id: *self.to_node_id(),
            last_log_id: self.last_log_id().map(LogId::to_record),
        }
    }

    fn from_record(record: TransferLeaderRecord) -> Result<Self, Error> {
        Ok(TransferLeaderRequest::new(
            Vote::from_record(record.from_leader)?,
            record.to_node_id,
            Option::from_record(record.last_log_id)?,
        ))
    }
}

impl Recorded for SnapshotResponse<TypeConfig> {
    type Record = SnapshotReplyRecord;

    fn to_record(&self) -> SnapshotReplyRecord {
        SnapshotReplyRecord {
            vote: self.vote.to_record(),
        }
    }

    fn from_record(record: SnapshotReplyRecord) -> Result<Self, Error> {
        Ok(SnapshotResponse::new(Vote::from_record(record.vote)?))
    }
}

impl Recorded for Result<(), TransferLeaderError<TypeConfig>> {
    type Record = TransferLeaderReplyRecord;

    fn to_record(&self) -> TransferLeaderReplyRecord {
        match self {
            Ok(()) => TransferLeaderReplyRecord::Accepted,
            Err(TransferLeaderError::VoteChanged { expected, actual }) => {
                TransferLeaderReplyRecord::Refused(TransferRefusalRecord::VoteChanged {
                    expected: expected.to_record(),
                    actual: actual.to_record(),
                })
            }
            Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
                TransferLeaderReplyRecord::Refused(TransferRefusalRecord::LogNotFlushed {
                    expected: expected.to_record(),
                    actual: actual.to_record(),
                })
            }
        }
    }

    fn from_record(record: TransferLeaderReplyRecord) -> Result<Self, Error> {
        Ok(match record {
            TransferLeaderReplyRecord::Accepted => Ok(()),
            TransferLeaderReplyRecord::Refused(TransferRefusalRecord::VoteChanged {
                expected,
                actual,
            }) => Err(TransferLeaderError::VoteChanged {
                expected: Vote::from_record(expected)?,
                actual: Vote::from_record(actual)?,
            }),
            TransferLeaderReplyRecord::Refused(TransferRefusalRecord::LogNotFlushed {
                expected,
                actual,
            }) => Err(TransferLeaderError::LogNotFlushed {
                expected: Option::from_record(expected)?,
                actual: Option::from_record(actual)?,
            }),
        })
    }
}
