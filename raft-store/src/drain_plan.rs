//! The pace of a relay drain, as pure functions: how many hosts the next
//! batch moves, and when the drain will be done.

use crate::command::DRAIN_BATCH_HOSTS_MAX;

/// One drain batch: hosts to move now, and the fraction of a host carried
/// to the next batch (in thousandths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Hosts to move now.
    pub hosts: u32,
    /// Thousandths of a host owed to the next batch.
    pub carry_milli_hosts: u64,
}

/// The batch for `elapsed_ms` of drain at `hosts_per_second`, with the
/// carry of the batch before. Past the deadline everything left may go at
/// once (a batch at most `DRAIN_BATCH_HOSTS_MAX`).
pub fn next_batch(
    hosts_per_second: u32,
    elapsed_ms: u64,
    carry_milli_hosts: u64,
    remaining: u32,
    past_deadline: bool,
) -> Batch {
    if past_deadline {
        return Batch {
            hosts: remaining.min(DRAIN_BATCH_HOSTS_MAX),
            carry_milli_hosts: 0,
        };
    }
    let credit =
        carry_milli_hosts.saturating_add(u64::from(hosts_per_second).saturating_mul(elapsed_ms));
    let whole = credit / 1000;
    let hosts = whole
        .min(u64::from(remaining))
        .min(u64::from(DRAIN_BATCH_HOSTS_MAX)) as u32;
    // Credit is not hoarded past one second's worth: a stalled scheduler
    // does not burst when it resumes.
    let carry = (credit - u64::from(hosts) * 1000).min(u64::from(hosts_per_second) * 1000);
    Batch {
        hosts,
        carry_milli_hosts: carry,
    }
}

/// Milliseconds until `remaining` hosts are moved at `hosts_per_second`.
pub fn eta_ms(remaining: u64, hosts_per_second: u32) -> u64 {
    let rate = u64::from(hosts_per_second.max(1));
    (remaining * 1000).div_ceil(rate)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn golden_batches() {
        assert_eq!(
            next_batch(1000, 200, 0, 10_000, false),
            Batch {
                hosts: 200,
                carry_milli_hosts: 0
            }
        );
        assert_eq!(
            next_batch(1, 200, 0, 10, false),
            Batch {
                hosts: 0,
                carry_milli_hosts: 200
            }
        );
        assert_eq!(
            next_batch(1, 200, 800, 10, false),
            Batch {
                hosts: 1,
                carry_milli_hosts: 0
            }
        );
        assert_eq!(
            next_batch(1000, 200, 0, 50, false).hosts,
            50,
            "never more than remain"
        );
        assert_eq!(
            next_batch(10, 200, 0, 50_000, true).hosts,
            DRAIN_BATCH_HOSTS_MAX,
            "past the deadline"
        );
        assert_eq!(eta_ms(1000, 100), 10_000);
        assert_eq!(eta_ms(1, 3), 334);
    }

    proptest! {
        /// Over any run of batches the pace is the rate: after T ms,
        /// floor(rate x T / 1000) hosts moved, never more.
        #[test]
        fn the_pace_is_the_rate(rate in 1u32..5_000, ticks in prop::collection::vec(1u64..500, 1..60)) {
            let mut carry = 0;
            let mut moved = 0u64;
            let mut elapsed = 0u64;
            for tick in ticks {
                let batch = next_batch(rate, tick, carry, u32::MAX, false);
                moved += u64::from(batch.hosts);
                carry = batch.carry_milli_hosts;
                elapsed += tick;
                prop_assert!(moved <= u64::from(rate) * elapsed / 1000);
                prop_assert!(u64::from(rate) * elapsed / 1000 - moved <= u64::from(rate));
            }
        }
    }
}
