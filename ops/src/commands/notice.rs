//! `sbctl notice`.

use std::io::Write;

use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;

use super::CliError;
use super::emit;
use crate::cli::NoticeCommand;

/// `sbctl notice`.
pub(super) async fn notice(
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
