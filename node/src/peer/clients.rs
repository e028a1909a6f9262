//! Pooled gRPC channels to other sites' raft ports.
//!
//! One lazily connected HTTP/2 channel per peer, shared by Raft
//! replication, forwarded writes and read-index calls. With TLS, a site
//! presents its own certificate and checks that the peer's names the site
//! it meant to reach (`<id>.site.<cluster>.switchboard`). Every request also
//! carries the cluster id and the target site, so a message that reaches the
//! wrong cluster or a reused address is refused there.
//!
//! A channel whose calls have failed without an answer for a leader lease
//! ([`PeerTiming::reconnect_after`]) is replaced by a fresh connection at
//! the next call that fails. A cut that drops one site's packets to
//! another leaves the TCP connection under the channel wedged after the
//! cut heals: its retransmissions backed off while the packets vanished,
//! and every call queued on it times out until TCP tries again, seconds
//! later. The keepalive (seconds too) would notice eventually; a new
//! connection answers at once. At most one new connection per lease per
//! peer while it stays silent.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use switchboard_proto::v1::raft_peer_client::RaftPeerClient;
use switchboard_raft_store::ids::SiteId;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use switchboard_api::Role;
use switchboard_api::cluster_domain;
use switchboard_api::identity_name;
use switchboard_api::limits;
use switchboard_api::tls::TlsMaterial;

/// Metadata key: the cluster a peer request belongs to.
pub const CLUSTER_HEADER: &str = "x-switchboard-cluster";
/// Metadata key: the site a peer request is meant for.
pub const TARGET_SITE_HEADER: &str = "x-switchboard-target-site";

/// A pooled channel and since when its calls have gone unanswered.
struct Pooled {
    channel: Channel,
    /// The first call that failed without an answer since the last answer.
    failing_since: Option<Instant>,
}

/// How long a connection to a peer may take to open and may stay silent,
/// from the cluster's Raft timing.
#[derive(Clone, Copy, Debug)]
pub struct PeerTiming {
    /// Time to open a TCP connection (the TLS handshake has
    /// `handshake_timeout`): two heartbeat intervals, four round trips or
    /// more (the timing asks for a heartbeat of two round trips at least).
    /// A connection attempt whose SYN a cut dropped is given up and made
    /// again, not left to TCP's one-second SYN retransmission.
    pub connect_timeout: Duration,
    /// Time for the TLS handshake: the leader lease. Calls waiting for a
    /// connection have no timeout of their own (tonic starts it once
    /// connected), so a handshake stalled by a cut must fail by itself.
    pub handshake_timeout: Duration,
    /// How long calls may fail without an answer before a failing call
    /// replaces the channel: the leader lease, several heartbeats.
    pub reconnect_after: Duration,
}

impl PeerTiming {
    /// The peer timing of a cluster with `timing`.
    pub fn of(timing: &crate::config::Timing) -> Self {
        PeerTiming {
            connect_timeout: Duration::from_millis(2 * timing.heartbeat_ms),
            handshake_timeout: Duration::from_millis(timing.election_max_ms),
            reconnect_after: Duration::from_millis(timing.election_max_ms),
        }
    }
}

/// Channels to peers, one per site and address.
#[derive(Clone)]
pub struct PeerClients {
    cluster_id: Arc<str>,
    tls: Option<Arc<ArcSwapOption<TlsMaterial>>>,
    /// By site, then address (looked up without allocating).
    channels: Arc<Mutex<HashMap<SiteId, HashMap<String, Pooled>>>>,
    timing: PeerTiming,
}

/// Whether a failed call heard nothing from the peer rather than a status
/// the peer sent: tonic makes the status of a timeout, a failed connect or
/// a broken connection from an error it keeps as the source; a status
/// decoded from the peer's answer has none.
fn is_silence(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// A call in flight to a peer (see [`PeerClients::begin`]).
pub struct PendingCall<'a> {
    peers: &'a PeerClients,
    target: SiteId,
    addr: &'a str,
    ended: bool,
}

impl PendingCall<'_> {
    /// Notes how the call ended.
    pub fn end<T>(mut self, result: &Result<T, tonic::Status>) {
        self.ended = true;
        self.peers.note(self.target, self.addr, result);
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.peers.unanswered(self.target, self.addr);
        }
    }
}

/// The pooled channel to site `target` at `addr`, if any.
fn pooled_in<'a>(
    channels: &'a mut HashMap<SiteId, HashMap<String, Pooled>>,
    target: SiteId,
    addr: &str,
) -> Option<&'a mut Pooled> {
    channels.get_mut(&target)?.get_mut(addr)
}

impl PeerClients {
    /// Plaintext channels (the `insecure` setting).
    pub fn insecure(cluster_id: &str, timing: PeerTiming) -> Self {
        PeerClients {
            cluster_id: cluster_id.into(),
            tls: None,
            channels: Default::default(),
            timing,
        }
    }

    /// Mutual-TLS channels presenting `material`'s certificate.
    pub fn tls(cluster_id: &str, material: TlsMaterial, timing: PeerTiming) -> Self {
        PeerClients {
            cluster_id: cluster_id.into(),
            tls: Some(Arc::new(ArcSwapOption::from_pointee(material))),
            channels: Default::default(),
            timing,
        }
    }

    /// Notes that site `target` at `addr` answered a call.
    pub fn answered(&self, target: SiteId, addr: &str) {
        if let Some(pooled) = pooled_in(&mut self.channels.lock(), target, addr) {
            pooled.failing_since = None;
        }
    }

    /// Notes that a call to site `target` at `addr` heard nothing back;
    /// drops the channel if its calls have gone unanswered for a lease
    /// ([`PeerTiming::reconnect_after`]), so the next call connects afresh.
    /// Returns whether it was dropped.
    pub fn unanswered(&self, target: SiteId, addr: &str) -> bool {
        let mut channels = self.channels.lock();
        let Some(pooled) = pooled_in(&mut channels, target, addr) else {
            return false;
        };
        let silent_for = pooled
            .failing_since
            .get_or_insert_with(Instant::now)
            .elapsed();
        if silent_for < self.timing.reconnect_after {
            return false;
        }
        if let Some(by_addr) = channels.get_mut(&target) {
            by_addr.remove(addr);
        }
        drop(channels);
        tracing::info!(
            site = target,
            addr,
            silent_ms = silent_for.as_millis() as u64,
            "no answer from a peer for a lease: connecting afresh"
        );
        metrics::counter!("switchboard_peer_reconnects_total").increment(1);
        true
    }

    /// A call to site `target` at `addr` begins: end it with its result;
    /// dropped unended (its caller gave up on it), it counts as
    /// unanswered.
    pub fn begin<'a>(&'a self, target: SiteId, addr: &'a str) -> PendingCall<'a> {
        PendingCall {
            peers: self,
            target,
            addr,
            ended: false,
        }
    }

    /// Notes how a call to site `target` at `addr` ended (see
    /// [`answered`](Self::answered), [`unanswered`](Self::unanswered)).
    pub fn note<T>(&self, target: SiteId, addr: &str, result: &Result<T, tonic::Status>) {
        match result {
            Err(status) if is_silence(status) => {
                self.unanswered(target, addr);
            }
            _ => self.answered(target, addr),
        }
    }

    /// Uses new TLS material for every connection made from now on.
    pub fn reload_tls(&self, material: TlsMaterial) {
        if let Some(tls) = &self.tls {
            tls.store(Some(Arc::new(material)));
            self.channels.lock().clear();
        }
    }

    /// The channel to site `target` at `addr`, created on first use.
    pub fn channel(&self, target: SiteId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock();
        if let Some(pooled) = pooled_in(&mut channels, target, addr) {
            return Ok(pooled.channel.clone());
        }
        let material = self.tls.as_ref().and_then(|tls| tls.load_full());
        let scheme = if material.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(self.timing.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(limits::PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(limits::PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(material) = material {
            let name = identity_name(
                Role::Site,
                &target.to_string(),
                &cluster_domain(&self.cluster_id),
            );
            let tls = material
                .client_config(&name)
                .timeout(self.timing.handshake_timeout);
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect_lazy();
        let pooled = Pooled {
            channel: channel.clone(),
            failing_since: None,
        };
        channels
            .entry(target)
            .or_default()
            .insert(addr.to_owned(), pooled);
        Ok(channel)
    }

    /// A raft-peer client for site `target` at `addr`.
    pub fn raft_client(
        &self,
        target: SiteId,
        addr: &str,
    ) -> Result<RaftPeerClient<Channel>, tonic::transport::Error> {
        Ok(RaftPeerClient::new(self.channel(target, addr)?)
            .max_decoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX))
    }

    /// Wraps a message for site `target`, with a timeout.
    pub fn request<T>(
        &self,
        target: SiteId,
        message: T,
        timeout: Option<Duration>,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(&*self.cluster_id) {
            metadata.insert(CLUSTER_HEADER, value);
        }
        metadata.insert(TARGET_SITE_HEADER, MetadataValue::from(target));
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(500);
    const TIMING: PeerTiming = PeerTiming {
        connect_timeout: Duration::from_millis(100),
        handshake_timeout: LEASE,
        reconnect_after: LEASE,
    };
    const ADDR: &str = "127.0.0.1:9";
    const MS: Duration = Duration::from_millis(1);

    fn pooled(peers: &PeerClients, addr: &str) -> bool {
        pooled_in(&mut peers.channels.lock(), 2, addr).is_some()
    }

    fn timed_out() -> Result<(), tonic::Status> {
        Err(tonic::Status::from_error(Box::new(tonic::TimeoutExpired(
            (),
        ))))
    }

    /// A channel stays while its calls are answered within a lease of the
    /// first that was not, and a call that fails a lease after that
    /// replaces it.
    #[tokio::test(start_paused = true)]
    async fn a_channel_unanswered_for_a_lease_is_replaced_at_the_next_failure() {
        let peers = PeerClients::insecure("c", TIMING);
        peers.channel(2, ADDR).expect("channel");
        tokio::time::advance(LEASE * 2).await;
        assert!(
            !peers.unanswered(2, ADDR),
            "idle is not silent: the first failure"
        );
        tokio::time::advance(LEASE - MS).await;
        assert!(!peers.unanswered(2, ADDR), "failing less than a lease");
        peers.answered(2, ADDR);
        assert!(!peers.unanswered(2, ADDR), "the answer restarted the count");
        tokio::time::advance(LEASE - MS).await;
        assert!(!peers.unanswered(2, ADDR));
        assert!(pooled(&peers, ADDR));
        tokio::time::advance(MS).await;
        assert!(peers.unanswered(2, ADDR), "a lease of failures");
        assert!(!pooled(&peers, ADDR), "the next call connects afresh");
        peers.channel(2, ADDR).expect("channel");
        assert!(
            !peers.unanswered(2, ADDR),
            "a new channel gets its own lease"
        );
    }

    /// A timeout is silence; a status the peer sent, even UNAVAILABLE
    /// (not the leader, overloaded), is an answer.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_an_answer_and_a_timeout_is_not() {
        assert!(is_silence(&timed_out().expect_err("timeout")));
        let refused: Result<(), _> = Err(tonic::Status::unavailable("not the leader"));
        assert!(!is_silence(refused.as_ref().expect_err("refusal")));
        let peers = PeerClients::insecure("c", TIMING);
        peers.channel(2, ADDR).expect("channel");
        peers.note(2, ADDR, &timed_out());
        tokio::time::advance(LEASE).await;
        peers.note(2, ADDR, &refused);
        peers.note(2, ADDR, &timed_out());
        assert!(pooled(&peers, ADDR), "the refusal was an answer");
        tokio::time::advance(LEASE).await;
        peers.note(2, ADDR, &timed_out());
        assert!(!pooled(&peers, ADDR));
    }

    /// A call its caller gave up on (openraft drops a heartbeat at its own
    /// timeout) counts as unanswered; one that ended is noted as it ended.
    #[tokio::test(start_paused = true)]
    async fn a_call_dropped_unended_is_unanswered() {
        let peers = PeerClients::insecure("c", TIMING);
        peers.channel(2, ADDR).expect("channel");
        drop(peers.begin(2, ADDR));
        tokio::time::advance(LEASE).await;
        peers.begin(2, ADDR).end(&Ok::<(), tonic::Status>(()));
        drop(peers.begin(2, ADDR));
        assert!(
            pooled(&peers, ADDR),
            "the answer in between restarted the count"
        );
        tokio::time::advance(LEASE).await;
        drop(peers.begin(2, ADDR));
        assert!(!pooled(&peers, ADDR));
    }

    /// Two addresses of one site (before and after it moved) have their
    /// own channels, and what one's calls do leaves the other alone.
    #[tokio::test(start_paused = true)]
    async fn two_addresses_of_one_site_are_kept_apart() {
        let peers = PeerClients::insecure("c", TIMING);
        let moved = "127.0.0.1:10";
        peers.channel(2, ADDR).expect("channel");
        peers.channel(2, moved).expect("channel");
        assert!(!peers.unanswered(2, ADDR));
        tokio::time::advance(LEASE).await;
        assert!(peers.unanswered(2, ADDR));
        assert!(!pooled(&peers, ADDR));
        assert!(pooled(&peers, moved));
        assert!(!peers.unanswered(2, moved), "its own first failure");
    }
}
