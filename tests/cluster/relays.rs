//! Relays, hosts and clients against a real cluster: leases, watches,
//! signed node info, tickets, and a client library that cannot be stranded.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::Directory;
use switchboard_api::SigningKey;
use switchboard_api::TrustError;
use switchboard_api::generate_signing_key;
use switchboard_api::new_request_id;
use switchboard_node::local::RelayBook;
use switchboard_node::local::SimHost;
use switchboard_node::local::SimRelay;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::node_info::NodeInfoDocument;
use switchboard_tests::RelayTiming;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::load::AttachLoad;
use switchboard_tests::load::register_relays;
use switchboard_tests::signed_node_info;
use switchboard_tests::wait_until;
use tonic::Code;

fn lease_spec(lease_ttl_ms: u64) -> TestSpec {
    TestSpec {
        relays: RelayTiming {
            lease_ttl_ms,
            ..RelayTiming::default()
        },
        ..TestSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_under_1000_hosts_has_them_replaced_and_told_within_the_bound() {
    let lease_ttl = Duration::from_millis(2_000);
    let cluster = TestCluster::start_with(lease_spec(lease_ttl.as_millis() as u64)).await;
    let client = cluster.directory_client();
    signed_node_info(&client).await;
    let book = RelayBook::default();
    // Every host lands on relay-1, the only relay when they attach.
    let mut relays = vec![
        SimRelay::start(client.clone(), &book, "relay-1", "", 5_000)
            .await
            .expect("relay"),
    ];
    let mut hosts = Vec::new();
    for n in 0..1_000 {
        hosts.push(
            SimHost::start(client.clone(), book.clone(), &format!("host-{n:04}"), "")
                .await
                .expect("host"),
        );
    }
    // Every host's watch is open and has seen its first route.
    wait_until(
        Duration::from_secs(30),
        "every host's relay admitted it",
        || {
            let done = hosts.iter().all(|h| h.view.lock().admitted >= 1);
            async move { done }
        },
    )
    .await;
    for n in 2..=3 {
        relays.push(
            SimRelay::start(client.clone(), &book, &format!("relay-{n}"), "", 5_000)
                .await
                .expect("relay"),
        );
    }

    let victim = &relays[0];
    let victim_id = victim.relay_id.clone();
    let on_victim: Vec<&SimHost> = hosts
        .iter()
        .filter(|h| h.view.lock().relay_id == victim_id)
        .collect();
    assert_eq!(on_victim.len(), 1_000, "every host is on {victim_id}");
    let killed_at = Instant::now();
    victim.stop();

    let bound = lease_ttl + Duration::from_secs(1);
    wait_until(
        bound * 3,
        "every host of the dead relay learned its new relay",
        || {
            let done = on_victim
                .iter()
                .all(|h| h.view.lock().relay_id != victim_id);
            async move { done }
        },
    )
    .await;
    let slowest = on_victim
        .iter()
        .map(|h| {
            h.view
                .lock()
                .changed_at
                .expect("changed")
                .duration_since(killed_at)
        })
        .max()
        .expect("some host");
    println!(
        "relay {victim_id} died under {} hosts: all re-placed and told through their watches in {} ms (bound {} ms)",
        on_victim.len(),
        slowest.as_millis(),
        bound.as_millis()
    );
    assert!(
        slowest < bound,
        "hosts learned their new relay after {} ms, over {} ms",
        slowest.as_millis(),
        bound.as_millis()
    );
    for host in &on_victim {
        let view = host.view.lock();
        assert!(
            view.refused == 0,
            "{} was refused by its new relay",
            host.host_id
        );
    }
    let listed = client.list_relays().await.expect("relays");
    let dead = listed
        .relays
        .iter()
        .find(|r| r.relay_id == victim_id)
        .expect("the dead relay is listed");
    assert_eq!(dead.state, pb::RelayState::Down as i32);
    assert_eq!(dead.route_count, 0);
}

/// A relay that dies under 3,000 hosts, three `RELAY_DOWN_BATCH_HOSTS`:
/// the relay-down entry moves the first batch and the leader's scheduler
/// proposes the rest as re-placement batches, so no entry moves more than a
/// batch, and still every host has a new relay within the lease and a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_dying_under_3000_hosts_has_them_re_placed_in_bounded_batches_within_the_bound() {
    const HOSTS: u64 = 3_000;
    let lease_ttl = Duration::from_millis(2_000);
    let cluster = TestCluster::start_with(lease_spec(lease_ttl.as_millis() as u64)).await;
    let client = Arc::new(cluster.client());
    let book = RelayBook::default();
    let victim = SimRelay::start(client.clone(), &book, "relay-1", "", 10_000)
        .await
        .expect("relay");
    let (acked, failures) = AttachLoad::start(client.clone(), "host", HOSTS, 32)
        .finish()
        .await;
    assert!(
        failures.is_empty(),
        "attaches failed: {:?}",
        &failures[..failures.len().min(3)]
    );
    assert_eq!(acked.len() as u64, HOSTS);
    let mut others = Vec::new();
    for n in 2..=3 {
        let relay_id = format!("relay-{n}");
        others.push(
            SimRelay::start(client.clone(), &book, &relay_id, "", 10_000)
                .await
                .expect("relay"),
        );
    }
    let leader = cluster.leader().await;
    let commit_before = cluster.status(leader).await.commit_index;

    let killed_at = Instant::now();
    victim.stop();
    let bound = lease_ttl + Duration::from_secs(1);
    wait_until(bound * 3, "relay-1 holds no route", || {
        let client = client.clone();
        async move {
            let relays = client.list_relays().await.expect("relays").relays;
            relays
                .iter()
                .any(|r| r.relay_id == "relay-1" && r.route_count == 0)
        }
    })
    .await;
    let took = killed_at.elapsed();
    let relays = client.list_relays().await.expect("relays").relays;
    let carried: u64 = relays
        .iter()
        .filter(|r| r.relay_id != "relay-1")
        .map(|r| u64::from(r.route_count))
        .sum();
    assert_eq!(carried, HOSTS, "every host is on a live relay");
    let entries = cluster.status(leader).await.commit_index - commit_before;
    println!(
        "relay-1 died under {HOSTS} hosts: all re-placed in {} ms (bound {} ms) over {entries} log entries",
        took.as_millis(),
        bound.as_millis()
    );
    assert!(took < bound, "re-placed after {} ms", took.as_millis());
    assert!(
        entries >= 3,
        "3,000 hosts move in at least three bounded entries, not {entries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_from_1000_relays_do_not_grow_the_raft_log() {
    let lease_ttl_ms = 4_000;
    let cluster = TestCluster::start_with(lease_spec(lease_ttl_ms)).await;
    let admin = cluster.client();
    register_relays(&admin, 1_000, 10).await;
    let leader = cluster.leader().await;
    // Relays heartbeat to every site (most of them through followers,
    // which forward them in batches).
    let clients: Vec<Arc<ClusterClient>> = (1..=3)
        .map(|site| Arc::new(cluster.site_client(site)))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 1..=1_000u64 {
        let (client, stop, failures, sent) = (
            clients[(n % 3) as usize].clone(),
            stop.clone(),
            failures.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.heartbeat(&format!("relay-{n}"), 1, 0).await {
                    Ok(response) => {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(response.heartbeat_interval_ms))
                            .await;
                    }
                    Err(_) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    // Registering 1,000 relays one by one takes longer than a lease, so the
    // first ones registered lose theirs before heartbeats start, and their
    // RelayUp entries follow the first heartbeats. Measure once every relay
    // is up again and the log has stood still for one lease.
    let settle_started = Instant::now();
    let down_at_start = count_down(&admin).await;
    let still =
        std::sync::Mutex::new((cluster.status(leader).await.last_log_index, Instant::now()));
    wait_until(
        Duration::from_millis(lease_ttl_ms * 10),
        "every relay is up and the log stands still for one lease",
        || {
            let (cluster, admin, still) = (&cluster, &admin, &still);
            async move {
                let index = cluster.status(leader).await.last_log_index;
                let since = {
                    let mut still = still.lock().expect("test lock");
                    if index != still.0 {
                        *still = (index, Instant::now());
                    }
                    still.1
                };
                since.elapsed() >= Duration::from_millis(lease_ttl_ms)
                    && count_down(admin).await == 0
            }
        },
    )
    .await;
    println!(
        "settled in {} ms; {down_at_start} relays were down when heartbeats began",
        settle_started.elapsed().as_millis()
    );
    let before = cluster.status(leader).await.last_log_index;
    let window = Duration::from_secs(15);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = cluster.status(leader).await.last_log_index;
    let heartbeats = sent.load(std::sync::atomic::Ordering::Relaxed);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.expect("heartbeat task");
    }
    let growth_per_minute = (after - before) as f64 * 60.0 / started.elapsed().as_secs_f64();
    println!(
        "1,000 idle relays: {heartbeats} heartbeats acknowledged, Raft log grew {} entries in {} s ({growth_per_minute:.1} per minute), {} failed heartbeats",
        after - before,
        window.as_secs(),
        failures.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(after, before, "heartbeats wrote to the Raft log");
    assert_eq!(
        count_down(&admin).await,
        0,
        "every heartbeating relay kept its lease"
    );
}

/// How many relays the cluster holds down.
async fn count_down(admin: &ClusterClient) -> usize {
    let relays = admin.list_relays().await.expect("relays").relays;
    relays
        .iter()
        .filter(|r| r.state == pb::RelayState::Down as i32)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_info_rollbacks_forgeries_and_unknown_keys_are_refused_and_rotations_are_followed() {
    let cluster = TestCluster::start().await;
    let admin = cluster.client();
    let first = signed_node_info(&admin).await;
    let document = NodeInfoDocument::decode(&first.document).expect("a document");
    let key = document
        .keys
        .iter()
        .find(|k| k.key_id == document.signing_key_id)
        .expect("its key");
    let directory = Directory::new(
        cluster.cluster_id(),
        vec![cluster.api(1)],
        vec![(key.key_id, key.public_key.clone())],
        None,
    );
    assert_eq!(directory.offer(&first), Ok(true));

    admin
        .set_notice(&new_request_id(), "maintenance on saturday")
        .await
        .expect("notice");
    let client = cluster.client().with_directory(Arc::new(directory));
    let newer = client
        .refresh_node_info()
        .await
        .expect("newer")
        .node_info
        .expect("a newer document");
    let directory = client.directory().expect("directory");
    assert_eq!(
        directory.document().expect("held").notice,
        "maintenance on saturday"
    );

    // Rollback: the older document, correctly signed, is refused.
    assert!(matches!(
        directory.offer(&first),
        Err(TrustError::NotNewer { .. })
    ));
    // Forgery: a changed byte.
    let mut forged = newer.clone();
    let last = forged.document.len() - 1;
    forged.document[last] ^= 1;
    forged.epoch += 1;
    assert!(directory.offer(&forged).is_err());
    // A higher epoch signed by a key nobody vouches for.
    let (pkcs8, _) = generate_signing_key().expect("key");
    let rogue = SigningKey::from_pkcs8(99, &pkcs8).expect("key");
    let mut rogue_document = NodeInfoDocument::decode(&newer.document).expect("decode");
    rogue_document.epoch += 10;
    rogue_document.signing_key_id = 99;
    rogue_document
        .keys
        .push(switchboard_raft_store::node_info::NodeInfoKey {
            key_id: 99,
            public_key: rogue.public_key(),
            endorsement: None,
        });
    let bytes = rogue_document.encode();
    let unknown = pb::SignedNodeInfo {
        signature: rogue.sign(&bytes),
        document: bytes,
        key_id: 99,
        era: rogue_document.era,
        epoch: rogue_document.epoch,
    };
    assert_eq!(directory.offer(&unknown), Err(TrustError::UnknownKey(99)));

    // A rotation is followed: the next key is endorsed by the trusted one,
    // and tickets it signs verify for a relay that learned it from node info.
    admin
        .rotate_signing_key(&new_request_id())
        .await
        .expect("rotate");
    let rotated = client
        .refresh_node_info()
        .await
        .expect("rotated")
        .node_info
        .expect("a document signed by the new key");
    assert_eq!(rotated.key_id, 2);
    assert!(
        directory.trust().keys.contains_key(&2),
        "the client trusts the endorsed key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_admit_only_current_tickets_so_hosts_and_clients_agree() {
    let cluster = TestCluster::start_with(lease_spec(2_000)).await;
    let client = cluster.directory_client();
    signed_node_info(&client).await;
    let book = RelayBook::default();
    let relay_a = SimRelay::start(client.clone(), &book, "relay-a", "", 100)
        .await
        .expect("relay");
    let host = SimHost::start(client.clone(), book.clone(), "h1", "")
        .await
        .expect("host");
    let relay_b = SimRelay::start(client.clone(), &book, "relay-b", "", 100)
        .await
        .expect("relay");
    wait_until(Duration::from_secs(10), "relay-a admits h1", || {
        let ok = relay_a
            .admission
            .admit_host("h1", host.view.lock().generation)
            .is_ok()
            && relay_a.admission.lease_holds(Instant::now());
        async move { ok }
    })
    .await;
    let resolved = client
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .expect("resolve");
    let ticket = resolved.ticket.expect("a ticket");
    let now_ms = switchboard_node::unix_ms();
    relay_a
        .admission
        .admit_client(&ticket.body, &ticket.signature, Instant::now(), now_ms)
        .expect("a current ticket is admitted");
    assert!(
        relay_b
            .admission
            .admit_client(&ticket.body, &ticket.signature, Instant::now(), now_ms)
            .is_err(),
        "a ticket for another relay"
    );
    // A site signs a route's ticket once and hands it out again while it
    // has at least half its life left (the ticket names no client).
    let at_site_1 = cluster.site_client(1);
    let first = at_site_1
        .resolve("h1", pb::Consistency::Local, 0)
        .await
        .expect("resolve")
        .ticket;
    let again = at_site_1
        .resolve("h1", pb::Consistency::Local, 0)
        .await
        .expect("resolve")
        .ticket;
    assert!(first.is_some());
    assert_eq!(first, again, "the same route's ticket is reused");

    // The relay dies; h1 moves to relay-b at a new generation. The old
    // ticket is refused everywhere; a new one works at relay-b only.
    relay_a.stop();
    wait_until(Duration::from_secs(10), "h1 moved to relay-b", || {
        let moved = host.view.lock().relay_id == "relay-b";
        async move { moved }
    })
    .await;
    assert!(
        relay_b
            .admission
            .admit_client(&ticket.body, &ticket.signature, Instant::now(), now_ms)
            .is_err()
    );
    let fresh = client
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .expect("resolve")
        .ticket
        .expect("ticket");
    let moved_at_site_1 = at_site_1
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .expect("resolve")
        .ticket;
    assert_ne!(moved_at_site_1, first, "a new generation gets a new ticket");
    wait_until(
        Duration::from_secs(10),
        "relay-b knows h1's generation",
        || {
            let ok = relay_b
                .admission
                .admit_client(
                    &fresh.body,
                    &fresh.signature,
                    Instant::now(),
                    switchboard_node::unix_ms(),
                )
                .is_ok();
            async move { ok }
        },
    )
    .await;
    let stale_generation = host.view.lock().generation - 1;
    assert!(
        relay_b
            .admission
            .admit_host("h1", stale_generation)
            .is_err(),
        "a stale generation is refused"
    );
    let expired_at = switchboard_node::unix_ms() + 60 * 60 * 1000;
    assert!(
        relay_b
            .admission
            .admit_client(&fresh.body, &fresh.signature, Instant::now(), expired_at)
            .is_err(),
        "an expired ticket is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_whose_cache_names_only_retired_sites_heals_through_a_seed_in_one_round_trip() {
    let mut cluster = TestCluster::start().await;
    let admin = cluster.client();
    register_relays(&admin, 1, 100).await;
    admin
        .attach(&new_request_id(), "h1", "")
        .await
        .expect("attach");
    let old = signed_node_info(&admin).await;
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let cache = cache_dir.path().join("node-info.json");
    let document = NodeInfoDocument::decode(&old.document).expect("document");
    let anchor = document
        .keys
        .last()
        .map(|k| (k.key_id, k.public_key.clone()))
        .expect("key");
    Directory::new(
        cluster.cluster_id(),
        Vec::new(),
        vec![anchor.clone()],
        Some(cache.clone()),
    )
    .offer(&old)
    .expect("cached");

    // The cluster moves to three new sites; the old ones are removed and stopped.
    for _ in 0..3 {
        let id = cluster.cluster.spawn_additional_site().expect("new site");
        admin
            .add_learner(cluster.cluster.endpoints(id).expect("endpoints"))
            .await
            .expect("add learner");
        admin
            .wait_caught_up(id, Duration::from_secs(30), |_, _| {})
            .await
            .expect("caught up");
        admin.promote_voter(id, false).await.expect("promote");
    }
    let admin = ClusterClient::new(
        vec![cluster.api(4), cluster.api(5), cluster.api(6)],
        ClientSettings::default(),
        cluster
            .cluster
            .credentials(switchboard_node::local::LAUNCHER_ADMIN)
            .expect("credentials"),
    )
    .expect("client");
    for old_site in 1..=3 {
        admin
            .remove_member(old_site, false)
            .await
            .expect("remove an old site");
    }
    for old_site in 1..=3 {
        cluster.cluster.kill(old_site).expect("stop an old site");
    }
    let leader = cluster.leader().await;
    let status = cluster.status(leader).await;
    let members: Vec<u64> = status.members.iter().map(|m| m.site_id).collect();
    assert_eq!(members, vec![4, 5, 6]);
    for site in 4..=6 {
        cluster
            .wait_applied(site, status.commit_index, Duration::from_secs(10))
            .await;
    }

    // A client with the stale cache and one seed (a new site).
    let directory = Arc::new(Directory::new(
        cluster.cluster_id(),
        vec![cluster.api(5)],
        vec![anchor],
        Some(cache.clone()),
    ));
    assert!(
        directory.endpoints().starts_with(&[
            cluster_api_of(&document, 1),
            cluster_api_of(&document, 2),
            cluster_api_of(&document, 3)
        ]),
        "the cache names only the retired sites (then the seed)"
    );
    let client = ClusterClient::new(
        Vec::new(),
        ClientSettings::default(),
        cluster.token_credentials(&client_token(&admin).await),
    )
    .expect("client")
    .with_directory(directory.clone());
    let started = Instant::now();
    let resolved = client
        .resolve("h1", pb::Consistency::Local, 0)
        .await
        .expect("resolves through the seed");
    println!(
        "a stranded client healed in {} ms",
        started.elapsed().as_millis()
    );
    assert!(
        resolved.node_info.is_some(),
        "the seed handed back the current document with the first answer"
    );
    let healed: Vec<String> = directory
        .document()
        .expect("document")
        .sites
        .iter()
        .map(|s| s.api_addr.clone())
        .collect();
    assert_eq!(healed, vec![cluster.api(4), cluster.api(5), cluster.api(6)]);
    let on_disk = std::fs::read_to_string(&cache).expect("cache");
    assert!(
        on_disk.contains(&hex_of(&resolved.node_info.expect("document").document)),
        "the cache was rewritten"
    );
    assert_eq!(
        directory.endpoints()[..3],
        [cluster.api(4), cluster.api(5), cluster.api(6)]
    );
}

fn cluster_api_of(document: &NodeInfoDocument, site: u64) -> String {
    document
        .sites
        .iter()
        .find(|s| s.site_id == site)
        .expect("site")
        .api_addr
        .clone()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn client_token(admin: &ClusterClient) -> String {
    admin
        .issue_token(pb::TokenRole::Client, "portal-9", 3_600)
        .await
        .expect("token")
        .token
}

/// A cluster with one relay and h1 attached: the cluster, an admin client,
/// the leader and a follower.
async fn cluster_with_h1() -> (TestCluster, ClusterClient, u64, u64) {
    let cluster = TestCluster::start().await;
    let admin = cluster.client();
    register_relays(&admin, 1, 100).await;
    admin
        .attach(&new_request_id(), "h1", "")
        .await
        .expect("attach");
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|s| *s != leader).expect("a follower");
    (cluster, admin, leader, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_from_history_the_site_no_longer_has_is_out_of_range() {
    let (mut cluster, admin, leader, follower) = cluster_with_h1().await;
    cluster.cluster.kill(follower).expect("kill");
    cluster.cluster.restart(follower).expect("restart");
    let commit = cluster.status(leader).await.commit_index;
    cluster
        .wait_applied(follower, commit, Duration::from_secs(10))
        .await;
    let site = cluster.site_client(follower);
    let error = site
        .watch_route("h1", 1)
        .await
        .expect_err("history from index 1 is gone after a restart");
    assert_eq!(error.code(), Some(Code::OutOfRange), "{error}");
    let mut stream = site.watch_route("h1", 0).await.expect("a full read works");
    let first = stream.message().await.expect("stream").expect("an event");
    assert_eq!(first.route.expect("route").host_id, "h1");
    // And the watch follows a change.
    admin.detach(&new_request_id(), "h1").await.expect("detach");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("event");
    assert!(next.route.is_none(), "the detach reached the watch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_gives_every_relay_a_fresh_lease_and_admission_goes_on_through_the_election() {
    let lease_ttl = Duration::from_millis(2_000);
    let mut cluster = TestCluster::start_with(lease_spec(lease_ttl.as_millis() as u64)).await;
    let client = cluster.directory_client();
    signed_node_info(&client).await;
    let book = RelayBook::default();
    let mut relays = Vec::new();
    for n in 1..=10 {
        relays.push(
            SimRelay::start(client.clone(), &book, &format!("relay-{n}"), "", 100)
                .await
                .expect("relay"),
        );
    }
    let host = SimHost::start(client.clone(), book.clone(), "h1", "")
        .await
        .expect("host");
    let ticket = client
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .expect("resolve")
        .ticket
        .expect("ticket");
    let relay_id = host.view.lock().relay_id.clone();
    let relay = relays
        .iter()
        .find(|r| r.relay_id == relay_id)
        .expect("h1's relay");
    wait_until(
        Duration::from_secs(10),
        "h1's relay admits its ticket",
        || {
            let ok = relay
                .admission
                .admit_client(
                    &ticket.body,
                    &ticket.signature,
                    Instant::now(),
                    switchboard_node::unix_ms(),
                )
                .is_ok();
            async move { ok }
        },
    )
    .await;

    let leader = cluster.leader().await;
    cluster.cluster.kill(leader).expect("kill -9 the leader");
    // Through the election, the relay still admits the ticket: offline checks.
    relay
        .admission
        .admit_client(
            &ticket.body,
            &ticket.signature,
            Instant::now(),
            switchboard_node::unix_ms(),
        )
        .expect("admission works while there is no leader");
    cluster.leader().await;
    // Wait two leases: a new leader that judged relays on stale lease times
    // would mark some down.
    tokio::time::sleep(lease_ttl * 2).await;
    let listed = client.list_relays().await.expect("relays");
    let down: Vec<&str> = listed
        .relays
        .iter()
        .filter(|r| r.state != pb::RelayState::Active as i32)
        .map(|r| r.relay_id.as_str())
        .collect();
    assert!(
        down.is_empty(),
        "relays lost their lease across the failover: {down:?}"
    );
    assert!(
        relays
            .iter()
            .all(|r| r.admission.lease_holds(Instant::now())),
        "every relay's lease still holds"
    );
}

/// The next thing a follower yields, within 20 s.
async fn next(
    follower: &mut switchboard_api::Follower<pb::RouteEvent>,
) -> switchboard_api::Followed<pb::RouteEvent> {
    tokio::time::timeout(Duration::from_secs(20), follower.next())
        .await
        .expect("the watch goes on")
        .expect("not refused")
}

/// A followed watch whose only site restarts (and so no longer holds the
/// history after the watch's index) starts again from the full state: the
/// site answers OUT_OF_RANGE as the watch reopens, and the follower used to
/// ask it again for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followed_watch_whose_site_restarts_without_its_history_starts_again() {
    use switchboard_api::Followed;
    let (mut cluster, admin, _, only) = cluster_with_h1().await;
    let follower_client = Arc::new(cluster.site_client(only));
    let mut follower = follower_client.follow_route("h1");
    assert!(matches!(next(&mut follower).await, Followed::Restarted));
    assert!(matches!(next(&mut follower).await, Followed::Event(e) if e.route.is_some()));
    // Other hosts move the log on, and the site applies it, before a
    // progress message (one a second) can move the watch's index with it.
    let mut moved_to = 0;
    for host in ["h2", "h3"] {
        moved_to = admin
            .attach(&new_request_id(), host, "")
            .await
            .expect("attach")
            .applied_index;
    }
    cluster
        .wait_applied(only, moved_to, Duration::from_secs(1))
        .await;
    cluster.cluster.kill(only).expect("kill");
    admin.detach(&new_request_id(), "h1").await.expect("detach");
    cluster.cluster.restart(only).expect("restart");
    // Restarted from the full state, which the site has once it catches up.
    assert!(matches!(next(&mut follower).await, Followed::Restarted));
    loop {
        match next(&mut follower).await {
            Followed::Event(event) if event.route.is_none() => break,
            Followed::Event(_) | Followed::Restarted => continue,
        }
    }
}

/// A host that only watches its route, and never resolves, still learns of
/// a node-info change (here a notice) that touches no route: a site puts
/// the newer document on a progress message as it applies the change.
/// (Before, a watch carried node info only with a route change, and a host
/// whose route never changed kept its old notice and sites for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_that_sees_no_change_still_brings_newer_node_info() {
    use switchboard_api::Followed;
    let (cluster, admin, _, follower_site) = cluster_with_h1().await;
    signed_node_info(&admin).await;
    let directory = Arc::new(Directory::new(
        cluster.cluster_id(),
        vec![cluster.api(follower_site)],
        Vec::new(),
        None,
    ));
    let watcher = Arc::new(
        cluster
            .site_client(follower_site)
            .with_directory(directory.clone()),
    );
    watcher.refresh_node_info().await.expect("node info");
    let mut follower = watcher.follow_route("h1");
    assert!(matches!(next(&mut follower).await, Followed::Restarted));
    assert!(matches!(next(&mut follower).await, Followed::Event(e) if e.route.is_some()));

    let text = "osaka maintenance tonight 02:00-03:00 JST";
    let set_at = Instant::now();
    admin
        .set_notice(&new_request_id(), text)
        .await
        .expect("set notice");
    // The change's commit and apply, and slack for a loaded machine.
    let bound = Duration::from_secs(4);
    let notice_of = |directory: &Directory| directory.document().map(|d| d.notice);
    let next_event = follower.next();
    tokio::pin!(next_event);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tokio::time::timeout(bound, async {
        loop {
            tokio::select! {
                event = &mut next_event => panic!("h1's route did not change: {event:?}"),
                _ = tick.tick() => if notice_of(&directory).as_deref() == Some(text) { break },
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the watch brought no newer node info within {} ms (the directory has {:?})",
            bound.as_millis(),
            notice_of(&directory)
        )
    });
    println!(
        "a watching host learned the notice in {} ms",
        set_at.elapsed().as_millis()
    );
}

/// A watch from an index no site will reach soon (u64::MAX) ends with
/// OUT_OF_RANGE once the site's staleness bound has passed, instead of
/// sending heartbeats for ever; a watch from the site's own index works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_from_an_index_far_ahead_is_refused_within_the_staleness_bound() {
    let bound_ms = 2_000;
    let cluster = TestCluster::start_with(TestSpec {
        timing: switchboard_tests::Timing {
            local_read_stale_ms_max: bound_ms,
            ..switchboard_tests::Timing::lan()
        },
        ..TestSpec::default()
    })
    .await;
    let admin = cluster.client();
    register_relays(&admin, 1, 100).await;
    let attached = admin
        .attach(&new_request_id(), "h1", "")
        .await
        .expect("attach");
    let site = cluster.site_client(cluster.leader().await);
    let opened = Instant::now();
    let mut stream = site
        .watch_route("h1", u64::MAX)
        .await
        .expect("the watch opens");
    let ended = loop {
        let message =
            tokio::time::timeout(Duration::from_millis(bound_ms + 5_000), stream.message())
                .await
                .expect("the watch ends within the bound");
        match message {
            Ok(Some(event)) => assert!(event.progress, "no change was made: {event:?}"),
            Ok(None) => panic!("the watch ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::OutOfRange, "{ended}");
    assert!(ended.message().contains("did not reach"), "{ended}");
    assert!(opened.elapsed() >= Duration::from_millis(bound_ms));
    let mut fine = site
        .watch_route("h1", attached.applied_index)
        .await
        .expect("a watch from an index the site has");
    admin.detach(&new_request_id(), "h1").await.expect("detach");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), fine.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("event");
        if !event.progress {
            assert!(event.route.is_none(), "the detach");
            break;
        }
    }
}
