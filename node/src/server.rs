//! `switchboard serve`: one site, from its config to a clean exit.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::leases::heartbeats::HeartbeatBatcher;
use crate::leases::table::Leases;
use crate::peer::clients::PeerClients;
use crate::peer::clients::PeerTiming;
use crate::peer::service::PeerService;
use crate::services::AdminApi;
use crate::services::ClientApi;
use crate::services::HostApi;
use crate::services::RelayApi;
use crate::services::auth::Authenticate;
use crate::services::auth::Authenticator;
use crate::services::auth::Principal;
use crate::services::auth::RateLimit;
use crate::services::watch_slots::WatchSlots;
use crate::site::Site;
use crate::site::WriteForwarder;
use crate::site::freshness::LeaderContact;
use crate::site::signer::Signer;
use serde::Deserialize;
use serde::Serialize;
use switchboard_api::StateKey;
use switchboard_api::TokenKey;
use switchboard_api::limits;
use switchboard_api::limits::ConnectionLimits;
use switchboard_api::request_bytes::ChargeRequestBytes;
use switchboard_api::tls;
use switchboard_api::tls::ClientAuth;
use switchboard_api::tls::ReloadableServer;
use switchboard_api::tls::TlsFiles;
use switchboard_proto::v1::admin_service_server::AdminServiceServer;
use switchboard_proto::v1::client_service_server::ClientServiceServer;
use switchboard_proto::v1::host_service_server::HostServiceServer;
use switchboard_proto::v1::raft_peer_server::RaftPeerServer;
use switchboard_proto::v1::relay_service_server::RelayServiceServer;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::store::Identity;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::health_server::HealthServer;
use tower::layer::util::Identity as NoLayer;
use tower::layer::util::Stack;

use crate::config::SiteConfig;
use crate::error::NodeError;
use crate::http;
use crate::leases::keeper;
use crate::peer::leader_age::LeaderAge;
use crate::peer::network::PeerNetworkFactory;
use crate::request_metrics::RequestMetricsLayer;
use crate::scheduler;

/// The line a site prints on stdout once it serves, followed by JSON.
pub const READY_PREFIX: &str = "switchboard-ready ";

/// Where a started site can be reached; printed on stdout and written to
/// `<data_dir>/endpoints.json` when the site is ready.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadyReport {
    pub site_id: u64,
    pub name: String,
    pub pid: u32,
    pub raft_addr: String,
    pub api_addr: String,
    pub http_addr: String,
}

/// How long shutdown waits for the storage to close.
const STORE_CLOSE_DEADLINE: Duration = Duration::from_secs(10);

async fn bind(what: &'static str, addr: &str) -> Result<(TcpListener, SocketAddr), NodeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            what,
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| NodeError::Bind {
        what,
        addr: addr.to_owned(),
        source,
    })?;
    Ok((listener, local))
}

fn advertised(config: &SiteConfig, bound: SocketAddr) -> Result<String, NodeError> {
    match &config.advertise_host {
        Some(host) => Ok(format!("{host}:{}", bound.port())),
        None if bound.ip().is_unspecified() => Err(NodeError::Config(format!(
            "{bound} is a wildcard address; set advertise_host to the name other sites use"
        ))),
        None => Ok(bound.to_string()),
    }
}

async fn wait_stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Runs a site until `shutdown` completes, then hands leadership over (if it
/// leads), stops Raft and the servers, and closes the storage.
pub async fn serve(
    config: SiteConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    config.validate()?;
    let prometheus = http::prometheus();
    let (raft_listener, raft_bound) = bind("raft_addr", &config.raft_addr).await?;
    let (api_listener, api_bound) = bind("api_addr", &config.api_addr).await?;
    let (http_listener, http_bound) = bind("http_addr", &config.http_addr).await?;
    let node = SiteNode {
        name: config.name.clone(),
        raft_addr: advertised(&config, raft_bound)?,
        api_addr: advertised(&config, api_bound)?,
        http_addr: advertised(&config, http_bound)?,
        labels: config.labels.clone(),
    };

    let (site, security, stopped) = start_site(&config, &node).await?;

    let (stop, stop_signal) = watch::channel(false);
    // Not serving until the site is judged ready, once it runs.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    crate::health::set_all(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    let metered = RequestMetricsLayer::new(switchboard_proto::v1::FILE_DESCRIPTOR_SET)
        .map_err(|e| NodeError::Config(format!("the built-in descriptors: {e}")))?;
    let (peer_router, api_router) = (
        peer_router(&site, &metered),
        api_router(&site, &config.limits, health_service, &metered)?,
    );
    let connection_limits = config.limits.connection_limits();
    let peer_task = tokio::spawn(serve_grpc(
        peer_router,
        raft_listener,
        security.raft_tls()?,
        ("raft", connection_limits),
        wait_stopped(stop_signal.clone()),
    ));
    let api_task = tokio::spawn(serve_grpc(
        api_router,
        api_listener,
        security.api_tls()?,
        ("api", connection_limits),
        wait_stopped(stop_signal.clone()),
    ));
    let reloader = security.spawn_reloader();
    let keepers = [
        tokio::spawn(keeper::run_lease_keeper(site.clone(), stop_signal.clone())),
        tokio::spawn(keeper::run_heartbeat_forwarder(
            site.clone(),
            stop_signal.clone(),
        )),
        tokio::spawn(keeper::run_key_keeper(site.clone(), stop_signal.clone())),
        tokio::spawn(scheduler::run_scheduler(site.clone(), stop_signal.clone())),
        tokio::spawn(crate::site::election_nudge::run_election_nudge(
            site.clone(),
            stop_signal.clone(),
        )),
        tokio::spawn(crate::site::events::run_event_watcher(
            site.clone(),
            stop_signal.clone(),
        )),
        tokio::spawn(crate::raft_counters::run_raft_counters(
            site.clone(),
            stop_signal.clone(),
        )),
        tokio::spawn(crate::health::run_health_reporter(
            site.clone(),
            health_reporter,
            http::ready_bound_ms(&config.timing),
            stop_signal.clone(),
        )),
    ];
    let http_state = http::HttpState {
        site: site.clone(),
        prometheus,
        timing: config.timing.clone(),
        leader_view: Default::default(),
        data_dir: config.data_dir.clone(),
    };
    let http_task = tokio::spawn(http::serve(
        http_listener,
        http_state,
        config.limits.http_limits(),
        wait_stopped(stop_signal.clone()),
    ));

    bootstrap(&config, &site).await?;

    report_ready(&config, &node)?;

    shutdown.await;
    tracing::info!(site = config.id, "shutting down");
    hand_over_leadership(&site, &config).await;
    if let Err(error) = site.raft.shutdown().await {
        tracing::warn!(%error, "raft did not stop cleanly");
    }
    let _ = stop.send(true);
    for (name, task) in [("raft port", peer_task), ("api port", api_task)] {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "{name} server ended with an error"),
            Err(error) => tracing::warn!(%error, "{name} server task failed"),
        }
    }
    let _ = http_task.await;
    for keeper in keepers {
        let _ = keeper.await;
    }
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    drop(security);
    drop(site);
    let closed = tokio::task::spawn_blocking(move || stopped.wait(STORE_CLOSE_DEADLINE))
        .await
        .unwrap_or(false);
    if !closed {
        tracing::warn!(
            "storage did not close within {} s",
            STORE_CLOSE_DEADLINE.as_secs()
        );
    }
    tracing::info!(site = config.id, "stopped");
    Ok(())
}

/// Opens the storage, sets up TLS and identities, and starts Raft: the site
/// every service shares, its security (for the servers and the reloader) and
/// the signal that the storage has closed.
async fn start_site(
    config: &SiteConfig,
    own: &SiteNode,
) -> Result<(Arc<Site>, Security, switchboard_raft_store::store::Stopped), NodeError> {
    let identity = Identity {
        cluster_id: config.cluster_id.clone(),
        site_id: config.id,
    };
    let store = switchboard_raft_store::store::open(&config.data_dir, &identity)?;
    let stopped = store.stopped.clone();
    let security = Security::setup(config)?;
    let state_key = config
        .state_key_file
        .as_ref()
        .map(|path| StateKey::from_hex_file(path))
        .transpose()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let peers = security.peers.clone();
    let leader_age = LeaderAge::default();
    let clock = crate::site::Clock::system();
    let network = PeerNetworkFactory {
        self_id: config.id,
        peers: peers.clone(),
        leader_age: leader_age.clone(),
        clock,
    };
    let raft_config = Arc::new(config.raft_config()?);
    let raft = openraft::Raft::new(
        config.id,
        raft_config,
        network,
        store.log,
        store.state_machine,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    leader_age.attach(raft.metrics(), store.reader.clone());
    let site = Arc::new(Site {
        id: config.id,
        name: config.name.clone(),
        cluster_id: config.cluster_id.clone(),
        own: own.clone(),
        raft,
        reader: store.reader,
        snapshots: store.snapshots,
        peers: peers.clone(),
        contact: LeaderContact::default(),
        settings: config.site_settings(),
        auth: security.authenticator(config),
        watch_slots: WatchSlots::new(
            config.limits.watches_per_identity_max,
            config.limits.watches_per_site_max,
        ),
        feed: store.feed,
        signer: Signer::new(state_key),
        leases: Leases::default(),
        heartbeats: HeartbeatBatcher::default(),
        forwarder: WriteForwarder::new(peers.clone()),
        clock,
        events: Default::default(),
    });
    drop(store.db);
    Ok((site, security, stopped))
}

/// A router of either port: every call counted and timed (the metrics
/// layer atop no other).
type GrpcRouter = tonic::transport::server::Router<Stack<RequestMetricsLayer, NoLayer>>;

/// The Raft port's router: the peer service alone.
fn peer_router(site: &Arc<Site>, metered: &RequestMetricsLayer) -> GrpcRouter {
    tonic::transport::Server::builder()
        .layer(metered.clone())
        .concurrency_limit_per_connection(limits::REQUESTS_PER_CONNECTION_MAX)
        .tcp_nodelay(true)
        .add_service(
            RaftPeerServer::new(PeerService::new(site.clone()))
                .max_decoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX),
        )
}

/// The API port's router: relay, host, client and admin services, every
/// call authenticated before its body is read, and its body charged to its
/// connection's request bytes while it is decoded; `grpc.health.v1` and
/// server reflection open to anyone, as `/readyz` is (they say nothing the
/// .proto files and the readiness probe do not); every call counted and
/// timed by method and status.
fn api_router(
    site: &Arc<Site>,
    config: &crate::config::Limits,
    health: HealthServer<impl Health>,
    metered: &RequestMetricsLayer,
) -> Result<GrpcRouter, NodeError> {
    let authenticate = Authenticate(site.clone());
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::v1::FILE_DESCRIPTOR_SET);
    for service in switchboard_proto::v1::API_SERVICES {
        reflection = reflection.with_service_name(service);
    }
    let reflection = reflection
        .with_service_name("grpc.health.v1.Health")
        .build_v1()
        .map_err(|e| NodeError::Config(format!("server reflection: {e}")))?;
    let router = tonic::transport::Server::builder()
        .layer(metered.clone())
        .timeout(site.settings.request_timeout)
        .http2_keepalive_interval(Some(Duration::from_millis(config.keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(Duration::from_millis(config.keepalive_timeout_ms)))
        .http2_max_header_list_size(limits::API_HEADER_LIST_BYTES_MAX)
        .initial_connection_window_size(limits::API_CONNECTION_WINDOW_BYTES)
        .initial_stream_window_size(limits::API_STREAM_WINDOW_BYTES)
        .concurrency_limit_per_connection(limits::REQUESTS_PER_CONNECTION_MAX)
        .max_concurrent_streams(config.streams_per_connection_max)
        .tcp_nodelay(true)
        .add_service(guarded(
            RelayServiceServer::new(RelayApi::new(site.clone()))
                .max_decoding_message_size(limits::API_REQUEST_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
            &authenticate,
        ))
        .add_service(guarded(
            HostServiceServer::new(HostApi::new(site.clone()))
                .max_decoding_message_size(limits::API_REQUEST_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
            &authenticate,
        ))
        .add_service(guarded(
            ClientServiceServer::new(ClientApi::new(site.clone()))
                .max_decoding_message_size(limits::API_REQUEST_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
            &authenticate,
        ))
        .add_service(guarded(
            AdminServiceServer::new(AdminApi::new(site.clone()))
                .max_decoding_message_size(limits::API_REQUEST_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
            &authenticate,
        ))
        .add_service(health)
        .add_service(reflection);
    Ok(router)
}

/// `service` authenticated first, then its body charged while decoded.
fn guarded<S>(
    service: S,
    authenticate: &Authenticate,
) -> InterceptedService<ChargeRequestBytes<S>, Authenticate> {
    InterceptedService::new(ChargeRequestBytes::new(service), authenticate.clone())
}

/// Writes `endpoints.json` and prints the ready line the launcher waits for.
fn report_ready(config: &SiteConfig, node: &SiteNode) -> Result<(), NodeError> {
    let report = ReadyReport {
        site_id: config.id,
        name: config.name.clone(),
        pid: std::process::id(),
        raft_addr: node.raft_addr.clone(),
        api_addr: node.api_addr.clone(),
        http_addr: node.http_addr.clone(),
    };
    let json = serde_json::to_string(&report).expect("a report always encodes");
    std::fs::write(config.data_dir.join("endpoints.json"), &json)
        .map_err(|e| NodeError::io("writing endpoints.json", e))?;
    println!("{READY_PREFIX}{json}");
    tracing::info!(site = config.id, raft = %node.raft_addr, api = %node.api_addr, http = %node.http_addr, "site ready");
    Ok(())
}

/// Serves one gRPC port, over mutual TLS when `tls` is given.
async fn serve_grpc(
    router: GrpcRouter,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    (port, limits): (&'static str, ConnectionLimits),
    stop: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    match tls {
        Some(config) => {
            router
                .serve_with_incoming_shutdown(tls::incoming(listener, config, port, limits), stop)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
                .await
        }
    }
}

/// TLS material, peer channels and authentication of a site.
struct Security {
    files: Option<TlsFiles>,
    reload_interval: Duration,
    raft_server: Option<Arc<ReloadableServer>>,
    api_server: Option<Arc<ReloadableServer>>,
    tokens: Option<TokenKey>,
    peers: PeerClients,
}

impl Security {
    fn setup(config: &SiteConfig) -> Result<Self, NodeError> {
        let Some(tls) = &config.tls else {
            tracing::warn!("insecure = true: plaintext, no authentication; development only");
            return Ok(Security {
                files: None,
                reload_interval: Duration::from_secs(5),
                raft_server: None,
                api_server: None,
                tokens: None,
                peers: PeerClients::insecure(&config.cluster_id, PeerTiming::of(&config.timing)),
            });
        };
        let files = TlsFiles {
            ca: tls.ca_file.clone(),
            cert: tls.cert_file.clone(),
            key: tls.key_file.clone(),
        };
        let material = files.load().map_err(|e| NodeError::Config(e.to_string()))?;
        crate::cert_expiry::record(&material);
        // The certificate must name this very site.
        let probe = Authenticator::tls(
            &config.cluster_id,
            None,
            RateLimit {
                per_second: 1,
                burst: 1,
            },
        );
        match probe.principal_from_certificate(material.leaf()) {
            Ok(Principal::Site(id)) if id == config.id => {}
            Ok(other) => {
                return Err(NodeError::Config(format!(
                    "{} is a certificate for {other}, not site {}",
                    tls.cert_file.display(),
                    config.id
                )));
            }
            Err(status) => {
                return Err(NodeError::Config(format!(
                    "{}: {}",
                    tls.cert_file.display(),
                    status.message()
                )));
            }
        }
        let tokens = tls
            .token_key_file
            .as_ref()
            .map(|path| TokenKey::from_hex_file(path))
            .transpose()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let api_auth = if tokens.is_some() {
            ClientAuth::Optional
        } else {
            ClientAuth::Required
        };
        let setup = |e: switchboard_api::ApiError| NodeError::Config(e.to_string());
        Ok(Security {
            raft_server: Some(
                ReloadableServer::new(&material, ClientAuth::Required).map_err(setup)?,
            ),
            api_server: Some(ReloadableServer::new(&material, api_auth).map_err(setup)?),
            peers: PeerClients::tls(&config.cluster_id, material, PeerTiming::of(&config.timing)),
            files: Some(files),
            reload_interval: Duration::from_millis(tls.reload_interval_ms),
            tokens,
        })
    }

    fn authenticator(&self, config: &SiteConfig) -> Authenticator {
        if self.files.is_none() {
            return Authenticator::Insecure;
        }
        let limit = RateLimit {
            per_second: config.limits.requests_per_second,
            burst: config.limits.request_burst,
        };
        Authenticator::tls(&config.cluster_id, self.tokens.clone(), limit)
    }

    fn raft_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, NodeError> {
        self.raft_server
            .as_ref()
            .map(|server| {
                server
                    .server_config()
                    .map_err(|e| NodeError::Config(e.to_string()))
            })
            .transpose()
    }

    fn api_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, NodeError> {
        self.api_server
            .as_ref()
            .map(|server| {
                server
                    .server_config()
                    .map_err(|e| NodeError::Config(e.to_string()))
            })
            .transpose()
    }

    /// Reloads changed certificate files into both ports and the peer channels.
    fn spawn_reloader(&self) -> Option<tokio::task::JoinHandle<()>> {
        let files = self.files.clone()?;
        let raft_server = self.raft_server.clone()?;
        let api_server = self.api_server.clone()?;
        let peers = self.peers.clone();
        Some(tls::spawn_reloader(
            files,
            self.reload_interval,
            move |material| {
                raft_server.reload(material)?;
                api_server.reload(material)?;
                peers.reload_tls(material.clone());
                crate::cert_expiry::record(material);
                Ok(())
            },
        ))
    }
}

/// Forms the cluster from `initial_sites` on first start.
async fn bootstrap(config: &SiteConfig, site: &Site) -> Result<(), NodeError> {
    if config.initial_sites.is_empty() {
        return Ok(());
    }
    if site
        .raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?
    {
        return Ok(());
    }
    let members: BTreeMap<u64, SiteNode> = config
        .initial_sites
        .iter()
        .map(|s| {
            let node = SiteNode {
                name: s.name.clone(),
                raft_addr: s.raft_addr.clone(),
                api_addr: s.api_addr.clone(),
                http_addr: s.http_addr.clone(),
                labels: s.labels.clone(),
            };
            (s.id, node)
        })
        .collect();
    match site.raft.initialize(members).await {
        Ok(()) => tracing::info!("initialized the cluster from initial_sites"),
        Err(error) => tracing::info!(%error, "not initializing: the cluster is already formed"),
    }
    Ok(())
}

/// On the way out, a leader hands leadership to the most caught-up voter so
/// the cluster does not wait an election timeout for a new one.
async fn hand_over_leadership(site: &Site, config: &SiteConfig) {
    if !site.is_leader() {
        return;
    }
    let Some(target) = crate::site::most_caught_up_voter(site) else {
        return;
    };
    let deadline = config.timing.failover_bound();
    match crate::site::transfer_leadership(site, target, deadline).await {
        Ok(()) => tracing::info!(to = target, "handed leadership over before exit"),
        Err(error) => {
            tracing::warn!(%error, "could not hand leadership over; the cluster will elect a new leader")
        }
    }
}
