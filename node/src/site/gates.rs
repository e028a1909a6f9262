//! Who this site turns away: everyone while it is drained, and relays the
//! cluster removed.

use switchboard_api::ApiError;
use switchboard_api::headers::REDIRECT_HEADER;

use super::Site;
use crate::services::auth::Principal;

impl Site {
    /// Whether this site is drained out of client service.
    pub fn is_draining(&self) -> bool {
        self.reader
            .load()
            .state
            .sites()
            .any(|(id, site)| *id == self.id && site.draining)
    }

    /// Sends callers elsewhere while this site is drained: UNAVAILABLE with
    /// the address of a site in service.
    pub fn refuse_if_draining(&self) -> Result<(), tonic::Status> {
        if !self.is_draining() {
            return Ok(());
        }
        let mut status = tonic::Status::unavailable(format!(
            "site {} is drained for maintenance; use another site",
            self.id
        ));
        let elsewhere = self
            .reader
            .load()
            .state
            .sites()
            .find(|(id, site)| **id != self.id && !site.draining)
            .map(|(_, site)| site.api_addr.clone());
        if let Some(addr) = elsewhere
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(addr.as_str())
        {
            status.metadata_mut().insert(REDIRECT_HEADER, value);
        }
        Err(status)
    }

    /// Refuses a relay that was removed: its certificate stays valid as a
    /// certificate, but the cluster no longer accepts it.
    pub fn refuse_removed_relay(&self, principal: &Principal) -> Result<(), ApiError> {
        if let Principal::Relay(relay_id) = principal
            && self.reader.load().state.is_removed_relay(relay_id)
        {
            return Err(ApiError::PermissionDenied(format!(
                "relay {relay_id} was removed from the cluster; its certificate is refused"
            )));
        }
        Ok(())
    }
}
