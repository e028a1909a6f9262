//! Version 1 of the log's proposal format, as types of its own.
//!
//! These types are the format: the in-memory [`Command`] and the records it
//! names (maintenance targets, endorsements, ...) may change shape freely,
//! these may not. Field and variant order is the encoding (postcard writes a
//! variant's index, then its fields in order), so never reorder, rename into
//! another type, or insert: add a new version instead. The golden test at the
//! bottom freezes one byte string per variant.
//!
//! Identifiers (`RelayId`, `HostId`, `RequestId`, `Labels`) are shared
//! domain types whose serde form is their inner value; they are not checked
//! on decode, because apply validates every command and refuses a bad one
//! like every other site does.

use serde::Deserialize;
use serde::Serialize;

use super::Actor;
use super::ActorKind;
use super::Command;
use super::MaintenancePhase;
use super::NewSigningKey;
use super::RelayAdminTarget;
use super::RelayRegistration;
use crate::ids::HostId;
use crate::ids::Labels;
use crate::ids::RelayId;
use crate::ids::RequestId;
use crate::state::Endorsement;
use crate::state::MaintenanceTarget;

/// Version 1 body of a proposal.
#[derive(Serialize, Deserialize)]
pub(super) struct ProposalV1 {
    pub request_id: RequestId,
    pub actor: ActorV1,
    pub issued_at_ms: u64,
    pub command: CommandV1,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ActorV1 {
    kind: ActorKindV1,
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub(super) enum ActorKindV1 {
    Admin,
    Relay,
    Host,
    Client,
    System,
    Anonymous,
}

#[derive(Serialize, Deserialize)]
pub(super) struct RelayRegistrationV1 {
    relay_id: RelayId,
    endpoint: String,
    region: String,
    labels: Labels,
    capacity: u32,
    incarnation: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) enum RelayAdminTargetV1 {
    Active,
    Draining,
    Maintenance,
}

#[derive(Serialize, Deserialize)]
pub(super) struct NewSigningKeyV1 {
    cluster_id: String,
    key_id: u64,
    public_key: Vec<u8>,
    sealed_private_key: Vec<u8>,
    endorsement: Option<EndorsementV1>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct EndorsementV1 {
    by_key_id: u64,
    signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum MaintenanceTargetV1 {
    Relay(RelayId),
    Site(u64),
}

#[derive(Serialize, Deserialize)]
pub(super) enum MaintenancePhaseV1 {
    Started,
    Ended,
}

/// Version 1 of every command, in the order of its variant indexes.
#[derive(Serialize, Deserialize)]
pub(super) enum CommandV1 {
    RegisterRelay(RelayRegistrationV1),
    SetRelayState {
        relay_id: RelayId,
        target: RelayAdminTargetV1,
    },
    RelayDown {
        relay_id: RelayId,
        incarnation: u64,
    },
    RemoveRelay {
        relay_id: RelayId,
    },
    AttachHost {
        host_id: HostId,
        preferred_region: String,
    },
    DetachHost {
        host_id: HostId,
    },
    DrainBatch {
        relay_id: RelayId,
        hosts_max: u32,
    },
    RelayUp {
        relay_id: RelayId,
        incarnation: u64,
    },
    AddSigningKey(NewSigningKeyV1),
    SetNotice {
        text: String,
    },
    StartDrain {
        relay_id: RelayId,
        hosts_per_second: u32,
        deadline_ms: u64,
        force: bool,
    },
    SetSiteDraining {
        site_id: u64,
        draining: bool,
    },
    ScheduleMaintenance {
        target: MaintenanceTargetV1,
        start_ms: u64,
        end_ms: u64,
        reason: String,
    },
    CancelMaintenance {
        window_id: u64,
    },
    MaintenancePhase {
        window_id: u64,
        phase: MaintenancePhaseV1,
    },
    RecordAudit {
        action: String,
        result: String,
    },
    RestoreBegin {
        backup_era: u64,
        rows_expected: u64,
    },
    RestoreRows {
        rows: Vec<(Vec<u8>, Vec<u8>)>,
    },
    RestoreCommit {
        keep_backup_keys: bool,
    },
    RestoreAbort,
}

impl From<&Actor> for ActorV1 {
    fn from(actor: &Actor) -> Self {
        let kind = match actor.kind {
            ActorKind::Admin => ActorKindV1::Admin,
            ActorKind::Relay => ActorKindV1::Relay,
            ActorKind::Host => ActorKindV1::Host,
            ActorKind::Client => ActorKindV1::Client,
            ActorKind::System => ActorKindV1::System,
            ActorKind::Anonymous => ActorKindV1::Anonymous,
        };
        ActorV1 {
            kind,
            name: actor.name.clone(),
        }
    }
}

impl From<ActorV1> for Actor {
    fn from(actor: ActorV1) -> Self {
        let kind = match actor.kind {
            ActorKindV1::Admin => ActorKind::Admin,
            ActorKindV1::Relay => ActorKind::Relay,
            ActorKindV1::Host => ActorKind::Host,
            ActorKindV1::Client => ActorKind::Client,
            ActorKindV1::System => ActorKind::System,
            ActorKindV1::Anonymous => ActorKind::Anonymous,
        };
        Actor::new(kind, actor.name)
    }
}

impl From<RelayAdminTarget> for RelayAdminTargetV1 {
    fn from(target: RelayAdminTarget) -> Self {
        match target {
            RelayAdminTarget::Active => RelayAdminTargetV1::Active,
            RelayAdminTarget::Draining => RelayAdminTargetV1::Draining,
            RelayAdminTarget::Maintenance => RelayAdminTargetV1::Maintenance,
        }
    }
}

impl From<RelayAdminTargetV1> for RelayAdminTarget {
    fn from(target: RelayAdminTargetV1) -> Self {
        match target {
            RelayAdminTargetV1::Active => RelayAdminTarget::Active,
            RelayAdminTargetV1::Draining => RelayAdminTarget::Draining,
            RelayAdminTargetV1::Maintenance => RelayAdminTarget::Maintenance,
        }
    }
}

impl From<&MaintenanceTarget> for MaintenanceTargetV1 {
    fn from(target: &MaintenanceTarget) -> Self {
        match target {
            MaintenanceTarget::Relay(relay_id) => MaintenanceTargetV1::Relay(relay_id.clone()),
            MaintenanceTarget::Site(site_id) => MaintenanceTargetV1::Site(*site_id),
        }
    }
}

impl From<MaintenanceTargetV1> for MaintenanceTarget {
    fn from(target: MaintenanceTargetV1) -> Self {
        match target {
            MaintenanceTargetV1::Relay(relay_id) => MaintenanceTarget::Relay(relay_id),
            MaintenanceTargetV1::Site(site_id) => MaintenanceTarget::Site(site_id),
        }
    }
}

impl From<MaintenancePhase> for MaintenancePhaseV1 {
    fn from(phase: MaintenancePhase) -> Self {
        match phase {
            MaintenancePhase::Started => MaintenancePhaseV1::Started,
            MaintenancePhase::Ended => MaintenancePhaseV1::Ended,
        }
    }
}

impl From<MaintenancePhaseV1> for MaintenancePhase {
    fn from(phase: MaintenancePhaseV1) -> Self {
        match phase {
            MaintenancePhaseV1::Started => MaintenancePhase::Started,
            MaintenancePhaseV1::Ended => MaintenancePhase::Ended,
        }
    }
}

impl From<&RelayRegistration> for RelayRegistrationV1 {
    fn from(r: &RelayRegistration) -> Self {
        RelayRegistrationV1 {
            relay_id: r.relay_id.clone(),
            endpoint: r.endpoint.clone(),
            region: r.region.clone(),
            labels: r.labels.clone(),
            capacity: r.capacity,
            incarnation: r.incarnation,
        }
    }
}

impl From<RelayRegistrationV1> for RelayRegistration {
    fn from(r: RelayRegistrationV1) -> Self {
        RelayRegistration {
            relay_id: r.relay_id,
            endpoint: r.endpoint,
            region: r.region,
            labels: r.labels,
            capacity: r.capacity,
            incarnation: r.incarnation,
        }
    }
}

impl From<&NewSigningKey> for NewSigningKeyV1 {
    fn from(key: &NewSigningKey) -> Self {
        NewSigningKeyV1 {
            cluster_id: key.cluster_id.clone(),
            key_id: key.key_id,
            public_key: key.public_key.clone(),
            sealed_private_key: key.sealed_private_key.clone(),
            endorsement: key.endorsement.as_ref().map(|e| EndorsementV1 {
                by_key_id: e.by_key_id,
                signature: e.signature.clone(),
            }),
        }
    }
}

impl From<NewSigningKeyV1> for NewSigningKey {
    fn from(key: NewSigningKeyV1) -> Self {
        NewSigningKey {
            cluster_id: key.cluster_id,
            key_id: key.key_id,
            public_key: key.public_key,
            sealed_private_key: key.sealed_private_key,
            endorsement: key.endorsement.map(|e| Endorsement {
                by_key_id: e.by_key_id,
                signature: e.signature,
            }),
        }
    }
}

impl From<&Command> for CommandV1 {
    fn from(command: &Command) -> Self {
        use CommandV1 as V;
        match command.clone() {
            Command::RegisterRelay(r) => V::RegisterRelay((&r).into()),
            Command::SetRelayState { relay_id, target } => V::SetRelayState {
                relay_id,
                target: target.into(),
            },
            Command::RelayDown {
                relay_id,
                incarnation,
            } => V::RelayDown {
                relay_id,
                incarnation,
            },
            Command::RemoveRelay { relay_id } => V::RemoveRelay { relay_id },
            Command::AttachHost {
                host_id,
                preferred_region,
            } => V::AttachHost {
                host_id,
                preferred_region,
            },
            Command::DetachHost { host_id } => V::DetachHost { host_id },
            Command::DrainBatch {
                relay_id,
                hosts_max,
            } => V::DrainBatch {
                relay_id,
                hosts_max,
            },
            Command::RelayUp {
                relay_id,
                incarnation,
            } => V::RelayUp {
                relay_id,
                incarnation,
            },
            Command::AddSigningKey(key) => V::AddSigningKey((&key).into()),
            Command::SetNotice { text } => V::SetNotice { text },
            Command::StartDrain {
                relay_id,
                hosts_per_second,
                deadline_ms,
                force,
            } => V::StartDrain {
                relay_id,
                hosts_per_second,
                deadline_ms,
                force,
            },
            Command::SetSiteDraining { site_id, draining } => {
                V::SetSiteDraining { site_id, draining }
            }
            Command::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                reason,
            } => V::ScheduleMaintenance {
                target: (&target).into(),
                start_ms,
                end_ms,
                reason,
            },
            Command::CancelMaintenance { window_id } => V::CancelMaintenance { window_id },
            Command::MaintenancePhase { window_id, phase } => V::MaintenancePhase {
                window_id,
                phase: phase.into(),
            },
            Command::RecordAudit { action, result } => V::RecordAudit { action, result },
            Command::RestoreBegin {
                backup_era,
                rows_expected,
            } => V::RestoreBegin {
                backup_era,
                rows_expected,
            },
            Command::RestoreRows { rows } => V::RestoreRows { rows },
            Command::RestoreCommit { keep_backup_keys } => V::RestoreCommit { keep_backup_keys },
            Command::RestoreAbort => V::RestoreAbort,
        }
    }
}

impl From<CommandV1> for Command {
    fn from(command: CommandV1) -> Self {
        use CommandV1 as V;
        match command {
            V::RegisterRelay(r) => Command::RegisterRelay(r.into()),
            V::SetRelayState { relay_id, target } => Command::SetRelayState {
                relay_id,
                target: target.into(),
            },
            V::RelayDown {
                relay_id,
                incarnation,
            } => Command::RelayDown {
                relay_id,
                incarnation,
            },
            V::RemoveRelay { relay_id } => Command::RemoveRelay { relay_id },
            V::AttachHost {
                host_id,
                preferred_region,
            } => Command::AttachHost {
                host_id,
                preferred_region,
            },
            V::DetachHost { host_id } => Command::DetachHost { host_id },
            V::DrainBatch {
                relay_id,
                hosts_max,
            } => Command::DrainBatch {
                relay_id,
                hosts_max,
            },
            V::RelayUp {
                relay_id,
                incarnation,
            } => Command::RelayUp {
                relay_id,
                incarnation,
            },
            V::AddSigningKey(key) => Command::AddSigningKey(key.into()),
            V::SetNotice { text } => Command::SetNotice { text },
            V::StartDrain {
                relay_id,
                hosts_per_second,
                deadline_ms,
                force,
            } => Command::StartDrain {
                relay_id,
                hosts_per_second,
                deadline_ms,
                force,
            },
            V::SetSiteDraining { site_id, draining } => {
                Command::SetSiteDraining { site_id, draining }
            }
            V::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                reason,
            } => Command::ScheduleMaintenance {
                target: target.into(),
                start_ms,
                end_ms,
                reason,
            },
            V::CancelMaintenance { window_id } => Command::CancelMaintenance { window_id },
            V::MaintenancePhase { window_id, phase } => Command::MaintenancePhase {
                window_id,
                phase: phase.into(),
            },
            V::RecordAudit { action, result } => Command::RecordAudit { action, result },
            V::RestoreBegin {
                backup_era,
                rows_expected,
            } => Command::RestoreBegin {
                backup_era,
                rows_expected,
            },
            V::RestoreRows { rows } => Command::RestoreRows { rows },
            V::RestoreCommit { keep_backup_keys } => Command::RestoreCommit { keep_backup_keys },
            V::RestoreAbort => Command::RestoreAbort,
        }
    }
}

/// The bytes a command's digest is taken over: its version-1 encoding, so a
/// digest kept in the request log stays valid while the in-memory type moves.
pub(super) fn digest_bytes(command: &Command) -> Vec<u8> {
    postcard::to_allocvec(&CommandV1::from(command)).expect("encoding to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Proposal;

    fn relay() -> RelayId {
        RelayId::new("r").unwrap()
    }

    /// One command per variant, in variant order, with its frozen version-1
    /// proposal bytes (version byte, request id 7, actor admin "a", issued at
    /// 9, then the command).
    fn golden() -> Vec<(Command, &'static [u8])> {
        let labels: Labels = [("k".to_owned(), "v".to_owned())].into();
        vec![
            (
                Command::RegisterRelay(RelayRegistration {
                    relay_id: relay(),
                    endpoint: "e:1".into(),
                    region: "eu".into(),
                    labels,
                    capacity: 5,
                    incarnation: 2,
                }),
                &[
                    1, 7, 0, 1, b'a', 9, 0, 1, b'r', 3, b'e', b':', b'1', 2, b'e', b'u', 1, 1,
                    b'k', 1, b'v', 5, 2,
                ],
            ),
            (
                Command::SetRelayState {
                    relay_id: relay(),
                    target: RelayAdminTarget::Maintenance,
                },
                &[1, 7, 0, 1, b'a', 9, 1, 1, b'r', 2],
            ),
            (
                Command::RelayDown {
                    relay_id: relay(),
                    incarnation: 3,
                },
                &[1, 7, 0, 1, b'a', 9, 2, 1, b'r', 3],
            ),
            (
                Command::RemoveRelay { relay_id: relay() },
                &[1, 7, 0, 1, b'a', 9, 3, 1, b'r'],
            ),
            (
                Command::AttachHost {
                    host_id: HostId::new("h").unwrap(),
                    preferred_region: "eu".into(),
                },
                &[1, 7, 0, 1, b'a', 9, 4, 1, b'h', 2, b'e', b'u'],
            ),
            (
                Command::DetachHost {
                    host_id: HostId::new("h").unwrap(),
                },
                &[1, 7, 0, 1, b'a', 9, 5, 1, b'h'],
            ),
            (
                Command::DrainBatch {
                    relay_id: relay(),
                    hosts_max: 200,
                },
                &[1, 7, 0, 1, b'a', 9, 6, 1, b'r', 0xc8, 1],
            ),
            (
                Command::RelayUp {
                    relay_id: relay(),
                    incarnation: 4,
                },
                &[1, 7, 0, 1, b'a', 9, 7, 1, b'r', 4],
            ),
            (
                Command::AddSigningKey(NewSigningKey {
                    cluster_id: "c".into(),
                    key_id: 2,
                    public_key: vec![0xaa],
                    sealed_private_key: vec![0xbb, 0xcc],
                    endorsement: Some(Endorsement {
                        by_key_id: 1,
                        signature: vec![0xdd],
                    }),
                }),
                &[
                    1, 7, 0, 1, b'a', 9, 8, 1, b'c', 2, 1, 0xaa, 2, 0xbb, 0xcc, 1, 1, 1, 0xdd,
                ],
            ),
            (
                Command::SetNotice { text: "n".into() },
                &[1, 7, 0, 1, b'a', 9, 9, 1, b'n'],
            ),
            (
                Command::StartDrain {
                    relay_id: relay(),
                    hosts_per_second: 10,
                    deadline_ms: 300,
                    force: true,
                },
                &[1, 7, 0, 1, b'a', 9, 10, 1, b'r', 10, 0xac, 2, 1],
            ),
            (
                Command::SetSiteDraining {
                    site_id: 2,
                    draining: true,
                },
                &[1, 7, 0, 1, b'a', 9, 11, 2, 1],
            ),
            (
                Command::ScheduleMaintenance {
                    target: MaintenanceTarget::Site(3),
                    start_ms: 10,
                    end_ms: 20,
                    reason: "x".into(),
                },
                &[1, 7, 0, 1, b'a', 9, 12, 1, 3, 10, 20, 1, b'x'],
            ),
            (
                Command::CancelMaintenance { window_id: 5 },
                &[1, 7, 0, 1, b'a', 9, 13, 5],
            ),
            (
                Command::MaintenancePhase {
                    window_id: 5,
                    phase: MaintenancePhase::Ended,
                },
                &[1, 7, 0, 1, b'a', 9, 14, 5, 1],
            ),
            (
                Command::RecordAudit {
                    action: "a".into(),
                    result: "ok".into(),
                },
                &[1, 7, 0, 1, b'a', 9, 15, 1, b'a', 2, b'o', b'k'],
            ),
            (
                Command::RestoreBegin {
                    backup_era: 2,
                    rows_expected: 3,
                },
                &[1, 7, 0, 1, b'a', 9, 16, 2, 3],
            ),
            (
                Command::RestoreRows {
                    rows: vec![(vec![1], vec![2, 3])],
                },
                &[1, 7, 0, 1, b'a', 9, 17, 1, 1, 1, 2, 2, 3],
            ),
            (
                Command::RestoreCommit {
                    keep_backup_keys: true,
                },
                &[1, 7, 0, 1, b'a', 9, 18, 1],
            ),
            (Command::RestoreAbort, &[1, 7, 0, 1, b'a', 9, 19]),
        ]
    }

    fn proposal(command: Command) -> Proposal {
        Proposal {
            request_id: RequestId(7),
            actor: Actor::new(ActorKind::Admin, "a"),
            issued_at_ms: 9,
            command,
        }
    }

    /// Every variant's version-1 bytes are frozen: this build writes them and
    /// reads them back to the same command.
    #[test]
    fn every_command_variant_keeps_its_version_one_bytes() {
        for (command, bytes) in golden() {
            let proposal = proposal(command);
            assert_eq!(proposal.encode(), bytes, "{}", proposal.command.name());
            assert_eq!(Proposal::decode(bytes).unwrap(), proposal);
        }
    }

    /// The variant index a command has in version 1. Exhaustive on purpose:
    /// a new command does not compile here until it is given its place.
    fn variant_index(command: &Command) -> u8 {
        match command {
            Command::RegisterRelay(_) => 0,
            Command::SetRelayState { .. } => 1,
            Command::RelayDown { .. } => 2,
            Command::RemoveRelay { .. } => 3,
            Command::AttachHost { .. } => 4,
            Command::DetachHost { .. } => 5,
            Command::DrainBatch { .. } => 6,
            Command::RelayUp { .. } => 7,
            Command::AddSigningKey(_) => 8,
            Command::SetNotice { .. } => 9,
            Command::StartDrain { .. } => 10,
            Command::SetSiteDraining { .. } => 11,
            Command::ScheduleMaintenance { .. } => 12,
            Command::CancelMaintenance { .. } => 13,
            Command::MaintenancePhase { .. } => 14,
            Command::RecordAudit { .. } => 15,
            Command::RestoreBegin { .. } => 16,
            Command::RestoreRows { .. } => 17,
            Command::RestoreCommit { .. } => 18,
            Command::RestoreAbort => 19,
        }
    }

    /// The golden list holds every variant once, in index order, and each
    /// golden string carries that index right after the proposal header.
    #[test]
    fn the_golden_list_covers_every_variant_in_order() {
        for (position, (command, bytes)) in golden().iter().enumerate() {
            assert_eq!(variant_index(command) as usize, position);
            assert_eq!(bytes[6], position as u8, "{}", command.name());
        }
        assert_eq!(golden().len(), 20);
    }

    #[test]
    fn every_actor_kind_keeps_its_index() {
        let kinds = [
            ActorKind::Admin,
            ActorKind::Relay,
            ActorKind::Host,
            ActorKind::Client,
            ActorKind::System,
            ActorKind::Anonymous,
        ];
        for (index, kind) in kinds.into_iter().enumerate() {
            let bytes = postcard::to_allocvec(&ActorV1::from(&Actor::new(kind, ""))).unwrap();
            assert_eq!(bytes, [index as u8, 0]);
        }
    }
}
