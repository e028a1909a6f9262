//! `switchboard sim`: relays, hosts and clients against a real cluster, as
//! the data plane would behave, reporting what each saw.
//!
//! - A relay registers, heartbeats at the interval the cluster asks for,
//!   watches its own routes and admits hosts and clients offline through
//!   [`Admission`] (tickets checked with the keys node info taught it).
//! - A host attaches, watches its route, and on every change "connects" to
//!   its new relay, which admits it only at the current generation.
//! - A client resolves a host, takes the ticket, and presents it to the
//!   host's relay.
//!
//! The same pieces serve `switchboard dev` (so the demo's relays keep their
//! leases) and the integration tests.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use crate::site::unix_ms;
use serde::Serialize;
use switchboard_api::Admission;
use switchboard_api::ClusterClient;
use switchboard_api::Followed;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;
use tokio::sync::watch;

use crate::error::NodeError;

/// Pause before a relay or host retries a failed call or a broken watch.
pub const SIM_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Relays known to the simulation, by id (for hosts and clients to "connect").
#[derive(Default, Clone)]
pub struct RelayBook {
    relays: Arc<Mutex<HashMap<String, Arc<Admission>>>>,
}

impl RelayBook {
    fn insert(&self, relay_id: &str, admission: Arc<Admission>) {
        self.relays.lock().insert(relay_id.to_owned(), admission);
    }

    /// The admission of a relay, if it runs in this simulation.
    pub fn get(&self, relay_id: &str) -> Option<Arc<Admission>> {
        self.relays.lock().get(relay_id).cloned()
    }
}

/// Counters of a simulated relay.
#[derive(Default, Debug)]
pub struct RelayCounters {
    pub heartbeats_acknowledged: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub watch_resyncs: AtomicU64,
    /// When the last acknowledged heartbeat was sent: a lease that ran out
    /// began after this.
    pub last_acknowledged_sent_at: Mutex<Option<Instant>>,
    /// What the route watch did, for a test that finds the relay behind:
    /// each site it was on and when it got there, and when it last heard
    /// a change (not a progress heartbeat).
    pub watch_trail: Mutex<WatchTrail>,
}

/// Where a relay's route watch has been.
#[derive(Default, Debug)]
pub struct WatchTrail {
    /// Each site the watch was on, in order, with when it was first heard
    /// from there. Bounded to `WATCH_TRAIL_SITES_MAX`.
    pub sites: Vec<(String, Instant)>,
    /// When the watch last delivered a change.
    pub last_change_at: Option<Instant>,
}

/// Sites kept in a relay's watch trail: a test's failover moves a watch a
/// few times; more is a watch going round in circles, and the first ones
/// say where it started.
pub const WATCH_TRAIL_SITES_MAX: usize = 32;

impl WatchTrail {
    fn heard(&mut self, site: Option<&str>, change: bool) {
        let now = Instant::now();
        if let Some(site) = site
            && self.sites.last().is_none_or(|(last, _)| last != site)
            && self.sites.len() < WATCH_TRAIL_SITES_MAX
        {
            self.sites.push((site.to_owned(), now));
        }
        if change {
            self.last_change_at = Some(now);
        }
    }
}

/// A simulated relay.
pub struct SimRelay {
    /// Its id.
    pub relay_id: String,
    /// Chosen at start, as a restarted relay process would.
    pub incarnation: u64,
    /// The offline ticket check, keeping node info current.
    pub admission: Arc<Admission>,
    /// What it saw.
    pub counters: Arc<RelayCounters>,
    stop: watch::Sender<bool>,
}

impl SimRelay {
    /// Registers and starts heartbeating and watching.
    pub async fn start(
        client: Arc<ClusterClient>,
        book: &RelayBook,
        relay_id: &str,
        region: &str,
        capacity: u32,
    ) -> Result<Self, NodeError> {
        let incarnation = unix_ms();
        let registration = pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
            endpoint: format!("{relay_id}.sim.invalid:443"),
            region: region.to_owned(),
            labels: Default::default(),
            capacity,
            incarnation,
        };
        client
            .register_relay(registration)
            .await
            .map_err(|e| NodeError::Launcher(format!("registering {relay_id}: {e}")))?;
        let trust = client.directory().map(|d| d.trust()).unwrap_or_default();
        let admission = Arc::new(Admission::new(relay_id, trust));
        book.insert(relay_id, admission.clone());
        let counters = Arc::new(RelayCounters::default());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(heartbeat_loop(
            client.clone(),
            relay_id.to_owned(),
            incarnation,
            admission.clone(),
            counters.clone(),
            stopped.clone(),
        ));
        tokio::spawn(relay_watch_loop(
            client,
            relay_id.to_owned(),
            admission.clone(),
            counters.clone(),
            stopped,
        ));
        Ok(SimRelay {
            relay_id: relay_id.to_owned(),
            incarnation,
            admission,
            counters,
            stop,
        })
    }

    /// Stops heartbeating and watching: to the cluster, the relay died.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn heartbeat_loop(
    client: Arc<ClusterClient>,
    relay_id: String,
    incarnation: u64,
    admission: Arc<Admission>,
    counters: Arc<RelayCounters>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let sessions = admission.hosts() as u32;
        let sent_at = Instant::now();
        let interval = match client.heartbeat(&relay_id, incarnation, sessions).await {
            Ok(response) => {
                counters
                    .heartbeats_acknowledged
                    .fetch_add(1, Ordering::Relaxed);
                *counters.last_acknowledged_sent_at.lock() = Some(sent_at);
                admission.heartbeat_acknowledged(
                    Instant::now(),
                    Duration::from_millis(response.lease_ttl_ms),
                );
                if let Some(directory) = client.directory() {
                    admission.set_trust(directory.trust());
                }
                Duration::from_millis(response.heartbeat_interval_ms.max(10))
            }
            Err(error) => {
                counters.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(relay = %relay_id, %error, "heartbeat failed");
                SIM_RETRY_PAUSE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn relay_watch_loop(
    client: Arc<ClusterClient>,
    relay_id: String,
    admission: Arc<Admission>,
    counters: Arc<RelayCounters>,
    mut stopped: watch::Receiver<bool>,
) {
    // The follower moves between sites by itself; it ends only on a final
    // refusal (the relay was removed, say).
    let mut routes = client.follow_relay_routes(&relay_id);
    loop {
        let followed = tokio::select! {
            followed = routes.next() => followed,
            _ = stopped.changed() => return,
        };
        let change = matches!(&followed, Ok(Followed::Event(event)) if !event.host_id.is_empty());
        counters.watch_trail.lock().heard(routes.site(), change);
        match followed {
            Ok(Followed::Restarted) => {
                counters.watch_resyncs.fetch_add(1, Ordering::Relaxed);
                admission.clear_routes();
            }
            Ok(Followed::Event(event)) if event.host_id.is_empty() => {}
            Ok(Followed::Event(event)) if event.attached => {
                admission.route_attached(&event.host_id, event.generation);
            }
            Ok(Followed::Event(event)) => admission.route_detached(&event.host_id),
            Err(error) => {
                tracing::warn!(relay = %relay_id, %error, "the relay watch was refused");
                return;
            }
        }
    }
}

/// What a simulated host knows and saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostView {
    pub relay_id: String,
    pub generation: u64,
    /// Route changes seen through the watch.
    pub moves: u64,
    /// Times its relay admitted it at the new generation.
    pub admitted: u64,
    /// Times its relay refused it.
    pub refused: u64,
    #[serde(skip)]
    pub changed_at: Option<Instant>,
}

/// A simulated host.
pub struct SimHost {
    /// Its id.
    pub host_id: String,
    /// Its route as it last heard it.
    pub view: Arc<Mutex<HostView>>,
    stop: watch::Sender<bool>,
}

impl SimHost {
    /// Attaches and watches the route.
    pub async fn start(
        client: Arc<ClusterClient>,
        book: RelayBook,
        host_id: &str,
        region: &str,
    ) -> Result<Self, NodeError> {
        let attached = client
            .attach(&new_request_id(), host_id, region)
            .await
            .map_err(|e| NodeError::Launcher(format!("attaching {host_id}: {e}")))?;
        let route = attached.route.unwrap_or_default();
        let view = Arc::new(Mutex::new(HostView {
            relay_id: route.relay_id,
            generation: route.generation,
            changed_at: Some(Instant::now()),
            ..HostView::default()
        }));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(host_watch_loop(
            client,
            book,
            host_id.to_owned(),
            view.clone(),
            stopped,
        ));
        Ok(SimHost {
            host_id: host_id.to_owned(),
            view,
            stop,
        })
    }

    /// Stops watching.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn host_watch_loop(
    client: Arc<ClusterClient>,
    book: RelayBook,
    host_id: String,
    view: Arc<Mutex<HostView>>,
    mut stopped: watch::Receiver<bool>,
) {
    let connect_window = client.settings().watch_failover_bound() + HOST_CONNECT_SLACK;
    let mut route_watch = client.follow_route(&host_id);
    loop {
        let followed = tokio::select! {
            followed = route_watch.next() => followed,
            _ = stopped.changed() => return,
        };
        let event = match followed {
            Ok(Followed::Event(event)) => event,
            Ok(Followed::Restarted) => continue,
            Err(error) => {
                tracing::warn!(host = %host_id, %error, "the route watch was refused");
                return;
            }
        };
        let Some(route) = event.route else { continue };
        {
            let mut view = view.lock();
            if route.generation != view.generation {
                view.moves += 1;
                view.changed_at = Some(Instant::now());
            }
            view.relay_id = route.relay_id.clone();
            view.generation = route.generation;
        }
        let admitted = connect(
            &book,
            &host_id,
            &route.relay_id,
            route.generation,
            connect_window,
        )
        .await;
        let mut view = view.lock();
        match admitted {
            Some(true) => view.admitted += 1,
            Some(false) => view.refused += 1,
            None => {}
        }
    }
}

/// How long a host keeps trying a relay that does not know its route yet,
/// beyond the time the relay's watch may take to move off a failed site
/// (`ClientSettings::watch_failover_bound`): the relay's own watch lags the
/// host's by a moment even when no site fails.
pub const HOST_CONNECT_SLACK: Duration = Duration::from_secs(1);

/// A host "connects" to its relay: admitted at its generation, retried for
/// `window`. `None` when the relay is not simulated here.
async fn connect(
    book: &RelayBook,
    host_id: &str,
    relay_id: &str,
    generation: u64,
    window: Duration,
) -> Option<bool> {
    let relay = book.get(relay_id)?;
    let until = Instant::now() + window;
    loop {
        if relay.admit_host(host_id, generation).is_ok() {
            return Some(true);
        }
        if Instant::now() >= until {
            return Some(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What simulated clients saw.
#[derive(Default, Debug)]
pub struct ClientCounters {
    pub resolves: AtomicU64,
    pub admitted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
}

/// Runs `count` clients that resolve random hosts and present tickets,
/// until stopped.
pub fn start_clients(
    client: Arc<ClusterClient>,
    book: RelayBook,
    hosts: Vec<String>,
    count: usize,
    pause: Duration,
) -> (Arc<ClientCounters>, watch::Sender<bool>) {
    let counters = Arc::new(ClientCounters::default());
    let (stop, stopped) = watch::channel(false);
    for _ in 0..count {
        let (client, book, hosts, counters, mut stopped) = (
            client.clone(),
            book.clone(),
            hosts.clone(),
            counters.clone(),
            stopped.clone(),
        );
        tokio::spawn(async move {
            while !hosts.is_empty() {
                let host = &hosts[rand::random_range(0..hosts.len())];
                match client.resolve(host, pb::Consistency::Local, 0).await {
                    Ok(response) => {
                        counters.resolves.fetch_add(1, Ordering::Relaxed);
                        let (Some(route), Some(ticket)) = (response.route, response.ticket) else {
                            continue;
                        };
                        match book.get(&route.relay_id).map(|relay| {
                            relay.admit_client(
                                &ticket.body,
                                &ticket.signature,
                                Instant::now(),
                                unix_ms(),
                            )
                        }) {
                            Some(Ok(_)) => counters.admitted.fetch_add(1, Ordering::Relaxed),
                            Some(Err(_)) => counters.refused.fetch_add(1, Ordering::Relaxed),
                            None => 0,
                        };
                    }
                    Err(_) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
    }
    (counters, stop)
}

/// What `switchboard sim` runs.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Relays to run.
    pub relays: u32,
    /// Relay ids are this prefix and a number.
    pub relay_prefix: String,
    /// Hosts to run.
    pub hosts: u32,
    /// Host ids are this prefix and a number.
    pub host_prefix: String,
    /// Clients resolving hosts and connecting through their relays.
    pub clients: usize,
    /// Regions handed to relays and hosts in turn.
    pub regions: Vec<String>,
    /// Hosts each relay may carry.
    pub relay_capacity: u32,
    /// Print a report this often.
    pub report_every: Duration,
}

/// The simulation's report.
#[derive(Debug, Serialize)]
pub struct SimReport {
    pub relays: BTreeMap<String, RelayReport>,
    pub hosts: usize,
    pub host_moves: u64,
    pub host_admissions: u64,
    pub host_refusals: u64,
    pub client_resolves: u64,
    pub client_admissions: u64,
    pub client_refusals: u64,
    pub client_failures: u64,
}

#[derive(Debug, Serialize)]
pub struct RelayReport {
    pub hosts: usize,
    pub heartbeats_acknowledged: u64,
    pub heartbeats_failed: u64,
    pub lease_holds: bool,
}

/// A running simulation.
pub struct Simulation {
    pub relays: Vec<SimRelay>,
    pub hosts: Vec<SimHost>,
    client_counters: Arc<ClientCounters>,
    clients_stop: watch::Sender<bool>,
}

impl Simulation {
    /// Starts relays, then hosts, then clients.
    pub async fn start(
        client: Arc<ClusterClient>,
        options: &SimOptions,
    ) -> Result<Self, NodeError> {
        if client.directory().is_some() {
            let _ = client.refresh_node_info().await;
        }
        let book = RelayBook::default();
        let region = |n: u32| {
            options
                .regions
                .get(n as usize % options.regions.len().max(1))
                .cloned()
                .unwrap_or_default()
        };
        let mut relays = Vec::new();
        for n in 1..=options.relays {
            let relay_id = format!("{}{n}", options.relay_prefix);
            relays.push(
                SimRelay::start(
                    client.clone(),
                    &book,
                    &relay_id,
                    &region(n - 1),
                    options.relay_capacity,
                )
                .await?,
            );
        }
        let mut hosts = Vec::new();
        for n in 1..=options.hosts {
            let host_id = format!("{}{n:04}", options.host_prefix);
            hosts.push(
                SimHost::start(client.clone(), book.clone(), &host_id, &region(n - 1)).await?,
            );
        }
        let host_ids = hosts.iter().map(|h| h.host_id.clone()).collect();
        let (client_counters, clients_stop) = start_clients(
            client,
            book,
            host_ids,
            options.clients,
            Duration::from_millis(200),
        );
        Ok(Simulation {
            relays,
            hosts,
            client_counters,
            clients_stop,
        })
    }

    /// What everyone saw so far.
    pub fn report(&self) -> SimReport {
        let now = Instant::now();
        let relays = self
            .relays
            .iter()
            .map(|relay| {
                (
                    relay.relay_id.clone(),
                    RelayReport {
                        hosts: relay.admission.hosts(),
                        heartbeats_acknowledged: relay
                            .counters
                            .heartbeats_acknowledged
                            .load(Ordering::Relaxed),
                        heartbeats_failed: relay.counters.heartbeats_failed.load(Ordering::Relaxed),
                        lease_holds: relay.admission.lease_holds(now),
                    },
                )
            })
            .collect();
        let views: Vec<HostView> = self.hosts.iter().map(|h| h.view.lock().clone()).collect();
        SimReport {
            relays,
            hosts: views.len(),
            host_moves: views.iter().map(|v| v.moves).sum(),
            host_admissions: views.iter().map(|v| v.admitted).sum(),
            host_refusals: views.iter().map(|v| v.refused).sum(),
            client_resolves: self.client_counters.resolves.load(Ordering::Relaxed),
            client_admissions: self.client_counters.admitted.load(Ordering::Relaxed),
            client_refusals: self.client_counters.refused.load(Ordering::Relaxed),
            client_failures: self.client_counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops everything.
    pub fn stop(&self) {
        let _ = self.clients_stop.send(true);
        for relay in &self.relays {
            relay.stop();
        }
        for host in &self.hosts {
            host.stop();
        }
    }
}

/// The report as a table.
pub fn render_report(report: &SimReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<16} {:>6} {:>12} {:>10} {:>6}\n",
        "RELAY", "HOSTS", "HEARTBEATS", "FAILED", "LEASE"
    ));
    for (relay_id, relay) in &report.relays {
        out.push_str(&format!(
            "{:<16} {:>6} {:>12} {:>10} {:>6}\n",
            relay_id,
            relay.hosts,
            relay.heartbeats_acknowledged,
            relay.heartbeats_failed,
            if relay.lease_holds { "ok" } else { "LOST" }
        ));
    }
    out.push_str(&format!(
        "hosts: {} (moves {}, admitted {}, refused {})\nclients: {} resolves, {} admitted, {} refused, {} failed\n",
        report.hosts,
        report.host_moves,
        report.host_admissions,
        report.host_refusals,
        report.client_resolves,
        report.client_admissions,
        report.client_refusals,
        report.client_failures
    ));
    out
}

/// The line `switchboard sim` prints once every relay and host runs.
pub const SIM_READY: &str = "switchboard-sim-ready";

/// `switchboard sim`: runs until `duration` passes or `stop` completes,
/// printing a report every `options.report_every` and at the end.
pub async fn run(
    cluster_json: &std::path::Path,
    options: &SimOptions,
    duration: Option<Duration>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let file = switchboard_api::ClusterFile::load(cluster_json)
        .map_err(|e| NodeError::Launcher(e.to_string()))?;
    let settings = switchboard_api::ClientSettings {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..Default::default()
    };
    let directory = Arc::new(switchboard_api::Directory::new(
        &file.cluster_id,
        file.api_endpoints(),
        Vec::new(),
        None,
    ));
    let client = Arc::new(
        file.client(settings)
            .map_err(|e| NodeError::Launcher(e.to_string()))?
            .with_directory(directory),
    );
    let simulation = Simulation::start(client, options).await?;
    println!(
        "{SIM_READY} relays={} hosts={}",
        simulation.relays.len(),
        simulation.hosts.len()
    );
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut ticker = tokio::time::interval(options.report_every);
    ticker.tick().await;
    tokio::pin!(stop);
    loop {
        let until_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => print!("{}", render_report(&simulation.report())),
            _ = until_deadline => break,
            _ = &mut stop => break,
        }
    }
    simulation.stop();
    print!("{}", render_report(&simulation.report()));
    Ok(())
}
