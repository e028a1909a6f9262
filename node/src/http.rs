//! The HTTP plane: the operator's status page at `/` (and `/status.json`),
//! the customer status page at `/status`, `/metrics`, `/healthz`, `/readyz`. No client certificate needed; nothing secret is shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

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
use serde::Serialize;
use switchboard_raft_store::state::WindowStatus;
use tokio::net::TcpListener;

use crate::config::Timing;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub site: Arc<Site>,
    pub prometheus: PrometheusHandle,
    pub timing: Timing,
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
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), SIZE_BUCKETS_BYTES)
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
                .expect("the metrics recorder is installed once per process")
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

/// A site's view of the cluster, as the status page and `/status.json` show it.
#[derive(Serialize)]
pub struct StatusView {
    pub site_id: u64,
    pub name: String,
    pub cluster_id: String,
    pub role: &'static str,
    pub leader_id: Option<u64>,
    /// On a follower past the leader lease without word from the leader:
    /// how long it has heard nothing, since it started if it never has
    /// (the leader it names may be down).
    pub leader_unheard_ms: Option<u64>,
    pub term: u64,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub staleness_ms: Option<u64>,
    pub members: Vec<MemberView>,
    pub relays_by_state: BTreeMap<&'static str, usize>,
    pub relays: Vec<RelayView>,
    pub route_count: usize,
    /// Maintenance windows scheduled or under way.
    pub maintenance: Vec<WindowView>,
}

#[derive(Serialize)]
pub struct WindowView {
    pub window_id: u64,
    pub target: String,
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
    pub status: &'static str,
    pub reason: String,
}

#[derive(Serialize)]
pub struct MemberView {
    pub site_id: u64,
    pub name: String,
    pub voter: bool,
    pub api_addr: String,
    pub http_addr: String,
    /// Entries behind the leader (leader's view only).
    pub lag: Option<u64>,
    /// Acknowledged the leader recently (leader's view only).
    pub healthy: Option<bool>,
    /// Out of client service.
    pub draining: bool,
}

#[derive(Serialize)]
pub struct RelayView {
    pub relay_id: String,
    pub region: String,
    pub state: &'static str,
    pub routes: u32,
    pub capacity: u32,
}

/// Relays shown on the page; the rest are counted.
const STATUS_PAGE_RELAYS_MAX: usize = 200;

/// Builds this site's status view.
pub fn status_view(site: &Site) -> StatusView {
    let applied = site.reader.load();
    let staleness_ms = site.staleness_ms();
    // Read before the metrics borrow below: `members` borrows them too.
    let member_infos = site.members();
    let metrics = site.raft.metrics();
    let metrics = metrics.borrow_watched();
    let last_log = metrics.last_log_index.unwrap_or(0);
    // A follower's metrics name a new leader only after its first append
    // is done; the freshness that append brings is noted before that.
    let leader_id = match metrics.current_leader {
        Some(id) if id != site.id => Some(site.contact.last_leader().unwrap_or(id)),
        other => other,
    };
    let members = member_infos
        .into_iter()
        .map(|member| MemberView {
            site_id: member.site_id,
            name: member.node.name,
            voter: member.voter,
            api_addr: member.node.api_addr,
            http_addr: member.node.http_addr,
            lag: member
                .matched_index
                .map(|matched| last_log.saturating_sub(matched)),
            healthy: member.healthy,
            draining: member.draining,
        })
        .collect();
    let maintenance = applied
        .state
        .windows()
        .filter(|w| matches!(w.status, WindowStatus::Scheduled | WindowStatus::Active))
        .map(|w| WindowView {
            window_id: w.id,
            target: w.target.to_string(),
            start_unix_ms: w.start_ms,
            end_unix_ms: w.end_ms,
            status: w.status.as_str(),
            reason: w.reason.clone(),
        })
        .collect();
    let mut relays_by_state = BTreeMap::new();
    for relay in applied.state.relays() {
        *relays_by_state.entry(relay.state().as_str()).or_insert(0) += 1;
    }
    let relays = applied
        .state
        .relays()
        .take(STATUS_PAGE_RELAYS_MAX)
        .map(|r| RelayView {
            relay_id: r.relay_id.to_string(),
            region: r.region.clone(),
            state: r.state().as_str(),
            routes: r.route_count,
            capacity: r.capacity,
        })
        .collect();
    StatusView {
        site_id: site.id,
        name: site.name.clone(),
        cluster_id: site.cluster_id.clone(),
        role: crate::site::role_name(metrics.state),
        leader_id,
        leader_unheard_ms: Some(site.contact.unheard_ms(applied.applied_index())).filter(|&ms| {
            leader_id.is_some_and(|id| id != site.id)
                && u128::from(ms) > site.settings.leader_lease.as_millis()
        }),
        term: metrics.current_term,
        last_log_index: last_log,
        commit_index: metrics.local_committed.as_ref().map_or(0, |id| id.index),
        applied_index: applied.applied_index(),
        snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
        staleness_ms,
        members,
        relays_by_state,
        relays,
        route_count: applied.state.routes().len(),
        maintenance,
    }
}

async fn status_json(State(state): State<HttpState>) -> Json<StatusView> {
    Json(status_view(&state.site))
}

/// Escapes text for HTML element content and quoted attributes: `&`, `<`,
/// `>`, `"`, `'` and `/` (html-escape's `encode_safe`, which the hand-made
/// escape before it missed `'` of).
fn escape(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

async fn status_page(State(state): State<HttpState>) -> Response {
    let view = status_view(&state.site);
    let mut html = String::new();
    let leader = match (view.leader_id, view.leader_unheard_ms) {
        (None, _) => "none (election in progress)".to_owned(),
        (Some(id), Some(ms)) => {
            format!("site {id}? not heard from for {ms} ms: it may be down (election pending)")
        }
        (Some(id), None) => format!("site {id}"),
    };
    let staleness = view.staleness_ms.map_or_else(
        || "never heard from a leader".to_owned(),
        |ms| format!("{ms} ms"),
    );
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>\
         <title>Switchboard {name}</title><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>Switchboard: site {id} ({name})</h1>\
         <p>Cluster <b>{cluster}</b>. This site is <b>{role}</b>; leader: <b>{leader}</b>; term {term}.</p>\
         <p>Log {last}, committed {commit}, applied {applied}, snapshot {snapshot}; staleness {staleness}.</p>",
        name = escape(&view.name),
        id = view.site_id,
        cluster = escape(&view.cluster_id),
        role = view.role,
        term = view.term,
        last = view.last_log_index,
        commit = view.commit_index,
        applied = view.applied_index,
        snapshot = view.snapshot_index,
    );
    html.push_str("<h2>Members</h2><table><tr><th>site</th><th>name</th><th>voter</th><th>healthy</th><th>service</th><th>api</th><th>status page</th><th>lag</th></tr>");
    for member in &view.members {
        let lag = member
            .lag
            .map_or_else(|| "-".to_owned(), |lag| lag.to_string());
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"http://{http}/\">{http}</a></td><td>{lag}</td></tr>",
            member.site_id,
            escape(&member.name),
            if member.voter { "yes" } else { "learner" },
            match member.healthy {
                Some(true) => "yes",
                Some(false) => "<b>no</b>",
                None => "-",
            },
            if member.draining {
                "drained"
            } else {
                "serving"
            },
            escape(&member.api_addr),
            http = escape(&member.http_addr),
        );
    }
    html.push_str("</table>");
    if !view.maintenance.is_empty() {
        html.push_str("<h2>Maintenance</h2><table><tr><th>window</th><th>target</th><th>start (Unix ms)</th><th>end (Unix ms)</th><th>status</th><th>reason</th></tr>");
        for window in &view.maintenance {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                window.window_id,
                escape(&window.target),
                window.start_unix_ms,
                window.end_unix_ms,
                window.status,
                escape(&window.reason)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Relays</h2><p>");
    for (state_name, count) in &view.relays_by_state {
        let _ = write!(html, "{state_name}: {count} &nbsp; ");
    }
    let _ = write!(html, "</p><p>Routes: {}</p>", view.route_count);
    html.push_str("<table><tr><th>relay</th><th>region</th><th>state</th><th>routes</th><th>capacity</th></tr>");
    for relay in &view.relays {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&relay.relay_id),
            escape(&relay.region),
            relay.state,
            relay.routes,
            relay.capacity
        );
    }
    html.push_str("</table></body></html>");
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
    if let Some(replication) = &metrics.replication {
        let last = metrics.last_log_index.unwrap_or(0);
        for (id, matched) in replication {
            let lag = last.saturating_sub(matched.as_ref().map_or(0, |m| m.index));
            metrics::gauge!("switchboard_raft_follower_lag_entries", "site" => id.to_string())
                .set(lag as f64);
        }
    }
    drop(metrics);
    if let Some(staleness) = site.staleness_ms() {
        metrics::gauge!("switchboard_site_staleness_ms").set(staleness as f64);
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn status_page_text_is_escaped_including_single_quotes() {
        assert_eq!(
            super::escape(r#"<script>alert('x' & "y")</script>"#),
            "&lt;script&gt;alert(&#x27;x&#x27; &amp; &quot;y&quot;)&lt;&#x2F;script&gt;"
        );
    }
}
