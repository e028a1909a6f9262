//! `cluster.json`: where a cluster's sites are, for sbctl and scripts.

use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

use crate::file_error::FileError;

/// The file `switchboard dev` writes and `sbctl --cluster` reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    /// The cluster's id, as in its certificates' names.
    pub cluster_id: String,
    /// Its sites.
    pub sites: Vec<ClusterSite>,
    /// Certificates to talk to the cluster with (absent: plaintext).
    #[serde(default)]
    pub tls: Option<ClusterTls>,
}

/// The certificate files an operator uses with a cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterTls {
    /// The CA that signs the sites' certificates.
    pub ca: String,
    /// An admin certificate and key.
    #[serde(default)]
    pub cert: Option<String>,
    /// The admin certificate's key.
    #[serde(default)]
    pub key: Option<String>,
}

/// One site of a cluster file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterSite {
    /// The site's id.
    pub id: u64,
    /// The site's name.
    pub name: String,
    /// Process id of the site, when it was started by `switchboard dev`.
    #[serde(default)]
    pub pid: Option<u32>,
    /// API address (relay, host, client, admin), `host:port`.
    pub api: String,
    /// Raft peer address.
    pub raft: String,
    /// Status page, metrics and health.
    pub http: String,
    /// The site's data dir, when the launcher started it.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// The site's config file, when the launcher wrote it.
    #[serde(default)]
    pub config: Option<String>,
}

impl ClusterFile {
    /// Reads a cluster file.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| FileError::invalid(path, e))
    }

    /// Writes a cluster file (through a temporary file, so readers never see half of it).
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        let text = serde_json::to_string_pretty(self).expect("a cluster file always encodes");
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(|source| FileError::Write {
            path: temporary.clone(),
            source,
        })?;
        std::fs::rename(&temporary, path).map_err(|source| FileError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Credentials to talk to the cluster: the admin certificate named in
    /// the file, or plaintext if the file names none.
    pub fn credentials(&self) -> Result<crate::client::Credentials, crate::client::ClientError> {
        let Some(tls) = &self.tls else {
            return Ok(crate::client::Credentials::insecure());
        };
        let identity = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some((Path::new(cert.as_str()), Path::new(key.as_str()))),
            _ => None,
        };
        crate::client::Credentials::from_files(&self.cluster_id, Path::new(&tls.ca), identity, None)
    }

    /// A client of the cluster with the file's credentials.
    pub fn client(
        &self,
        settings: crate::client::ClientSettings,
    ) -> Result<crate::client::ClusterClient, crate::client::ClientError> {
        crate::client::ClusterClient::new(self.api_endpoints(), settings, self.credentials()?)
    }

    /// The API addresses of every site.
    pub fn api_endpoints(&self) -> Vec<String> {
        self.sites.iter().map(|site| site.api.clone()).collect()
    }
}
