//! What applying a command answers.

use serde::Deserialize;
use serde::Serialize;

use crate::ids::HostId;
use crate::state::RelayRecord;
use crate::state::RouteView;

/// The answer to one log entry. A retry of an applied request gets the very
/// same value back, `log_index` included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Index of the log entry that produced this answer.
    pub log_index: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened.
// The variants' fields are named for what they hold and each variant's
// doc says what it does; a doc per `relay_id: RelayId` would add nothing.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A blank or membership entry: nothing for the application.
    Noop,
    /// A relay as it is after the command.
    Relay(RelayRecord),
    /// A relay's state changed and some of its hosts were moved.
    RelayMoved {
        relay: RelayRecord,
        hosts_moved: u32,
        hosts_unplaced: u32,
    },
    /// A relay is gone.
    RelayRemoved { relay_id: crate::ids::RelayId },
    /// A host's route.
    Route(RouteView),
    /// A host lost its route.
    Detached {
        host_id: HostId,
        was_attached: bool,
        last_generation: u64,
    },
    /// Node info changed (a key, the notice); its version now.
    NodeInfo { era: u64, epoch: u64 },
    /// A site's drain flag.
    Site { site_id: u64, draining: bool },
    /// A maintenance window as it is now.
    Window(crate::state::MaintenanceWindow),
    /// An action was recorded in the audit log.
    Audited { result: String },
    /// A restore's progress.
    Restore {
        rows_received: u64,
        rows_expected: u64,
    },
    /// The state was replaced by a backup, in a new node-info era.
    Restored { era: u64, routes: u64 },
    /// The command was refused and changed nothing.
    Refused(Refusal),
}

/// Why a command changed nothing. Deterministic: every site refuses alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Its kind, for the gRPC status code.
    pub code: RefusalCode,
    /// For people.
    pub message: String,
}

/// The kind of refusal; the API maps each to a gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    /// The command or a field of it is malformed.
    InvalidArgument,
    /// The relay, host or window does not exist.
    NotFound,
    /// No relay has room.
    ResourceExhausted,
    /// The target is not in a state that allows this.
    FailedPrecondition,
    /// The actor may not do this (e.g. a removed relay registering itself).
    PermissionDenied,
}

impl Refusal {
    /// A refusal of kind `code`.
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reply@{}: {:?}", self.log_index, self.outcome)
    }
}
