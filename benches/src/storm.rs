//! `benches storm`: the reconnect storm. A relay carrying every one of N
//! hosts dies (it stops heartbeating); the leader's lease verdict re-places
//! them on the surviving relays. Measured: the time from the relay's last
//! heartbeat to the relay holding no route (every host re-placed), to every
//! surviving relay's route watch naming its new hosts, and to a sample of
//! host route watches naming the new relay; and the write latency other
//! callers see meanwhile, against the same callers before the death.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use switchboard_api::ClusterClient;
use switchboard_api::Followed;
use switchboard_api::new_request_id;
use switchboard_node::RelayTiming;
use switchboard_node::local::RelayBook;
use switchboard_node::local::SimRelay;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::signed_node_info;

use crate::latency::Latencies;

/// How often the bench looks at the relays and the watches.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest the storm may take past the lease before the bench gives up.
const STORM_DEADLINE_BEYOND_LEASE: Duration = Duration::from_secs(120);
/// Before the death, how long the other callers' writes are measured.
const BASELINE: Duration = Duration::from_secs(5);

/// What `storm` runs.
#[derive(clap::Args, Clone, Debug)]
pub struct StormArgs {
    /// Hosts on the relay that dies.
    #[arg(long, default_value_t = 100_000)]
    pub hosts: u64,
    /// Relays that survive and take the hosts.
    #[arg(long, default_value_t = 10)]
    pub relays: u32,
    /// The relay lease, ms (the sites' `lease_ttl_ms`).
    #[arg(long, default_value_t = 5_000)]
    pub lease_ms: u64,
    /// Hosts whose own route watch is followed (a sample, spread evenly).
    #[arg(long, default_value_t = 1_000)]
    pub host_watches: u64,
    /// Concurrent attaches that place the hosts before the storm.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Other callers writing (attaching new hosts) throughout.
    #[arg(long, default_value_t = 8)]
    pub other_writers: usize,
}

/// Writes by callers unrelated to the storm, each timed.
struct OtherWriters {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OtherWriters {
    fn start(client: Arc<ClusterClient>, writers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..writers)
            .map(|w| {
                let (client, stop, acked, samples) =
                    (client.clone(), stop.clone(), acked.clone(), samples.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let host = format!("other-{w}-{n}");
                        n += 1;
                        if client.attach(&new_request_id(), &host, "").await.is_ok() {
                            acked.fetch_add(1, Ordering::Relaxed);
                            samples
                                .lock()
                                .expect("bench lock")
                                .push((started, started.elapsed()));
                        }
                    }
                })
            })
            .collect();
        OtherWriters {
            stop,
            acked,
            samples,
            tasks,
        }
    }

    /// Stops them; how many attaches they had acknowledged.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        self.acked.load(Ordering::Relaxed)
    }

    /// Latencies of the writes that started within `from..to`.
    fn between(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> Latencies {
        samples
            .iter()
            .filter(|(started, _)| *started >= from && *started < to)
            .map(|(_, latency)| *latency)
            .collect()
    }
}

/// Follows the route watch of each sampled host; each records when it
/// first names a relay other than `victim`.
fn watch_sample(
    client: &Arc<ClusterClient>,
    hosts: Vec<String>,
    victim: &str,
    ready: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Option<Instant>>> {
    hosts
        .into_iter()
        .map(|host| {
            let (client, victim, ready) = (client.clone(), victim.to_owned(), ready.clone());
            tokio::spawn(async move {
                let mut follower = client.follow_route(&host);
                let mut seen_victim = false;
                loop {
                    let Ok(Followed::Event(event)) = follower.next().await else {
                        continue;
                    };
                    let Some(route) = event.route else {
                        continue;
                    };
                    if route.relay_id == victim {
                        if !seen_victim {
                            seen_victim = true;
                            ready.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        return Some(Instant::now());
                    }
                }
            })
        })
        .collect()
}

/// Polls `condition` every `POLL_INTERVAL` until it holds; when it first did.
async fn first_time<F, Fut>(
    deadline: Instant,
    what: &str,
    mut condition: F,
) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if condition().await {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

pub async fn storm(args: StormArgs) -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(TestSpec {
        relays: RelayTiming {
            lease_ttl_ms: args.lease_ms,
            ..RelayTiming::default()
        },
        ..TestSpec::default()
    })
    .await;
    let client = cluster.directory_client();
    signed_node_info(&client).await;
    let book = RelayBook::default();
    let victim_id = "relay-victim";
    let capacity = u32::try_from(args.hosts + 1)?;
    let victim = SimRelay::start(client.clone(), &book, victim_id, "", capacity).await?;

    eprintln!("placing {} hosts on {victim_id} ...", args.hosts);
    let placing = Instant::now();
    let acked = crate::attach_every(&client, "storm", args.hosts, args.workers).await?;
    anyhow::ensure!(
        acked.iter().all(|a| a.relay_id == victim_id),
        "every host is on {victim_id}, the only relay"
    );
    eprintln!("  {:.1} s", placing.elapsed().as_secs_f64());

    let survivor_capacity = u32::try_from(args.hosts / u64::from(args.relays) * 2 + 100_000)?;
    let mut survivors = Vec::new();
    for n in 1..=args.relays {
        let relay_id = format!("relay-{n}");
        let relay = SimRelay::start(client.clone(), &book, &relay_id, "", survivor_capacity);
        survivors.push(relay.await?);
    }
    let step = (args.hosts / args.host_watches.max(1)).max(1) as usize;
    let sample: Vec<String> = acked
        .iter()
        .step_by(step)
        .map(|a| a.host_id.clone())
        .collect();
    let ready = Arc::new(AtomicU64::new(0));
    let watches = watch_sample(&client, sample.clone(), victim_id, &ready);
    let opened = Instant::now() + Duration::from_secs(60);
    first_time(opened, "every sampled host watch saw its route", || {
        let done = ready.load(Ordering::Relaxed) == sample.len() as u64;
        async move { done }
    })
    .await?;

    let others = OtherWriters::start(client.clone(), args.other_writers);
    tokio::time::sleep(BASELINE).await;
    let killed_at = Instant::now();
    victim.stop();
    let deadline = killed_at + Duration::from_millis(args.lease_ms) + STORM_DEADLINE_BEYOND_LEASE;

    let admin = cluster.client();
    let down_at = first_time(deadline, "the victim is marked down", || async {
        admin.list_relays().await.is_ok_and(|listed| {
            listed.relays.iter().any(|r| {
                r.relay_id == victim_id && r.state == switchboard_proto::v1::RelayState::Down as i32
            })
        })
    })
    .await?;
    let replaced_at = first_time(deadline, "the victim holds no route", || async {
        admin.list_relays().await.is_ok_and(|listed| {
            listed
                .relays
                .iter()
                .any(|r| r.relay_id == victim_id && r.route_count == 0)
        })
    })
    .await?;
    let samples = others.samples.clone();
    let others_acked = others.stop().await;
    // The survivors' watches hold the storm's hosts and the other callers'.
    let expected = args.hosts + others_acked;
    let relays_told_at = first_time(
        deadline,
        "every surviving relay's watch named its hosts",
        || {
            let known: u64 = survivors.iter().map(|r| r.admission.hosts() as u64).sum();
            async move { known >= expected }
        },
    )
    .await?;
    let mut host_told = Vec::new();
    for watch in watches {
        host_told.push(
            watch
                .await?
                .ok_or_else(|| anyhow::anyhow!("a host watch ended"))?,
        );
    }
    let hosts_told_at = host_told.iter().max().copied().unwrap_or(killed_at);
    // The worst phase: the lease ran from (at the latest) the last heartbeat
    // the relay had acknowledged, which was sent up to a quarter lease
    // before the stop.
    let last_beat = victim
        .counters
        .last_acknowledged_sent_at
        .lock()
        .ok_or_else(|| anyhow::anyhow!("the victim never had a heartbeat acknowledged"))?;
    let told_at = relays_told_at.max(hosts_told_at);

    let samples = samples.lock().expect("bench lock").clone();
    let before = OtherWriters::between(&samples, killed_at - BASELINE, killed_at);
    let during = OtherWriters::between(&samples, killed_at, replaced_at);
    let ms = |at: Instant| at.duration_since(killed_at).as_millis();
    println!();
    println!(
        "## Reconnect storm: a relay under {} hosts dies ({} binaries)",
        args.hosts,
        crate::profile()
    );
    println!();
    println!(
        "3 sites, lease {} ms, {} surviving relays; times from when the relay stopped heartbeating (its last acknowledged heartbeat came up to a quarter lease earlier); {} host watches followed; {} other writers throughout.",
        args.lease_ms,
        args.relays,
        sample.len(),
        args.other_writers
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| relay marked down (ms) | {} |", ms(down_at));
    println!(
        "| every host re-placed: the dead relay holds no route (ms) | {} |",
        ms(replaced_at)
    );
    println!(
        "| re-placing after the verdict (ms) | {} |",
        replaced_at.duration_since(down_at).as_millis()
    );
    println!(
        "| every surviving relay's watch named its new hosts (ms) | {} |",
        ms(relays_told_at)
    );
    println!(
        "| every sampled host's watch named its new relay (ms) | {} |",
        ms(hosts_told_at)
    );
    println!(
        "| the stop came after the last acknowledged heartbeat was sent by (ms) | {} |",
        killed_at.duration_since(last_beat).as_millis()
    );
    println!(
        "| every watch told, from the last acknowledged heartbeat (the worst phase) (ms) | {} |",
        told_at.duration_since(last_beat).as_millis()
    );
    println!("| target: lease + 1 s (ms) | {} |", args.lease_ms + 1_000);
    for (name, latencies) in [("before the death", &before), ("during the storm", &during)] {
        println!(
            "| other callers' attach {name}: count, p50, p99, max (ms) | {}, {:.1}, {:.1}, {:.1} |",
            latencies.len(),
            latencies.quantile_ms(0.50),
            latencies.quantile_ms(0.99),
            latencies.max_ms()
        );
    }
    Ok(())
}
