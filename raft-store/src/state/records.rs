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
    Active,
    Draining,
    Drained,
    Maintenance,
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
    pub relay_id: RelayId,
    pub endpoint: String,
    pub region: String,
    pub labels: Labels,
    pub capacity: u32,
    pub incarnation: u64,
    pub admin_state: AdminState,
    /// False once its lease ran out, until it registers again.
    pub live: bool,
    /// Routes held; always equal to the number of hosts routed to it.
    pub route_count: u32,
    pub registered_at_ms: u64,
    /// When `admin_state` or `live` last changed.
    pub state_since_ms: u64,
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

    /// Whether placement may put one more host here.
    pub fn has_room(&self) -> bool {
        self.live && self.admin_state == AdminState::Active && self.route_count < self.capacity
    }
}

/// One host's route, as stored (the host id is the row key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub relay_id: RelayId,
    pub generation: u64,
    pub since_ms: u64,
    /// Region asked for at attach, reused when the host is re-placed.
    pub preferred_region: String,
}

/// A route as callers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    pub host_id: HostId,
    pub relay_id: RelayId,
    pub relay_endpoint: String,
    pub generation: u64,
    pub since_ms: u64,
    pub preferred_region: String,
}

/// A remembered answer, so a retried request returns it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Digest of the command that first used this request id.
    pub command_digest: u64,
    pub reply: Reply,
    pub applied_at_ms: u64,
}
