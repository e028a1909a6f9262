//! Operations on the state: relay drains, site drains, maintenance
//! windows, the audit log and restores from a backup.

use imbl::OrdMap;

use super::AuditRecord;
use super::ChangeSet;
use super::DrainPlan;
use super::MaintenanceTarget;
use super::MaintenanceWindow;
use super::NodeInfoMeta;
use super::RestoreStaging;
use super::RowKey;
use super::State;
use super::WindowStatus;
use super::refused;
use super::rows::decode_value;
use crate::command::Actor;
use crate::command::MaintenancePhase;
use crate::ids::RelayId;
use crate::reply::Outcome;
use crate::reply::RefusalCode;
use crate::state::AdminState;
use crate::state::placement::room_elsewhere;

/// Audit records kept; past this the oldest go first.
pub const AUDIT_RECORDS_MAX: usize = 10_000;
/// Finished (done or cancelled) windows kept for the record.
pub const FINISHED_WINDOWS_MAX: usize = 1_000;
/// Windows scheduled or active at once.
pub const OPEN_WINDOWS_MAX: usize = 1_000;
/// Rows a restore may stage: ten times the route table of a large cluster.
pub const RESTORE_ROWS_MAX: u64 = 50_000_000;

impl State {
    /// Maintenance windows, by id.
    pub fn windows(&self) -> impl Iterator<Item = &MaintenanceWindow> {
        self.windows.values()
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> impl DoubleEndedIterator<Item = &AuditRecord> {
        self.audit.values()
    }

    /// The restore in progress, if any.
    pub fn restore(&self) -> Option<&RestoreStaging> {
        self.restore.as_ref()
    }

    /// The node-info meta of the backup being restored (its signing keys),
    /// if that row arrived.
    pub fn staged_node_info(&self) -> Option<NodeInfoMeta> {
        let bytes = self.restore_rows.get(&RowKey::NodeInfo.encode())?;
        decode_value("staged node info", bytes).ok()
    }

    pub(super) fn start_drain(
        &mut self,
        relay_id: &RelayId,
        hosts_per_second: u32,
        deadline_ms: u64,
        force: bool,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        let room = room_elsewhere(self.relays.values(), relay_id, now);
        if !force && room < u64::from(relay.route_count) {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "relay {relay_id} holds {} hosts and the other relays have room for {room}; add capacity first, or force it (the rest stay until room frees)",
                    relay.route_count
                ),
            );
        }
        if relay.admin_state == AdminState::Maintenance {
            return refused(
                RefusalCode::FailedPrecondition,
                format!("relay {relay_id} is in maintenance"),
            );
        }
        let next = if relay.route_count == 0 {
            AdminState::Drained
        } else {
            AdminState::Draining
        };
        self.set_admin_state(relay_id, next, changes);
        let relay = self.relays.get_mut(relay_id).expect("looked up above");
        relay.drain = (next == AdminState::Draining).then_some(DrainPlan {
            hosts_per_second,
            started_ms: now,
            deadline_ms: (deadline_ms > 0).then_some(deadline_ms),
        });
        changes.touch(RowKey::Relay(relay_id.clone()));
        Outcome::Relay(relay.clone())
    }

    pub(super) fn set_site_draining(
        &mut self,
        site_id: u64,
        draining: bool,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(site) = self.sites.get_mut(&site_id) else {
            return refused(RefusalCode::NotFound, format!("no site {site_id}"));
        };
        if site.draining != draining {
            site.draining = draining;
            changes.touch(RowKey::Site(site_id));
            self.bump_epoch(changes);
        }
        Outcome::Site { site_id, draining }
    }

    pub(super) fn schedule_maintenance(
        &mut self,
        target: &MaintenanceTarget,
        start_ms: u64,
        end_ms: u64,
        reason: &str,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        match target {
            MaintenanceTarget::Relay(relay_id) if !self.relays.contains_key(relay_id) => {
                return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
            }
            MaintenanceTarget::Site(site_id) if !self.sites.contains_key(site_id) => {
                return refused(RefusalCode::NotFound, format!("no site {site_id}"));
            }
            _ => {}
        }
        if end_ms <= self.meta.clock_ms {
            return refused(
                RefusalCode::InvalidArgument,
                "the window ends in the past".into(),
            );
        }
        let open: Vec<&MaintenanceWindow> = self
            .windows
            .values()
            .filter(|w| matches!(w.status, WindowStatus::Scheduled | WindowStatus::Active))
            .collect();
        if let Some(overlap) = open
            .iter()
            .find(|w| w.target == *target && w.start_ms < end_ms && start_ms < w.end_ms)
        {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "window {} already covers {target} from {} to {}",
                    overlap.id, overlap.start_ms, overlap.end_ms
                ),
            );
        }
        if open.len() >= OPEN_WINDOWS_MAX {
            return refused(
                RefusalCode::ResourceExhausted,
                format!("{OPEN_WINDOWS_MAX} windows are open already"),
            );
        }
        self.meta.last_window_id += 1;
        changes.touch(RowKey::Meta);
        let window = MaintenanceWindow {
            id: self.meta.last_window_id,
            target: target.clone(),
            start_ms,
            end_ms,
            reason: reason.to_owned(),
            status: WindowStatus::Scheduled,
            created_by: actor.to_string(),
        };
        self.windows.insert(window.id, window.clone());
        changes.touch(RowKey::Window(window.id));
        self.bump_epoch(changes);
        Outcome::Window(window)
    }

    pub(super) fn cancel_maintenance(
        &mut self,
        window_id: u64,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let Some(window) = self.windows.get_mut(&window_id) else {
            return refused(
                RefusalCode::NotFound,
                format!("no maintenance window {window_id}"),
            );
        };
        match window.status {
            WindowStatus::Scheduled => window.status = WindowStatus::Cancelled,
            // An active window ends now: the leader undrains its target and
            // marks it done.
            WindowStatus::Active => window.end_ms = window.end_ms.min(now),
            WindowStatus::Done | WindowStatus::Cancelled => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!("window {window_id} is {} already", window.status.as_str()),
                );
            }
        }
        let window = window.clone();
        changes.touch(RowKey::Window(window_id));
        self.bump_epoch(changes);
        self.trim_finished_windows(changes);
        Outcome::Window(window)
    }

    pub(super) fn maintenance_phase(
        &mut self,
        window_id: u64,
        phase: MaintenancePhase,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(window) = self.windows.get_mut(&window_id) else {
            return refused(
                RefusalCode::NotFound,
                format!("no maintenance window {window_id}"),
            );
        };
        let next = match (phase, window.status) {
            (MaintenancePhase::Started, WindowStatus::Scheduled) => WindowStatus::Active,
            (MaintenancePhase::Ended, WindowStatus::Active) => WindowStatus::Done,
            (_, status) => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!(
                        "window {window_id} is {}; cannot mark it {phase:?}",
                        status.as_str()
                    ),
                );
            }
        };
        window.status = next;
        let window = window.clone();
        changes.touch(RowKey::Window(window_id));
        self.bump_epoch(changes);
        self.trim_finished_windows(changes);
        Outcome::Window(window)
    }

    fn trim_finished_windows(&mut self, changes: &mut ChangeSet) {
        let finished: Vec<u64> = self
            .windows
            .values()
            .filter(|w| matches!(w.status, WindowStatus::Done | WindowStatus::Cancelled))
            .map(|w| w.id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(FINISHED_WINDOWS_MAX))
        {
            self.windows.remove(id);
            changes.touch(RowKey::Window(*id));
        }
    }

    /// Keeps an audit record of an applied command.
    pub(super) fn record_audit(
        &mut self,
        log_index: u64,
        actor: &Actor,
        action: String,
        result: String,
        changes: &mut ChangeSet,
    ) {
        self.meta.last_audit_seq += 1;
        changes.touch(RowKey::Meta);
        let record = AuditRecord {
            seq: self.meta.last_audit_seq,
            at_ms: self.meta.clock_ms,
            log_index,
            actor: actor.to_string(),
            action,
            result,
        };
        self.audit.insert(record.seq, record.clone());
        changes.touch(RowKey::Audit(record.seq));
        while self.audit.len() > AUDIT_RECORDS_MAX {
            let Some(&(oldest, _)) = self.audit.get_min() else {
                break;
            };
            self.audit.remove(&oldest);
            changes.touch(RowKey::Audit(oldest));
        }
    }

    pub(super) fn restore_begin(
        &mut self,
        backup_era: u64,
        rows_expected: u64,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        if rows_expected == 0 || rows_expected > RESTORE_ROWS_MAX {
            return refused(
                RefusalCode::InvalidArgument,
                format!("a backup holds 1 to {RESTORE_ROWS_MAX} rows"),
            );
        }
        self.drop_staging(changes);
        self.restore_staged = Some(Box::default());
        self.restore = Some(RestoreStaging {
            backup_era,
            rows_expected,
            rows_received: 0,
            started_by: actor.to_string(),
        });
        changes.touch(RowKey::RestoreMeta);
        Outcome::Restore {
            rows_received: 0,
            rows_expected,
        }
    }

    pub(super) fn restore_rows(
        &mut self,
        rows: &[(Vec<u8>, Vec<u8>)],
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(staging) = self.restore.as_mut() else {
            return refused(
                RefusalCode::FailedPrecondition,
                "no restore in progress".into(),
            );
        };
        if rows.iter().any(|(key, _)| RowKey::decode(key).is_err()) {
            return refused(
                RefusalCode::InvalidArgument,
                "a backup row has an unknown key".into(),
            );
        }
        // A row sent twice (a step resent under a new request id) counts once.
        let new_keys: std::collections::BTreeSet<&Vec<u8>> = rows
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !self.restore_rows.contains_key(*key))
            .collect();
        if staging.rows_received + new_keys.len() as u64 > staging.rows_expected {
            return refused(
                RefusalCode::InvalidArgument,
                "more rows than the backup announced".into(),
            );
        }
        // Decode the chunk into the staged state (a clone is O(1)); a row
        // that does not decode refuses the step and stages nothing.
        let mut staged = self.restore_staged.clone().unwrap_or_default();
        for (key, value) in rows {
            if let Err(error) = staged.load_row(key, value) {
                return refused(
                    RefusalCode::InvalidArgument,
                    format!("a backup row does not decode: {error}"),
                );
            }
        }
        let staging = self.restore.as_mut().expect("checked above");
        staging.rows_received += new_keys.len() as u64;
        self.restore_staged = Some(staged);
        for (key, value) in rows {
            self.restore_rows.insert(key.clone(), value.clone());
            changes.touch(RowKey::RestoreRow(key.clone()));
        }
        changes.touch(RowKey::RestoreMeta);
        Outcome::Restore {
            rows_received: staging.rows_received,
            rows_expected: staging.rows_expected,
        }
    }

    pub(super) fn restore_commit(
        &mut self,
        keep_backup_keys: bool,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(staging) = self.restore.clone() else {
            return refused(
                RefusalCode::FailedPrecondition,
                "no restore in progress".into(),
            );
        };
        if staging.rows_received != staging.rows_expected {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "{} of {} rows received",
                    staging.rows_received, staging.rows_expected
                ),
            );
        }
        let staged = self.restore_staged.as_deref().cloned().unwrap_or_default();
        // An in-memory scan, not a rebuild: every row was decoded as it came.
        if let Err(reason) = staged.check_invariants() {
            return refused(
                RefusalCode::InvalidArgument,
                format!("the backup is not a sound state: {reason}"),
            );
        }
        let mut restored = staged;
        // Raft membership is this cluster's, not the backup's.
        restored.sites = self.sites.clone();
        restored.meta.clock_ms = restored.meta.clock_ms.max(self.meta.clock_ms);
        restored.meta.last_audit_seq = restored.meta.last_audit_seq.max(self.meta.last_audit_seq);
        restored.audit = self.audit.clone();
        // The backup's signing keys are sealed with the lost cluster's state
        // key: they stay only if the proposer found this cluster can open
        // them (rebuilt with the same state key), so clients that trusted
        // them take the new era. Otherwise this cluster's keys sign.
        if !keep_backup_keys || restored.node_info.keys.is_empty() {
            restored.node_info.keys = self.node_info.keys.clone();
        }
        restored.node_info.cluster_id = self.node_info.cluster_id.clone();
        // (era, epoch) only grows: a restore starts a new era.
        restored.node_info.era = restored
            .node_info
            .era
            .max(self.node_info.era)
            .max(staging.backup_era)
            + 1;
        restored.node_info.epoch = 1;
        restored.node_info.epoch_since_ms = restored.meta.clock_ms;
        restored.restore = None;
        restored.restore_rows = OrdMap::new();
        restored.restore_staged = None;
        let era = restored.node_info.era;
        let routes = restored.routes.len() as u64;
        *self = restored;
        changes.replace_all();
        Outcome::Restored { era, routes }
    }

    pub(super) fn restore_abort(&mut self, changes: &mut ChangeSet) -> Outcome {
        if self.restore.is_none() {
            return refused(
                RefusalCode::FailedPrecondition,
                "no restore in progress".into(),
            );
        }
        self.drop_staging(changes);
        Outcome::Noop
    }

    fn drop_staging(&mut self, changes: &mut ChangeSet) {
        for key in self.restore_rows.keys() {
            changes.touch(RowKey::RestoreRow(key.clone()));
        }
        self.restore_rows = OrdMap::new();
        self.restore_staged = None;
        if self.restore.take().is_some() {
            changes.touch(RowKey::RestoreMeta);
        }
    }
}
