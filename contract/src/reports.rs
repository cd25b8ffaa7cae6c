//! Reports the stages write under `data/reports/`, shared so `status` can read them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `data/reports/extract.json`: what the last extract (or synth) run read and wrote.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExtractReport {
    pub source: String,
    pub extracted_at: Option<DateTime<Utc>>,
    /// Rows created at or after this time were asked for (`--days` / `--since`).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub incremental: bool,
    pub tables: BTreeMap<String, TableCounts>,
}

/// Per table: rows read = written + rejected + skipped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableCounts {
    pub rows_read: usize,
    pub rows_written: usize,
    pub rows_rejected: usize,
    /// Created before the window asked for.
    pub rows_skipped_window: usize,
    /// Beyond `--limit`.
    pub rows_skipped_limit: usize,
    pub parts_written: Vec<String>,
    /// Defects synth injected on purpose (`--messy`), by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub injected: BTreeMap<String, usize>,
}
