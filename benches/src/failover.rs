//! `benches failover`: how long writes stop after `kill -9` of the leader,
//! for Switchboard and etcd, at the timing given. Writers send through the
//! members that survive; the window is from the kill to the first write
//! acknowledged among those sent after it. The killed member is started
//! again and caught up before the next kill.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::load::register_relays;

use crate::etcd::EtcdCluster;
use crate::etcd::EtcdTiming;
use crate::systems::Connections;
use crate::systems::Op;

/// Writes run this long before each kill, so the writers are steady.
const STEADY_BEFORE_KILL: Duration = Duration::from_secs(1);
/// Longest a window may be before the run is called failed.
const WINDOW_DEADLINE: Duration = Duration::from_secs(30);
/// Longest a restarted member may take to catch up.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

#[derive(clap::Args, Clone, Debug)]
pub struct FailoverArgs {
    /// Leader kills per system; the median window is reported.
    #[arg(long, default_value_t = 5)]
    pub kills: usize,
    /// Concurrent writers through the surviving members.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Switchboard's election_min_ms and etcd's election timeout.
    #[arg(long, default_value_t = 300)]
    pub election_min_ms: u64,
    /// Switchboard's election_max_ms (also its leader lease).
    #[arg(long, default_value_t = 500)]
    pub election_max_ms: u64,
    /// Seconds of loaded writing (128 clients over all members) before the
    /// kills, counting elections: a timing is stable if there are none.
    #[arg(long, default_value_t = 300)]
    pub stable_seconds: u64,
    /// Switchboard only (to search its timing); the etcd row says so.
    #[arg(long, conflicts_with = "skip_switchboard")]
    pub skip_etcd: bool,
    /// etcd only (to search its timing).
    #[arg(long)]
    pub skip_switchboard: bool,
}

/// Clients of the loaded run that checks a timing is stable.
const STABLE_RUN_CLIENTS: usize = 128;

pub async fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    let (switchboard, switchboard_terms) = if args.skip_switchboard {
        (Vec::new(), 0)
    } else {
        switchboard_windows(&args).await?
    };
    let (etcd, etcd_terms) = if args.skip_etcd {
        (Vec::new(), 0)
    } else {
        etcd_windows(&args).await?
    };
    println!();
    println!(
        "failover window after kill -9 of the leader ({} binaries, {} writers through the survivors)",
        crate::profile(),
        args.writers
    );
    println!(
        "| system | heartbeat / election ms | elections in {} s of {STABLE_RUN_CLIENTS}-client writes | windows ms | median ms |\n|---|---|---:|---|---:|",
        args.stable_seconds
    );
    let row = |system: &str, timing: String, windows: &[Duration], terms: u64| {
        if windows.is_empty() {
            println!("| {system} | {timing} | (not run) | | |");
            return;
        }
        let listed: Vec<String> = windows.iter().map(|w| w.as_millis().to_string()).collect();
        println!(
            "| {system} | {timing} | {terms} | {} | {} |",
            listed.join(", "),
            switchboard_tests::median(windows.to_vec()).as_millis()
        );
    };
    row(
        "etcd",
        format!("{} / {}", args.heartbeat_ms, args.election_min_ms),
        &etcd,
        etcd_terms,
    );
    row(
        "Switchboard",
        format!(
            "{} / {}-{}",
            args.heartbeat_ms, args.election_min_ms, args.election_max_ms
        ),
        &switchboard,
        switchboard_terms,
    );
    Ok(())
}

/// Terms passed during a loaded run of `seconds` through `connections`.
async fn loaded_run<F, Fut>(
    connections: Arc<Connections>,
    seconds: u64,
    term: F,
) -> anyhow::Result<u64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let before = term().await?;
    let sample = crate::load::measure(
        &connections,
        Op::Write,
        crate::load::Mode::Closed {
            clients: STABLE_RUN_CLIENTS,
        },
        Duration::from_secs(seconds),
        0,
    )
    .await;
    let after = term().await?;
    eprintln!(
        "  loaded run: {:.0} writes/s, {} errors, term {before} -> {after}",
        sample.ops_per_second(),
        sample.errors
    );
    Ok(after - before)
}

async fn switchboard_windows(args: &FailoverArgs) -> anyhow::Result<(Vec<Duration>, u64)> {
    let timing = switchboard_node::Timing {
        heartbeat_ms: args.heartbeat_ms,
        election_min_ms: args.election_min_ms,
        election_max_ms: args.election_max_ms,
        ..switchboard_node::Timing::lan()
    };
    let mut cluster = TestCluster::start_with(TestSpec {
        timing,
        ..TestSpec::default()
    })
    .await;
    register_relays(&cluster.client(), 100, 100_000).await;
    let all: Vec<_> = (1..=3)
        .map(|site| cluster.site_client_with_deadline(site, WINDOW_DEADLINE))
        .collect();
    let terms = loaded_run(
        Arc::new(Connections::Switchboard(all)),
        args.stable_seconds,
        || async {
            let leader = cluster.leader().await;
            Ok(cluster.status(leader).await.term)
        },
    )
    .await?;
    let mut windows = Vec::new();
    for kill in 0..args.kills {
        let leader = cluster.leader().await;
        let survivors: Vec<_> = (1..=3)
            .filter(|site| *site != leader)
            .map(|site| cluster.site_client_with_deadline(site, WINDOW_DEADLINE))
            .collect();
        let connections = Arc::new(Connections::Switchboard(survivors));
        let window = window(connections, args.writers, kill, || {
            cluster.cluster.kill(leader).map_err(anyhow::Error::from)
        })
        .await?;
        eprintln!(
            "  Switchboard kill {kill} of site {leader}: {} ms",
            window.as_millis()
        );
        windows.push(window);
        cluster.cluster.restart(leader)?;
        let now_leader = cluster.leader().await;
        let commit = cluster.status(now_leader).await.commit_index;
        cluster
            .wait_applied(leader, commit, CATCH_UP_DEADLINE)
            .await;
    }
    Ok((windows, terms))
}

async fn etcd_windows(args: &FailoverArgs) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut etcd = EtcdCluster::start(EtcdTiming {
        heartbeat_ms: args.heartbeat_ms,
        election_ms: args.election_min_ms,
    })
    .await?;
    let mut all = Vec::new();
    for member in 0..etcd.len() {
        all.push(etcd.client(member).await?.kv_client());
    }
    let terms = loaded_run(
        Arc::new(Connections::Etcd(all)),
        args.stable_seconds,
        || async {
            let mut client = etcd.client(0).await?;
            Ok(client.status().await?.raft_term())
        },
    )
    .await?;
    let mut windows = Vec::new();
    for kill in 0..args.kills {
        let leader = etcd.wait_for_leader(CATCH_UP_DEADLINE).await?;
        let mut survivors = Vec::new();
        for member in (0..etcd.len()).filter(|m| *m != leader) {
            survivors.push(etcd.client(member).await?.kv_client());
        }
        let connections = Arc::new(Connections::Etcd(survivors));
        let window = window(connections, args.writers, kill, || etcd.kill(leader)).await?;
        eprintln!(
            "  etcd kill {kill} of member {leader}: {} ms",
            window.as_millis()
        );
        windows.push(window);
        etcd.restart(leader)?;
        wait_member_serves(&etcd, leader).await?;
    }
    Ok((windows, terms))
}

/// Waits until member `i` answers a linearizable read (it has caught up).
async fn wait_member_serves(etcd: &EtcdCluster, i: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(client) = etcd.client(i).await {
            let mut kv = client.kv_client();
            if kv.get("/routes/probe", None).await.is_ok() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "etcd member {i} did not serve again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One write that finished: when it was sent, when it was acknowledged.
type Acked = (Instant, Instant);

/// Runs `writers` writing through `connections`, kills the leader with
/// `kill` once they are steady, and returns the time from the kill to the
/// first acknowledgement of a write sent after it.
async fn window(
    connections: Arc<Connections>,
    writers: usize,
    round: usize,
    kill: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|worker| {
            let (connections, acked, stop) = (connections.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("f{round}-{worker}-{seq}");
                    let sent = Instant::now();
                    if connections.run(Op::Write, worker, &key).await.is_ok() {
                        let mut acked = acked.lock().expect("not poisoned");
                        acked.push((sent, Instant::now()));
                    } else {
                        // A refused write (no leader yet) is retried at once
                        // by the next loop; a short pause keeps the loop
                        // from spinning on a member that refuses fast.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    seq += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(STEADY_BEFORE_KILL).await;
    let steady = acked.lock().expect("not poisoned").len();
    anyhow::ensure!(steady > 0, "no write succeeded before the kill");
    let killed = Instant::now();
    kill()?;
    let window = loop {
        let first = acked
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(sent, _)| *sent >= killed)
            .map(|(_, done)| *done)
            .min();
        if let Some(done) = first {
            break done - killed;
        }
        anyhow::ensure!(
            killed.elapsed() < WINDOW_DEADLINE,
            "no write acknowledged within {WINDOW_DEADLINE:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    Ok(window)
}
