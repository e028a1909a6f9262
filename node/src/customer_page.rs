//! The customer status page at `/status`: the page that was missing in
//! 2013. It says whether the service works, the operator's notice, and the
//! maintenance windows coming up or under way, and when it was last
//! updated; it names no site, relay, address, id or load figure. Every site
//! serves it from its own copy of the state, so it stays up as long as any
//! site is up.

use std::fmt::Write as _;
use std::time::Duration;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use switchboard_raft_store::state::RelayState;
use switchboard_raft_store::state::State;
use switchboard_raft_store::state::WindowStatus;

/// Upcoming windows shown; the state holds at most a bounded number anyway.
pub const CUSTOMER_WINDOWS_MAX: usize = 20;
/// How often the page reloads itself, in seconds.
const CUSTOMER_REFRESH_S: u64 = 30;

/// How the service is, as a customer would put it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Everything works.
    Operational,
    /// Connections work, planned work is under way.
    UnderMaintenance,
    /// Something is down or changes are delayed.
    Degraded,
}

impl ServiceState {
    fn headline(self) -> &'static str {
        match self {
            ServiceState::Operational => "All systems operational",
            ServiceState::UnderMaintenance => "Planned maintenance in progress",
            ServiceState::Degraded => "Degraded service",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            ServiceState::Operational => "#1a7f37",
            ServiceState::UnderMaintenance => "#0550ae",
            ServiceState::Degraded => "#bc4c00",
        }
    }
}

/// A maintenance window as customers see it: times and reason, no target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomerWindow {
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
    pub under_way: bool,
    pub reason: String,
}

/// Everything the customer page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomerView {
    pub state: ServiceState,
    pub notice: String,
    pub windows: Vec<CustomerWindow>,
    /// When the information was current: this site's clock less its
    /// staleness.
    pub updated_unix_ms: u64,
}

/// The customer view of `state`, as a site that `in_service` (it knows a
/// leader and has caught up) and is `staleness_ms` behind sees it at
/// `now_ms`. Pure: golden-tested below.
pub fn customer_view(
    state: &State,
    in_service: bool,
    staleness_ms: Option<u64>,
    now_ms: u64,
) -> CustomerView {
    let mut windows: Vec<CustomerWindow> = state
        .windows()
        .filter(|w| matches!(w.status, WindowStatus::Scheduled | WindowStatus::Active))
        .map(|w| CustomerWindow {
            start_unix_ms: w.start_ms,
            end_unix_ms: w.end_ms,
            under_way: w.status == WindowStatus::Active,
            reason: w.reason.clone(),
        })
        .collect();
    windows.sort_by_key(|w| (w.start_unix_ms, w.end_unix_ms));
    windows.truncate(CUSTOMER_WINDOWS_MAX);
    let relay_down = state.relays().any(|r| r.state() == RelayState::Down);
    let service = if !in_service || relay_down {
        ServiceState::Degraded
    } else if windows.iter().any(|w| w.under_way) {
        ServiceState::UnderMaintenance
    } else {
        ServiceState::Operational
    };
    CustomerView {
        state: service,
        notice: state.node_info().notice.clone(),
        windows,
        updated_unix_ms: now_ms.saturating_sub(staleness_ms.unwrap_or(0)),
    }
}

/// 9999-12-31 23:59:59.999 UTC: RFC 3339 has four-digit years.
const LAST_FORMATTABLE_UNIX_MS: u64 = 253_402_300_799_999;

/// Unix milliseconds as UTC, to the minute (`2026-12-02 16:05 UTC`);
/// every u64 formats.
pub fn utc_minute(unix_ms: u64) -> String {
    utc(unix_ms, 16)
}

/// Unix milliseconds as UTC, to the second (`2026-12-02 16:05:09 UTC`).
pub fn utc_second(unix_ms: u64) -> String {
    utc(unix_ms, 19)
}

/// The RFC 3339 form cut after `cut` characters, `T` made a space.
fn utc(unix_ms: u64, cut: usize) -> String {
    let at = (unix_ms <= LAST_FORMATTABLE_UNIX_MS)
        .then(|| UNIX_EPOCH.checked_add(Duration::from_millis(unix_ms)))
        .flatten();
    match at {
        Some(at) => {
            let text = humantime::format_rfc3339_seconds(at).to_string();
            // 2026-12-02T16:05:09Z -> 2026-12-02 16:05 UTC
            match (text.get(..10), text.get(11..cut)) {
                (Some(day), Some(time)) => format!("{day} {time} UTC"),
                _ => text,
            }
        }
        None => format!("{unix_ms} ms after 1970"),
    }
}

/// The page, for a phone or a desktop; all text escaped.
pub fn render_customer_page(view: &CustomerView, escape: impl Fn(&str) -> String) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=refresh content={CUSTOMER_REFRESH_S}><title>Service status</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:0 auto;max-width:42em;padding:1em;line-height:1.4}}\
         .state{{color:#fff;padding:1em;border-radius:6px;font-size:1.3em}}\
         .notice{{border-left:4px solid #888;padding:.5em 1em;background:#f6f8fa}}\
         li{{margin:.5em 0}}</style></head><body>\
         <h1>Service status</h1><p class=state id=state data-state={state:?} style=\"background:{colour}\">{headline}</p>",
        state = view.state,
        colour = view.state.colour(),
        headline = view.state.headline(),
    );
    if !view.notice.is_empty() {
        let _ = write!(
            html,
            "<h2>Notice</h2><p class=notice id=notice>{}</p>",
            escape(&view.notice)
        );
    }
    html.push_str("<h2>Maintenance</h2>");
    if view.windows.is_empty() {
        html.push_str("<p id=maintenance>No maintenance scheduled.</p>");
    } else {
        html.push_str("<ul id=maintenance>");
        for window in &view.windows {
            let _ = write!(
                html,
                "<li><b>{}</b> {} to {}: {}</li>",
                if window.under_way { "Now:" } else { "Planned:" },
                utc_minute(window.start_unix_ms),
                utc_minute(window.end_unix_ms),
                escape(&window.reason)
            );
        }
        html.push_str("</ul>");
    }
    let _ = write!(
        html,
        "<p id=updated><small>Last updated {}.</small></p></body></html>",
        utc_minute(view.updated_unix_ms)
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_raft_store::Actor;
    use switchboard_raft_store::ActorKind;
    use switchboard_raft_store::Command;
    use switchboard_raft_store::Proposal;
    use switchboard_raft_store::command::RelayRegistration;
    use switchboard_raft_store::ids::RelayId;
    use switchboard_raft_store::ids::RequestId;
    use switchboard_raft_store::state::ChangeSet;
    use switchboard_raft_store::state::MaintenanceTarget;

    /// Jan 1 2027 00:00 UTC.
    const NEW_YEAR_MS: u64 = 1_798_761_600_000;

    fn applied(commands: Vec<Command>) -> State {
        let mut state = State::new();
        let mut changes = ChangeSet::default();
        for (n, command) in commands.into_iter().enumerate() {
            let proposal = Proposal {
                request_id: RequestId::NONE,
                actor: Actor::new(ActorKind::Admin, "test"),
                issued_at_ms: NEW_YEAR_MS + n as u64,
                command,
            };
            state.apply(n as u64 + 1, &proposal, &mut changes);
        }
        state
    }

    fn relay() -> Command {
        Command::RegisterRelay(RelayRegistration {
            relay_id: RelayId::new("relay-tokyo-7").expect("id"),
            endpoint: "10.9.8.7:443".into(),
            region: "ap".into(),
            labels: Default::default(),
            capacity: 1_000,
            incarnation: 1,
        })
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;")
    }

    #[test]
    fn a_planned_window_and_a_notice_read_as_operational_and_name_nothing_internal() {
        let state = applied(vec![
            relay(),
            Command::SetNotice {
                text: "New relays in <Osaka> next week".into(),
            },
            Command::ScheduleMaintenance {
                target: MaintenanceTarget::Relay(RelayId::new("relay-tokyo-7").expect("id")),
                start_ms: NEW_YEAR_MS + 3_600_000,
                end_ms: NEW_YEAR_MS + 7_200_000,
                reason: "firmware".into(),
            },
        ]);
        let view = customer_view(&state, true, Some(250), NEW_YEAR_MS + 60_000);
        assert_eq!(
            view,
            CustomerView {
                state: ServiceState::Operational,
                notice: "New relays in <Osaka> next week".into(),
                windows: vec![CustomerWindow {
                    start_unix_ms: NEW_YEAR_MS + 3_600_000,
                    end_unix_ms: NEW_YEAR_MS + 7_200_000,
                    under_way: false,
                    reason: "firmware".into(),
                }],
                updated_unix_ms: NEW_YEAR_MS + 59_750,
            }
        );
        let page = render_customer_page(&view, escape);
        assert!(page.contains("All systems operational"), "{page}");
        assert!(
            page.contains("New relays in &lt;Osaka> next week"),
            "{page}"
        );
        assert!(
            page.contains("<b>Planned:</b> 2027-01-01 01:00 UTC to 2027-01-01 02:00 UTC: firmware"),
            "{page}"
        );
        assert!(page.contains("Last updated 2027-01-01 00:00 UTC"), "{page}");
        for internal in ["relay-tokyo-7", "10.9.8.7", "1000", "1,000", "ap"] {
            assert!(
                !page.contains(&format!(">{internal}")),
                "{internal} shown: {page}"
            );
        }
        assert!(!page.contains("relay-tokyo"), "{page}");
        assert!(!page.contains("10.9.8.7"), "{page}");
    }

    #[test]
    fn a_site_out_of_service_says_degraded() {
        let state = applied(vec![relay()]);
        let view = customer_view(&state, false, None, NEW_YEAR_MS);
        assert_eq!(view.state, ServiceState::Degraded);
        assert!(render_customer_page(&view, escape).contains("No maintenance scheduled."));
    }

    #[test]
    fn every_time_formats() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(NEW_YEAR_MS), "2027-01-01 00:00 UTC");
        assert_eq!(utc_second(NEW_YEAR_MS + 9_999), "2027-01-01 00:00:09 UTC");
        assert_eq!(utc_minute(LAST_FORMATTABLE_UNIX_MS), "9999-12-31 23:59 UTC");
        assert_eq!(utc_minute(u64::MAX), "18446744073709551615 ms after 1970");
    }
}
