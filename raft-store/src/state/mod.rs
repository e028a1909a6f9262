//! The pure, deterministic state machine.
//!
//! `State::apply(log_index, proposal, changes) -> Reply` reads no clock, draws
//! no random number and does no I/O: time arrives inside the proposal, and the
//! rows it touched are noted in a [`ChangeSet`] for the store to write. The
//! same log therefore gives the same state, byte for byte, on every site.

mod operations;
mod placement;
mod records;
mod request_log;
mod route_table;
mod rows;

use imbl::OrdMap;

pub use self::operations::AUDIT_RECORDS_MAX;
pub use self::placement::choose_relay;
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
use crate::command::NewSigningKey;
use crate::command::Proposal;
use crate::command::RelayAdminTarget;
use crate::command::RelayRegistration;
use crate::error::Error;
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

    /// Mirrors Raft membership (applied from a membership entry): sites with
    /// their API address and whether they vote. A changed list is a new
    /// node-info epoch.
    pub fn apply_membership(
        &mut self,
        sites: Vec<(SiteId, String, String, bool)>,
        changes: &mut ChangeSet,
    ) {
        let mut next: OrdMap<SiteId, SiteRecord> = OrdMap::new();
        for (id, name, api_addr, voter) in sites {
            let draining = self.sites.get(&id).is_some_and(|site| site.draining);
            next.insert(
                id,
                SiteRecord {
                    name,
                    api_addr,
                    voter,
                    draining,
                },
            );
        }
        if next == self.sites {
            return;
        }
        for id in self.sites.keys().chain(next.keys()) {
            changes.touch(RowKey::Site(*id));
        }
        self.sites = next;
        self.bump_epoch(changes);
    }

    /// Starts a new node-info era (a recovery or restore lost history):
    /// documents of the old era never outrank the new ones.
    pub fn start_new_era(&mut self, changes: &mut ChangeSet) {
        self.node_info.era += 1;
        self.bump_epoch(changes);
    }

    /// Node info's content changed: a new epoch, issued now.
    fn bump_epoch(&mut self, changes: &mut ChangeSet) {
        self.node_info.epoch += 1;
        self.node_info.epoch_since_ms = self.meta.clock_ms;
        changes.touch(RowKey::NodeInfo);
    }

    fn node_info_outcome(&self) -> Outcome {
        Outcome::NodeInfo {
            era: self.node_info.era,
            epoch: self.node_info.epoch,
        }
    }

    fn add_signing_key(&mut self, key: &NewSigningKey, changes: &mut ChangeSet) -> Outcome {
        match (self.node_info.current_key(), &key.endorsement) {
            (None, _) => self.node_info.cluster_id = key.cluster_id.clone(),
            (Some(current), Some(endorsement)) => {
                if endorsement.by_key_id != current.key_id || key.key_id <= current.key_id {
                    return refused(
                        RefusalCode::FailedPrecondition,
                        format!(
                            "a new key must follow key {} and be endorsed by it",
                            current.key_id
                        ),
                    );
                }
                if key.cluster_id != self.node_info.cluster_id {
                    return refused(
                        RefusalCode::InvalidArgument,
                        "the key names another cluster".into(),
                    );
                }
            }
            (Some(current), None) => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!(
                        "signing key {} exists; a new key needs its endorsement",
                        current.key_id
                    ),
                );
            }
        }
        self.node_info.keys.push(SigningKeyRecord {
            key_id: key.key_id,
            public_key: key.public_key.clone(),
            sealed_private_key: key.sealed_private_key.clone(),
            endorsement: key.endorsement.clone(),
            added_at_ms: self.meta.clock_ms,
        });
        let excess = self
            .node_info
            .keys
            .len()
            .saturating_sub(SIGNING_KEYS_KEPT_MAX);
        self.node_info.keys.drain(..excess);
        self.bump_epoch(changes);
        self.node_info_outcome()
    }

    fn register_relay(
        &mut self,
        registration: &RelayRegistration,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let relay_id = registration.relay_id.clone();
        if self.removed_relays.contains_key(&relay_id) {
            if !matches!(actor.kind, ActorKind::Admin | ActorKind::Anonymous) {
                return refused(
                    RefusalCode::PermissionDenied,
                    format!("relay {relay_id} was removed; only an operator can register it again"),
                );
            }
            self.removed_relays.remove(&relay_id);
            changes.touch(RowKey::RemovedRelay(relay_id.clone()));
        }
        let record = match self.relays.get(&relay_id) {
            None => RelayRecord {
                relay_id: relay_id.clone(),
                endpoint: registration.endpoint.clone(),
                region: registration.region.clone(),
                labels: registration.labels.clone(),
                capacity: registration.capacity,
                incarnation: registration.incarnation,
                admin_state: AdminState::Active,
                live: true,
                route_count: 0,
                registered_at_ms: now,
                state_since_ms: now,
                warm_until_ms: now.saturating_add(RELAY_WARMUP_MS),
                held_out_until_ms: 0,
                recent_downs_ms: Vec::new(),
                drain: None,
            },
            Some(existing) => {
                if registration.incarnation < existing.incarnation {
                    return refused(
                        RefusalCode::FailedPrecondition,
                        format!(
                            "relay {relay_id} is registered with incarnation {}, newer than {}",
                            existing.incarnation, registration.incarnation
                        ),
                    );
                }
                let mut updated = existing.clone();
                updated.endpoint = registration.endpoint.clone();
                updated.region = registration.region.clone();
                updated.labels = registration.labels.clone();
                updated.capacity = registration.capacity;
                updated.incarnation = registration.incarnation;
                mark_live(&mut updated, now);
                updated
            }
        };
        let listed_differently = self
            .relays
            .get(&relay_id)
            .is_none_or(|old| old.endpoint != record.endpoint || old.region != record.region);
        self.relays.insert(relay_id.clone(), record.clone());
        changes.touch(RowKey::Relay(relay_id));
        if listed_differently {
            self.bump_epoch(changes);
        }
        Outcome::Relay(record)
    }

    fn set_relay_state(
        &mut self,
        relay_id: &RelayId,
        target: RelayAdminTarget,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        let next = match (target, relay.admin_state) {
            (RelayAdminTarget::Active, _) => AdminState::Active,
            (RelayAdminTarget::Draining, AdminState::Active | AdminState::Draining) => {
                if relay.route_count == 0 {
                    AdminState::Drained
                } else {
                    AdminState::Draining
                }
            }
            (RelayAdminTarget::Draining, AdminState::Drained) => AdminState::Drained,
            (RelayAdminTarget::Draining, AdminState::Maintenance) => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!("relay {relay_id} is in maintenance"),
                );
            }
            (RelayAdminTarget::Maintenance, _) if relay.route_count > 0 => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!(
                        "relay {relay_id} still holds {} routes; drain it first",
                        relay.route_count
                    ),
                );
            }
            (RelayAdminTarget::Maintenance, _) => AdminState::Maintenance,
        };
        self.set_admin_state(relay_id, next, changes);
        Outcome::Relay(self.relays[relay_id].clone())
    }

    fn set_admin_state(&mut self, relay_id: &RelayId, next: AdminState, changes: &mut ChangeSet) {
        let now = self.meta.clock_ms;
        let relay = self
            .relays
            .get_mut(relay_id)
            .expect("caller checked the relay exists");
        if relay.admin_state != next {
            relay.admin_state = next;
            relay.state_since_ms = now;
            if next != AdminState::Draining {
                relay.drain = None;
            }
            changes.touch(RowKey::Relay(relay_id.clone()));
            self.bump_epoch(changes);
        }
    }

    fn relay_up(
        &mut self,
        relay_id: &RelayId,
        incarnation: u64,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let Some(relay) = self.relays.get_mut(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if let Some(refusal) = stale_incarnation(relay, incarnation) {
            return refusal;
        }
        if !relay.live {
            mark_live(relay, now);
            changes.touch(RowKey::Relay(relay_id.clone()));
        }
        Outcome::Relay(relay.clone())
    }

    fn relay_down(
        &mut self,
        relay_id: &RelayId,
        incarnation: u64,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if let Some(refusal) = stale_incarnation(relay, incarnation) {
            return refusal;
        }
        if relay.live {
            let now = self.meta.clock_ms;
            let relay = self.relays.get_mut(relay_id).expect("looked up above");
            relay.live = false;
            relay.state_since_ms = now;
            relay
                .recent_downs_ms
                .retain(|at| now.saturating_sub(*at) <= FLAP_WINDOW_MS);
            relay.recent_downs_ms.push(now);
            let excess = relay.recent_downs_ms.len().saturating_sub(FLAP_DOWNS_MAX);
            relay.recent_downs_ms.drain(..excess);
            changes.touch(RowKey::Relay(relay_id.clone()));
        }
        let (hosts_moved, hosts_unplaced) = self.move_hosts_off(relay_id, u32::MAX, changes);
        Outcome::RelayMoved {
            relay: self.relays[relay_id].clone(),
            hosts_moved,
            hosts_unplaced,
        }
    }

    fn drain_batch(
        &mut self,
        relay_id: &RelayId,
        hosts_max: u32,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if relay.admin_state != AdminState::Draining {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "relay {relay_id} is {}, not draining",
                    relay.state().as_str()
                ),
            );
        }
        let (hosts_moved, hosts_unplaced) = self.move_hosts_off(relay_id, hosts_max, changes);
        Outcome::RelayMoved {
            relay: self.relays[relay_id].clone(),
            hosts_moved,
            hosts_unplaced,
        }
    }

    /// Moves up to `hosts_max` hosts off a relay, in host-id order. A host for
    /// which no relay has room keeps its route. Returns (moved, unplaced).
    fn move_hosts_off(
        &mut self,
        relay_id: &RelayId,
        hosts_max: u32,
        changes: &mut ChangeSet,
    ) -> (u32, u32) {
        let hosts: Vec<HostId> = self.routes.hosts_on(relay_id).cloned().collect();
        let mut moved = 0u32;
        let mut unplaced = 0u32;
        for host_id in hosts {
            if moved == hosts_max {
                break;
            }
            let region = self
                .routes
                .get(&host_id)
                .expect("indexed host has a route")
                .preferred_region
                .clone();
            let target = choose_relay(
                self.relays.values(),
                &region,
                Some(relay_id),
                self.meta.clock_ms,
            )
            .map(|r| r.relay_id.clone());
            match target {
                Some(target) => {
                    self.place(&host_id, &target, region, changes);
                    moved += 1;
                }
                None => unplaced += 1,
            }
        }
        (moved, unplaced)
    }

    fn remove_relay(&mut self, relay_id: &RelayId, changes: &mut ChangeSet) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if relay.route_count > 0 {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "relay {relay_id} still holds {} routes; drain it first",
                    relay.route_count
                ),
            );
        }
        self.relays.remove(relay_id);
        changes.touch(RowKey::Relay(relay_id.clone()));
        self.removed_relays
            .insert(relay_id.clone(), self.meta.clock_ms);
        changes.touch(RowKey::RemovedRelay(relay_id.clone()));
        self.bump_epoch(changes);
        Outcome::RelayRemoved {
            relay_id: relay_id.clone(),
        }
    }

    fn attach_host(
        &mut self,
        host_id: &HostId,
        preferred_region: &str,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let current = self.routes.get(host_id).cloned();
        if let Some(route) = &current {
            let relay = self
                .relays
                .get(&route.relay_id)
                .expect("every route names a known relay");
            if relay.live && relay.admin_state == AdminState::Active {
                if route.preferred_region != preferred_region {
                    let mut updated = route.clone();
                    updated.preferred_region = preferred_region.to_owned();
                    self.routes.insert(host_id.clone(), updated);
                    changes.touch(RowKey::Route(host_id.clone()));
                }
                return Outcome::Route(self.route(host_id).expect("route exists"));
            }
        }
        let exclude = current.as_ref().map(|route| &route.relay_id);
        let target = choose_relay(
            self.relays.values(),
            preferred_region,
            exclude,
            self.meta.clock_ms,
        )
        .map(|r| r.relay_id.clone());
        match (target, current) {
            (Some(target), _) => {
                self.place(host_id, &target, preferred_region.to_owned(), changes);
                Outcome::Route(self.route(host_id).expect("just placed"))
            }
            (None, Some(route)) => refused(
                RefusalCode::ResourceExhausted,
                format!(
                    "no active relay has room for host {host_id}; it keeps its route on {}",
                    route.relay_id
                ),
            ),
            (None, None) => refused(
                RefusalCode::ResourceExhausted,
                format!("no active relay has room for host {host_id}"),
            ),
        }
    }

    fn detach_host(&mut self, host_id: &HostId, changes: &mut ChangeSet) -> Outcome {
        match self.routes.remove(host_id) {
            Some(route) => {
                changes.touch(RowKey::Route(host_id.clone()));
                changes.route_changed(RouteChange {
                    host_id: host_id.clone(),
                    previous: Some((route.relay_id.clone(), route.generation)),
                    current: None,
                });
                self.release(&route.relay_id, changes);
                Outcome::Detached {
                    host_id: host_id.clone(),
                    was_attached: true,
                    last_generation: route.generation,
                }
            }
            None => Outcome::Detached {
                host_id: host_id.clone(),
                was_attached: false,
                last_generation: 0,
            },
        }
    }

    /// Routes a host to `target` under the next generation.
    fn place(
        &mut self,
        host_id: &HostId,
        target: &RelayId,
        preferred_region: String,
        changes: &mut ChangeSet,
    ) {
        self.meta.last_generation += 1;
        changes.touch(RowKey::Meta);
        let route = RouteRecord {
            relay_id: target.clone(),
            generation: self.meta.last_generation,
            since_ms: self.meta.clock_ms,
            preferred_region,
        };
        let relay = self
            .relays
            .get_mut(target)
            .expect("placement picks a known relay");
        assert!(
            relay.route_count < relay.capacity,
            "placement never exceeds capacity"
        );
        relay.route_count += 1;
        changes.touch(RowKey::Relay(target.clone()));
        changes.touch(RowKey::Route(host_id.clone()));
        let generation = route.generation;
        let previous = self.routes.insert(host_id.clone(), route);
        changes.route_changed(RouteChange {
            host_id: host_id.clone(),
            previous: previous
                .as_ref()
                .map(|p| (p.relay_id.clone(), p.generation)),
            current: Some((target.clone(), generation)),
        });
        if let Some(previous) = previous {
            self.release(&previous.relay_id, changes);
        }
    }

    /// One route left a relay; a draining relay that holds none is drained.
    fn release(&mut self, relay_id: &RelayId, changes: &mut ChangeSet) {
        let relay = self
            .relays
            .get_mut(relay_id)
            .expect("every route names a known relay");
        relay.route_count = relay
            .route_count
            .checked_sub(1)
            .expect("a relay's route count matches its routes");
        changes.touch(RowKey::Relay(relay_id.clone()));
        if relay.route_count == 0 && relay.admin_state == AdminState::Draining {
            self.set_admin_state(relay_id, AdminState::Drained, changes);
        }
    }

    // ----- rows -----

    /// The encoded value of one row, or `None` if the row does not exist.
    pub fn row_value(&self, key: &RowKey) -> Option<Vec<u8>> {
        match key {
            RowKey::Meta => Some(encode_value(&self.meta)),
            RowKey::NodeInfo => Some(encode_value(&self.node_info)),
            RowKey::Site(id) => self.sites.get(id).map(encode_value),
            RowKey::Relay(id) => self.relays.get(id).map(encode_value),
            RowKey::RemovedRelay(id) => self.removed_relays.get(id).map(encode_value),
            RowKey::Route(id) => self.routes.get(id).map(encode_value),
            RowKey::Request(id) => self.requests.get(*id).map(encode_value),
            RowKey::Window(id) => self.windows.get(id).map(encode_value),
            RowKey::Audit(seq) => self.audit.get(seq).map(encode_value),
            RowKey::RestoreMeta => self.restore.as_ref().map(encode_value),
            RowKey::RestoreRow(key) => self.restore_rows.get(key).cloned(),
        }
    }

    /// Every row, in key order: the body of a snapshot.
    pub fn rows(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let meta = [
            (RowKey::Meta.encode(), encode_value(&self.meta)),
            (RowKey::NodeInfo.encode(), encode_value(&self.node_info)),
        ]
        .into_iter();
        let sites = self
            .sites
            .iter()
            .map(|(id, site)| (RowKey::Site(*id).encode(), encode_value(site)));
        let relays = self
            .relays
            .iter()
            .map(|(id, r)| (RowKey::Relay(id.clone()).encode(), encode_value(r)));
        let removed = self
            .removed_relays
            .iter()
            .map(|(id, at)| (RowKey::RemovedRelay(id.clone()).encode(), encode_value(at)));
        let routes = self
            .routes
            .iter()
            .map(|(id, r)| (RowKey::Route(id.clone()).encode(), encode_value(r)));
        let requests = self
            .requests
            .iter()
            .map(|(id, r)| (RowKey::Request(*id).encode(), encode_value(r)));
        let windows = self
            .windows
            .iter()
            .map(|(id, w)| (RowKey::Window(*id).encode(), encode_value(w)));
        let audit = self
            .audit
            .iter()
            .map(|(seq, a)| (RowKey::Audit(*seq).encode(), encode_value(a)));
        let restore_meta = self
            .restore
            .iter()
            .map(|r| (RowKey::RestoreMeta.encode(), encode_value(r)));
        let restore_rows = self
            .restore_rows
            .iter()
            .map(|(k, v)| (RowKey::RestoreRow(k.clone()).encode(), v.clone()));
        meta.chain(sites)
            .chain(relays)
            .chain(removed)
            .chain(routes)
            .chain(requests)
            .chain(windows)
            .chain(audit)
            .chain(restore_meta)
            .chain(restore_rows)
    }

    /// Rebuilds a state from its rows (any order) and checks it.
    pub fn from_rows<K, V>(rows: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut state = State::default();
        for (key, value) in rows {
            let value = value.as_ref();
            match RowKey::decode(key.as_ref())? {
                RowKey::Meta => state.meta = decode_value("meta row", value)?,
                RowKey::NodeInfo => state.node_info = decode_value("node info row", value)?,
                RowKey::Site(id) => {
                    state.sites.insert(id, decode_value("site row", value)?);
                }
                RowKey::Relay(id) => {
                    let record: RelayRecord = decode_value("relay row", value)?;
                    if record.relay_id != id {
                        return Err(Error::Corrupt {
                            what: "relay row",
                            reason: format!("key {id} holds {}", record.relay_id),
                        });
                    }
                    state.relays.insert(id, record);
                }
                RowKey::RemovedRelay(id) => {
                    state
                        .removed_relays
                        .insert(id, decode_value("removed relay row", value)?);
                }
                RowKey::Route(id) => {
                    state.routes.insert(id, decode_value("route row", value)?);
                }
                RowKey::Request(id) => state
                    .requests
                    .insert(id, decode_value("request row", value)?),
                RowKey::Window(id) => {
                    state
                        .windows
                        .insert(id, decode_value("maintenance window row", value)?);
                }
                RowKey::Audit(seq) => {
                    state.audit.insert(seq, decode_value("audit row", value)?);
                }
                RowKey::RestoreMeta => state.restore = Some(decode_value("restore row", value)?),
                RowKey::RestoreRow(key) => {
                    state.restore_rows.insert(key, value.to_vec());
                }
            }
        }
        state.check_invariants().map_err(|reason| Error::Corrupt {
            what: "state",
            reason,
        })?;
        Ok(state)
    }

    /// Checks every invariant of the state; O(size), for loading and tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut generations = std::collections::BTreeSet::new();
        for (host_id, route) in self.routes.iter() {
            let Some(relay) = self.relays.get(&route.relay_id) else {
                return Err(format!(
                    "host {host_id} routes to unknown relay {}",
                    route.relay_id
                ));
            };
            if route.generation == 0 || route.generation > self.meta.last_generation {
                return Err(format!(
                    "host {host_id} has generation {} outside 1..={}",
                    route.generation, self.meta.last_generation
                ));
            }
            if !generations.insert(route.generation) {
                return Err(format!("generation {} is used twice", route.generation));
            }
            if matches!(
                relay.admin_state,
                AdminState::Drained | AdminState::Maintenance
            ) {
                return Err(format!(
                    "host {host_id} routes to {} relay {}",
                    relay.state().as_str(),
                    relay.relay_id
                ));
            }
        }
        for relay in self.relays.values() {
            let held = self.routes.count_on(&relay.relay_id);
            if held != relay.route_count as usize {
                return Err(format!(
                    "relay {} counts {} routes but holds {held}",
                    relay.relay_id, relay.route_count
                ));
            }
        }
        for (id, record) in self.requests.iter() {
            if record.applied_at_ms > self.meta.clock_ms {
                return Err(format!("request {id} applied after the state clock"));
            }
        }
        Ok(())
    }
}

/// A relay that is new stays out of placement (unless nothing else has room)
/// for this long, so a fresh or restarted relay is not handed a stampede.
pub const RELAY_WARMUP_MS: u64 = 30_000;
/// Lease losses within this window count towards flapping.
pub const FLAP_WINDOW_MS: u64 = 10 * 60 * 1000;
/// This many lease losses within the window make a relay a flapper.
pub const FLAP_DOWNS_MAX: usize = 3;
/// A flapping relay is held out of placement this long after it comes back.
pub const FLAP_HOLD_MS: u64 = 5 * 60 * 1000;
/// Signing keys kept (the newest signs; older ones stay so clients that
/// missed rotations can follow the endorsements).
pub const SIGNING_KEYS_KEPT_MAX: usize = 8;

/// A relay heard from again: live, and held out of placement if it has
/// lost its lease `FLAP_DOWNS_MAX` times within `FLAP_WINDOW_MS`.
fn mark_live(relay: &mut RelayRecord, now: u64) {
    if relay.live {
        return;
    }
    relay.live = true;
    relay.state_since_ms = now;
    let recent = relay
        .recent_downs_ms
        .iter()
        .filter(|at| now.saturating_sub(**at) <= FLAP_WINDOW_MS)
        .count();
    if recent >= FLAP_DOWNS_MAX {
        relay.held_out_until_ms = now.saturating_add(FLAP_HOLD_MS);
    }
}

fn refused(code: RefusalCode, message: String) -> Outcome {
    Outcome::Refused(Refusal::new(code, message))
}

/// The refusal of a verdict about an incarnation the relay has left behind.
fn stale_incarnation(relay: &RelayRecord, incarnation: u64) -> Option<Outcome> {
    (relay.incarnation != incarnation).then(|| {
        refused(
            RefusalCode::FailedPrecondition,
            format!(
                "relay {} is at incarnation {}, not {incarnation}",
                relay.relay_id, relay.incarnation
            ),
        )
    })
}

#[cfg(test)]
mod tests;
