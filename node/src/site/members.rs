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
                healthy: is_leader.then(|| {
                    *id == self.id
                        || metrics
                            .heartbeat
                            .as_ref()
                            .and_then(|acks| acks.get(id).cloned().flatten())
                            .is_some_and(|at| at.elapsed() < health_window)
                }),
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
