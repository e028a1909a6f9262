//! The commands of the replicated log and their versioned binary encoding.
//!
//! A [`Proposal`] is what a log entry carries: the command, the caller's
//! request id and identity, and the time the leader stamped on it just before
//! proposing. On the wire and on disk it is one format version byte followed
//! by the postcard encoding of that version's body, so a site can still read
//! entries written by the version before it during a rolling upgrade.

use std::fmt;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use crate::error::Error;
use crate::ids::HostId;
use crate::ids::Labels;
use crate::ids::RelayId;
use crate::ids::RequestId;
use crate::ids::validate_capacity;
use crate::ids::validate_endpoint;
use crate::ids::validate_labels;
use crate::ids::validate_region;

/// The format version this build writes; it reads this one and every older one.
pub const PROPOSAL_FORMAT_VERSION: u8 = 1;

/// Largest encoded proposal, in bytes. Commands are small records; anything
/// bigger is garbage or abuse, and the bound keeps AppendEntries messages
/// (`raft_entries_per_message_max` of them) well under the gRPC limit.
pub const PROPOSAL_BYTES_MAX: usize = 64 * 1024;
/// Row bytes (keys and values) in one restore step, so the step's proposal
/// fits `PROPOSAL_BYTES_MAX` with room for its framing and request id.
pub const RESTORE_STEP_BYTES_MAX: usize = 48 * 1024;

/// Longest actor name in bytes (an admin's certificate name, a relay id, ...).
pub const ACTOR_NAME_BYTES_MAX: usize = 128;

/// Who asked for a change. Carried in the command so the audit log names the
/// person or relay, not the site that forwarded the write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
}

/// The role an actor acted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorKind {
    /// An operator, through the admin API or sbctl.
    Admin,
    /// A relay acting as itself.
    Relay,
    /// A VPN host acting as itself.
    Host,
    /// A remote-access client.
    Client,
    /// The leader itself (lease keeper, drain scheduler).
    System,
    /// No authentication configured (development only).
    Anonymous,
}

impl Actor {
    /// An actor of the given kind and name.
    pub fn new(kind: ActorKind, name: impl Into<String>) -> Self {
        Actor {
            kind,
            name: name.into(),
        }
    }

    /// The leader acting on its own (lease expiry, scheduled drains).
    pub fn system() -> Self {
        Actor::new(ActorKind::System, "leader")
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ActorKind::Admin => "admin",
            ActorKind::Relay => "relay",
            ActorKind::Host => "host",
            ActorKind::Client => "client",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        };
        write!(f, "{kind}:{}", self.name)
    }
}

/// What a relay tells the control plane about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRegistration {
    pub relay_id: RelayId,
    /// `host:port` where hosts and clients reach the relay.
    pub endpoint: String,
    /// Region used by placement's preference; empty for none.
    pub region: String,
    pub labels: Labels,
    /// Most hosts the relay may carry.
    pub capacity: u32,
    /// Chosen by the relay process at start; a higher one replaces a lower one.
    pub incarnation: u64,
}

/// An administrative state an operator can ask a relay to move to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayAdminTarget {
    /// Back into placement (undrain, end of maintenance).
    Active,
    /// Out of placement; its hosts are moved off in batches.
    Draining,
    /// Out of service for work; allowed once it holds no route.
    Maintenance,
}

/// One change to the replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add a relay, or update one that restarted with a higher incarnation.
    RegisterRelay(RelayRegistration),
    /// Move a relay between administrative states.
    SetRelayState {
        relay_id: RelayId,
        target: RelayAdminTarget,
    },
    /// The relay's lease ran out: mark it down and re-place its hosts.
    /// `incarnation` fences a stale verdict against a relay that re-registered.
    RelayDown { relay_id: RelayId, incarnation: u64 },
    /// Forget a relay that holds no route.
    RemoveRelay { relay_id: RelayId },
    /// Give a host a route, placing it on a relay if it has none or its relay
    /// cannot carry it any more.
    AttachHost {
        host_id: HostId,
        preferred_region: String,
    },
    /// Remove a host's route.
    DetachHost { host_id: HostId },
    /// Move up to `hosts_max` hosts off a draining relay.
    DrainBatch { relay_id: RelayId, hosts_max: u32 },
    /// A relay whose lease ran out heartbeats again (same incarnation).
    RelayUp { relay_id: RelayId, incarnation: u64 },
    /// A node-info signing key, made by the leader: the first one, or the
    /// next one endorsed by the current one. Becomes the signing key.
    AddSigningKey(NewSigningKey),
    /// The service notice carried in node info (empty clears it).
    SetNotice { text: String },
    /// Start draining a relay at a pace (hosts per second), with an
    /// optional deadline (state time, 0 for none) after which the rest moves.
    /// Refused when the other relays lack room for its hosts, unless `force`
    /// (then what has no room stays until room frees).
    StartDrain {
        relay_id: RelayId,
        hosts_per_second: u32,
        deadline_ms: u64,
        force: bool,
    },
    /// Mark a site as draining (clients prefer other sites) or not.
    SetSiteDraining { site_id: u64, draining: bool },
    /// Schedule a maintenance window.
    ScheduleMaintenance {
        target: crate::state::MaintenanceTarget,
        start_ms: u64,
        end_ms: u64,
        reason: String,
    },
    /// Cancel a window: a scheduled one never starts, an active one ends now.
    CancelMaintenance { window_id: u64 },
    /// The leader started or ended a window (after draining or undraining).
    MaintenancePhase {
        window_id: u64,
        phase: MaintenancePhase,
    },
    /// Records an admin action that is not a command (a membership change).
    RecordAudit { action: String, result: String },
    /// Begin restoring a backup: rows follow in chunks, then a commit.
    RestoreBegin { backup_era: u64, rows_expected: u64 },
    /// One chunk of a backup's rows.
    RestoreRows { rows: Vec<(Vec<u8>, Vec<u8>)> },
    /// Replace the state with the staged backup and raise the era. With
    /// `keep_backup_keys` the backup's node-info signing keys stay (the
    /// proposer checked that this cluster's state key opens them), so
    /// clients that trusted them follow on; without, this cluster's keys sign.
    RestoreCommit { keep_backup_keys: bool },
    /// Drop a staged backup.
    RestoreAbort,
}

/// A maintenance window's transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaintenancePhase {
    Started,
    Ended,
}

/// Slowest and fastest drain pace, hosts per second.
pub const DRAIN_RATE_MIN: u32 = 1;
pub const DRAIN_RATE_MAX: u32 = 100_000;
/// Longest maintenance reason or audit text, in bytes.
pub const REASON_BYTES_MAX: usize = 256;
/// Longest maintenance window: a week.
pub const MAINTENANCE_WINDOW_MS_MAX: u64 = 7 * 24 * 3600 * 1000;

/// A signing key to add. The private key arrives sealed; apply never sees
/// it in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSigningKey {
    pub cluster_id: String,
    pub key_id: u64,
    pub public_key: Vec<u8>,
    pub sealed_private_key: Vec<u8>,
    /// The current key's signature over (key_id, public_key); none for the first key.
    pub endorsement: Option<crate::state::Endorsement>,
}

/// Longest service notice, in bytes.
pub const NOTICE_BYTES_MAX: usize = 2048;
/// Ed25519 public keys and signatures.
pub const PUBLIC_KEY_BYTES: usize = 32;
pub const SIGNATURE_BYTES: usize = 64;
/// Largest sealed private key (PKCS#8 Ed25519 is 83 bytes, plus nonce and tag).
pub const SEALED_KEY_BYTES_MAX: usize = 256;

/// Most hosts one drain batch may move; bounds the work of one apply.
pub const DRAIN_BATCH_HOSTS_MAX: u32 = 10_000;

impl Command {
    /// Checks every field; the same check runs at the API edge and in apply.
    // Over 100 lines on purpose: one flat arm per command, so every rule for
    // every command reads in one place; an arm is a few lines each.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Command::RegisterRelay(registration) => {
                registration.relay_id.validate()?;
                validate_endpoint("endpoint", &registration.endpoint)?;
                validate_region(&registration.region)?;
                validate_labels(&registration.labels)?;
                validate_capacity(registration.capacity)?;
                Ok(())
            }
            Command::SetRelayState { relay_id, .. }
            | Command::RelayDown { relay_id, .. }
            | Command::RemoveRelay { relay_id } => relay_id.validate(),
            Command::AttachHost {
                host_id,
                preferred_region,
            } => {
                host_id.validate()?;
                validate_region(preferred_region)
            }
            Command::DetachHost { host_id } => host_id.validate(),
            Command::DrainBatch {
                relay_id,
                hosts_max,
            } => {
                relay_id.validate()?;
                if *hosts_max == 0 || *hosts_max > DRAIN_BATCH_HOSTS_MAX {
                    return Err(Error::invalid(
                        "hosts_max",
                        format!("must be 1 to {DRAIN_BATCH_HOSTS_MAX}"),
                    ));
                }
                Ok(())
            }
            Command::RelayUp { relay_id, .. } => relay_id.validate(),
            Command::AddSigningKey(key) => {
                crate::ids::validate_cluster_id(&key.cluster_id)?;
                if key.public_key.len() != PUBLIC_KEY_BYTES {
                    return Err(Error::invalid(
                        "public_key",
                        format!("must be {PUBLIC_KEY_BYTES} bytes"),
                    ));
                }
                if key.sealed_private_key.is_empty()
                    || key.sealed_private_key.len() > SEALED_KEY_BYTES_MAX
                {
                    return Err(Error::invalid(
                        "sealed_private_key",
                        format!("must be 1 to {SEALED_KEY_BYTES_MAX} bytes"),
                    ));
                }
                if let Some(endorsement) = &key.endorsement
                    && endorsement.signature.len() != SIGNATURE_BYTES
                {
                    return Err(Error::invalid(
                        "endorsement",
                        format!("must be {SIGNATURE_BYTES} bytes"),
                    ));
                }
                Ok(())
            }
            Command::StartDrain {
                relay_id,
                hosts_per_second,
                ..
            } => {
                relay_id.validate()?;
                if !(DRAIN_RATE_MIN..=DRAIN_RATE_MAX).contains(hosts_per_second) {
                    return Err(Error::invalid(
                        "hosts_per_second",
                        format!("must be {DRAIN_RATE_MIN} to {DRAIN_RATE_MAX}"),
                    ));
                }
                Ok(())
            }
            Command::SetSiteDraining { .. }
            | Command::CancelMaintenance { .. }
            | Command::MaintenancePhase { .. }
            | Command::RestoreBegin { .. }
            | Command::RestoreCommit { .. }
            | Command::RestoreAbort => Ok(()),
            Command::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                reason,
            } => {
                if let crate::state::MaintenanceTarget::Relay(relay_id) = target {
                    relay_id.validate()?;
                }
                if end_ms <= start_ms || end_ms - start_ms > MAINTENANCE_WINDOW_MS_MAX {
                    return Err(Error::invalid(
                        "end",
                        "must be after the start and at most a week later",
                    ));
                }
                check_text("reason", reason)
            }
            Command::RecordAudit { action, result } => {
                check_text("action", action)?;
                check_text("result", result)
            }
            Command::RestoreRows { rows } => {
                if rows.is_empty() {
                    return Err(Error::invalid("rows", "a chunk holds at least one row"));
                }
                Ok(())
            }
            Command::SetNotice { text } => {
                if text.len() > NOTICE_BYTES_MAX {
                    return Err(Error::invalid(
                        "notice",
                        format!("at most {NOTICE_BYTES_MAX} bytes"),
                    ));
                }
                if text.chars().any(|c| c.is_control() && c != '\n') {
                    return Err(Error::invalid(
                        "notice",
                        "no control characters except newlines",
                    ));
                }
                Ok(())
            }
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RegisterRelay(_) => "register_relay",
            Command::SetRelayState { .. } => "set_relay_state",
            Command::RelayDown { .. } => "relay_down",
            Command::RemoveRelay { .. } => "remove_relay",
            Command::AttachHost { .. } => "attach_host",
            Command::DetachHost { .. } => "detach_host",
            Command::DrainBatch { .. } => "drain_batch",
            Command::RelayUp { .. } => "relay_up",
            Command::AddSigningKey(_) => "add_signing_key",
            Command::SetNotice { .. } => "set_notice",
            Command::StartDrain { .. } => "start_drain",
            Command::SetSiteDraining { .. } => "set_site_draining",
            Command::ScheduleMaintenance { .. } => "schedule_maintenance",
            Command::CancelMaintenance { .. } => "cancel_maintenance",
            Command::MaintenancePhase { .. } => "maintenance_phase",
            Command::RecordAudit { .. } => "record_audit",
            Command::RestoreBegin { .. } => "restore_begin",
            Command::RestoreRows { .. } => "restore_rows",
            Command::RestoreCommit { .. } => "restore_commit",
            Command::RestoreAbort => "restore_abort",
        }
    }
}

fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.len() > REASON_BYTES_MAX {
        return Err(Error::invalid(
            field,
            format!("at most {REASON_BYTES_MAX} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "no control characters"));
    }
    Ok(())
}

impl Command {
    /// What an audit record says was done (the command and its target).
    pub fn describe(&self) -> String {
        match self {
            Command::RegisterRelay(registration) => {
                format!("register relay {}", registration.relay_id)
            }
            Command::SetRelayState { relay_id, target } => {
                format!("set relay {relay_id} to {target:?}")
            }
            Command::RelayDown {
                relay_id,
                incarnation,
            } => format!("relay {relay_id} down (incarnation {incarnation})"),
            Command::RelayUp {
                relay_id,
                incarnation,
            } => format!("relay {relay_id} up (incarnation {incarnation})"),
            Command::RemoveRelay { relay_id } => format!("remove relay {relay_id}"),
            Command::AttachHost { host_id, .. } => format!("attach host {host_id}"),
            Command::DetachHost { host_id } => format!("detach host {host_id}"),
            Command::DrainBatch {
                relay_id,
                hosts_max,
            } => format!("drain batch of {hosts_max} off {relay_id}"),
            Command::AddSigningKey(key) => format!("add signing key {}", key.key_id),
            Command::SetNotice { text } if text.is_empty() => "clear the notice".to_owned(),
            Command::SetNotice { .. } => "set the notice".to_owned(),
            Command::StartDrain {
                relay_id,
                hosts_per_second,
                ..
            } => {
                format!("drain relay {relay_id} at {hosts_per_second} hosts/s")
            }
            Command::SetSiteDraining {
                site_id,
                draining: true,
            } => format!("drain site {site_id}"),
            Command::SetSiteDraining {
                site_id,
                draining: false,
            } => format!("undrain site {site_id}"),
            Command::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                ..
            } => {
                format!("schedule maintenance of {target} from {start_ms} to {end_ms}")
            }
            Command::CancelMaintenance { window_id } => {
                format!("cancel maintenance window {window_id}")
            }
            Command::MaintenancePhase { window_id, phase } => {
                format!("maintenance window {window_id} {phase:?}")
            }
            Command::RecordAudit { action, .. } => action.clone(),
            Command::RestoreBegin {
                backup_era,
                rows_expected,
            } => {
                format!("begin restoring a backup of era {backup_era} ({rows_expected} rows)")
            }
            Command::RestoreRows { rows } => format!("restore {} rows", rows.len()),
            Command::RestoreCommit {
                keep_backup_keys: true,
            } => "commit the restore, keeping the backup's signing keys".to_owned(),
            Command::RestoreCommit {
                keep_backup_keys: false,
            } => "commit the restore, signing with this cluster's keys".to_owned(),
            Command::RestoreAbort => "abort the restore".to_owned(),
        }
    }

    /// Whether applying it is an action the audit log keeps.
    pub fn is_audited(&self) -> bool {
        !matches!(
            self,
            Command::AttachHost { .. }
                | Command::DetachHost { .. }
                | Command::DrainBatch { .. }
                | Command::RestoreRows { .. }
        )
    }
}

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Caller-chosen idempotency key; `RequestId::NONE` for none.
    pub request_id: RequestId,
    /// Who asked.
    pub actor: Actor,
    /// Unix time in milliseconds, written by the leader just before proposing.
    /// Zero until then. Apply uses the larger of it and the last one seen.
    pub issued_at_ms: u64,
    pub command: Command,
}

/// Version 1 body of a proposal. Field order is the format: never reorder,
/// only add a new version.
#[derive(Serialize, Deserialize)]
struct ProposalV1 {
    request_id: RequestId,
    actor: Actor,
    issued_at_ms: u64,
    command: Command,
}

impl Proposal {
    /// A proposal not yet stamped by the leader.
    pub fn new(request_id: RequestId, actor: Actor, command: Command) -> Self {
        Proposal {
            request_id,
            actor,
            issued_at_ms: 0,
            command,
        }
    }

    /// Version byte, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let body = ProposalV1 {
            request_id: self.request_id,
            actor: self.actor.clone(),
            issued_at_ms: self.issued_at_ms,
            command: self.command.clone(),
        };
        let mut out = vec![PROPOSAL_FORMAT_VERSION];
        postcard::to_io(&body, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads any version this build knows. Refuses oversized input, unknown
    /// versions and trailing bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > PROPOSAL_BYTES_MAX {
            return Err(Error::Decode {
                what: "proposal",
                reason: format!("{} bytes, at most {PROPOSAL_BYTES_MAX}", bytes.len()),
            });
        }
        let (&version, body) = bytes.split_first().ok_or(Error::Decode {
            what: "proposal",
            reason: "empty".into(),
        })?;
        match version {
            1 => {
                let body: ProposalV1 = decode_exact("proposal", body)?;
                if body.actor.name.len() > ACTOR_NAME_BYTES_MAX {
                    return Err(Error::Decode {
                        what: "proposal",
                        reason: "actor name too long".into(),
                    });
                }
                Ok(Proposal {
                    request_id: body.request_id,
                    actor: body.actor,
                    issued_at_ms: body.issued_at_ms,
                    command: body.command,
                })
            }
            found => Err(Error::UnknownVersion {
                what: "proposal",
                found,
                supported: PROPOSAL_FORMAT_VERSION,
            }),
        }
    }

    /// A digest of the command, to tell a true retry from a reused request id.
    pub fn command_digest(&self) -> u64 {
        let bytes = postcard::to_allocvec(&self.command).expect("encoding to a Vec cannot fail");
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// Decodes a postcard body and refuses trailing bytes.
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {} (request {})",
            self.command.name(),
            self.actor,
            self.request_id
        )
    }
}

// A proposal travels inside openraft's entries as its own versioned bytes, so
// the log and the network carry exactly the encoding above.
impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = Proposal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an encoded proposal")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Proposal, E> {
                Proposal::decode(bytes).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Proposal, E> {
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(host: &str) -> Proposal {
        Proposal {
            request_id: RequestId(42),
            actor: Actor::new(ActorKind::Host, host),
            issued_at_ms: 1_700_000_000_000,
            command: Command::AttachHost {
                host_id: HostId::new(host).unwrap(),
                preferred_region: "eu".into(),
            },
        }
    }

    #[test]
    fn proposals_round_trip_through_the_versioned_encoding() {
        let proposal = attach("host-1");
        let bytes = proposal.encode();
        assert_eq!(bytes[0], PROPOSAL_FORMAT_VERSION);
        assert_eq!(Proposal::decode(&bytes).unwrap(), proposal);
    }

    #[test]
    fn unknown_versions_trailing_bytes_and_empty_input_are_refused() {
        let mut bytes = attach("host-1").encode();
        bytes[0] = 9;
        assert!(matches!(
            Proposal::decode(&bytes),
            Err(Error::UnknownVersion { found: 9, .. })
        ));
        let mut bytes = attach("host-1").encode();
        bytes.push(0);
        assert!(matches!(
            Proposal::decode(&bytes),
            Err(Error::Decode { .. })
        ));
        assert!(Proposal::decode(&[]).is_err());
        assert!(Proposal::decode(&vec![1u8; PROPOSAL_BYTES_MAX + 1]).is_err());
    }

    /// The version-1 encoding is a format: this exact byte string must keep
    /// decoding to the same proposal in every later build.
    #[test]
    fn version_one_encoding_is_stable() {
        let proposal = Proposal {
            request_id: RequestId(1),
            actor: Actor::new(ActorKind::Admin, "ops"),
            issued_at_ms: 5,
            command: Command::DetachHost {
                host_id: HostId::new("h").unwrap(),
            },
        };
        let golden: &[u8] = &[1, 1, 0, 3, b'o', b'p', b's', 5, 5, 1, b'h'];
        assert_eq!(proposal.encode(), golden);
        assert_eq!(Proposal::decode(golden).unwrap(), proposal);
    }

    #[test]
    fn digests_differ_between_commands() {
        assert_ne!(attach("a").command_digest(), attach("b").command_digest());
        assert_eq!(attach("a").command_digest(), attach("a").command_digest());
    }
}
