//! A site's signing of node info and connect tickets.
//!
//! The private key lives sealed in the replicated state; a site that holds
//! the state key opens it on first use and keeps it in memory. The signed
//! document of the current epoch is cached, so serving node info costs a
//! pointer copy.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_raft_store::command::NewSigningKey;
use switchboard_raft_store::node_info::NodeInfoDocument;
use switchboard_raft_store::node_info::endorsement_message;
use switchboard_raft_store::state::Endorsement;
use switchboard_raft_store::state::RouteView;
use switchboard_raft_store::state::SigningKeyRecord;
use switchboard_raft_store::state::State;

use switchboard_api::ApiError;
use switchboard_api::SigningKey;
use switchboard_api::StateKey;
use switchboard_api::Ticket;
use switchboard_api::generate_signing_key;
use switchboard_api::seal_context;

/// A signed document and its (era, epoch).
type SignedVersion = ((u64, u64), Arc<pb::SignedNodeInfo>);

/// Signs node info and tickets for one site.
pub struct Signer {
    state_key: Option<StateKey>,
    opened: Mutex<HashMap<u64, Arc<SigningKey>>>,
    /// The last document signed.
    document: Mutex<Option<SignedVersion>>,
    /// Tickets issued, reused while at least half fresh.
    tickets: super::ticket_cache::TicketCache,
}

impl Signer {
    /// A signer; without a state key it signs nothing.
    pub fn new(state_key: Option<StateKey>) -> Self {
        Signer {
            state_key,
            opened: Mutex::new(HashMap::new()),
            document: Mutex::new(None),
            tickets: Default::default(),
        }
    }

    /// Whether this site can sign at all.
    pub fn can_sign(&self) -> bool {
        self.state_key.is_some()
    }

    /// The current signing key of `state`, opened.
    pub fn current_key(&self, state: &State) -> Option<Arc<SigningKey>> {
        let record = state.node_info().current_key()?;
        let mut opened = self.opened.lock();
        if let Some(key) = opened.get(&record.key_id) {
            return Some(key.clone());
        }
        let state_key = self.state_key.as_ref()?;
        let key = state_key
            .open(&record.sealed_private_key, &seal_context(record.key_id))
            .and_then(|pkcs8| SigningKey::from_pkcs8(record.key_id, &pkcs8));
        match key {
            Ok(key) => {
                let key = Arc::new(key);
                opened.insert(record.key_id, key.clone());
                Some(key)
            }
            Err(error) => {
                tracing::error!(key_id = record.key_id, %error, "cannot open the node-info signing key");
                None
            }
        }
    }

    /// Whether this site's state key opens a sealed signing key.
    pub fn can_open(&self, record: &SigningKeyRecord) -> bool {
        self.state_key.as_ref().is_some_and(|state_key| {
            state_key
                .open(&record.sealed_private_key, &seal_context(record.key_id))
                .and_then(|pkcs8| SigningKey::from_pkcs8(record.key_id, &pkcs8))
                .is_ok()
        })
    }

    /// The signed node info of `state`'s current epoch.
    pub fn node_info(&self, state: &State) -> Option<Arc<pb::SignedNodeInfo>> {
        let version = state.node_info().version();
        if let Some((cached, signed)) = &*self.document.lock()
            && *cached == version
        {
            return Some(signed.clone());
        }
        let document = NodeInfoDocument::from_state(state)?;
        let key = self.current_key(state)?;
        let bytes = document.encode();
        let signed = Arc::new(pb::SignedNodeInfo {
            signature: key.sign(&bytes),
            document: bytes,
            key_id: key.key_id,
            era: document.era,
            epoch: document.epoch,
        });
        *self.document.lock() = Some((version, signed.clone()));
        Some(signed)
    }

    /// The document for a caller that knows `known`: `None` when it is current.
    pub fn node_info_if_newer(
        &self,
        state: &State,
        known: Option<&pb::NodeInfoVersion>,
    ) -> Option<pb::SignedNodeInfo> {
        let current = state.node_info().version();
        let known = known.map_or((0, 0), |k| (k.era, k.epoch));
        if known >= current {
            return None;
        }
        self.node_info(state).map(|signed| (*signed).clone())
    }

    /// A connect ticket for a resolved route, valid for `ttl_ms`.
    pub fn ticket(
        &self,
        state: &State,
        route: &RouteView,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Option<pb::ConnectTicket> {
        let wanted = super::ticket_cache::TicketFor {
            host_id: route.host_id.as_str(),
            relay_id: route.relay_id.as_str(),
            generation: route.generation,
            key_id: state.node_info().current_key()?.key_id,
        };
        if let Some(kept) = self.tickets.get(&wanted, now_ms, ttl_ms) {
            return Some(kept);
        }
        let key = self.current_key(state)?;
        let ticket = Ticket {
            cluster_id: state.node_info().cluster_id.clone(),
            host_id: route.host_id.to_string(),
            relay_id: route.relay_id.to_string(),
            generation: route.generation,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            key_id: key.key_id,
        };
        let body = ticket.encode();
        let signed = pb::ConnectTicket {
            signature: key.sign(&body),
            body,
        };
        self.tickets
            .keep(&wanted, ticket.expires_at_ms, signed.clone());
        Some(signed)
    }

    /// A new signing key for `state`, sealed, endorsed by the current one
    /// (if any): the command that installs it.
    pub fn new_key(&self, state: &State, cluster_id: &str) -> Result<NewSigningKey, ApiError> {
        let state_key = self.state_key.as_ref().ok_or_else(|| {
            ApiError::FailedPrecondition("this site has no state key (state_key_file)".into())
        })?;
        let (pkcs8, public_key) =
            generate_signing_key().map_err(|e| ApiError::Internal(e.to_string()))?;
        let (key_id, endorsement) = match state.node_info().current_key() {
            None => (1, None),
            Some(current) => {
                let signer = self.current_key(state).ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "this site cannot open signing key {}",
                        current.key_id
                    ))
                })?;
                let key_id = current.key_id + 1;
                let signature = signer.sign(&endorsement_message(key_id, &public_key));
                (
                    key_id,
                    Some(Endorsement {
                        by_key_id: current.key_id,
                        signature,
                    }),
                )
            }
        };
        let sealed_private_key = state_key
            .seal(&pkcs8, &seal_context(key_id))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let cluster_id = if state.node_info().cluster_id.is_empty() {
            cluster_id.to_owned()
        } else {
            state.node_info().cluster_id.clone()
        };
        Ok(NewSigningKey {
            cluster_id,
            key_id,
            public_key,
            sealed_private_key,
            endorsement,
        })
    }
}
