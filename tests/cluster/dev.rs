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

/// Starts `switchboard dev` in `dir`; returns it and its cluster file once
/// it says it runs ("Press Ctrl-C to stop").
async fn start_dev(
    dir: &std::path::Path,
    relays: u32,
    hosts: u32,
) -> (std::process::Child, ClusterFile) {
    use std::io::BufRead;
    let mut dev = std::process::Command::new(binary("switchboard"))
        .args([
            "dev",
            "--relays",
            &relays.to_string(),
            "--hosts",
            &hosts.to_string(),
            "--dir",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start switchboard dev");
    let stdout = dev.stdout.take().expect("stdout");
    let (started, started_signal) = std::sync::mpsc::channel();
    // Reads stdout to its end, so the demo never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("Press Ctrl-C") {
                let _ = started.send(());
            }
        }
    });
    tokio::task::spawn_blocking(move || started_signal.recv_timeout(Duration::from_secs(120)))
        .await
        .expect("join")
        .expect("switchboard dev started within 120 s");
    let cluster_json = dir.join("cluster.json");
    (
        dev,
        ClusterFile::load(&cluster_json).expect("cluster.json parses"),
    )
}

/// Waits until `dev` exits; its status.
async fn exit_of(
    dev: &mut std::process::Child,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = dev.try_wait().expect("wait") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn site_pids(loaded: &ClusterFile) -> Vec<Pid> {
    loaded
        .sites
        .iter()
        .map(|s| Pid::from_raw(s.pid.expect("pid") as i32))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_switchboard_dev_takes_its_sites_along_and_one_whose_sites_died_exits() {
    let _turn = one_cluster_at_a_time().await;
    // SIGKILL: no handler runs; the kernel tells each site (SIGTERM).
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, loaded) = start_dev(dir.path(), 1, 1).await;
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGKILL).expect("kill -9");
    let _ = exit_of(&mut dev, Duration::from_secs(5), "killed").await;
    let pids = site_pids(&loaded);
    wait_until(
        Duration::from_secs(20),
        "every site stops once its launcher is killed",
        || {
            let gone = pids.iter().all(|pid| kill(*pid, None).is_err());
            async move { gone }
        },
    )
    .await;

    // Every site killed under it: the launcher has nothing left and says so.
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, loaded) = start_dev(dir.path(), 1, 1).await;
    for pid in site_pids(&loaded) {
        kill(pid, Signal::SIGKILL).expect("kill a site");
    }
    let status = exit_of(
        &mut dev,
        Duration::from_secs(30),
        "switchboard dev kept running with every site dead",
    )
    .await;
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchboard_dev_runs_a_demo_cluster_and_stops_it_on_ctrl_c() {
    let _turn = one_cluster_at_a_time().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, loaded) = start_dev(dir.path(), 3, 12).await;
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
    let status = exit_of(
        &mut dev,
        Duration::from_secs(30),
        "switchboard dev did not stop within 30 s of Ctrl-C",
    )
    .await;
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
