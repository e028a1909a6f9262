//! Operations against a real cluster, through sbctl: relay drains,
//! maintenance windows, site drains, the topology check, backups and
//! restores, recovery from a lone survivor, and the audit log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use rand::seq::IndexedRandom;
use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_node::SCHEDULER_TICK;
use switchboard_proto::v1 as pb;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::binary;
use switchboard_tests::load::Acked;
use switchboard_tests::load::AttachLoad;
use switchboard_tests::load::assert_all_readable;
use switchboard_tests::sbctl;
use switchboard_tests::sbctl_json;
use switchboard_tests::text;
use switchboard_tests::wait_until;

async fn register(client: &ClusterClient, relay_id: &str, capacity: u32, labels: &[(&str, &str)]) {
    client
        .register_relay(pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
            endpoint: format!("{relay_id}.test:443"),
            region: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            capacity,
            incarnation: 1,
        })
        .await
        .expect("register relay");
}

/// Attaches `count` hosts named `prefix-NNNNN` and returns the answers.
async fn attach_hosts(client: &Arc<ClusterClient>, prefix: &str, count: u64) -> Vec<Acked> {
    let load = AttachLoad::start(client.clone(), prefix, count, 64);
    load.wait_for_acks(count as usize, Duration::from_secs(180))
        .await;
    let (acked, failures) = load.finish().await;
    assert!(failures.is_empty(), "attaches failed: {failures:?}");
    acked
}

async fn relay(client: &ClusterClient, relay_id: &str) -> pb::Relay {
    client
        .list_relays()
        .await
        .expect("list relays")
        .relays
        .into_iter()
        .find(|r| r.relay_id == relay_id)
        .unwrap_or_else(|| panic!("relay {relay_id} is listed"))
}

async fn windows(client: &ClusterClient) -> Vec<pb::MaintenanceWindow> {
    client
        .list_maintenance()
        .await
        .expect("list maintenance")
        .windows
}

/// Whether the first maintenance window has `status`.
async fn first_window_is(client: &ClusterClient, status: &str) -> bool {
    windows(client)
        .await
        .first()
        .is_some_and(|w| w.status == status)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_drain_of_10000_hosts_re_places_every_host_and_none_is_ever_without_a_route() {
    const HOSTS: u64 = 10_000;
    const RATE: u32 = 2_500;
    let cluster = TestCluster::start().await;
    let client = Arc::new(cluster.client());
    register(&client, "relay-big", HOSTS as u32, &[]).await;
    let acked = attach_hosts(&client, "drained-host", HOSTS).await;
    assert!(acked.iter().all(|a| a.relay_id == "relay-big"));
    let cluster_json = cluster.cluster_json();
    let no_room = sbctl(&cluster_json, &["relay", "drain", "relay-big"]).await;
    assert_eq!(no_room.status.code(), Some(1));
    assert!(
        text(&no_room.stderr).contains("room for 0"),
        "{}",
        text(&no_room.stderr)
    );
    for n in 1..=4 {
        register(&client, &format!("relay-{n}"), 3_000, &[]).await;
    }

    // Hosts watching their routes are told where they went.
    let watched: Vec<&Acked> = acked.iter().step_by(2_000).collect();
    let mut watches = Vec::new();
    for host in &watched {
        watches.push(
            client
                .watch_route(&host.host_id, host.applied_index)
                .await
                .expect("watch a route"),
        );
    }

    // Samples while the drain runs: at every moment the relays' route counts
    // (one site's state at one index) add up to every host, and a random
    // sample of hosts resolves on a random site.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicU64::new(0));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let site_clients: Vec<ClusterClient> = (1..=3).map(|id| cluster.site_client(id)).collect();
    let host_ids: Vec<String> = acked.iter().map(|a| a.host_id.clone()).collect();
    let sampler = {
        let (stop, samples, problems) = (stop.clone(), samples.clone(), problems.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let site = site_clients.choose(&mut rand::rng()).expect("three sites");
                match site.list_relays().await {
                    Ok(list) => {
                        let total: u64 = list.relays.iter().map(|r| u64::from(r.route_count)).sum();
                        if total != HOSTS {
                            problems
                                .lock()
                                .unwrap()
                                .push(format!("routes add up to {total}"));
                        }
                    }
                    Err(error) => problems
                        .lock()
                        .unwrap()
                        .push(format!("list relays: {error}")),
                }
                let sample: Vec<&String> = host_ids.sample(&mut rand::rng(), 50).collect();
                let reads = sample
                    .iter()
                    .map(|host| site.resolve(host, pb::Consistency::Local, 0));
                for (host, result) in sample.iter().zip(futures::future::join_all(reads).await) {
                    if let Err(error) = result {
                        problems.lock().unwrap().push(format!("{host}: {error}"));
                    }
                }
                samples.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let started = Instant::now();
    let drained = sbctl_json(
        &cluster_json,
        &[
            "relay",
            "drain",
            "relay-big",
            "--rate",
            &RATE.to_string(),
            "--wait",
        ],
    )
    .await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");

    assert_eq!(drained["state"], "drained", "{drained}");
    assert_eq!(drained["hosts_moved"], HOSTS, "{drained}");
    let rate = drained["hosts_per_second"].as_f64().expect("a rate");
    println!(
        "drained {HOSTS} hosts at {rate:.0} hosts/s (asked {RATE}) in {:.2} s; {} samples",
        took.as_secs_f64(),
        samples.load(Ordering::Relaxed)
    );
    let problems = problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "hosts without a route during the drain: {problems:?}"
    );
    assert!(
        samples.load(Ordering::Relaxed) >= 5,
        "the drain was sampled"
    );
    // The pace holds: no faster than asked (one tick's batch of slack).
    let floor = Duration::from_secs_f64(HOSTS as f64 / f64::from(RATE)) - SCHEDULER_TICK * 2;
    assert!(took >= floor, "10,000 hosts at {RATE}/s took only {took:?}");

    let big = relay(&client, "relay-big").await;
    assert_eq!(
        (big.state, big.route_count),
        (pb::RelayState::Drained as i32, 0)
    );
    let generations: BTreeMap<&str, u64> = acked
        .iter()
        .map(|a| (a.host_id.as_str(), a.generation))
        .collect();
    for chunk in acked.chunks(200) {
        let reads = chunk
            .iter()
            .map(|a| client.resolve(&a.host_id, pb::Consistency::Linearizable, 0));
        for (host, result) in chunk.iter().zip(futures::future::join_all(reads).await) {
            let route = result.expect("resolve").route.expect("a route");
            assert_ne!(route.relay_id, "relay-big", "{} moved", host.host_id);
            assert!(route.generation > generations[host.host_id.as_str()]);
        }
    }
    for (host, mut watch) in watched.iter().zip(watches) {
        let moved = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = watch.message().await.expect("watch").expect("event");
                if event.route.is_some_and(|r| r.relay_id != "relay-big") {
                    return;
                }
            }
        })
        .await;
        assert!(moved.is_ok(), "{} was told of its new relay", host.host_id);
    }
    let undrained = sbctl_json(&cluster_json, &["relay", "undrain", "relay-big"]).await;
    assert_eq!(undrained[0]["state"], "active", "{undrained}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_maintenance_window_spanning_leader_kills_still_starts_and_ends() {
    let mut cluster = TestCluster::start().await;
    let client = Arc::new(cluster.client());
    register(&client, "maint-a", 100, &[]).await;
    register(&client, "maint-b", 100, &[]).await;
    let acked = attach_hosts(&client, "maint-host", 40).await;
    let on_a: Vec<&Acked> = acked.iter().filter(|a| a.relay_id == "maint-a").collect();
    assert!(!on_a.is_empty());
    let cluster_json = cluster.cluster_json();
    let failover = cluster.timing().failover_bound();
    // Room to kill a leader before the start, and another inside the window.
    let lead = failover * 2 + Duration::from_secs(1);
    let length = failover * 3 + Duration::from_secs(2);

    let start_ms = unix_ms() + lead.as_millis() as u64;
    let window = sbctl_json(
        &cluster_json,
        &[
            "maintenance",
            "schedule",
            "--target",
            "relay:maint-a",
            "--start",
            &rfc3339(start_ms),
            "--end",
            &format!("+{}ms", length.as_millis()),
            "--reason",
            "firmware",
        ],
    )
    .await;
    assert_eq!(window["status"], "scheduled", "{window}");
    assert_eq!(window["created_by"], "admin:operator", "{window}");
    let end_ms = window["end_unix_ms"].as_u64().expect("end");
    let status = sbctl(&cluster_json, &["status"]).await;
    assert!(
        text(&status.stdout).contains("relay:maint-a"),
        "status shows the window:\n{}",
        text(&status.stdout)
    );

    // The leader that accepted the window dies before it starts.
    let first_leader = cluster.leader().await;
    cluster.cluster.kill(first_leader).expect("kill");
    wait_until(
        lead + failover * 2,
        "the window starts under the new leader",
        || first_window_is(&client, "active"),
    )
    .await;
    let second_leader = cluster.leader().await;
    assert_ne!(second_leader, first_leader);
    wait_until(Duration::from_secs(10), "maint-a is drained", || {
        let client = &client;
        async move { relay(client, "maint-a").await.state == pb::RelayState::Drained as i32 }
    })
    .await;
    for host in &on_a {
        let route = client
            .resolve(&host.host_id, pb::Consistency::Linearizable, 0)
            .await
            .expect("resolve")
            .route
            .expect("a route during the window");
        assert_eq!(route.relay_id, "maint-b");
    }
    let info = sbctl_json(&cluster_json, &["nodeinfo"]).await;
    assert_eq!(info["maintenance"][0][1], "relay:maint-a", "{info}");
    assert_eq!(info["maintenance"][0][4], "active", "{info}");

    // The next leader dies inside the window; a third one ends it.
    cluster.cluster.restart(first_leader).expect("restart");
    cluster.cluster.kill(second_leader).expect("kill");
    let killed_at_ms = unix_ms();
    let ended_bound_ms = end_ms.max(killed_at_ms + failover.as_millis() as u64)
        + (failover + SCHEDULER_TICK * 5).as_millis() as u64;
    wait_until(
        Duration::from_millis(ended_bound_ms.saturating_sub(unix_ms())) + Duration::from_secs(5),
        "the window ends",
        || first_window_is(&client, "done"),
    )
    .await;
    assert_eq!(
        relay(&client, "maint-a").await.state,
        pb::RelayState::Active as i32,
        "undrained at the end"
    );
    let audit = sbctl_json(&cluster_json, &["audit", "--limit", "0"]).await;
    let records = audit.as_array().expect("records");
    let at = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("audit has {action:?}: {audit}"))["at_unix_ms"]
            .as_u64()
            .expect("at")
    };
    let started_at = at("maintenance window 1 Started");
    let ended_at = at("maintenance window 1 Ended");
    println!(
        "window started {} ms after its start and ended {} ms after its end, across two leader kills",
        started_at.saturating_sub(start_ms),
        ended_at.saturating_sub(end_ms)
    );
    assert!(started_at >= start_ms && ended_at >= end_ms);
    assert!(
        ended_at <= ended_bound_ms,
        "ended at {ended_at}, bound {ended_bound_ms}"
    );
    assert!(records.iter().any(|r| {
        r["actor"] == "system:leader"
            && r["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("drain relay maint-a"))
    }));
}

/// A Unix-ms time in RFC 3339, as an operator would type it.
fn rfc3339(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_drain_moves_leadership_and_the_drained_site_stops_without_a_failed_request() {
    let mut cluster = TestCluster::start().await;
    let client = Arc::new(cluster.client());
    register(&client, "relay-1", 1_000, &[]).await;
    let acked = attach_hosts(&client, "site-drain-host", 200).await;
    let hosts: Arc<Vec<String>> = Arc::new(acked.iter().map(|a| a.host_id.clone()).collect());

    // Clients with node info resolve all along.
    let clients = cluster.directory_client();
    clients.refresh_node_info().await.expect("node info");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let resolvers: Vec<_> = (0..8)
        .map(|worker| {
            let (clients, hosts, stop, answered, failed) = (
                clients.clone(),
                hosts.clone(),
                stop.clone(),
                answered.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let consistency = if worker % 2 == 0 {
                    pb::Consistency::Local
                } else {
                    pb::Consistency::Linearizable
                };
                while !stop.load(Ordering::Relaxed) {
                    let host = hosts.choose(&mut rand::rng()).expect("hosts");
                    match clients.resolve(host, consistency, 0).await {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => failed.lock().unwrap().push(format!("{host}: {error}")),
                    }
                }
            })
        })
        .collect();

    let drained = cluster.leader().await;
    let cluster_json = cluster.cluster_json();
    let answer = sbctl_json(&cluster_json, &["site", "drain", &drained.to_string()]).await;
    assert_eq!(answer["draining"], true, "{answer}");
    assert_ne!(answer["leader_id"], drained, "{answer}");
    let leader = cluster.leader().await;
    assert_ne!(leader, drained, "leadership moved away");
    // A client that knows only the drained site is redirected.
    let redirected = cluster
        .site_client(drained)
        .resolve(&hosts[0], pb::Consistency::Local, 0)
        .await
        .expect("redirected to a site in service");
    assert_ne!(redirected.served_by_site, drained);
    wait_until(
        Duration::from_secs(10),
        "clients learn the site is drained",
        || {
            let document = clients.directory().and_then(|d| d.document());
            async move {
                document.is_some_and(|d| d.sites.iter().any(|s| s.site_id == drained && s.draining))
            }
        },
    )
    .await;

    let http = cluster.cluster.sites[&drained].report.http_addr.clone();
    let ready = switchboard_tests::http_get(&http, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("drained"),
        "{ready}"
    );
    let page = switchboard_tests::http_get(&http, "/status.json").await;
    assert!(page.contains("\"draining\":true"), "{page}");

    let before_stop = answered.load(Ordering::Relaxed);
    cluster
        .cluster
        .terminate(drained)
        .expect("stop the drained site");
    let stopped_at = answered.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "clients answered after the stop",
        || {
            let more = answered.load(Ordering::Relaxed) >= stopped_at + 500;
            async move { more }
        },
    )
    .await;
    // With the drained site down (once the leader notices), draining a
    // second would cost quorum.
    cluster.wait_unhealthy(leader, drained).await;
    let other = (1..=3)
        .find(|id| *id != drained && *id != leader)
        .expect("a third site");
    let unsafe_drain = sbctl(&cluster_json, &["site", "drain", &other.to_string()]).await;
    assert_eq!(unsafe_drain.status.code(), Some(1));
    assert!(
        text(&unsafe_drain.stderr).contains("quorum"),
        "{}",
        text(&unsafe_drain.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    for resolver in resolvers {
        resolver.await.expect("resolver");
    }
    let failed = failed.lock().unwrap().clone();
    println!(
        "{} resolves, {} of them before the stop, {} failed",
        answered.load(Ordering::Relaxed),
        before_stop,
        failed.len()
    );
    assert!(failed.is_empty(), "client requests failed: {failed:?}");

    cluster.cluster.restart(drained).expect("restart");
    let back = sbctl_json(&cluster_json, &["site", "undrain", &drained.to_string()]).await;
    assert_eq!(back["draining"], false);
    let audit = sbctl_json(&cluster_json, &["audit"]).await;
    let drain_record = audit
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["action"] == format!("drain site {drained}"))
        .unwrap_or_else(|| panic!("the drain is audited: {audit}"));
    assert_eq!(drain_record["actor"], "admin:operator");
    assert_eq!(drain_record["result"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_topology_check_flags_two_voters_on_one_power_feed() {
    let feed = |name: &str| BTreeMap::from([("power".to_owned(), name.to_owned())]);
    let cluster = TestCluster::start_with(TestSpec {
        site_labels: BTreeMap::from([
            (1, feed("feed-a")),
            (2, feed("feed-a")),
            (3, feed("feed-b")),
        ]),
        ..TestSpec::default()
    })
    .await;
    let client = cluster.client();
    register(
        &client,
        "relay-x",
        100,
        &[("power", "feed-c"), ("region", "eu-1")],
    )
    .await;
    register(
        &client,
        "relay-y",
        100,
        &[("power", "feed-d"), ("region", "eu-2")],
    )
    .await;
    let cluster_json = cluster.cluster_json();

    let check = sbctl(&cluster_json, &["topology", "check", "--json"]).await;
    assert_eq!(
        check.status.code(),
        Some(1),
        "critical: exit 1; {}",
        text(&check.stderr)
    );
    let risks: serde_json::Value = serde_json::from_slice(&check.stdout).expect("JSON");
    let risks = risks.as_array().expect("risks");
    assert_eq!(
        risks.len(),
        1,
        "only the shared feed is critical: {risks:?}"
    );
    assert_eq!(risks[0]["label"], "power");
    assert_eq!(risks[0]["value"], "feed-a");
    assert_eq!(risks[0]["quorum_lost"], true);
    assert_eq!(risks[0]["sites"], serde_json::json!([1, 2]));

    let table = sbctl(&cluster_json, &["topology", "check", "--all"]).await;
    let shown = text(&table.stdout);
    assert!(
        shown.contains("power=feed-a") && shown.contains("loses quorum"),
        "{shown}"
    );
    assert!(
        shown.contains("datacenter=dc-1"),
        "every domain with --all:\n{shown}"
    );

    let strict = sbctl(
        &cluster_json,
        &["topology", "check", "--capacity-share", "0.4", "--json"],
    )
    .await;
    let risks: serde_json::Value = serde_json::from_slice(&strict.stdout).expect("JSON");
    assert!(
        risks
            .as_array()
            .expect("risks")
            .iter()
            .any(|r| r["value"] == "feed-c" && r["capacity_critical"] == true),
        "half the relay capacity on one feed is over 40%: {risks}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_into_a_rebuilt_cluster_brings_back_every_route_and_raises_the_era() {
    let backups = tempfile::tempdir().expect("temp dir");
    let backup = backups.path().join("switchboard.backup");
    let (acked, backup_era) = {
        let lost = TestCluster::start().await;
        let client = Arc::new(lost.client());
        for n in 1..=3 {
            register(&client, &format!("relay-{n}"), 1_000, &[]).await;
        }
        let acked = attach_hosts(&client, "restored-host", 1_000).await;
        client
            .set_notice(&new_request_id(), "before the loss")
            .await
            .expect("notice");
        let saved = sbctl_json(
            &lost.cluster_json(),
            &["snapshot", "save", backup.to_str().expect("utf-8 path")],
        )
        .await;
        assert_eq!(saved["routes"], 1_000, "{saved}");
        assert_eq!(saved["relays"], 3, "{saved}");
        (acked, saved["era"].as_u64().expect("era"))
        // Every site of the lost cluster is killed and deleted here.
    };

    let rebuilt = TestCluster::start().await;
    let cluster_json = rebuilt.cluster_json();
    let client = rebuilt.client();
    wait_until(
        Duration::from_secs(20),
        "the rebuilt cluster signs node info",
        || {
            let client = &client;
            async move {
                client
                    .refresh_node_info()
                    .await
                    .is_ok_and(|r| r.node_info.is_some())
            }
        },
    )
    .await;
    let era_before = rebuilt.status(1).await.node_info_era;

    let unconfirmed = sbctl(
        &cluster_json,
        &["snapshot", "restore", backup.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "a missing confirmation is a usage error"
    );
    assert!(text(&unconfirmed.stderr).contains("--yes-replace-state"));
    assert_eq!(rebuilt.status(1).await.route_count, 0, "nothing changed");

    let restored = sbctl_json(
        &cluster_json,
        &[
            "snapshot",
            "restore",
            backup.to_str().expect("utf-8 path"),
            "--yes-replace-state",
        ],
    )
    .await;
    assert_eq!(restored["routes"], 1_000, "{restored}");
    let era = restored["era"].as_u64().expect("era");
    assert!(
        era > backup_era && era > era_before,
        "era {era} after {backup_era}/{era_before}"
    );
    println!(
        "restored 1,000 routes in {:.2} s",
        restored["seconds"].as_f64().unwrap_or(0.0)
    );

    let applied = rebuilt.status(rebuilt.leader().await).await.applied_index;
    for id in 1..=3 {
        rebuilt
            .wait_applied(id, applied, Duration::from_secs(20))
            .await;
        assert_all_readable(&rebuilt.site_client(id), id, &acked).await;
        assert_eq!(rebuilt.status(id).await.node_info_era, era);
    }
    let fresh = rebuilt.directory_client();
    fresh.refresh_node_info().await.expect("node info");
    let document = fresh
        .directory()
        .and_then(|d| d.document())
        .expect("a verified document");
    assert_eq!(document.era, era);
    assert_eq!(document.notice, "before the loss");
    assert_eq!(document.cluster_id, rebuilt.cluster_id());
    let attached = client
        .attach(&new_request_id(), "after-restore", "")
        .await
        .expect("writes go on after a restore");
    assert!(attached.route.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_survivor_recovered_serves_every_route_and_takes_two_new_sites_back() {
    let mut cluster = TestCluster::start().await;
    let client = Arc::new(cluster.client());
    for n in 1..=3 {
        register(&client, &format!("relay-{n}"), 1_000, &[]).await;
    }
    let acked = attach_hosts(&client, "survivor-host", 600).await;
    let last = acked.iter().map(|a| a.applied_index).max().expect("acked");
    cluster.wait_applied(1, last, Duration::from_secs(20)).await;
    let era_before = cluster.status(1).await.node_info_era;

    let survivor = cluster.cluster.sites[&1].config.data_dir.clone();
    let recover = |confirm: bool| {
        let mut command = tokio::process::Command::new(binary("switchboard"));
        command.arg("recover").arg("--data-dir").arg(&survivor);
        if confirm {
            command.arg("--yes-discard-other-sites");
        }
        command.output()
    };
    let while_running = recover(true).await.expect("run recover");
    assert!(!while_running.status.success());
    assert!(
        text(&while_running.stderr).contains("is in use"),
        "a running site's data dir is refused: {}",
        text(&while_running.stderr)
    );
    assert_eq!(
        cluster.status(1).await.node_info_era,
        era_before,
        "and the running site is untouched"
    );

    for id in 1..=3 {
        cluster.cluster.kill(id).expect("kill");
    }
    for id in [2, 3] {
        let data_dir = cluster.cluster.sites[&id].config.data_dir.clone();
        std::fs::remove_dir_all(&data_dir).expect("sites 2 and 3 are lost");
    }
    let unconfirmed = recover(false).await.expect("run recover");
    assert!(!unconfirmed.status.success());
    assert!(text(&unconfirmed.stderr).contains("WARNING"));
    assert!(text(&unconfirmed.stderr).contains("nothing changed"));
    let recovered = recover(true).await.expect("run recover");
    assert!(recovered.status.success(), "{}", text(&recovered.stderr));
    assert!(
        text(&recovered.stdout).contains("600 routes"),
        "{}",
        text(&recovered.stdout)
    );

    cluster.cluster.restart(1).expect("restart the survivor");
    assert_eq!(cluster.leader().await, 1, "a cluster of one leads itself");
    assert_all_readable(&cluster.site_client(1), 1, &acked).await;
    let status = cluster.status(1).await;
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.node_info_era, era_before + 1);

    // The lost sites come back with empty data dirs, as new members.
    let admin = cluster.site_client_with_deadline(1, Duration::from_secs(30));
    for id in [2, 3] {
        cluster
            .cluster
            .restart(id)
            .expect("start with an empty data dir");
        let endpoints = cluster.cluster.endpoints(id).expect("endpoints");
        admin.add_learner(endpoints).await.expect("add learner");
        admin
            .wait_caught_up(id, Duration::from_secs(60), |_, _| {})
            .await
            .expect("caught up");
        admin.promote_voter(id, false).await.expect("promote");
    }
    let status = cluster.status(1).await;
    assert_eq!(
        status.members.iter().filter(|m| m.voter).count(),
        3,
        "{:?}",
        status.members
    );
    for id in [2, 3] {
        cluster
            .wait_applied(id, status.applied_index, Duration::from_secs(20))
            .await;
        assert_all_readable(&cluster.site_client(id), id, &acked).await;
    }
    cluster
        .cluster
        .kill(1)
        .expect("the survivor may now fail too");
    let leader = cluster.leader().await;
    assert_ne!(leader, 1);
    let attached = cluster
        .site_client(leader)
        .attach(&new_request_id(), "after-recovery", "")
        .await
        .expect("the rebuilt cluster takes writes without the survivor");
    assert!(attached.route.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_steps_follow_the_safety_rule_unless_forced() {
    let mut cluster = TestCluster::start().await;
    let cluster_json = cluster.cluster_json();
    let leader = cluster.leader().await;
    let next = (1..=3).find(|id| *id != leader).expect("a follower");
    let moved = sbctl_json(
        &cluster_json,
        &["leader", "transfer", "--to", &next.to_string()],
    )
    .await;
    assert_eq!(moved["new_leader_id"], next);
    assert_eq!(cluster.leader().await, next);

    let (down, healthy) = {
        let mut others = (1..=3).filter(|id| *id != next);
        (
            others.next().expect("two others"),
            others.next().expect("two others"),
        )
    };
    cluster.cluster.kill(down).expect("kill");
    cluster.wait_unhealthy(next, down).await;
    let listed = sbctl(&cluster_json, &["members", "list"]).await;
    assert!(
        text(&listed.stdout).contains("NO"),
        "{}",
        text(&listed.stdout)
    );

    for step in [
        vec!["members", "remove", &*healthy.to_string()],
        vec!["leader", "transfer", "--to", &*healthy.to_string()],
        vec!["site", "drain", &*healthy.to_string()],
    ] {
        let refused = sbctl(&cluster_json, &step).await;
        assert_eq!(refused.status.code(), Some(1), "{step:?} is refused");
        assert!(
            text(&refused.stderr).contains("quorum"),
            "{step:?}: {}",
            text(&refused.stderr)
        );
    }
    assert_eq!(
        cluster.status(next).await.members.len(),
        3,
        "nothing changed"
    );

    // Removing the dead site is safe; then two voters remain, and handing
    // leadership over is only allowed by force.
    let removed = sbctl_json(&cluster_json, &["members", "remove", &down.to_string()]).await;
    assert_eq!(removed.as_array().expect("members").len(), 2, "{removed}");
    let refused = sbctl(
        &cluster_json,
        &["leader", "transfer", "--to", &healthy.to_string()],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let forced = sbctl_json(
        &cluster_json,
        &[
            "leader",
            "transfer",
            "--to",
            &healthy.to_string(),
            "--force",
        ],
    )
    .await;
    assert_eq!(forced["new_leader_id"], healthy);
    let audit = sbctl_json(&cluster_json, &["audit"]).await;
    assert!(
        audit
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["action"] == format!("remove site {down}") && r["actor"] == "admin:operator"),
        "{audit}"
    );
}
