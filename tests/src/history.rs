//! A concurrent workload on a few hosts' routes, recorded as a history of
//! invocations and completions for the checker.
//!
//! Clients attach and detach through the client library (which retries
//! across sites with one request id per call) and resolve at one site each,
//! linearizably or from the site's local state with the staleness it
//! declares. A write whose call fails without a refusal is recorded as
//! indeterminate: it may or may not have taken effect. A refused write (no
//! room, bad input) changed nothing and is left out; so are failed reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_api::ClientError;
use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;
use tonic::Code;

use crate::checker::Event;
use crate::checker::Route;
use crate::checker::RouteOperation;

/// Operations recorded, by host id, with times in microseconds since the
/// recorder started.
pub struct Recorder {
    started: Instant,
    events: Mutex<Vec<(String, Event<RouteOperation>)>>,
    /// Relay ids seen, numbered in order of first sight.
    relays: Mutex<BTreeMap<String, u32>>,
    /// Per site, how far its clock may be off the leader's, in ms: its
    /// declared staleness may be that much low (docs/architecture.md,
    /// "Clocks"), so its local reads are placed that much earlier still.
    clock_allowance_ms: Mutex<BTreeMap<u64, u64>>,
    /// Every acknowledged attach and detach, with the route it left at its
    /// log index: what every watch of the host running across that index
    /// must have been told.
    acked_writes: Mutex<Vec<AckedWrite>>,
}

/// An acknowledged write: at log `index`, `host`'s route became (or, for an
/// attach that kept a good route, stayed) `route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedWrite {
    pub host: String,
    pub index: u64,
    /// (relay id, generation), or `None` once detached.
    pub route: Option<(String, u64)>,
}

/// What the recorder holds at the end.
pub struct History {
    /// Every recorded operation, by host.
    pub events: Vec<(String, Event<RouteOperation>)>,
}

impl History {
    /// How many operations timed out (indeterminate).
    pub fn indeterminate(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| e.returned_at.is_none())
            .count()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            started: Instant::now(),
            events: Mutex::new(Vec::new()),
            relays: Mutex::new(BTreeMap::new()),
            clock_allowance_ms: Mutex::new(BTreeMap::new()),
            acked_writes: Mutex::new(Vec::new()),
        }
    }
}

impl Recorder {
    /// Allows site `site`'s local reads a clock offset of `ms`.
    pub fn allow_clock_offset(&self, site: u64, ms: u64) {
        self.clock_allowance_ms
            .lock()
            .expect("allowance lock")
            .insert(site, ms);
    }

    /// Now, in the history's time.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn record(&self, host: &str, operation: RouteOperation, invoked_at: u64, determinate: bool) {
        let returned_at = determinate.then(|| self.now());
        self.events.lock().expect("recorder lock").push((
            host.to_owned(),
            Event {
                operation,
                invoked_at,
                returned_at,
            },
        ));
    }

    fn route(&self, route: &pb::Route) -> Route {
        let mut relays = self.relays.lock().expect("relay names lock");
        let next = relays.len() as u32;
        let relay = *relays.entry(route.relay_id.clone()).or_insert(next);
        Route {
            relay,
            generation: route.generation,
        }
    }

    /// Attaches `host` through `client` and records it.
    pub async fn attach(&self, client: &ClusterClient, host: &str) {
        let invoked_at = self.now();
        match client.attach(&new_request_id(), host, "").await {
            Ok(answer) => {
                if let Some(told) = &answer.route {
                    self.acked(host, answer.applied_index, Some(told));
                }
                let route = answer.route.as_ref().map(|r| self.route(r));
                self.record(
                    host,
                    RouteOperation::Attach(route),
                    invoked_at,
                    route.is_some(),
                );
            }
            Err(error) if refused(&error) => {}
            Err(_) => self.record(host, RouteOperation::Attach(None), invoked_at, false),
        }
    }

    /// Detaches `host` through `client` and records it.
    pub async fn detach(&self, client: &ClusterClient, host: &str) {
        let invoked_at = self.now();
        match client.detach(&new_request_id(), host).await {
            Ok(answer) => {
                if answer.was_attached {
                    self.acked(host, answer.applied_index, None);
                }
                let removed = answer.was_attached.then_some(answer.last_generation);
                self.record(
                    host,
                    RouteOperation::Detach(Some(removed)),
                    invoked_at,
                    true,
                );
            }
            Err(error) if refused(&error) => {}
            Err(_) => self.record(host, RouteOperation::Detach(None), invoked_at, false),
        }
    }

    /// Resolves `host` linearizably through `client` and records what it
    /// saw; returns whether it got an answer (a failed read is left out).
    pub async fn resolve(&self, client: &ClusterClient, host: &str) -> bool {
        let invoked_at = self.now();
        let seen = match client.resolve(host, pb::Consistency::Linearizable, 0).await {
            Ok(answer) => answer.route.as_ref().map(|r| self.route(r)),
            Err(error) if error.code() == Some(Code::NotFound) => None,
            Err(_) => return false,
        };
        self.record(host, RouteOperation::Resolve(seen), invoked_at, true);
        true
    }

    /// Resolves `host` from the local state of the site `client` talks to,
    /// and records what it saw as a read that may have taken effect as early
    /// as the staleness it declared before its invocation: a site that
    /// claims less staleness than the truth shows up as a read the checker
    /// cannot place.
    pub async fn resolve_local(&self, client: &ClusterClient, host: &str) {
        let invoked_at = self.now();
        let (seen, staleness_ms, site) = match client.resolve(host, pb::Consistency::Local, 0).await
        {
            Ok(answer) => (
                answer.route.as_ref().map(|r| self.route(r)),
                answer.staleness_ms,
                answer.served_by_site,
            ),
            // A local "no route" declares no staleness: it cannot be placed
            // in time, so it is left out.
            Err(_) => return,
        };
        // Staleness is whole milliseconds, rounded down: one more covers it.
        let allowance = self
            .clock_allowance_ms
            .lock()
            .expect("allowance lock")
            .get(&site)
            .copied()
            .unwrap_or(0);
        let declared_us = staleness_ms
            .saturating_add(1 + allowance)
            .saturating_mul(1_000);
        let invoked_at = invoked_at.saturating_sub(declared_us);
        let operation = RouteOperation::ResolveLocal { seen, staleness_ms };
        self.record(host, operation, invoked_at, true);
    }

    fn acked(&self, host: &str, index: u64, route: Option<&pb::Route>) {
        self.acked_writes
            .lock()
            .expect("acked writes lock")
            .push(AckedWrite {
                host: host.to_owned(),
                index,
                route: route.map(|r| (r.relay_id.clone(), r.generation)),
            });
    }

    /// Every acknowledged attach, and every acknowledged detach that
    /// removed a route.
    pub fn acked_writes(&self) -> Vec<AckedWrite> {
        self.acked_writes.lock().expect("acked writes lock").clone()
    }

    /// How many operations are recorded so far.
    pub fn len(&self) -> usize {
        self.events.lock().expect("recorder lock").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The history so far.
    pub fn history(&self) -> History {
        History {
            events: self.events.lock().expect("recorder lock").clone(),
        }
    }
}

/// A final refusal: the command was applied as a refusal or never
/// proposed, so it changed nothing. (A timeout or an unreachable cluster is
/// not: the write may have been applied.)
fn refused(error: &ClientError) -> bool {
    matches!(error, ClientError::Refused { code, .. }
        if matches!(code, Code::InvalidArgument | Code::ResourceExhausted | Code::FailedPrecondition | Code::NotFound | Code::PermissionDenied))
}

/// A running workload: `clients` tasks, each doing random operations on
/// `hosts` hosts until stopped. Writes go through `writer` (any site);
/// client n resolves at `readers[n % readers.len()]`.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The history being recorded.
    pub recorder: Arc<Recorder>,
}

/// Pause between two operations of one client: keeps the history small
/// enough for the checker (it is exponential in concurrency per host).
pub const OPERATION_PAUSE: Duration = Duration::from_millis(20);

impl Workload {
    /// Starts the clients; `seed` fixes every choice they make.
    pub fn start(
        seed: u64,
        writer: Arc<ClusterClient>,
        readers: Vec<Arc<ClusterClient>>,
        clients: usize,
        hosts: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Recorder::default());
        let tasks = (0..clients)
            .map(|n| {
                let (stop, recorder, writer) = (stop.clone(), recorder.clone(), writer.clone());
                let reader = readers[n % readers.len()].clone();
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(n as u64));
                    while !stop.load(Ordering::Relaxed) {
                        let host = format!("lin-{}", rng.random_range(0..hosts));
                        match rng.random_range(0..10) {
                            0..4 => recorder.attach(&writer, &host).await,
                            4..6 => recorder.detach(&writer, &host).await,
                            6..8 => {
                                recorder.resolve(&reader, &host).await;
                            }
                            _ => recorder.resolve_local(&reader, &host).await,
                        }
                        tokio::time::sleep(OPERATION_PAUSE).await;
                    }
                })
            })
            .collect();
        Workload {
            stop,
            tasks,
            recorder,
        }
    }

    /// Stops the clients once their calls in flight end.
    pub async fn stop(self) -> Arc<Recorder> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a workload client panicked");
        }
        self.recorder
    }
}
