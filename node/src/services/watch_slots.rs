//! Caps on watch streams, per identity and per site: a watch holds a task
//! and a buffer of `WATCH_BUFFER_MESSAGES` for as long as its caller keeps
//! it open, so one token must not be able to open thousands.

use std::sync::Arc;

use switchboard_api::per_source::Held;
use switchboard_api::per_source::PerSource;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::services::auth::Principal;
use crate::services::auth::RETRY_AFTER_HEADER;

/// Watches one relay, host or client identity may hold on one site. A host
/// watches its route, a relay its hosts, a portal a few hosts; reconnects
/// overlap for a moment. Operators (and sites) are not capped here: their
/// tools (a simulator, a gateway under an admin certificate) hold many.
pub const WATCHES_PER_IDENTITY_MAX: usize = 32;
/// Watches one site holds at once, from everyone: at a few KiB each (a task
/// and its buffer when idle), 100,000 take a few hundred MiB.
pub const WATCHES_PER_SITE_MAX: usize = 100_000;
/// When a refused caller should try again: watches end when callers go.
const RETRY_AFTER_MS: u64 = 1_000;

/// The watch slots of one site.
pub struct WatchSlots {
    per_identity: Arc<PerSource<String>>,
    per_identity_max: usize,
    site: Arc<Semaphore>,
    site_max: usize,
}

/// One open watch's slots; given back when the watch ends.
pub struct WatchSlot {
    _identity: Option<Held<String>>,
    _site: OwnedSemaphorePermit,
}

impl Default for WatchSlots {
    fn default() -> Self {
        WatchSlots::new(WATCHES_PER_IDENTITY_MAX, WATCHES_PER_SITE_MAX)
    }
}

impl WatchSlots {
    /// At most `per_identity_max` watches per identity, `site_max` in all.
    pub fn new(per_identity_max: usize, site_max: usize) -> Self {
        WatchSlots {
            per_identity: PerSource::new(per_identity_max),
            per_identity_max,
            site: Arc::new(Semaphore::new(site_max)),
            site_max,
        }
    }

    /// Slots for one more watch by `principal`, or RESOURCE_EXHAUSTED with
    /// a retry hint.
    pub fn take(&self, principal: &Principal) -> Result<WatchSlot, Status> {
        let identity = match principal.rate_key() {
            Some(key) => Some(self.per_identity.try_hold(key).ok_or_else(|| {
                exhausted(format!(
                    "{principal} holds {} watches on this site already; close one",
                    self.per_identity_max
                ))
            })?),
            None => None,
        };
        let site = self.site.clone().try_acquire_owned().map_err(|_| {
            exhausted(format!(
                "this site holds {} watches; try another site",
                self.site_max
            ))
        })?;
        Ok(WatchSlot {
            _identity: identity,
            _site: site,
        })
    }
}

fn exhausted(message: String) -> Status {
    metrics::counter!("switchboard_watches_refused_total").increment(1);
    let mut status = Status::resource_exhausted(message);
    status
        .metadata_mut()
        .insert(RETRY_AFTER_HEADER, MetadataValue::from(RETRY_AFTER_MS));
    status
}
