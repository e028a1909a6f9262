//! Asking for an election as soon as the leader's lease has run out.
//!
//! openraft starts a pre-vote when a follower's election timeout (random
//! in `[election_min, election_max)`) passes without a heartbeat. The other
//! voters refuse it until their own leader lease (`election_max` since the
//! last heartbeat) has run out, and the follower asks again only after
//! another timeout: a dead leader was replaced about two timeouts after its
//! last heartbeat (the failover bench: 951 ms median at 300-500 ms).
//!
//! Here a follower that has heard from no leader for the lease, plus a
//! delay by its rank among the voters, asks openraft for a pre-vote round
//! (`trigger().elect(true)`). openraft refuses it locally while this site's
//! own lease is valid, and a pre-vote changes no term unless a quorum would
//! grant the vote, so a site that was cut off still cannot disturb a
//! healthy leader. The survivors (the voters but the silent leader) take
//! turns by id one heartbeat interval apart: the operator keeps
//! `heartbeat_ms` at two round trips or more, so the first survivor's vote
//! request (a pre-vote round trip, then half of one) has reached the next
//! before its turn, and two of them do not split the vote; openraft's own
//! timer stays as it was.
//!
//! Only a follower whose vote is still the committed vote of another site
//! (the silent leader) asks. Once it has granted a vote or campaigned, its
//! vote is not committed and the retries are openraft's, on its randomized
//! timer: a split vote (two survivors whose pre-votes crossed on a slow
//! link) is not repeated on this fixed timetable, and a site that just
//! granted a new leader its vote does not ask for another term before that
//! leader's first message arrives.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::site::Site;
use openraft::async_runtime::watch::WatchReceiver;

/// Whether a survivor of `rank` (0 for the lowest id among the voters but
/// the silent leader) that has heard from no leader for `unheard` should
/// ask for a pre-vote now: the `lease` has run out, its rank's turn
/// (`rank + 1` spacings after it: the first one leaves openraft's lease,
/// which starts when the core takes the message, time to run out too) has
/// come, and its last request (if any) was a whole round of `survivors`
/// turns ago, and a quarter lease (a site cut off from a live leader asks
/// no more often than that).
pub fn nudge_due(
    unheard: Duration,
    lease: Duration,
    (rank, survivors): (u32, u32),
    spacing: Duration,
    since_last: Option<Duration>,
) -> bool {
    let turn = lease + spacing * (rank + 1);
    let round = (spacing * survivors.max(1)).max(lease / 4);
    unheard >= turn && since_last.is_none_or(|since| since >= round)
}

/// This site's rank among the survivors (the voters but the silent leader,
/// by id), and how many there are, if it is a voter following another
/// site's committed vote; `None` if not (a leader, a candidate, a learner,
/// or a follower that has granted a vote no quorum has committed yet).
fn turn_of(site: &Site) -> Option<(u32, u32)> {
    let metrics = site.raft.metrics();
    let metrics = metrics.borrow_watched();
    let leader = metrics.vote.leader_id().node_id;
    let following = metrics.state == openraft::ServerState::Follower
        && metrics.vote.is_committed()
        && leader != site.id;
    if !following {
        return None;
    }
    let mut survivors: Vec<u64> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != leader)
        .collect();
    survivors.sort_unstable();
    let rank = survivors.iter().position(|id| *id == site.id)?;
    Some((rank as u32, survivors.len() as u32))
}

/// Checks per turn: a site asks within a quarter turn of its turn coming,
/// so the turns stay about a spacing apart whatever the sites' phases.
const CHECKS_PER_TURN: u32 = 4;

/// Runs the nudge, checking `CHECKS_PER_TURN` times a spacing, until the
/// site stops.
pub async fn run_election_nudge(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let spacing = site.settings.election_nudge_spacing;
    let check = (spacing / CHECKS_PER_TURN).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(check);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(rank) = turn_of(&site) else {
            continue;
        };
        let unheard = site.contact.unheard_from_leader();
        let since_last = last.map(|at| at.elapsed());
        if !nudge_due(
            unheard,
            site.settings.leader_lease,
            rank,
            spacing,
            since_last,
        ) {
            continue;
        }
        last = Some(Instant::now());
        tracing::info!(
            unheard_ms = unheard.as_millis() as u64,
            "no leader for a lease: asking for a pre-vote"
        );
        metrics::counter!("switchboard_election_nudges_total").increment(1);
        if site.raft.trigger().elect(true).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nudge_due;
    use std::time::Duration;

    const LEASE: Duration = Duration::from_millis(500);
    const SPACING: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_asked_while_the_lease_runs() {
        assert!(!nudge_due(ms(500), LEASE, (0, 3), SPACING, None));
        assert!(!nudge_due(ms(519), LEASE, (0, 3), SPACING, None));
        assert!(nudge_due(ms(520), LEASE, (0, 3), SPACING, None));
    }

    #[test]
    fn the_voters_take_turns_by_rank() {
        assert!(!nudge_due(ms(539), LEASE, (1, 3), SPACING, None));
        assert!(nudge_due(ms(540), LEASE, (1, 3), SPACING, None));
        assert!(!nudge_due(ms(559), LEASE, (2, 3), SPACING, None));
        assert!(nudge_due(ms(560), LEASE, (2, 3), SPACING, None));
    }

    #[test]
    fn a_site_asks_again_only_a_round_later() {
        assert!(!nudge_due(ms(700), LEASE, (0, 3), SPACING, Some(ms(124))));
        assert!(nudge_due(ms(700), LEASE, (0, 3), SPACING, Some(ms(125))));
        let short_lease = ms(100);
        assert!(!nudge_due(
            ms(700),
            short_lease,
            (0, 5),
            SPACING,
            Some(ms(99))
        ));
        assert!(nudge_due(
            ms(700),
            short_lease,
            (0, 5),
            SPACING,
            Some(ms(100))
        ));
    }
}
