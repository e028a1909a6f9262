//! `benches compare`: the same workload against a 3-site Switchboard
//! cluster (mTLS) and a 3-member etcd cluster (TLS with client
//! certificates), one system after the other in one run, both syncing
//! every commit; one table with both and their ratio.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::load::register_relays;

use crate::etcd::EtcdCluster;
use crate::etcd::EtcdTiming;
use crate::load::Mode;
use crate::load::Sample;
use crate::load::measure;
use crate::load::preload;
use crate::machine::Machine;
use crate::systems::Connections;
use crate::systems::Op;

/// What `compare` runs.
#[derive(clap::Args, Clone, Debug)]
pub struct CompareArgs {
    /// Concurrent clients of the closed-loop runs.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    pub clients: Vec<usize>,
    /// Fixed rates (requests/s) of the open-loop runs; 0 to skip them.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub open_rates: Vec<u64>,
    /// Workers that carry the open-loop requests.
    #[arg(long, default_value_t = 256)]
    pub open_workers: usize,
    /// Seconds measured per row, after `warmup_seconds` not measured.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Hosts written before the reads, which then look them up.
    #[arg(long, default_value_t = 10_000)]
    pub preload: u64,
    /// Connections the driver opens to each member of each system.
    #[arg(long, default_value_t = 2)]
    pub connections_per_member: usize,
    /// Appends the table and the machine's description to this file.
    #[arg(long)]
    pub append: Option<PathBuf>,
    /// The smallest setting, for CI: 1 and 4 clients, 1 s a row.
    #[arg(long)]
    pub smoke: bool,
    /// Operations to run (all by default).
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "write,local-read,linearizable-read"
    )]
    pub ops: Vec<Op>,
    /// Switchboard only (to profile it); the etcd columns stay empty.
    #[arg(long)]
    pub skip_etcd: bool,
    /// The WAN profile: every byte between members delayed this many ms
    /// each way (a user-space proxy), the driver beside one follower and
    /// talking to it alone, default timing (heartbeat 100 ms, election
    /// 500 ms; Switchboard 500-1000 ms). 0: loopback and LAN timing.
    #[arg(long, default_value_t = 0)]
    pub wan_ms: u64,
}

impl CompareArgs {
    fn effective(&self) -> CompareArgs {
        if !self.smoke {
            return self.clone();
        }
        CompareArgs {
            clients: vec![1, 4],
            open_rates: vec![100],
            open_workers: 8,
            seconds: 1.0,
            warmup_seconds: 0.2,
            preload: 100,
            ..self.clone()
        }
    }
}

/// One row of the table: an operation in one mode on both systems.
struct Row {
    op: Op,
    mode: Mode,
    etcd: Option<Sample>,
    switchboard: Sample,
}

pub async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let args = args.effective();
    let machine = Machine::describe()?;
    eprintln!("measuring Switchboard ...");
    let switchboard = measure_switchboard(&args).await?;
    eprintln!("measuring etcd ...");
    let mut etcd = if args.skip_etcd {
        Vec::new()
    } else {
        measure_etcd(&args).await?
    }
    .into_iter();
    let rows: Vec<Row> = switchboard
        .into_iter()
        .map(|(op, mode, switchboard)| Row {
            op,
            mode,
            etcd: etcd.next().map(|(_, _, sample)| sample),
            switchboard,
        })
        .collect();
    let report = render(&args, &machine, &rows);
    println!("{report}");
    if let Some(path) = &args.append {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(report.as_bytes())?;
        eprintln!("appended to {}", path.display());
    }
    let failed: u64 = rows
        .iter()
        .map(|r| r.etcd.as_ref().map_or(0, |e| e.errors) + r.switchboard.errors)
        .sum();
    anyhow::ensure!(
        failed == 0 || !args.smoke,
        "{failed} requests failed in the smoke run"
    );
    Ok(())
}

/// Every (op, mode) in the order both systems run them.
fn plan(args: &CompareArgs) -> Vec<(Op, Mode)> {
    let mut plan = Vec::new();
    for op in Op::ALL.into_iter().filter(|op| args.ops.contains(op)) {
        for &clients in &args.clients {
            plan.push((op, Mode::Closed { clients }));
        }
        for &rate in args.open_rates.iter().filter(|rate| **rate > 0) {
            plan.push((
                op,
                Mode::Open {
                    rate,
                    workers: args.open_workers,
                },
            ));
        }
    }
    plan
}

async fn run_plan(
    connections: Arc<Connections>,
    args: &CompareArgs,
) -> anyhow::Result<Vec<(Op, Mode, Sample)>> {
    let mut samples = Vec::new();
    for (op, mode) in plan(args) {
        let warmup = Duration::from_secs_f64(args.warmup_seconds);
        // Said before each row, so a profiler started alongside knows when
        // the load it wants is running.
        eprintln!("  {:<18} {:<22} running", op.name(), mode_name(mode));
        measure(&connections, op, mode, warmup, args.preload).await;
        let sample = measure(
            &connections,
            op,
            mode,
            Duration::from_secs_f64(args.seconds),
            args.preload,
        )
        .await;
        eprintln!(
            "  {:<18} {:<22} {:>9.0} ops/s, p99 {:.1} ms, {} errors",
            op.name(),
            mode_name(mode),
            sample.ops_per_second(),
            sample.latencies.quantile_ms(0.99),
            sample.errors
        );
        samples.push((op, mode, sample));
    }
    Ok(samples)
}

/// The timing both systems run with: LAN, or the default under the WAN.
fn timing(args: &CompareArgs) -> switchboard_node::Timing {
    if args.wan_ms == 0 {
        switchboard_node::Timing::lan()
    } else {
        switchboard_node::Timing::default()
    }
}

/// The sites log warnings and errors only, as etcd runs here (`--log-level
/// warn`): at info a site logs every admin attach (an audit line), which
/// the driver's attaches are.
const SITE_LOG_FILTER: &str = "warn";

async fn measure_switchboard(args: &CompareArgs) -> anyhow::Result<Vec<(Op, Mode, Sample)>> {
    let one_way = Duration::from_millis(args.wan_ms);
    let (cluster, _proxies) = if one_way.is_zero() {
        let spec = TestSpec {
            log_filter: SITE_LOG_FILTER.into(),
            ..TestSpec::default()
        };
        (TestCluster::start_with(spec).await, Default::default())
    } else {
        switchboard_tests::wan_cluster(timing(args), one_way, SITE_LOG_FILTER).await
    };
    // Room for every write of the run, spread so no relay fills.
    register_relays(&cluster.client(), 100, 50_000).await;
    let leader = cluster.leader().await;
    let members: Vec<u64> = if one_way.is_zero() {
        (1..=3).collect()
    } else {
        vec![(1..=3).find(|site| *site != leader).expect("a follower")]
    };
    let mut clients = Vec::new();
    for _ in 0..args.connections_per_member {
        for &site in &members {
            clients.push(cluster.site_client_with_deadline(site, Duration::from_secs(10)));
        }
    }
    let connections = Arc::new(Connections::Switchboard(clients));
    preload(&connections, args.preload, 64).await?;
    let commit = cluster.status(leader).await.commit_index;
    for site in 1..=3 {
        cluster
            .wait_applied(site, commit, Duration::from_secs(60))
            .await;
    }
    run_plan(connections, args).await
}

async fn measure_etcd(args: &CompareArgs) -> anyhow::Result<Vec<(Op, Mode, Sample)>> {
    let timing = timing(args);
    let etcd_timing = EtcdTiming {
        heartbeat_ms: timing.heartbeat_ms,
        election_ms: timing.election_min_ms,
    };
    let etcd = EtcdCluster::start_wan(etcd_timing, Duration::from_millis(args.wan_ms)).await?;
    let members: Vec<usize> = if args.wan_ms == 0 {
        (0..etcd.len()).collect()
    } else {
        let leader = etcd.wait_for_leader(Duration::from_secs(30)).await?;
        vec![(0..etcd.len()).find(|m| *m != leader).expect("a follower")]
    };
    let mut clients = Vec::new();
    for _ in 0..args.connections_per_member {
        for &member in &members {
            clients.push(etcd.client(member).await?.kv_client());
        }
    }
    let connections = Arc::new(Connections::Etcd(clients));
    preload(&connections, args.preload, 64).await?;
    // A linearizable read at each member waits until it has applied the
    // preload, as `wait_applied` does for Switchboard.
    for worker in 0..connections.len() {
        connections
            .run(Op::LinearizableRead, worker, &crate::systems::read_key(0))
            .await?;
    }
    run_plan(connections, args).await
}

fn mode_name(mode: Mode) -> String {
    match mode {
        Mode::Closed { clients } => format!("{clients} clients"),
        Mode::Open { rate, workers } => format!("{rate}/s open ({workers} w)"),
    }
}

fn cell(sample: Option<&Sample>) -> String {
    let Some(sample) = sample else {
        return "- | - | - | -".into();
    };
    format!(
        "{:.0} | {:.2} | {:.2} | {:.2}{}",
        sample.ops_per_second(),
        sample.latencies.quantile_ms(0.50),
        sample.latencies.quantile_ms(0.99),
        sample.latencies.quantile_ms(0.999),
        if sample.errors > 0 {
            format!(" ({} err)", sample.errors)
        } else {
            String::new()
        }
    )
}

fn render(args: &CompareArgs, machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "## Switchboard and etcd side by side, {} ({} binaries{})",
        machine.date,
        crate::profile(),
        if args.smoke { ", smoke setting" } else { "" }
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", machine.render());
    let network = if args.wan_ms == 0 {
        "3 members each on loopback, LAN timing (heartbeat 50 ms, election 300 ms; Switchboard 300-500 ms)".to_owned()
    } else {
        format!(
            "**WAN profile**: 3 members each, every byte between members delayed {} ms each way by a user-space proxy \
             (a {} ms round trip), default timing (heartbeat 100 ms, election 500 ms; Switchboard 500-1000 ms); \
             the driver sits beside one follower and sends everything to it",
            args.wan_ms,
            2 * args.wan_ms
        )
    };
    let spread = if args.wan_ms == 0 {
        "spreads clients over all three"
    } else {
        "uses only the follower beside it"
    };
    let _ = writeln!(
        out,
        "{network}; \
         Switchboard over mTLS through its client library, etcd {} over TLS with client certificates through etcd-client; \
         both sync every commit. {:.0} s a row after {:.1} s of warm-up; {} preloaded hosts; \
         the driver holds {} connections to each member it uses and {spread}. \
         Latencies in ms; open-loop latencies count from when each request was due.",
        machine.etcd_version,
        args.seconds,
        args.warmup_seconds,
        args.preload,
        args.connections_per_member
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| op | load | etcd ops/s | p50 | p99 | p999 | Switchboard ops/s | p50 | p99 | p999 | ratio |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let ratio = row.etcd.as_ref().map_or("-".into(), |etcd| {
            format!(
                "{:.2}",
                row.switchboard.ops_per_second() / etcd.ops_per_second().max(1e-9)
            )
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {ratio} |",
            row.op.name(),
            mode_name(row.mode),
            cell(row.etcd.as_ref()),
            cell(Some(&row.switchboard)),
        );
    }
    for row in rows {
        for (system, sample) in [
            ("etcd", row.etcd.as_ref()),
            ("Switchboard", Some(&row.switchboard)),
        ] {
            if let Some(error) = sample.and_then(|s| s.first_error.as_ref()) {
                let _ = writeln!(
                    out,
                    "\n{system}, {} at {}: first error: {error}",
                    row.op.name(),
                    mode_name(row.mode)
                );
            }
        }
    }
    out
}
