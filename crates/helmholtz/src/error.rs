//! The library's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong in the library, with the context a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents are not in the expected format.
    #[error("{path}: {message}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Data whose shape does not match what the model or operation expects.
    #[error("dimension mismatch: {0}")]
    Dimension(String),
    /// Data that contains NaN, infinite or out-of-range values.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A configuration that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Training produced a non-finite loss or parameter.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A checkpoint that cannot be read or does not match the model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Work that needs more memory than this process can have, refused before allocating
    /// (see [`crate::memory::check_allocation`]).
    #[error("not enough memory: {0}")]
    TooLarge(String),
    /// A run stopped on request (Ctrl-C, SIGTERM) after writing a checkpoint; it resumes.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error on a file.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
