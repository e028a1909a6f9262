//! The records the state machine keeps, one per row.

use serde::Deserialize;
use serde::Serialize;

use crate::ids::HostId;
use crate::ids::Labels;
use crate::ids::RelayId;
use crate::reply::Reply;

/// Facts about the whole state that are not one relay, route or request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The state's clock: the largest leader timestamp applied so far, in
    /// Unix milliseconds. It never runs backwards.
    pub clock_ms: u64,
    /// The last route generation handed out. Every route change takes the
    /// next one, so a host's generation strictly increases and no two routes
    /// ever share one.
    pub last_generation: u64,
    /// The last maintenance window id handed out.
    pub last_window_id: u64,
    /// The last audit record number.
    pub last_audit_seq: u64,
}

/// What an operator decided about a relay, apart from whether it is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminState {
    /// In placement.
    Active,
    /// Out of placement; its hosts are being moved off.
    Draining,
    /// Out of placement and holding no route.
    Drained,
    /// Out of service for work.
    Maintenance,
}

/// A relay's state as people see it: the admin state, or `Down` when its
/// lease ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayState {
    /// In placement.
    Active,
    /// Out of placement; its hosts are moving off.
    Draining,
    /// Drained: holds no route.
    Drained,
    /// Out of service for work.
    Maintenance,
    /// Its lease ran out.
    Down,
}

impl RelayState {
    /// Lowercase name for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayState::Active => "active",
            RelayState::Draining => "draining",
            RelayState::Drained => "drained",
            RelayState::Maintenance => "maintenance",
            RelayState::Down => "down",
        }
    }
}

/// One relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRecord {
    /// Its id.
    pub relay_id: RelayId,
    /// Where hosts and clients reach it, `host:port`.
    pub endpoint: String,
    /// Placement prefers hosts' own region.
    pub region: String,
    /// Failure-domain and selection labels.
    pub labels: Labels,
    /// Most hosts it may carry.
    pub capacity: u32,
    /// The relay process's incarnation; a higher one replaces a lower one.
    pub incarnation: u64,
    /// What the operator asked for.
    pub admin_state: AdminState,
    /// False once its lease ran out, until it registers again.
    pub live: bool,
    /// Routes held; always equal to the number of hosts routed to it.
    pub route_count: u32,
    /// When it first registered, state time.
    pub registered_at_ms: u64,
    /// When `admin_state` or `live` last changed.
    pub state_since_ms: u64,
    /// Until then the relay is warming up: placement uses it only when no
    /// warmed-up relay has room.
    pub warm_until_ms: u64,
    /// Until then the relay is held out of placement for flapping.
    pub held_out_until_ms: u64,
    /// When its lease last ran out, newest last, at most `FLAP_DOWNS_MAX`.
    pub recent_downs_ms: Vec<u64>,
    /// How a drain moves its hosts off, while it is draining.
    pub drain: Option<DrainPlan>,
}

/// The pace of a relay's drain, kept in the state so a new leader goes on
/// at the same pace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainPlan {
    /// Pace.
    pub hosts_per_second: u32,
    /// When the drain started, state time.
    pub started_ms: u64,
    /// After this state time, whatever is left moves at once.
    pub deadline_ms: Option<u64>,
}

/// What a maintenance window takes out of service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MaintenanceTarget {
    /// A relay, by id.
    Relay(RelayId),
    /// A site, by id.
    Site(u64),
}

impl std::fmt::Display for MaintenanceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaintenanceTarget::Relay(id) => write!(f, "relay:{id}"),
            MaintenanceTarget::Site(id) => write!(f, "site:{id}"),
        }
    }
}

/// Where a maintenance window is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowStatus {
    /// Not started yet.
    Scheduled,
    /// Started: the target is drained (or draining) until the end.
    Active,
    /// Ended.
    Done,
    /// Cancelled before or while it ran.
    Cancelled,
}

impl WindowStatus {
    /// Its name in the API and on status pages.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowStatus::Scheduled => "scheduled",
            WindowStatus::Active => "active",
            WindowStatus::Done => "done",
            WindowStatus::Cancelled => "cancelled",
        }
    }
}

/// A scheduled drain with a start and an end, carried out by the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// Its id.
    pub id: u64,
    /// What it takes out of service.
    pub target: MaintenanceTarget,
    /// Unix milliseconds.
    pub start_ms: u64,
    /// End, state time.
    pub end_ms: u64,
    /// Why, as the operator said.
    pub reason: String,
    /// Where it is in its life.
    pub status: WindowStatus,
    /// Who scheduled it.
    pub created_by: String,
}

/// One admin action: who, what, when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its sequence number.
    pub seq: u64,
    /// When, state time.
    pub at_ms: u64,
    /// The log entry that did it.
    pub log_index: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// `ok`, or why it was refused.
    pub result: String,
}

/// A restore from a backup, being received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStaging {
    /// The era of the cluster the backup came from.
    pub backup_era: u64,
    /// Rows the backup holds.
    pub rows_expected: u64,
    /// Rows staged so far.
    pub rows_received: u64,
    /// Who began it.
    pub started_by: String,
}

impl RelayRecord {
    /// The combined state.
    pub fn state(&self) -> RelayState {
        if !self.live {
            return RelayState::Down;
        }
        match self.admin_state {
            AdminState::Active => RelayState::Active,
            AdminState::Draining => RelayState::Draining,
            AdminState::Drained => RelayState::Drained,
            AdminState::Maintenance => RelayState::Maintenance,
        }
    }

    /// Whether placement may put one more host here at state time `now_ms`.
    pub fn has_room(&self, now_ms: u64) -> bool {
        self.accepts_hosts(now_ms) && self.route_count < self.capacity
    }

    /// Whether the relay may carry hosts at all at `now_ms`: alive, active
    /// and not held out for flapping.
    pub fn accepts_hosts(&self, now_ms: u64) -> bool {
        self.live && self.admin_state == AdminState::Active && now_ms >= self.held_out_until_ms
    }

    /// Whether it finished warming up at `now_ms`.
    pub fn is_warm(&self, now_ms: u64) -> bool {
        now_ms >= self.warm_until_ms
    }
}

/// One host's route, as stored (the host id is the row key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// Its relay.
    pub relay_id: RelayId,
    /// Rises with every placement, so a stale route is told apart.
    pub generation: u64,
    /// When it was placed, state time.
    pub since_ms: u64,
    /// Region asked for at attach, reused when the host is re-placed.
    pub preferred_region: String,
}

/// A route as callers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// The host.
    pub host_id: HostId,
    /// Its relay.
    pub relay_id: RelayId,
    /// Where to reach the relay.
    pub relay_endpoint: String,
    /// Rises with every placement.
    pub generation: u64,
    /// When it was placed, state time.
    pub since_ms: u64,
    /// Region asked for at attach.
    pub preferred_region: String,
}

/// A control-plane site as node info lists it (mirrored from Raft membership).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Its name.
    pub name: String,
    /// Where hosts and clients reach its API.
    pub api_addr: String,
    /// Whether it votes.
    pub voter: bool,
    /// Draining: clients should prefer other sites (maintenance).
    pub draining: bool,
}

/// A node-info signing key. The private half is sealed (AES-256-GCM) under a
/// key from the sites' configuration: never in the clear in the state, a
/// snapshot or a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Its id.
    pub key_id: u64,
    /// Ed25519 public key, 32 bytes.
    pub public_key: Vec<u8>,
    /// Nonce and ciphertext of the PKCS#8 private key.
    pub sealed_private_key: Vec<u8>,
    /// The previous key's signature over this key (absent for the first).
    pub endorsement: Option<Endorsement>,
    /// When it was added, state time.
    pub added_at_ms: u64,
}

/// One key vouching for the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The endorsing key.
    pub by_key_id: u64,
    /// Its Ed25519 signature.
    pub signature: Vec<u8>,
}

/// What node info is made of, besides sites and relays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoMeta {
    /// The cluster it describes.
    pub cluster_id: String,
    /// Rises when the cluster is restored from a backup.
    pub era: u64,
    /// Rises whenever the document's content changes.
    pub epoch: u64,
    /// State time of the last epoch change: the document's issue time.
    pub epoch_since_ms: u64,
    /// The service notice shown to users.
    pub notice: String,
    /// Signing keys, oldest first (at most `SIGNING_KEYS_KEPT_MAX`).
    pub keys: Vec<SigningKeyRecord>,
}

impl NodeInfoMeta {
    /// (era, epoch).
    pub fn version(&self) -> (u64, u64) {
        (self.era, self.epoch)
    }

    /// The key that signs the current epoch (the newest).
    pub fn current_key(&self) -> Option<&SigningKeyRecord> {
        self.keys.last()
    }
}

/// A remembered answer, so a retried request returns it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Digest of the command that first used this request id.
    pub command_digest: u64,
    /// The answer given, returned again to a retry.
    pub reply: Reply,
    /// When it applied, state time (it is forgotten after the retention).
    pub applied_at_ms: u64,
}
