//! The 2013 incident, replayed. A gateway service whose one controller lost
//! power was down about 7 hours; failover and failback were manual; 440
//! customers stayed stranded about 2.5 hours more because their cached
//! node-info files named the wrong system.
//!
//! Here three sites named after datacenters run in network namespaces;
//! relays, hosts (following their routes through the client library) and
//! remote-access clients (with the client library's node-info cache on
//! disk) use the cluster. Some clients' caches name only the site that
//! will fail (they were written when it was the whole cluster); others'
//! name only a site long retired, with one seed. The leader's site loses
//! power with its links (cable out and `kill -9` at the same instant); the
//! notice changes and a relay is drained while it is dark; then it comes
//! back. The figures are printed beside 2013's and asserted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::Directory;
use switchboard_api::new_request_id;
use switchboard_node::local::RelayBook;
use switchboard_node::local::SimHost;
use switchboard_node::local::SimRelay;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::node_info::NodeInfoDocument;
use switchboard_tests::Bootstrap;
use switchboard_tests::RelayTiming;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::netns::network_or_say_why;
use switchboard_tests::signed_node_info;
use switchboard_tests::wait_until;

const TSUKUBA: u64 = 1;
const OSAKA: u64 = 2;
const TOKYO: u64 = 3;
/// The site that served alone once and then was retired.
const SENDAI: u64 = 4;
const HOSTS: usize = 30;
/// Remote-access clients per kind of stale cache.
const CLIENTS_PER_CACHE: usize = 4;
/// Relay lease: a relay unheard of this long is down.
const LEASE_TTL_MS: u64 = 2_000;
/// The drain's pace: every host of the relay in one batch.
const DRAIN_HOSTS_PER_SECOND: u32 = 1_000;
/// How long the failed site stays dark.
const DARK_FOR: Duration = Duration::from_secs(8);
/// How long after failback a client may take to resolve before it counts
/// as stranded.
const STRANDED_AFTER: Duration = Duration::from_secs(30);

/// A remote-access client: a token, a node-info cache file, maybe a seed.
struct RemoteClient {
    client: ClusterClient,
    host: String,
}

impl RemoteClient {
    /// Whether it resolves its host to the route the cluster holds.
    async fn resolves(&self, truth: &ClusterClient) -> bool {
        let Ok(seen) = self
            .client
            .resolve(&self.host, pb::Consistency::Local, 0)
            .await
        else {
            return false;
        };
        let Ok(now) = truth
            .resolve(&self.host, pb::Consistency::Linearizable, 0)
            .await
        else {
            return false;
        };
        seen.route.map(|r| (r.relay_id, r.generation))
            == now.route.map(|r| (r.relay_id, r.generation))
    }
}

/// The document the cluster signs once its membership is `sites`.
async fn document_naming(client: &ClusterClient, sites: &[u64]) -> pb::SignedNodeInfo {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let signed = signed_node_info(client).await;
        let document = NodeInfoDocument::decode(&signed.document).expect("a document");
        let named: Vec<u64> = document.sites.iter().map(|s| s.site_id).collect();
        if named == sites {
            return signed;
        }
        assert!(
            Instant::now() < until,
            "node info names {named:?}, not {sites:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `signed` as a client's cache file, trusting its signing key.
fn cache_of(
    dir: &std::path::Path,
    name: &str,
    cluster_id: &str,
    signed: &pb::SignedNodeInfo,
) -> (std::path::PathBuf, (u64, Vec<u8>)) {
    let document = NodeInfoDocument::decode(&signed.document).expect("a document");
    let anchor = document
        .keys
        .last()
        .map(|k| (k.key_id, k.public_key.clone()))
        .expect("a key");
    let path = dir.join(name);
    Directory::new(
        cluster_id,
        Vec::new(),
        vec![anchor.clone()],
        Some(path.clone()),
    )
    .offer(signed)
    .expect("cached");
    (path, anchor)
}

/// Adds `site` as a learner, waits for it, promotes it.
async fn join(cluster: &TestCluster, admin: &ClusterClient, site: u64) {
    let endpoints = cluster.cluster.endpoints(site).expect("endpoints");
    admin.add_learner(endpoints).await.expect("add learner");
    admin
        .wait_caught_up(site, Duration::from_secs(30), |_, _| {})
        .await
        .expect("caught up");
    admin.promote_voter(site, true).await.expect("promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_2013_outage_replayed_strands_nobody_and_loses_no_route() {
    let test = "the_2013_outage_replayed_strands_nobody_and_loses_no_route";
    let Some(network) = network_or_say_why(&[TSUKUBA, OSAKA, TOKYO, SENDAI], test) else {
        return;
    };
    let names = [
        (TSUKUBA, "tsukuba"),
        (OSAKA, "osaka"),
        (TOKYO, "tokyo"),
        (SENDAI, "sendai"),
    ];
    let mut cluster = TestCluster::start_with(TestSpec {
        sites: 4,
        bootstrap: Bootstrap::Manual,
        site_hosts: network.site_hosts(),
        site_names: names.iter().map(|(id, n)| (*id, (*n).to_owned())).collect(),
        relays: RelayTiming {
            lease_ttl_ms: LEASE_TTL_MS,
            ..RelayTiming::default()
        },
        ..TestSpec::default()
    })
    .await;
    let caches = tempfile::tempdir().expect("temp dir");
    let cluster_id = cluster.cluster_id().to_owned();

    // History: sendai once served alone; tsukuba took over alone; sendai
    // was retired; osaka and tokyo joined. Clients kept caches from both
    // lonely eras.
    let at_sendai = cluster.client_preferring(SENDAI);
    at_sendai
        .initialize(
            &cluster.api(SENDAI),
            vec![cluster.cluster.endpoints(SENDAI).expect("endpoints")],
        )
        .await
        .expect("initialize sendai alone");
    cluster.leader_among(&[SENDAI]).await;
    let alone = document_naming(&cluster.site_client(SENDAI), &[SENDAI]).await;
    let (retired_cache, anchor) = cache_of(caches.path(), "retired.json", &cluster_id, &alone);
    join(&cluster, &at_sendai, TSUKUBA).await;
    at_sendai
        .remove_member(SENDAI, true)
        .await
        .expect("retire sendai");
    cluster.leader_among(&[TSUKUBA]).await;
    let alone = document_naming(&cluster.site_client(TSUKUBA), &[TSUKUBA]).await;
    let (failed_cache, _) = cache_of(caches.path(), "failed.json", &cluster_id, &alone);
    cluster.cluster.kill(SENDAI).expect("sendai is gone");
    let admin = cluster.client_preferring(TSUKUBA);
    join(&cluster, &admin, OSAKA).await;
    join(&cluster, &admin, TOKYO).await;
    assert_eq!(
        cluster.leader_among(&[TSUKUBA, OSAKA, TOKYO]).await,
        TSUKUBA
    );

    // The service: relays, hosts following their routes, clients.
    let services = cluster.directory_client();
    let book = RelayBook::default();
    let mut relays = Vec::new();
    for n in 1..=3 {
        relays.push(
            SimRelay::start(services.clone(), &book, &format!("relay-{n}"), "", 1_000)
                .await
                .expect("relay"),
        );
    }
    let mut hosts = Vec::new();
    for n in 0..HOSTS {
        hosts.push(
            SimHost::start(services.clone(), book.clone(), &format!("host-{n:02}"), "")
                .await
                .expect("host"),
        );
    }
    wait_until(Duration::from_secs(30), "every host was admitted", || {
        let done = hosts.iter().all(|h| h.view.lock().admitted >= 1);
        async move { done }
    })
    .await;
    let token = admin
        .issue_token(pb::TokenRole::Client, "customers", 3_600)
        .await
        .expect("token")
        .token;
    let remote = |cache: &std::path::Path, seeds: Vec<String>, n: usize| {
        let directory = Arc::new(Directory::new(
            &cluster_id,
            seeds,
            vec![anchor.clone()],
            Some(cache.to_owned()),
        ));
        let client = ClusterClient::new(
            Vec::new(),
            ClientSettings::default(),
            cluster.token_credentials(&token),
        )
        .expect("client")
        .with_directory(directory);
        RemoteClient {
            client,
            host: format!("host-{n:02}"),
        }
    };
    let mut clients: Vec<(&str, RemoteClient)> = Vec::new();
    for n in 0..CLIENTS_PER_CACHE {
        let failed_copy = caches.path().join(format!("failed-{n}.json"));
        std::fs::copy(&failed_cache, &failed_copy).expect("copy");
        clients.push((
            "cache names only tsukuba",
            remote(&failed_copy, Vec::new(), n),
        ));
        let retired_copy = caches.path().join(format!("retired-{n}.json"));
        std::fs::copy(&retired_cache, &retired_copy).expect("copy");
        clients.push((
            "cache names only retired sendai, one seed",
            remote(
                &retired_copy,
                vec![cluster.api(OSAKA)],
                n + CLIENTS_PER_CACHE,
            ),
        ));
    }

    // The power cut: tsukuba's links and process at once.
    network.link(TSUKUBA, false);
    cluster.cluster.kill(TSUKUBA).expect("power off");
    let cut_at = Instant::now();
    let survivors = [OSAKA, TOKYO];
    let unreachable = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (unreachable, apis) = (
            unreachable.clone(),
            survivors.map(|s| {
                (
                    cluster.site_client_with_deadline(s, Duration::from_secs(2)),
                    cluster.api(s),
                )
            }),
        );
        tokio::spawn(async move {
            loop {
                for (client, api) in &apis {
                    if client.status_of(api).await.is_err() {
                        unreachable.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let writes_resumed = loop {
        if admin.attach(&new_request_id(), "probe", "").await.is_ok() {
            break cut_at.elapsed();
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(30),
            "writes never resumed"
        );
    };

    // While it is dark: a new notice, and a relay drained.
    let notice = "tsukuba lost power; service continues from osaka and tokyo";
    admin
        .set_notice(&new_request_id(), notice)
        .await
        .expect("notice");
    // The relay with the most hosts is drained.
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for host in &hosts {
        *load.entry(host.view.lock().relay_id.clone()).or_default() += 1;
    }
    let (busiest, _) = load
        .iter()
        .max_by_key(|(_, n)| **n)
        .expect("hosts have relays");
    let busiest = busiest.clone();
    let drained: Vec<&SimHost> = hosts
        .iter()
        .filter(|h| h.view.lock().relay_id == busiest)
        .collect();
    assert!(!drained.is_empty(), "hosts by relay: {load:?}");
    let refused_before: BTreeMap<&str, u64> = drained
        .iter()
        .map(|h| (h.host_id.as_str(), h.view.lock().refused))
        .collect();
    let moved_at = Instant::now();
    admin
        .drain_relay(&busiest, DRAIN_HOSTS_PER_SECOND, 0, true)
        .await
        .expect("drain");
    let told_bound = Duration::from_millis(LEASE_TTL_MS) + Duration::from_secs(2);
    wait_until(
        told_bound * 3,
        "every moved host learned its new relay",
        || {
            let done = drained.iter().all(|h| h.view.lock().relay_id != busiest);
            async move { done }
        },
    )
    .await;
    let told = drained
        .iter()
        .map(|h| {
            h.view
                .lock()
                .changed_at
                .expect("moved")
                .duration_since(moved_at)
        })
        .max()
        .unwrap_or_default();
    let resolved_in_dark = {
        let mut at = Vec::new();
        for (kind, client) in &clients {
            if kind.contains("seed") {
                let started = Instant::now();
                wait_until(Duration::from_secs(20), "a seeded client resolves", || {
                    client.resolves(&admin)
                })
                .await;
                at.push(started.elapsed());
            }
        }
        at.into_iter().max().unwrap_or_default()
    };
    for survivor in survivors {
        let status = cluster.status(survivor).await;
        assert_eq!(
            status.notice, notice,
            "site {survivor} hands out the new notice"
        );
    }
    let dark_left = DARK_FOR.saturating_sub(cut_at.elapsed());
    tokio::time::sleep(dark_left).await;

    // Failback: power and links back.
    network.link(TSUKUBA, true);
    cluster.cluster.restart(TSUKUBA).expect("power on");
    let back_at = Instant::now();
    let mut stranded = 0;
    let mut slowest_after_failback = Duration::ZERO;
    for (kind, client) in &clients {
        let started = Instant::now();
        let mut ok = false;
        while started.elapsed() < STRANDED_AFTER {
            if client.resolves(&admin).await {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if ok {
            slowest_after_failback = slowest_after_failback.max(back_at.elapsed());
        } else {
            println!("stranded: a client whose {kind}");
            stranded += 1;
        }
    }
    sampler.abort();
    let refused_after: u64 = drained
        .iter()
        .map(|h| h.view.lock().refused - refused_before[h.host_id.as_str()])
        .sum();
    let mut lost = 0;
    for host in &hosts {
        let read = admin
            .resolve(&host.host_id, pb::Consistency::Linearizable, 0)
            .await;
        if !read.is_ok_and(|r| r.route.is_some()) {
            lost += 1;
        }
    }
    println!(
        "the 2013 outage, replayed:\n\
         | measure | 2013 | here |\n\
         |---|---:|---:|\n\
         | down (writes refused) | about 7 h | {} ms |\n\
         | {} moved hosts told of their new relay (bound {} ms) | by hand | {} ms |\n\
         | valid connect tickets refused after the move | - | {refused_after} |\n\
         | clients with a retired-site cache resolving while dark | - | {} ms |\n\
         | clients resolving after failback (slowest) | 2.5 h more | {} ms |\n\
         | clients stranded after failback | 440 | {stranded} of {} |\n\
         | routes lost | - | {lost} of {HOSTS} |\n\
         | failed status calls to the surviving sites while dark | status site down | {} |",
        writes_resumed.as_millis(),
        drained.len(),
        told_bound.as_millis(),
        told.as_millis(),
        resolved_in_dark.as_millis(),
        slowest_after_failback.as_millis(),
        clients.len(),
        unreachable.load(Ordering::Relaxed),
    );
    // An election, and the client library noticing its dead connection
    // (HTTP/2 pings) before it tries another site.
    let settings = ClientSettings::default();
    let resume_bound = cluster.timing().failover_bound()
        + settings.keepalive_interval
        + settings.keepalive_timeout
        + Duration::from_secs(1);
    assert!(
        writes_resumed < resume_bound,
        "writes resumed after {writes_resumed:?}, over {resume_bound:?}"
    );
    assert!(
        told < told_bound,
        "hosts told after {told:?}, over {told_bound:?}"
    );
    let relay_watches: Vec<String> = relays
        .iter()
        .map(|r| {
            let trail = r.counters.watch_trail.lock();
            let since_cut = |at: Instant| at.saturating_duration_since(cut_at).as_millis();
            let sites: Vec<String> = trail
                .sites
                .iter()
                .map(|(site, at)| format!("{site} at {} ms", since_cut(*at)))
                .collect();
            format!(
                "{}: {} watch restarts, {} heartbeats failed, watch on {sites:?} \
                 (ms after the cut), last change heard {:?} ms after the cut, \
                 drain {} ms after the cut",
                r.relay_id,
                r.counters.watch_resyncs.load(Ordering::Relaxed),
                r.counters.heartbeats_failed.load(Ordering::Relaxed),
                trail.last_change_at.map(since_cut),
                since_cut(moved_at),
            )
        })
        .collect();
    assert_eq!(
        refused_after, 0,
        "valid tickets refused after the move (relays: {relay_watches:?})"
    );
    assert_eq!(stranded, 0, "clients stranded after failback");
    assert_eq!(lost, 0, "routes lost");
    assert_eq!(
        unreachable.load(Ordering::Relaxed),
        0,
        "a surviving site failed a status call"
    );
    drop(relays);
}
