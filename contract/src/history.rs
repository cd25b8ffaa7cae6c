//! `data/reports/history.jsonl`: one JSON line per train run (and per
//! rollback), oldest first. Lines are only ever added: a run stages the old
//! text plus its line and the file is renamed into place with the run's other
//! outputs, so a crash leaves the old history or the new, never half a line.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::commit::Commit;
use crate::drift::DriftSummary;
use crate::registry::Version;
use crate::{ContractError, Layout};

/// What a history line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    /// A train run: new versions, maybe promoted.
    Train,
    /// A user made a kept version champion again.
    Rollback,
}

/// Rows of one dataset in the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRows {
    pub rows_in: usize,
    pub clean: usize,
    pub rejected: usize,
}

/// One model in the run: the version made, and whether it became champion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunModel {
    /// The version this run made (or, for a rollback, restored); None when skipped.
    pub version: Option<Version>,
    pub promoted: bool,
    /// Why it was or was not promoted, in one line.
    pub reason: String,
    /// The version's RMSE on the gate's held-out rows.
    pub rmse: Option<f64>,
    /// The champion before this run, and its RMSE on the same rows.
    pub champion: Option<Version>,
    pub champion_rmse: Option<f64>,
}

/// One line of history.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub event: RunEvent,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Where the raw data came from (extract.json), and its window.
    pub source: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub datasets: BTreeMap<String, RunRows>,
    pub models: BTreeMap<String, RunModel>,
    pub drift: BTreeMap<String, DriftSummary>,
}

impl RunRecord {
    /// A run id from its start: sortable, readable, unique per second.
    pub fn id_at(started_at: DateTime<Utc>) -> String {
        started_at.format("%Y%m%dT%H%M%SZ").to_string()
    }
}

impl Layout {
    pub fn history(&self) -> std::path::PathBuf {
        self.reports_dir().join("history.jsonl")
    }

    pub fn drift_report(&self) -> std::path::PathBuf {
        self.reports_dir().join("drift.json")
    }
}

/// Every line of the history, oldest first; none when there is no file yet.
pub fn read(path: &Path) -> Result<Vec<RunRecord>, ContractError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ContractError::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| ContractError::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Stages the history with `record` added as its last line.
pub fn append(
    commit: &mut Commit,
    layout: &Layout,
    record: &RunRecord,
) -> Result<(), ContractError> {
    let path = layout.history();
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ContractError::io(&path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let line = serde_json::to_string(record).map_err(|source| ContractError::JsonWrite {
        path: path.clone(),
        source,
    })?;
    text.push_str(&line);
    text.push('\n');
    let staged = commit.file(&path)?;
    std::fs::write(&staged, text).map_err(|e| ContractError::io(&staged, e))
}
