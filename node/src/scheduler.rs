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
use tokio::time::Instant;

use crate::site::Site;
use crate::site::most_caught_up_voter;
use crate::site::transfer_leadership;
use switchboard_raft_store::Actor;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::command::DRAIN_BATCH_HOSTS_MAX;
use switchboard_raft_store::drain_plan::Batch;
use switchboard_raft_store::drain_plan::next_batch;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::maintenance_plan;
use switchboard_raft_store::maintenance_plan::VoterHealth;
use switchboard_raft_store::request::RelayChange;
use switchboard_raft_store::state::AdminState;
use switchboard_raft_store::state::RELAY_DOWN_BATCH_HOSTS;
use switchboard_raft_store::state::room_elsewhere;
use switchboard_raft_store::store::AppliedState;

/// How often the leader moves drain batches and checks windows: a tenth of
/// a second keeps each batch a tenth of the pace (small log entries, smooth
/// progress for people watching) and starts a window within 100 ms.
pub const SCHEDULER_TICK: Duration = Duration::from_millis(100);

/// How long a drained site that leads waits between attempts to hand
/// leadership away (each attempt may take `TRANSFER_LEADER_DEADLINE`).
pub const HANDOVER_RETRY: Duration = Duration::from_secs(2);

/// Re-placement batches for down relays proposed in one tick, at most:
/// `RELAY_DOWN_BATCH_HOSTS` each, so up to 100,000 hosts a tick, in one
/// round (the storm bench: 100,000 hosts re-placed 0.5-0.7 s after the
/// verdict, against 0.8-1.1 s in rounds of 20 a tick; other callers' writes
/// queue behind the round, their max latency 0.7-0.8 s against 0.2-0.3 s,
/// p99 the same). Bounds the time the scheduler waits before its next turn.
pub const DOWN_BATCHES_PER_TICK_MAX: u32 = 100;

/// How often a stalled drain (no relay has room) or a deferred window is
/// logged again.
const WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// A drain's pace between ticks, on this leader.
struct DrainClock {
    last_tick: Instant,
    carry_milli_hosts: u64,
    last_warning: Option<Instant>,
}

impl DrainClock {
    /// A drain first seen at `now`: its first batch is one tick's worth.
    fn new(now: Instant) -> Self {
        DrainClock {
            last_tick: now.checked_sub(SCHEDULER_TICK).unwrap_or(now),
            carry_milli_hosts: 0,
            last_warning: None,
        }
    }

    /// The batch due at `now` for a drain at `pace` hosts per second, and
    /// the clock moved on to `now` (the fraction left over carries).
    fn batch(&mut self, now: Instant, pace: u32, hosts_left: u32, past_deadline: bool) -> Batch {
        let elapsed_ms = now.duration_since(self.last_tick).as_millis() as u64;
        let batch = next_batch(
            pace,
            elapsed_ms,
            self.carry_milli_hosts,
            hosts_left,
            past_deadline,
        );
        self.last_tick = now;
        self.carry_milli_hosts = batch.carry_milli_hosts;
        batch
    }
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
        replace_hosts_of_down_relays(&site, &applied).await;
        move_drain_batches(&site, &applied, &mut clocks).await;
        carry_out_windows(&site, &applied, &mut last_deferral_warning).await;
        keep_leadership_off_drained_site(&site, &applied, &mut last_handover).await;
    }
}

/// Moves the hosts of relays that are down with no pace (their routes are
/// broken): every batch a relay needs is proposed at once, so the batches
/// commit back to back instead of one round trip each, at most
/// `DOWN_BATCHES_PER_TICK_MAX` batches a tick so drains and windows still
/// get their turn. Each entry still moves at most `RELAY_DOWN_BATCH_HOSTS`.
async fn replace_hosts_of_down_relays(site: &Site, applied: &AppliedState) {
    // Without room elsewhere a batch would move nothing: propose none
    // rather than one empty entry a tick.
    let now_ms = site.clock.unix_ms();
    let down = applied
        .state
        .relays()
        .filter(|r| !r.live && r.route_count > 0);
    let mut budget = DOWN_BATCHES_PER_TICK_MAX;
    for relay in down {
        let room = room_elsewhere(applied.state.relays(), &relay.relay_id, now_ms);
        let movable = u64::from(relay.route_count).min(room);
        let batches = movable
            .div_ceil(u64::from(RELAY_DOWN_BATCH_HOSTS))
            .min(u64::from(budget)) as u32;
        if batches == 0 {
            continue;
        }
        budget -= batches;
        let proposals = (0..batches)
            .map(|_| {
                let request =
                    WriteRequest::drain_batch(relay.relay_id.clone(), RELAY_DOWN_BATCH_HOSTS);
                Proposal::new(RequestId::NONE, Actor::system(), request.into_command())
            })
            .collect();
        for result in site.propose_many_as_leader(proposals).await {
            let moved = match result {
                Ok(reply) => reply.answer::<RelayChange>(),
                Err(error) => {
                    tracing::warn!(relay = %relay.relay_id, %error, "re-placement batch not applied");
                    return;
                }
            };
            // A refusal: back up, or removed, since this tick read the state.
            if let Ok(applied) = moved {
                metrics::counter!("switchboard_relay_down_hosts_moved_total")
                    .increment(u64::from(applied.answer.hosts_moved));
            }
        }
        if budget == 0 {
            return;
        }
    }
}

/// One batch per draining relay, as much as its pace allows since the last.
async fn move_drain_batches(
    site: &Site,
    applied: &AppliedState,
    clocks: &mut HashMap<RelayId, DrainClock>,
) {
    let now = site.clock.now();
    let now_ms = site.clock.unix_ms();
    clocks.retain(|id, _| {
        applied
            .state
            .relay(id)
            .is_some_and(|r| r.admin_state == AdminState::Draining)
    });
    // A draining relay that is down moves at once, in
    // `replace_hosts_of_down_relays`, not at the drain's pace.
    for relay in applied
        .state
        .relays()
        .filter(|r| r.admin_state == AdminState::Draining && r.live)
    {
        let clock = clocks
            .entry(relay.relay_id.clone())
            .or_insert_with(|| DrainClock::new(now));
        let (pace, deadline_ms) = relay
            .drain
            .as_ref()
            .map_or((site.settings.drain_hosts_per_second, None), |plan| {
                (plan.hosts_per_second, plan.deadline_ms)
            });
        let past_deadline = deadline_ms.is_some_and(|deadline| now_ms >= deadline);
        let batch = clock.batch(now, pace, relay.route_count, past_deadline);
        if batch.hosts == 0 {
            continue;
        }
        debug_assert!(batch.hosts <= DRAIN_BATCH_HOSTS_MAX);
        let request = WriteRequest::drain_batch(relay.relay_id.clone(), batch.hosts);
        let proposal = Proposal::new(RequestId::NONE, Actor::system(), request.into_command());
        match site.propose_as_leader(proposal).await {
            Ok(reply) => match reply.answer::<RelayChange>() {
                Ok(applied) => {
                    let moved = applied.answer;
                    metrics::counter!("switchboard_drain_hosts_moved_total")
                        .increment(u64::from(moved.hosts_moved));
                    let warn_again = clock
                        .last_warning
                        .is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL);
                    if moved.hosts_unplaced > 0 && warn_again {
                        clock.last_warning = Some(now);
                        tracing::warn!(
                            relay = %relay.relay_id,
                            hosts_unplaced = moved.hosts_unplaced,
                            "drain stalled: no other relay has room; the hosts keep their routes"
                        );
                    }
                }
                // The relay was undrained or removed since this tick read
                // the state; the next tick plans from what applied.
                Err(refusal) => {
                    tracing::debug!(relay = %relay.relay_id, reason = %refusal.message, "drain batch refused")
                }
            },
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
        site.clock.unix_ms(),
        site.settings.drain_hosts_per_second,
        &health,
    );
    let now = site.clock.now();
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
    let now = site.clock.now();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Clock;
    use switchboard_raft_store::ActorKind;
    use switchboard_raft_store::Command;
    use switchboard_raft_store::State;
    use switchboard_raft_store::command::RelayRegistration;
    use switchboard_raft_store::state::ChangeSet;
    use switchboard_raft_store::state::MaintenanceTarget;

    fn apply(state: &mut State, index: u64, command: Command, now_ms: u64) {
        let mut proposal = Proposal::new(
            RequestId::NONE,
            Actor::new(ActorKind::Admin, "test"),
            command,
        );
        proposal.issued_at_ms = now_ms;
        let reply = state.apply(index, &proposal, &mut ChangeSet::default());
        assert!(
            !matches!(reply.outcome, switchboard_raft_store::Outcome::Refused(_)),
            "{reply}"
        );
    }

    /// Under paused time, with the site's clock: a maintenance window's
    /// first step is planned when the clock reaches its start, not before.
    #[tokio::test(start_paused = true)]
    async fn a_window_starts_when_the_site_clock_reaches_it() {
        let clock = Clock::starting_at(1_700_000_000_000);
        let mut state = State::new();
        for (index, relay) in [(1, "a"), (2, "b")] {
            let registration = RelayRegistration {
                relay_id: RelayId::new(relay).unwrap(),
                endpoint: format!("{relay}:443"),
                region: String::new(),
                labels: Default::default(),
                capacity: 10,
                incarnation: 1,
            };
            apply(
                &mut state,
                index,
                Command::RegisterRelay(registration),
                clock.unix_ms(),
            );
        }
        let start_ms = clock.unix_ms() + 5_000;
        let window = Command::ScheduleMaintenance {
            target: MaintenanceTarget::Relay(RelayId::new("a").unwrap()),
            start_ms,
            end_ms: start_ms + 60_000,
            reason: "firmware".into(),
        };
        apply(&mut state, 3, window, clock.unix_ms());
        assert_eq!(state.windows().count(), 1, "the window was scheduled");
        let health = VoterHealth {
            voters: [1].into(),
            healthy: [1].into(),
        };
        let planned = |state: &State| maintenance_plan::plan(state, clock.unix_ms(), 100, &health);
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(planned(&state).commands.is_empty(), "a millisecond early");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!planned(&state).commands.is_empty(), "due at its start");
    }

    /// Under paused time, on the scheduler's own ticker: a drain at 25 hosts
    /// a second moves 25 hosts per second of ticks, whatever the tick.
    #[tokio::test(start_paused = true)]
    async fn a_drain_keeps_its_pace_across_ticks() {
        let mut ticker = tokio::time::interval(SCHEDULER_TICK);
        let mut clock: Option<DrainClock> = None;
        let mut moved = 0;
        let mut left = 1_000;
        for _ in 0..20 {
            ticker.tick().await;
            let now = Instant::now();
            let batch = clock
                .get_or_insert_with(|| DrainClock::new(now))
                .batch(now, 25, left, false);
            moved += batch.hosts;
            left -= batch.hosts;
        }
        assert_eq!(moved, 50, "twenty ticks of 100 ms at 25 hosts per second");
        let mut clock = clock.expect("ticked");
        tokio::time::advance(Duration::from_secs(4)).await;
        let late = clock.batch(Instant::now(), 25, left, false);
        assert_eq!(late.hosts, 100, "a leader that was busy catches up");
        let deadline = clock.batch(Instant::now(), 25, left - late.hosts, true);
        assert_eq!(
            deadline.hosts,
            left - late.hosts,
            "past its deadline, the rest moves"
        );
    }
}
