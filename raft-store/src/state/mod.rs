//! The pure, deterministic state machine.
//!
//! `State::apply(log_index, proposal, changes) -> Reply` reads no clock, draws
//! no random number and does no I/O: time arrives inside the proposal, and the
//! rows it touched are noted in a [`ChangeSet`] for the store to write. The
//! same log therefore gives the same state, byte for byte, on every site.
//!
//! This file holds the state, its reads and the dispatch of commands; the
//! commands themselves live by subject: `relays` (registration, liveness,
//! admin states, drain batches, removal), `hosts` (attach, detach,
//! placement's bookkeeping), `epochs` (membership mirror, node-info epochs,
//! signing keys), `operations` (drains, maintenance, audit, restores);
//! `persist` turns the state into rows and back, `invariants` checks it.

mod epochs;
mod hosts;
mod invariants;
mod operations;
mod persist;
mod placement;
mod records;
mod relays;
mod request_log;
mod route_table;
mod rows;

use imbl::OrdMap;

pub use self::epochs::SIGNING_KEYS_KEPT_MAX;
pub use self::operations::AUDIT_RECORDS_MAX;
pub use self::placement::choose_relay;
pub use self::placement::room_elsewhere;
pub use self::records::AdminState;
pub use self::records::AuditRecord;
pub use self::records::DrainPlan;
pub use self::records::Endorsement;
pub use self::records::MaintenanceTarget;
pub use self::records::MaintenanceWindow;
pub use self::records::Meta;
pub use self::records::NodeInfoMeta;
pub use self::records::RelayRecord;
pub use self::records::RelayState;
pub use self::records::RequestRecord;
pub use self::records::RestoreStaging;
pub use self::records::RouteRecord;
pub use self::records::RouteView;
pub use self::records::SigningKeyRecord;
pub use self::records::SiteRecord;
pub use self::records::WindowStatus;
pub use self::relays::FLAP_DOWNS_MAX;
pub use self::relays::FLAP_HOLD_MS;
pub use self::relays::FLAP_WINDOW_MS;
pub use self::relays::RELAY_DOWN_BATCH_HOSTS;
pub use self::relays::RELAY_WARMUP_MS;
pub use self::request_log::REQUEST_RETENTION_MS;
pub use self::request_log::REQUESTS_RETAINED_MAX;
pub use self::request_log::RequestLog;
pub use self::route_table::RouteTable;
pub use self::rows::ChangeSet;
pub use self::rows::ROW_FORMAT_VERSION;
pub use self::rows::RouteChange;
pub use self::rows::RowKey;
pub use self::rows::decode_value;
pub use self::rows::encode_value;
use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::Command;
use crate::command::Proposal;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::ids::SiteId;
use crate::reply::Outcome;
use crate::reply::Refusal;
use crate::reply::RefusalCode;
use crate::reply::Reply;

/// Everything the cluster agrees on, apart from what openraft itself keeps
/// (membership, vote, log). Cloning is O(1): all maps are persistent.
#[derive(Clone, Debug, Default)]
pub struct State {
    meta: Meta,
    relays: OrdMap<RelayId, RelayRecord>,
    /// Removed relays, with when they were removed: their certificates are
    /// refused until an operator registers them again.
    removed_relays: OrdMap<RelayId, u64>,
    routes: RouteTable,
    requests: RequestLog,
    node_info: NodeInfoMeta,
    /// The sites, mirrored from Raft membership for node info.
    sites: OrdMap<SiteId, SiteRecord>,
    windows: OrdMap<u64, MaintenanceWindow>,
    audit: OrdMap<u64, AuditRecord>,
    restore: Option<RestoreStaging>,
    restore_rows: OrdMap<Vec<u8>, Vec<u8>>,
    /// The staged rows decoded, one chunk per `RestoreRows`, so a commit
    /// swaps it in instead of decoding the whole backup in one apply.
    /// Derived from `restore_rows`: not a row of its own.
    restore_staged: Option<Box<State>>,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        State::default()
    }

    // ----- reads -----

    /// The state's clock, in Unix milliseconds.
    pub fn clock_ms(&self) -> u64 {
        self.meta.clock_ms
    }

    /// The last route generation handed out.
    pub fn last_generation(&self) -> u64 {
        self.meta.last_generation
    }

    /// One relay.
    pub fn relay(&self, relay_id: &RelayId) -> Option<&RelayRecord> {
        self.relays.get(relay_id)
    }

    /// All relays, in id order.
    pub fn relays(&self) -> impl Iterator<Item = &RelayRecord> {
        self.relays.values()
    }

    /// Whether a relay was removed (and not registered again by an operator).
    pub fn is_removed_relay(&self, relay_id: &RelayId) -> bool {
        self.removed_relays.contains_key(relay_id)
    }

    /// Node info's era, epoch, notice and keys.
    pub fn node_info(&self) -> &NodeInfoMeta {
        &self.node_info
    }

    /// The sites, in id order.
    pub fn sites(&self) -> impl Iterator<Item = (&SiteId, &SiteRecord)> {
        self.sites.iter()
    }

    /// The route table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Remembered answers.
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// A host's route with its relay's current endpoint.
    pub fn route(&self, host_id: &HostId) -> Option<RouteView> {
        let route = self.routes.get(host_id)?;
        Some(self.view(host_id, route))
    }

    fn view(&self, host_id: &HostId, route: &RouteRecord) -> RouteView {
        let relay = self
            .relays
            .get(&route.relay_id)
            .expect("every route names a known relay");
        RouteView {
            host_id: host_id.clone(),
            relay_id: route.relay_id.clone(),
            relay_endpoint: relay.endpoint.clone(),
            generation: route.generation,
            since_ms: route.since_ms,
            preferred_region: route.preferred_region.clone(),
        }
    }

    // ----- apply -----

    /// Applies one proposal at `log_index`. Pure: the result depends only on
    /// the state and the arguments.
    pub fn apply(&mut self, log_index: u64, proposal: &Proposal, changes: &mut ChangeSet) -> Reply {
        if proposal.issued_at_ms > self.meta.clock_ms {
            self.meta.clock_ms = proposal.issued_at_ms;
            changes.touch(RowKey::Meta);
        }

        let digest = (!proposal.request_id.is_none()).then(|| proposal.command_digest());
        if let Some(digest) = digest
            && let Some(seen) = self.requests.get(proposal.request_id)
        {
            if seen.command_digest == digest {
                return seen.reply.clone();
            }
            let refusal = Refusal::new(
                RefusalCode::InvalidArgument,
                format!(
                    "request id {} was already used for a different command",
                    proposal.request_id
                ),
            );
            return Reply {
                log_index,
                outcome: Outcome::Refused(refusal),
            };
        }

        let outcome = match proposal.command.validate() {
            Ok(()) => self.execute(log_index, &proposal.command, &proposal.actor, changes),
            Err(error) => Outcome::Refused(Refusal::new(
                RefusalCode::InvalidArgument,
                error.to_string(),
            )),
        };
        let reply = Reply { log_index, outcome };

        if let Some(command_digest) = digest {
            let record = RequestRecord {
                command_digest,
                reply: reply.clone(),
                applied_at_ms: self.meta.clock_ms,
            };
            self.requests.insert(proposal.request_id, record);
            changes.touch(RowKey::Request(proposal.request_id));
        }
        for evicted in self.requests.evict(self.meta.clock_ms) {
            changes.touch(RowKey::Request(evicted));
        }
        reply
    }

    fn execute(
        &mut self,
        log_index: u64,
        command: &Command,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let admin_only = matches!(
            command,
            Command::RestoreBegin { .. }
                | Command::RestoreRows { .. }
                | Command::RestoreCommit { .. }
                | Command::RestoreAbort
        );
        if admin_only && !matches!(actor.kind, ActorKind::Admin | ActorKind::Anonymous) {
            return refused(
                RefusalCode::PermissionDenied,
                "only an operator may restore a backup".into(),
            );
        }
        let outcome = self.execute_command(command, actor, changes);
        if command.is_audited()
            && !matches!(outcome, Outcome::Refused(_) if actor.kind == ActorKind::System)
        {
            let result = match &outcome {
                Outcome::Refused(refusal) => format!("refused: {}", refusal.message),
                _ => "ok".to_owned(),
            };
            self.record_audit(log_index, actor, command.describe(), result, changes);
        }
        outcome
    }

    fn execute_command(
        &mut self,
        command: &Command,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        match command {
            Command::RegisterRelay(registration) => {
                self.register_relay(registration, actor, changes)
            }
            Command::SetRelayState { relay_id, target } => {
                self.set_relay_state(relay_id, *target, changes)
            }
            Command::RelayDown {
                relay_id,
                incarnation,
            } => self.relay_down(relay_id, *incarnation, changes),
            Command::RemoveRelay { relay_id } => self.remove_relay(relay_id, changes),
            Command::AttachHost {
                host_id,
                preferred_region,
            } => self.attach_host(host_id, preferred_region, changes),
            Command::DetachHost { host_id } => self.detach_host(host_id, changes),
            Command::DrainBatch {
                relay_id,
                hosts_max,
            } => self.drain_batch(relay_id, *hosts_max, changes),
            Command::RelayUp {
                relay_id,
                incarnation,
            } => self.relay_up(relay_id, *incarnation, changes),
            Command::AddSigningKey(key) => self.add_signing_key(key, changes),
            Command::SetNotice { text } => {
                if self.node_info.notice != *text {
                    self.node_info.notice = text.clone();
                    self.bump_epoch(changes);
                }
                self.node_info_outcome()
            }
            Command::StartDrain {
                relay_id,
                hosts_per_second,
                deadline_ms,
                force,
            } => self.start_drain(relay_id, *hosts_per_second, *deadline_ms, *force, changes),
            Command::SetSiteDraining { site_id, draining } => {
                self.set_site_draining(*site_id, *draining, changes)
            }
            Command::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                reason,
            } => self.schedule_maintenance(target, *start_ms, *end_ms, reason, actor, changes),
            Command::CancelMaintenance { window_id } => {
                self.cancel_maintenance(*window_id, changes)
            }
            Command::MaintenancePhase { window_id, phase } => {
                self.maintenance_phase(*window_id, *phase, changes)
            }
            Command::RecordAudit { result, .. } => Outcome::Audited {
                result: result.clone(),
            },
            Command::RestoreBegin {
                backup_era,
                rows_expected,
            } => self.restore_begin(*backup_era, *rows_expected, actor, changes),
            Command::RestoreRows { rows } => self.restore_rows(rows, changes),
            Command::RestoreCommit { keep_backup_keys } => {
                self.restore_commit(*keep_backup_keys, changes)
            }
            Command::RestoreAbort => self.restore_abort(changes),
        }
    }
}

fn refused(code: RefusalCode, message: String) -> Outcome {
    Outcome::Refused(Refusal::new(code, message))
}

#[cfg(test)]
mod tests;
