//! Whether this site should take client traffic: one judgement for
//! `/readyz` on the HTTP plane and for `grpc.health.v1` on the API port, so
//! a load balancer and a gRPC probe never disagree.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1::API_SERVICES;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::site::Site;

/// How often the gRPC health status is judged again: a probe sees a site
/// fall behind or get drained within this (well under an election timeout).
pub const HEALTH_POLL_MS: u64 = 250;

/// Why a site should or should not take client traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// It knows a leader and is no staler than the bound.
    Ready,
    /// Drained for maintenance: clients go elsewhere.
    Drained,
    /// No leader known (an election, or cut off from a quorum).
    NoLeader,
    /// It knows a leader but has not caught up with it within the bound.
    Stale {
        staleness_ms: Option<u64>,
        bound_ms: u64,
    },
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Ready => write!(f, "ready"),
            Readiness::Drained => write!(f, "drained for maintenance"),
            Readiness::NoLeader => write!(f, "no leader known"),
            Readiness::Stale {
                staleness_ms,
                bound_ms,
            } => write!(f, "stale: {staleness_ms:?} ms, bound {bound_ms} ms"),
        }
    }
}

/// This site's readiness, stale past `bound_ms` (the caller sizes it from
/// the election timeout).
pub fn readiness(site: &Site, bound_ms: u64) -> Readiness {
    if site.is_draining() {
        return Readiness::Drained;
    }
    match (site.leader(), site.staleness_ms()) {
        (None, _) => Readiness::NoLeader,
        (Some(_), Some(staleness)) if staleness <= bound_ms => Readiness::Ready,
        (Some(_), staleness_ms) => Readiness::Stale {
            staleness_ms,
            bound_ms,
        },
    }
}

/// Keeps `reporter` (the API port's `grpc.health.v1`) equal to this site's
/// readiness, for the whole server ("") and each API service, until `stop`.
pub async fn run_health_reporter(
    site: Arc<Site>,
    reporter: HealthReporter,
    bound_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_millis(HEALTH_POLL_MS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let ready = readiness(&site, bound_ms);
        let status = serving_status(&ready);
        if reported != Some(status) {
            tracing::info!(site = site.id, %ready, "health: {status:?}");
            set_all(&reporter, status).await;
            reported = Some(status);
        }
    }
    // Stopping: probes move on before the port closes.
    set_all(&reporter, ServingStatus::NotServing).await;
}

/// SERVING only when ready.
fn serving_status(ready: &Readiness) -> ServingStatus {
    match ready {
        Readiness::Ready => ServingStatus::Serving,
        _ => ServingStatus::NotServing,
    }
}

/// Sets `status` for the server as a whole and for every API service.
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in API_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}
