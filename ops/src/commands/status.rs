//! `sbctl status`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use super::SiteStatusView;
use super::emit;
use crate::operations;
use crate::table::Table;

/// `sbctl status --json`: what the table and the lines under it say.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    sites: &'a [SiteStatusView],
    notice: &'a str,
    maintenance: Vec<operations::WindowView>,
}

/// `sbctl status`.
pub(super) async fn status(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    let statuses = client.status_all().await;
    // Windows and the notice as the most caught-up site knows them.
    let freshest = statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .max_by_key(|s| s.applied_index);
    let windows = freshest.map(|s| s.maintenance.clone()).unwrap_or_default();
    let notice = freshest.map(|s| s.notice.clone()).unwrap_or_default();
    let views: Vec<SiteStatusView> = statuses
        .into_iter()
        .map(|(endpoint, result)| match result {
            Ok(s) => SiteStatusView {
                endpoint,
                reachable: true,
                error: None,
                site_id: Some(s.site_id),
                name: Some(s.name),
                role: Some(s.role),
                leader_id: (s.leader_id != 0).then_some(s.leader_id),
                term: Some(s.term),
                last_log_index: Some(s.last_log_index),
                commit_index: Some(s.commit_index),
                applied_index: Some(s.applied_index),
                staleness_ms: (s.staleness_ms != u64::MAX).then_some(s.staleness_ms),
                relays: Some(s.relay_count),
                routes: Some(s.route_count),
            },
            Err(error) => SiteStatusView {
                endpoint,
                reachable: false,
                error: Some(error.to_string()),
                site_id: None,
                name: None,
                role: None,
                leader_id: None,
                term: None,
                last_log_index: None,
                commit_index: None,
                applied_index: None,
                staleness_ms: None,
                relays: None,
                routes: None,
            },
        })
        .collect();
    let any_reachable = views.iter().any(|v| v.reachable);
    let whole = StatusJson {
        sites: &views,
        notice: &notice,
        maintenance: windows.iter().map(operations::window_view).collect(),
    };
    emit(out, json, &whole, || {
        let mut table = Table::new(&[
            "ENDPOINT",
            "SITE",
            "NAME",
            "ROLE",
            "LEADER",
            "TERM",
            "LOG",
            "COMMIT",
            "APPLIED",
            "STALENESS",
            "ROUTES",
        ]);
        let dash = || "-".to_owned();
        for v in &views {
            let number = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
            table.row(vec![
                v.endpoint.clone(),
                number(v.site_id),
                v.name.clone().unwrap_or_else(dash),
                v.role.clone().unwrap_or_else(|| "unreachable".into()),
                number(v.leader_id),
                number(v.term),
                number(v.last_log_index),
                number(v.commit_index),
                number(v.applied_index),
                v.staleness_ms.map_or_else(dash, |s| format!("{s} ms")),
                number(v.routes),
            ]);
        }
        let mut text = table.render();
        if !windows.is_empty() {
            text.push_str("\nmaintenance:\n");
            text.push_str(&operations::windows_table(&windows));
        }
        if !notice.is_empty() {
            text.push_str(&format!("\nnotice: {notice}\n"));
        }
        text
    })?;
    if !any_reachable {
        let errors: Vec<String> = views.iter().filter_map(|v| v.error.clone()).collect();
        return Err(CliError::NoSiteAnswered(errors.join("; ")));
    }
    Ok(())
}
