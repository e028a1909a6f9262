//! Commands paired with the type of what applying them answers.
//!
//! A [`Request<A>`] is a [`Command`] that can only be built by the
//! constructor for its kind, and that constructor fixes `A`, the answer's
//! type. The one place an outcome is matched against its command is
//! [`Reply::answer`]; a service that proposes a request gets an `A` or a
//! refusal, and has no "unexpected outcome" arm. The test below applies every
//! kind of command and reads its answer, so a mismatch fails there.

use std::marker::PhantomData;

use serde::Deserialize;
use serde::Serialize;

use crate::command::Command;
use crate::command::MaintenancePhase;
use crate::command::NewSigningKey;
use crate::command::RelayAdminTarget;
use crate::command::RelayRegistration;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::reply::Outcome;
use crate::reply::Refusal;
use crate::reply::Reply;
use crate::state::MaintenanceTarget;
use crate::state::MaintenanceWindow;
use crate::state::RelayRecord;
use crate::state::RouteView;

/// A command whose answer is an `A`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<A> {
    command: Command,
    answer: PhantomData<fn() -> A>,
}

impl<A> Request<A> {
    fn new(command: Command) -> Self {
        Request {
            command,
            answer: PhantomData,
        }
    }

    /// The command to propose.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// The command, for a proposal.
    pub fn into_command(self) -> Command {
        self.command
    }
}

/// An answer's type, read out of an outcome. `None` if the outcome has
/// another shape.
pub trait Answer: Sized {
    /// The answer in `outcome`, if it is of this type.
    fn from_outcome(outcome: Outcome) -> Option<Self>;
}

/// A relay after a command that may also have moved some of its hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayChange {
    /// The relay as it is now.
    pub relay: RelayRecord,
    /// Hosts given another relay by this command.
    pub hosts_moved: u32,
    /// Hosts that should have moved but found no relay with room.
    pub hosts_unplaced: u32,
}

/// A host's route removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detached {
    /// The host.
    pub host_id: HostId,
    /// Whether it had a route.
    pub was_attached: bool,
    /// The generation of its last route (0 if it never had one).
    pub last_generation: u64,
}

/// Node info's version after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfoVersion {
    /// Raised by a restore.
    pub era: u64,
    /// Raised by every change within an era.
    pub epoch: u64,
}

/// A site's drain flag after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteDraining {
    /// The site.
    pub site_id: u64,
    /// Whether clients are sent elsewhere.
    pub draining: bool,
}

/// An audit record written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audited {
    /// The result it records.
    pub result: String,
}

/// How far a restore has come: rows staged of those expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreProgress {
    /// Rows staged so far.
    pub rows_received: u64,
    /// Rows the backup holds.
    pub rows_expected: u64,
}

/// A restore committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The new node-info era.
    pub era: u64,
    /// Routes in the restored state.
    pub routes: u64,
}

/// A typed answer with the log index that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<A> {
    /// The entry that applied the command (for a retry, the first one).
    pub log_index: u64,
    /// What it answered.
    pub answer: A,
}

impl Reply {
    /// This reply as the answer of request type `A`, or the refusal.
    ///
    /// Panics if the outcome has another shape: apply answers each kind of
    /// command in one shape (the test of this module checks every kind), so
    /// that would be a bug in apply, not an operating error.
    pub fn answer<A: Answer>(self) -> Result<Applied<A>, Refusal> {
        let outcome = match self.outcome {
            Outcome::Refused(refusal) => return Err(refusal),
            outcome => outcome,
        };
        let description = format!("{outcome:?}");
        let answer = A::from_outcome(outcome).unwrap_or_else(|| {
            panic!(
                "apply answered with {description}, not a {}",
                std::any::type_name::<A>()
            )
        });
        Ok(Applied {
            log_index: self.log_index,
            answer,
        })
    }
}

impl Answer for RelayChange {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Relay(relay) => Some(RelayChange {
                relay,
                hosts_moved: 0,
                hosts_unplaced: 0,
            }),
            Outcome::RelayMoved {
                relay,
                hosts_moved,
                hosts_unplaced,
            } => Some(RelayChange {
                relay,
                hosts_moved,
                hosts_unplaced,
            }),
            _ => None,
        }
    }
}

impl Answer for RelayId {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::RelayRemoved { relay_id } => Some(relay_id),
            _ => None,
        }
    }
}

impl Answer for RouteView {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Route(route) => Some(route),
            _ => None,
        }
    }
}

impl Answer for Detached {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Detached {
                host_id,
                was_attached,
                last_generation,
            } => Some(Detached {
                host_id,
                was_attached,
                last_generation,
            }),
            _ => None,
        }
    }
}

impl Answer for NodeInfoVersion {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::NodeInfo { era, epoch } => Some(NodeInfoVersion { era, epoch }),
            _ => None,
        }
    }
}

impl Answer for SiteDraining {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Site { site_id, draining } => Some(SiteDraining { site_id, draining }),
            _ => None,
        }
    }
}

impl Answer for MaintenanceWindow {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Window(window) => Some(window),
            _ => None,
        }
    }
}

impl Answer for Audited {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Audited { result } => Some(Audited { result }),
            _ => None,
        }
    }
}

impl Answer for RestoreProgress {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Restore {
                rows_received,
                rows_expected,
            } => Some(RestoreProgress {
                rows_received,
                rows_expected,
            }),
            _ => None,
        }
    }
}

impl Answer for Restored {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Restored { era, routes } => Some(Restored { era, routes }),
            _ => None,
        }
    }
}

impl Answer for () {
    fn from_outcome(outcome: Outcome) -> Option<Self> {
        matches!(outcome, Outcome::Noop).then_some(())
    }
}

/// One constructor per kind of command; each fixes the answer's type.
impl Request<RelayChange> {
    /// Add a relay or update one that restarted.
    pub fn register_relay(registration: RelayRegistration) -> Self {
        Self::new(Command::RegisterRelay(registration))
    }

    /// Move a relay between administrative states.
    pub fn set_relay_state(relay_id: RelayId, target: RelayAdminTarget) -> Self {
        Self::new(Command::SetRelayState { relay_id, target })
    }

    /// Mark a relay whose lease ran out as down.
    pub fn relay_down(relay_id: RelayId, incarnation: u64) -> Self {
        Self::new(Command::RelayDown {
            relay_id,
            incarnation,
        })
    }

    /// A relay that was down heartbeats again.
    pub fn relay_up(relay_id: RelayId, incarnation: u64) -> Self {
        Self::new(Command::RelayUp {
            relay_id,
            incarnation,
        })
    }

    /// Move up to `hosts_max` hosts off a draining relay.
    pub fn drain_batch(relay_id: RelayId, hosts_max: u32) -> Self {
        Self::new(Command::DrainBatch {
            relay_id,
            hosts_max,
        })
    }

    /// Start draining a relay at a pace, with an optional deadline.
    pub fn start_drain(
        relay_id: RelayId,
        hosts_per_second: u32,
        deadline_ms: u64,
        force: bool,
    ) -> Self {
        Self::new(Command::StartDrain {
            relay_id,
            hosts_per_second,
            deadline_ms,
            force,
        })
    }
}

impl Request<RelayId> {
    /// Forget a relay that holds no route.
    pub fn remove_relay(relay_id: RelayId) -> Self {
        Self::new(Command::RemoveRelay { relay_id })
    }
}

impl Request<RouteView> {
    /// Give a host a route.
    pub fn attach_host(host_id: HostId, preferred_region: String) -> Self {
        Self::new(Command::AttachHost {
            host_id,
            preferred_region,
        })
    }
}

impl Request<Detached> {
    /// Remove a host's route.
    pub fn detach_host(host_id: HostId) -> Self {
        Self::new(Command::DetachHost { host_id })
    }
}

impl Request<NodeInfoVersion> {
    /// Add a node-info signing key.
    pub fn add_signing_key(key: NewSigningKey) -> Self {
        Self::new(Command::AddSigningKey(key))
    }

    /// Set (or, with empty text, clear) the service notice.
    pub fn set_notice(text: String) -> Self {
        Self::new(Command::SetNotice { text })
    }
}

impl Request<SiteDraining> {
    /// Drain a site out of client service, or undrain it.
    pub fn set_site_draining(site_id: u64, draining: bool) -> Self {
        Self::new(Command::SetSiteDraining { site_id, draining })
    }
}

impl Request<MaintenanceWindow> {
    /// Schedule a maintenance window.
    pub fn schedule_maintenance(
        target: MaintenanceTarget,
        start_ms: u64,
        end_ms: u64,
        reason: String,
    ) -> Self {
        Self::new(Command::ScheduleMaintenance {
            target,
            start_ms,
            end_ms,
            reason,
        })
    }

    /// Cancel a window.
    pub fn cancel_maintenance(window_id: u64) -> Self {
        Self::new(Command::CancelMaintenance { window_id })
    }

    /// The leader started or ended a window.
    pub fn maintenance_phase(window_id: u64, phase: MaintenancePhase) -> Self {
        Self::new(Command::MaintenancePhase { window_id, phase })
    }
}

impl Request<Audited> {
    /// Record an admin action that is not a command.
    pub fn record_audit(action: String, result: String) -> Self {
        Self::new(Command::RecordAudit { action, result })
    }
}

impl Request<RestoreProgress> {
    /// Begin restoring a backup.
    pub fn restore_begin(backup_era: u64, rows_expected: u64) -> Self {
        Self::new(Command::RestoreBegin {
            backup_era,
            rows_expected,
        })
    }

    /// One chunk of a backup's rows.
    pub fn restore_rows(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Self::new(Command::RestoreRows { rows })
    }
}

impl Request<Restored> {
    /// Replace the state with the staged backup.
    pub fn restore_commit(keep_backup_keys: bool) -> Self {
        Self::new(Command::RestoreCommit { keep_backup_keys })
    }
}

impl Request<()> {
    /// Drop a staged backup.
    pub fn restore_abort() -> Self {
        Self::new(Command::RestoreAbort)
    }
}

/// Reads `reply` as the answer of `command`'s kind; panics if its shape is
/// another. The state machine's tests call it after every command they apply.
#[cfg(test)]
pub(crate) fn assert_answer_shape(command: &Command, reply: &Reply) {
    let reply = reply.clone();
    let _ = match command {
        Command::RegisterRelay(_)
        | Command::SetRelayState { .. }
        | Command::RelayDown { .. }
        | Command::RelayUp { .. }
        | Command::DrainBatch { .. }
        | Command::StartDrain { .. } => reply.answer::<RelayChange>().map(drop),
        Command::RemoveRelay { .. } => reply.answer::<RelayId>().map(drop),
        Command::AttachHost { .. } => reply.answer::<RouteView>().map(drop),
        Command::DetachHost { .. } => reply.answer::<Detached>().map(drop),
        Command::AddSigningKey(_) | Command::SetNotice { .. } => {
            reply.answer::<NodeInfoVersion>().map(drop)
        }
        Command::SetSiteDraining { .. } => reply.answer::<SiteDraining>().map(drop),
        Command::ScheduleMaintenance { .. }
        | Command::CancelMaintenance { .. }
        | Command::MaintenancePhase { .. } => reply.answer::<MaintenanceWindow>().map(drop),
        Command::RecordAudit { .. } => reply.answer::<Audited>().map(drop),
        Command::RestoreBegin { .. } | Command::RestoreRows { .. } => {
            reply.answer::<RestoreProgress>().map(drop)
        }
        Command::RestoreCommit { .. } => reply.answer::<Restored>().map(drop),
        Command::RestoreAbort => reply.answer::<()>().map(drop),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_an_error_and_an_answer_carries_its_log_index() {
        let refused = Reply {
            log_index: 3,
            outcome: Outcome::Refused(Refusal::new(
                crate::reply::RefusalCode::NotFound,
                "no such window",
            )),
        };
        assert_eq!(
            refused.answer::<MaintenanceWindow>().unwrap_err().message,
            "no such window"
        );
        let noted = Reply {
            log_index: 4,
            outcome: Outcome::Audited {
                result: "ok".into(),
            },
        };
        let applied = noted.answer::<Audited>().unwrap();
        assert_eq!(
            (applied.log_index, applied.answer.result.as_str()),
            (4, "ok")
        );
    }

    /// The checker the state machine's tests rely on does reject an outcome
    /// of the wrong shape.
    #[test]
    #[should_panic(expected = "apply answered with")]
    fn an_outcome_of_another_shape_is_a_bug_not_an_answer() {
        let reply = Reply {
            log_index: 1,
            outcome: Outcome::Noop,
        };
        assert_answer_shape(
            &Command::DetachHost {
                host_id: HostId::new("h").unwrap(),
            },
            &reply,
        );
    }
}
