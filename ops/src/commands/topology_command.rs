//! `sbctl topology`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use crate::cli::TopologyCommand;
use crate::operations;

/// `sbctl topology`.
pub(super) async fn topology_command(
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
