//! The data dir's identity: which cluster and which site it belongs to.
//!
//! Written once, when a site first starts on an empty data dir; checked at
//! every start after, so a site never serves another site's or another
//! cluster's data (a copied dir, a wrong `--data-dir`, a reused volume).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::snapshot_file::create_dir_synced;
use crate::snapshot_file::sync_dir;

const FILE_NAME: &str = "IDENTITY";

/// A data dir's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster the data dir belongs to.
    pub cluster_id: String,
    /// The site it belongs to.
    pub site_id: u64,
}

impl Identity {
    fn render(&self) -> String {
        format!(
            "# Written by switchboard on first start. Do not edit: a site refuses a data dir of another.\ncluster_id={}\nsite_id={}\n",
            self.cluster_id, self.site_id
        )
    }

    fn parse(text: &str) -> Option<Identity> {
        let mut cluster_id = None;
        let mut site_id = None;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (key, value) = line.split_once('=')?;
            match key {
                "cluster_id" => cluster_id = Some(value.to_owned()),
                "site_id" => site_id = value.parse().ok(),
                _ => return None,
            }
        }
        Some(Identity {
            cluster_id: cluster_id?,
            site_id: site_id?,
        })
    }

    /// Reads the identity of a data dir, if it has one.
    pub fn read(data_dir: &Path) -> Result<Option<Identity>, Error> {
        let path = data_dir.join(FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => Identity::parse(&text)
                .map(Some)
                .ok_or_else(|| Error::Corrupt {
                    what: "identity file",
                    reason: path.display().to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Claims `data_dir` for this identity: writes it on first use, and
    /// refuses a dir that belongs to another cluster or site.
    pub fn claim(&self, data_dir: &Path) -> Result<(), Error> {
        // Synced up the tree: the dir holds everything that must survive.
        create_dir_synced(data_dir)?;
        if let Some(found) = Identity::read(data_dir)? {
            if &found != self {
                return Err(Error::IdentityMismatch {
                    dir: data_dir.display().to_string(),
                    found_cluster: found.cluster_id,
                    found_site: found.site_id,
                    want_cluster: self.cluster_id.clone(),
                    want_site: self.site_id,
                });
            }
            return Ok(());
        }
        let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
        let io = |e| Error::io(format!("writing {}", temporary.display()), e);
        let mut file = fs::File::create(&temporary).map_err(io)?;
        file.write_all(self.render().as_bytes()).map_err(io)?;
        // Synced: the identity must exist before any data is written under it.
        file.sync_all().map_err(io)?;
        fs::rename(&temporary, data_dir.join(FILE_NAME)).map_err(io)?;
        sync_dir(data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_serves_only_its_own_site() {
        let dir = tempfile::tempdir().unwrap();
        let one = Identity {
            cluster_id: "c1".into(),
            site_id: 1,
        };
        one.claim(dir.path()).unwrap();
        one.claim(dir.path()).unwrap();
        let other_site = Identity {
            cluster_id: "c1".into(),
            site_id: 2,
        };
        assert!(matches!(
            other_site.claim(dir.path()),
            Err(Error::IdentityMismatch { found_site: 1, .. })
        ));
        let other_cluster = Identity {
            cluster_id: "c2".into(),
            site_id: 1,
        };
        assert!(matches!(
            other_cluster.claim(dir.path()),
            Err(Error::IdentityMismatch { .. })
        ));
    }
}
