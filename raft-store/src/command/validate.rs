//! The checks every command passes, at the API edge and again in apply.

use super::*;
use crate::error::Error;
use crate::ids::validate_capacity;
use crate::ids::validate_endpoint;
use crate::ids::validate_labels;
use crate::ids::validate_region;

impl Command {
    /// Checks every field; the same check runs at the API edge and in apply.
    // Over 100 lines on purpose: one flat arm per command, so every rule for
    // every command reads in one place; an arm is a few lines each.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Command::RegisterRelay(registration) => {
                registration.relay_id.validate()?;
                validate_endpoint("endpoint", &registration.endpoint)?;
                validate_region(&registration.region)?;
                validate_labels(&registration.labels)?;
                validate_capacity(registration.capacity)?;
                Ok(())
            }
            Command::SetRelayState { relay_id, .. }
            | Command::RelayDown { relay_id, .. }
            | Command::RemoveRelay { relay_id } => relay_id.validate(),
            Command::AttachHost {
                host_id,
                preferred_region,
            } => {
                host_id.validate()?;
                validate_region(preferred_region)
            }
            Command::DetachHost { host_id } => host_id.validate(),
            Command::DrainBatch {
                relay_id,
                hosts_max,
            } => {
                relay_id.validate()?;
                if *hosts_max == 0 || *hosts_max > DRAIN_BATCH_HOSTS_MAX {
                    return Err(Error::invalid(
                        "hosts_max",
                        format!("must be 1 to {DRAIN_BATCH_HOSTS_MAX}"),
                    ));
                }
                Ok(())
            }
            Command::RelayUp { relay_id, .. } => relay_id.validate(),
            Command::AddSigningKey(key) => {
                crate::ids::validate_cluster_id(&key.cluster_id)?;
                if key.public_key.len() != PUBLIC_KEY_BYTES {
                    return Err(Error::invalid(
                        "public_key",
                        format!("must be {PUBLIC_KEY_BYTES} bytes"),
                    ));
                }
                if key.sealed_private_key.is_empty()
                    || key.sealed_private_key.len() > SEALED_KEY_BYTES_MAX
                {
                    return Err(Error::invalid(
                        "sealed_private_key",
                        format!("must be 1 to {SEALED_KEY_BYTES_MAX} bytes"),
                    ));
                }
                if let Some(endorsement) = &key.endorsement
                    && endorsement.signature.len() != SIGNATURE_BYTES
                {
                    return Err(Error::invalid(
                        "endorsement",
                        format!("must be {SIGNATURE_BYTES} bytes"),
                    ));
                }
                Ok(())
            }
            Command::StartDrain {
                relay_id,
                hosts_per_second,
                ..
            } => {
                relay_id.validate()?;
                if !(DRAIN_RATE_MIN..=DRAIN_RATE_MAX).contains(hosts_per_second) {
                    return Err(Error::invalid(
                        "hosts_per_second",
                        format!("must be {DRAIN_RATE_MIN} to {DRAIN_RATE_MAX}"),
                    ));
                }
                Ok(())
            }
            Command::SetSiteDraining { .. }
            | Command::CancelMaintenance { .. }
            | Command::MaintenancePhase { .. }
            | Command::RestoreBegin { .. }
            | Command::RestoreCommit { .. }
            | Command::RestoreAbort => Ok(()),
            Command::ScheduleMaintenance {
                target,
                start_ms,
                end_ms,
                reason,
            } => {
                if let crate::state::MaintenanceTarget::Relay(relay_id) = target {
                    relay_id.validate()?;
                }
                if end_ms <= start_ms || end_ms - start_ms > MAINTENANCE_WINDOW_MS_CEILING {
                    return Err(Error::invalid(
                        "end",
                        "must be after the start and at most 31 days later",
                    ));
                }
                check_text("reason", reason)
            }
            Command::RecordAudit { action, result } => {
                check_text("action", action)?;
                check_text("result", result)
            }
            Command::RestoreRows { rows } => {
                if rows.is_empty() {
                    return Err(Error::invalid("rows", "a chunk holds at least one row"));
                }
                Ok(())
            }
            Command::SetNotice { text } => {
                if text.len() > NOTICE_BYTES_MAX {
                    return Err(Error::invalid(
                        "notice",
                        format!("at most {NOTICE_BYTES_MAX} bytes"),
                    ));
                }
                if text.chars().any(|c| c.is_control() && c != '\n') {
                    return Err(Error::invalid(
                        "notice",
                        "no control characters except newlines",
                    ));
                }
                Ok(())
            }
        }
    }
}

fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.len() > REASON_BYTES_MAX {
        return Err(Error::invalid(
            field,
            format!("at most {REASON_BYTES_MAX} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "no control characters"));
    }
    Ok(())
}
