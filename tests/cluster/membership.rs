//! Membership: a new site joins as a learner and catches up through a
//! snapshot; a data dir serves only its own site.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use switchboard_tests::Snapshots;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::binary;

use switchboard_tests::load::AttachLoad;
use switchboard_tests::load::assert_all_readable;
use switchboard_tests::load::register_relays;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_site_joins_as_a_learner_through_a_snapshot() {
    let spec = TestSpec {
        snapshots: Snapshots {
            logs_since_last: 500,
            logs_kept: 50,
        },
        ..TestSpec::default()
    };
    let mut cluster = TestCluster::start_with(spec).await;
    let client = Arc::new(cluster.client());
    register_relays(&client, 4, 10_000).await;
    let (acked, failures) = AttachLoad::start(client.clone(), "host", 3_000, 8)
        .finish()
        .await;
    assert!(failures.is_empty(), "{failures:?}");

    let leader = cluster.leader().await;
    let leader_status = cluster.status(leader).await;
    assert!(
        leader_status.snapshot_index > 0,
        "the leader took a snapshot: {leader_status:?}"
    );
    assert!(
        leader_status.purged_index > 0,
        "the leader purged its log behind the snapshot: {leader_status:?}"
    );

    let new_site = cluster
        .cluster
        .spawn_additional_site()
        .expect("start a fourth site");
    let endpoints = cluster.cluster.endpoints(new_site).expect("endpoints");
    let started = Instant::now();
    let response = client.add_learner(endpoints).await.expect("add learner");
    let mut progress = Vec::new();
    client
        .wait_caught_up(new_site, Duration::from_secs(60), |matched, target| {
            progress.push((matched, target))
        })
        .await
        .expect("the learner catches up");
    println!(
        "site {new_site} caught up on 3,000 routes as a learner in {} ms",
        started.elapsed().as_millis()
    );
    assert!(!progress.is_empty(), "progress was reported");
    assert!(
        response
            .members
            .iter()
            .any(|m| m.site_id == new_site && !m.voter)
    );

    let joined = cluster.status(new_site).await;
    assert_eq!(joined.role, "learner");
    assert!(
        joined.snapshot_index > 0,
        "the learner was brought up from a snapshot: {joined:?}"
    );
    let commit = cluster.status(leader).await.commit_index;
    cluster
        .wait_applied(new_site, commit, Duration::from_secs(20))
        .await;
    assert_eq!(cluster.status(new_site).await.route_count, 3_000);
    assert_all_readable(&cluster.site_client(new_site), new_site, &acked).await;

    // Promoted, it votes; the cluster keeps working with it as a voter.
    let promoted = client
        .promote_voter(new_site, false)
        .await
        .expect("promote");
    assert!(
        promoted
            .members
            .iter()
            .any(|m| m.site_id == new_site && m.voter)
    );
    client
        .attach(&switchboard_api::new_request_id(), "after-join", "")
        .await
        .expect("attach after join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_refuses_a_data_dir_of_another_site() {
    let mut cluster = TestCluster::start().await;
    cluster.cluster.kill(2).expect("kill");
    // Site 3's config, pointed at site 2's data dir.
    let mut config = cluster.cluster.sites[&3].config.clone();
    config.data_dir = cluster.cluster.sites[&2].config.data_dir.clone();
    config.raft_addr = "127.0.0.1:0".into();
    config.api_addr = "127.0.0.1:0".into();
    config.http_addr = "127.0.0.1:0".into();
    let path = cluster.cluster.dir().join("wrong-site.toml");
    config.save(&path).expect("write config");
    let output = std::process::Command::new(binary("switchboard"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run switchboard");
    assert!(!output.status.success(), "the site must refuse to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("belongs to cluster") && stderr.contains("site 2"),
        "unclear refusal: {stderr}"
    );
}
