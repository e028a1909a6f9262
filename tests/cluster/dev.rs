//! The demo cluster and the config-file bootstrap, as an operator runs them.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::Credentials;
use switchboard_api::new_request_id;
use switchboard_tests::Bootstrap;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::binary;
use switchboard_tests::http_get;
use switchboard_tests::one_cluster_at_a_time;
use switchboard_tests::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchboard_dev_runs_a_demo_cluster_and_stops_it_on_ctrl_c() {
    let _turn = one_cluster_at_a_time().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut dev = std::process::Command::new(binary("switchboard"))
        .args(["dev", "--relays", "3", "--hosts", "12", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start switchboard dev");
    let cluster_json = dir.path().join("cluster.json");
    let loaded = {
        let path = cluster_json.clone();
        wait_until(
            Duration::from_secs(60),
            "cluster.json is written",
            move || {
                let exists = path.exists();
                async move { exists }
            },
        )
        .await;
        ClusterFile::load(&cluster_json).expect("cluster.json parses")
    };
    assert_eq!(loaded.sites.len(), 3);
    for site in &loaded.sites {
        assert!(
            site.pid.is_some() && !site.api.is_empty() && !site.http.is_empty(),
            "{site:?}"
        );
    }

    let tls = loaded.tls.as_ref().expect("the demo runs with TLS");
    let credentials = Credentials::from_files(
        &loaded.cluster_id,
        std::path::Path::new(&tls.ca),
        Some((
            std::path::Path::new(tls.cert.as_deref().expect("admin cert")),
            std::path::Path::new(tls.key.as_deref().expect("admin key")),
        )),
        None,
    )
    .expect("credentials");
    let client = ClusterClient::new(
        loaded.api_endpoints(),
        ClientSettings::default(),
        credentials,
    )
    .expect("client");
    let statuses = client.status_all().await;
    let leaders: Vec<u64> = statuses
        .iter()
        .map(|(_, s)| s.as_ref().expect("every site answers").leader_id)
        .collect();
    assert!(
        leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]),
        "one leader: {leaders:?}"
    );
    // The simulator registers the relays and attaches the hosts; followers
    // apply the last attaches within a heartbeat or two.
    wait_until(
        Duration::from_secs(60),
        "every site holds the 3 relays and 12 hosts",
        || {
            let client = &client;
            async move {
                client.status_all().await.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_ok_and(|s| s.route_count == 12 && s.relay_count == 3)
                })
            }
        },
    )
    .await;

    let http = &loaded.sites[0].http;
    let page = http_get(http, "/").await;
    assert!(
        page.contains("Switchboard") && page.contains("relay-1"),
        "status page: {page}"
    );
    assert!(
        http_get(http, "/metrics")
            .await
            .contains("switchboard_raft_term")
    );

    kill(Pid::from_raw(dev.id() as i32), Signal::SIGINT).expect("Ctrl-C");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dev.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "switchboard dev did not stop within 30 s of Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    for site in &loaded.sites {
        let pid = Pid::from_raw(site.pid.expect("pid") as i32);
        assert!(
            kill(pid, None).is_err(),
            "site {} (pid {pid}) still runs after the demo stopped",
            site.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_forms_from_initial_sites_in_config_files() {
    let cluster = TestCluster::start_with(TestSpec {
        bootstrap: Bootstrap::InitialSites,
        ..TestSpec::default()
    })
    .await;
    let leader = cluster.leader().await;
    let status = cluster.status(leader).await;
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.voter));
    switchboard_tests::load::register_relays(&cluster.client(), 1, 10).await;
    cluster
        .client()
        .attach(&new_request_id(), "h1", "")
        .await
        .expect("the cluster takes writes");
}
