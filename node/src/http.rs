//! The HTTP plane: the operator's status page at `/` (and `/status.json`),
//! the customer status page at `/status`, `/metrics`, `/healthz`, `/readyz`. No client certificate needed; nothing secret is shown.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use crate::operator_page::LeaderView;
use crate::operator_page::StatusView;
use crate::operator_page::escape;
use crate::operator_page::render;
use crate::operator_page::status_view;
use crate::site::Site;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::Matcher;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use tokio::net::TcpListener;

use crate::config::Timing;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub site: Arc<Site>,
    pub prometheus: PrometheusHandle,
    pub timing: Timing,
    /// On a follower: the leader's view of the members, cached.
    pub leader_view: Arc<LeaderView>,
    /// The site's data directory, whose database size `/metrics` reports.
    pub data_dir: std::path::PathBuf,
}

/// Buckets of every `_seconds` histogram: 100 us (a local read) to 10 s (a
/// write deadline); Prometheus histograms, not summaries, so that they
/// aggregate across sites.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of every `_bytes` histogram: 1 KiB to 1 GiB by fours.
const SIZE_BUCKETS_BYTES: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
];
/// Buckets of the apply time of one command: 1 us to 10 ms, below the
/// latency buckets, because applying is a pure in-memory step.
const APPLY_BUCKETS_SECONDS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.01,
];
/// Buckets of histograms of counts (jobs per group commit, heartbeats per
/// batch): 1 to 4,096 by powers of two.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), SIZE_BUCKETS_BYTES)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("switchboard_state_apply_duration_seconds".into()),
                        APPLY_BUCKETS_SECONDS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("switchboard_storage_group_jobs".into()),
                        COUNT_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("switchboard_relay_heartbeat_batch_size".into()),
                        COUNT_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty")
                .install_recorder()
                .expect("the metrics recorder is installed once per process");
            crate::metric_catalog::describe();
            handle
        })
        .clone()
}

/// Serves HTTP until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let router = Router::new()
        .route("/", get(status_page))
        .route("/status", get(customer_page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(HTTP_ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            metrics::counter!("switchboard_http_connections_refused_total").increment(1);
            tracing::debug!(%peer, "http connection cap reached; closed");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            // Idle keep-alive connections and slow readers end here too.
            let _ = tokio::time::timeout(limits.connection_lifetime, connection).await;
            drop(permit);
        });
    }
}

/// What the HTTP plane allows (`[limits]` in the site configuration; the
/// constants below are the defaults).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections held at once.
    pub connections_max: usize,
    /// How long a caller may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Longest life of one connection.
    pub connection_lifetime: Duration,
}

/// Connections the HTTP plane holds at once; past it, new ones are closed
/// at once. The plane is open to anyone (probes, Prometheus, browsers) and
/// shares the process's open-file limit with the API and Raft ports and
/// RocksDB, so it gets a fixed share: 512 of the 20,000 files.
pub const HTTP_CONNECTIONS_MAX: usize = 512;
/// How long a caller may take to send a request's headers, counted from
/// when the connection waits for them (an idle keep-alive connection too).
/// Probes and scrapes send theirs at once.
pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one HTTP connection, whatever it does: a scrape or a
/// page load takes milliseconds, and Prometheus reconnects for free.
pub const HTTP_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of file descriptors, say).
const HTTP_ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// This site's view, with the leader's view of member health on a follower.
async fn full_view(state: &HttpState) -> StatusView {
    let mut view = status_view(&state.site);
    let leader_http = state
        .site
        .leader()
        .map(|(_, node)| node.http_addr)
        .filter(|addr| !addr.is_empty());
    state
        .leader_view
        .fill(&mut view, leader_http.as_deref())
        .await;
    view
}

async fn status_json(State(state): State<HttpState>) -> Json<StatusView> {
    Json(full_view(&state).await)
}

async fn status_page(State(state): State<HttpState>) -> Response {
    let html = render(&full_view(&state).await);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// The customer page: see `customer_page`.
async fn customer_page(State(state): State<HttpState>) -> Response {
    use crate::health::Readiness;
    let site = &state.site;
    let in_service = matches!(
        crate::health::readiness(site, ready_bound_ms(&state.timing)),
        Readiness::Ready | Readiness::Drained
    );
    let applied = site.reader.load();
    let view = crate::customer_page::customer_view(
        &applied.state,
        in_service,
        site.staleness_ms(),
        site.clock.unix_ms(),
    );
    let html = crate::customer_page::render_customer_page(&view, escape);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    record_raft_gauges(&state.site);
    record_relay_gauges(&state.site);
    record_disk_gauges(&state.data_dir);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

/// Raft's own numbers, read at scrape time.
fn record_raft_gauges(site: &Site) {
    let metrics = site.raft.metrics();
    let metrics = metrics.borrow_watched();
    metrics::gauge!("switchboard_raft_term").set(metrics.current_term as f64);
    metrics::gauge!("switchboard_raft_is_leader")
        .set(f64::from(u8::from(metrics.state == ServerState::Leader)));
    metrics::gauge!("switchboard_raft_last_log_index")
        .set(metrics.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("switchboard_raft_commit_index")
        .set(metrics.local_committed.as_ref().map_or(0, |id| id.index) as f64);
    metrics::gauge!("switchboard_raft_has_leader")
        .set(f64::from(u8::from(metrics.current_leader.is_some())));
    if metrics.replication.is_none() {
        // Not the leader: it measures no follower, and a gauge left from
        // an earlier leadership would read as a lag that is not there.
        for id in metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
        {
            let site = id.to_string();
            metrics::gauge!("switchboard_raft_follower_lag_entries", "site" => site.clone())
                .set(0.0);
            metrics::gauge!("switchboard_raft_follower_lag_seconds", "site" => site).set(0.0);
        }
    }
    if let Some(replication) = &metrics.replication {
        let last = metrics.last_log_index.unwrap_or(0);
        for (id, matched) in replication {
            let lag = last.saturating_sub(matched.as_ref().map_or(0, |m| m.index));
            metrics::gauge!("switchboard_raft_follower_lag_entries", "site" => id.to_string())
                .set(lag as f64);
        }
    }
    if let Some(acked) = &metrics.heartbeat {
        use openraft::Instant as _;
        for (id, at) in acked.iter().filter(|(id, _)| **id != site.id) {
            // Never acknowledged since this site took the lead: as old as
            // the leadership, which the leader lease bounds from below.
            let lag = at
                .as_ref()
                .map_or(f64::INFINITY, |at| at.elapsed().as_secs_f64());
            metrics::gauge!("switchboard_raft_follower_lag_seconds", "site" => id.to_string())
                .set(lag);
        }
    }
    drop(metrics);
    if let Some(staleness) = site.staleness_ms() {
        metrics::gauge!("switchboard_site_staleness_seconds").set(staleness as f64 / 1000.0);
    }
}

/// Relays by state, and routes against capacity on the active ones (the
/// relay-capacity alert), from this site's copy of the state.
fn record_relay_gauges(site: &Site) {
    use switchboard_raft_store::state::RelayState;
    let applied = site.reader.load();
    let mut by_state: BTreeMap<&'static str, usize> = [
        RelayState::Active,
        RelayState::Draining,
        RelayState::Drained,
        RelayState::Maintenance,
        RelayState::Down,
    ]
    .into_iter()
    .map(|state| (state.as_str(), 0))
    .collect();
    let (mut routes, mut capacity, mut draining) = (0u64, 0u64, 0u64);
    for relay in applied.state.relays() {
        *by_state.entry(relay.state().as_str()).or_insert(0) += 1;
        if relay.state() == RelayState::Draining {
            draining += u64::from(relay.route_count);
        }
        if relay.state() == RelayState::Active {
            routes += u64::from(relay.route_count);
            capacity += u64::from(relay.capacity);
        }
    }
    for (state, count) in by_state {
        metrics::gauge!("switchboard_relays", "state" => state).set(count as f64);
    }
    metrics::gauge!("switchboard_relay_active_routes").set(routes as f64);
    metrics::gauge!("switchboard_relay_active_capacity_hosts").set(capacity as f64);
    metrics::gauge!("switchboard_drain_hosts_remaining").set(draining as f64);
}

/// The database's write-ahead log and sorted tables on disk.
fn record_disk_gauges(data_dir: &std::path::Path) {
    let usage = switchboard_raft_store::store::disk_usage(data_dir);
    metrics::gauge!("switchboard_storage_wal_bytes").set(usage.wal_bytes as f64);
    metrics::gauge!("switchboard_storage_sst_bytes").set(usage.sst_bytes as f64);
}

async fn healthz(State(state): State<HttpState>) -> Response {
    let running = state
        .site
        .raft
        .metrics()
        .borrow_watched()
        .running_state
        .clone();
    match running {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(fatal) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("raft stopped: {fatal}\n"),
        )
            .into_response(),
    }
}

/// Ready: this site knows a leader and is no staler than two election
/// timeouts (the judgement `grpc.health.v1` reports too).
async fn readyz(State(state): State<HttpState>) -> Response {
    match crate::health::readiness(&state.site, ready_bound_ms(&state.timing)) {
        crate::health::Readiness::Ready => (StatusCode::OK, "ready\n").into_response(),
        // Load balancers take a drained site out as clients do.
        not_ready => (StatusCode::SERVICE_UNAVAILABLE, format!("{not_ready}\n")).into_response(),
    }
}

/// How stale a site may be and still be ready: two election timeouts, so
/// one missed election does not take every follower out of service.
pub fn ready_bound_ms(timing: &Timing) -> u64 {
    2 * timing.election_max_ms
}
