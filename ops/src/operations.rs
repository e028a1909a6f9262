//! sbctl's operations commands: relay and site drains, maintenance windows,
//! backups and restores, the topology check and the audit log.

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use futures::StreamExt;
use serde::Serialize;
use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::State;
use switchboard_raft_store::command::RESTORE_STEP_BYTES_MAX;
use switchboard_raft_store::snapshot_file::Row;
use switchboard_raft_store::snapshot_file::SnapshotFile;
use switchboard_raft_store::snapshot_file::read_snapshot;
use switchboard_raft_store::snapshot_file::sync_dir;
use switchboard_raft_store::topology::DomainRisk;
use switchboard_raft_store::topology::TopologyRelay;
use switchboard_raft_store::topology::TopologySite;
use switchboard_raft_store::topology::analyze;
use switchboard_raft_store::topology::missing_domains;

use crate::commands::CliError;
use crate::commands::emit;
use crate::progress::Progress;
use crate::table::Table;

/// How often `relay drain --wait` polls the relay's route count.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Restore steps sent at once: enough to fill the leader's batches, few
/// enough that a failure wastes little.
const RESTORE_STEPS_IN_FLIGHT: usize = 8;
/// A drain that moves no host for this long is reported as stalled.
const DRAIN_STALL_LIMIT: Duration = Duration::from_secs(60);

/// Unix milliseconds now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A time on the command line: "now", "+DURATION" after `base_ms`, or an
/// RFC 3339 time.
pub fn parse_time(text: &str, base_ms: u64) -> Result<u64, CliError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms());
    }
    if let Some(after) = text.strip_prefix('+') {
        let duration = humantime::parse_duration(after)
            .map_err(|e| CliError::Usage(format!("{text:?}: {e} (try +30m or +2h)")))?;
        return Ok(base_ms.saturating_add(duration.as_millis() as u64));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        CliError::Usage(format!(
            "{text:?} is not a time: {e} (try 2026-11-25T22:00:00Z, now or +30m)"
        ))
    })?;
    Ok(time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

/// The last instant RFC 3339 can write (9999-12-31T23:59:59Z), in Unix ms.
const RFC3339_UNIX_MS_MAX: u64 = 253_402_300_799_999;

/// Unix milliseconds as an RFC 3339 time, for tables. Any u64 the server
/// may hold prints: past the year 9999 (which RFC 3339 cannot write, and
/// humantime panics on) as the raw milliseconds.
pub(crate) fn format_time(unix_ms: u64) -> String {
    if unix_ms > RFC3339_UNIX_MS_MAX {
        return format!("{unix_ms} ms after 1970 (past the year 9999)");
    }
    let time = SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn format_eta(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

fn relay_state_name(state: i32) -> String {
    pb::RelayState::try_from(state)
        .unwrap_or(pb::RelayState::Unspecified)
        .as_str_name()
        .trim_start_matches("RELAY_STATE_")
        .to_lowercase()
}

#[derive(Serialize)]
struct DrainView {
    relay_id: String,
    state: String,
    hosts_left: u32,
    hosts_moved: u32,
    seconds: f64,
    hosts_per_second: f64,
}

/// What `sbctl relay drain` was asked.
pub struct DrainRequest<'a> {
    pub relay_id: &'a str,
    /// Hosts per second.
    pub rate: u32,
    /// A duration from now ("30m") or an RFC 3339 time.
    pub deadline: Option<&'a str>,
    pub wait: bool,
    pub force: bool,
}

/// `sbctl relay drain`.
// Just over 100 lines: the request, then the progress loop whose lines
// share the start time and the counts; split, they would pass six locals.
pub async fn drain_relay(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    request: DrainRequest<'_>,
) -> Result<(), CliError> {
    let DrainRequest {
        relay_id,
        rate,
        deadline,
        wait,
        force,
    } = request;
    let deadline_ms = deadline
        .map(|text| parse_time(&format!("+{text}"), now_ms()).or_else(|_| parse_time(text, 0)))
        .transpose()?
        .unwrap_or(0);
    let started = Instant::now();
    let response = client
        .drain_relay(relay_id, rate, deadline_ms, force)
        .await?;
    let relay = response
        .relay
        .ok_or_else(|| CliError::Usage("the site answered without the relay".into()))?;
    let initial = relay.route_count;
    let mut view = DrainView {
        relay_id: relay_id.to_owned(),
        state: relay_state_name(relay.state),
        hosts_left: relay.route_count,
        hosts_moved: 0,
        seconds: 0.0,
        hosts_per_second: 0.0,
    };
    if wait {
        let mut progress = Progress::new();
        let mut last_move = Instant::now();
        loop {
            let relays = client.list_relays().await?;
            let relay = relays
                .relays
                .iter()
                .find(|r| r.relay_id == relay_id)
                .ok_or_else(|| CliError::Usage(format!("relay {relay_id} was removed")))?;
            let elapsed = started.elapsed();
            if relay.route_count < view.hosts_left {
                last_move = Instant::now();
            }
            view.state = relay_state_name(relay.state);
            view.hosts_left = relay.route_count;
            view.hosts_moved = initial.saturating_sub(relay.route_count);
            view.seconds = elapsed.as_secs_f64();
            view.hosts_per_second = f64::from(view.hosts_moved) / view.seconds.max(0.001);
            let eta = Duration::from_secs_f64(f64::from(view.hosts_left) / f64::from(rate.max(1)));
            progress.show(
                f64::from(view.hosts_moved) / f64::from(initial.max(1)),
                &format!(
                    "{} hosts left, {:.0} hosts/s, ETA {}",
                    view.hosts_left,
                    view.hosts_per_second,
                    format_eta(eta)
                ),
            );
            match view.state.as_str() {
                "drained" => break,
                "draining" => {}
                other => {
                    progress.finish();
                    return Err(CliError::Usage(format!(
                        "relay {relay_id} is {other} now: the drain was stopped"
                    )));
                }
            }
            if last_move.elapsed() >= DRAIN_STALL_LIMIT {
                progress.finish();
                return Err(CliError::Usage(format!(
                    "drain stalled: no host moved for {} s; other relays may be full (relay list shows their room)",
                    DRAIN_STALL_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
        }
        progress.finish();
    }
    emit(out, json, &view, || {
        if wait {
            format!(
                "relay {} drained: {} hosts moved in {:.1} s ({:.0} hosts/s)\n",
                view.relay_id, view.hosts_moved, view.seconds, view.hosts_per_second
            )
        } else {
            format!(
                "relay {} is {}: {} hosts to move at {rate} hosts/s (ETA {}); watch with relay list\n",
                view.relay_id,
                view.state,
                view.hosts_left,
                format_eta(Duration::from_secs_f64(
                    f64::from(view.hosts_left) / f64::from(rate.max(1))
                ))
            )
        }
    })
}

#[derive(Serialize)]
struct SiteDrainView {
    site_id: u64,
    draining: bool,
    leader_id: u64,
}

/// `sbctl site drain|undrain`.
pub async fn site_drain(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    site_id: u64,
    drain: Option<bool>,
) -> Result<(), CliError> {
    let response = match drain {
        Some(force) => client.drain_site(site_id, force).await?,
        None => client.undrain_site(site_id).await?,
    };
    let view = SiteDrainView {
        site_id: response.site_id,
        draining: response.draining,
        leader_id: response.leader_id,
    };
    emit(out, json, &view, || {
        if view.draining {
            format!(
                "site {} is out of client service (it keeps voting); site {} leads\n",
                view.site_id, view.leader_id
            )
        } else {
            format!("site {} is back in client service\n", view.site_id)
        }
    })
}

/// A maintenance window as sbctl prints it, in JSON and in tables.
#[derive(Serialize)]
pub struct WindowView {
    id: u64,
    target: String,
    start: String,
    end: String,
    start_unix_ms: u64,
    end_unix_ms: u64,
    status: String,
    reason: String,
    created_by: String,
}

/// A window as sbctl prints it.
pub fn window_view(window: &pb::MaintenanceWindow) -> WindowView {
    WindowView {
        id: window.id,
        target: window.target.clone(),
        start: format_time(window.start_unix_ms),
        end: format_time(window.end_unix_ms),
        start_unix_ms: window.start_unix_ms,
        end_unix_ms: window.end_unix_ms,
        status: window.status.clone(),
        reason: window.reason.clone(),
        created_by: window.created_by.clone(),
    }
}

/// Windows as a table.
pub fn windows_table(windows: &[pb::MaintenanceWindow]) -> String {
    let mut table = Table::new(&["ID", "TARGET", "START", "END", "STATUS", "BY", "REASON"]);
    for window in windows.iter().map(window_view) {
        table.row(vec![
            window.id.to_string(),
            window.target,
            window.start,
            window.end,
            window.status,
            window.created_by,
            window.reason,
        ]);
    }
    table.render()
}

/// `sbctl maintenance schedule`.
pub async fn schedule_maintenance(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    target: &str,
    start: &str,
    end: &str,
    reason: &str,
) -> Result<(), CliError> {
    let start_ms = parse_time(start, now_ms())?;
    let end_ms = parse_time(end, start_ms)?;
    if end_ms <= start_ms {
        return Err(CliError::Usage("--end must be after --start".into()));
    }
    let window = client
        .schedule_maintenance(target, start_ms, end_ms, reason)
        .await?;
    emit(out, json, &window_view(&window), || {
        windows_table(std::slice::from_ref(&window))
    })
}

/// `sbctl maintenance list` and `cancel`.
pub async fn list_or_cancel_maintenance(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    cancel: Option<u64>,
) -> Result<(), CliError> {
    let windows = match cancel {
        Some(window_id) => vec![client.cancel_maintenance(window_id).await?],
        None => client.list_maintenance().await?.windows,
    };
    let views: Vec<WindowView> = windows.iter().map(window_view).collect();
    emit(out, json, &views, || windows_table(&windows))
}

#[derive(Serialize)]
struct BackupView {
    file: String,
    bytes: u64,
    rows: usize,
    routes: usize,
    relays: usize,
    last_log_index: u64,
    era: u64,
    seconds: f64,
}

/// Reads and checks a backup file (format, checksum, every row decodes).
fn open_backup(path: &Path) -> Result<(BackupView, Vec<Row>), CliError> {
    let file = SnapshotFile::open(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let bytes = file.len;
    let (meta, rows) = read_snapshot(&file)
        .map_err(|e| CliError::Usage(format!("{} is not a sound backup: {e}", path.display())))?;
    let state = State::from_rows(rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .map_err(|e| CliError::Usage(format!("{} holds an unsound state: {e}", path.display())))?;
    let view = BackupView {
        file: path.display().to_string(),
        bytes,
        rows: rows.len(),
        routes: state.routes().len(),
        relays: state.relays().count(),
        last_log_index: meta.last_log_index(),
        era: state.node_info().era,
        seconds: 0.0,
    };
    Ok((view, rows))
}

/// `sbctl snapshot save FILE`: streams a backup into `FILE.part`, syncs it,
/// renames it into place, then reads it back to check it.
pub async fn save_snapshot(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    path: &Path,
) -> Result<(), CliError> {
    let started = Instant::now();
    let partial = path.with_extension("part");
    let result = receive_backup(client, &partial).await;
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let (mut view, _) = open_backup(path)?;
    view.seconds = started.elapsed().as_secs_f64();
    emit(out, json, &view, || {
        format!(
            "saved {} ({} bytes): {} routes, {} relays, log index {}, node-info era {}, in {:.1} s\n",
            view.file,
            view.bytes,
            view.routes,
            view.relays,
            view.last_log_index,
            view.era,
            view.seconds
        )
    })
}

async fn receive_backup(client: &ClusterClient, partial: &Path) -> Result<(), CliError> {
    let mut stream = client.save_snapshot().await?;
    let mut file = std::fs::File::create(partial)?;
    let mut progress = Progress::new();
    let mut written = 0u64;
    loop {
        let chunk = stream
            .message()
            .await
            .map_err(|status| CliError::Usage(format!("backup interrupted: {}", status.message())))?
            .ok_or_else(|| CliError::Usage("backup stream ended early".into()))?;
        if chunk.offset != written {
            return Err(CliError::Usage(format!(
                "backup chunk at offset {} where {written} was expected",
                chunk.offset
            )));
        }
        file.write_all(&chunk.data)?;
        written += chunk.data.len() as u64;
        progress.show(
            written as f64 / chunk.total_bytes.max(1) as f64,
            &format!("{} of {} bytes", written, chunk.total_bytes),
        );
        if chunk.last {
            if written != chunk.total_bytes {
                return Err(CliError::Usage(format!(
                    "backup holds {written} bytes, the site announced {}",
                    chunk.total_bytes
                )));
            }
            break;
        }
    }
    progress.finish();
    // Synced before the rename: the named file is whole or absent.
    file.sync_all()?;
    Ok(())
}

#[derive(Serialize)]
struct RestoreView {
    file: String,
    rows: usize,
    routes: u64,
    era: u64,
    seconds: f64,
    /// Of which sending the rows, and the commit.
    rows_seconds: f64,
    commit_seconds: f64,
}

/// `sbctl snapshot restore FILE`: checks the backup, then sends its rows in
/// steps (begin, rows, commit); on a failure it aborts the staged restore.
pub async fn restore_snapshot(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    path: &Path,
    confirmed: bool,
) -> Result<(), CliError> {
    let (backup, rows) = open_backup(path)?;
    if !confirmed {
        return Err(CliError::Usage(format!(
            "nothing changed: restoring {} replaces the cluster's state with {} routes and {} relays from log index {}; run again with --yes-replace-state",
            backup.file, backup.routes, backup.relays, backup.last_log_index
        )));
    }
    let started = Instant::now();
    let outcome = send_restore(client, &backup, rows).await;
    let (restored, rows_took) = match outcome {
        Ok(restored) => restored,
        Err(error) => {
            let abort = pb::restore_request::Step::Abort(true);
            if let Err(abort_error) = client.restore_step(&new_request_id(), abort).await {
                eprintln!("sbctl: could not abort the staged restore: {abort_error}");
            }
            return Err(error);
        }
    };
    let view = RestoreView {
        file: backup.file,
        rows: backup.rows,
        routes: restored.routes,
        era: restored.era,
        seconds: started.elapsed().as_secs_f64(),
        rows_seconds: rows_took.as_secs_f64(),
        commit_seconds: (started.elapsed() - rows_took).as_secs_f64(),
    };
    emit(out, json, &view, || {
        format!(
            "restored {}: {} routes; node info is now at era {}; in {:.1} s ({:.1} s sending rows, {:.1} s committing)\n",
            view.file, view.routes, view.era, view.seconds, view.rows_seconds, view.commit_seconds
        )
    })
}

async fn send_restore(
    client: &ClusterClient,
    backup: &BackupView,
    rows: Vec<Row>,
) -> Result<(pb::RestoreResponse, Duration), CliError> {
    let started = Instant::now();
    let begin = pb::restore_request::Step::Begin(pb::RestoreBegin {
        backup_era: backup.era,
        rows_expected: rows.len() as u64,
    });
    client.restore_step(&new_request_id(), begin).await?;
    let total = rows.len();
    let steps = restore_steps(rows);
    let mut progress = Progress::new();
    let mut sent = 0usize;
    // Steps stage rows in any order, so several are in flight at once: the
    // leader commits them together instead of one round trip each.
    let mut replies = futures::stream::iter(steps)
        .map(|step| async move {
            let count = step.len();
            let step = pb::restore_request::Step::Rows(pb::RestoreRows { rows: step });
            // One request id per step: a retried step is applied once.
            client
                .restore_step(&new_request_id(), step)
                .await
                .map(|_| count)
        })
        .buffer_unordered(RESTORE_STEPS_IN_FLIGHT);
    while let Some(reply) = replies.next().await {
        sent += reply?;
        progress.show(
            sent as f64 / total.max(1) as f64,
            &format!("{sent} of {total} rows"),
        );
    }
    progress.finish();
    let rows_took = started.elapsed();
    let commit = pb::restore_request::Step::Commit(true);
    Ok((
        client.restore_step(&new_request_id(), commit).await?,
        rows_took,
    ))
}

/// Groups rows into restore steps of at most `RESTORE_STEP_BYTES_MAX` row
/// bytes (a larger row goes alone).
fn restore_steps(rows: Vec<Row>) -> Vec<Vec<pb::BackupRow>> {
    let mut steps: Vec<Vec<pb::BackupRow>> = Vec::new();
    let mut step_bytes = 0usize;
    for (key, value) in rows {
        let bytes = key.len() + value.len();
        let full = step_bytes + bytes > RESTORE_STEP_BYTES_MAX;
        if steps.is_empty() || full {
            steps.push(Vec::new());
            step_bytes = 0;
        }
        step_bytes += bytes;
        steps
            .last_mut()
            .expect("a step was pushed above")
            .push(pb::BackupRow { key, value });
    }
    steps
}

/// `sbctl topology check`: exit 1 if any single domain is critical.
pub async fn topology_check(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    capacity_share: f64,
    all: bool,
) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&capacity_share) {
        return Err(CliError::Usage("--capacity-share is 0 to 1".into()));
    }
    let statuses = client.status_all().await;
    let members = statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .find(|s| s.role == "leader")
        .or_else(|| statuses.iter().filter_map(|(_, s)| s.as_ref().ok()).next())
        .map(|s| s.members.clone())
        .ok_or_else(|| CliError::NoSiteAnswered("no site answered status".into()))?;
    let relays = client.list_relays().await?.relays;
    let sites: Vec<TopologySite> = members
        .iter()
        .map(|m| TopologySite {
            site_id: m.site_id,
            voter: m.voter,
            labels: m.labels.clone().into_iter().collect(),
        })
        .collect();
    let relays: Vec<TopologyRelay> = relays
        .iter()
        .map(|r| TopologyRelay {
            relay_id: r.relay_id.clone(),
            region: r.region.clone(),
            labels: r.labels.clone().into_iter().collect(),
            capacity: r.capacity,
            in_service: !matches!(
                relay_state_name(r.state).as_str(),
                "drained" | "maintenance"
            ),
        })
        .collect();
    for unplaced in missing_domains(&sites) {
        let what = if unplaced.missing.is_empty() {
            "no voter has failure-domain labels: nothing can be checked".to_owned()
        } else {
            format!("it has no {} label", unplaced.missing.join(", "))
        };
        eprintln!(
            "warning: site {} cannot be placed in a failure domain: {what}; re-add it with --label or set [labels] in its config",
            unplaced.site_id
        );
    }
    let risks: Vec<DomainRisk> = analyze(&sites, &relays, capacity_share)
        .into_iter()
        .filter(|risk| all || risk.critical())
        .collect();
    let critical = risks.iter().filter(|r| r.critical()).count();
    emit(out, json, &risks, || {
        let mut table = Table::new(&["DOMAIN", "SITES", "VOTERS", "RELAYS", "CAPACITY", "RISK"]);
        for risk in &risks {
            let mut why = Vec::new();
            if risk.quorum_lost {
                why.push("loses quorum".to_owned());
            }
            if risk.capacity_critical {
                why.push(format!("over {:.0}% of capacity", capacity_share * 100.0));
            }
            table.row(vec![
                format!("{}={}", risk.label, risk.value),
                risk.sites
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                format!("{} of {}", risk.voters_in_domain, risk.voters_total),
                risk.relays.len().to_string(),
                format!("{:.0}%", risk.capacity_share * 100.0),
                if why.is_empty() {
                    "ok".to_owned()
                } else {
                    why.join(", ")
                },
            ]);
        }
        let summary = if critical == 0 {
            format!(
                "no single failure domain costs quorum or over {:.0}% of relay capacity\n",
                capacity_share * 100.0
            )
        } else {
            format!("{critical} critical failure domain(s)\n")
        };
        if risks.is_empty() {
            summary
        } else {
            format!("{}{summary}", table.render())
        }
    })?;
    if critical > 0 {
        return Err(CliError::Critical(format!(
            "{critical} single failure domain(s) would cost quorum or relay capacity"
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct AuditView {
    seq: u64,
    at: String,
    at_unix_ms: u64,
    log_index: u64,
    actor: String,
    action: String,
    result: String,
}

/// `sbctl audit`.
pub async fn audit(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
    limit: u32,
) -> Result<(), CliError> {
    let records = client.list_audit(limit).await?.records;
    let views: Vec<AuditView> = records
        .iter()
        .map(|r| AuditView {
            seq: r.seq,
            at: format_time(r.at_unix_ms),
            at_unix_ms: r.at_unix_ms,
            log_index: r.log_index,
            actor: r.actor.clone(),
            action: r.action.clone(),
            result: r.result.clone(),
        })
        .collect();
    emit(out, json, &views, || {
        let mut table = Table::new(&["SEQ", "AT", "WHO", "WHAT", "RESULT"]);
        for v in &views {
            table.row(vec![
                v.seq.to_string(),
                v.at.clone(),
                v.actor.clone(),
                v.action.clone(),
                v.result.clone(),
            ]);
        }
        table.render()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_time_the_server_can_hold_formats_without_panicking() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(RFC3339_UNIX_MS_MAX), "9999-12-31T23:59:59Z");
        assert!(format_time(RFC3339_UNIX_MS_MAX + 1).contains("past the year 9999"));
        assert!(format_time(u64::MAX).starts_with(&u64::MAX.to_string()));
    }

    use super::*;

    #[test]
    fn restore_steps_fill_up_to_the_limit_and_keep_every_row() {
        let row = |n: usize, size: usize| (vec![n as u8], vec![0u8; size - 1]);
        let rows: Vec<_> = (0..100).map(|n| row(n, 1_000)).collect();
        let steps = restore_steps(rows);
        let per_step = RESTORE_STEP_BYTES_MAX / 1_000;
        assert_eq!(steps.len(), 100usize.div_ceil(per_step));
        assert!(steps.iter().all(|s| s.len() <= per_step));
        assert_eq!(steps.iter().map(Vec::len).sum::<usize>(), 100);
        let big = restore_steps(vec![
            row(1, 10),
            row(2, RESTORE_STEP_BYTES_MAX + 5),
            row(3, 10),
        ]);
        assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert!(restore_steps(Vec::new()).is_empty());
    }

    #[test]
    fn times_parse_as_operators_write_them() {
        assert_eq!(parse_time("+10m", 1_000).unwrap(), 601_000);
        assert_eq!(
            parse_time("2026-11-25T22:00:00Z", 0).unwrap(),
            1_795_644_000_000
        );
        let now = parse_time("now", 0).unwrap();
        assert!(now > 1_700_000_000_000);
        let error = parse_time("tomorrow", 0).unwrap_err().to_string();
        assert!(error.contains("is not a time"), "{error}");
        assert!(parse_time("+ten", 0).is_err());
    }
}
