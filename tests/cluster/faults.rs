//! Fault tests with the history checker on: a concurrent workload of
//! attaches, detaches and resolves (linearizable and local, at every site),
//! recorded and checked per host for linearizability
//! (`switchboard_tests::checker`), through process and membership faults:
//! `kill -9`, SIGSTOP, a storm of leader transfers, a site added, promoted
//! and removed, and a site wiped and replaced. Network faults are in
//! `partitions.rs`.
//!
//! Every run is seeded: a failure prints its seed, and
//! `SWITCHBOARD_SEED=<seed>` replays the same workload and the same victims.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use rand::RngExt;
use switchboard_tests::TestSpec;
use switchboard_tests::nemesis::Run;
use switchboard_tests::wait_until;

/// Faults per run.
const ROUNDS: usize = 3;

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
    /// Leadership handed from voter to voter, several times in a row
    /// without waiting for the workload in between.
    TransferStorm,
    /// A new site added as a learner, promoted to voter, then removed.
    MembershipChange,
    /// A site killed, removed, its data dir wiped, and the empty site added
    /// back as a learner and promoted.
    WipeAndReplace,
}

/// Leader transfers per round of the storm.
const TRANSFERS_PER_STORM: usize = 5;
/// How long a new or replaced site may take to catch up under the load.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

/// Hands leadership around `TRANSFERS_PER_STORM` times.
async fn transfer_storm(run: &mut Run) {
    let admin = run
        .cluster
        .site_client_with_deadline(run.cluster.leader().await, Duration::from_secs(15));
    for _ in 0..TRANSFERS_PER_STORM {
        let leader = run.cluster.leader().await;
        let others: Vec<u64> = (1..=3u64).filter(|&s| s != leader).collect();
        let to = others[run.rng.random_range(0..others.len())];
        // A transfer may be refused while the last one settles; the storm
        // goes on either way, and the checker judges what clients saw.
        if let Err(error) = admin.transfer_leader(to, true).await {
            println!("transfer to {to}: {error}");
        }
    }
    run.progress(40, "the workload runs after the storm").await;
}

/// Adds a site as a learner, promotes it, and removes it, under the load.
async fn add_promote_remove(run: &mut Run) {
    let admin = run.cluster.client();
    let new_site = run
        .cluster
        .cluster
        .spawn_additional_site()
        .expect("start a new site");
    let endpoints = run.cluster.cluster.endpoints(new_site).expect("endpoints");
    admin.add_learner(endpoints).await.expect("add learner");
    admin
        .wait_caught_up(new_site, CATCH_UP_DEADLINE, |_, _| {})
        .await
        .expect("the learner catches up");
    admin.promote_voter(new_site, false).await.expect("promote");
    run.progress(30, "the workload runs with four voters").await;
    admin.remove_member(new_site, true).await.expect("remove");
    // Stopped but kept in the launcher's books, so the next new site gets
    // a fresh id and data dir.
    run.cluster
        .cluster
        .kill(new_site)
        .expect("stop the removed site");
}

/// Replaces a site chosen by the seed with an empty one.
async fn wipe_and_replace(run: &mut Run) {
    let victim = run.rng.random_range(1..=3u64);
    run.cluster.cluster.kill(victim).expect("kill -9");
    let admin = run.cluster.client();
    admin
        .remove_member(victim, true)
        .await
        .expect("remove the lost site");
    let data_dir = run.cluster.cluster.sites[&victim].config.data_dir.clone();
    std::fs::remove_dir_all(&data_dir).expect("wipe its data dir");
    run.progress(30, "two voters serve").await;
    run.cluster
        .cluster
        .restart(victim)
        .expect("start it on an empty data dir");
    let endpoints = run.cluster.cluster.endpoints(victim).expect("endpoints");
    admin.add_learner(endpoints).await.expect("add it back");
    admin
        .wait_caught_up(victim, CATCH_UP_DEADLINE, |_, _| {})
        .await
        .expect("the replacement catches up");
    admin.promote_voter(victim, false).await.expect("promote");
}

/// Runs the workload through `ROUNDS` of `fault` and checks the history.
async fn run_with_checker(fault: Fault) {
    let mut run = Run::start(&format!("{fault:?}"), TestSpec::default()).await;
    for _ in 0..ROUNDS {
        run.progress(60, "the workload runs between faults").await;
        let leader = run.cluster.leader().await;
        match fault {
            Fault::TransferStorm => transfer_storm(&mut run).await,
            Fault::MembershipChange => add_promote_remove(&mut run).await,
            Fault::WipeAndReplace => wipe_and_replace(&mut run).await,
            Fault::KillLeader | Fault::KillAny => {
                let victim = match fault {
                    Fault::KillLeader => leader,
                    _ => run.rng.random_range(1..=3u64),
                };
                run.cluster.cluster.kill(victim).expect("kill -9");
                run.progress(40, "the others serve while one is down").await;
                run.cluster.cluster.restart(victim).expect("restart");
            }
            Fault::PauseLeader => {
                let pid = run.cluster.cluster.sites[&leader].pid().expect("running");
                let pid = Pid::from_raw(pid as i32);
                kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
                // A new leader is elected (past the election timeout), and
                // the workload goes on without the paused one.
                wait_until(Duration::from_secs(30), "another site leads", || {
                    let cluster = &run.cluster;
                    async move { cluster.leader().await != leader }
                })
                .await;
                run.progress(40, "the others serve while one is paused")
                    .await;
                kill(pid, Signal::SIGCONT).expect("SIGCONT");
            }
        }
    }
    run.progress(60, "the workload runs after the last fault")
        .await;
    run.finish().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_leader_transfers_keeps_every_host_linearizable() {
    run_with_checker(Fault::TransferStorm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_under_load_keep_every_host_linearizable() {
    run_with_checker(Fault::MembershipChange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_wiped_and_replaced_under_load_keeps_every_host_linearizable() {
    run_with_checker(Fault::WipeAndReplace).await;
}

/// The site whose clock is skewed in the skew tests.
const SKEWED_SITE: u64 = 3;
/// Where Debian's faketime puts its preload library (the thread-safe one).
const FAKETIME_LIBRARIES: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

/// Site 3's wall clock runs `offset_ms` off the others' (libfaketime; its
/// monotonic clock is left alone), more than the 100 ms the docs allow.
/// Leadership moves to it and away each round, so proposals stamped by a
/// clock ahead and then behind both reach the state. Linearizable reads and
/// writes must stay linearizable; local reads at the skewed site may
/// declare up to the offset too little staleness, and the checker allows
/// it exactly that much.
async fn run_with_skew(offset_ms: i64) {
    let name = format!("ClockSkew{offset_ms:+}ms");
    let magnitude = offset_ms.unsigned_abs();
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let skew = format!("{sign}{}.{:03}s", magnitude / 1_000, magnitude % 1_000);
    // libfaketime preloaded by `env`, which execs the site in place: the
    // `faketime` wrapper forks, and a kill would reach it, not the site.
    let Some(library) = FAKETIME_LIBRARIES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("SWITCHBOARD_REQUIRE_NETNS").is_none(),
            "{name}: libfaketime is not installed (Debian's faketime)"
        );
        eprintln!("{name}: SKIPPED, NOT RUN: libfaketime is not installed (Debian's faketime)");
        return;
    };
    let skewed = switchboard_tests::SiteHost {
        ip: "127.0.0.1".into(),
        exec_prefix: vec![
            "env".into(),
            format!("LD_PRELOAD={library}"),
            format!("FAKETIME={skew}"),
            "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        ],
    };
    let spec = TestSpec {
        site_hosts: [(SKEWED_SITE, skewed)].into(),
        ..TestSpec::default()
    };
    let run = Run::start(&name, spec).await;
    run.recorder()
        .allow_clock_offset(SKEWED_SITE, offset_ms.unsigned_abs());
    let admin = run.cluster.client();
    for _ in 0..ROUNDS {
        run.progress(40, "the workload runs").await;
        for to in [SKEWED_SITE, 1] {
            admin
                .transfer_leader(to, true)
                .await
                .unwrap_or_else(|e| panic!("{name}: leadership to {to}: {e}"));
            run.progress(40, "the workload runs under the new leader")
                .await;
        }
    }
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_clock_250_ms_ahead_keeps_every_host_linearizable() {
    run_with_skew(250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_clock_250_ms_behind_keeps_every_host_linearizable() {
    run_with_skew(-250).await;
}
