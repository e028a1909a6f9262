//! A cap on how much one source (an address, an identity) may hold at
//! once (handshakes in progress, watch streams), so that one caller cannot
//! take the slots every other caller needs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

/// Counts what each source holds, up to `max` each.
#[derive(Debug)]
pub struct PerSource<K: Hash + Eq + Clone> {
    held: Mutex<HashMap<K, usize>>,
    max: usize,
}

/// One slot held by a source; given back on drop.
#[derive(Debug)]
pub struct Held<K: Hash + Eq + Clone> {
    owner: Arc<PerSource<K>>,
    source: K,
}

impl<K: Hash + Eq + Clone> PerSource<K> {
    /// A cap of `max` slots per source. The map holds only sources that
    /// hold a slot, so it is bounded by what the caller bounds (handshakes
    /// in flight, watches per site).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerSource {
            held: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// A slot for `source`, or `None` if it holds `max` already.
    pub fn try_hold(self: &Arc<Self>, source: K) -> Option<Held<K>> {
        let mut held = self.held.lock();
        let count = held.entry(source.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            owner: self.clone(),
            source,
        })
    }

    /// Slots `source` holds now.
    #[cfg(test)]
    pub fn held_by(&self, source: &K) -> usize {
        self.held.lock().get(source).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock();
        if let Some(count) = held.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn one_source_is_capped_and_others_are_not_and_slots_come_back() {
        let cap = PerSource::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = cap.try_hold(a).expect("a's first");
        let _second = cap.try_hold(a).expect("a's second");
        assert!(cap.try_hold(a).is_none(), "a is at its cap");
        assert!(cap.try_hold(b).is_some(), "b has its own slots");
        drop(first);
        assert_eq!(cap.held_by(&a), 1);
        assert!(cap.try_hold(a).is_some(), "a slot came back");
    }

    #[test]
    fn a_source_that_holds_nothing_is_forgotten() {
        let cap = PerSource::new(1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        drop(cap.try_hold(a));
        assert!(cap.held.lock().is_empty());
    }
}
