//! The leader's scheduler: relay drains at their pace, maintenance windows
//! at their start and end, and leadership kept off drained sites.
//!
//! Everything it decides comes from the replicated state (drain plans,
//! windows, site drains), so a new leader picks up where the old one
//! stopped. Only the drain pace's carry lives in memory: a new leader starts
//! its drains' clocks afresh, which moves at most one tick's hosts late.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::site::Site;
use crate::site::most_caught_up_voter;
use crate::site::transfer_leadership;
use crate::site::unix_ms;
use switchboard_raft_store::Actor;
use switchboard_raft_store::Command;
use switchboard_raft_store::Outcome;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::command::DRAIN_BATCH_HOSTS_MAX;
use switchboard_raft_store::drain_plan::next_batch;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::maintenance_plan;
use switchboard_raft_store::maintenance_plan::VoterHealth;
use switchboard_raft_store::state::AdminState;
use switchboard_raft_store::store::AppliedState;

/// How often the leader moves drain batches and checks windows: a tenth of
/// a second keeps each batch a tenth of the pace (small log entries, smooth
/// progress for people watching) and starts a window within 100 ms.
pub const SCHEDULER_TICK: Duration = Duration::from_millis(100);

/// How long a drained site that leads waits between attempts to hand
/// leadership away (each attempt may take `TRANSFER_LEADER_DEADLINE`).
pub const HANDOVER_RETRY: Duration = Duration::from_secs(2);

/// How often a stalled drain (no relay has room) or a deferred window is
/// logged again.
const WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// A drain's pace between ticks, on this leader.
struct DrainClock {
    last_tick: Instant,
    carry_milli_hosts: u64,
    last_warning: Option<Instant>,
}

/// Runs the scheduler until the site stops.
pub async fn run_scheduler(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(SCHEDULER_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clocks: HashMap<RelayId, DrainClock> = HashMap::new();
    let mut last_handover: Option<Instant> = None;
    let mut last_deferral_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if !site.is_leader() {
            clocks.clear();
            continue;
        }
        let applied = site.reader.load();
        move_drain_batches(&site, &applied, &mut clocks).await;
        carry_out_windows(&site, &applied, &mut last_deferral_warning).await;
        keep_leadership_off_drained_site(&site, &applied, &mut last_handover).await;
    }
}

/// One batch per draining relay, as much as its pace allows since the last.
async fn move_drain_batches(
    site: &Site,
    applied: &AppliedState,
    clocks: &mut HashMap<RelayId, DrainClock>,
) {
    let now = Instant::now();
    let now_ms = unix_ms();
    clocks.retain(|id, _| {
        applied
            .state
            .relay(id)
            .is_some_and(|r| r.admin_state == AdminState::Draining)
    });
    for relay in applied
        .state
        .relays()
        .filter(|r| r.admin_state == AdminState::Draining)
    {
        let clock = clocks
            .entry(relay.relay_id.clone())
            .or_insert_with(|| DrainClock {
                last_tick: now.checked_sub(SCHEDULER_TICK).unwrap_or(now),
                carry_milli_hosts: 0,
                last_warning: None,
            });
        let (pace, deadline_ms) = relay
            .drain
            .as_ref()
            .map_or((site.settings.drain_hosts_per_second, None), |plan| {
                (plan.hosts_per_second, plan.deadline_ms)
            });
        let elapsed_ms = now.duration_since(clock.last_tick).as_millis() as u64;
        let past_deadline = deadline_ms.is_some_and(|deadline| now_ms >= deadline);
        let batch = next_batch(
            pace,
            elapsed_ms,
            clock.carry_milli_hosts,
            relay.route_count,
            past_deadline,
        );
        clock.last_tick = now;
        clock.carry_milli_hosts = batch.carry_milli_hosts;
        if batch.hosts == 0 {
            continue;
        }
        debug_assert!(batch.hosts <= DRAIN_BATCH_HOSTS_MAX);
        let command = Command::DrainBatch {
            relay_id: relay.relay_id.clone(),
            hosts_max: batch.hosts,
        };
        let proposal = Proposal::new(RequestId::NONE, Actor::system(), command);
        match site.propose_as_leader(proposal).await {
            Ok(reply) => {
                if let Outcome::RelayMoved {
                    hosts_moved,
                    hosts_unplaced,
                    ..
                } = reply.outcome
                {
                    metrics::counter!("switchboard_drain_hosts_moved_total")
                        .increment(u64::from(hosts_moved));
                    let warn_again = clock
                        .last_warning
                        .is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL);
                    if hosts_unplaced > 0 && warn_again {
                        clock.last_warning = Some(now);
                        tracing::warn!(
                            relay = %relay.relay_id,
                            hosts_unplaced,
                            "drain stalled: no other relay has room; the hosts keep their routes"
                        );
                    }
                }
            }
            Err(error) => {
                tracing::warn!(relay = %relay.relay_id, %error, "drain batch not applied");
                return;
            }
        }
    }
}

/// Proposes what the maintenance windows need now.
async fn carry_out_windows(
    site: &Site,
    applied: &AppliedState,
    last_warning: &mut Option<Instant>,
) {
    let (voters, healthy) = site.voter_health();
    let health = VoterHealth { voters, healthy };
    let plan = maintenance_plan::plan(
        &applied.state,
        unix_ms(),
        site.settings.drain_hosts_per_second,
        &health,
    );
    let now = Instant::now();
    if !plan.deferred.is_empty()
        && last_warning.is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL)
    {
        *last_warning = Some(now);
        for (window_id, reason) in &plan.deferred {
            tracing::warn!(window_id, %reason, "maintenance window waits: starting it now is unsafe");
        }
    }
    for command in plan.commands {
        let description = command.describe();
        let proposal = Proposal::new(RequestId::NONE, Actor::system(), command);
        match site.propose_as_leader(proposal).await {
            Ok(_) => tracing::info!("maintenance: {description}"),
            Err(error) => {
                // The next tick plans again from whatever did apply.
                tracing::warn!(%error, "maintenance step not applied: {description}");
                return;
            }
        }
    }
}

/// A drained site does not lead: hand leadership to the most caught-up
/// voter that is not drained, if there is one.
async fn keep_leadership_off_drained_site(
    site: &Site,
    applied: &AppliedState,
    last_attempt: &mut Option<Instant>,
) {
    let drained = applied
        .state
        .sites()
        .any(|(id, record)| *id == site.id && record.draining);
    if !drained {
        return;
    }
    let now = Instant::now();
    if last_attempt.is_some_and(|at| now.duration_since(at) < HANDOVER_RETRY) {
        return;
    }
    *last_attempt = Some(now);
    let Some(target) = most_caught_up_voter(site) else {
        return;
    };
    let target_drained = applied
        .state
        .sites()
        .any(|(id, record)| *id == target && record.draining);
    if target_drained {
        return;
    }
    tracing::info!(target, "this site is drained: handing leadership over");
    if let Err(error) =
        transfer_leadership(site, target, crate::site::TRANSFER_LEADER_DEADLINE).await
    {
        tracing::warn!(target, %error, "leadership handover failed; will retry");
    }
}
