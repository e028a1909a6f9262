//! The client library's timing.

use std::time::Duration;

/// Timing of the client library.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Deadline of one RPC to one site.
    pub attempt_timeout: Duration,
    /// Deadline of a whole call, across sites and retries.
    pub call_deadline: Duration,
    /// First pause after every known site failed; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest pause between rounds of retries.
    pub backoff_max: Duration,
    /// Time to open a connection to a site.
    pub connect_timeout: Duration,
    /// HTTP/2 ping interval on every connection, idle or not: a site that
    /// went dark without a reset (power loss, a cut line, a paused process)
    /// is noticed by a missing pong, not after the kernel's ~15 minutes.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped
    /// and its calls and watches fail over. Well under a relay lease.
    pub keepalive_timeout: Duration,
    /// How long a followed watch may hear nothing (sites send a progress
    /// heartbeat every second), or hear only that its site is this stale,
    /// before it is reopened at another site from the last index it saw.
    pub watch_quiet_timeout: Duration,
    /// How long a site that failed at the transport (no connection, no
    /// answer within `attempt_timeout`, a watch gone quiet or cut) is tried
    /// only after every other site, unless it answers first. A dark site
    /// costs a connect timeout or more per request; this keeps retries and
    /// moving watches off it for longer than a failover takes, yet lets a
    /// site back from a restart take calls again soon.
    pub suspect_for: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            attempt_timeout: Duration::from_secs(6),
            call_deadline: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            watch_quiet_timeout: Duration::from_secs(3),
            suspect_for: Duration::from_secs(10),
        }
    }
}

impl ClientSettings {
    /// How long a followed watch may take to move off a site that went
    /// dark: its connection is noticed dead (a missed pong) or the stream
    /// quiet, whichever comes first, then one connection attempt elsewhere
    /// and one pause between rounds. A relay's view of its routes may lag
    /// the cluster by this much while a site fails.
    pub fn watch_failover_bound(&self) -> Duration {
        let noticed =
            (self.keepalive_interval + self.keepalive_timeout).max(self.watch_quiet_timeout);
        noticed + self.connect_timeout + self.backoff_max
    }
}
