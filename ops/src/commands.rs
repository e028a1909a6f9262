//! Carrying out sbctl's commands.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use std::sync::Arc;
use switchboard_api::ClientError;
use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::Credentials;
use switchboard_api::DevPki;
use switchboard_api::Directory;
use switchboard_api::Role;
use switchboard_api::Validity;
use switchboard_api::cluster_domain;
use switchboard_api::identity_name;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::node_info::NodeInfoDocument;

use std::path::PathBuf;

use crate::cli::CertsCommand;
use crate::cli::Cli;
use crate::cli::ClientCommand;
use crate::cli::Command;
use crate::cli::HostCommand;
use crate::cli::KeysCommand;
use crate::cli::LeaderCommand;
use crate::cli::MaintenanceCommand;
use crate::cli::MembersCommand;
use crate::cli::NoticeCommand;
use crate::cli::RelayCommand;
use crate::cli::RouteCommand;
use crate::cli::SiteCommand;
use crate::cli::SnapshotCommand;
use crate::cli::TopologyCommand;
use crate::operations;
use crate::table::Table;

/// Why a command failed. The message is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Cluster(#[from] ClientError),
    #[error("no site answered: {0}")]
    NoSiteAnswered(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// The command ran and found something critical (exit 1).
    #[error("{0}")]
    Critical(String),
}

fn client(cli: &Cli) -> Result<ClusterClient, CliError> {
    let mut endpoints = cli.target.endpoints.clone();
    let file = cli
        .target
        .cluster
        .as_ref()
        .map(|path| ClusterFile::load(path))
        .transpose()
        .map_err(CliError::Usage)?;
    if let Some(file) = &file {
        endpoints.extend(file.api_endpoints());
    }
    endpoints.retain(|e| !e.trim().is_empty());
    if endpoints.is_empty() {
        return Err(CliError::Usage(
            "name the cluster with --endpoints A,B,C or --cluster cluster.json".into(),
        ));
    }
    let deadline = Duration::from_secs(cli.target.timeout_secs.max(1));
    let settings = ClientSettings {
        call_deadline: deadline,
        attempt_timeout: deadline.min(Duration::from_secs(6)),
        ..ClientSettings::default()
    };
    Ok(ClusterClient::new(
        endpoints,
        settings,
        credentials(cli, file.as_ref())?,
    )?)
}

/// TLS and token from flags, falling back to the cluster file.
fn credentials(cli: &Cli, file: Option<&ClusterFile>) -> Result<Credentials, CliError> {
    let target = &cli.target;
    let file_tls = file.and_then(|f| f.tls.as_ref());
    let ca = target
        .ca
        .clone()
        .or_else(|| file_tls.map(|t| PathBuf::from(&t.ca)));
    if target.insecure || (ca.is_none() && file.is_some_and(|f| f.tls.is_none())) {
        return Ok(Credentials::insecure());
    }
    let ca = ca.ok_or_else(|| {
        CliError::Usage("name the CA with --ca (or use --insecure for plaintext sites)".into())
    })?;
    let cluster_id = target
        .cluster_id
        .clone()
        .or_else(|| file.map(|f| f.cluster_id.clone()))
        .ok_or_else(|| {
            CliError::Usage("name the cluster with --cluster-id (or --cluster FILE)".into())
        })?;
    let cert = target
        .cert
        .clone()
        .or_else(|| file_tls.and_then(|t| t.cert.as_ref().map(PathBuf::from)));
    let key = target
        .key
        .clone()
        .or_else(|| file_tls.and_then(|t| t.key.as_ref().map(PathBuf::from)));
    let identity = match (&cert, &key) {
        (Some(cert), Some(key)) if target.token.is_none() => Some((cert.as_path(), key.as_path())),
        (None, None) | (Some(_), Some(_)) => None,
        _ => return Err(CliError::Usage("give both --cert and --key".into())),
    };
    Ok(Credentials::from_files(
        &cluster_id,
        &ca,
        identity,
        target.token.clone(),
    )?)
}

pub(crate) fn emit<T: Serialize>(
    out: &mut dyn Write,
    json: bool,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", table())?;
    }
    Ok(())
}

#[derive(Serialize)]
struct SiteStatusView {
    endpoint: String,
    reachable: bool,
    error: Option<String>,
    site_id: Option<u64>,
    name: Option<String>,
    role: Option<String>,
    leader_id: Option<u64>,
    term: Option<u64>,
    last_log_index: Option<u64>,
    commit_index: Option<u64>,
    applied_index: Option<u64>,
    staleness_ms: Option<u64>,
    relays: Option<u64>,
    routes: Option<u64>,
}

#[derive(Serialize)]
struct RelayView {
    relay_id: String,
    endpoint: String,
    region: String,
    state: String,
    routes: u32,
    capacity: u32,
    incarnation: u64,
    labels: std::collections::BTreeMap<String, String>,
}

fn relay_view(relay: &pb::Relay) -> RelayView {
    let state = pb::RelayState::try_from(relay.state).unwrap_or(pb::RelayState::Unspecified);
    RelayView {
        relay_id: relay.relay_id.clone(),
        endpoint: relay.endpoint.clone(),
        region: relay.region.clone(),
        state: state
            .as_str_name()
            .trim_start_matches("RELAY_STATE_")
            .to_lowercase(),
        routes: relay.route_count,
        capacity: relay.capacity,
        incarnation: relay.incarnation,
        labels: relay.labels.clone().into_iter().collect(),
    }
}

#[derive(Serialize)]
struct RouteView {
    host_id: String,
    relay_id: String,
    relay_endpoint: String,
    generation: u64,
    since_unix_ms: u64,
    applied_index: u64,
    staleness_ms: Option<u64>,
    served_by_site: Option<u64>,
}

fn route_view(route: &pb::Route, applied_index: u64) -> RouteView {
    RouteView {
        host_id: route.host_id.clone(),
        relay_id: route.relay_id.clone(),
        relay_endpoint: route.relay_endpoint.clone(),
        generation: route.generation,
        since_unix_ms: route.since_unix_ms,
        applied_index,
        staleness_ms: None,
        served_by_site: None,
    }
}

fn route_table(route: &RouteView) -> String {
    let mut table = Table::new(&[
        "HOST",
        "RELAY",
        "ENDPOINT",
        "GENERATION",
        "APPLIED",
        "STALENESS",
        "SITE",
    ]);
    table.row(vec![
        route.host_id.clone(),
        route.relay_id.clone(),
        route.relay_endpoint.clone(),
        route.generation.to_string(),
        route.applied_index.to_string(),
        route
            .staleness_ms
            .map_or_else(|| "-".into(), |s| format!("{s} ms")),
        route
            .served_by_site
            .map_or_else(|| "-".into(), |s| s.to_string()),
    ]);
    table.render()
}

#[derive(Serialize)]
struct MemberView {
    site_id: u64,
    name: String,
    voter: bool,
    raft: String,
    api: String,
    http: String,
    matched_index: Option<u64>,
    /// The leader's view: acknowledged it recently.
    healthy: Option<bool>,
    /// Out of client service.
    draining: bool,
    labels: std::collections::BTreeMap<String, String>,
}

fn members_output(out: &mut dyn Write, json: bool, members: &[pb::Member]) -> Result<(), CliError> {
    let views: Vec<MemberView> = members
        .iter()
        .map(|m| MemberView {
            site_id: m.site_id,
            name: m.name.clone(),
            voter: m.voter,
            raft: m.raft_addr.clone(),
            api: m.api_addr.clone(),
            http: m.http_addr.clone(),
            matched_index: m.matched_index,
            healthy: m.healthy,
            draining: m.draining,
            labels: m.labels.clone().into_iter().collect(),
        })
        .collect();
    emit(out, json, &views, || {
        let mut table = Table::new(&[
            "SITE", "NAME", "VOTER", "HEALTHY", "SERVICE", "RAFT", "API", "MATCHED", "LABELS",
        ]);
        for m in &views {
            table.row(vec![
                m.site_id.to_string(),
                m.name.clone(),
                if m.voter {
                    "yes".into()
                } else {
                    "learner".into()
                },
                match m.healthy {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                if m.draining {
                    "drained".into()
                } else {
                    "serving".into()
                },
                m.raft.clone(),
                m.api.clone(),
                m.matched_index
                    .map_or_else(|| "-".into(), |i| i.to_string()),
                m.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]);
        }
        table.render()
    })
}

/// Runs one sbctl command, writing its output to `out`.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let json = cli.json;
    if let Command::Certs(command) = &cli.command {
        return certs(command, out, json);
    }
    let client = client(cli)?;
    match &cli.command {
        Command::Certs(_) => unreachable!("handled above"),
        Command::Nodeinfo { cache } => nodeinfo(cli, client, cache, out, json).await?,
        Command::Notice(command) => notice(&client, command, out, json).await?,
        Command::Keys(command) => keys_command(&client, command, out, json).await?,
        Command::Host(command) => host_command(&client, command, out, json).await?,
        Command::Client(command) => client_command(&client, command, out, json).await?,
        Command::Status => status(&client, out, json).await?,
        Command::Relay(command) => relay_command(&client, command, out, json).await?,
        Command::Site(command) => site_command(&client, command, out, json).await?,
        Command::Maintenance(command) => maintenance_command(&client, command, out, json).await?,
        Command::Snapshot(command) => snapshot_command(&client, command, out, json).await?,
        Command::Topology(command) => topology_command(&client, command, out, json).await?,
        Command::Audit { limit } => audit(&client, limit, out, json).await?,
        Command::Route(command) => route_command(&client, command, out, json).await?,
        Command::Members(command) => members_command(&client, command, out, json).await?,
        Command::Leader(command) => leader_command(&client, command, out, json).await?,
    }
    Ok(())
}

/// `sbctl nodeinfo`.
async fn nodeinfo(
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
        .map_err(CliError::Usage)?;
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

/// `sbctl notice`.
async fn notice(
    client: &ClusterClient,
    command: &NoticeCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    let text = match command {
        NoticeCommand::Set { text } => text.clone(),
        NoticeCommand::Clear => String::new(),
    };
    let response = client.set_notice(&new_request_id(), &text).await?;
    let version = response.current.unwrap_or_default();
    emit(out, json, &(version.era, version.epoch), || {
        format!(
            "notice {}; node info is now at era {} epoch {}\n",
            if text.is_empty() { "cleared" } else { "set" },
            version.era,
            version.epoch
        )
    })?;
    Ok(())
}

/// `sbctl keys`.
async fn keys_command(
    client: &ClusterClient,
    command: &KeysCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate => {
            let response = client.rotate_signing_key(&new_request_id()).await?;
            let version = response.current.unwrap_or_default();
            emit(out, json, &(version.era, version.epoch), || {
                format!(
                    "new signing key in use from node info era {} epoch {}\n",
                    version.era, version.epoch
                )
            })?;
        }
    }
    Ok(())
}

/// `sbctl host`.
async fn host_command(
    client: &ClusterClient,
    command: &HostCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        HostCommand::Enroll { host_id, ttl_days } => {
            let response = client
                .issue_token(
                    pb::TokenRole::Host,
                    host_id,
                    ttl_days.saturating_mul(86_400),
                )
                .await?;
            emit_token(out, json, host_id, &response)?;
        }
        HostCommand::Attach { host_id, region } => {
            let response = client.attach(&new_request_id(), host_id, region).await?;
            let route = response
                .route
                .as_ref()
                .map(|r| route_view(r, response.applied_index));
            let route =
                route.ok_or_else(|| CliError::Usage("the site answered without a route".into()))?;
            emit(out, json, &route, || route_table(&route))?;
        }
        HostCommand::Detach { host_id } => {
            let response = client.detach(&new_request_id(), host_id).await?;
            #[derive(Serialize)]
            struct Detached {
                host_id: String,
                was_attached: bool,
                last_generation: u64,
                applied_index: u64,
            }
            let view = Detached {
                host_id: host_id.clone(),
                was_attached: response.was_attached,
                last_generation: response.last_generation,
                applied_index: response.applied_index,
            };
            emit(out, json, &view, || {
                if view.was_attached {
                    format!(
                        "detached {} (was generation {})\n",
                        view.host_id, view.last_generation
                    )
                } else {
                    format!("{} had no route\n", view.host_id)
                }
            })?;
        }
    }
    Ok(())
}

/// `sbctl client`.
async fn client_command(
    client: &ClusterClient,
    command: &ClientCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        ClientCommand::Token { name, ttl_days } => {
            let response = client
                .issue_token(pb::TokenRole::Client, name, ttl_days.saturating_mul(86_400))
                .await?;
            emit_token(out, json, name, &response)?;
        }
    }
    Ok(())
}

/// `sbctl status`.
async fn status(client: &ClusterClient, out: &mut dyn Write, json: bool) -> Result<(), CliError> {
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
    emit(out, json, &views, || {
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

/// `sbctl relay`.
async fn relay_command(
    client: &ClusterClient,
    command: &RelayCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        RelayCommand::Register {
            relay_id,
            endpoint,
            capacity,
            region,
            labels,
            incarnation,
        } => {
            let request = pb::RegisterRelayRequest {
                request_id: new_request_id(),
                relay_id: relay_id.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                labels: labels.iter().cloned().collect(),
                capacity: *capacity,
                incarnation: *incarnation,
            };
            let response = client.register_relay(request).await?;
            let relays: Vec<RelayView> = response.relay.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
        RelayCommand::Remove { relay_id } => {
            let response = client.remove_relay(&new_request_id(), relay_id).await?;
            #[derive(Serialize)]
            struct Removed<'a> {
                relay_id: &'a str,
                applied_index: u64,
            }
            let view = Removed {
                relay_id,
                applied_index: response.applied_index,
            };
            emit(out, json, &view, || format!("removed relay {relay_id}\n"))?;
        }
        RelayCommand::Drain {
            relay_id,
            rate,
            deadline,
            wait,
            force,
        } => {
            let request = operations::DrainRequest {
                relay_id,
                rate: *rate,
                deadline: deadline.as_deref(),
                wait: *wait,
                force: *force,
            };
            operations::drain_relay(client, out, json, request).await?;
        }
        RelayCommand::Undrain { relay_id } => {
            let response = client.undrain_relay(relay_id).await?;
            let relays: Vec<RelayView> = response.relay.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
        RelayCommand::List => {
            let response = client.list_relays().await?;
            let relays: Vec<RelayView> = response.relays.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
    }
    Ok(())
}

/// `sbctl site`.
async fn site_command(
    client: &ClusterClient,
    command: &SiteCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        SiteCommand::Drain { site_id, force } => {
            operations::site_drain(client, out, json, *site_id, Some(*force)).await?;
        }
        SiteCommand::Undrain { site_id } => {
            operations::site_drain(client, out, json, *site_id, None).await?;
        }
    }
    Ok(())
}

/// `sbctl maintenance`.
async fn maintenance_command(
    client: &ClusterClient,
    command: &MaintenanceCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        MaintenanceCommand::Schedule {
            target,
            start,
            end,
            reason,
        } => {
            operations::schedule_maintenance(client, out, json, target, start, end, reason).await?;
        }
        MaintenanceCommand::List => {
            operations::list_or_cancel_maintenance(client, out, json, None).await?;
        }
        MaintenanceCommand::Cancel { window_id } => {
            operations::list_or_cancel_maintenance(client, out, json, Some(*window_id)).await?;
        }
    }
    Ok(())
}

/// `sbctl snapshot`.
async fn snapshot_command(
    client: &ClusterClient,
    command: &SnapshotCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        SnapshotCommand::Save { file } => {
            operations::save_snapshot(client, out, json, file).await?;
        }
        SnapshotCommand::Restore {
            file,
            yes_replace_state,
        } => {
            operations::restore_snapshot(client, out, json, file, *yes_replace_state).await?;
        }
    }
    Ok(())
}

/// `sbctl topology`.
async fn topology_command(
    client: &ClusterClient,
    command: &TopologyCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        TopologyCommand::Check {
            capacity_share,
            all,
        } => {
            operations::topology_check(client, out, json, *capacity_share, *all).await?;
        }
    }
    Ok(())
}

/// `sbctl audit`.
async fn audit(
    client: &ClusterClient,
    limit: &u32,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    operations::audit(client, out, json, *limit).await?;
    Ok(())
}

/// `sbctl route`.
async fn route_command(
    client: &ClusterClient,
    command: &RouteCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        RouteCommand::Get {
            host_id,
            linearizable,
            max_stale_ms,
        } => {
            let consistency = if *linearizable {
                pb::Consistency::Linearizable
            } else {
                pb::Consistency::Local
            };
            let response = client.resolve(host_id, consistency, *max_stale_ms).await?;
            let route = response
                .route
                .as_ref()
                .ok_or_else(|| CliError::Usage("the site answered without a route".into()))?;
            let mut view = route_view(route, response.applied_index);
            view.staleness_ms = Some(response.staleness_ms).filter(|s| *s != u64::MAX);
            view.served_by_site = Some(response.served_by_site);
            emit(out, json, &view, || route_table(&view))?;
        }
    }
    Ok(())
}

/// `sbctl members`.
async fn members_command(
    client: &ClusterClient,
    command: &MembersCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        MembersCommand::List => {
            let statuses = client.status_all().await;
            let leader_view = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .find(|s| s.role == "leader")
                .or_else(|| statuses.iter().filter_map(|(_, s)| s.as_ref().ok()).next())
                .ok_or_else(|| CliError::NoSiteAnswered("no site answered status".into()))?;
            members_output(out, json, &leader_view.members)?;
        }
        MembersCommand::AddLearner {
            id,
            name,
            raft,
            api,
            http,
            wait,
            wait_secs,
        } => {
            let site = pb::SiteEndpoints {
                site_id: *id,
                name: name.clone(),
                raft_addr: raft.clone(),
                api_addr: api.clone(),
                http_addr: http.clone(),
                labels: Default::default(),
            };
            let response = client.add_learner(site).await?;
            if *wait {
                let mut last_percent = None;
                let took = client
                    .wait_caught_up(*id, Duration::from_secs(*wait_secs), |matched, target| {
                        let percent = matched.min(target) * 100 / target.max(1);
                        if last_percent != Some(percent) {
                            eprintln!(
                                "site {id}: replicated {matched} of {target} entries ({percent}%)"
                            );
                            last_percent = Some(percent);
                        }
                    })
                    .await?;
                eprintln!("site {id} caught up in {:.1} s", took.as_secs_f64());
            }
            members_output(out, json, &response.members)?;
        }
        MembersCommand::Promote { site_id, force } => {
            let response = client.promote_voter(*site_id, *force).await?;
            members_output(out, json, &response.members)?;
        }
        MembersCommand::Remove { site_id, force } => {
            let response = client.remove_member(*site_id, *force).await?;
            members_output(out, json, &response.members)?;
        }
    }
    Ok(())
}

/// `sbctl leader`.
async fn leader_command(
    client: &ClusterClient,
    command: &LeaderCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        LeaderCommand::Transfer { to, force } => {
            let response = client.transfer_leader(to.unwrap_or(0), *force).await?;
            #[derive(Serialize)]
            struct Transferred {
                new_leader_id: u64,
            }
            let view = Transferred {
                new_leader_id: response.new_leader_id,
            };
            emit(out, json, &view, || {
                format!("site {} now leads\n", view.new_leader_id)
            })?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct TokenView<'a> {
    subject: &'a str,
    token: &'a str,
    expires_at_unix_ms: u64,
}

fn emit_token(
    out: &mut dyn Write,
    json: bool,
    subject: &str,
    response: &pb::IssueTokenResponse,
) -> Result<(), CliError> {
    let view = TokenView {
        subject,
        token: &response.token,
        expires_at_unix_ms: response.expires_at_unix_ms,
    };
    emit(out, json, &view, || format!("{}\n", response.token))
}

fn role(name: &str) -> Result<Role, CliError> {
    match name {
        "site" => Ok(Role::Site),
        "relay" => Ok(Role::Relay),
        "admin" => Ok(Role::Admin),
        "client" => Ok(Role::Client),
        other => Err(CliError::Usage(format!(
            "unknown role {other:?}: site, relay, admin or client"
        ))),
    }
}

/// `sbctl certs ...`: local files only.
fn certs(command: &CertsCommand, out: &mut dyn Write, json: bool) -> Result<(), CliError> {
    let setup = |e: switchboard_api::ApiError| CliError::Usage(e.to_string());
    let (pki, issued): (DevPki, Vec<(Role, String)>) = match command {
        CertsCommand::Init {
            dir,
            cluster_id,
            sites,
            relays,
            admin,
            client,
        } => {
            let mut identities: Vec<(Role, String)> = (1..=*sites)
                .map(|id| (Role::Site, id.to_string()))
                .collect();
            identities.extend(relays.iter().map(|relay| (Role::Relay, relay.clone())));
            identities.push((Role::Admin, admin.clone()));
            identities.push((Role::Client, client.clone()));
            let pki = DevPki::init(dir, cluster_id, &identities).map_err(setup)?;
            (pki, identities)
        }
        CertsCommand::Issue {
            dir,
            cluster_id,
            role: name,
            id,
            days,
        } => {
            let pki = DevPki {
                dir: dir.clone(),
                cluster_id: cluster_id.clone(),
            };
            let role = role(name)?;
            pki.issue(role, id, Validity::days(*days)).map_err(setup)?;
            (pki, vec![(role, id.clone())])
        }
    };
    #[derive(Serialize)]
    struct Issued {
        role: &'static str,
        id: String,
        name: String,
        cert: String,
        key: String,
    }
    let domain = cluster_domain(&pki.cluster_id);
    let views: Vec<Issued> = issued
        .iter()
        .map(|(role, id)| {
            let paths = pki.paths(*role, id);
            Issued {
                role: role.label(),
                id: id.clone(),
                name: identity_name(*role, id, &domain),
                cert: paths.cert.display().to_string(),
                key: paths.key.display().to_string(),
            }
        })
        .collect();
    emit(out, json, &views, || {
        let mut table = Table::new(&["ROLE", "ID", "NAME", "CERTIFICATE"]);
        for v in &views {
            table.row(vec![
                v.role.into(),
                v.id.clone(),
                v.name.clone(),
                v.cert.clone(),
            ]);
        }
        format!(
            "{}CA: {}\ntoken key: {}\n",
            table.render(),
            pki.ca_path().display(),
            pki.token_key_path().display()
        )
    })
}

fn relays_table(relays: &[RelayView]) -> String {
    let mut table = Table::new(&[
        "RELAY",
        "STATE",
        "REGION",
        "ROUTES",
        "CAPACITY",
        "ENDPOINT",
        "INCARNATION",
    ]);
    for r in relays {
        table.row(vec![
            r.relay_id.clone(),
            r.state.clone(),
            r.region.clone(),
            r.routes.to_string(),
            r.capacity.to_string(),
            r.endpoint.clone(),
            r.incarnation.to_string(),
        ]);
    }
    table.render()
}
