//! The leader's lease keeper and every site's heartbeat forwarder.
//!
//! - On the leader, every check interval: a relay the state calls live whose
//!   lease ran out is proposed down (the same apply re-places its hosts); a
//!   relay the state calls down that heartbeats again (same incarnation) is
//!   proposed up. Nothing else is written: heartbeats stay in memory. When a
//!   site becomes leader, every live relay first gets one fresh lease.
//! - On a follower, once per forward interval, the heartbeats received are
//!   sent to the leader in one batch, and the relays waiting on them are
//!   answered.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::site::Site;
use openraft::async_runtime::watch::WatchReceiver;
use switchboard_proto::v1::HeartbeatBatch;
use switchboard_raft_store::Actor;
use switchboard_raft_store::Command;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::RequestId;

/// How often the leader checks leases: a tenth of the TTL, at most 200 ms,
/// so a relay is judged within TTL + 200 ms of its last heartbeat.
pub fn check_interval(lease_ttl: Duration) -> Duration {
    (lease_ttl / 10)
        .min(Duration::from_millis(200))
        .max(Duration::from_millis(10))
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
        let now = Instant::now();
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
            let lease = site.leases.get(&relay.relay_id);
            if lease.is_none_or(|l| l.incarnation < relay.incarnation) {
                // A relay (or incarnation) seen for the first time gets a
                // full lease to send its first heartbeat in.
                site.leases
                    .record(relay.relay_id.clone(), relay.incarnation, 0, now);
                continue;
            }
            let fresh = lease.is_some_and(|l| {
                l.incarnation == relay.incarnation && now.duration_since(l.last_heartbeat) < ttl
            });
            let command = match (relay.live, fresh) {
                (true, false) => Command::RelayDown {
                    relay_id: relay.relay_id.clone(),
                    incarnation: relay.incarnation,
                },
                (false, true) => Command::RelayUp {
                    relay_id: relay.relay_id.clone(),
                    incarnation: relay.incarnation,
                },
                _ => continue,
            };
            if !proposed.insert((relay.relay_id.clone(), relay.incarnation, relay.live)) {
                continue;
            }
            let verdict = if relay.live { "down" } else { "up" };
            tracing::info!(relay = %relay.relay_id, incarnation = relay.incarnation, "relay {verdict}: proposing");
            metrics::counter!("switchboard_relay_lease_verdicts_total", "verdict" => verdict)
                .increment(1);
            let proposal = Proposal::new(RequestId::NONE, Actor::system(), command);
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
        let Some((heartbeats, waiters)) = site.heartbeats.take() else {
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
    let response = client
        .forward_heartbeats(request)
        .await
        .map_err(|status| status.message().to_owned())?;
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
