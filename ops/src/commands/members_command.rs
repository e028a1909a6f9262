//! `sbctl members`.

use std::io::Write;
use std::time::Duration;

use switchboard_api::ClusterClient;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::members_output;
use crate::cli::MembersCommand;

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
