//! The crate's error type and its gRPC status.

use switchboard_raft_store::reply::Refusal;
use switchboard_raft_store::reply::RefusalCode;
use tonic::Code;
use tonic::Status;

/// Everything a service call can fail with. Each maps to one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named relay, host, site or window does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A limit was reached (capacity, rate, size).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The cluster's state does not allow this now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The cluster cannot answer now (no leader, no quorum, site stopping).
    #[error("{0}")]
    Unavailable(String),
    /// The deadline passed; for a write the outcome is unknown, and a retry
    /// with the same request id is safe.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A fault inside the site.
    #[error("internal error: {0}")]
    Internal(String),
    /// Local setup: certificate, key or token files that cannot be used.
    #[error("{0}")]
    Setup(String),
    /// The caller did not prove who it is.
    #[error("{0}")]
    Unauthenticated(String),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = match &error {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Internal(_) | ApiError::Setup(_) => Code::Internal,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
        };
        Status::new(code, error.to_string())
    }
}

impl From<switchboard_raft_store::Error> for ApiError {
    fn from(error: switchboard_raft_store::Error) -> Self {
        use switchboard_raft_store::Error as StoreError;
        match error {
            StoreError::InvalidInput { .. }
            | StoreError::Decode { .. }
            | StoreError::UnknownVersion { .. } => ApiError::InvalidArgument(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal.code {
            RefusalCode::InvalidArgument => ApiError::InvalidArgument(refusal.message),
            RefusalCode::NotFound => ApiError::NotFound(refusal.message),
            RefusalCode::ResourceExhausted => ApiError::ResourceExhausted(refusal.message),
            RefusalCode::FailedPrecondition => ApiError::FailedPrecondition(refusal.message),
            RefusalCode::PermissionDenied => ApiError::PermissionDenied(refusal.message),
        }
    }
}
