//! How stale this site's applied state is.
//!
//! `staleness_ms` is the time since the state this site has applied was
//! last known current. Each AppendEntries (heartbeats included) brings the
//! leader's commit index and when the leader last heard from a quorum
//! (`peer::leader_age`: its age on arrival, time in flight included);
//! once the applied index reaches that commit index, the state was current
//! as of that acknowledgement. A deposed leader's heartbeats carry an ever
//! older acknowledgement, so they keep nobody fresh.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Leader messages waiting for apply to reach their commit index. Older ones
/// are dropped first; a newer message with a higher commit index supersedes
/// them anyway.
pub const PENDING_CONTACTS_MAX: usize = 256;

struct Contacts {
    /// When this site was last known fresh.
    fresh_at: Option<Instant>,
    /// (confirmed at, leader commit index), oldest first, not yet applied.
    pending: VecDeque<(Instant, u64)>,
    /// The leader of the last message accepted.
    last_leader: Option<u64>,
    /// When the last message from a leader arrived.
    heard_at: Option<Instant>,
    /// When this tracker began: a site that has never been made fresh
    /// has heard nothing since then.
    started_at: Instant,
}

/// Tracks messages from the leader against the applied index.
pub struct LeaderContact {
    contacts: Mutex<Contacts>,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            contacts: Mutex::new(Contacts {
                fresh_at: None,
                pending: VecDeque::new(),
                last_leader: None,
                heard_at: None,
                started_at: Instant::now(),
            }),
        }
    }
}

impl LeaderContact {
    /// Notes a message from the leader carrying `leader_commit` and the age
    /// of the leader's last quorum acknowledgement, seen when this site had
    /// applied up to `applied`.
    #[cfg(test)]
    pub fn record(&self, leader_commit: u64, applied: u64, leader_age: Duration) {
        self.record_received(leader_commit, applied, leader_age, Instant::now(), None);
    }

    /// As [`record`](Self::record), for a message from `leader` that
    /// arrived at `received_at`: the age counts from its arrival, not from
    /// when the site got round to noting it (after appending and syncing
    /// its entries, which can take a while on a busy machine).
    pub fn record_received(
        &self,
        leader_commit: u64,
        applied: u64,
        leader_age: Duration,
        received_at: Instant,
        leader: Option<u64>,
    ) {
        let confirmed = received_at.checked_sub(leader_age).unwrap_or(received_at);
        let mut contacts = self.contacts.lock();
        if leader.is_some() {
            contacts.last_leader = leader;
            contacts.heard_at = Some(
                contacts
                    .heard_at
                    .map_or(received_at, |at| at.max(received_at)),
            );
        }
        if leader_commit <= applied {
            // Never backwards: an older confirmation adds nothing.
            contacts.fresh_at = Some(contacts.fresh_at.map_or(confirmed, |at| at.max(confirmed)));
            contacts.pending.clear();
            return;
        }
        if contacts.pending.len() == PENDING_CONTACTS_MAX {
            contacts.pending.pop_front();
        }
        contacts.pending.push_back((confirmed, leader_commit));
    }

    /// The leader whose message this site accepted last: the leader it
    /// follows, even before openraft's metrics say so (they are published
    /// after the append).
    pub fn last_leader(&self) -> Option<u64> {
        self.contacts.lock().last_leader
    }

    /// Time since a message from a leader last arrived, or since the site
    /// started if none has: how long openraft's leader lease here has run.
    pub fn unheard_from_leader(&self) -> std::time::Duration {
        let contacts = self.contacts.lock();
        contacts.heard_at.unwrap_or(contacts.started_at).elapsed()
    }

    /// Milliseconds the site has gone without being made fresh by a
    /// leader: since it was last fresh, or since it started if never.
    pub fn unheard_ms(&self, applied: u64) -> u64 {
        self.staleness_ms(applied).unwrap_or_else(|| {
            let started_at = self.contacts.lock().started_at;
            started_at.elapsed().as_millis() as u64
        })
    }

    /// Milliseconds since the site was last known fresh, given what it has
    /// applied now; `None` if it never heard from a leader.
    pub fn staleness_ms(&self, applied: u64) -> Option<u64> {
        let mut contacts = self.contacts.lock();
        while let Some(&(at, commit)) = contacts.pending.front() {
            if commit > applied {
                break;
            }
            contacts.fresh_at = Some(contacts.fresh_at.map_or(at, |fresh| fresh.max(at)));
            contacts.pending.pop_front();
        }
        contacts.fresh_at.map(|at| at.elapsed().as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message noted 200 ms after it arrived (its append was slow) is as
    /// old as its arrival says, not as fresh as the noting.
    #[tokio::test(start_paused = true)]
    async fn staleness_counts_from_a_messages_arrival_not_from_when_it_was_noted() {
        let contact = LeaderContact::default();
        let received_at = Instant::now();
        tokio::time::advance(Duration::from_millis(200)).await;
        contact.record_received(7, 7, Duration::from_millis(10), received_at, Some(2));
        assert_eq!(contact.last_leader(), Some(2));
        assert_eq!(contact.staleness_ms(7), Some(210));
    }

    /// A site never made fresh has gone unheard since it started.
    #[tokio::test(start_paused = true)]
    async fn a_site_never_made_fresh_is_unheard_since_it_started() {
        let contact = LeaderContact::default();
        tokio::time::advance(Duration::from_millis(700)).await;
        assert_eq!(contact.staleness_ms(0), None);
        assert_eq!(contact.unheard_ms(0), 700);
    }

    #[test]
    fn a_site_is_fresh_only_once_it_applied_what_the_leader_committed() {
        let contact = LeaderContact::default();
        assert_eq!(contact.staleness_ms(0), None);
        contact.record(10, 5, Duration::ZERO);
        assert_eq!(
            contact.staleness_ms(5),
            None,
            "not yet applied the leader's commit"
        );
        let staleness = contact.staleness_ms(10).expect("fresh as of the message");
        assert!(staleness < 1_000);
        contact.record(3, 10, Duration::ZERO);
        assert!(contact.staleness_ms(10).unwrap() < 1_000);
    }

    /// Under paused time: staleness counts from the arrival of the message
    /// whose commit index the site then applied, to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn staleness_counts_from_the_message_that_the_site_caught_up_with() {
        let contact = LeaderContact::default();
        contact.record(10, 5, Duration::ZERO);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(contact.staleness_ms(5), None);
        assert_eq!(contact.staleness_ms(10), Some(300));
        contact.record(12, 12, Duration::ZERO);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(contact.staleness_ms(12), Some(250));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            contact.staleness_ms(12),
            Some(60_250),
            "no leader message for a minute: a minute stale"
        );
    }

    /// Under paused time: a deposed leader that still reaches this site
    /// sends heartbeats whose quorum-ack age grows; they keep the site no
    /// fresher than that leader's last acknowledgement.
    #[tokio::test(start_paused = true)]
    async fn heartbeats_of_a_deposed_leader_keep_nobody_fresh() {
        let contact = LeaderContact::default();
        contact.record(7, 7, Duration::from_millis(40));
        assert_eq!(contact.staleness_ms(7), Some(40));
        for _ in 0..20 {
            tokio::time::advance(Duration::from_millis(100)).await;
            // The leader lost its quorum at the first message: the age it
            // sends grows with every heartbeat.
            let age = contact.staleness_ms(7).expect("known");
            contact.record(7, 7, Duration::from_millis(age));
        }
        assert_eq!(
            contact.staleness_ms(7),
            Some(2_040),
            "two seconds of heartbeats from a leader without a quorum"
        );
        contact.record(9, 7, Duration::from_millis(5));
        assert_eq!(contact.staleness_ms(7), Some(2_040), "not yet applied");
        assert_eq!(
            contact.staleness_ms(9),
            Some(5),
            "a live leader's commit applied"
        );
    }
}
