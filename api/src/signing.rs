//! Ed25519 signatures for node info and connect tickets, the sealing of
//! private keys at rest, and the trust a client or relay places in keys.
//!
//! - A site seals a signing key with AES-256-GCM under the state key from
//!   its configuration before the key enters the replicated state.
//! - Any site that holds the state key signs the node-info document of the
//!   current epoch (Ed25519 is deterministic: every site signs alike) and
//!   the connect tickets it hands out.
//! - A [`TrustStore`] starts from keys the caller was given (the seed) and
//!   learns a new key only from a document that a trusted key endorses.

use std::collections::BTreeMap;

use ring::aead;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use ring::signature::ED25519;
use ring::signature::Ed25519KeyPair;
use ring::signature::KeyPair;
use ring::signature::UnparsedPublicKey;
use serde::Deserialize;
use serde::Serialize;
use switchboard_raft_store::node_info::NodeInfoDocument;
use switchboard_raft_store::node_info::endorsement_message;

use crate::file_error::FileError;
use crate::file_error::KeyError;

/// Nonce length of AES-256-GCM.
const NONCE_BYTES: usize = 12;

/// The key that seals signing keys at rest: 32 bytes, hex in a file, the
/// same on every site.
pub struct StateKey {
    key: aead::LessSafeKey,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// A key from 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes)
            .map_err(|_| KeyError::StateKeyLength(bytes.len()))?;
        Ok(StateKey {
            key: aead::LessSafeKey::new(unbound),
        })
    }

    /// A key from a file holding hex.
    pub fn from_hex_file(path: &std::path::Path) -> Result<Self, FileError> {
        let bytes = read_hex_file(path)?;
        StateKey::new(&bytes).map_err(|e| FileError::invalid(path, e))
    }

    /// Nonce, then ciphertext and tag. `context` is bound in (the key id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::NoRandomness)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| KeyError::NoRandomness)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens what `seal` made with the same context.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_BYTES {
            return Err(KeyError::DoesNotOpen);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce =
            aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::DoesNotOpen)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, aead::Aad::from(context), &mut buffer)
            .map_err(|_| KeyError::DoesNotOpen)?;
        Ok(plaintext.to_vec())
    }
}

/// The bytes of a file holding hex (surrounding whitespace ignored).
pub(crate) fn read_hex_file(path: &std::path::Path) -> Result<Vec<u8>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    hex::decode(text.trim()).map_err(|e| FileError::invalid(path, format!("not hex: {e}")))
}

/// A fresh Ed25519 key: (PKCS#8 private key, public key).
pub fn generate_signing_key() -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::NoRandomness)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::NotPkcs8)?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// A signing key in memory.
pub struct SigningKey {
    /// The key's id, as node info and tickets name it.
    pub key_id: u64,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// From PKCS#8 bytes.
    pub fn from_pkcs8(key_id: u64, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::NotPkcs8)?;
        Ok(SigningKey { key_id, pair })
    }

    /// Signs bytes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The public half.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// The AAD that binds a sealed key to its id.
pub fn seal_context(key_id: u64) -> Vec<u8> {
    format!("switchboard signing key {key_id}").into_bytes()
}

/// Whether `signature` is `public_key`'s Ed25519 signature over `message`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Why a document or ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The bytes are not a document or ticket of this format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The document names another cluster.
    #[error("for cluster {found:?}, not {expected:?}")]
    WrongCluster {
        /// The cluster this store trusts.
        expected: String,
        /// The cluster the document names.
        found: String,
    },
    /// Signed by a key this store does not trust.
    #[error("signed by key {0}, which no trusted key vouches for")]
    UnknownKey(u64),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Not newer (era, epoch) than the document already held.
    #[error("version {found:?} is not newer than {known:?}")]
    NotNewer {
        /// The (era, epoch) held.
        known: (u64, u64),
        /// The (era, epoch) offered.
        found: (u64, u64),
    },
    /// The ticket has expired.
    #[error("expired")]
    Expired,
    /// The ticket is for another relay.
    #[error("for relay {0}")]
    OtherRelay(String),
    /// The ticket's generation is older than the relay's route.
    #[error("generation {found} is not the current {current}")]
    StaleGeneration {
        /// The generation the relay knows.
        current: u64,
        /// The ticket's generation.
        found: u64,
    },
}

/// Keys a client or relay trusts, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// The cluster whose keys these are.
    pub cluster_id: String,
    /// Trusted public keys by key id.
    pub keys: BTreeMap<u64, Vec<u8>>,
}

impl TrustStore {
    /// Trust in the given keys of one cluster.
    pub fn new(cluster_id: &str, keys: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Self {
        TrustStore {
            cluster_id: cluster_id.to_owned(),
            keys: keys.into_iter().collect(),
        }
    }

    /// The document's keys this store trusts, directly or through a chain
    /// of endorsements from a trusted key.
    fn reachable_keys(&self, document: &NodeInfoDocument) -> BTreeMap<u64, Vec<u8>> {
        let mut trusted = self.keys.clone();
        let mut changed = true;
        while changed {
            changed = false;
            for key in &document.keys {
                if trusted.contains_key(&key.key_id) {
                    continue;
                }
                let Some(endorsement) = &key.endorsement else {
                    continue;
                };
                let Some(endorser) = trusted.get(&endorsement.by_key_id) else {
                    continue;
                };
                if verify(
                    endorser,
                    &endorsement_message(key.key_id, &key.public_key),
                    &endorsement.signature,
                ) {
                    trusted.insert(key.key_id, key.public_key.clone());
                    changed = true;
                }
            }
        }
        trusted
    }

    /// Checks a signed document: it decodes, names this cluster, and its
    /// signing key is trusted (or endorsed by one that is) and signed these
    /// exact bytes. Returns the document; the caller decides if it is newer.
    pub fn check(&self, document: &[u8], signature: &[u8]) -> Result<NodeInfoDocument, TrustError> {
        let parsed =
            NodeInfoDocument::decode(document).map_err(|e| TrustError::Malformed(e.to_string()))?;
        if parsed.cluster_id != self.cluster_id {
            return Err(TrustError::WrongCluster {
                expected: self.cluster_id.clone(),
                found: parsed.cluster_id,
            });
        }
        let trusted = self.reachable_keys(&parsed);
        let key = trusted
            .get(&parsed.signing_key_id)
            .ok_or(TrustError::UnknownKey(parsed.signing_key_id))?;
        if !verify(key, document, signature) {
            return Err(TrustError::BadSignature);
        }
        Ok(parsed)
    }

    /// After accepting a document: trust every key it vouches for.
    pub fn learn(&mut self, document: &NodeInfoDocument) {
        self.keys = self.reachable_keys(document);
    }
}

/// First byte of an encoded ticket (node info starts with `N`).
pub const TICKET_TAG: u8 = b'T';
/// The ticket format this build writes.
pub const TICKET_FORMAT_VERSION: u8 = 1;
/// Largest ticket accepted.
pub const TICKET_BYTES_MAX: usize = 1024;

/// Permission for a client to reach one host through one relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The cluster that issued the ticket.
    pub cluster_id: String,
    /// The host the client may reach.
    pub host_id: String,
    /// The relay that carries it.
    pub relay_id: String,
    /// The route's generation.
    pub generation: u64,
    /// When the ticket expires, Unix ms.
    pub expires_at_ms: u64,
    /// The key that signed it.
    pub key_id: u64,
}

impl Ticket {
    /// Tag, version, postcard: the signed bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TICKET_TAG, TICKET_FORMAT_VERSION];
        postcard::to_io(self, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads a ticket's body, never panicking.
    pub fn decode(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > TICKET_BYTES_MAX {
            return Err(TrustError::Malformed("ticket too long".into()));
        }
        match bytes {
            [TICKET_TAG, TICKET_FORMAT_VERSION, body @ ..] => {
                let (ticket, rest) = postcard::take_from_bytes(body)
                    .map_err(|e| TrustError::Malformed(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(TrustError::Malformed("trailing bytes".into()));
                }
                Ok(ticket)
            }
            _ => Err(TrustError::Malformed("not a ticket".into())),
        }
    }

    /// Checks a ticket presented to relay `relay_id`, whose current
    /// generation for the ticket's host is `current_generation`.
    pub fn verify(
        body: &[u8],
        signature: &[u8],
        trust: &TrustStore,
        relay_id: &str,
        current_generation: Option<u64>,
        now_ms: u64,
    ) -> Result<Ticket, TrustError> {
        let ticket = Ticket::decode(body)?;
        if ticket.cluster_id != trust.cluster_id {
            return Err(TrustError::WrongCluster {
                expected: trust.cluster_id.clone(),
                found: ticket.cluster_id,
            });
        }
        let key = trust
            .keys
            .get(&ticket.key_id)
            .ok_or(TrustError::UnknownKey(ticket.key_id))?;
        if !verify(key, body, signature) {
            return Err(TrustError::BadSignature);
        }
        if ticket.expires_at_ms <= now_ms {
            return Err(TrustError::Expired);
        }
        if ticket.relay_id != relay_id {
            return Err(TrustError::OtherRelay(ticket.relay_id));
        }
        match current_generation {
            Some(current) if current == ticket.generation => Ok(ticket),
            Some(current) => Err(TrustError::StaleGeneration {
                current,
                found: ticket.generation,
            }),
            None => Err(TrustError::StaleGeneration {
                current: 0,
                found: ticket.generation,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_raft_store::node_info::NodeInfoKey;
    use switchboard_raft_store::state::Endorsement;

    use super::*;

    fn document(keys: Vec<NodeInfoKey>, signing_key_id: u64) -> NodeInfoDocument {
        NodeInfoDocument {
            cluster_id: "c".into(),
            era: 1,
            epoch: 3,
            issued_at_ms: 0,
            sites: vec![],
            relays: vec![],
            notice: String::new(),
            signing_key_id,
            next_key_id: signing_key_id,
            keys,
            maintenance: vec![],
        }
    }

    fn key(id: u64) -> SigningKey {
        let (pkcs8, _) = generate_signing_key().unwrap();
        SigningKey::from_pkcs8(id, &pkcs8).unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_the_state_key_and_context() {
        let state_key = StateKey::new(&[3u8; 32]).unwrap();
        let sealed = state_key.seal(b"secret", &seal_context(1)).unwrap();
        assert_eq!(
            state_key.open(&sealed, &seal_context(1)).unwrap(),
            b"secret"
        );
        assert!(state_key.open(&sealed, &seal_context(2)).is_err());
        assert!(
            StateKey::new(&[4u8; 32])
                .unwrap()
                .open(&sealed, &seal_context(1))
                .is_err()
        );
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "never in the clear"
        );
    }

    #[test]
    fn a_rotated_key_is_trusted_through_its_endorsement() {
        let first = key(1);
        let second = key(2);
        let endorsement = Endorsement {
            by_key_id: 1,
            signature: first.sign(&endorsement_message(2, &second.public_key())),
        };
        let keys = vec![
            NodeInfoKey {
                key_id: 1,
                public_key: first.public_key(),
                endorsement: None,
            },
            NodeInfoKey {
                key_id: 2,
                public_key: second.public_key(),
                endorsement: Some(endorsement),
            },
        ];
        let bytes = document(keys.clone(), 2).encode();
        let signature = second.sign(&bytes);
        let mut trust = TrustStore::new("c", [(1, first.public_key())]);
        let accepted = trust.check(&bytes, &signature).unwrap();
        trust.learn(&accepted);
        assert!(trust.keys.contains_key(&2));

        // Signed by an unknown key with a forged endorsement: refused.
        let rogue = key(3);
        let forged = vec![NodeInfoKey {
            key_id: 3,
            public_key: rogue.public_key(),
            endorsement: Some(Endorsement {
                by_key_id: 1,
                signature: rogue.sign(b"nope"),
            }),
        }];
        let bytes = document(forged, 3).encode();
        let fresh = TrustStore::new("c", [(1, first.public_key())]);
        assert_eq!(
            fresh.check(&bytes, &rogue.sign(&bytes)),
            Err(TrustError::UnknownKey(3))
        );
        // A changed byte breaks the signature.
        let bytes = document(keys, 2).encode();
        let signature = second.sign(&bytes);
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(trust.check(&tampered, &signature).is_err());
    }

    #[test]
    fn tickets_verify_only_for_their_relay_generation_and_time() {
        let signer = key(1);
        let trust = TrustStore::new("c", [(1, signer.public_key())]);
        let ticket = Ticket {
            cluster_id: "c".into(),
            host_id: "h".into(),
            relay_id: "r1".into(),
            generation: 5,
            expires_at_ms: 1_000,
            key_id: 1,
        };
        let body = ticket.encode();
        let signature = signer.sign(&body);
        assert_eq!(
            Ticket::verify(&body, &signature, &trust, "r1", Some(5), 999).unwrap(),
            ticket
        );
        assert_eq!(
            Ticket::verify(&body, &signature, &trust, "r1", Some(5), 1_000),
            Err(TrustError::Expired)
        );
        assert_eq!(
            Ticket::verify(&body, &signature, &trust, "r2", Some(5), 0),
            Err(TrustError::OtherRelay("r1".into()))
        );
        assert!(matches!(
            Ticket::verify(&body, &signature, &trust, "r1", Some(6), 0),
            Err(TrustError::StaleGeneration { .. })
        ));
        assert_eq!(
            Ticket::verify(&body, &key(1).sign(&body), &trust, "r1", Some(5), 0),
            Err(TrustError::BadSignature)
        );
        // A node-info signature cannot pass for a ticket.
        let document_bytes = document(vec![], 1).encode();
        let document_signature = signer.sign(&document_bytes);
        assert!(
            Ticket::verify(
                &document_bytes,
                &document_signature,
                &trust,
                "r1",
                Some(5),
                0
            )
            .is_err()
        );
    }
}
