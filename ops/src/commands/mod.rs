//! Carrying out sbctl's commands.

mod audit;
mod client_command;
mod host_command;
mod keys_command;
mod leader_command;
mod maintenance_command;
mod members_command;
mod nodeinfo;
mod notice;
mod relay_command;
mod route_command;
mod site_command;
mod snapshot_command;
mod status;
mod topology_command;

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use switchboard_api::ClientError;
use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::Credentials;
use switchboard_api::DevPki;
use switchboard_api::Role;
use switchboard_api::Validity;
use switchboard_api::cluster_domain;
use switchboard_api::identity_name;
use switchboard_proto::v1 as pb;

use std::path::PathBuf;

use crate::cli::CertsCommand;
use crate::cli::Cli;
use crate::cli::Command;
use crate::table::Table;
use crate::untrusted::escaped;
use crate::untrusted::escaped_lines;

/// Why a command failed. The message is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or its input is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A site refused, or none answered in time.
    #[error("{0}")]
    Cluster(#[from] ClientError),
    /// No site gave an answer (status of every site failed).
    #[error("no site answered: {0}")]
    NoSiteAnswered(String),
    /// Stdout or a file could not be written.
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
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(file) = &file {
        endpoints.extend(file.api_endpoints());
    }
    let endpoints = unique_endpoints(endpoints);
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

/// `--endpoints` then `--cluster`'s sites, trimmed, each once, in order:
/// a site named by both is asked once (and listed once by `status`).
fn unique_endpoints(endpoints: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    endpoints
        .into_iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty() && seen.insert(e.clone()))
        .collect()
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
        write!(out, "{}", escaped_lines(&table()))?;
    }
    Ok(())
}

impl CliError {
    /// The exit code: 2 for a usage error, 1 for any other.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Cluster(_) => "cluster",
            CliError::NoSiteAnswered(_) => "no_site_answered",
            CliError::Output(_) => "output",
            CliError::Critical(_) => "critical",
        }
    }
}

#[derive(Serialize)]
struct ErrorView {
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    kind: &'static str,
    /// The gRPC status code a site answered with, if any.
    code: Option<String>,
    message: String,
    exit_code: i32,
}

/// Reports `error` on `err` for people (escaped: a site's message is
/// untrusted text) and, under `--json`, as one JSON object on `out` so that
/// a script reading stdout sees the failure too; a critical finding's
/// command has written its JSON report already, and stdout stays one
/// document. Returns the exit code.
pub fn report(error: &CliError, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let message = error.to_string();
    let _ = writeln!(err, "sbctl: {}", escaped(&message));
    if json && !matches!(error, CliError::Critical(_)) {
        let code = match error {
            CliError::Cluster(cluster) => cluster.code().map(|c| format!("{c:?}")),
            _ => None,
        };
        let view = ErrorView {
            error: ErrorBody {
                kind: error.kind(),
                code,
                message,
                exit_code: error.exit_code(),
            },
        };
        if serde_json::to_writer_pretty(&mut *out, &view).is_ok() {
            let _ = writeln!(out);
        }
    }
    error.exit_code()
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
        Command::Nodeinfo { cache } => nodeinfo::nodeinfo(cli, client, cache, out, json).await?,
        Command::Notice(command) => notice::notice(&client, command, out, json).await?,
        Command::Keys(command) => keys_command::keys_command(&client, command, out, json).await?,
        Command::Host(command) => host_command::host_command(&client, command, out, json).await?,
        Command::Client(command) => {
            client_command::client_command(&client, command, out, json).await?
        }
        Command::Status => status::status(&client, out, json).await?,
        Command::Init => members_command::init(&client, out, json).await?,
        Command::Relay(command) => {
            relay_command::relay_command(&client, command, out, json).await?
        }
        Command::Site(command) => site_command::site_command(&client, command, out, json).await?,
        Command::Maintenance(command) => {
            maintenance_command::maintenance_command(&client, command, out, json).await?
        }
        Command::Snapshot(command) => {
            snapshot_command::snapshot_command(&client, command, out, json).await?
        }
        Command::Topology(command) => {
            topology_command::topology_command(&client, command, out, json).await?
        }
        Command::Audit { limit } => audit::audit(&client, limit, out, json).await?,
        Command::Route(command) => {
            route_command::route_command(&client, command, out, json).await?
        }
        Command::Members(command) => {
            members_command::members_command(&client, command, out, json).await?
        }
        Command::Leader(command) => {
            leader_command::leader_command(&client, command, out, json).await?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_named_by_both_endpoints_and_the_cluster_file_is_asked_once() {
        let named = vec![
            "a:1".to_owned(),
            " b:2 ".to_owned(),
            String::new(),
            "a:1".to_owned(),
            "b:2".to_owned(),
            "c:3".to_owned(),
        ];
        assert_eq!(unique_endpoints(named), ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn a_failure_under_json_is_a_json_object_on_stdout_and_escaped_on_stderr() {
        let error = CliError::Usage("window \x1b[2J is bad".into());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(report(&error, true, &mut out, &mut err), 2);
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON on stdout");
        assert_eq!(json["error"]["kind"], "usage");
        assert_eq!(json["error"]["message"], "window \x1b[2J is bad");
        assert_eq!(json["error"]["exit_code"], 2);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "sbctl: window \\u{1b}[2J is bad\n"
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        report(&error, false, &mut out, &mut err);
        assert!(out.is_empty(), "without --json stdout stays empty");
        let critical = CliError::Critical("two voters share feed-a".into());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(report(&critical, true, &mut out, &mut err), 1);
        assert!(
            out.is_empty(),
            "a critical command wrote its own JSON report"
        );
    }

    use proptest::prelude::*;

    /// Any text the server can hold: control characters, escapes, wide
    /// characters, nothing at all.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("(?s).{0,40}").expect("regex")
    }

    fn labels() -> impl Strategy<Value = std::collections::HashMap<String, String>> {
        proptest::collection::hash_map(text(), text(), 0..3)
    }

    prop_compose! {
        fn relay()(relay_id in text(), endpoint in text(), region in text(), labels in labels(),
                   capacity in any::<u32>(), state in any::<i32>(), incarnation in any::<u64>(),
                   route_count in any::<u32>(), since in any::<u64>()) -> pb::Relay {
            pb::Relay { relay_id, endpoint, region, labels, capacity, state, incarnation,
                        route_count, state_since_unix_ms: since }
        }
    }

    prop_compose! {
        fn member()(site_id in any::<u64>(), name in text(), raft_addr in text(), api_addr in text(),
                    http_addr in text(), voter in any::<bool>(), labels in labels(),
                    matched_index in any::<Option<u64>>(), draining in any::<bool>(),
                    healthy in any::<Option<bool>>()) -> pb::Member {
            pb::Member { site_id, name, raft_addr, api_addr, http_addr, voter, labels,
                         matched_index, draining, healthy }
        }
    }

    prop_compose! {
        fn window()(id in any::<u64>(), target in text(), start_unix_ms in any::<u64>(),
                    end_unix_ms in any::<u64>(), reason in text(), status in text(),
                    created_by in text()) -> pb::MaintenanceWindow {
            pb::MaintenanceWindow { id, target, start_unix_ms, end_unix_ms, reason, status, created_by }
        }
    }

    prop_compose! {
        fn route()(host_id in text(), relay_id in text(), relay_endpoint in text(),
                   generation in any::<u64>(), since_unix_ms in any::<u64>(),
                   preferred_region in text()) -> pb::Route {
            pb::Route { host_id, relay_id, relay_endpoint, generation, since_unix_ms, preferred_region }
        }
    }

    /// What reaches the operator's terminal: no control character but the
    /// line breaks of the layout.
    fn assert_terminal_safe(output: &str) {
        assert!(
            !output.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached the terminal: {output:?}"
        );
    }

    #[test]
    #[should_panic(expected = "a control character reached the terminal")]
    fn the_terminal_check_rejects_a_raw_escape() {
        assert_terminal_safe("site \x1b[2J");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every value of every stored type formats, as a table and as
        /// JSON, without a panic and without a raw control character.
        #[test]
        fn every_stored_value_formats_safely(
            relays in proptest::collection::vec(relay(), 0..4),
            members in proptest::collection::vec(member(), 0..4),
            windows in proptest::collection::vec(window(), 0..4),
            route in route(),
            applied in any::<u64>(),
        ) {
            let views: Vec<RelayView> = relays.iter().map(relay_view).collect();
            assert_terminal_safe(&relays_table(&views));
            assert_terminal_safe(&crate::operations::windows_table(&windows));
            assert_terminal_safe(&route_table(&route_view(&route, applied)));
            for json in [false, true] {
                let mut out = Vec::new();
                members_output(&mut out, json, &members).expect("members format");
                let out = String::from_utf8(out).expect("utf-8");
                if json {
                    serde_json::from_str::<serde_json::Value>(&out).expect("valid JSON");
                } else {
                    assert_terminal_safe(&out);
                }
            }
        }
    }
}
