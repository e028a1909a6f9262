//! Remembered answers, so a retried write returns its first answer.
//!
//! Bounded twice over, deterministically (every site evicts the same entries
//! at the same log index): by age in state time, and by count.

use std::sync::Arc;

use imbl::OrdMap;

use crate::ids::RequestId;
use crate::state::records::RequestRecord;

/// How long an answer is kept, in state-clock milliseconds. A client retries
/// for seconds; a quarter hour covers retries across a long election, a site
/// restart and a client's own restart.
pub const REQUEST_RETENTION_MS: u64 = 15 * 60 * 1000;

/// Most answers kept at once. At ~150 bytes each this bounds the table to
/// about 30 MiB of memory and disk; past it the oldest go first.
pub const REQUESTS_RETAINED_MAX: usize = 200_000;

/// The answers, by request id, and the order they were applied in.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    /// Shared records: a write copies whole map nodes, and copying a
    /// record (its reply's text) would allocate for every one in the node.
    by_id: OrdMap<RequestId, Arc<RequestRecord>>,
    /// log index -> request id, oldest first, for eviction.
    by_index: OrdMap<u64, RequestId>,
}

impl RequestLog {
    /// The answer remembered for a request id.
    pub fn get(&self, request_id: RequestId) -> Option<&RequestRecord> {
        self.by_id.get(&request_id).map(|record| &**record)
    }

    /// How many answers are remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every remembered answer, in request-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&RequestId, &RequestRecord)> {
        self.by_id.iter().map(|(id, record)| (id, &**record))
    }

    /// Remembers an answer.
    pub(crate) fn insert(&mut self, request_id: RequestId, record: RequestRecord) {
        let index = record.reply.log_index;
        if let Some(previous) = self.by_id.insert(request_id, Arc::new(record)) {
            self.by_index.remove(&previous.reply.log_index);
        }
        self.by_index.insert(index, request_id);
    }

    /// Forgets answers past their age or over the count, oldest first, and
    /// returns the ids forgotten.
    pub(crate) fn evict(&mut self, clock_ms: u64) -> Vec<RequestId> {
        let mut evicted = Vec::new();
        while let Some(&(index, request_id)) = self.by_index.get_min() {
            let record = self
                .by_id
                .get(&request_id)
                .expect("by_index and by_id hold the same requests");
            let expired = record.applied_at_ms.saturating_add(REQUEST_RETENTION_MS) < clock_ms;
            let over = self.by_id.len() > REQUESTS_RETAINED_MAX;
            if !expired && !over {
                break;
            }
            self.by_index.remove(&index);
            self.by_id.remove(&request_id);
            evicted.push(request_id);
        }
        evicted
    }
}
