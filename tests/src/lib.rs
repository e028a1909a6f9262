//! The multi-process cluster harness for Switchboard's integration tests.
//!
//! Every test cluster is real: `switchboard serve` processes with their own
//! RocksDB data dirs in a fresh temp dir, talking gRPC over loopback sockets
//! on ports they pick themselves. Tests that start clusters run one at a
//! time (a process-wide lock), and everything is killed and deleted when the
//! cluster is dropped.

pub mod checker;
pub mod delay_proxy;
pub mod history;
pub mod load;
pub mod lossy_fs;
pub mod nemesis;
pub mod netns;
pub mod watchers;

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::Credentials;
pub use switchboard_api::DevPki;
pub use switchboard_api::Role;
pub use switchboard_api::Validity;
pub use switchboard_node::RelayTiming;
pub use switchboard_node::Snapshots;
pub use switchboard_node::Timing;
pub use switchboard_node::local::Bootstrap;
use switchboard_node::local::LaunchSpec;
pub use switchboard_node::local::LocalCluster;
pub use switchboard_node::local::SiteHost;
use switchboard_proto::v1 as pb;

/// Held for the life of a test cluster: multi-process tests run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The directory that holds the workspace's built binaries.
pub fn binary_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SWITCHBOARD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // A test binary sits in target/<profile>/deps, any other binary (a
    // benchmark) in target/<profile>, next to `switchboard` and `sbctl`.
    let exe = std::env::current_exe().expect("a program knows its own path");
    let dir = exe.parent().expect("a binary is in a directory");
    if dir.ends_with("deps") {
        dir.parent()
            .expect("deps is inside the profile directory")
            .to_owned()
    } else {
        dir.to_owned()
    }
}

/// The path of a workspace binary, checked to exist.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins), or set SWITCHBOARD_BIN_DIR",
        path.display()
    );
    path
}

/// Waits for this test's turn to run site processes; hold the guard for
/// the test's life.
pub async fn one_cluster_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME.lock().await
}

/// A cluster for one test; killed and deleted on drop.
pub struct TestCluster {
    pub cluster: LocalCluster,
    // Dropped after `cluster`, whose drop kills the processes; `None` when
    // the test gave its own directory.
    _dir: Option<tempfile::TempDir>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// How to start a test cluster.
pub struct TestSpec {
    pub sites: u64,
    pub timing: Timing,
    pub snapshots: Snapshots,
    pub bootstrap: Bootstrap,
    /// How often sites look for changed certificate files.
    pub tls_reload_interval_ms: u64,
    /// Relay leases and tickets.
    pub relays: RelayTiming,
    /// Failure-domain labels per site id.
    pub site_labels: std::collections::BTreeMap<u64, std::collections::BTreeMap<String, String>>,
    /// Sites placed in network namespaces (`netns::Network::site_hosts`).
    pub site_hosts: std::collections::BTreeMap<u64, SiteHost>,
    /// Site names by id (default `site-N`).
    pub site_names: std::collections::BTreeMap<u64, String>,
    /// Where the sites keep their data (`<dir>/site-N/data`), when the test
    /// prepares it (mounts a lossy filesystem there, say); else a fresh
    /// temp dir.
    pub dir: Option<PathBuf>,
    /// What one caller may cost each site.
    pub limits: switchboard_node::Limits,
    /// Sites log JSON lines instead of text.
    pub log_json: bool,
    /// `RUST_LOG` of the sites: info for tests (their logs explain a
    /// failure); benches run at warn, as they run etcd.
    pub log_filter: String,
}

/// `RUST_LOG` of a test's sites: info, so their logs explain a failure.
pub const TEST_LOG_FILTER: &str = "info,openraft=warn";

/// Set, a test cluster's temp dir (each site's data and `site.log`) is
/// kept after the test and its path printed: for reading a failure.
pub const KEEP_DIRS_VAR: &str = "SWITCHBOARD_TEST_KEEP_DIRS";

/// Set, the sites' `RUST_LOG` instead of the test's own filter (say
/// `info,openraft=info` to see votes).
pub const LOG_FILTER_VAR: &str = "SWITCHBOARD_TEST_LOG";

impl Default for TestSpec {
    fn default() -> Self {
        TestSpec {
            sites: 3,
            timing: Timing::lan(),
            snapshots: Snapshots::default(),
            bootstrap: Bootstrap::AdminApi,
            tls_reload_interval_ms: 5_000,
            // Tests that do not exercise leases register relays that never
            // heartbeat: a long lease keeps them up for the whole test.
            relays: RelayTiming {
                lease_ttl_ms: 600_000,
                ..RelayTiming::default()
            },
            site_labels: Default::default(),
            site_hosts: Default::default(),
            site_names: Default::default(),
            dir: None,
            limits: switchboard_node::Limits::default(),
            log_json: false,
            log_filter: TEST_LOG_FILTER.into(),
        }
    }
}

impl TestCluster {
    /// Starts three sites with LAN timing.
    pub async fn start() -> Self {
        Self::start_with(TestSpec::default()).await
    }

    /// Starts a cluster as specified.
    pub async fn start_with(spec: TestSpec) -> Self {
        let turn = one_cluster_at_a_time().await;
        let (dir, path) = match spec.dir {
            Some(path) => (None, path),
            None => {
                let mut dir = tempfile::Builder::new()
                    .prefix("switchboard-test-")
                    .tempdir()
                    .expect("temp dir");
                let path = dir.path().to_owned();
                if std::env::var_os(KEEP_DIRS_VAR).is_some() {
                    dir.disable_cleanup(true);
                    eprintln!(
                        "{KEEP_DIRS_VAR}: the sites' dirs and logs stay in {}",
                        path.display()
                    );
                }
                (Some(dir), path)
            }
        };
        let mut launch = LaunchSpec::new(binary("switchboard"), path);
        launch.sites = spec.sites;
        launch.timing = spec.timing;
        launch.snapshots = spec.snapshots;
        launch.bootstrap = spec.bootstrap;
        launch.tls_reload_interval_ms = spec.tls_reload_interval_ms;
        launch.relays = spec.relays;
        launch.site_labels = spec.site_labels;
        launch.site_hosts = spec.site_hosts;
        launch.site_names = spec.site_names;
        launch.limits = spec.limits;
        launch.log_filter = std::env::var(LOG_FILTER_VAR).unwrap_or(spec.log_filter);
        launch.log_json = spec.log_json;
        let cluster = LocalCluster::start(launch)
            .await
            .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
        TestCluster {
            cluster,
            _dir: dir,
            _turn: turn,
        }
    }

    /// The timing the sites run with.
    pub fn timing(&self) -> &Timing {
        &self.cluster.spec.timing
    }

    /// A client that knows every site, retrying fast.
    pub fn client(&self) -> ClusterClient {
        self.cluster.client().expect("client")
    }

    /// A client of every site that tries site `first` before the others.
    pub fn client_preferring(&self, first: u64) -> ClusterClient {
        let mut endpoints = vec![self.api(first)];
        endpoints.extend(
            self.cluster
                .sites
                .iter()
                .filter(|(id, _)| **id != first)
                .map(|(_, site)| site.report.api_addr.clone()),
        );
        let settings = ClientSettings {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..ClientSettings::default()
        };
        let credentials = self
            .cluster
            .credentials(switchboard_node::local::LAUNCHER_ADMIN)
            .expect("admin credentials");
        ClusterClient::new(endpoints, settings, credentials).expect("client")
    }

    /// A client that talks to one site only and never retries elsewhere.
    pub fn site_client(&self, id: u64) -> ClusterClient {
        self.site_client_with_deadline(id, Duration::from_secs(5))
    }

    /// A client of one site that gives up after `deadline`.
    pub fn site_client_with_deadline(&self, id: u64, deadline: Duration) -> ClusterClient {
        let endpoint = self.cluster.sites[&id].report.api_addr.clone();
        let settings = ClientSettings {
            call_deadline: deadline,
            attempt_timeout: deadline,
            backoff_initial: Duration::from_millis(20),
            ..ClientSettings::default()
        };
        let credentials = self
            .cluster
            .credentials(switchboard_node::local::LAUNCHER_ADMIN)
            .expect("admin credentials");
        ClusterClient::new(vec![endpoint], settings, credentials).expect("client")
    }

    /// The development CA and certificates of this cluster.
    pub fn pki(&self) -> &DevPki {
        self.cluster
            .pki
            .as_ref()
            .expect("test clusters run with TLS")
    }

    /// Credentials of `role`/`id`, issuing its certificate on first use.
    pub fn credentials_of(&self, role: Role, id: &str) -> Credentials {
        let pki = self.pki();
        let paths = pki.paths(role, id);
        if !paths.cert.exists() {
            pki.issue(role, id, Validity::days(1))
                .expect("issue a certificate");
        }
        Credentials::from_files(
            &self.cluster.spec.cluster_id,
            &pki.ca_path(),
            Some((&paths.cert, &paths.key)),
            None,
        )
        .expect("credentials")
    }

    /// Credentials with a bearer token and no client certificate.
    pub fn token_credentials(&self, token: &str) -> Credentials {
        Credentials::from_files(
            &self.cluster.spec.cluster_id,
            &self.pki().ca_path(),
            None,
            Some(token.to_owned()),
        )
        .expect("credentials")
    }

    /// A client of every site with the given credentials, giving up quickly.
    pub fn client_with(&self, credentials: Credentials) -> ClusterClient {
        let endpoints = self
            .cluster
            .sites
            .values()
            .map(|site| site.report.api_addr.clone())
            .collect();
        let settings = ClientSettings {
            call_deadline: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(20),
            ..ClientSettings::default()
        };
        ClusterClient::new(endpoints, settings, credentials).expect("client")
    }

    /// A client of every site that keeps node info (trust on first use over
    /// TLS), with admin credentials.
    pub fn directory_client(&self) -> std::sync::Arc<ClusterClient> {
        let endpoints: Vec<String> = self
            .cluster
            .sites
            .values()
            .map(|site| site.report.api_addr.clone())
            .collect();
        let directory = std::sync::Arc::new(switchboard_api::Directory::new(
            self.cluster_id(),
            endpoints,
            Vec::new(),
            None,
        ));
        std::sync::Arc::new(self.client().with_directory(directory))
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster.spec.cluster_id
    }

    /// The API address of a site.
    pub fn api(&self, id: u64) -> String {
        self.cluster.sites[&id].report.api_addr.clone()
    }

    /// The current leader, once every running site agrees.
    pub async fn leader(&self) -> u64 {
        self.cluster
            .wait_for_leader(self.timing().failover_bound() * 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The leader once every site of `sites` names it, it is one of them
    /// and it says it leads; the other sites may be cut off or down.
    pub async fn leader_among(&self, sites: &[u64]) -> u64 {
        let deadline = self.timing().failover_bound() * 4;
        let until = Instant::now() + deadline;
        loop {
            let mut named = Vec::new();
            for &id in sites {
                let status = self.site_client_with_deadline(id, Duration::from_millis(500));
                if let Ok(status) = status.status_of(&self.api(id)).await {
                    named.push((id, status.leader_id, status.role));
                }
            }
            if let Some(&(_, leader, _)) = named.first()
                && named.len() == sites.len()
                && sites.contains(&leader)
                && named.iter().all(|(_, l, _)| *l == leader)
                && named
                    .iter()
                    .any(|(id, _, role)| *id == leader && role == "leader")
            {
                return leader;
            }
            assert!(
                Instant::now() < until,
                "sites {sites:?} agreed on no leader among them within {} ms: {named:?}",
                deadline.as_millis()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One site's status.
    pub async fn status(&self, id: u64) -> pb::StatusResponse {
        self.site_client(id)
            .status_of(&self.api(id))
            .await
            .unwrap_or_else(|e| panic!("status of site {id}: {e}"))
    }

    /// Waits until the leader `leader` reports site `site` unhealthy (it
    /// stopped acknowledging), within a bound from the configured timing.
    pub async fn wait_unhealthy(&self, leader: u64, site: u64) {
        wait_until(
            self.timing().failover_bound() * 4,
            &format!("leader {leader} sees site {site} as unhealthy"),
            || async move {
                self.status(leader)
                    .await
                    .members
                    .iter()
                    .any(|m| m.site_id == site && m.healthy == Some(false))
            },
        )
        .await;
    }

    /// Waits until site `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, deadline: Duration) {
        let what = format!("site {id} applies index {index}");
        self.wait_status(id, deadline, &what, |s| s.applied_index >= index)
            .await;
    }

    /// Waits until site `id`'s status satisfies `condition`, within
    /// `deadline`; a status it does not give counts as not yet.
    pub async fn wait_status(
        &self,
        id: u64,
        deadline: Duration,
        what: &str,
        condition: impl Fn(&pb::StatusResponse) -> bool,
    ) {
        let client = self.site_client(id);
        let api = self.api(id);
        let condition = &condition;
        wait_until(deadline, what, || {
            let client = &client;
            let api = &api;
            async move { client.status_of(api).await.is_ok_and(|s| condition(&s)) }
        })
        .await;
    }
}

impl TestCluster {
    /// Writes the cluster's cluster.json (sites, TLS files) for sbctl and
    /// returns its path; call again after sites change.
    pub fn cluster_json(&self) -> PathBuf {
        let path = self.cluster.dir().join("cluster.json");
        self.cluster
            .cluster_file()
            .save(&path)
            .expect("write cluster.json");
        path
    }
}

/// Runs sbctl against the cluster in `cluster_json`, without blocking the
/// test's runtime (other tasks keep sampling meanwhile).
pub async fn sbctl(cluster_json: &std::path::Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(binary("sbctl"))
        .arg("--cluster")
        .arg(cluster_json)
        .args(args)
        .output()
        .await
        .expect("run sbctl")
}

/// sbctl's output as text, for assertion messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs sbctl with `--json`, insists it succeeded, and parses its output.
pub async fn sbctl_json(cluster_json: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let output = sbctl(cluster_json, &with_json).await;
    assert!(
        output.status.success(),
        "sbctl {args:?} failed: {}{}",
        text(&output.stderr),
        text(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "sbctl {args:?} printed no JSON ({e}): {}",
            text(&output.stdout)
        )
    })
}

/// Three sites with `timing`, each site's raft port behind a proxy that
/// delays every byte `one_way` each way (this kernel has no netem), the
/// cluster initialized with the proxies' addresses so that every message
/// between sites crosses a WAN. The proxies, by site, stop when dropped.
pub async fn wan_cluster(
    timing: Timing,
    one_way: Duration,
    log_filter: &str,
) -> (
    TestCluster,
    std::collections::BTreeMap<u64, delay_proxy::DelayProxy>,
) {
    let cluster = TestCluster::start_with(TestSpec {
        bootstrap: Bootstrap::Manual,
        timing,
        log_filter: log_filter.to_owned(),
        ..TestSpec::default()
    })
    .await;
    let mut proxies = std::collections::BTreeMap::new();
    let mut voters: Vec<pb::SiteEndpoints> = Vec::new();
    for (id, site) in &cluster.cluster.sites {
        let target: std::net::SocketAddr = site.report.raft_addr.parse().expect("a socket address");
        let proxy = delay_proxy::DelayProxy::start(target, one_way)
            .await
            .expect("a delaying proxy");
        let mut endpoints = cluster.cluster.endpoints(*id).expect("endpoints");
        endpoints.raft_addr = proxy.addr.to_string();
        voters.push(endpoints);
        proxies.insert(*id, proxy);
    }
    cluster
        .client()
        .initialize(&cluster.api(1), voters)
        .await
        .expect("initialize");
    (cluster, proxies)
}

/// GETs `path` from a site's HTTP plane; the whole response, status line first.
pub async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("answer within 5 s")
        .expect("read");
    response
}

/// GETs `path` from a site's HTTP plane until the answer shows every one of
/// `wanted`, within `within`; that answer. Fails naming what is missing.
pub async fn page_showing(addr: &str, path: &str, wanted: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let page = http_get(addr, path).await;
        let missing: Vec<&&str> = wanted.iter().filter(|w| !page.contains(**w)).collect();
        if missing.is_empty() {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}{path} lacks {missing:?} after {within:?}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets the service `notice` and schedules a maintenance window of
/// `target` (`relay:ID` or `site:ID`) starting `in_ms` from now for
/// `length_ms`, as an operator announcing work would.
pub async fn announce(
    admin: &ClusterClient,
    notice: &str,
    target: &str,
    (in_ms, length_ms): (u64, u64),
    reason: &str,
) {
    admin
        .set_notice(&switchboard_api::new_request_id(), notice)
        .await
        .expect("notice");
    let start = switchboard_node::unix_ms() + in_ms;
    admin
        .schedule_maintenance(target, start, start + length_ms, reason)
        .await
        .expect("window");
}

/// Waits until the cluster has a signing key (within 20 s), and returns
/// its node info.
pub async fn signed_node_info(client: &ClusterClient) -> pb::SignedNodeInfo {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.refresh_node_info().await
            && let Some(node_info) = response.node_info
        {
            return node_info;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster made no signing key within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `deadline`.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < until,
            "timed out after {} ms waiting until {what}",
            deadline.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The median of some durations.
pub fn median(mut values: Vec<Duration>) -> Duration {
    assert!(!values.is_empty(), "median of nothing");
    values.sort();
    values[values.len() / 2]
}

/// A process's resident memory, in bytes (`/proc/<pid>/status`).
pub fn process_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A process's open files (`/proc/<pid>/fd`).
pub fn process_open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}
