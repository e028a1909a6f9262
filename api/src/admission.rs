//! A relay's admission control, checked offline.
//!
//! A relay admits a host only at the host's current generation, and a
//! client only with a connect ticket that is signed by a key it trusts,
//! names this relay, names the current generation of its host and has not
//! expired. It keeps admitting while the control plane elects a leader (it
//! needs no call to check a ticket), fails closed on anything it cannot
//! verify, and stops admitting new clients once its own lease has gone
//! unacknowledged for the lease time.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use crate::signing::Ticket;
use crate::signing::TrustError;
use crate::signing::TrustStore;

/// Why a relay refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The relay's own lease has lapsed: it may be carrying hosts that moved.
    #[error("this relay's lease is not acknowledged; it admits no new clients")]
    LeaseExpired,
    /// No route to this relay is known for the host.
    #[error("host {0} is not routed to this relay")]
    UnknownHost(String),
    /// The host presents an older generation than the relay knows.
    #[error("host {host} is at generation {current} here, not {presented}")]
    StaleGeneration {
        /// The host.
        host: String,
        /// The generation the relay knows.
        current: u64,
        /// The generation presented.
        presented: u64,
    },
    /// The ticket does not verify.
    #[error("ticket refused: {0}")]
    Ticket(#[from] TrustError),
}

struct Lease {
    acknowledged_at: Option<Instant>,
    ttl: Duration,
}

/// One relay's view: the hosts routed to it, the keys it trusts, its lease.
pub struct Admission {
    relay_id: String,
    trust: Mutex<TrustStore>,
    generations: Mutex<HashMap<String, u64>>,
    lease: Mutex<Lease>,
}

impl Admission {
    /// Admission for `relay_id`, trusting `trust`.
    pub fn new(relay_id: &str, trust: TrustStore) -> Self {
        Admission {
            relay_id: relay_id.to_owned(),
            trust: Mutex::new(trust),
            generations: Mutex::new(HashMap::new()),
            lease: Mutex::new(Lease {
                acknowledged_at: None,
                ttl: Duration::ZERO,
            }),
        }
    }

    /// Keys learned from node info (rotations reach relays this way).
    pub fn set_trust(&self, trust: TrustStore) {
        *self.trust.lock() = trust;
    }

    /// A host is routed here at `generation` (from the relay's watch).
    pub fn route_attached(&self, host_id: &str, generation: u64) {
        self.generations
            .lock()
            .insert(host_id.to_owned(), generation);
    }

    /// A host left.
    pub fn route_detached(&self, host_id: &str) {
        self.generations.lock().remove(host_id);
    }

    /// Forgets every route (before a watch resync).
    pub fn clear_routes(&self) {
        self.generations.lock().clear();
    }

    /// How many hosts are routed here.
    pub fn hosts(&self) -> usize {
        self.generations.lock().len()
    }

    /// The leader acknowledged a heartbeat at `now`; the lease lasts `ttl`.
    pub fn heartbeat_acknowledged(&self, now: Instant, ttl: Duration) {
        let mut lease = self.lease.lock();
        lease.acknowledged_at = Some(now);
        lease.ttl = ttl;
    }

    /// Whether the lease holds at `now`.
    pub fn lease_holds(&self, now: Instant) -> bool {
        let lease = self.lease.lock();
        lease
            .acknowledged_at
            .is_some_and(|at| now.duration_since(at) < lease.ttl)
    }

    /// Admits host `host_id` presenting `generation`.
    pub fn admit_host(&self, host_id: &str, generation: u64) -> Result<(), AdmissionError> {
        let generations = self.generations.lock();
        match generations.get(host_id) {
            Some(&current) if current == generation => Ok(()),
            Some(&current) => Err(AdmissionError::StaleGeneration {
                host: host_id.to_owned(),
                current,
                presented: generation,
            }),
            None => Err(AdmissionError::UnknownHost(host_id.to_owned())),
        }
    }

    /// Admits a client with a ticket, at `now` (monotonic, for the lease)
    /// and `now_ms` (Unix milliseconds, for the ticket's expiry).
    pub fn admit_client(
        &self,
        body: &[u8],
        signature: &[u8],
        now: Instant,
        now_ms: u64,
    ) -> Result<Ticket, AdmissionError> {
        if !self.lease_holds(now) {
            return Err(AdmissionError::LeaseExpired);
        }
        let host = Ticket::decode(body)?.host_id;
        let current = self.generations.lock().get(&host).copied();
        let trust = self.trust.lock();
        Ok(Ticket::verify(
            body,
            signature,
            &trust,
            &self.relay_id,
            current,
            now_ms,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;
    use crate::signing::generate_signing_key;

    fn signer() -> SigningKey {
        let (pkcs8, _) = generate_signing_key().unwrap();
        SigningKey::from_pkcs8(1, &pkcs8).unwrap()
    }

    fn ticket(relay: &str, generation: u64, expires_at_ms: u64) -> Ticket {
        Ticket {
            cluster_id: "c".into(),
            host_id: "h".into(),
            relay_id: relay.into(),
            generation,
            expires_at_ms,
            key_id: 1,
        }
    }

    #[test]
    fn a_relay_admits_only_the_current_generation_with_a_valid_ticket_while_its_lease_holds() {
        let key = signer();
        let admission = Admission::new("r1", TrustStore::new("c", [(1, key.public_key())]));
        let now = Instant::now();
        admission.route_attached("h", 4);
        let good = ticket("r1", 4, 10_000).encode();
        assert_eq!(
            admission.admit_client(&good, &key.sign(&good), now, 0),
            Err(AdmissionError::LeaseExpired),
            "no acknowledged lease yet: fail closed"
        );
        admission.heartbeat_acknowledged(now, Duration::from_secs(10));
        assert!(
            admission
                .admit_client(&good, &key.sign(&good), now, 0)
                .is_ok()
        );
        assert!(admission.admit_host("h", 4).is_ok());
        assert!(matches!(
            admission.admit_host("h", 3),
            Err(AdmissionError::StaleGeneration { .. })
        ));

        let stale = ticket("r1", 3, 10_000).encode();
        assert!(matches!(
            admission.admit_client(&stale, &key.sign(&stale), now, 0),
            Err(AdmissionError::Ticket(TrustError::StaleGeneration { .. }))
        ));
        let other = ticket("r2", 4, 10_000).encode();
        assert!(matches!(
            admission.admit_client(&other, &key.sign(&other), now, 0),
            Err(AdmissionError::Ticket(_))
        ));
        let expired = ticket("r1", 4, 10).encode();
        assert!(matches!(
            admission.admit_client(&expired, &key.sign(&expired), now, 10),
            Err(AdmissionError::Ticket(TrustError::Expired))
        ));
        let forged = signer().sign(&good);
        assert!(matches!(
            admission.admit_client(&good, &forged, now, 0),
            Err(AdmissionError::Ticket(TrustError::BadSignature))
        ));
        admission.route_detached("h");
        assert!(
            admission
                .admit_client(&good, &key.sign(&good), now, 0)
                .is_err(),
            "a host that left is refused"
        );
        assert_eq!(
            admission.admit_client(&good, &key.sign(&good), now + Duration::from_secs(11), 0),
            Err(AdmissionError::LeaseExpired)
        );
    }
}
