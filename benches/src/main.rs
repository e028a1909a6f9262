//! Switchboard benchmarks against real multi-process clusters. Each prints a
//! table. Build the binaries with the same profile first:
//!
//!     cargo build --release --bins && cargo run --release -p switchboard-benches -- catch-up
//!
//! (Without `--release` the debug binaries are measured; the table says which.)

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

mod compare;
mod etcd;
mod failover;
mod latency;
mod load;
mod machine;
mod snapshot_probe;
mod storm;
mod systems;

use clap::Parser;
use clap::Subcommand;
use switchboard_tests::Snapshots;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::load::AttachLoad;
use switchboard_tests::load::register_relays;

use crate::latency::Latencies;
use crate::snapshot_probe::SnapshotProbe;

#[derive(Parser)]
#[command(about = "Switchboard benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// The same workload against Switchboard and etcd, one table with both.
    Compare(compare::CompareArgs),
    /// The write window after kill -9 of the leader, Switchboard and etcd.
    Failover(failover::FailoverArgs),
    /// A relay carrying N hosts dies: time until every host is re-placed and told.
    Storm(storm::StormArgs),
    /// Resolve latency, one client, at a follower and at the leader.
    Resolve {
        #[arg(long, default_value_t = 2_000)]
        samples: usize,
        #[arg(long, default_value_t = 10_000)]
        hosts: u64,
    },
    /// Drain a relay holding N hosts at each rate; the rate reached and the time taken.
    Drain {
        #[arg(long, default_value_t = 10_000)]
        hosts: u64,
        /// Rates to ask for, hosts per second.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,20000,100000")]
        rates: Vec<u32>,
    },
    /// Save a backup of N routes with sbctl, then restore it into a rebuilt cluster.
    Restore {
        #[arg(long, default_value_t = 100_000)]
        routes: u64,
        #[arg(long, default_value_t = 64)]
        workers: usize,
    },
    /// Attach N hosts to a 3-site cluster, then time a new site catching up on them.
    CatchUp {
        #[arg(long, default_value_t = 100_000)]
        routes: u64,
        /// Concurrent attach workers.
        #[arg(long, default_value_t = 64)]
        workers: usize,
        /// Relays registered first (the routes are spread over them).
        #[arg(long, default_value_t = 100)]
        relays: u32,
    },
}

pub(crate) fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Compare(args) => compare::compare(args).await,
        Bench::Failover(args) => failover::failover(args).await,
        Bench::Storm(args) => storm::storm(args).await,
        Bench::Resolve { samples, hosts } => resolve(samples, hosts).await,
        Bench::CatchUp {
            routes,
            workers,
            relays,
        } => catch_up(routes, workers, relays).await,
        Bench::Drain { hosts, rates } => drain(hosts, &rates).await,
        Bench::Restore { routes, workers } => restore(routes, workers).await,
    }
}

/// `benches catch-up`: a new site catching up on `routes` routes.
// Over 100 lines: one script, setup, load, measurement, table, read top to
// bottom; the steps share many locals and are used nowhere else.
async fn catch_up(routes: u64, workers: usize, relays: u32) -> anyhow::Result<()> {
    let spec = TestSpec {
        snapshots: Snapshots {
            logs_since_last: 10_000,
            logs_kept: 1_000,
        },
        ..TestSpec::default()
    };
    let mut cluster = TestCluster::start_with(spec).await;
    let client = Arc::new(cluster.client());
    let registering = Instant::now();
    register_relays(
        &client,
        relays,
        (routes / u64::from(relays) * 2 + 10) as u32,
    )
    .await;

    let registered = registering.elapsed();
    let leader_before = cluster.leader().await;
    let rss_before = site_rss(&cluster, leader_before);
    let probe = SnapshotProbe::start(
        cluster.cluster.sites[&leader_before]
            .report
            .http_addr
            .clone(),
    );
    let started = Instant::now();
    let acked = attach_every(&client, "host", routes, workers).await?;
    let attach_time = started.elapsed();
    let builds = probe.finish().await?;
    let latencies: Latencies = acked.iter().map(|a| a.finished - a.started).collect();
    let (across, clear): (Vec<_>, Vec<_>) = acked
        .iter()
        .partition(|a| builds.iter().any(|b| b.overlaps(a.started, a.finished)));
    let across: Latencies = across.iter().map(|a| a.finished - a.started).collect();
    let clear: Latencies = clear.iter().map(|a| a.finished - a.started).collect();
    let last_build = builds.last().map_or(0.0, |b| b.took.as_secs_f64() * 1e3);

    let leader = cluster.leader().await;
    let leader_status = cluster.status(leader).await;
    let rss_after = site_rss(&cluster, leader);
    let follower = (1..=3).find(|s| *s != leader).expect("a follower");
    cluster
        .wait_applied(follower, leader_status.commit_index, APPLY_DEADLINE)
        .await;
    let resolves = resolve_latencies(&cluster, follower, routes).await?;
    // Restart recovery: a follower stopped and started again, until it
    // has applied what the leader committed.
    cluster.cluster.kill(follower)?;
    let restarted = Instant::now();
    cluster.cluster.restart(follower)?;
    cluster
        .wait_applied(follower, leader_status.commit_index, APPLY_DEADLINE)
        .await;
    let recovery = restarted.elapsed();
    let new_site = cluster.cluster.spawn_additional_site()?;
    let endpoints = cluster
        .cluster
        .endpoints(new_site)
        .expect("the new site has endpoints");
    let joined = Instant::now();
    client.add_learner(endpoints).await?;
    let mut last_percent = u64::MAX;
    client
        .wait_caught_up(new_site, Duration::from_secs(600), |matched, target| {
            let percent = matched.min(target) * 100 / target.max(1);
            if percent / 10 != last_percent / 10 {
                eprintln!("  catching up: {matched}/{target} entries ({percent}%)");
                last_percent = percent;
            }
        })
        .await?;
    let replicated = joined.elapsed();
    cluster
        .wait_applied(
            new_site,
            leader_status.commit_index,
            Duration::from_secs(600),
        )
        .await;
    let applied = joined.elapsed();
    let learner = cluster.status(new_site).await;
    anyhow::ensure!(
        learner.route_count == routes,
        "the learner holds {} routes, not {routes}",
        learner.route_count
    );
    let snapshot_bytes: u64 = std::fs::read_dir(
        cluster.cluster.sites[&leader]
            .config
            .data_dir
            .join("snapshots"),
    )?
    .filter_map(Result::ok)
    .filter_map(|e| e.metadata().ok())
    .map(|m| m.len())
    .sum();

    let rows = [
        ("routes", routes.to_string()),
        ("relays", relays.to_string()),
        (
            "registering the relays, one at a time (s)",
            format!("{:.1}", registered.as_secs_f64()),
        ),
        ("attach workers", workers.to_string()),
        (
            "attach throughput (attaches/s)",
            format!("{:.0}", routes as f64 / attach_time.as_secs_f64()),
        ),
        (
            "attach latency p50 (ms)",
            format!("{:.1}", latencies.quantile_ms(0.50)),
        ),
        (
            "attach latency p99 (ms)",
            format!("{:.1}", latencies.quantile_ms(0.99)),
        ),
        (
            "snapshots built on the leader during the attaches",
            builds.len().to_string(),
        ),
        (
            "the last (largest) snapshot build (ms)",
            format!("{last_build:.0}"),
        ),
        (
            "attaches across a build: count, p99, max (ms)",
            format!(
                "{}, {:.1}, {:.1}",
                across.len(),
                across.quantile_ms(0.99),
                across.max_ms()
            ),
        ),
        (
            "attaches clear of builds: count, p99, max (ms)",
            format!(
                "{}, {:.1}, {:.1}",
                clear.len(),
                clear.quantile_ms(0.99),
                clear.max_ms()
            ),
        ),
        (
            "leader RSS growth per route (bytes)",
            format!(
                "{:.0}",
                rss_after.saturating_sub(rss_before) as f64 / routes.max(1) as f64
            ),
        ),
        (
            "leader RSS after (MiB)",
            format!("{:.0}", rss_after as f64 / 1048576.0),
        ),
        (
            "local resolve at a follower, 1 client, p50 (ms)",
            format!("{:.3}", resolves.quantile_ms(0.50)),
        ),
        (
            "local resolve at a follower, 1 client, p99 (ms)",
            format!("{:.3}", resolves.quantile_ms(0.99)),
        ),
        (
            "follower restart: applied everything again (s)",
            format!("{:.2}", recovery.as_secs_f64()),
        ),
        (
            "leader snapshot index",
            leader_status.snapshot_index.to_string(),
        ),
        (
            "leader snapshot file (MiB)",
            format!("{:.1}", snapshot_bytes as f64 / 1048576.0),
        ),
        (
            "new site: replicated to leader's log (s)",
            format!("{:.2}", replicated.as_secs_f64()),
        ),
        (
            "new site: applied every route (s)",
            format!("{:.2}", applied.as_secs_f64()),
        ),
        (
            "new site installed snapshot at index",
            learner.snapshot_index.to_string(),
        ),
    ];
    let rows: Vec<(String, String)> = rows
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    print_table("catch-up benchmark", &rows);
    Ok(())
}

/// Longest a site may take to apply what the leader committed, at a
/// million routes.
const APPLY_DEADLINE: Duration = Duration::from_secs(600);

/// Resident memory of site `id`'s process.
fn site_rss(cluster: &TestCluster, id: u64) -> u64 {
    cluster.cluster.sites[&id]
        .pid()
        .map_or(0, switchboard_tests::process_rss_bytes)
}

/// 2,000 sequential local resolves of random hosts at `site`.
async fn resolve_latencies(
    cluster: &TestCluster,
    site: u64,
    hosts: u64,
) -> anyhow::Result<Latencies> {
    use switchboard_proto::v1 as pb;
    let client = cluster.site_client(site);
    let mut latencies = Latencies::new();
    for n in 0..2_000u64 {
        let host = format!("host-{:05}", (n * 7919) % hosts.max(1));
        let started = Instant::now();
        client.resolve(&host, pb::Consistency::Local, 0).await?;
        latencies.record(started.elapsed());
    }
    Ok(latencies)
}

async fn resolve(samples: usize, hosts: u64) -> anyhow::Result<()> {
    use switchboard_proto::v1 as pb;
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let client = Arc::new(cluster.client());
    register_relays(&client, 10, (hosts / 5 + 10) as u32).await;
    attach_all(&client, hosts, 32).await?;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|s| *s != leader).expect("a follower");
    let commit = cluster.status(leader).await.commit_index;
    cluster
        .wait_applied(follower, commit, Duration::from_secs(60))
        .await;

    let cases = [
        (
            "local, at a follower",
            follower,
            pb::Consistency::Local,
            false,
        ),
        (
            "linearizable (read index), at a follower",
            follower,
            pb::Consistency::Linearizable,
            false,
        ),
        (
            "linearizable (leader lease), at a follower",
            follower,
            pb::Consistency::Linearizable,
            true,
        ),
        (
            "local, at the leader",
            leader,
            pb::Consistency::Local,
            false,
        ),
        (
            "linearizable (read index), at the leader",
            leader,
            pb::Consistency::Linearizable,
            false,
        ),
    ];
    println!();
    println!(
        "resolve latency, one client, sequential ({} binaries, {samples} samples each, {hosts} routes)",
        profile()
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "read", "p50 ms", "p99 ms", "max ms"
    );
    for (name, site, consistency, lease_read) in cases {
        let site_client = cluster.site_client(site);
        let mut latencies = Latencies::new();
        for n in 0..samples {
            let host = format!("host-{:05}", (n as u64 * 7919) % hosts);
            let started = Instant::now();
            site_client
                .resolve_with(&host, consistency, 0, lease_read)
                .await?;
            latencies.record(started.elapsed());
        }
        println!(
            "{name:<44} {:>10.2} {:>10.2} {:>10.2}",
            latencies.quantile_ms(0.50),
            latencies.quantile_ms(0.99),
            latencies.max_ms()
        );
    }
    Ok(())
}

/// Attaches `hosts-00000`.. with `workers` in parallel; every one must succeed.
async fn attach_all(
    client: &Arc<switchboard_api::ClusterClient>,
    hosts: u64,
    workers: usize,
) -> anyhow::Result<()> {
    attach_every(client, "host", hosts, workers)
        .await
        .map(|_| ())
}

/// Attaches `prefix-00000`.. up to `hosts` with `workers` in parallel;
/// every one must succeed. Their acknowledgements, with their times.
pub(crate) async fn attach_every(
    client: &Arc<switchboard_api::ClusterClient>,
    prefix: &str,
    hosts: u64,
    workers: usize,
) -> anyhow::Result<Vec<switchboard_tests::load::Acked>> {
    let (acked, failures) = AttachLoad::start(client.clone(), prefix, hosts, workers)
        .finish()
        .await;
    anyhow::ensure!(
        failures.is_empty(),
        "attaches failed: {:?}",
        &failures[..failures.len().min(5)]
    );
    Ok(acked)
}

fn print_table(title: &str, rows: &[(String, String)]) {
    println!();
    println!(
        "{title} ({} binaries, {} cores)",
        profile(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<44} {:>14}", "measure", "value");
    for (name, value) in rows {
        println!("{name:<44} {value:>14}");
    }
}

async fn register(
    client: &switchboard_api::ClusterClient,
    relay_id: &str,
    capacity: u32,
) -> anyhow::Result<()> {
    client
        .register_relay(switchboard_proto::v1::RegisterRelayRequest {
            request_id: switchboard_api::new_request_id(),
            relay_id: relay_id.to_owned(),
            endpoint: format!("{relay_id}.bench:443"),
            region: String::new(),
            labels: Default::default(),
            capacity,
            incarnation: 1,
        })
        .await?;
    Ok(())
}

/// Drains every host back and forth between two relays, once per rate.
async fn drain(hosts: u64, rates: &[u32]) -> anyhow::Result<()> {
    use switchboard_proto::v1 as pb;
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let client = Arc::new(cluster.client());
    register(&client, "relay-a", hosts as u32).await?;
    attach_all(&client, hosts, 64).await?;
    register(&client, "relay-b", hosts as u32).await?;
    let mut rows = vec![("hosts per drain".to_owned(), hosts.to_string())];
    let (mut from, mut to) = ("relay-a", "relay-b");
    for &rate in rates {
        let started = Instant::now();
        client.drain_relay(from, rate, 0, false).await?;
        loop {
            let relays = client.list_relays().await?.relays;
            let source = relays
                .iter()
                .find(|r| r.relay_id == from)
                .ok_or_else(|| anyhow::anyhow!("{from} vanished"))?;
            if source.state == pb::RelayState::Drained as i32 {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "drain at {rate}/s stalled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        client.undrain_relay(from).await?;
        rows.push((
            format!("asked {rate} hosts/s: reached (hosts/s)"),
            format!("{:.0}", hosts as f64 / took.as_secs_f64()),
        ));
        rows.push((
            format!("asked {rate} hosts/s: took (s)"),
            format!("{:.2}", took.as_secs_f64()),
        ));
        std::mem::swap(&mut from, &mut to);
    }
    print_table("drain benchmark", &rows);
    Ok(())
}

/// Attaches N hosts, saves a backup with sbctl, loses the cluster, and
/// restores the backup into a new one with sbctl.
async fn restore(routes: u64, workers: usize) -> anyhow::Result<()> {
    let backups = tempfile::tempdir()?;
    let backup = backups.path().join("bench.backup");
    let backup_path = backup
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 temp dir"))?;
    let saved = {
        let cluster = TestCluster::start_with(TestSpec::default()).await;
        let client = Arc::new(cluster.client());
        register_relays(&client, 100, (routes / 100 * 2 + 10) as u32).await;
        attach_all(&client, routes, workers).await?;
        switchboard_tests::sbctl_json(&cluster.cluster_json(), &["snapshot", "save", backup_path])
            .await
    };
    let rebuilt = TestCluster::start_with(TestSpec::default()).await;
    let cluster_json = rebuilt.cluster_json();
    let started = Instant::now();
    let restored = switchboard_tests::sbctl_json(
        &cluster_json,
        &["snapshot", "restore", backup_path, "--yes-replace-state"],
    )
    .await;
    let took = started.elapsed();
    let leader = rebuilt.leader().await;
    let status = rebuilt.status(leader).await;
    anyhow::ensure!(
        status.route_count == routes,
        "{} routes after the restore",
        status.route_count
    );
    let rows = vec![
        ("routes".to_owned(), routes.to_string()),
        (
            "backup file (MiB)".to_owned(),
            format!("{:.1}", saved["bytes"].as_f64().unwrap_or(0.0) / 1048576.0),
        ),
        ("backup rows".to_owned(), saved["rows"].to_string()),
        (
            "snapshot save (s)".to_owned(),
            format!("{:.2}", saved["seconds"].as_f64().unwrap_or(0.0)),
        ),
        (
            "snapshot restore, sbctl wall time (s)".to_owned(),
            format!("{:.2}", took.as_secs_f64()),
        ),
        (
            "  of which sending rows (s)".to_owned(),
            format!("{:.2}", restored["rows_seconds"].as_f64().unwrap_or(0.0)),
        ),
        (
            "  of which the commit (s)".to_owned(),
            format!("{:.2}", restored["commit_seconds"].as_f64().unwrap_or(0.0)),
        ),
        (
            "node-info era after the restore".to_owned(),
            restored["era"].to_string(),
        ),
    ];
    print_table("backup and restore benchmark", &rows);
    Ok(())
}
