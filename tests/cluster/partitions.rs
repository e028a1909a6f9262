//! Network faults with the history checker on: each site runs in its own
//! network namespace with its own address (`switchboard_tests::netns`), TLS
//! on as in production, and the seeded workload of attaches, detaches,
//! linearizable and local resolves runs from the test's namespace, which
//! reaches every site throughout unless a site's cable is pulled.
//!
//! Nemeses: the leader split from the majority (it must stop serving
//! linearizable and lease reads, and declare growing staleness); a follower
//! split from the majority (1+2); a one-way cut between the leader and a
//! follower, each way; a flapping link; the leader's cable pulled (no
//! reset reaches anyone). Without root or nftables these tests skip and say
//! so loudly; `.ci/run` makes the skip a failure.

use std::time::Duration;
use std::time::Instant;

use rand::RngExt;
use switchboard_proto::v1 as pb;
use switchboard_tests::TestSpec;
use switchboard_tests::nemesis::Run;
use switchboard_tests::netns::Network;
use switchboard_tests::netns::network_or_say_why;
use tonic::Code;

/// Faults per run.
const ROUNDS: usize = 3;
/// Cable pulls per round of the flapping link.
const FLAPS: usize = 6;
const SITES: [u64; 3] = [1, 2, 3];

/// What is done to the network each round.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The leader cut off from both followers; clients reach everyone.
    LeaderFromMajority,
    /// A follower cut off from the other two (1+2).
    FollowerFromMajority,
    /// Packets from the leader to a follower dropped, the other direction
    /// kept; the next round the other way round.
    OneWay,
    /// A site's cable pulled and plugged in again, several times, at
    /// seeded intervals around the election timeout.
    FlappingLink,
    /// The leader's cable pulled: no packet, no reset, reaches anyone.
    DarkLeader,
}

/// A test cluster with each site in its own network namespace, and
/// `relays` relays of 100 hosts' capacity registered; `None` (the test
/// skips, loudly) without root or nftables.
async fn cluster_in_namespaces(
    test: &str,
    relays: u32,
) -> Option<(Network, switchboard_tests::TestCluster)> {
    let network = network_or_say_why(&SITES, test)?;
    let cluster = switchboard_tests::TestCluster::start_with(TestSpec {
        site_hosts: network.site_hosts(),
        ..TestSpec::default()
    })
    .await;
    switchboard_tests::load::register_relays(&cluster.client(), relays, 100).await;
    Some((network, cluster))
}

/// The sites other than `site`.
fn others(site: u64) -> Vec<u64> {
    SITES.iter().copied().filter(|&s| s != site).collect()
}

/// A deposed leader, cut off from the majority after another site was
/// elected, refuses linearizable reads (quorum and lease), and its staleness
/// is at least its lease and grows with the time it stays cut off.
async fn deposed_leader_stops_serving(run: &Run, deposed: u64) {
    let lease_ms = run.cluster.timing().election_max_ms;
    let client = run
        .cluster
        .site_client_with_deadline(deposed, Duration::from_secs(1));
    for lease_read in [true, false] {
        let refused = client
            .resolve_with("lin-0", pb::Consistency::Linearizable, 0, lease_read)
            .await
            .expect_err("a deposed leader serves no linearizable read");
        // At once, not after a deadline: it knows it lost its quorum.
        assert_eq!(
            refused.code(),
            Some(Code::Unavailable),
            "lease read {lease_read}: {refused}"
        );
    }
    let first = run.cluster.status(deposed).await.staleness_ms;
    assert!(
        first >= lease_ms,
        "a deposed leader declares at least its lease ({lease_ms} ms) of staleness, not {first} ms"
    );
    let pause = Duration::from_millis(500);
    tokio::time::sleep(pause).await;
    let second = run.cluster.status(deposed).await.staleness_ms;
    assert!(
        second >= first + pause.as_millis() as u64 - 50,
        "its staleness grows: {first} ms, then {second} ms {} ms later",
        pause.as_millis()
    );
}

/// A site cut off since `cut_at` declares at least that long a staleness
/// (less the heartbeat that may have been in flight).
async fn cut_off_site_declares_its_staleness(run: &Run, site: u64, cut_at: Instant) {
    let since_cut = cut_at.elapsed().as_millis() as u64;
    let declared = run.cluster.status(site).await.staleness_ms;
    let slack = 2 * run.cluster.timing().heartbeat_ms;
    assert!(
        declared + slack >= since_cut,
        "site {site}, cut off {since_cut} ms ago, declares {declared} ms of staleness"
    );
}

/// Random milliseconds in `range`, from the run's seed.
fn pause_of(run: &mut Run, range: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_millis(run.rng.random_range(range))
}

/// One round of `cut`; the network is healed afterwards by the caller.
async fn cut_once(run: &mut Run, network: &Network, cut: Cut, round: usize) {
    let leader = run.cluster.leader().await;
    let followers = others(leader);
    let follower = followers[run.rng.random_range(0..followers.len())];
    match cut {
        Cut::LeaderFromMajority => {
            network.split(&[leader], &followers);
            run.cluster.leader_among(&followers).await;
            deposed_leader_stops_serving(run, leader).await;
            run.progress(40, "the majority serves without its old leader")
                .await;
        }
        Cut::FollowerFromMajority => {
            let cut_at = Instant::now();
            network.split(&[follower], &others(follower));
            run.progress(40, "the majority serves without one follower")
                .await;
            cut_off_site_declares_its_staleness(run, follower, cut_at).await;
        }
        Cut::OneWay => {
            let cut_at = Instant::now();
            let leader_unheard = round.is_multiple_of(2);
            if leader_unheard {
                // The follower hears nothing; its answers still arrive.
                network.cut(leader, follower);
            } else {
                // The follower hears the leader; its answers are lost.
                network.cut(follower, leader);
            }
            run.progress(40, "the cluster serves through a one-way cut")
                .await;
            if leader_unheard {
                cut_off_site_declares_its_staleness(run, follower, cut_at).await;
            }
        }
        Cut::FlappingLink => {
            let victim = SITES[run.rng.random_range(0..SITES.len())];
            let election_max_ms = run.cluster.timing().election_max_ms;
            for _ in 0..FLAPS {
                network.link(victim, false);
                tokio::time::sleep(pause_of(run, 50..=2 * election_max_ms)).await;
                network.link(victim, true);
                tokio::time::sleep(pause_of(run, 50..=election_max_ms)).await;
            }
            run.progress(40, "the cluster serves after a flapping link")
                .await;
        }
        Cut::DarkLeader => {
            network.link(leader, false);
            run.cluster.leader_among(&followers).await;
            run.progress(40, "the others serve while the leader is dark")
                .await;
        }
    }
}

/// Runs the workload through `ROUNDS` of `cut`, healing after each, and
/// checks the history.
async fn run_partitioned(cut: Cut, test: &str) {
    let Some(network) = network_or_say_why(&SITES, test) else {
        return;
    };
    let spec = TestSpec {
        site_hosts: network.site_hosts(),
        ..TestSpec::default()
    };
    let mut run = Run::start(&format!("{cut:?}"), spec).await;
    for round in 0..ROUNDS {
        run.progress(60, "the workload runs between faults").await;
        cut_once(&mut run, &network, cut, round).await;
        network.heal();
    }
    run.progress(60, "the workload runs after the last fault")
        .await;
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_split_from_the_majority_stops_serving_and_every_host_stays_linearizable() {
    run_partitioned(
        Cut::LeaderFromMajority,
        "a_leader_split_from_the_majority_stops_serving_and_every_host_stays_linearizable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_split_from_the_majority_declares_its_staleness_and_every_host_stays_linearizable()
 {
    run_partitioned(
        Cut::FollowerFromMajority,
        "a_follower_split_from_the_majority_declares_its_staleness_and_every_host_stays_linearizable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_way_cuts_between_leader_and_follower_keep_every_host_linearizable() {
    run_partitioned(
        Cut::OneWay,
        "one_way_cuts_between_leader_and_follower_keep_every_host_linearizable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_link_keeps_every_host_linearizable() {
    run_partitioned(
        Cut::FlappingLink,
        "a_flapping_link_keeps_every_host_linearizable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_gone_dark_without_a_reset_is_replaced_and_every_host_stays_linearizable() {
    run_partitioned(
        Cut::DarkLeader,
        "a_leader_gone_dark_without_a_reset_is_replaced_and_every_host_stays_linearizable",
    )
    .await;
}

/// Waits for the next change a follower yields (progress and restarts
/// skipped), within `bound`.
async fn next_change(
    follower: &mut switchboard_api::Follower<pb::RouteEvent>,
    bound: Duration,
    what: &str,
) -> pb::RouteEvent {
    let until = Instant::now() + bound;
    loop {
        let remaining = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, follower.next()).await {
            Ok(Ok(switchboard_api::Followed::Event(event))) => return event,
            Ok(Ok(switchboard_api::Followed::Restarted)) => continue,
            Ok(Err(error)) => panic!("{what}: the watch was refused: {error}"),
            Err(_) => panic!("{what}: no change within {} ms", bound.as_millis()),
        }
    }
}

/// The 2013 stranding, in the form it took here before watches sent
/// progress heartbeats: a watch on a site cut off from the leader (but
/// still reachable) or gone dark (cable pulled, no reset) heard nothing of
/// moves made meanwhile. A followed watch moves to another site, from the
/// last index it saw, and hears the change within its quiet timeout, a
/// heartbeat and the failover bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_on_a_cut_off_or_dark_site_moves_to_another_and_misses_no_change() {
    let test = "a_watch_on_a_cut_off_or_dark_site_moves_to_another_and_misses_no_change";
    let Some((network, cluster)) = cluster_in_namespaces(test, 2).await else {
        return;
    };
    let writer = cluster.client();
    writer
        .attach(&switchboard_api::new_request_id(), "watched", "")
        .await
        .expect("attach");
    let quiet = switchboard_api::ClientSettings::default().watch_quiet_timeout;
    let bound = quiet + Duration::from_secs(1) + cluster.timing().failover_bound() * 2;

    for (phase, dark) in [("cut off", false), ("dark", true)] {
        let leader = cluster.leader().await;
        // Every site caught up first: a watch opened at a lagging site
        // starts from that site's older state (and then replays in order).
        let applied = cluster.status(leader).await.applied_index;
        for site in SITES {
            cluster
                .wait_applied(site, applied, Duration::from_secs(10))
                .await;
        }
        let watched_site = others(leader)[0];
        let client = std::sync::Arc::new(cluster.client_preferring(watched_site));
        let mut follower = client.follow_route("watched");
        let current = next_change(&mut follower, bound, "the current route").await;
        assert_eq!(
            follower.site(),
            Some(cluster.api(watched_site).as_str()),
            "{phase}: the watch starts on the preferred site"
        );
        if dark {
            network.link(watched_site, false);
        } else {
            network.split(&[watched_site], &others(watched_site));
        }
        let moved_at = Instant::now();
        writer
            .detach(&switchboard_api::new_request_id(), "watched")
            .await
            .expect("detach while the watched site is away");
        let detached = next_change(&mut follower, bound, phase).await;
        println!(
            "{phase}: the watch moved to {:?} and heard the detach {} ms after it",
            follower.site(),
            moved_at.elapsed().as_millis()
        );
        assert!(detached.route.is_none(), "{phase}: {detached:?}");
        assert!(detached.index > current.index, "{phase}: in order");
        assert_ne!(follower.site(), Some(cluster.api(watched_site).as_str()));
        let attached = writer
            .attach(&switchboard_api::new_request_id(), "watched", "")
            .await
            .expect("attach again");
        let back = next_change(&mut follower, bound, "the next change").await;
        assert_eq!(back.route, attached.route, "{phase}: nothing missed");
        network.heal();
    }
}

/// A watch opened at a site that is behind the caller's index (as when a
/// followed watch moves from a site further ahead) sends nothing the caller
/// was already told: while the site catches up it applies those entries
/// again, and they used to go out, out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_at_a_site_behind_the_callers_index_repeats_nothing() {
    let test = "a_watch_at_a_site_behind_the_callers_index_repeats_nothing";
    let Some((network, cluster)) = cluster_in_namespaces(test, 1).await else {
        return;
    };
    let leader = cluster.leader().await;
    let behind = others(leader)[0];
    let at_leader = cluster.site_client(leader);
    network.split(&[behind], &others(behind));
    let mut told_up_to = 0;
    for _ in 0..3 {
        let attached = at_leader
            .attach(&switchboard_api::new_request_id(), "h1", "")
            .await
            .expect("attach");
        at_leader
            .detach(&switchboard_api::new_request_id(), "h1")
            .await
            .expect("detach");
        told_up_to = told_up_to.max(attached.applied_index + 1);
    }
    let lagging = cluster.status(behind).await.applied_index;
    assert!(
        lagging < told_up_to,
        "site {behind} is behind: {lagging} < {told_up_to}"
    );
    let mut stream = cluster
        .site_client(behind)
        .watch_route("h1", told_up_to)
        .await
        .expect("a watch from an index the site has not reached");
    network.heal();
    let attached = at_leader
        .attach(&switchboard_api::new_request_id(), "h1", "")
        .await
        .expect("a change after the caller's index");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("event");
        if event.progress {
            continue;
        }
        assert!(
            event.index > told_up_to,
            "event {} repeats what the caller was told up to {told_up_to}",
            event.index
        );
        assert_eq!(event.route, attached.route, "the next change, first");
        break;
    }
}

/// How long the follower goes without the leader in a long one-way cut of
/// the reconnect test: three LAN leases, long enough for the leader's TCP
/// retransmissions to back off, as in the partition tests' rounds. The
/// short cut is half a lease.
const LONG_CUT_MS: u64 = 1_500;

/// After a one-way cut between the leader and a follower heals, the
/// follower hears the leader again within an election timeout, and the
/// leader keeps the lead. The leader's connection to it, wedged by the cut
/// (retransmissions backed off, every call on it timing out), used to stay
/// in use for seconds under load, and openraft's replication backoff
/// (200 ms doubling to 1 s) held the catch-up back: meanwhile a second
/// cut, to the other follower, left the leader without a quorum and a
/// site it could not reach was elected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_cut_off_one_way_hears_the_leader_again_soon_after_the_heal() {
    let test = "a_follower_cut_off_one_way_hears_the_leader_again_soon_after_the_heal";
    let Some((network, cluster)) = cluster_in_namespaces(test, 2).await else {
        return;
    };
    let timing = cluster.timing().clone();
    let bound = Duration::from_millis(timing.election_max_ms);
    // Writes during the long cuts, so the leader has entries in flight to
    // the follower when its packets start to vanish; none during the short
    // ones, when only heartbeats use the connection.
    let (writes_on, mut writes_wanted) = tokio::sync::watch::channel(false);
    let writing = {
        let writer = cluster.client();
        tokio::spawn(async move {
            let mut n = 0u64;
            // Ends once the sender is gone (and writes are off).
            while writes_wanted.wait_for(|on| *on).await.is_ok() {
                let host = format!("steady-{}", n % 20);
                let _ = writer
                    .attach(&switchboard_api::new_request_id(), &host, "")
                    .await;
                n += 1;
            }
        })
    };
    let leader = cluster.leader().await;
    let mut slowest = Duration::ZERO;
    for follower in others(leader) {
        for leaders_packets_lost in [true, false] {
            for (cut_ms, writing) in [(LONG_CUT_MS, true), (timing.election_max_ms / 2, false)] {
                writes_on.send_replace(writing);
                if leaders_packets_lost {
                    network.cut(leader, follower);
                } else {
                    network.cut(follower, leader);
                }
                // Held until the follower has gone `cut_ms` without the
                // leader (its own packets lost, it stops hearing once the
                // leader's unacknowledged data fills its window).
                cluster
                    .wait_status(
                        follower,
                        timing.failover_bound() * 4,
                        &format!("site {follower} unheard for {cut_ms} ms"),
                        |status| status.staleness_ms >= cut_ms,
                    )
                    .await;
                network.heal();
                let after = heard_again_after_heal(&cluster, follower).await;
                let way = if leaders_packets_lost {
                    "leader's"
                } else {
                    "follower's"
                };
                println!(
                    "the {way} packets lost until site {follower} went {cut_ms} ms unheard, writes {writing}: it heard leader {leader} again {} ms after the heal",
                    after.as_millis()
                );
                slowest = slowest.max(after);
                assert_eq!(cluster.leader().await, leader, "the leader kept the lead");
            }
        }
    }
    writes_on.send_replace(false);
    drop(writes_on);
    writing.await.expect("writer");
    assert!(
        slowest <= bound,
        "a follower heard the leader again {} ms after a heal (bound: an election timeout, {} ms)",
        slowest.as_millis(),
        bound.as_millis()
    );
}

/// How long after a heal (now) site `follower` is fresh again: its
/// staleness within two heartbeats.
async fn heard_again_after_heal(
    cluster: &switchboard_tests::TestCluster,
    follower: u64,
) -> Duration {
    let healed = Instant::now();
    let timing = cluster.timing();
    let fresh_ms = 2 * timing.heartbeat_ms;
    cluster
        .wait_status(
            follower,
            timing.failover_bound() * 4,
            &format!("site {follower} hears the leader again"),
            |status| status.staleness_ms <= fresh_ms,
        )
        .await;
    healed.elapsed()
}
