//! `switchboard recover`: rebuild a cluster from the one site that survived
//! a disaster, with that site as the only voter (as etcd's
//! `--force-new-cluster`). The other sites then join as new members, with
//! empty data dirs, through `sbctl members add-learner` and `promote`.

use std::path::Path;

use switchboard_raft_store::SiteNode;
use switchboard_raft_store::store::Identity;
use switchboard_raft_store::store::Recovered;
use switchboard_raft_store::store::recover_single_site;

use crate::config::SiteConfig;
use crate::error::NodeError;

/// What the operator must read before confirming.
pub const WARNING: &str = "\
WARNING: switchboard recover makes this site a cluster of one.
  - Every other site is dropped from the membership. Do this only when the
    others are lost for good: a majority that comes back would be a second
    cluster with the same id.
  - Every entry in this site's log is kept and applied; writes the others
    acknowledged that never reached this site are lost.
  - Node info enters a new era, so clients replace their cached documents.
  - Stop the other sites' processes and wipe their data dirs before they
    rejoin as new members (sbctl members add-learner, then promote).";

/// Recovers the site whose data dir is `data_dir`. With `config`, the site
/// takes the config's name and addresses; without, those it had.
pub fn recover(data_dir: &Path, config: Option<&SiteConfig>) -> Result<Recovered, NodeError> {
    let identity = Identity::read(data_dir)?.ok_or_else(|| {
        NodeError::Config(format!(
            "{} holds no site (no IDENTITY file): nothing to recover",
            data_dir.display()
        ))
    })?;
    let node = match config {
        Some(config) => {
            if config.id != identity.site_id || config.cluster_id != identity.cluster_id {
                return Err(NodeError::Config(format!(
                    "the config is for site {} of {}, the data dir holds site {} of {}",
                    config.id, config.cluster_id, identity.site_id, identity.cluster_id
                )));
            }
            Some(SiteNode {
                name: config.name.clone(),
                raft_addr: config.raft_addr.clone(),
                api_addr: config.api_addr.clone(),
                http_addr: config.http_addr.clone(),
                labels: config.labels.clone(),
            })
        }
        None => None,
    };
    recover_single_site(data_dir, &identity, node).map_err(|error| match error {
        switchboard_raft_store::Error::InUse { dir } => NodeError::Config(format!(
            "{dir} is in use: stop the site before recovering it"
        )),
        other => NodeError::Storage(other),
    })
}
