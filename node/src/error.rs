//! The daemon library's error type.

/// What can stop a site from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The config file is missing, unreadable or wrong.
    #[error("config: {0}")]
    Config(String),
    /// The data dir or RocksDB failed.
    #[error("storage: {0}")]
    Storage(#[from] switchboard_raft_store::Error),
    /// A port could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which port (raft, api, http).
        what: &'static str,
        /// The address asked for.
        addr: String,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// openraft could not start or stopped with an error.
    #[error("raft: {0}")]
    Raft(String),
    /// The local launcher could not start or reach its sites.
    #[error("{0}")]
    Launcher(String),
    /// A file or process operation failed.
    #[error("io: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}
