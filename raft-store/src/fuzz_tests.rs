//! Fuzzing with proptest (cargo-fuzz needs a nightly toolchain, which these
//! machines do not have): every decoder meets arbitrary and mutated bytes,
//! and must answer with an error, never a panic; a command that does decode
//! but is refused changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::Command;
use crate::command::Proposal;
use crate::command::RelayRegistration;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::ids::RequestId;
use crate::reply::Outcome;
use crate::state::ChangeSet;
use crate::state::RowKey;
use crate::state::State;
use crate::wire;

fn seed_state() -> State {
    let mut state = State::new();
    let mut changes = ChangeSet::default();
    let proposals = [
        Command::RegisterRelay(RelayRegistration {
            relay_id: RelayId::new("r1").unwrap(),
            endpoint: "r1.test:443".into(),
            region: "eu".into(),
            labels: Default::default(),
            capacity: 5,
            incarnation: 1,
        }),
        Command::AttachHost {
            host_id: HostId::new("h1").unwrap(),
            preferred_region: String::new(),
        },
    ];
    for (index, command) in proposals.into_iter().enumerate() {
        let proposal = Proposal {
            request_id: RequestId::NONE,
            actor: Actor::new(ActorKind::Admin, "seed"),
            issued_at_ms: 1_000,
            command,
        };
        state.apply(index as u64 + 1, &proposal, &mut changes);
    }
    state
}

fn valid_proposal_bytes() -> Vec<Vec<u8>> {
    seed_commands()
        .into_iter()
        .map(|command| {
            Proposal {
                request_id: RequestId(7),
                actor: Actor::new(ActorKind::Relay, "r1"),
                issued_at_ms: 5,
                command,
            }
            .encode()
        })
        .collect()
}

fn seed_commands() -> Vec<Command> {
    vec![
        Command::AttachHost {
            host_id: HostId::new("h2").unwrap(),
            preferred_region: "eu".into(),
        },
        Command::DetachHost {
            host_id: HostId::new("h1").unwrap(),
        },
        Command::RelayDown {
            relay_id: RelayId::new("r1").unwrap(),
            incarnation: 1,
        },
        Command::DrainBatch {
            relay_id: RelayId::new("r1").unwrap(),
            hosts_max: 3,
        },
    ]
}

/// Rows other than the clock, remembered answers and the audit log (which
/// records refusals too): what a refused command must leave alone.
fn durable_rows(state: &State) -> BTreeMap<Vec<u8>, Vec<u8>> {
    state
        .rows()
        .filter(|(key, _)| {
            !matches!(
                RowKey::decode(key),
                Ok(RowKey::Meta | RowKey::Request(_) | RowKey::Audit(_))
            )
        })
        .collect()
}

/// Decodes, and if that works, applies to a copy of the seed state and
/// checks the state is still sound.
fn decode_and_apply(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(proposal) = Proposal::decode(bytes) else {
        return Ok(());
    };
    prop_assert_eq!(
        Proposal::decode(&proposal.encode()).expect("re-encoding decodes"),
        proposal.clone()
    );
    let mut state = seed_state();
    let before = durable_rows(&state);
    let reply = state.apply(100, &proposal, &mut ChangeSet::default());
    prop_assert_eq!(state.check_invariants(), Ok(()));
    if matches!(reply.outcome, Outcome::Refused(_)) {
        prop_assert_eq!(
            durable_rows(&state),
            before,
            "a refused command changed the state"
        );
    }
    Ok(())
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(position, kind, value) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let at = position % bytes.len();
        match kind % 3 {
            0 => bytes[at] = value,
            1 => bytes.insert(at, value),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_command_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_and_apply(&bytes)?;
    }

    #[test]
    fn mutated_commands_decode_to_errors_or_sound_commands(
        which in 0usize..4,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let bytes = mutate(valid_proposal_bytes()[which].clone(), &edits);
        decode_and_apply(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_wire_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        #[cfg(feature = "raft")]
        {
            use crate::raft_records::decode;
            let _ = decode::<crate::types::Entry>("entry", &bytes);
            let _ = decode::<openraft::raft::AppendEntriesRequest<crate::TypeConfig>>("append", &bytes);
            let _ = decode::<openraft::raft::AppendEntriesResponse<crate::TypeConfig>>("append reply", &bytes);
            let _ = decode::<openraft::raft::VoteRequest<crate::TypeConfig>>("vote", &bytes);
            let _ = decode::<openraft::raft::TransferLeaderRequest<crate::TypeConfig>>("transfer", &bytes);
            let _ = decode::<(crate::types::Vote, crate::types::SnapshotMeta)>("snapshot header", &bytes);
        }
        let _ = wire::decode::<crate::snapshot_meta::SnapshotMetaRecord>("snapshot meta", &bytes);
        let _ = wire::decode::<crate::reply::Reply>("reply", &bytes);
    }

    #[test]
    fn garbage_rows_are_refused_or_load_a_sound_state(
        rows in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..24), prop::collection::vec(any::<u8>(), 0..64)), 0..8),
    ) {
        if let Ok(state) = State::from_rows(rows) {
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
    }

    #[test]
    fn mutated_rows_are_refused_or_load_a_sound_state(
        row in 0usize..16,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = seed_state().rows().collect();
        let row = row % rows.len();
        rows[row].1 = mutate(rows[row].1.clone(), &edits);
        if let Ok(state) = State::from_rows(rows) {
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
    }
}
