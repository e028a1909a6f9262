//! What a client knows of a cluster, and how it can never be stranded.
//!
//! Three sources are merged: the built-in seed list, the on-disk cache and
//! the documents sites hand back. The rules:
//! - a document is accepted only if its signature checks (by a trusted key,
//!   or one a trusted key endorses) and its (era, epoch) is higher than the
//!   cached one; a rollback, a forgery or an unknown key is refused;
//! - a good list is never replaced by an empty one or by a failed fetch;
//! - every known site is tried: the document's sites (those in maintenance
//!   last), then the seeds, so a cache that names only retired sites still
//!   reaches the cluster through a seed, and the seed hands the current
//!   document back with its first answer.
//!
//! Trust starts from the keys the caller is given. Without any, the first
//! document is trusted on first use: it arrives over TLS from a site whose
//! certificate the client checked, so it is as good as that certificate.

use parking_lot::Mutex;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::node_info::NodeInfoDocument;

use crate::signing::TrustError;
use crate::signing::TrustStore;

/// The cache file format this build writes.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// Largest cache file read.
pub const CACHE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The on-disk cache: the last accepted document and the keys trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheFile {
    /// The cache format version (`CACHE_FORMAT_VERSION`).
    pub format: u32,
    /// The cluster the cache belongs to.
    pub cluster_id: String,
    /// Hex of the signed document bytes.
    pub document: String,
    /// Hex of its signature.
    pub signature: String,
    /// The keys trusted when the cache was written.
    pub trust: TrustStore,
}

impl CacheFile {
    /// Reads and checks a cache file; garbage is an error, never a panic.
    pub fn parse(text: &str) -> Result<Self, CacheError> {
        let cache: CacheFile =
            serde_json::from_str(text).map_err(|e| CacheError::Malformed(e.to_string()))?;
        if cache.format != CACHE_FORMAT_VERSION {
            return Err(CacheError::Format(cache.format));
        }
        Ok(cache)
    }
}

/// Why a node-info cache file is ignored.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Not JSON, or not a cache file's fields.
    #[error("cache file: {0}")]
    Malformed(String),
    /// A format this build does not read.
    #[error("cache format {0} is not {CACHE_FORMAT_VERSION}")]
    Format(u32),
    /// Larger than `CACHE_BYTES_MAX`.
    #[error("{0} bytes is too large")]
    TooLarge(u64),
    /// It could not be read.
    #[error("reading the cache: {0}")]
    Read(String),
    /// Written for another cluster.
    #[error("cache is for cluster {0:?}")]
    OtherCluster(String),
    /// Its document or signature is not hex, or does not verify.
    #[error("cached node info is refused: {0}")]
    Refused(String),
}

struct Known {
    trust: TrustStore,
    /// Whether `trust` came from the caller (or a cache) rather than nothing.
    anchored: bool,
    document: Option<(pb::SignedNodeInfo, NodeInfoDocument)>,
}

/// A client's view of one cluster's sites.
pub struct Directory {
    cluster_id: String,
    seeds: Vec<String>,
    cache_path: Option<PathBuf>,
    known: Mutex<Known>,
}

impl Directory {
    /// A directory with seed endpoints, trusted keys (may be empty: trust on
    /// first use over TLS) and an optional cache file to load and keep.
    pub fn new(
        cluster_id: &str,
        seeds: Vec<String>,
        anchors: Vec<(u64, Vec<u8>)>,
        cache_path: Option<PathBuf>,
    ) -> Self {
        let anchored = !anchors.is_empty();
        let directory = Directory {
            cluster_id: cluster_id.to_owned(),
            seeds,
            cache_path: cache_path.clone(),
            known: Mutex::new(Known {
                trust: TrustStore::new(cluster_id, anchors),
                anchored,
                document: None,
            }),
        };
        if let Some(path) = cache_path {
            match directory.load_cache(&path) {
                Ok(true) => tracing::debug!(path = %path.display(), "loaded the node-info cache"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring the node-info cache")
                }
            }
        }
        directory
    }

    fn load_cache(&self, path: &Path) -> Result<bool, CacheError> {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(CacheError::Read(e.to_string())),
        };
        if metadata.len() > CACHE_BYTES_MAX {
            return Err(CacheError::TooLarge(metadata.len()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| CacheError::Read(e.to_string()))?;
        let cache = CacheFile::parse(&text)?;
        if cache.cluster_id != self.cluster_id || cache.trust.cluster_id != self.cluster_id {
            return Err(CacheError::OtherCluster(cache.cluster_id));
        }
        let refused = |e: hex::FromHexError| CacheError::Refused(e.to_string());
        let document = hex::decode(&cache.document).map_err(refused)?;
        let signature = hex::decode(&cache.signature).map_err(refused)?;
        let mut known = self.known.lock();
        let mut trust = known.trust.clone();
        trust.keys.extend(cache.trust.keys);
        let parsed = trust
            .check(&document, &signature)
            .map_err(|e| CacheError::Refused(e.to_string()))?;
        trust.learn(&parsed);
        let signed = pb::SignedNodeInfo {
            key_id: parsed.signing_key_id,
            era: parsed.era,
            epoch: parsed.epoch,
            document,
            signature,
        };
        known.trust = trust;
        known.anchored = true;
        known.document = Some((signed, parsed));
        Ok(true)
    }

    fn save_cache(&self, known: &Known) {
        let (Some(path), Some((signed, _))) = (&self.cache_path, &known.document) else {
            return;
        };
        let cache = CacheFile {
            format: CACHE_FORMAT_VERSION,
            cluster_id: self.cluster_id.clone(),
            document: hex::encode(&signed.document),
            signature: hex::encode(&signed.signature),
            trust: known.trust.clone(),
        };
        let text = serde_json::to_string_pretty(&cache).expect("a cache always encodes");
        let temporary = path.with_extension("tmp");
        let written =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot write the node-info cache");
        }
    }

    /// Every site to try, in order: the document's sites not in maintenance,
    /// those in maintenance, then the seeds; no duplicates.
    pub fn endpoints(&self) -> Vec<String> {
        let known = self.known.lock();
        let mut endpoints: Vec<String> = Vec::new();
        if let Some((_, document)) = &known.document {
            let (serving, draining): (Vec<_>, Vec<_>) =
                document.sites.iter().partition(|site| !site.draining);
            endpoints.extend(
                serving
                    .into_iter()
                    .chain(draining)
                    .map(|site| site.api_addr.clone()),
            );
        }
        for seed in &self.seeds {
            if !endpoints.contains(seed) {
                endpoints.push(seed.clone());
            }
        }
        endpoints
    }

    /// The version of the document held, for `known_node_info`.
    pub fn known_version(&self) -> Option<pb::NodeInfoVersion> {
        let known = self.known.lock();
        known
            .document
            .as_ref()
            .map(|(signed, _)| pb::NodeInfoVersion {
                era: signed.era,
                epoch: signed.epoch,
            })
    }

    /// The document held.
    pub fn document(&self) -> Option<NodeInfoDocument> {
        self.known.lock().document.as_ref().map(|(_, d)| d.clone())
    }

    /// The keys trusted now.
    pub fn trust(&self) -> TrustStore {
        self.known.lock().trust.clone()
    }

    /// Offers a document a site sent. Accepted (true) only if it is signed
    /// by a trusted key, newer than the one held and lists sites.
    pub fn offer(&self, signed: &pb::SignedNodeInfo) -> Result<bool, TrustError> {
        let mut known = self.known.lock();
        let document = if known.anchored {
            known.trust.check(&signed.document, &signed.signature)?
        } else {
            // Trust on first use: the document came over a verified TLS
            // connection; its own signing key becomes the anchor.
            let document = NodeInfoDocument::decode(&signed.document)
                .map_err(|e| TrustError::Malformed(e.to_string()))?;
            let key = document
                .keys
                .iter()
                .find(|key| key.key_id == document.signing_key_id)
                .ok_or(TrustError::UnknownKey(document.signing_key_id))?;
            let first = TrustStore::new(&self.cluster_id, [(key.key_id, key.public_key.clone())]);
            first.check(&signed.document, &signed.signature)?
        };
        let held = known.document.as_ref().map(|(_, d)| d.version());
        if let Some(held) = held
            && document.version() <= held
        {
            if document.version() == held {
                return Ok(false);
            }
            return Err(TrustError::NotNewer {
                known: held,
                found: document.version(),
            });
        }
        if document.sites.is_empty() {
            return Err(TrustError::Malformed(
                "a document without sites never replaces a list".into(),
            ));
        }
        if !known.anchored {
            let signing = document
                .keys
                .iter()
                .find(|k| k.key_id == document.signing_key_id)
                .expect("checked above");
            known.trust = TrustStore::new(
                &self.cluster_id,
                [(signing.key_id, signing.public_key.clone())],
            );
            known.anchored = true;
        }
        known.trust.learn(&document);
        tracing::info!(
            era = document.era,
            epoch = document.epoch,
            sites = document.sites.len(),
            "accepted node info"
        );
        known.document = Some((signed.clone(), document));
        self.save_cache(&known);
        Ok(true)
    }

    /// Offers a document if a response carried one; refusals are logged.
    pub fn offer_optional(&self, signed: Option<&pb::SignedNodeInfo>) {
        if let Some(signed) = signed
            && let Err(error) = self.offer(signed)
        {
            metrics::counter!("switchboard_client_node_info_refused_total").increment(1);
            tracing::warn!(%error, "refused a node-info document");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use switchboard_raft_store::node_info::NodeInfoKey;
    use switchboard_raft_store::node_info::NodeInfoSite;

    use super::*;
    use crate::signing::SigningKey;
    use crate::signing::generate_signing_key;

    fn key() -> SigningKey {
        let (pkcs8, _) = generate_signing_key().unwrap();
        SigningKey::from_pkcs8(1, &pkcs8).unwrap()
    }

    fn signed(key: &SigningKey, epoch: u64, sites: &[&str]) -> pb::SignedNodeInfo {
        let document = NodeInfoDocument {
            cluster_id: "c".into(),
            era: 0,
            epoch,
            issued_at_ms: 0,
            sites: sites
                .iter()
                .enumerate()
                .map(|(i, api)| NodeInfoSite {
                    site_id: i as u64 + 1,
                    name: format!("s{i}"),
                    api_addr: (*api).into(),
                    voter: true,
                    draining: false,
                })
                .collect(),
            relays: vec![],
            notice: String::new(),
            signing_key_id: 1,
            next_key_id: 1,
            keys: vec![NodeInfoKey {
                key_id: 1,
                public_key: key.public_key(),
                endorsement: None,
            }],
            maintenance: vec![],
        };
        let bytes = document.encode();
        pb::SignedNodeInfo {
            signature: key.sign(&bytes),
            document: bytes,
            key_id: 1,
            era: 0,
            epoch,
        }
    }

    #[test]
    fn a_good_list_survives_empty_documents_rollbacks_and_a_damaged_cache() {
        let key = key();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache.json");
        let directory = Directory::new(
            "c",
            vec!["seed:1".into()],
            vec![(1, key.public_key())],
            Some(cache.clone()),
        );
        assert_eq!(directory.endpoints(), vec!["seed:1"]);
        assert_eq!(directory.offer(&signed(&key, 2, &["a:1", "b:1"])), Ok(true));
        assert_eq!(directory.endpoints(), vec!["a:1", "b:1", "seed:1"]);
        assert!(
            directory.offer(&signed(&key, 3, &[])).is_err(),
            "an empty list never replaces a good one"
        );
        assert!(matches!(
            directory.offer(&signed(&key, 1, &["old:1"])),
            Err(TrustError::NotNewer { .. })
        ));
        assert_eq!(directory.endpoints(), vec!["a:1", "b:1", "seed:1"]);

        // The cache reloads; a damaged cache is ignored and the seeds remain.
        let reloaded = Directory::new(
            "c",
            vec!["seed:1".into()],
            vec![(1, key.public_key())],
            Some(cache.clone()),
        );
        assert_eq!(reloaded.endpoints(), vec!["a:1", "b:1", "seed:1"]);
        let text = std::fs::read_to_string(&cache).unwrap();
        std::fs::write(
            &cache,
            text.replacen("\"signature\": \"", "\"signature\": \"00", 1),
        )
        .unwrap();
        let damaged = Directory::new(
            "c",
            vec!["seed:1".into()],
            vec![(1, key.public_key())],
            Some(cache),
        );
        assert_eq!(damaged.endpoints(), vec!["seed:1"]);
    }

    proptest! {
        /// Garbage cache files never panic and never load.
        #[test]
        fn garbage_cache_files_are_refused(text in ".{0,400}") {
            prop_assert!(CacheFile::parse(&text).is_err() || text.contains("format"));
        }

        /// Mutated caches never panic the directory; if one still loads, it
        /// names only what its signature covers.
        #[test]
        fn mutated_cache_files_never_panic(position in 0usize..2_000, replacement in "[ -~]") {
            let key = key();
            let dir = tempfile::tempdir().unwrap();
            let cache = dir.path().join("cache.json");
            let directory = Directory::new("c", vec![], vec![(1, key.public_key())], Some(cache.clone()));
            directory.offer(&signed(&key, 2, &["a:1"])).unwrap();
            let mut text = std::fs::read_to_string(&cache).unwrap();
            let at = position % text.len();
            if text.is_char_boundary(at) && text.is_char_boundary(at + 1) {
                text.replace_range(at..at + 1, &replacement);
            }
            std::fs::write(&cache, &text).unwrap();
            let reloaded = Directory::new("c", vec![], vec![(1, key.public_key())], Some(cache));
            let endpoints = reloaded.endpoints();
            prop_assert!(endpoints.is_empty() || endpoints == vec!["a:1".to_owned()]);
        }
    }
}
