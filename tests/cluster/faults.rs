//! Fault tests with the history checker on: a concurrent workload of
//! attaches, detaches and linearizable resolves at every site, recorded and
//! checked per host for linearizability (`switchboard_tests::checker`).
//!
//! Sites run as separate processes on loopback here; partitions, one-way
//! cuts, delay, clock skew and power loss in network namespaces are the next
//! steps of issue 9. Every run is seeded: a failure prints its seed, and
//! `SWITCHBOARD_SEED=<seed>` replays the same workload and the same victims.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_node::local::RelayBook;
use switchboard_node::local::SimRelay;
use switchboard_tests::TestCluster;
use switchboard_tests::checker::check_per_host;
use switchboard_tests::history::Recorder;
use switchboard_tests::history::Workload;
use switchboard_tests::wait_until;

/// Hosts the workload works on, and its clients.
const HOSTS: usize = 12;
const CLIENTS: usize = 6;
/// Faults per run.
const ROUNDS: usize = 3;

/// The seed of this run: `SWITCHBOARD_SEED` to replay one, else fixed, so
/// CI is repeatable.
fn seed() -> u64 {
    std::env::var("SWITCHBOARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202)
}

/// What is done to a site each round.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `kill -9` the leader, restart it.
    KillLeader,
    /// `kill -9` a site chosen by the seed, restart it.
    KillAny,
    /// SIGSTOP the leader past the election timeout, then SIGCONT: it comes
    /// back believing it leads until it hears the new term.
    PauseLeader,
}

/// Waits until the workload has recorded `more` operations.
async fn progress(recorder: &Arc<Recorder>, more: usize, what: &str) {
    let target = recorder.len() + more;
    wait_until(Duration::from_secs(30), what, || {
        let done = recorder.len() >= target;
        async move { done }
    })
    .await;
}

/// Runs the workload through `ROUNDS` of `fault` and checks the history.
async fn run_with_checker(fault: Fault) {
    let seed = seed();
    println!("{fault:?}: seed {seed} (replay with SWITCHBOARD_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = TestCluster::start().await;
    let writer = Arc::new(cluster.client());
    let book = RelayBook::default();
    let mut relays = Vec::new();
    for n in 1..=3 {
        let relay_id = format!("relay-{n}");
        relays.push(
            SimRelay::start(writer.clone(), &book, &relay_id, "", 1_000)
                .await
                .expect("relay"),
        );
    }
    let readers = (1..=3)
        .map(|site| Arc::new(cluster.site_client_with_deadline(site, Duration::from_secs(2))))
        .collect();
    let workload = Workload::start(seed, writer.clone(), readers, CLIENTS, HOSTS);
    let recorder = workload.recorder.clone();
    for _ in 0..ROUNDS {
        progress(&recorder, 60, "the workload runs between faults").await;
        let leader = cluster.leader().await;
        match fault {
            Fault::KillLeader | Fault::KillAny => {
                let victim = match fault {
                    Fault::KillLeader => leader,
                    _ => rng.random_range(1..=3u64),
                };
                cluster.cluster.kill(victim).expect("kill -9");
                progress(&recorder, 40, "the others serve while one is down").await;
                cluster.cluster.restart(victim).expect("restart");
            }
            Fault::PauseLeader => {
                let pid = cluster.cluster.sites[&leader].pid().expect("running");
                let pid = Pid::from_raw(pid as i32);
                kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
                // A new leader is elected (past the election timeout), and
                // the workload goes on without the paused one.
                wait_until(Duration::from_secs(30), "another site leads", || {
                    let cluster = &cluster;
                    async move { cluster.leader().await != leader }
                })
                .await;
                progress(&recorder, 40, "the others serve while one is paused").await;
                kill(pid, Signal::SIGCONT).expect("SIGCONT");
            }
        }
    }
    progress(&recorder, 60, "the workload runs after the last fault").await;
    let recorder = workload.stop().await;

    // After healing, one more linearizable read of every host closes the
    // history: an acknowledged write that was lost shows here.
    cluster.leader().await;
    for host in 0..HOSTS {
        recorder.resolve(&writer, &format!("lin-{host}")).await;
    }
    let history = recorder.history();
    let failures = check_per_host(history.events.clone());
    println!(
        "{fault:?}: {} operations on {HOSTS} hosts ({} indeterminate) through {ROUNDS} faults: {} hosts not linearizable",
        history.events.len(),
        history.indeterminate(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{fault:?}, seed {seed}: not linearizable: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_of_the_leader_under_load_keep_every_host_linearizable() {
    run_with_checker(Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_of_any_site_under_load_keep_every_host_linearizable() {
    run_with_checker(Fault::KillAny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_leader_that_resumes_keeps_every_host_linearizable() {
    run_with_checker(Fault::PauseLeader).await;
}
