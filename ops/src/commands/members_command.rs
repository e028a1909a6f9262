//! `sbctl members`.

use std::io::Write;
use std::time::Duration;

use switchboard_api::ClusterClient;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::members_output;
use crate::cli::MembersCommand;

/// The labels a new site's config gives it, asked of the site itself; none
/// (with a warning) if it does not answer.
async fn own_labels(
    client: &ClusterClient,
    api: &str,
) -> std::collections::HashMap<String, String> {
    match client.status_of(api).await {
        Ok(status) => {
            let labels = status.own.map(|own| own.labels).unwrap_or_default();
            if labels.is_empty() {
                eprintln!("warning: site at {api} has no failure-domain labels in its config");
            }
            labels
        }
        Err(error) => {
            eprintln!(
                "warning: could not ask {api} for its labels ({error}); adding it without any (give --label key=value)"
            );
            Default::default()
        }
    }
}

/// `sbctl init`: every known site, as it describes itself, becomes a
/// first voter; the first site is asked to initialize.
pub(super) async fn init(
    client: &ClusterClient,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    let endpoints = client.endpoints();
    let mut voters = Vec::new();
    for endpoint in &endpoints {
        let status = client.status_of(endpoint).await.map_err(|error| {
            CliError::NoSiteAnswered(format!(
                "{endpoint} did not answer ({error}); every site must be up"
            ))
        })?;
        let own = status.own.ok_or_else(|| {
            CliError::Usage(format!("{endpoint} does not describe itself: upgrade it"))
        })?;
        voters.push(own);
    }
    let first = endpoints
        .first()
        .ok_or_else(|| CliError::Usage("name the sites with --endpoints or --cluster".into()))?;
    client.initialize(first, voters.clone()).await?;
    let members: Vec<pb::Member> = voters
        .into_iter()
        .map(|site| pb::Member {
            site_id: site.site_id,
            name: site.name,
            raft_addr: site.raft_addr,
            api_addr: site.api_addr,
            http_addr: site.http_addr,
            voter: true,
            labels: site.labels,
            ..Default::default()
        })
        .collect();
    members_output(out, json, &members)
}

/// `sbctl members`.
pub(super) async fn members_command(
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
            labels,
            wait,
            wait_secs,
        } => {
            let labels = match labels.is_empty() {
                false => labels.iter().cloned().collect(),
                true => own_labels(client, api).await,
            };
            let site = pb::SiteEndpoints {
                site_id: *id,
                name: name.clone(),
                raft_addr: raft.clone(),
                api_addr: api.clone(),
                http_addr: http.clone(),
                labels,
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
