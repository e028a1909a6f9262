//! Drives one operation against one system: closed loop (each worker waits
//! for its answer, then asks again) or open loop (requests at a fixed
//! rate, each latency counted from when it was due, so a stall is charged
//! to every request it delayed: coordinated omission corrected).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use crate::latency::Latencies;
use crate::systems::Connections;
use crate::systems::Op;
use crate::systems::read_key;

/// How requests are issued.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `clients` workers, each with one request in flight.
    Closed { clients: usize },
    /// `rate` requests per second spread over `workers`.
    Open { rate: u64, workers: usize },
}

/// What one measurement found.
pub struct Sample {
    pub done: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl Sample {
    pub fn ops_per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Names fresh write keys apart across measurements of one run.
static MEASUREMENT: AtomicU64 = AtomicU64::new(0);

/// The key worker `worker` uses for its `seq`th request of `op`.
fn key_for(op: Op, measurement: u64, worker: usize, seq: u64, preloaded: u64) -> String {
    match op {
        Op::Write => format!("w{measurement}-{worker}-{seq}"),
        // Spread over the preloaded hosts so no one key is hot.
        _ => read_key((worker as u64 * 7919 + seq * 104_729) % preloaded.max(1)),
    }
}

/// Runs `op` in `mode` for `duration` against `connections`.
pub async fn measure(
    connections: &Arc<Connections>,
    op: Op,
    mode: Mode,
    duration: Duration,
    preloaded: u64,
) -> Sample {
    let measurement = MEASUREMENT.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let workers = match mode {
        Mode::Closed { clients } => clients,
        Mode::Open { workers, .. } => workers,
    };
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let connections = connections.clone();
            tokio::spawn(async move {
                let mut sample = Sample {
                    done: 0,
                    errors: 0,
                    first_error: None,
                    elapsed: Duration::ZERO,
                    latencies: Latencies::new(),
                };
                let mut seq = 0u64;
                loop {
                    // When this request is due: now (closed), or its slot
                    // in the schedule (open).
                    let due = match mode {
                        Mode::Closed { .. } => Instant::now(),
                        Mode::Open { rate, workers } => {
                            let slot = seq * workers as u64 + worker as u64;
                            started + Duration::from_secs_f64(slot as f64 / rate as f64)
                        }
                    };
                    if due >= started + duration {
                        break;
                    }
                    if matches!(mode, Mode::Open { .. }) {
                        // Not in the closed loop: tokio's timer rounds up to
                        // its next millisecond tick even for a deadline now.
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let key = key_for(op, measurement, worker, seq, preloaded);
                    match connections.run(op, worker, &key).await {
                        Ok(()) => {
                            sample.done += 1;
                            sample.latencies.record(due.elapsed());
                        }
                        Err(e) => {
                            sample.errors += 1;
                            sample.first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                    seq += 1;
                }
                sample
            })
        })
        .collect();
    let mut total = Sample {
        done: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Latencies::new(),
    };
    for task in tasks {
        let Ok(sample) = task.await else {
            total.errors += 1;
            continue;
        };
        total.done += sample.done;
        total.errors += sample.errors;
        if total.first_error.is_none() {
            total.first_error = sample.first_error;
        }
        total.latencies.merge(&sample.latencies);
    }
    total.elapsed = started.elapsed();
    total
}

/// Writes the `count` hosts that reads look up, `workers` at a time; every
/// one must succeed.
pub async fn preload(
    connections: &Arc<Connections>,
    count: u64,
    workers: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (connections, next) = (connections.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<(), anyhow::Error>(());
                    }
                    connections.run(Op::Write, worker, &read_key(n)).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
