//! The cluster's members as this site sees them, with the leader's view
//! of their health.

use std::collections::BTreeSet;

use openraft::async_runtime::watch::WatchReceiver;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::ids::SiteId;

use super::Site;

/// One member of the cluster as this site sees it.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub site_id: SiteId,
    pub node: SiteNode,
    pub voter: bool,
    /// The last log index known replicated to it (on the leader only).
    pub matched_index: Option<u64>,
    /// On the leader only: whether it acknowledged the leader within twice
    /// the leader lease (the leader itself always is).
    pub healthy: Option<bool>,
    /// Milliseconds since it last acknowledged the leader (leader's view
    /// only; `None` there too if it has not since this leadership began).
    pub ack_age_ms: Option<u64>,
    /// Taken out of client service.
    pub draining: bool,
}

impl Site {
    /// Every member in this site's membership config, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        use openraft::Instant as _;
        let applied = self.reader.load();
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: Vec<SiteId> = membership.voter_ids().collect();
        let is_leader = metrics.current_leader == Some(self.id);
        let health_window = self.settings.leader_lease * 2;
        let ack_age = |id: &SiteId| {
            let acked = metrics.heartbeat.as_ref()?.get(id).cloned().flatten()?;
            (is_leader && *id != self.id).then(|| acked.elapsed())
        };
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                site_id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(id).cloned())
                    .map(|matched| matched.map_or(0, |log_id| log_id.index)),
                healthy: is_leader
                    .then(|| *id == self.id || ack_age(id).is_some_and(|age| age < health_window)),
                ack_age_ms: ack_age(id).map(|age| age.as_millis() as u64),
                draining: applied
                    .state
                    .sites()
                    .any(|(site, record)| site == id && record.draining),
            })
            .collect()
    }

    /// Voters and, as the leader sees it, the healthy ones.
    pub fn voter_health(&self) -> (BTreeSet<SiteId>, BTreeSet<SiteId>) {
        let members = self.members();
        let voters = members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.site_id)
            .collect();
        let healthy = members
            .iter()
            .filter(|m| m.healthy == Some(true))
            .map(|m| m.site_id)
            .collect();
        (voters, healthy)
    }
}
