//! The operator's status page at `/` and `/status.json`: members with
//! role, lag, health and failure-domain labels; the leader; relays by
//! state with their load against capacity; drains in progress; maintenance
//! windows; the notice; recent events. It reloads itself and reads on a
//! phone. A follower shows members' health as the leader last told it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use std::time::Instant;

use parking_lot::Mutex;

use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use serde::Deserialize;
use serde::Serialize;
use switchboard_raft_store::state::RelayState;
use switchboard_raft_store::state::WindowStatus;

use crate::customer_page::utc_minute;
use crate::customer_page::utc_second;
use crate::site::Site;
use crate::site::events::Event;

/// A site's view of the cluster, as the status page and `/status.json` show it.
#[derive(Serialize, Deserialize)]
pub struct StatusView {
    pub site_id: u64,
    pub name: String,
    pub cluster_id: String,
    pub role: String,
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
    pub relays_by_state: BTreeMap<String, usize>,
    pub relays: Vec<RelayView>,
    pub route_count: usize,
    /// Maintenance windows scheduled or under way.
    pub maintenance: Vec<WindowView>,
    /// The service notice.
    pub notice: String,
    /// Recent events as this site noticed them, newest first.
    pub events: Vec<Event>,
    /// Whose view `lag` and `healthy` of the members are: this site's if it
    /// leads, else the leader's as it last told this site (`None`: not
    /// known).
    pub health_from: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct WindowView {
    pub window_id: u64,
    pub target: String,
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
    pub status: String,
    pub reason: String,
}

#[derive(Clone, Serialize, Deserialize)]
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
    /// Milliseconds since it last acknowledged the leader: the lag in time
    /// (leader's view only).
    #[serde(default)]
    pub ack_age_ms: Option<u64>,
    /// Out of client service.
    pub draining: bool,
    /// Failure-domain labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
pub struct RelayView {
    pub relay_id: String,
    pub region: String,
    pub state: String,
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
            ack_age_ms: member.ack_age_ms,
            draining: member.draining,
            labels: member.node.labels,
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
            status: w.status.as_str().to_owned(),
            reason: w.reason.clone(),
        })
        .collect();
    let mut relays_by_state = BTreeMap::new();
    for relay in applied.state.relays() {
        *relays_by_state
            .entry(relay.state().as_str().to_owned())
            .or_insert(0) += 1;
    }
    // Relays not simply active first: drains in progress and relays down
    // are what an operator looks for.
    let (unusual, active): (Vec<_>, Vec<_>) = applied
        .state
        .relays()
        .partition(|r| r.state() != RelayState::Active);
    let relays = unusual
        .into_iter()
        .chain(active)
        .take(STATUS_PAGE_RELAYS_MAX)
        .map(|r| RelayView {
            relay_id: r.relay_id.to_string(),
            region: r.region.clone(),
            state: r.state().as_str().to_owned(),
            routes: r.route_count,
            capacity: r.capacity,
        })
        .collect();
    StatusView {
        site_id: site.id,
        name: site.name.clone(),
        cluster_id: site.cluster_id.clone(),
        role: crate::site::role_name(metrics.state).to_owned(),
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
        notice: applied.state.node_info().notice.clone(),
        events: site.events.recent(),
        health_from: (metrics.state == ServerState::Leader).then_some(site.id),
    }
}

/// Escapes text for HTML element content and quoted attributes: `&`, `<`,
/// `>`, `"`, `'` and `/` (html-escape's `encode_safe`, which the hand-made
/// escape before it missed `'` of).
pub fn escape(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

/// How often the page reloads itself, in seconds.
const OPERATOR_REFRESH_S: u64 = 5;

/// The page for `view`; every string from the state or the config escaped.
pub fn render(view: &StatusView) -> String {
    let mut html = String::new();
    head(&mut html, view);
    if !view.notice.is_empty() {
        let _ = write!(
            html,
            "<p class=notice id=notice><b>Notice:</b> {}</p>",
            escape(&view.notice)
        );
    }
    members(&mut html, view);
    maintenance(&mut html, view);
    relays(&mut html, view);
    events(&mut html, view);
    html.push_str("</body></html>");
    html
}

fn head(html: &mut String, view: &StatusView) {
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
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=refresh content={OPERATOR_REFRESH_S}>\
         <title>Switchboard {name}</title><style>body{{font-family:system-ui,sans-serif;margin:1em;line-height:1.35}}\
         .scroll{{overflow-x:auto}}table{{border-collapse:collapse;margin-bottom:1em}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;white-space:nowrap}}\
         .notice{{border-left:4px solid #bc4c00;padding:.5em 1em;background:#fff8f0}}</style></head><body>\
         <h1>Switchboard: site {id} ({name})</h1>\
         <p>Cluster <b>{cluster}</b>. This site is <b>{role}</b>; leader: <b>{leader}</b>; term {term}.</p>\
         <p>Log {last}, committed {commit}, applied {applied}, snapshot {snapshot}; staleness {staleness}; routes <b>{routes}</b>.</p>",
        name = escape(&view.name),
        id = view.site_id,
        cluster = escape(&view.cluster_id),
        role = escape(&view.role),
        term = view.term,
        last = view.last_log_index,
        commit = view.commit_index,
        applied = view.applied_index,
        snapshot = view.snapshot_index,
        routes = view.route_count,
    );
}

fn members(html: &mut String, view: &StatusView) {
    let seen_by = match view.health_from {
        Some(id) if id == view.site_id => "as this site (the leader) sees them".to_owned(),
        Some(id) => format!("health and lag as leader site {id} last reported them"),
        None => "health and lag unknown: no word from the leader".to_owned(),
    };
    let _ = write!(
        html,
        "<h2>Members</h2><p><small>{seen_by}</small></p><div class=scroll><table id=members><tr><th>site</th><th>name</th><th>role</th><th>healthy</th><th>lag</th><th>acked</th><th>service</th><th>labels</th><th>api</th><th>status page</th></tr>"
    );
    for member in &view.members {
        let role = match (Some(member.site_id) == view.leader_id, member.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let labels: Vec<String> = member
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{role}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"http://{http}/\">{http}</a></td></tr>",
            member.site_id,
            escape(&member.name),
            match member.healthy {
                Some(true) => "yes",
                Some(false) => "<b>no</b>",
                None => "-",
            },
            member
                .lag
                .map_or_else(|| "-".to_owned(), |lag| lag.to_string()),
            member
                .ack_age_ms
                .map_or_else(|| "-".to_owned(), |age| format!("{age} ms ago")),
            if member.draining {
                "drained"
            } else {
                "serving"
            },
            labels.join(" "),
            escape(&member.api_addr),
            http = escape(&member.http_addr),
        );
    }
    html.push_str("</table></div>");
}

fn maintenance(html: &mut String, view: &StatusView) {
    html.push_str("<h2>Maintenance</h2>");
    if view.maintenance.is_empty() {
        html.push_str("<p id=maintenance>None scheduled.</p>");
        return;
    }
    html.push_str("<div class=scroll><table id=maintenance><tr><th>window</th><th>target</th><th>start</th><th>end</th><th>status</th><th>reason</th></tr>");
    for window in &view.maintenance {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            window.window_id,
            escape(&window.target),
            utc_minute(window.start_unix_ms),
            utc_minute(window.end_unix_ms),
            escape(&window.status),
            escape(&window.reason)
        );
    }
    html.push_str("</table></div>");
}

fn relays(html: &mut String, view: &StatusView) {
    html.push_str("<h2>Relays</h2><p id=relay-states>");
    for (state_name, count) in &view.relays_by_state {
        let _ = write!(html, "{}: {count} &nbsp; ", escape(state_name));
    }
    html.push_str("</p>");
    let draining: Vec<&RelayView> = view
        .relays
        .iter()
        .filter(|r| r.state == RelayState::Draining.as_str())
        .collect();
    if !draining.is_empty() {
        html.push_str("<p id=drains><b>Drains in progress:</b> ");
        for relay in draining {
            let _ = write!(
                html,
                "{} ({} hosts left) &nbsp; ",
                escape(&relay.relay_id),
                relay.routes
            );
        }
        html.push_str("</p>");
    }
    html.push_str("<div class=scroll><table id=relays><tr><th>relay</th><th>region</th><th>state</th><th>load</th></tr>");
    for relay in &view.relays {
        let percent = u64::from(relay.routes) * 100 / u64::from(relay.capacity.max(1));
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {} ({percent}%)</td></tr>",
            escape(&relay.relay_id),
            escape(&relay.region),
            escape(&relay.state),
            relay.routes,
            relay.capacity
        );
    }
    html.push_str("</table></div>");
}

fn events(html: &mut String, view: &StatusView) {
    html.push_str("<h2>Recent events</h2>");
    if view.events.is_empty() {
        html.push_str("<p id=events>None since this site started.</p>");
        return;
    }
    html.push_str("<ul id=events>");
    for event in &view.events {
        let _ = write!(
            html,
            "<li>{}: {}</li>",
            utc_second(event.at_unix_ms),
            escape(&event.text)
        );
    }
    html.push_str("</ul>");
}

/// How long a follower reuses the leader's member view: page loads come
/// every few seconds, so at most one fetch a second per follower.
const LEADER_VIEW_MAX_AGE: Duration = Duration::from_secs(1);
/// Time to connect to the leader's HTTP plane and read its answer.
const LEADER_VIEW_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest answer read from the leader (its members and 200 relays fit).
const LEADER_VIEW_BYTES_MAX: u64 = 1024 * 1024;

/// A follower's copy of the leader's view of the members.
#[derive(Default)]
pub struct LeaderView {
    /// When the last fetch began, from which leader, and what it brought
    /// (`None`: no answer). Failures are kept too, so a dead leader costs
    /// one connection attempt a second, not one per page load.
    cached: Mutex<Option<Fetch>>,
}

/// One fetch: when it began, from which leader, the members it brought.
type Fetch = (Instant, u64, Option<Vec<MemberView>>);

impl LeaderView {
    /// Replaces `view`'s member health and lag with the leader's, when this
    /// site follows and the leader (at `leader_http`) answers.
    pub async fn fill(&self, view: &mut StatusView, leader_http: Option<&str>) {
        let Some(leader) = view.leader_id.filter(|id| *id != view.site_id) else {
            return;
        };
        let members = match self.fresh(leader) {
            Some(members) => members,
            None => {
                // Marked before the fetch: page loads meanwhile use what
                // was there and do not fetch too.
                let began = Instant::now();
                self.keep(began, leader, None, true);
                let fetched = match leader_http {
                    Some(addr) => fetch_members(addr, leader).await,
                    None => None,
                };
                self.keep(began, leader, fetched.clone(), false);
                fetched
            }
        };
        let Some(members) = members else { return };
        for member in &mut view.members {
            if let Some(seen) = members.iter().find(|m| m.site_id == member.site_id) {
                member.healthy = seen.healthy;
                member.lag = seen.lag;
                member.ack_age_ms = seen.ack_age_ms;
            }
        }
        view.health_from = Some(leader);
    }

    /// What the last fetch from `leader` brought, if it began within
    /// `LEADER_VIEW_MAX_AGE`.
    fn fresh(&self, leader: u64) -> Option<Option<Vec<MemberView>>> {
        self.cached
            .lock()
            .as_ref()
            .filter(|(began, id, _)| *id == leader && began.elapsed() < LEADER_VIEW_MAX_AGE)
            .map(|(_, _, members)| members.clone())
    }

    /// Records a fetch from `leader` begun at `began`; `marking`: it has
    /// only begun, so the members already held (from that leader) stay.
    fn keep(&self, began: Instant, leader: u64, members: Option<Vec<MemberView>>, marking: bool) {
        let mut cached = self.cached.lock();
        let held = cached
            .take()
            .filter(|(_, id, _)| marking && *id == leader)
            .and_then(|(_, _, members)| members);
        *cached = Some((began, leader, members.or(held)));
    }
}

/// The members from `leader`'s `/status.json` at `addr`, if it answers in
/// time as the leader.
async fn fetch_members(addr: &str, leader: u64) -> Option<Vec<MemberView>> {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let answer = tokio::time::timeout(LEADER_VIEW_TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET /status.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream
            .take(LEADER_VIEW_BYTES_MAX)
            .read_to_end(&mut answer)
            .await
            .ok()?;
        Some(answer)
    })
    .await
    .ok()??;
    let text = std::str::from_utf8(&answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let seen: StatusView = serde_json::from_str(body).ok()?;
    (seen.health_from == Some(leader)).then_some(seen.members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(site_id: u64, leader: u64, healthy: Option<bool>) -> StatusView {
        serde_json::from_value(serde_json::json!({
            "site_id": site_id, "name": "s", "cluster_id": "c", "role": "r",
            "leader_id": leader, "leader_unheard_ms": null, "term": 1,
            "last_log_index": 1, "commit_index": 1, "applied_index": 1,
            "snapshot_index": 0, "staleness_ms": 0,
            "members": [{"site_id": 2, "name": "s2", "voter": true, "api_addr": "a",
                         "http_addr": "h", "lag": 0, "healthy": healthy,
                         "draining": false, "labels": {}}],
            "relays_by_state": {}, "relays": [], "route_count": 0, "maintenance": [],
            "notice": "", "events": [], "health_from": Some(leader).filter(|_| site_id == leader),
        }))
        .expect("a view")
    }

    /// A leader's HTTP plane that answers `/status.json` and counts asks.
    async fn leader_plane(
        answers: bool,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncReadExt;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = asked.clone();
        let body = serde_json::to_string(&view(1, 1, Some(true))).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                if answers {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn a_follower_takes_the_leaders_health_and_asks_at_most_once_a_second() {
        use std::sync::atomic::Ordering;
        let (addr, asked) = leader_plane(true).await;
        let cache = LeaderView::default();
        for _ in 0..5 {
            let mut follower = view(3, 1, None);
            cache.fill(&mut follower, Some(&addr)).await;
            assert_eq!(follower.members[0].healthy, Some(true), "the leader's view");
            assert_eq!(follower.health_from, Some(1));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one ask for five pages");

        // A leader that never answers: asked once, then not again within
        // the second, and the page keeps its own "-".
        let (silent, asked) = leader_plane(false).await;
        let cache = LeaderView::default();
        for _ in 0..3 {
            let mut follower = view(3, 1, None);
            cache.fill(&mut follower, Some(&silent)).await;
            assert_eq!(follower.members[0].healthy, None);
            assert_eq!(follower.health_from, None);
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "a failure is remembered too"
        );
    }

    #[test]
    fn status_page_text_is_escaped_including_single_quotes() {
        assert_eq!(
            super::escape(r#"<script>alert('x' & "y")</script>"#),
            "&lt;script&gt;alert(&#x27;x&#x27; &amp; &quot;y&quot;)&lt;&#x2F;script&gt;"
        );
    }
}
