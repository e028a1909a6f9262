//! The retry engine: every call goes through `call`, which tries the known
//! sites in turn (the last one that answered first, a leader hint before
//! all), waits as long as a rate-limited site asks, and backs off with jitter
//! between rounds until the call's deadline.

use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use backon::BackoffBuilder;
use backon::ExponentialBackoff;
use backon::ExponentialBuilder;
use tonic::Code;
use tonic::Status;
use tonic::transport::Channel;

use super::ClientError;
use super::ClusterClient;
use crate::headers::LEADER_HINT_HEADER;
use crate::headers::REDIRECT_HEADER;
use crate::headers::RETRY_AFTER_HEADER;

/// Whether another site, or the same one later, may answer differently.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted
    )
}

/// Whether the request never reached a site that could answer it: tonic
/// failed to connect, or lost the connection, and made the status itself
/// (it carries the transport error as its source; a status a site sent
/// has none).
fn unreached(status: &Status) -> bool {
    std::error::Error::source(status).is_some() && retryable(status)
}

/// The wait a RESOURCE_EXHAUSTED answer asks for, if it names one.
fn retry_after(status: &Status) -> Option<Duration> {
    if status.code() != Code::ResourceExhausted {
        return None;
    }
    let millis: u64 = status
        .metadata()
        .get(RETRY_AFTER_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(millis.min(RETRY_AFTER_MAX_MS)))
}

/// Longest wait a site may ask for before a retry.
pub const RETRY_AFTER_MAX_MS: u64 = 10_000;

impl ClusterClient {
    /// The pauses between rounds: from `backoff_initial`, doubling, with
    /// jitter so clients that failed together do not retry together, and
    /// no end of its own (the call's deadline ends it). backon keeps the
    /// policy (growth, cap, jitter) in one tested place.
    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.settings.backoff_initial)
            .with_max_delay(self.settings.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Runs `call` against sites until one gives a final answer.
    pub(super) async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_at(call).await.map(|(value, _)| value)
    }

    /// Makes the site after `endpoint` the first one tried: `endpoint`
    /// went stale under a watch.
    pub(super) fn step_past(&self, endpoint: &str) {
        let endpoints = self.endpoints();
        if let Some(index) = endpoints.iter().position(|e| e == endpoint) {
            self.preferred.store(index + 1, Ordering::Relaxed);
        }
    }

    /// `endpoint` could not be reached (a failed connection, no answer in
    /// time, a watch gone quiet): every round tries it last for
    /// `suspect_for`, and the site after it first.
    pub(super) fn suspect(&self, endpoint: &str) {
        self.suspects
            .lock()
            .suspect(endpoint, Instant::now(), self.settings.suspect_for);
        self.step_past(endpoint);
    }

    /// The order of one round: from the preferred site on, suspects last,
    /// a leader hint (which a live site just gave) before all.
    fn round(&self, endpoints: &[String], hinted: Option<String>) -> Vec<String> {
        let first = self.preferred.load(Ordering::Relaxed) % endpoints.len();
        let order: Vec<String> = (0..endpoints.len())
            .map(|i| endpoints[(first + i) % endpoints.len()].clone())
            .collect();
        let mut order = self.suspects.lock().last(order, Instant::now());
        if let Some(leader) = hinted {
            order.retain(|e| e != &leader);
            order.insert(0, leader);
        }
        order
    }

    /// As `call`, also saying which site answered.
    pub(super) async fn call_at<T, F, Fut>(&self, call: F) -> Result<(T, String), ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.settings.call_deadline;
        let mut backoff = self.backoff();
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        let mut last_code = None;
        let mut hinted: Option<String> = None;
        loop {
            let endpoints = self.endpoints();
            if endpoints.is_empty() {
                return Err(ClientError::NoEndpoints);
            }
            for endpoint in self.round(&endpoints, hinted.take()) {
                if Instant::now() >= deadline {
                    break;
                }
                attempts += 1;
                let channel = self.channel(&endpoint)?;
                // Bounded here, not only by the grpc-timeout header: a site
                // that stopped answering (paused, or dark behind a dead
                // link) may never send the error that ends the call.
                let timed =
                    tokio::time::timeout(self.settings.attempt_timeout, call(channel)).await;
                if timed
                    .as_ref()
                    .map_or(true, |answer| answer.as_ref().is_err_and(unreached))
                {
                    self.suspect(&endpoint);
                }
                let answer = timed.unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "no answer within {} ms",
                        self.settings.attempt_timeout.as_millis()
                    )))
                });
                match answer {
                    Ok(value) => {
                        self.suspects.lock().clear(&endpoint);
                        if let Some(index) = endpoints.iter().position(|e| e == &endpoint) {
                            self.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok((value, endpoint));
                    }
                    Err(status) if retry_after(&status).is_some() => {
                        // Rate limited: the site says when to come back.
                        let wait = retry_after(&status).expect("checked above");
                        last = format!("{endpoint}: {:?}: {}", status.code(), status.message());
                        last_code = Some(status.code());
                        tokio::time::sleep(
                            wait.min(deadline.saturating_duration_since(Instant::now())),
                        )
                        .await;
                    }
                    Err(status) if retryable(&status) => {
                        last = format!("{endpoint}: {:?}: {}", status.code(), status.message());
                        last_code = Some(status.code());
                        let hint = status
                            .metadata()
                            .get(LEADER_HINT_HEADER)
                            .or_else(|| status.metadata().get(REDIRECT_HEADER));
                        if let Some(leader) = hint.and_then(|v| v.to_str().ok()) {
                            hinted = Some(leader.to_owned());
                            self.learn_endpoint(leader);
                            break;
                        }
                    }
                    Err(status) => {
                        return Err(ClientError::Refused {
                            endpoint,
                            code: status.code(),
                            message: status.message().to_owned(),
                        });
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Unreachable {
                    deadline_ms: self.settings.call_deadline.as_millis(),
                    attempts,
                    last,
                    last_code,
                });
            }
            if hinted.is_none() {
                let pause = backoff.next().unwrap_or(self.settings.backoff_max);
                tokio::time::sleep(pause.min(self.settings.backoff_max).min(remaining)).await;
            }
        }
    }
}
