//! Bounds on what crosses the network, each with its reason.

use std::time::Duration;

/// Largest message on the raft port. An AppendEntries carries at most
/// `RAFT_ENTRIES_PER_MESSAGE_MAX` entries of at most `PROPOSAL_BYTES_MAX`
/// (64 KiB) each: 256 x 64 KiB = 16 MiB.
pub const RAFT_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Most log entries per AppendEntries (openraft's `max_payload_entries`).
pub const RAFT_ENTRIES_PER_MESSAGE_MAX: u64 = 256;

/// Largest response on the API port: the largest is a relay list (10,000
/// relays at ~300 bytes).
pub const API_MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest request the API port decodes: every write becomes one proposal
/// of at most 64 KiB (`PROPOSAL_BYTES_MAX`), so anything twice that is of
/// no use. A message that declares more is refused from its 5-byte header,
/// before any of it is buffered: a caller holding requests open pins at
/// most `REQUESTS_PER_CONNECTION_MAX` x 128 KiB = 32 MiB per connection,
/// for at most `API_REQUEST_TIMEOUT`.
pub const API_REQUEST_BYTES_MAX: usize = 128 * 1024;

/// Longest an API call may take until its response starts (a stream's
/// first message): reading the request, and waiting for a commit (the
/// default write deadline is 5 s). Bounds how long a request whose last
/// byte is withheld holds its memory.
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 keepalive from the API port to its callers: a caller that went
/// dark is dropped, with its watch streams, within interval + timeout.
pub const API_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a keepalive ping to a caller may go unanswered.
pub const API_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest header block a caller may send (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE):
/// a bearer token and the gRPC headers need a few hundred bytes.
pub const API_HEADER_LIST_BYTES_MAX: u32 = 16 * 1024;

/// Snapshot chunk size: a quarter of tonic's default 4 MiB message limit,
/// so a chunk and its framing always fit.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest snapshot a site accepts from a leader.
pub const SNAPSHOT_BYTES_MAX: u64 = 8 * 1024 * 1024 * 1024;

/// Concurrent requests served per connection before the server makes
/// callers wait.
pub const REQUESTS_PER_CONNECTION_MAX: usize = 256;

/// HTTP/2 keepalive to another site: a dead peer is noticed within
/// interval + timeout even when no RPC is in flight.
pub const PEER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a peer connection's keepalive ping may go unanswered.
pub const PEER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most relays one list returns.
pub const RELAYS_PER_LIST_MAX: usize = 10_000;

/// Concurrent HTTP/2 streams per connection: watches are long-lived
/// streams, and one process (a simulator, a gateway) may hold thousands.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 8_192;

/// TLS connections open at once from one source address, handshaking or
/// established; past it a new one is closed at once. The hosts of one
/// office behind a NAT share an address and each holds a connection (with
/// its watch), so this is well above an office's hosts; raise it for
/// larger ones. At most this many x (TLS buffers + the connection window
/// + `REQUEST_BYTES_IN_FLIGHT_PER_CONNECTION_MAX`) per address.
pub const CONNECTIONS_PER_SOURCE_MAX: usize = 256;

/// Request bytes one connection may have buffered at once, across all its
/// streams, before each is decoded: eight requests of the largest size. A
/// caller that declares large messages and withholds their last bytes
/// pins at most this much per connection; past it its requests get
/// RESOURCE_EXHAUSTED. Real requests (attaches, resolves) are a few
/// hundred bytes, so hundreds in flight fit.
pub const REQUEST_BYTES_IN_FLIGHT_PER_CONNECTION_MAX: usize = 8 * API_REQUEST_BYTES_MAX;

/// HTTP/2 receive window per connection on the API port: bytes a caller
/// may send that no request has read yet (a request refused before its
/// body is read, for one). Twice the largest request, so one full request
/// is never held up by the window.
pub const API_CONNECTION_WINDOW_BYTES: u32 = 2 * API_REQUEST_BYTES_MAX as u32;
/// HTTP/2 receive window per stream on the API port: one largest request
/// and its 5-byte gRPC prefix.
pub const API_STREAM_WINDOW_BYTES: u32 = API_REQUEST_BYTES_MAX as u32 + 5;

/// What a port allows each connection and each source address; the site
/// configuration sets them (`[limits]`), these constants are the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once on the port.
    pub handshakes_max: usize,
    /// Handshakes in progress at once from one source address.
    pub handshakes_per_source_max: usize,
    /// Connections open at once from one source address.
    pub connections_per_source_max: usize,
    /// Request bytes buffered at once per connection.
    pub request_bytes_in_flight_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: crate::tls::HANDSHAKE_TIMEOUT,
            handshakes_max: crate::tls::HANDSHAKES_IN_FLIGHT_MAX,
            handshakes_per_source_max: crate::tls::HANDSHAKES_PER_SOURCE_MAX,
            connections_per_source_max: CONNECTIONS_PER_SOURCE_MAX,
            request_bytes_in_flight_max: REQUEST_BYTES_IN_FLIGHT_PER_CONNECTION_MAX,
        }
    }
}
