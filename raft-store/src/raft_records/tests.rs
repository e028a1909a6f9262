//! Frozen bytes of every record, and (with `raft`) proof that each is
//! encoded exactly as openraft 0.10 encoded its own type.

use super::*;
use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::Command;
use crate::ids::HostId;
use crate::ids::RequestId;
use crate::wire;

fn node(name: &str) -> SiteNode {
    SiteNode {
        name: name.into(),
        raft_addr: "r".into(),
        api_addr: "a".into(),
        http_addr: "h".into(),
        labels: BTreeMap::new(),
    }
}

fn at(term: u64, node_id: u64, index: u64) -> LogPosition {
    LogPosition {
        term,
        node_id,
        index,
    }
}

fn vote(term: u64, node_id: u64, committed: bool) -> VoteRecord {
    VoteRecord {
        term,
        node_id,
        committed,
    }
}

/// The proposal of `command::proposal`'s golden test: 11 bytes.
fn proposal() -> Proposal {
    Proposal {
        request_id: RequestId(1),
        actor: Actor::new(ActorKind::Admin, "ops"),
        issued_at_ms: 5,
        command: Command::DetachHost {
            host_id: HostId::new("h").unwrap(),
        },
    }
}

const PROPOSAL_BYTES: [u8; 11] = [1, 1, 0, 3, b'o', b'p', b's', 5, 5, 1, b'h'];
const NODE_N_BYTES: [u8; 9] = [1, b'n', 1, b'r', 1, b'a', 1, b'h', 0];

fn membership() -> MembershipConfigRecord {
    MembershipConfigRecord {
        configs: vec![BTreeSet::from([1, 2])],
        nodes: BTreeMap::from([(1, node("n")), (2, node("n"))]),
    }
}

fn entries() -> Vec<(EntryRecord, Vec<u8>)> {
    let membership_bytes: Vec<u8> = [
        &[1u8, 3, 2, 7, 2, 1, 2, 1, 2, 2, 1][..],
        &NODE_N_BYTES,
        &[2],
        &NODE_N_BYTES,
    ]
    .concat();
    vec![
        (
            EntryRecord {
                log_id: at(3, 2, 7),
                payload: PayloadRecord::Blank,
            },
            vec![1, 3, 2, 7, 0],
        ),
        (
            EntryRecord {
                log_id: at(3, 2, 7),
                payload: PayloadRecord::Normal(proposal()),
            },
            [&[1u8, 3, 2, 7, 1, 11][..], &PROPOSAL_BYTES].concat(),
        ),
        (
            EntryRecord {
                log_id: at(3, 2, 7),
                payload: PayloadRecord::Membership(membership()),
            },
            membership_bytes,
        ),
    ]
}

fn append_entries() -> AppendEntriesRecord {
    AppendEntriesRecord {
        vote: vote(3, 2, true),
        prev_log_id: Some(at(3, 2, 6)),
        entries: vec![entries().remove(0).0],
        leader_commit: Some(at(3, 2, 5)),
    }
}

fn append_replies() -> Vec<(AppendEntriesReplyRecord, Vec<u8>)> {
    vec![
        (AppendEntriesReplyRecord::Success, vec![1, 0]),
        (
            AppendEntriesReplyRecord::PartialSuccess(Some(at(3, 2, 7))),
            vec![1, 1, 1, 3, 2, 7],
        ),
        (AppendEntriesReplyRecord::Conflict, vec![1, 2]),
        (
            AppendEntriesReplyRecord::HigherVote(vote(4, 2, false)),
            vec![1, 3, 4, 2, 0],
        ),
    ]
}

fn vote_request() -> VoteRequestRecord {
    VoteRequestRecord {
        vote: vote(4, 2, false),
        last_log_id: Some(at(3, 2, 7)),
        leadership_transfer: false,
    }
}

fn vote_reply() -> VoteReplyRecord {
    VoteReplyRecord {
        vote: vote(4, 3, false),
        vote_granted: true,
        last_log_id: None,
    }
}

fn transfer() -> TransferLeaderRecord {
    TransferLeaderRecord {
        from_leader: vote(3, 1, true),
        to_node_id: 2,
        last_log_id: Some(at(3, 1, 9)),
    }
}

/// Frozen: a change here changes the log on disk or the peer protocol.
#[test]
fn every_record_keeps_its_version_one_bytes() {
    assert_eq!(wire::encode(&vote(3, 2, true)), [1, 3, 2, 1]);
    for (entry, bytes) in entries() {
        assert_eq!(wire::encode(&entry), bytes, "{entry:?}");
        assert_eq!(wire::decode::<EntryRecord>("entry", &bytes).unwrap(), entry);
    }
    assert_eq!(
        wire::encode(&append_entries()),
        [1, 3, 2, 1, 1, 3, 2, 6, 1, 3, 2, 7, 0, 1, 3, 2, 5]
    );
    for (reply, bytes) in append_replies() {
        assert_eq!(wire::encode(&reply), bytes, "{reply:?}");
    }
    assert_eq!(wire::encode(&vote_request()), [1, 4, 2, 0, 1, 3, 2, 7, 0]);
    assert_eq!(wire::encode(&vote_reply()), [1, 4, 3, 0, 1, 0]);
    assert_eq!(wire::encode(&transfer()), [1, 3, 1, 1, 2, 1, 3, 1, 9]);
    assert_eq!(
        wire::encode(&SnapshotReplyRecord {
            vote: vote(3, 1, true)
        }),
        [1, 3, 1, 1]
    );
    for (reply, bytes) in transfer_replies() {
        assert_eq!(wire::encode(&reply), bytes, "{reply:?}");
    }
}

fn transfer_replies() -> Vec<(TransferLeaderReplyRecord, Vec<u8>)> {
    vec![
        (TransferLeaderReplyRecord::Accepted, vec![1, 0]),
        (
            TransferLeaderReplyRecord::Refused(TransferRefusalRecord::VoteChanged {
                expected: vote(3, 1, true),
                actual: vote(4, 2, false),
            }),
            vec![1, 1, 0, 3, 1, 1, 4, 2, 0],
        ),
        (
            TransferLeaderReplyRecord::Refused(TransferRefusalRecord::LogNotFlushed {
                expected: Some(at(3, 1, 9)),
                actual: None,
            }),
            vec![1, 1, 1, 1, 3, 1, 9, 0],
        ),
    ]
}

#[cfg(feature = "raft")]
mod openraft_layout {
    use super::*;
    use crate::raft_records::Recorded;
    use crate::types::Entry;
    use crate::types::TypeConfig;
    use crate::types::Vote;
    use openraft::raft::AppendEntriesRequest;
    use openraft::raft::AppendEntriesResponse;
    use openraft::raft::SnapshotResponse;
    use openraft::raft::TransferLeaderRequest;
    use openraft::raft::VoteRequest;
    use openraft::raft::VoteResponse;

    /// The openraft value a record describes encodes to the same bytes as
    /// the record (openraft's serde derive, as written before the records
    /// existed), and turns back into the same record.
    fn same_layout<T>(record: T::Record)
    where
        T: Recorded + serde::Serialize,
        T::Record: PartialEq + std::fmt::Debug + Clone,
    {
        let value = T::from_record(record.clone()).expect("a valid record");
        assert_eq!(wire::encode(&value), wire::encode(&record));
        assert_eq!(value.to_record(), record);
    }

    #[test]
    fn records_encode_as_openraft_did() {
        same_layout::<Vote>(vote(3, 2, true));
        for (entry, _) in entries() {
            same_layout::<Entry>(entry);
        }
        same_layout::<AppendEntriesRequest<TypeConfig>>(append_entries());
        for (reply, _) in append_replies() {
            same_layout::<AppendEntriesResponse<TypeConfig>>(reply);
        }
        same_layout::<VoteRequest<TypeConfig>>(vote_request());
        same_layout::<VoteResponse<TypeConfig>>(vote_reply());
        same_layout::<TransferLeaderRequest<TypeConfig>>(transfer());
        same_layout::<SnapshotResponse<TypeConfig>>(SnapshotReplyRecord {
            vote: vote(3, 1, true),
        });
        for (reply, _) in transfer_replies() {
            same_layout::<Result<(), openraft::raft::TransferLeaderError<TypeConfig>>>(reply);
        }
    }

    /// A record openraft would not accept is refused on decode, not passed on.
    #[test]
    fn a_membership_whose_voters_are_not_members_is_refused() {
        let mut bad = membership();
        bad.configs = vec![BTreeSet::from([1, 3])];
        let entry = EntryRecord {
            log_id: at(3, 2, 7),
            payload: PayloadRecord::Membership(bad),
        };
        let bytes = wire::encode(&entry);
        assert!(matches!(
            crate::raft_records::decode::<Entry>("entry", &bytes),
            Err(crate::error::Error::Corrupt { .. })
        ));
    }
}
