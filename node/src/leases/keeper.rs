//! The leader's lease keeper and every site's heartbeat forwarder.
//!
//! - On the leader, every check interval: a relay the state calls live whose
//!   lease ran out is proposed down (that apply re-places its first batch
//!   of hosts, the scheduler the rest); a
//!   relay the state calls down that heartbeats again (same incarnation) is
//!   proposed up. Nothing else is written: heartbeats stay in memory. When a
//!   site becomes leader, every live relay first gets one fresh lease.
//! - On a follower, once per forward interval, the heartbeats received are
//!   sent to the leader in one batch, and the relays waiting on them are
//!   answered.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::leases::table::Lease;
use crate::site::Site;
use openraft::async_runtime::watch::WatchReceiver;
use switchboard_proto::v1::HeartbeatBatch;
use switchboard_raft_store::Actor;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::state::RelayRecord;

/// How often the leader checks leases: a twentieth of the TTL, at most
/// `LEASE_CHECK_INTERVAL_MAX`, so a relay is judged within TTL + 50 ms of
/// its last heartbeat (the re-placement of its hosts must fit in the second
/// after the lease). A check walks every relay once.
pub fn check_interval(lease_ttl: Duration) -> Duration {
    (lease_ttl / 20)
        .min(LEASE_CHECK_INTERVAL_MAX)
        .max(Duration::from_millis(10))
}

/// The longest time between two lease checks.
pub const LEASE_CHECK_INTERVAL_MAX: Duration = Duration::from_millis(50);

/// What the keeper does about one relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// First seen (or a new incarnation): start its lease now.
    Grant,
    /// Nothing to propose.
    Keep,
    /// Live in the state, but its lease ran out.
    Down,
    /// Down in the state, but it heartbeats again.
    Up,
}

/// Judges one relay by its lease at `now`: pure, so it is tested under
/// paused time. A lease is fresh for `ttl` after the last heartbeat.
pub fn judge(relay: &RelayRecord, lease: Option<Lease>, now: Instant, ttl: Duration) -> Judgement {
    let Some(lease) = lease.filter(|l| l.incarnation >= relay.incarnation) else {
        return Judgement::Grant;
    };
    let fresh =
        lease.incarnation == relay.incarnation && now.duration_since(lease.last_heartbeat) < ttl;
    match (relay.live, fresh) {
        (true, false) => Judgement::Down,
        (false, true) => Judgement::Up,
        _ => Judgement::Keep,
    }
}

/// Runs the lease keeper until the site stops.
pub async fn run_lease_keeper(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ttl = site.settings.relay_lease_ttl;
    let mut ticker = tokio::time::interval(check_interval(ttl));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The term in which this site last became leader, to grant fresh leases once.
    let mut leading_term: Option<u64> = None;
    let mut proposed: HashSet<(RelayId, u64, bool)> = HashSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let (is_leader, term) = {
            let metrics = site.raft.metrics();
            let metrics = metrics.borrow_watched();
            (
                metrics.current_leader == Some(site.id),
                metrics.current_term,
            )
        };
        if !is_leader {
            leading_term = None;
            proposed.clear();
            continue;
        }
        let applied = site.reader.load();
        let now = site.clock.now();
        if leading_term != Some(term) {
            leading_term = Some(term);
            proposed.clear();
            let live = applied
                .state
                .relays()
                .filter(|r| r.live)
                .map(|r| (r.relay_id.clone(), r.incarnation));
            site.leases.grant_fresh(live, now);
            tracing::info!(
                term,
                relays = site.leases.len(),
                "leading: every live relay gets a fresh lease"
            );
            continue;
        }
        site.leases.retain(|id| applied.state.relay(id).is_some());
        proposed.retain(|(id, incarnation, down)| {
            applied
                .state
                .relay(id)
                .is_some_and(|r| r.incarnation == *incarnation && r.live == *down)
        });
        for relay in applied.state.relays() {
            let request = match judge(relay, site.leases.get(&relay.relay_id), now, ttl) {
                Judgement::Grant => {
                    // A relay (or incarnation) seen for the first time gets a
                    // full lease to send its first heartbeat in.
                    site.leases
                        .record(relay.relay_id.clone(), relay.incarnation, 0, now);
                    continue;
                }
                Judgement::Keep => continue,
                Judgement::Down => {
                    WriteRequest::relay_down(relay.relay_id.clone(), relay.incarnation)
                }
                Judgement::Up => WriteRequest::relay_up(relay.relay_id.clone(), relay.incarnation),
            };
            if !proposed.insert((relay.relay_id.clone(), relay.incarnation, relay.live)) {
                continue;
            }
            let verdict = if relay.live { "down" } else { "up" };
            tracing::info!(relay = %relay.relay_id, incarnation = relay.incarnation, "relay {verdict}: proposing");
            metrics::counter!("switchboard_relay_lease_verdicts_total", "verdict" => verdict)
                .increment(1);
            let proposal = Proposal::new(RequestId::NONE, Actor::system(), request.into_command());
            if let Err(error) = site.propose_as_leader(proposal).await {
                tracing::warn!(relay = %relay.relay_id, %error, "could not propose the relay {verdict}");
                proposed.remove(&(relay.relay_id.clone(), relay.incarnation, relay.live));
            }
        }
        metrics::gauge!("switchboard_relay_leases").set(site.leases.len() as f64);
    }
}

/// Forwards batched heartbeats to the leader until the site stops.
pub async fn run_heartbeat_forwarder(
    site: Arc<Site>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = site.settings.heartbeat_forward_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some((heartbeats, waiters)) = site.heartbeats.take(site.clock.now()) else {
            continue;
        };
        let outcome = forward(&site, heartbeats, interval).await;
        if let Err(reason) = &outcome {
            tracing::debug!(%reason, "heartbeat batch not recorded");
        }
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

async fn forward(
    site: &Site,
    heartbeats: Vec<switchboard_proto::v1::RelayHeartbeat>,
    interval: Duration,
) -> Result<u64, String> {
    let count = heartbeats.len();
    let Some((leader, node)) = site.leader() else {
        return Err("no leader known".into());
    };
    if leader == site.id {
        return site
            .record_heartbeats(&heartbeats)
            .map_err(|e| e.to_string());
    }
    let mut client = site
        .peers
        .raft_client(leader, &node.raft_addr)
        .map_err(|e| e.to_string())?;
    let timeout = interval * 2 + site.settings.leader_lease;
    let request = site
        .peers
        .request(leader, HeartbeatBatch { heartbeats }, Some(timeout));
    let response = client.forward_heartbeats(request).await;
    site.peers.note(leader, &node.raft_addr, &response);
    let response = response.map_err(|status| status.message().to_owned())?;
    metrics::counter!("switchboard_relay_heartbeat_batches_forwarded_total").increment(1);
    metrics::histogram!("switchboard_relay_heartbeat_batch_size").record(count as f64);
    Ok(response.into_inner().lease_ttl_ms)
}

/// On the leader: makes the cluster's first node-info signing key once the
/// state has none (checked every second until the site stops).
pub async fn run_key_keeper(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if !site.signer.can_sign() {
        tracing::warn!("no state_key_file: this site will not sign node info or connect tickets");
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if !site.is_leader() || site.reader.load().state.node_info().current_key().is_some() {
            continue;
        }
        match site.propose_signing_key(Actor::system()).await {
            Ok(_) => tracing::info!("made the cluster's node-info signing key"),
            Err(error) => tracing::warn!(%error, "could not make the node-info signing key yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_raft_store::state::AdminState;

    fn relay(live: bool, incarnation: u64) -> RelayRecord {
        RelayRecord {
            relay_id: RelayId::new("r").unwrap(),
            endpoint: "r:443".into(),
            region: String::new(),
            labels: Default::default(),
            capacity: 10,
            incarnation,
            admin_state: AdminState::Active,
            live,
            route_count: 0,
            registered_at_ms: 0,
            state_since_ms: 0,
            warm_until_ms: 0,
            held_out_until_ms: 0,
            recent_downs_ms: Vec::new(),
            drain: None,
        }
    }

    fn lease(incarnation: u64, last_heartbeat: Instant) -> Option<Lease> {
        Some(Lease {
            incarnation,
            last_heartbeat,
            active_sessions: 0,
        })
    }

    /// Under paused time: a live relay is judged down exactly when its lease
    /// has run a full TTL since the last heartbeat, not a millisecond before.
    #[tokio::test(start_paused = true)]
    async fn a_lease_runs_out_exactly_one_ttl_after_the_last_heartbeat() {
        let ttl = Duration::from_secs(2);
        let heartbeat = Instant::now();
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        let now = Instant::now();
        assert_eq!(
            judge(&relay(true, 1), lease(1, heartbeat), now, ttl),
            Judgement::Keep
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let now = Instant::now();
        assert_eq!(
            judge(&relay(true, 1), lease(1, heartbeat), now, ttl),
            Judgement::Down
        );
        assert_eq!(
            judge(&relay(false, 1), lease(1, heartbeat), now, ttl),
            Judgement::Keep,
            "already down: nothing more to propose"
        );
        assert_eq!(
            judge(&relay(false, 1), lease(1, now), now, ttl),
            Judgement::Up,
            "a heartbeat brings it back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_incarnation_gets_a_lease_and_a_stale_one_cannot_keep_it_up() {
        let ttl = Duration::from_secs(2);
        let now = Instant::now();
        assert_eq!(judge(&relay(true, 1), None, now, ttl), Judgement::Grant);
        assert_eq!(
            judge(&relay(true, 2), lease(1, now), now, ttl),
            Judgement::Grant,
            "a restarted relay starts a fresh lease"
        );
        assert_eq!(
            judge(&relay(false, 2), lease(3, now), now, ttl),
            Judgement::Keep,
            "heartbeats of another incarnation do not bring this one up"
        );
    }

    #[test]
    fn the_check_interval_is_a_twentieth_of_the_ttl_within_bounds() {
        assert_eq!(
            check_interval(Duration::from_millis(600)),
            Duration::from_millis(30)
        );
        assert_eq!(
            check_interval(Duration::from_secs(10)),
            Duration::from_millis(50)
        );
        assert_eq!(
            check_interval(Duration::from_millis(50)),
            Duration::from_millis(10)
        );
    }
}
