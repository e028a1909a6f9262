//! Connect tickets kept for reuse: a resolve of the same route, generation
//! and signing key while a ticket issued for it still has at least half its
//! life left gets that ticket again instead of a fresh Ed25519 signature
//! (the largest cost of a local resolve). A ticket names no client, so the
//! one kept is the one a fresh signature would have given, bar its expiry.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use switchboard_proto::v1 as pb;

/// Tickets kept at most: the hot routes. About 300 bytes each (ids, body,
/// signature), so 4 to 5 MiB.
pub const TICKET_CACHE_ENTRIES_MAX: usize = 16_384;
/// Shards, so concurrent resolves seldom wait on one lock.
const SHARDS: usize = 16;

/// What a ticket was issued for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TicketFor<'a> {
    pub host_id: &'a str,
    pub relay_id: &'a str,
    pub generation: u64,
    pub key_id: u64,
}

struct Kept {
    host_id: String,
    relay_id: String,
    generation: u64,
    key_id: u64,
    expires_at_ms: u64,
    ticket: pb::ConnectTicket,
}

impl Kept {
    fn is_for(&self, wanted: &TicketFor<'_>) -> bool {
        self.host_id == wanted.host_id
            && self.relay_id == wanted.relay_id
            && self.generation == wanted.generation
            && self.key_id == wanted.key_id
    }
}

/// The kept tickets, by a hash of what they were issued for (checked in
/// full on a hit, so a hash collision only misses).
pub struct TicketCache {
    shards: Vec<Mutex<HashMap<u64, Kept>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for TicketCache {
    fn default() -> Self {
        TicketCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl TicketCache {
    fn slot(&self, wanted: &TicketFor<'_>) -> (usize, u64) {
        let hash = self.hasher.hash_one(wanted);
        ((hash % SHARDS as u64) as usize, hash)
    }

    /// A kept ticket for `wanted` with at least `ttl_ms / 2` left at `now_ms`.
    pub fn get(
        &self,
        wanted: &TicketFor<'_>,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Option<pb::ConnectTicket> {
        let (shard, hash) = self.slot(wanted);
        let shard = self.shards[shard].lock();
        let kept = shard.get(&hash)?;
        let fresh = kept.expires_at_ms >= now_ms.saturating_add(ttl_ms / 2);
        (fresh && kept.is_for(wanted)).then(|| kept.ticket.clone())
    }

    /// Keeps `ticket`, issued for `wanted`, expiring at `expires_at_ms`. A
    /// full shard is emptied first: bounded, and what is hot comes back.
    pub fn keep(&self, wanted: &TicketFor<'_>, expires_at_ms: u64, ticket: pb::ConnectTicket) {
        let (shard, hash) = self.slot(wanted);
        let mut shard = self.shards[shard].lock();
        if shard.len() >= TICKET_CACHE_ENTRIES_MAX / SHARDS {
            shard.clear();
        }
        shard.insert(
            hash,
            Kept {
                host_id: wanted.host_id.to_owned(),
                relay_id: wanted.relay_id.to_owned(),
                generation: wanted.generation,
                key_id: wanted.key_id,
                expires_at_ms,
                ticket,
            },
        );
    }

    /// Tickets kept now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(tag: u8) -> pb::ConnectTicket {
        pb::ConnectTicket {
            body: vec![tag],
            signature: vec![tag; 64],
        }
    }

    fn wanted(generation: u64) -> TicketFor<'static> {
        TicketFor {
            host_id: "h1",
            relay_id: "r1",
            generation,
            key_id: 1,
        }
    }

    #[test]
    fn a_ticket_is_reused_only_for_the_same_route_generation_and_key_while_half_fresh() {
        let cache = TicketCache::default();
        let ttl = 60_000;
        cache.keep(&wanted(3), 1_000 + ttl, ticket(7));
        assert_eq!(cache.get(&wanted(3), 1_000, ttl), Some(ticket(7)));
        assert_eq!(cache.get(&wanted(3), 1_000 + ttl / 2, ttl), Some(ticket(7)));
        assert_eq!(
            cache.get(&wanted(3), 1_001 + ttl / 2, ttl),
            None,
            "under half its life left"
        );
        assert_eq!(cache.get(&wanted(4), 1_000, ttl), None, "a new generation");
        let other_key = TicketFor {
            key_id: 2,
            ..wanted(3)
        };
        assert_eq!(cache.get(&other_key, 1_000, ttl), None, "a rotated key");
        let other_relay = TicketFor {
            relay_id: "r2",
            ..wanted(3)
        };
        assert_eq!(cache.get(&other_relay, 1_000, ttl), None, "another relay");
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TicketCache::default();
        let hosts: Vec<String> = (0..TICKET_CACHE_ENTRIES_MAX * 3)
            .map(|n| format!("h{n}"))
            .collect();
        for host in &hosts {
            let wanted = TicketFor {
                host_id: host,
                relay_id: "r",
                generation: 1,
                key_id: 1,
            };
            cache.keep(&wanted, u64::MAX, ticket(1));
        }
        assert!(cache.len() <= TICKET_CACHE_ENTRIES_MAX, "{}", cache.len());
        assert!(cache.len() > 0);
    }
}
