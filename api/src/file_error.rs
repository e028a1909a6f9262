//! Why a file the client library reads or writes (a cluster file, a key
//! file, a node-info cache), or a key, could not be used.

use std::path::PathBuf;

/// A file that could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It (or its temporary twin) could not be written or renamed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its content is not what it should be.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, for people.
        reason: String,
    },
}

impl FileError {
    /// `path` holds something that is not what it should be.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        FileError::Invalid {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// Key bytes that are not a key, or a key operation that failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A state key (AES-256) is exactly 32 bytes.
    #[error("a state key is 32 bytes, not {0}")]
    StateKeyLength(usize),
    /// A token key (HMAC-SHA256) is at least `TOKEN_KEY_BYTES_MIN` bytes.
    #[error("token key is {0} bytes, at least {min} needed", min = crate::token::TOKEN_KEY_BYTES_MIN)]
    TokenKeyTooShort(usize),
    /// Not an Ed25519 private key in PKCS#8.
    #[error("not an Ed25519 PKCS#8 key")]
    NotPkcs8,
    /// The system's random source failed (key generation, nonces).
    #[error("no randomness from the system")]
    NoRandomness,
    /// A sealed key that this state key does not open (or that is damaged).
    #[error("the state key does not open this signing key")]
    DoesNotOpen,
}
