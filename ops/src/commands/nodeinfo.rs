//! `sbctl nodeinfo`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::Directory;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::node_info::NodeInfoDocument;

use super::CliError;
use super::emit;
use crate::cli::Cli;
use crate::operations;
use crate::table::Table;

/// `sbctl nodeinfo`.
pub(super) async fn nodeinfo(
    cli: &Cli,
    client: ClusterClient,
    cache: &Option<PathBuf>,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    let file_cluster = cli
        .target
        .cluster
        .as_ref()
        .map(|p| ClusterFile::load(p))
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let cluster_id = cli
        .target
        .cluster_id
        .clone()
        .or_else(|| file_cluster.map(|f| f.cluster_id))
        .unwrap_or_default();
    let directory = Arc::new(Directory::new(
        &cluster_id,
        client.endpoints(),
        Vec::new(),
        cache.clone(),
    ));
    let client = client.with_directory(directory.clone());
    client.refresh_node_info().await?;
    let document = directory.document().ok_or_else(|| {
        CliError::NoSiteAnswered("no site handed out a node-info document".into())
    })?;
    let view = NodeInfoView::of(&document);
    emit(out, json, &view, || view.render())?;
    Ok(())
}

/// What `sbctl nodeinfo` shows of a verified document.
#[derive(Serialize)]
struct NodeInfoView {
    cluster_id: String,
    era: u64,
    epoch: u64,
    issued_at_unix_ms: u64,
    signing_key_id: u64,
    notice: String,
    sites: Vec<(u64, String, String, bool)>,
    relays: Vec<(String, String, String)>,
    maintenance: Vec<(u64, String, u64, u64, String, String)>,
}

impl NodeInfoView {
    fn of(document: &NodeInfoDocument) -> Self {
        NodeInfoView {
            cluster_id: document.cluster_id.clone(),
            era: document.era,
            epoch: document.epoch,
            issued_at_unix_ms: document.issued_at_ms,
            signing_key_id: document.signing_key_id,
            notice: document.notice.clone(),
            sites: document
                .sites
                .iter()
                .map(|s| (s.site_id, s.name.clone(), s.api_addr.clone(), s.draining))
                .collect(),
            relays: document
                .relays
                .iter()
                .map(|r| {
                    (
                        r.relay_id.clone(),
                        r.endpoint.clone(),
                        r.admin_state.clone(),
                    )
                })
                .collect(),
            maintenance: document
                .maintenance
                .iter()
                .map(|w| {
                    (
                        w.window_id,
                        w.target.clone(),
                        w.start_ms,
                        w.end_ms,
                        w.status.clone(),
                        w.reason.clone(),
                    )
                })
                .collect(),
        }
    }

    fn render(&self) -> String {
        let view = self;
        let mut text = format!(
            "cluster {} era {} epoch {} (signed by key {}; signature verified)\n",
            view.cluster_id, view.era, view.epoch, view.signing_key_id
        );
        if !view.notice.is_empty() {
            text.push_str(&format!("notice: {}\n", view.notice));
        }
        let mut sites = Table::new(&["SITE", "NAME", "API", "MAINTENANCE"]);
        for (id, name, api, draining) in &view.sites {
            sites.row(vec![
                id.to_string(),
                name.clone(),
                api.clone(),
                if *draining { "yes".into() } else { "no".into() },
            ]);
        }
        let mut relays = Table::new(&["RELAY", "ENDPOINT", "ADMIN STATE"]);
        for (id, endpoint, state) in &view.relays {
            relays.row(vec![id.clone(), endpoint.clone(), state.clone()]);
        }
        let mut text = format!("{text}{}{}", sites.render(), relays.render());
        if !view.maintenance.is_empty() {
            let windows: Vec<pb::MaintenanceWindow> = view
                .maintenance
                .iter()
                .map(
                    |(id, target, start, end, status, reason)| pb::MaintenanceWindow {
                        id: *id,
                        target: target.clone(),
                        start_unix_ms: *start,
                        end_unix_ms: *end,
                        reason: reason.clone(),
                        status: status.clone(),
                        created_by: String::new(),
                    },
                )
                .collect();
            text.push_str(&operations::windows_table(&windows));
        }
        text
    }
}
