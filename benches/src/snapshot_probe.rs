//! When a site built its snapshots, read from the outside: its `/metrics`
//! is polled and each rise of `switchboard_snapshot_build_seconds_count`
//! is one build, ended by then and lasting what `_sum` rose by. The writes
//! that ran across a build can then be told from those that did not.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

/// How often the probe reads `/metrics`: a build's end is known to within it.
const PROBE_INTERVAL: Duration = Duration::from_millis(25);

/// One snapshot build, as the probe saw it.
#[derive(Clone, Copy, Debug)]
pub struct Build {
    /// Between the read before and the read that showed it ended.
    pub ended: Instant,
    /// How long it took, from the site's own timer.
    pub took: Duration,
}

impl Build {
    /// When it began at the earliest: its end at the latest, less its time
    /// and one probe interval.
    pub fn began(&self) -> Instant {
        self.ended - self.took - PROBE_INTERVAL
    }

    /// Whether a write from `started` to `finished` ran while it was built.
    pub fn overlaps(&self, started: Instant, finished: Instant) -> bool {
        started < self.ended && finished > self.began()
    }
}

/// A running probe of one site's HTTP plane.
pub struct SnapshotProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Build>>,
}

impl SnapshotProbe {
    pub fn start(http_addr: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut builds = Vec::new();
            let mut last: Option<(u64, f64)> = None;
            while !stopped.load(Ordering::Relaxed) {
                let page = switchboard_tests::http_get(&http_addr, "/metrics").await;
                if let Some((count, sum)) = build_totals(&page) {
                    if let Some((last_count, last_sum)) = last
                        && count > last_count
                    {
                        // Builds ending within one interval share the rise.
                        let took = (sum - last_sum) / (count - last_count) as f64;
                        for _ in last_count..count {
                            builds.push(Build {
                                ended: Instant::now(),
                                took: Duration::from_secs_f64(took.max(0.0)),
                            });
                        }
                    }
                    last = Some((count, sum));
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            builds
        });
        SnapshotProbe { stop, task }
    }

    /// Stops polling; every build seen.
    pub async fn finish(self) -> anyhow::Result<Vec<Build>> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// `(count, sum)` of the snapshot-build histogram in a Prometheus page.
fn build_totals(page: &str) -> Option<(u64, f64)> {
    let value = |name: &str| {
        page.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let count = value("switchboard_snapshot_build_seconds_count")?;
    let sum = value("switchboard_snapshot_build_seconds_sum")?;
    Some((count as u64, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_come_from_the_histogram_lines_only() {
        let page = "# TYPE switchboard_snapshot_build_seconds histogram\n\
                    switchboard_snapshot_build_seconds_bucket{le=\"0.1\"} 2\n\
                    switchboard_snapshot_build_seconds_sum 0.25\n\
                    switchboard_snapshot_build_seconds_count 3\n\
                    switchboard_snapshot_build_seconds_count_other 9\n";
        assert_eq!(build_totals(page), Some((3, 0.25)));
        assert_eq!(build_totals("switchboard_snapshot_bytes 10\n"), None);
    }

    #[test]
    fn a_write_overlaps_a_build_it_ran_across() {
        let now = Instant::now();
        let build = Build {
            ended: now + Duration::from_millis(500),
            took: Duration::from_millis(100),
        };
        let ms = |n| now + Duration::from_millis(n);
        assert!(build.overlaps(ms(390), ms(410)));
        assert!(build.overlaps(ms(499), ms(600)));
        assert!(!build.overlaps(ms(500), ms(600)));
        assert!(!build.overlaps(ms(100), ms(300)));
    }
}
