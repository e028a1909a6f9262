//! `switchboard dev`: a three-site cluster on this machine, with simulated
//! relays (heartbeating, so they keep their leases), hosts and clients, for
//! trying Switchboard out.

use std::path::PathBuf;

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use crate::dev::sim::SIM_READY;

use crate::dev::launcher::LaunchSpec;
use crate::dev::launcher::LocalCluster;
use crate::error::NodeError;

/// What `switchboard dev` starts.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The `switchboard` binary to run the sites and the simulator with.
    pub binary: PathBuf,
    /// Where to keep everything; `None`: a fresh temporary directory.
    pub dir: Option<PathBuf>,
    /// First port: site n uses base + 10(n-1) + {0: raft, 1: api, 2: http}.
    pub base_port: u16,
    /// Simulated relays.
    pub relays: u32,
    /// Simulated hosts.
    pub hosts: u32,
}

/// Starts the demo cluster, prints where everything is, and returns it
/// running; the caller decides when to stop it.
pub async fn start(options: &DevOptions) -> Result<DevCluster, NodeError> {
    let (dir, temporary) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("switchboard-dev-")
                .tempdir()
                .map_err(|e| NodeError::io("creating a temporary directory", e))?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let mut spec = LaunchSpec::new(options.binary.clone(), dir.clone());
    spec.base_port = options.base_port;
    println!("Starting 3 sites in {} ...", dir.display());
    let cluster = LocalCluster::start(spec).await?;

    let cluster_json = dir.join("cluster.json");
    cluster
        .cluster_file()
        .save(&cluster_json)
        .map_err(|e| NodeError::Launcher(e.to_string()))?;
    println!(
        "Starting {} relays and {} hosts (switchboard sim) ...",
        options.relays, options.hosts
    );
    let sim = start_sim(options, &cluster_json, &dir)?;
    let leader = cluster
        .wait_for_leader(cluster.spec.timing.failover_bound() * 4)
        .await?;

    println!();
    println!(
        "{:<6} {:<8} {:<8} {:<22} {:<22} {:<22}",
        "SITE", "NAME", "PID", "API", "RAFT", "STATUS PAGE"
    );
    for site in cluster.sites.values() {
        println!(
            "{:<6} {:<8} {:<8} {:<22} {:<22} http://{}/",
            site.id,
            site.config.name,
            site.pid().map_or_else(|| "-".into(), |p| p.to_string()),
            site.report.api_addr,
            site.report.raft_addr,
            site.report.http_addr
        );
    }
    println!();
    println!(
        "Leader: site {leader}. {} relays registered and heartbeating, {} hosts attached (simulated; see {}).",
        options.relays,
        options.hosts,
        dir.join("sim.log").display()
    );
    println!("Cluster file: {}", cluster_json.display());
    println!("Logs and data: {}", dir.display());
    println!();
    println!("Try:");
    println!("  sbctl --cluster {} status", cluster_json.display());
    println!("  sbctl --cluster {} relay list", cluster_json.display());
    println!(
        "  sbctl --cluster {} route get host-0001 --linearizable",
        cluster_json.display()
    );
    println!("  kill -9 <leader pid>   # and watch another site take over");
    println!();
    println!("Press Ctrl-C to stop.");
    Ok(DevCluster {
        cluster,
        sim: Some(sim),
        _temporary: temporary,
    })
}

/// The running demo: sites, the simulator, and the temp dir (if any).
pub struct DevCluster {
    /// The site processes.
    pub cluster: LocalCluster,
    /// The simulator process, if relays or hosts were asked for.
    pub sim: Option<Child>,
    _temporary: Option<tempfile::TempDir>,
}

impl DevCluster {
    /// Returns once no site runs any more (each was killed or failed):
    /// the demo then has nothing left to show.
    pub async fn all_sites_stopped(&mut self) {
        let mut checks = tokio::time::interval(SITE_CHECK_INTERVAL);
        loop {
            checks.tick().await;
            if !self.cluster.any_running() {
                return;
            }
        }
    }

    /// Stops the simulator, then the sites.
    pub fn stop(&mut self) {
        if let Some(mut sim) = self.sim.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sim.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = sim.wait();
        }
        self.cluster.stop_all();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if let Some(mut sim) = self.sim.take() {
            let _ = sim.kill();
            let _ = sim.wait();
        }
    }
}

/// How often `switchboard dev` checks that some site still runs.
const SITE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long the simulator may take to register its relays and attach its hosts.
const SIM_START_DEADLINE: Duration = Duration::from_secs(120);

/// Starts `switchboard sim` for the demo's relays and hosts; returns once
/// they all run.
fn start_sim(options: &DevOptions, cluster_json: &Path, dir: &Path) -> Result<Child, NodeError> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let log_path = dir.join("sim.log");
    let log = std::fs::File::create(&log_path).map_err(|e| NodeError::io("creating sim.log", e))?;
    let mut command = Command::new(&options.binary);
    let mut child = crate::dev::orphans::stop_with_parent(&mut command)
        .process_group(0)
        .arg("sim")
        .arg("--cluster")
        .arg(cluster_json)
        .args([
            "--relays",
            &options.relays.to_string(),
            "--hosts",
            &options.hosts.to_string(),
        ])
        .args(["--clients", "2", "--report-every-secs", "30"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| NodeError::io("starting switchboard sim", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| NodeError::Launcher("sim has no stdout".into()))?;
    let (ready, ready_signal) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .ok();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(SIM_READY) {
                let _ = ready.send(());
            }
            if let Some(log) = log.as_mut() {
                let _ = std::io::Write::write_all(log, format!("{line}\n").as_bytes());
            }
        }
    });
    if ready_signal.recv_timeout(SIM_START_DEADLINE).is_err() {
        let _ = child.kill();
        return Err(NodeError::Launcher(format!(
            "switchboard sim did not start its relays and hosts within {} s; see {}",
            SIM_START_DEADLINE.as_secs(),
            dir.join("sim.log").display()
        )));
    }
    Ok(child)
}
