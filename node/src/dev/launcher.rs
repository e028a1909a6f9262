//! Runs a cluster of `switchboard serve` processes on this machine: the
//! engine of `switchboard dev` and of the multi-process integration tests.
//!
//! Each site is its own OS process with its own data dir and config file.
//! Sites ask for free ports (port 0) on first start, report what they bound,
//! and the launcher writes those ports back into the config, so a killed
//! site restarts on the same addresses.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::ClusterSite;
use switchboard_api::ClusterTls;
use switchboard_api::Credentials;
use switchboard_api::DEV_CERTIFICATE_DAYS;
use switchboard_api::DevPki;
use switchboard_api::Role;
use switchboard_api::Validity;
use switchboard_proto::v1 as pb;

use crate::config::InitialSite;
use crate::config::Limits;
use crate::config::RelayTiming;
use crate::config::SiteConfig;
use crate::config::Snapshots;
use crate::config::Timing;
use crate::config::TlsConfig;
use crate::error::NodeError;
use crate::server::READY_PREFIX;
use crate::server::ReadyReport;

/// How long a site may take from spawn to serving (RocksDB open, WAL replay).
pub const SITE_START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd site may take to hand over leadership and exit.
pub const SITE_STOP_DEADLINE: Duration = Duration::from_secs(20);

/// How the sites become one cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Sites start on free ports; the launcher initializes the cluster
    /// through the admin API once they report their addresses.
    AdminApi,
    /// Every site's config lists the initial voters (`initial_sites`), with
    /// ports picked beforehand; the sites form the cluster themselves.
    InitialSites,
    /// Nobody initializes: the sites start and wait, as an operator's
    /// would before `sbctl init`.
    Manual,
}

/// A free TCP port on loopback, as the kernel hands it out now.
fn free_port() -> Result<u16, NodeError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| NodeError::io("finding a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| NodeError::io("finding a free port", e))?
        .port();
    Ok(port)
}

/// What to launch.
#[derive(Clone, Debug)]
pub struct LaunchSpec {
    /// The `switchboard` binary.
    pub binary: PathBuf,
    /// Where sites keep their data, configs and logs.
    pub dir: PathBuf,
    /// Initial voters.
    pub sites: u64,
    /// First port; site n uses base + 10(n-1) + {0: raft, 1: api, 2: http}. 0: any free port.
    pub base_port: u16,
    /// Raft and lease timing every site runs with.
    pub timing: Timing,
    /// When sites build snapshots and purge their logs.
    pub snapshots: Snapshots,
    /// The cluster every site belongs to.
    pub cluster_id: String,
    /// `RUST_LOG` for the sites.
    pub log_filter: String,
    /// Logs as JSON lines (`SWITCHBOARD_LOG_FORMAT=json`) instead of text.
    pub log_json: bool,
    /// How the first membership is formed.
    pub bootstrap: Bootstrap,
    /// Mutual TLS with a development CA made in `<dir>/certs` (else the
    /// sites run with `insecure = true`).
    pub tls: bool,
    /// How often sites look for changed certificate files.
    pub tls_reload_interval_ms: u64,
    /// Relay leases and tickets.
    pub relays: RelayTiming,
    /// Failure-domain labels per site id, added to its `datacenter=dc-N`.
    pub site_labels: BTreeMap<u64, BTreeMap<String, String>>,
    /// Sites that run somewhere other than this host's loopback (a network
    /// namespace of a test), by id; the rest bind 127.0.0.1.
    pub site_hosts: BTreeMap<u64, SiteHost>,
    /// Site names by id (default `site-N`).
    pub site_names: BTreeMap<u64, String>,
    /// What one caller may cost each site.
    pub limits: Limits,
}

/// Where a site runs when it is not on this host's loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteHost {
    /// The address it binds and advertises.
    pub ip: String,
    /// The command that runs the site there, before the binary
    /// (e.g. `ip netns exec <namespace>`).
    pub exec_prefix: Vec<String>,
}

/// The operator identity the launcher's clients use.
pub const LAUNCHER_ADMIN: &str = "operator";
/// A client identity made with the development CA.
pub const LAUNCHER_CLIENT: &str = "portal";

impl LaunchSpec {
    /// Three sites with LAN timing in `dir`, on free ports.
    pub fn new(binary: PathBuf, dir: PathBuf) -> Self {
        LaunchSpec {
            binary,
            dir,
            sites: 3,
            base_port: 0,
            timing: Timing::lan(),
            snapshots: Snapshots::default(),
            cluster_id: format!("dev-{:08x}", rand::random::<u32>()),
            log_filter: "info,openraft=warn".into(),
            log_json: false,
            bootstrap: Bootstrap::AdminApi,
            tls: true,
            tls_reload_interval_ms: 5_000,
            relays: RelayTiming::default(),
            site_labels: BTreeMap::new(),
            site_hosts: BTreeMap::new(),
            site_names: BTreeMap::new(),
            limits: Limits::default(),
        }
    }

    /// The address site `id` binds.
    fn ip_of(&self, id: u64) -> &str {
        self.site_hosts
            .get(&id)
            .map_or("127.0.0.1", |host| host.ip.as_str())
    }
}

/// One site of a local cluster.
pub struct LocalSite {
    pub id: u64,
    pub config_path: PathBuf,
    pub config: SiteConfig,
    pub log_path: PathBuf,
    pub report: ReadyReport,
    child: Option<Child>,
}

impl LocalSite {
    /// Whether its process is running (as far as the launcher knows).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A cluster of site processes. Dropping it kills them all.
pub struct LocalCluster {
    /// What was launched.
    pub spec: LaunchSpec,
    /// The running sites, by id.
    pub sites: BTreeMap<u64, LocalSite>,
    /// The development CA and certificates, when TLS is on.
    pub pki: Option<DevPki>,
}

fn port(base: u16, id: u64, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base + 10 * (id as u16 - 1) + offset
    }
}

impl LocalCluster {
    /// Starts `spec.sites` sites and initializes them as one cluster.
    pub async fn start(spec: LaunchSpec) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&spec.dir)
            .map_err(|e| NodeError::io(format!("creating {}", spec.dir.display()), e))?;
        let pki = if spec.tls {
            let mut identities: Vec<(Role, String)> = (1..=spec.sites)
                .map(|id| (Role::Site, id.to_string()))
                .collect();
            identities.push((Role::Admin, LAUNCHER_ADMIN.to_owned()));
            identities.push((Role::Client, LAUNCHER_CLIENT.to_owned()));
            let pki = DevPki::init(&spec.dir.join("certs"), &spec.cluster_id, &identities)
                .map_err(|e| {
                    NodeError::Launcher(format!("making development certificates: {e}"))
                })?;
            Some(pki)
        } else {
            None
        };
        let mut cluster = LocalCluster {
            spec,
            sites: BTreeMap::new(),
            pki,
        };
        let mut configs: Vec<SiteConfig> = (1..=cluster.spec.sites)
            .map(|id| cluster.new_config(id))
            .collect();
        if cluster.spec.bootstrap == Bootstrap::InitialSites {
            // Every site must know every address before any starts.
            for config in &mut configs {
                let ip = cluster.spec.ip_of(config.id).to_owned();
                config.raft_addr = format!("{ip}:{}", free_port()?);
                config.api_addr = format!("{ip}:{}", free_port()?);
                config.http_addr = format!("{ip}:{}", free_port()?);
            }
            let initial: Vec<InitialSite> = configs
                .iter()
                .map(|c| InitialSite {
                    id: c.id,
                    name: c.name.clone(),
                    raft_addr: c.raft_addr.clone(),
                    api_addr: c.api_addr.clone(),
                    http_addr: c.http_addr.clone(),
                    labels: c.labels.clone(),
                })
                .collect();
            for config in &mut configs {
                config.initial_sites = initial.clone();
            }
        }
        for config in configs {
            cluster.spawn_site(config)?;
        }
        for id in 1..=cluster.spec.sites {
            cluster.await_ready(id)?;
        }
        if cluster.spec.bootstrap == Bootstrap::AdminApi {
            let voters: Vec<pb::SiteEndpoints> = cluster
                .sites
                .values()
                .map(|site| endpoints_of(&site.report, &site.config))
                .collect();
            let first = cluster
                .sites
                .values()
                .next()
                .expect("at least one site")
                .report
                .api_addr
                .clone();
            cluster
                .client()?
                .initialize(&first, voters)
                .await
                .map_err(|e| NodeError::Launcher(format!("initializing the cluster: {e}")))?;
        }
        if cluster.spec.bootstrap != Bootstrap::Manual {
            cluster
                .wait_for_leader(cluster.spec.timing.failover_bound() * 10)
                .await?;
        }
        Ok(cluster)
    }

    fn site_dir(&self, id: u64) -> PathBuf {
        self.spec.dir.join(format!("site-{id}"))
    }

    fn new_config(&self, id: u64) -> SiteConfig {
        let base = self.spec.base_port;
        let ip = self.spec.ip_of(id);
        SiteConfig {
            id,
            name: self
                .spec
                .site_names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("site-{id}")),
            cluster_id: self.spec.cluster_id.clone(),
            data_dir: self.site_dir(id).join("data"),
            raft_addr: format!("{ip}:{}", port(base, id, 0)),
            api_addr: format!("{ip}:{}", port(base, id, 1)),
            http_addr: format!("{ip}:{}", port(base, id, 2)),
            advertise_host: None,
            labels: {
                let mut labels = BTreeMap::from([("datacenter".to_owned(), format!("dc-{id}"))]);
                labels.extend(self.spec.site_labels.get(&id).cloned().unwrap_or_default());
                labels
            },
            timing: self.spec.timing.clone(),
            snapshots: self.spec.snapshots.clone(),
            initial_sites: Vec::new(),
            tls: self.pki.as_ref().map(|pki| {
                let paths = pki.paths(Role::Site, &id.to_string());
                TlsConfig {
                    ca_file: pki.ca_path(),
                    cert_file: paths.cert,
                    key_file: paths.key,
                    token_key_file: Some(pki.token_key_path()),
                    reload_interval_ms: self.spec.tls_reload_interval_ms,
                }
            }),
            insecure: self.pki.is_none(),
            limits: self.spec.limits.clone(),
            state_key_file: self.state_key_path(),
            relays: self.spec.relays.clone(),
        }
    }

    /// Writes a config for a new site `id` and starts it (not yet a member).
    pub fn spawn_new_site(&mut self, id: u64) -> Result<(), NodeError> {
        if let Some(pki) = &self.pki
            && !pki.paths(Role::Site, &id.to_string()).cert.exists()
        {
            pki.issue(
                Role::Site,
                &id.to_string(),
                Validity::days(DEV_CERTIFICATE_DAYS),
            )
            .map_err(|e| NodeError::Launcher(format!("certificate for site {id}: {e}")))?;
        }
        let config = self.new_config(id);
        self.spawn_site(config)
    }

    /// Writes `config` into the site's directory and starts the site.
    fn spawn_site(&mut self, config: SiteConfig) -> Result<(), NodeError> {
        let id = config.id;
        let dir = self.site_dir(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| NodeError::io(format!("creating {}", dir.display()), e))?;
        let config_path = dir.join("site.toml");
        config.save(&config_path)?;
        let log_path = dir.join("site.log");
        let placeholder = ReadyReport {
            site_id: id,
            name: config.name.clone(),
            pid: 0,
            raft_addr: config.raft_addr.clone(),
            api_addr: config.api_addr.clone(),
            http_addr: config.http_addr.clone(),
        };
        let mut site = LocalSite {
            id,
            config_path,
            config,
            log_path,
            report: placeholder,
            child: None,
        };
        site.child = Some(self.spawn(&site)?);
        self.sites.insert(id, site);
        Ok(())
    }

    fn spawn(&self, site: &LocalSite) -> Result<Child, NodeError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&site.log_path)
            .map_err(|e| NodeError::io(format!("opening {}", site.log_path.display()), e))?;
        use std::os::unix::process::CommandExt;
        let mut command = match self.spec.site_hosts.get(&site.id) {
            Some(host) if !host.exec_prefix.is_empty() => {
                // `ip netns exec` execs the binary itself: the child's pid
                // is the site's, for signals.
                let mut command = Command::new(&host.exec_prefix[0]);
                command.args(&host.exec_prefix[1..]).arg(&self.spec.binary);
                command
            }
            _ => Command::new(&self.spec.binary),
        };
        crate::dev::orphans::stop_with_parent(&mut command)
            // Its own process group: a Ctrl-C at the launcher's terminal
            // reaches the launcher only, which then stops the sites in order.
            .process_group(0)
            .arg("serve")
            .arg("--config")
            .arg(&site.config_path)
            .env("RUST_LOG", &self.spec.log_filter)
            .env(
                "SWITCHBOARD_LOG_FORMAT",
                if self.spec.log_json { "json" } else { "human" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| NodeError::io(format!("starting {}", self.spec.binary.display()), e))
    }

    /// Whether any site still runs (`switchboard dev` ends once none does).
    pub fn any_running(&mut self) -> bool {
        self.sites.values_mut().any(|site| site.is_running())
    }

    /// Waits for site `id` to report ready; records its bound addresses in
    /// its config so a restart binds the same ports.
    fn await_ready(&mut self, id: u64) -> Result<(), NodeError> {
        let site = self
            .sites
            .get_mut(&id)
            .ok_or_else(|| NodeError::Launcher(format!("no site {id}")))?;
        let child = site
            .child
            .as_mut()
            .ok_or_else(|| NodeError::Launcher(format!("site {id} is not running")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| NodeError::Launcher(format!("site {id} has no stdout")))?;
        let log_path = site.log_path.clone();
        let (ready, ready_signal) = mpsc::channel();
        // The reader copies the site's stdout into its log for as long as it
        // runs, and passes the ready line on.
        std::thread::spawn(move || {
            let mut log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix(READY_PREFIX) {
                    let _ = ready.send(json.to_owned());
                }
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
            }
        });
        let json = ready_signal
            .recv_timeout(SITE_START_DEADLINE)
            .map_err(|_| {
                NodeError::Launcher(format!(
                    "site {id} did not report ready within {} s; {} ends:\n{}",
                    SITE_START_DEADLINE.as_secs(),
                    site.log_path.display(),
                    log_tail(&site.log_path)
                ))
            })?;
        let report: ReadyReport = serde_json::from_str(&json)
            .map_err(|e| NodeError::Launcher(format!("site {id} ready report: {e}")))?;
        site.config.raft_addr = report.raft_addr.clone();
        site.config.api_addr = report.api_addr.clone();
        site.config.http_addr = report.http_addr.clone();
        site.config.save(&site.config_path)?;
        site.report = report;
        Ok(())
    }

    /// A client that knows every site.
    pub fn client(&self) -> Result<ClusterClient, NodeError> {
        self.client_with(ClientSettings {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..ClientSettings::default()
        })
    }

    /// A client with given timing.
    pub fn client_with(&self, settings: ClientSettings) -> Result<ClusterClient, NodeError> {
        let endpoints = self
            .sites
            .values()
            .map(|site| site.report.api_addr.clone())
            .collect();
        ClusterClient::new(endpoints, settings, self.credentials(LAUNCHER_ADMIN)?)
            .map_err(|e| NodeError::Launcher(e.to_string()))
    }

    /// The state key sites share (made beside the certificates; for a
    /// plaintext cluster in `<dir>/state.key`).
    fn state_key_path(&self) -> Option<PathBuf> {
        if let Some(pki) = &self.pki {
            return Some(pki.state_key_path());
        }
        let path = self.spec.dir.join("state.key");
        if !path.exists() {
            let key: [u8; 32] = rand::random();
            switchboard_api::write_secret(&path, &hex_encode(&key)).ok()?;
        }
        Some(path)
    }

    /// Credentials of an admin (by name) made with the development CA.
    pub fn credentials(&self, admin: &str) -> Result<Credentials, NodeError> {
        let Some(pki) = &self.pki else {
            return Ok(Credentials::insecure());
        };
        let paths = pki.paths(Role::Admin, admin);
        Credentials::from_files(
            &self.spec.cluster_id,
            &pki.ca_path(),
            Some((&paths.cert, &paths.key)),
            None,
        )
        .map_err(|e| NodeError::Launcher(e.to_string()))
    }

    /// Waits until every running site agrees on one leader; returns it.
    pub async fn wait_for_leader(&self, deadline: Duration) -> Result<u64, NodeError> {
        let client = self.client()?;
        let until = Instant::now() + deadline;
        loop {
            let statuses = client.status_all().await;
            let leaders: Vec<u64> = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .map(|s| s.leader_id)
                .collect();
            if let Some(&leader) = leaders.first()
                && leader != 0
                && leaders.iter().all(|&l| l == leader)
                && statuses.iter().any(|(_, s)| {
                    s.as_ref()
                        .is_ok_and(|s| s.site_id == leader && s.role == "leader")
                })
            {
                return Ok(leader);
            }
            if Instant::now() >= until {
                return Err(NodeError::Launcher(format!(
                    "no agreed leader within {} ms",
                    deadline.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9` a site.
    pub fn kill(&mut self, id: u64) -> Result<(), NodeError> {
        let site = self
            .sites
            .get_mut(&id)
            .ok_or_else(|| NodeError::Launcher(format!("no site {id}")))?;
        if let Some(mut child) = site.child.take() {
            child
                .kill()
                .map_err(|e| NodeError::io(format!("killing site {id}"), e))?;
            let _ = child.wait();
        }
        Ok(())
    }

    /// SIGTERM a site and wait for it to exit; returns its exit status.
    pub fn terminate(&mut self, id: u64) -> Result<std::process::ExitStatus, NodeError> {
        let site = self
            .sites
            .get_mut(&id)
            .ok_or_else(|| NodeError::Launcher(format!("no site {id}")))?;
        let mut child = site
            .child
            .take()
            .ok_or_else(|| NodeError::Launcher(format!("site {id} is not running")))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)
            .map_err(|e| NodeError::Launcher(format!("SIGTERM: {e}")))?;
        let until = Instant::now() + SITE_STOP_DEADLINE;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| NodeError::io("waiting for a site", e))?
            {
                return Ok(status);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NodeError::Launcher(format!(
                    "site {id} did not exit within {} s of SIGTERM",
                    SITE_STOP_DEADLINE.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a stopped site again with its config (same data dir, same ports).
    pub fn restart(&mut self, id: u64) -> Result<(), NodeError> {
        let child = {
            let site = self
                .sites
                .get(&id)
                .ok_or_else(|| NodeError::Launcher(format!("no site {id}")))?;
            if site.child.is_some() {
                return Err(NodeError::Launcher(format!("site {id} is still running")));
            }
            self.spawn(site)?
        };
        self.sites.get_mut(&id).expect("looked up above").child = Some(child);
        self.await_ready(id)
    }

    /// Starts a new site process with the next free id (not yet a member).
    pub fn spawn_additional_site(&mut self) -> Result<u64, NodeError> {
        let id = self.sites.keys().max().copied().unwrap_or(0) + 1;
        self.spawn_new_site(id)?;
        self.await_ready(id)?;
        Ok(id)
    }

    /// The admin-API description of a site, for add-learner.
    pub fn endpoints(&self, id: u64) -> Option<pb::SiteEndpoints> {
        self.sites
            .get(&id)
            .map(|site| endpoints_of(&site.report, &site.config))
    }

    /// The cluster file for this cluster.
    pub fn cluster_file(&self) -> ClusterFile {
        ClusterFile {
            cluster_id: self.spec.cluster_id.clone(),
            sites: self
                .sites
                .values()
                .map(|site| ClusterSite {
                    id: site.id,
                    name: site.config.name.clone(),
                    pid: site.pid(),
                    api: site.report.api_addr.clone(),
                    raft: site.report.raft_addr.clone(),
                    http: site.report.http_addr.clone(),
                    data_dir: Some(site.config.data_dir.display().to_string()),
                    config: Some(site.config_path.display().to_string()),
                })
                .collect(),
            tls: self.pki.as_ref().map(|pki| {
                let admin = pki.paths(Role::Admin, LAUNCHER_ADMIN);
                ClusterTls {
                    ca: pki.ca_path().display().to_string(),
                    cert: Some(admin.cert.display().to_string()),
                    key: Some(admin.key.display().to_string()),
                }
            }),
        }
    }

    /// Stops every site with SIGTERM, all at once, and waits for them.
    pub fn stop_all(&mut self) {
        let mut children: Vec<(u64, Child)> = self
            .sites
            .values_mut()
            .filter_map(|site| site.child.take().map(|child| (site.id, child)))
            .collect();
        for (_, child) in &children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let until = Instant::now() + SITE_STOP_DEADLINE;
        for (id, child) in &mut children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= until => {
                        tracing::warn!(
                            "site {id} did not stop within {} s; killing it",
                            SITE_STOP_DEADLINE.as_secs()
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// The data dir root.
    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }
}

fn endpoints_of(report: &ReadyReport, config: &SiteConfig) -> pb::SiteEndpoints {
    pb::SiteEndpoints {
        site_id: report.site_id,
        name: report.name.clone(),
        raft_addr: report.raft_addr.clone(),
        api_addr: report.api_addr.clone(),
        http_addr: report.http_addr.clone(),
        labels: config.labels.clone().into_iter().collect(),
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for site in self.sites.values_mut() {
            if let Some(mut child) = site.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Lines of a site's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
