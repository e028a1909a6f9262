//! The crate's one error type.

use std::borrow::Cow;

/// Everything that can go wrong in raft-store.
// The variants' fields are named for what they hold and each variant's
// doc says what it does; a doc per `relay_id: RelayId` would add nothing.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of a request or command is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        field: &'static str,
        reason: Cow<'static, str>,
    },

    /// Bytes that should hold an encoded value do not.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },

    /// Bytes carry a format version this build does not know.
    #[error("{what} has format version {found}, this build reads up to {supported}")]
    UnknownVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },

    /// Persisted data contradicts itself.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },

    /// The data directory belongs to another cluster or site.
    #[error(
        "data dir {dir} belongs to cluster {found_cluster} site {found_site}, not cluster {want_cluster} site {want_site}; refusing to use it"
    )]
    IdentityMismatch {
        dir: String,
        found_cluster: String,
        found_site: u64,
        want_cluster: String,
        want_site: u64,
    },

    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// RocksDB reported an error.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb: {context}: {source}")]
    Rocks {
        context: &'static str,
        #[source]
        source: rocksdb::Error,
    },

    /// The storage writer thread is gone (the store is shutting down).
    #[error("storage writer stopped")]
    WriterStopped,

    /// Another process (a running site) holds the data dir.
    #[error("{dir} is in use by another process (a running site?)")]
    InUse { dir: String },

    /// RocksDB failed a write (an I/O error, a full disk). The data on disk
    /// is not known to be damaged, so this is not `Corrupt`.
    #[error("storage write failed: {reason}")]
    WriteFailed { reason: String },
}

impl Error {
    /// An `InvalidInput` error.
    pub fn invalid(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// An `Io` error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io { source, context } => {
                std::io::Error::new(source.kind(), format!("{context}: {source}"))
            }
            other => std::io::Error::other(other.to_string()),
        }
    }
}
