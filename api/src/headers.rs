//! gRPC metadata keys the API port speaks, shared by the sites that set
//! them and the client library that reads them.

/// Metadata key on a follower's UNAVAILABLE: the leader's API address.
pub const LEADER_HINT_HEADER: &str = "x-switchboard-leader";

/// Metadata key of a RESOURCE_EXHAUSTED answer: when to try again, in ms.
pub const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// Metadata key of an UNAVAILABLE answer from a site out of service (drained
/// or stopping): the API address of a site to go to instead.
pub const REDIRECT_HEADER: &str = "x-switchboard-redirect";
