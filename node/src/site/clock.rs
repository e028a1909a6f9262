//! Where the site reads the time: tokio's monotonic clock, which tests pause
//! and advance by hand (`tokio::time::pause`), and wall time in Unix
//! milliseconds, which the leader stamps on proposals and the scheduler
//! compares with maintenance windows and drain deadlines.

use std::time::SystemTime;

use tokio::time::Instant;

/// The site's clock. `system()` in service; `starting_at` in tests, where
/// wall time runs with tokio's (paused) clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// For a test clock: tokio's instant and the Unix time it stands for.
    origin: Option<(Instant, u64)>,
}

impl Clock {
    /// The machine's clocks.
    pub fn system() -> Self {
        Clock { origin: None }
    }

    /// Wall time that reads `unix_ms` now and then moves with tokio's clock.
    #[cfg(test)]
    pub fn starting_at(unix_ms: u64) -> Self {
        Clock {
            origin: Some((Instant::now(), unix_ms)),
        }
    }

    /// Monotonic now.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall time now, in Unix milliseconds.
    pub fn unix_ms(&self) -> u64 {
        match self.origin {
            None => system_unix_ms(),
            Some((at, unix_ms)) => unix_ms.saturating_add(at.elapsed().as_millis() as u64),
        }
    }
}

/// The machine's wall time in Unix milliseconds (0 before 1970).
pub fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_test_clock_moves_only_when_tokio_time_does() {
        let clock = Clock::starting_at(1_700_000_000_000);
        assert_eq!(clock.unix_ms(), 1_700_000_000_000);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.unix_ms(), 1_700_000_001_500);
    }

    #[test]
    fn the_system_clock_is_past_2020() {
        assert!(Clock::system().unix_ms() > 1_577_836_800_000);
    }
}
