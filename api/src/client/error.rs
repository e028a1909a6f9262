//! Why a call failed.

use tonic::Code;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A site answered with a final error (bad input, not found, no room...).
    #[error("{endpoint}: {code:?}: {message}")]
    Refused {
        /// The site that answered.
        endpoint: String,
        /// Its gRPC code.
        code: Code,
        /// Its message.
        message: String,
    },
    /// No site gave a final answer before the deadline.
    #[error(
        "no site answered within {deadline_ms} ms after {attempts} attempts; last error: {last}"
    )]
    Unreachable {
        /// The call's deadline.
        deadline_ms: u128,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure, as text.
        last: String,
        /// The last failure's gRPC code, when a site answered.
        last_code: Option<Code>,
    },
    /// An endpoint is not a valid address.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// No endpoint was given.
    #[error("no site endpoints given")]
    NoEndpoints,
    /// Certificate, key or token that cannot be used.
    #[error("{0}")]
    Credentials(String),
}

impl ClientError {
    /// The gRPC code of a final refusal, or of the last retryable error
    /// when no site gave a final answer.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            ClientError::Unreachable { last_code, .. } => *last_code,
            _ => None,
        }
    }
}
