//! `switchboard serve`: one site, from its config to a clean exit.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use switchboard_api::Site;
use switchboard_api::freshness::LeaderContact;
use switchboard_api::limits;
use switchboard_api::peer_clients::PeerClients;
use switchboard_api::peer_service::PeerService;
use switchboard_api::services::AdminApi;
use switchboard_api::services::ClientApi;
use switchboard_api::services::HostApi;
use switchboard_api::services::RelayApi;
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

use crate::config::SiteConfig;
use crate::error::NodeError;
use crate::http;
use crate::raft_network::PeerNetworkFactory;

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

    let identity = Identity {
        cluster_id: config.cluster_id.clone(),
        site_id: config.id,
    };
    let store = switchboard_raft_store::store::open(&config.data_dir, &identity)?;
    let stopped = store.stopped.clone();
    let peers = PeerClients::new(&config.cluster_id, config.id, None);
    let network = PeerNetworkFactory {
        self_id: config.id,
        peers: peers.clone(),
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
    let site = Arc::new(Site {
        id: config.id,
        name: config.name.clone(),
        cluster_id: config.cluster_id.clone(),
        raft,
        reader: store.reader,
        snapshots: store.snapshots,
        peers,
        contact: LeaderContact::default(),
        settings: config.site_settings(),
    });
    drop(store.db);

    let (stop, stop_signal) = watch::channel(false);
    let peer_server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(limits::REQUESTS_PER_CONNECTION_MAX)
        .tcp_nodelay(true)
        .add_service(
            RaftPeerServer::new(PeerService::new(site.clone()))
                .max_decoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX),
        )
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(raft_listener),
            wait_stopped(stop_signal.clone()),
        );
    let api_server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(limits::REQUESTS_PER_CONNECTION_MAX)
        .tcp_nodelay(true)
        .add_service(
            RelayServiceServer::new(RelayApi::new(site.clone()))
                .max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
        )
        .add_service(
            HostServiceServer::new(HostApi::new(site.clone()))
                .max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
        )
        .add_service(
            ClientServiceServer::new(ClientApi::new(site.clone()))
                .max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
        )
        .add_service(
            AdminServiceServer::new(AdminApi::new(site.clone()))
                .max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(limits::API_MESSAGE_BYTES_MAX),
        )
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(api_listener),
            wait_stopped(stop_signal.clone()),
        );
    let peer_task = tokio::spawn(peer_server);
    let api_task = tokio::spawn(api_server);
    let http_state = http::HttpState {
        site: site.clone(),
        prometheus,
        timing: config.timing.clone(),
    };
    let http_task = tokio::spawn(http::serve(
        http_listener,
        http_state,
        wait_stopped(stop_signal.clone()),
    ));

    bootstrap(&config, &site).await?;

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
    let Some(target) = switchboard_api::services::most_caught_up_voter(site) else {
        return;
    };
    let deadline = config.timing.failover_bound();
    match switchboard_api::services::transfer_leadership(site, target, deadline).await {
        Ok(()) => tracing::info!(to = target, "handed leadership over before exit"),
        Err(error) => {
            tracing::warn!(%error, "could not hand leadership over; the cluster will elect a new leader")
        }
    }
}
