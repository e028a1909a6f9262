//! Latency percentiles from an HDR histogram: constant memory however many
//! samples, three significant digits from a microsecond to an hour.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest latency recorded exactly, in microseconds (an hour); longer ones
/// are clamped to it, which a benchmark table then shows as its max.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Recorded latencies.
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("the bounds and precision are valid constants"),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.histogram
            .record(micros)
            .expect("clamped into the histogram's bounds");
    }

    /// Adds every latency `other` recorded.
    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms of the same bounds add");
    }

    /// The latency at quantile `q` (0.5 for the median), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1e3
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// The largest latency recorded, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.histogram.max() as f64 / 1e3
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(samples: I) -> Self {
        let mut latencies = Latencies::new();
        for sample in samples {
            latencies.record(sample);
        }
        latencies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_samples() {
        let latencies: Latencies = (1..=100).map(Duration::from_millis).collect();
        assert!((latencies.quantile_ms(0.5) - 50.0).abs() < 0.1);
        assert!((latencies.quantile_ms(0.99) - 99.0).abs() < 0.1);
        assert!((latencies.max_ms() - 100.0).abs() < 0.1);
    }
}
