//! `sbctl site`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use crate::cli::SiteCommand;
use crate::operations;

/// `sbctl site`.
pub(super) async fn site_command(
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
