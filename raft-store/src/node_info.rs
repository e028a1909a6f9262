//! The node-info document: which sites and relays exist, as hosts and
//! clients cache it on disk.
//!
//! The document is a pure function of the replicated state, so every site
//! builds the same bytes for the same (era, epoch), and signatures (Ed25519
//! is deterministic) match too. It carries relays' endpoints and admin state
//! but never their liveness or load, so the epoch moves only when
//! membership, admin state, keys or the notice do.

use serde::Deserialize;
use serde::Serialize;

use crate::command::decode_exact;
use crate::error::Error;
use crate::state::Endorsement;
use crate::state::State;
use crate::state::WindowStatus;

/// First byte of an encoded document: tells it apart from a ticket, so a
/// signature over one can never pass for the other.
pub const NODE_INFO_TAG: u8 = b'N';
/// The document format this build writes.
pub const NODE_INFO_FORMAT_VERSION: u8 = 1;
/// Largest document accepted: 10,000 relays at ~200 bytes, with room.
pub const NODE_INFO_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One site in node info.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoSite {
    /// Its id.
    pub site_id: u64,
    /// Its name.
    pub name: String,
    /// Where hosts and clients reach its API.
    pub api_addr: String,
    /// Whether it votes.
    pub voter: bool,
    /// In maintenance: prefer other sites.
    pub draining: bool,
}

/// One relay in node info: where it is and what operators decided, nothing
/// that changes by the second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoRelay {
    /// Its id.
    pub relay_id: String,
    /// Where hosts and clients reach it.
    pub endpoint: String,
    /// Its region (empty for none).
    pub region: String,
    /// active, draining, drained or maintenance.
    pub admin_state: String,
}

/// A maintenance window that is scheduled or under way, so clients can
/// tell their users ahead of time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoWindow {
    /// Its id.
    pub window_id: u64,
    /// `relay:ID` or `site:ID`.
    pub target: String,
    /// Start, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// scheduled or active.
    pub status: String,
    /// Why, as the operator said.
    pub reason: String,
}

/// A public key and who vouched for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoKey {
    /// Its id.
    pub key_id: u64,
    /// Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The previous key's signature over this one (none for the first).
    pub endorsement: Option<Endorsement>,
}

/// The document. Field order is the format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoDocument {
    /// The cluster it describes.
    pub cluster_id: String,
    /// Rises with every restore.
    pub era: u64,
    /// Rises with every change within an era.
    pub epoch: u64,
    /// When this epoch began, in Unix milliseconds of the state's clock.
    pub issued_at_ms: u64,
    /// The sites, by id.
    pub sites: Vec<NodeInfoSite>,
    /// The relays in service, by id.
    pub relays: Vec<NodeInfoRelay>,
    /// The service notice (empty for none).
    pub notice: String,
    /// The key that signs this document.
    pub signing_key_id: u64,
    /// The key that must sign the next epoch.
    pub next_key_id: u64,
    /// Public keys, oldest first, each endorsed by the one before: a client
    /// that trusts any of them can follow the chain to the signing key.
    pub keys: Vec<NodeInfoKey>,
    /// Maintenance windows scheduled or under way, by id.
    pub maintenance: Vec<NodeInfoWindow>,
}

impl NodeInfoDocument {
    /// The document for a state; `None` until a signing key exists.
    pub fn from_state(state: &State) -> Option<Self> {
        let meta = state.node_info();
        let signing = meta.current_key()?;
        Some(NodeInfoDocument {
            cluster_id: meta.cluster_id.clone(),
            era: meta.era,
            epoch: meta.epoch,
            issued_at_ms: meta.epoch_since_ms,
            sites: state
                .sites()
                .map(|(id, site)| NodeInfoSite {
                    site_id: *id,
                    name: site.name.clone(),
                    api_addr: site.api_addr.clone(),
                    voter: site.voter,
                    draining: site.draining,
                })
                .collect(),
            relays: state
                .relays()
                .map(|relay| NodeInfoRelay {
                    relay_id: relay.relay_id.to_string(),
                    endpoint: relay.endpoint.clone(),
                    region: relay.region.clone(),
                    admin_state: admin_state_name(relay.admin_state).to_owned(),
                })
                .collect(),
            notice: meta.notice.clone(),
            signing_key_id: signing.key_id,
            next_key_id: signing.key_id,
            keys: meta
                .keys
                .iter()
                .map(|key| NodeInfoKey {
                    key_id: key.key_id,
                    public_key: key.public_key.clone(),
                    endorsement: key.endorsement.clone(),
                })
                .collect(),
            maintenance: state
                .windows()
                .filter(|window| {
                    matches!(
                        window.status,
                        WindowStatus::Scheduled | WindowStatus::Active
                    )
                })
                .map(|window| NodeInfoWindow {
                    window_id: window.id,
                    target: window.target.to_string(),
                    start_ms: window.start_ms,
                    end_ms: window.end_ms,
                    status: window.status.as_str().to_owned(),
                    reason: window.reason.clone(),
                })
                .collect(),
        })
    }

    /// Tag, version, then postcard: the exact bytes that are signed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![NODE_INFO_TAG, NODE_INFO_FORMAT_VERSION];
        postcard::to_io(self, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads a document; refuses oversized input, other tags, unknown
    /// versions and trailing bytes, never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let what = "node info";
        if bytes.len() > NODE_INFO_BYTES_MAX {
            return Err(Error::Decode {
                what,
                reason: format!("{} bytes, at most {NODE_INFO_BYTES_MAX}", bytes.len()),
            });
        }
        match bytes {
            [NODE_INFO_TAG, NODE_INFO_FORMAT_VERSION, body @ ..] => decode_exact(what, body),
            [NODE_INFO_TAG, version, ..] => Err(Error::UnknownVersion {
                what,
                found: *version,
                supported: NODE_INFO_FORMAT_VERSION,
            }),
            _ => Err(Error::Decode {
                what,
                reason: "not a node-info document".into(),
            }),
        }
    }

    /// (era, epoch): documents are ordered by it.
    pub fn version(&self) -> (u64, u64) {
        (self.era, self.epoch)
    }
}

fn admin_state_name(state: crate::state::AdminState) -> &'static str {
    match state {
        crate::state::AdminState::Active => "active",
        crate::state::AdminState::Draining => "draining",
        crate::state::AdminState::Drained => "drained",
        crate::state::AdminState::Maintenance => "maintenance",
    }
}

/// The bytes a key signs to endorse the next key.
pub fn endorsement_message(key_id: u64, public_key: &[u8]) -> Vec<u8> {
    let mut message = b"switchboard endorses key ".to_vec();
    message.extend_from_slice(&key_id.to_be_bytes());
    message.extend_from_slice(public_key);
    message
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn document() -> NodeInfoDocument {
        NodeInfoDocument {
            cluster_id: "c".into(),
            era: 1,
            epoch: 7,
            issued_at_ms: 5,
            sites: vec![NodeInfoSite {
                site_id: 1,
                name: "s".into(),
                api_addr: "s:1".into(),
                voter: true,
                draining: false,
            }],
            relays: vec![],
            notice: String::new(),
            signing_key_id: 1,
            next_key_id: 1,
            keys: vec![NodeInfoKey {
                key_id: 1,
                public_key: vec![0; 32],
                endorsement: None,
            }],
            maintenance: vec![],
        }
    }

    #[test]
    fn documents_round_trip_and_refuse_other_bytes() {
        let bytes = document().encode();
        assert_eq!(NodeInfoDocument::decode(&bytes).unwrap(), document());
        let mut ticket_like = bytes.clone();
        ticket_like[0] = b'T';
        assert!(NodeInfoDocument::decode(&ticket_like).is_err());
        let mut newer = bytes.clone();
        newer[1] = 9;
        assert!(matches!(
            NodeInfoDocument::decode(&newer),
            Err(Error::UnknownVersion { .. })
        ));
        let mut trailing = bytes;
        trailing.push(0);
        assert!(NodeInfoDocument::decode(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = NodeInfoDocument::decode(&bytes);
            let mut tagged = vec![NODE_INFO_TAG, NODE_INFO_FORMAT_VERSION];
            tagged.extend(bytes);
            let _ = NodeInfoDocument::decode(&tagged);
        }
    }
}
