use std::path::PathBuf;

/// What can go wrong reading or writing a file of the contract. Every variant
/// names the file, so a stage's one-line error says where to look.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable Parquet file: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("{}: cannot write Parquet: {source}", path.display())]
    Write {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("{}: missing column `{column}`", path.display())]
    MissingColumn { path: PathBuf, column: String },
    #[error("{}: column `{column}` has type {found}, expected {expected}", path.display())]
    WrongType {
        path: PathBuf,
        column: String,
        found: String,
        expected: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: not found ({hint})", path.display())]
    NotFound { path: PathBuf, hint: String },
    /// Another stage held the data folder's lock longer than we wait.
    #[error("{}: another stage ({holder}) has held the data folder for {} s; giving up", path.display(), waited.as_secs())]
    Busy {
        path: PathBuf,
        holder: String,
        waited: std::time::Duration,
    },
}

impl ContractError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
