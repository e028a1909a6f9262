//! `sbctl keys`.

use std::io::Write;

use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;

use super::CliError;
use super::emit;
use crate::cli::KeysCommand;

/// `sbctl keys`.
pub(super) async fn keys_command(
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
