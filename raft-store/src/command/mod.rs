//! The commands of the replicated log and their versioned binary encoding.
//!
//! A [`Proposal`] is what a log entry carries: the command, the caller's
//! request id and identity, and the time the leader stamped on it just before
//! proposing. On the wire and on disk it is one format version byte followed
//! by the postcard encoding of that version's body, so a site can still read
//! entries written by the version before it during a rolling upgrade.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::ids::HostId;
use crate::ids::Labels;
use crate::ids::RelayId;

mod proposal;
mod v1;
mod validate;

pub use proposal::Proposal;
pub(crate) use proposal::decode_exact;

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
    /// The role it acted in.
    pub kind: ActorKind,
    /// Its name: a certificate name, relay or host id, or a site.
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
    /// The relay.
    pub relay_id: RelayId,
    /// `host:port` where hosts and clients reach the relay.
    pub endpoint: String,
    /// Region used by placement's preference; empty for none.
    pub region: String,
    /// Failure-domain and selection labels.
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

/// One change to the replicated state, as apply sees it. Its format in the
/// log is `v1::CommandV1`; this type has no serde of its own.
// The variants' fields are named for what they hold and each variant's
// doc says what it does; a doc per `relay_id: RelayId` would add nothing.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Add a relay, or update one that restarted with a higher incarnation.
    RegisterRelay(RelayRegistration),
    /// Move a relay between administrative states.
    SetRelayState {
        relay_id: RelayId,
        target: RelayAdminTarget,
    },
    /// The relay's lease ran out: mark it down and re-place the first
    /// `RELAY_DOWN_BATCH_HOSTS` of its hosts (the leader moves the rest in
    /// `DrainBatch`es). `incarnation` fences a stale verdict against a relay
    /// that re-registered.
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
    /// Move up to `hosts_max` hosts off a draining or down relay.
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
    /// The target was drained and taken out of service.
    Started,
    /// The window is over and the target back in service.
    Ended,
}

/// Slowest drain pace, hosts per second.
pub const DRAIN_RATE_MIN: u32 = 1;
/// Fastest drain pace, hosts per second: ten batches of the largest size a
/// second, at the scheduler's tick.
pub const DRAIN_RATE_MAX: u32 = 100_000;
/// Longest maintenance reason or audit text, in bytes.
pub const REASON_BYTES_MAX: usize = 256;
/// Longest maintenance window apply accepts: 31 days. Frozen, because
/// apply must judge every log entry the same way on every version; a site
/// narrows it with `limits.maintenance_window_ms_max` at the API edge.
pub const MAINTENANCE_WINDOW_MS_CEILING: u64 = 31 * DAY_MS;
/// Longest maintenance window a site accepts unless configured otherwise:
/// a week, longer than any planned works of a datacenter.
pub const MAINTENANCE_WINDOW_MS_DEFAULT: u64 = 7 * DAY_MS;
/// Furthest ahead a maintenance window may start: a year. A start in the
/// year 9999 is a typo, and a window nobody will see start is clutter.
pub const MAINTENANCE_LEAD_MS_CEILING: u64 = 366 * DAY_MS;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// Checks a window's times against the site that takes the request (the
/// API edge: apply does not judge times against clocks, and each site may
/// narrow the longest window): it starts within `lead_ms_max` of `now_ms`
/// and lasts at most `window_ms_max`.
pub fn validate_window(
    start_ms: u64,
    end_ms: u64,
    now_ms: u64,
    window_ms_max: u64,
    lead_ms_max: u64,
) -> Result<(), crate::Error> {
    if start_ms > now_ms.saturating_add(lead_ms_max) {
        return Err(crate::Error::invalid(
            "start",
            format!("must be within {} from now", days(lead_ms_max)),
        ));
    }
    if end_ms > start_ms && end_ms - start_ms > window_ms_max {
        return Err(crate::Error::invalid(
            "end",
            format!("must be at most {} after the start", days(window_ms_max)),
        ));
    }
    Ok(())
}

/// A span in days or hours, for error messages.
fn days(ms: u64) -> String {
    match ms {
        MAINTENANCE_LEAD_MS_CEILING => "a year".to_owned(),
        ms if ms % DAY_MS == 0 => format!("{} days", ms / DAY_MS),
        ms => format!("{:.1} hours", ms as f64 / 3_600_000.0),
    }
}

/// A signing key to add. The private key arrives sealed; apply never sees
/// it in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSigningKey {
    /// The cluster the key signs for.
    pub cluster_id: String,
    /// Its id; each key has a higher id than the one before.
    pub key_id: u64,
    /// Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The private key, sealed under the sites' state key.
    pub sealed_private_key: Vec<u8>,
    /// The current key's signature over (key_id, public_key); none for the first key.
    pub endorsement: Option<crate::state::Endorsement>,
}

/// Longest service notice, in bytes.
pub const NOTICE_BYTES_MAX: usize = 2048;
/// Ed25519 public keys.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Ed25519 signatures.
pub const SIGNATURE_BYTES: usize = 64;
/// Largest sealed private key (PKCS#8 Ed25519 is 83 bytes, plus nonce and tag).
pub const SEALED_KEY_BYTES_MAX: usize = 256;

/// Most hosts one drain batch may move; bounds the work of one apply.
pub const DRAIN_BATCH_HOSTS_MAX: u32 = 10_000;

impl Command {
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

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn a_window_starts_within_the_lead_and_lasts_at_most_the_configured_length() {
        let now = 1_000 * DAY_MS;
        let week = MAINTENANCE_WINDOW_MS_DEFAULT;
        let year = MAINTENANCE_LEAD_MS_CEILING;
        assert!(validate_window(now, now + week, now, week, year).is_ok());
        let long = validate_window(now, now + week + 1, now, week, year).unwrap_err();
        assert!(long.to_string().contains("at most 7 days"), "{long}");
        let far = validate_window(now + year + 1, now + year + 2, now, week, year).unwrap_err();
        assert!(far.to_string().contains("within a year"), "{far}");
        assert!(validate_window(u64::MAX - 1, u64::MAX, now, week, year).is_err());
        // A month, where a site allows one.
        assert!(
            validate_window(
                now,
                now + 30 * DAY_MS,
                now,
                MAINTENANCE_WINDOW_MS_CEILING,
                year
            )
            .is_ok()
        );
    }
}
