//! A write load for tests: workers that attach hosts and record every
//! acknowledged answer.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;

/// One acknowledged attach.
#[derive(Clone, Debug)]
pub struct Acked {
    pub host_id: String,
    pub relay_id: String,
    pub generation: u64,
    pub applied_index: u64,
    pub started: Instant,
    pub finished: Instant,
}

/// Attach workers sharing a counter of hosts.
pub struct AttachLoad {
    pub acked: Arc<Mutex<Vec<Acked>>>,
    pub failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl AttachLoad {
    /// Starts `workers` tasks attaching `prefix-00000` .. up to `total` hosts.
    pub fn start(client: Arc<ClusterClient>, prefix: &str, total: u64, workers: usize) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let handles = (0..workers)
            .map(|_| {
                let (client, acked, failures, stop, next) = (
                    client.clone(),
                    acked.clone(),
                    failures.clone(),
                    stop.clone(),
                    next.clone(),
                );
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        let host_id = format!("{prefix}-{n:05}");
                        let started = Instant::now();
                        match client.attach(&new_request_id(), &host_id, "").await {
                            Ok(pb::AttachResponse {
                                route: Some(route),
                                applied_index,
                                ..
                            }) => {
                                acked.lock().unwrap().push(Acked {
                                    host_id,
                                    relay_id: route.relay_id,
                                    generation: route.generation,
                                    applied_index,
                                    started,
                                    finished: Instant::now(),
                                });
                            }
                            Ok(other) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{host_id}: no route in {other:?}")),
                            Err(error) => {
                                failures.lock().unwrap().push(format!("{host_id}: {error}"))
                            }
                        }
                    }
                })
            })
            .collect();
        AttachLoad {
            acked,
            failures,
            stop,
            workers: handles,
        }
    }

    /// How many attaches were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `count` attaches were acknowledged; panics after `deadline`.
    pub async fn wait_for_acks(&self, count: usize, deadline: Duration) {
        crate::wait_until(
            deadline,
            &format!("{count} attaches are acknowledged"),
            || {
                let done = self.acked_count() >= count;
                async move { done }
            },
        )
        .await;
    }

    /// Waits until an attach sent at or after `since` was acknowledged;
    /// panics after `deadline`.
    pub async fn wait_for_ack_sent_after(&self, since: Instant, deadline: Duration) {
        crate::wait_until(
            deadline,
            "an attach sent after the event is acknowledged",
            || {
                let done = self
                    .acked
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|a| a.started >= since);
                async move { done }
            },
        )
        .await;
    }

    /// Asks the workers to stop after their current attach.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every worker; returns the acknowledged attaches.
    pub async fn finish(self) -> (Vec<Acked>, Vec<String>) {
        for worker in self.workers {
            worker.await.expect("load worker");
        }
        let acked = self.acked.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        (acked, failures)
    }
}

/// Registers `count` relays with room for `capacity` hosts each.
pub async fn register_relays(client: &ClusterClient, count: u32, capacity: u32) {
    for n in 1..=count {
        client
            .register_relay(pb::RegisterRelayRequest {
                request_id: new_request_id(),
                relay_id: format!("relay-{n}"),
                endpoint: format!("relay-{n}.test:443"),
                region: String::new(),
                labels: Default::default(),
                capacity,
                incarnation: 1,
            })
            .await
            .expect("register relay");
    }
}

/// Checks that every acknowledged attach reads back on site `site` with
/// the same relay and generation, through that site's local state.
pub async fn assert_all_readable(client: &ClusterClient, site: u64, acked: &[Acked]) {
    for chunk in acked.chunks(64) {
        let reads = chunk.iter().map(|a| async move {
            (
                a,
                client.resolve(&a.host_id, pb::Consistency::Local, 0).await,
            )
        });
        for (expected, result) in futures::future::join_all(reads).await {
            let response = result.unwrap_or_else(|e| {
                panic!(
                    "site {site} lost acknowledged attach of {}: {e}",
                    expected.host_id
                )
            });
            let route = response.route.expect("a resolved route");
            assert_eq!(
                (route.relay_id.as_str(), route.generation),
                (expected.relay_id.as_str(), expected.generation),
                "site {site} disagrees on {}",
                expected.host_id
            );
        }
    }
}
