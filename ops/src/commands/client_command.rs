//! `sbctl client`.

use std::io::Write;

use switchboard_api::ClusterClient;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::emit_token;
use crate::cli::ClientCommand;

/// `sbctl client`.
pub(super) async fn client_command(
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
