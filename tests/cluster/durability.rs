//! Acknowledged writes survive `kill -9` of every site at once.
//!
//! `kill -9` leaves the kernel's page cache in place, so this proves that
//! every acknowledged write reached RocksDB's WAL before it was
//! acknowledged and that recovery replays it; it cannot prove that the
//! fsync itself happened (that would take a power cut). The synced writes
//! are checked in raft-store's code and its storage tests.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use switchboard_tests::TestCluster;

use switchboard_tests::load::AttachLoad;
use switchboard_tests::load::assert_all_readable;
use switchboard_tests::load::register_relays;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_every_site_mid_load_loses_no_acknowledged_attach() {
    let mut cluster = TestCluster::start().await;
    let client = Arc::new(cluster.client());
    register_relays(&client, 4, 10_000).await;
    let load = AttachLoad::start(client.clone(), "host", 3_000, 8);
    load.wait_for_acks(500, Duration::from_secs(30)).await;
    let killed_at = Instant::now();
    for site in 1..=3 {
        cluster.cluster.kill(site).expect("kill -9");
    }
    let acked_before_kill: Vec<_> = load
        .acked
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.finished <= killed_at)
        .cloned()
        .collect();
    println!(
        "{} attaches acknowledged before every site was killed",
        acked_before_kill.len()
    );
    assert!(acked_before_kill.len() >= 500);

    for site in 1..=3 {
        cluster.cluster.restart(site).expect("restart");
    }
    // The load's in-flight attaches retry (same request ids) until the sites are back.
    let (acked, failures) = load.finish().await;
    assert!(failures.is_empty(), "attaches failed: {failures:?}");
    assert_eq!(acked.len(), 3_000);

    let leader = cluster.leader().await;
    let commit = cluster.status(leader).await.commit_index;
    let highest_acked = acked
        .iter()
        .map(|a| a.applied_index)
        .max()
        .expect("some attach");
    assert!(
        commit >= highest_acked,
        "the log after restart ({commit}) holds every acknowledged index ({highest_acked})"
    );
    for site in 1..=3 {
        cluster
            .wait_applied(site, commit, Duration::from_secs(20))
            .await;
        assert_all_readable(&cluster.site_client(site), site, &acked_before_kill).await;
        assert_all_readable(&cluster.site_client(site), site, &acked).await;
        assert_eq!(
            cluster.status(site).await.route_count,
            3_000,
            "site {site} holds exactly the attached hosts"
        );
    }
}
