//! One fault test's run: a cluster, relays with room, the seeded workload
//! recording its history, an operator draining relays and a relay going
//! down and coming back (so the cluster moves hosts on its own), a watch
//! of every host, and at the end the checker's verdict and the watches'
//! invariants.
//!
//! A test starts a [`Run`], does its faults between [`Run::progress`]
//! calls, and calls [`Run::finish`], which heals nothing itself: the test
//! heals first, then `finish` closes the history with one linearizable read
//! of every host (an acknowledged write that was lost shows there) and
//! asserts that every host's history is linearizable.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_api::ClusterClient;
use switchboard_node::local::RelayBook;
use switchboard_node::local::SimRelay;

use crate::TestCluster;
use crate::TestSpec;
use crate::checker::check_per_host;
use crate::history::Recorder;
use crate::history::Workload;
use crate::wait_until;
use crate::watchers::Watchers;
use crate::watchers::as_told;
use rand::RngExt;

/// Hosts the workload works on, and its clients.
pub const HOSTS: usize = 12;
pub const CLIENTS: usize = 6;
/// Relays the hosts are placed on, each with room for every host.
const RELAYS: usize = 3;
/// The longest the workload may take to record the operations a step asks
/// for: far above its pace (about a hundred operations a second), so only a
/// cluster that stopped serving fails it.
pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(30);
/// A site client's deadline per call in the workload: short, so a read at a
/// cut-off site gives up and the client goes on.
const READER_DEADLINE: Duration = Duration::from_secs(2);

/// Pause between two steps of the operator.
const OPERATOR_PAUSE: Duration = Duration::from_millis(700);
/// The relay lease the runs use: short, so a relay that stops
/// heartbeating is declared down within a round.
pub const RUN_LEASE_TTL_MS: u64 = 3_000;
/// Relay leases longer than this are not waited out by the operator.
const LEASE_WAITED_MAX_MS: u64 = 10_000;
/// How long after healing every watch may take to arrive at the final
/// routes: a quiet timeout to leave a dead site, and a few seconds more.
const WATCHES_SETTLE: Duration = Duration::from_secs(10);

/// The seed of this run: `SWITCHBOARD_SEED` to replay one, else fixed, so
/// CI is repeatable.
pub fn seed() -> u64 {
    std::env::var("SWITCHBOARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202)
}

/// A fault test in progress.
pub struct Run {
    /// What the test is called in its output.
    pub name: String,
    /// This run's seed.
    pub seed: u64,
    /// Every choice the test makes, from the seed.
    pub rng: StdRng,
    pub cluster: TestCluster,
    /// A client of every site: the workload's writer.
    pub writer: Arc<ClusterClient>,
    workload: Workload,
    operator: tokio::task::JoinHandle<()>,
    watchers: Watchers,
    /// Held here, not only by the operator: stopping the operator must not
    /// stop the relays (their leases would run out and the cluster would
    /// move hosts after the final reads).
    _relays: Arc<tokio::sync::Mutex<Vec<SimRelay>>>,
}

impl Run {
    /// Starts the cluster as specified (with `RUN_LEASE_TTL_MS` relay
    /// leases), three relays, the operator, the watches and the workload.
    pub async fn start(name: &str, mut spec: TestSpec) -> Run {
        spec.relays.lease_ttl_ms = RUN_LEASE_TTL_MS;
        Run::start_on(name, TestCluster::start_with(spec).await).await
    }

    /// Starts three relays and the workload on a cluster that leads.
    pub async fn start_on(name: &str, cluster: TestCluster) -> Run {
        let seed = seed();
        println!("{name}: seed {seed} (replay with SWITCHBOARD_SEED={seed})");
        let writer = Arc::new(cluster.client());
        let book = RelayBook::default();
        let mut relays = Vec::new();
        for n in 1..=RELAYS {
            let relay = SimRelay::start(writer.clone(), &book, &format!("relay-{n}"), "", 1_000)
                .await
                .expect("relay");
            relays.push(relay);
        }
        let sites: Vec<u64> = cluster.cluster.sites.keys().copied().collect();
        let readers = sites
            .iter()
            .map(|&site| Arc::new(cluster.site_client_with_deadline(site, READER_DEADLINE)))
            .collect();
        let workload = Workload::start(seed, writer.clone(), readers, CLIENTS, HOSTS);
        let hosts: Vec<String> = (0..HOSTS).map(|n| format!("lin-{n}")).collect();
        let watchers = Watchers::start(writer.clone(), &hosts);
        let lease_ttl_ms = cluster.cluster.spec.relays.lease_ttl_ms;
        let relays = Arc::new(tokio::sync::Mutex::new(relays));
        let operator = tokio::spawn(operate(
            writer.clone(),
            book,
            relays.clone(),
            lease_ttl_ms,
            seed,
        ));
        Run {
            name: name.to_owned(),
            seed,
            rng: StdRng::seed_from_u64(seed),
            cluster,
            writer,
            workload,
            operator,
            watchers,
            _relays: relays,
        }
    }

    /// The history so far.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.workload.recorder
    }

    /// Waits until the workload has recorded `more` operations.
    pub async fn progress(&self, more: usize, what: &str) {
        let recorder = self.recorder();
        let target = recorder.len() + more;
        wait_until(PROGRESS_DEADLINE, what, || {
            let done = recorder.len() >= target;
            async move { done }
        })
        .await;
    }

    /// Stops the workload, closes the history with a linearizable read of
    /// every host once the sites agree on a leader, and asserts that every
    /// host's history is linearizable.
    pub async fn finish(self) {
        let Run {
            name,
            seed,
            cluster,
            writer,
            workload,
            operator,
            watchers,
            ..
        } = self;
        operator.abort();
        let recorder = workload.stop().await;
        cluster.leader().await;
        for host in 0..HOSTS {
            let host = format!("lin-{host}");
            wait_until(
                PROGRESS_DEADLINE,
                &format!("a final read of {host}"),
                || recorder.resolve(&writer, &host),
            )
            .await;
        }
        let history = recorder.history();
        let failures = check_per_host(history.events.clone());
        println!(
            "{name}: {} operations on {HOSTS} hosts ({} indeterminate): {} hosts not linearizable",
            history.events.len(),
            history.indeterminate(),
            failures.len()
        );
        if !failures.is_empty() {
            let dump = dump_failures(&name, &history.events, failures.keys());
            panic!("{name}, seed {seed}: not linearizable: {failures:?}; histories in {dump}");
        }
        watches_arrive(&name, seed, &writer, &watchers).await;
        let writes = recorder.acked_writes();
        let missed = watchers.missed(&writes);
        assert!(
            missed.is_empty(),
            "{name}, seed {seed}: watches missed acknowledged changes: {missed:?}"
        );
        println!(
            "{name}: {} acknowledged writes checked against every watch that ran across them",
            writes.len()
        );
        watchers.stop();
    }
}

/// Every watch keeps its invariants and arrives at the route a
/// linearizable read gives, within `WATCHES_SETTLE`.
async fn watches_arrive(name: &str, seed: u64, writer: &ClusterClient, watchers: &Watchers) {
    let violations = watchers.violations();
    assert!(
        violations.is_empty(),
        "{name}, seed {seed}: watch invariants broken: {violations:?}"
    );
    let until = std::time::Instant::now() + WATCHES_SETTLE;
    loop {
        let truth = final_routes(name, writer).await;
        let told = watchers.last_told();
        let behind: Vec<String> = truth
            .iter()
            .filter(|(host, route)| told.get(*host) != Some(route))
            .map(|(host, route)| {
                format!(
                    "{host}: told {:?}, holds {route:?}; record {:?}",
                    told.get(host),
                    watchers.record_of(host)
                )
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{name}, seed {seed}: watches not at their hosts' routes {} ms after healing: {behind:#?}",
            WATCHES_SETTLE.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every workload host's route, read linearizably.
async fn final_routes(
    name: &str,
    writer: &ClusterClient,
) -> std::collections::BTreeMap<String, Option<(String, u64)>> {
    let mut truth = std::collections::BTreeMap::new();
    for host in 0..HOSTS {
        let host = format!("lin-{host}");
        let read = writer
            .resolve(&host, switchboard_proto::v1::Consistency::Linearizable, 0)
            .await;
        let route = match read {
            Ok(answer) => as_told(answer.route.as_ref()),
            Err(error) if error.code() == Some(tonic::Code::NotFound) => None,
            Err(error) => panic!("{name}: the final read of {host}: {error}"),
        };
        truth.insert(host, route);
    }
    truth
}

/// The operator: drains a relay and gives it back, and lets another go
/// down (its heartbeats stop until its lease runs out) and come back,
/// over and over, at seeded choices. Its calls may fail under the faults;
/// it goes on.
async fn operate(
    admin: Arc<ClusterClient>,
    book: RelayBook,
    relays: Arc<tokio::sync::Mutex<Vec<SimRelay>>>,
    lease_ttl_ms: u64,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6f70);
    loop {
        let drained = format!("relay-{}", rng.random_range(1..=RELAYS));
        let _ = admin.drain_relay(&drained, 1_000, 0, true).await;
        tokio::time::sleep(OPERATOR_PAUSE).await;
        let _ = admin.undrain_relay(&drained).await;
        tokio::time::sleep(OPERATOR_PAUSE).await;
        if lease_ttl_ms > LEASE_WAITED_MAX_MS {
            continue;
        }
        let relay_id = {
            let mut relays = relays.lock().await;
            let down = rng.random_range(0..relays.len());
            let relay = relays.remove(down);
            relay.stop();
            relay.relay_id.clone()
        };
        tokio::time::sleep(Duration::from_millis(lease_ttl_ms) + OPERATOR_PAUSE).await;
        // Back, as a restarted relay process (a new incarnation); under a
        // fault the registration may wait for a leader.
        loop {
            match SimRelay::start(admin.clone(), &book, &relay_id, "", 1_000).await {
                Ok(relay) => break relays.lock().await.push(relay),
                Err(error) => {
                    println!("operator: {relay_id} could not come back yet: {error}");
                    tokio::time::sleep(OPERATOR_PAUSE).await;
                }
            }
        }
    }
}

/// Writes the histories of the hosts that failed, in invocation order, to a
/// file kept after the test; returns its path.
fn dump_failures<'a>(
    name: &str,
    events: &[(
        String,
        crate::checker::Event<crate::checker::RouteOperation>,
    )],
    hosts: impl Iterator<Item = &'a String>,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for host in hosts {
        let mut mine: Vec<_> = events.iter().filter(|(h, _)| h == host).collect();
        mine.sort_by_key(|(_, e)| e.invoked_at);
        let _ = writeln!(text, "== {host}");
        for (_, event) in mine {
            let _ = writeln!(
                text,
                "{:>12} {:>12} {:?}",
                event.invoked_at,
                event
                    .returned_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                event.operation
            );
        }
    }
    let path = std::env::temp_dir().join(format!("switchboard-history-{name}.txt"));
    match std::fs::write(&path, text) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not written: {e})"),
    }
}
