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
    /// A column that cannot take its contract type.
    #[error("{}: column `{column}`: {source}", path.display())]
    Column {
        path: PathBuf,
        column: String,
        source: polars::error::PolarsError,
    },
    /// Frames of one file (or of a table's parts) that do not fit together.
    #[error("{}: {source}", path.display())]
    Frame {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("{}: column `{column}` appears twice in the header", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{}: empty file: no header row", path.display())]
    NoHeader { path: PathBuf },
    #[error("{}: not valid JSON for this file: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: cannot write JSON: {source}", path.display())]
    JsonWrite {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// One line of a JSON-lines file (the run history) that is not a record.
    #[error("{}: line {line}: not a run record: {source}", path.display())]
    JsonLine {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// A champion link that does not lead to a version folder.
    #[error("{}: the champion link points at {}: {message}", path.display(), target.display())]
    BadChampionLink {
        path: PathBuf,
        target: PathBuf,
        message: String,
    },
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
