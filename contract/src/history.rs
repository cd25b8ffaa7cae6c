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
    /// The version is the champion's model made again (a retrain on
    /// unchanged data, or a hand promotion between two such versions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_as_champion: bool,
}

impl RunModel {
    /// What the run did with this model, in a few words: `promoted v0003`,
    /// `kept v0004`, `skipped`; for a version made champion by hand,
    /// `rolled back to v0001 (was v0002)` or `rolled forward to v0003 (was
    /// v0002)`, by the version numbers.
    pub fn outcome(&self, event: RunEvent) -> String {
        let Some(version) = self.version else {
            return "skipped".into();
        };
        let same = if self.same_as_champion {
            ", the same model"
        } else {
            ""
        };
        match (event, self.champion) {
            (RunEvent::Rollback, Some(before)) => format!(
                "rolled {} to {version} (was {before}{same})",
                if version < before { "back" } else { "forward" }
            ),
            (RunEvent::Rollback, None) => format!("made champion {version}"),
            (RunEvent::Train, Some(before)) if self.same_as_champion => format!(
                "{} {version} (the same model as {before})",
                if self.promoted { "promoted" } else { "kept" }
            ),
            (RunEvent::Train, _) if self.promoted => format!("promoted {version}"),
            (RunEvent::Train, _) => format!("kept {version}"),
        }
    }
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
    /// What the run did with each model, in a few words each, joined:
    /// `csat promoted v0004, performance kept v0003` (see [`RunModel::outcome`]).
    pub fn outcomes(&self) -> String {
        self.models
            .iter()
            .map(|(name, m)| format!("{name} {}", m.outcome(self.event)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A run id from its start to the second: sortable and readable.
    fn id_at(started_at: DateTime<Utc>) -> String {
        started_at.format("%Y%m%dT%H%M%SZ").to_string()
    }

    /// The id of a run starting at `started_at`, unique among `taken` (the
    /// ids already in the history): its start to the second, then `-2`,
    /// `-3`, ... for later runs that started in the same second (a quick
    /// train and a rollback), so every version's card names one history line.
    /// Ids sort in run order up to nine runs in one second.
    pub fn unique_id<'a>(
        started_at: DateTime<Utc>,
        taken: impl IntoIterator<Item = &'a str>,
    ) -> String {
        let base = Self::id_at(started_at);
        let mut same_second = 0;
        for id in taken {
            let suffix = id.strip_prefix(base.as_str());
            if suffix.is_some_and(|s| s.is_empty() || s.starts_with('-')) {
                same_second += 1;
            }
        }
        match same_second {
            0 => base,
            n => format!("{base}-{}", n + 1),
        }
    }
}

/// The id for a run starting at `started_at` ([`RunRecord::unique_id`]
/// against the history's lines). Call it holding the writer lock, so no
/// other run takes the same id. A line that does not parse is not this
/// function's to report (the report and status name it); it takes no id.
pub fn new_run_id(layout: &Layout, started_at: DateTime<Utc>) -> Result<String, ContractError> {
    #[derive(Deserialize)]
    struct Id {
        run_id: String,
    }
    let ids: Vec<String> = text(&layout.history())?
        .lines()
        .filter_map(|line| serde_json::from_str::<Id>(line).ok())
        .map(|id| id.run_id)
        .collect();
    Ok(RunRecord::unique_id(
        started_at,
        ids.iter().map(String::as_str),
    ))
}

impl Layout {
    pub fn history(&self) -> std::path::PathBuf {
        self.reports_dir().join("history.jsonl")
    }

    pub fn drift_report(&self) -> std::path::PathBuf {
        self.reports_dir().join("drift.json")
    }
}

/// The history's text; empty when there is no file yet.
fn text(path: &Path) -> Result<String, ContractError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ContractError::io(path, e)),
    }
}

/// Every line of the history, oldest first; none when there is no file yet.
pub fn read(path: &Path) -> Result<Vec<RunRecord>, ContractError> {
    text(path)?
        .lines()
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
    let mut text = text(&path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_outcome_says_which_way_a_version_made_champion_by_hand_went() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let by_hand = |version: &str, before: Option<&str>| RunModel {
            version: Some(v(version)),
            promoted: true,
            champion: before.map(v),
            ..Default::default()
        };
        let rollback = RunEvent::Rollback;
        assert_eq!(
            by_hand("v0001", Some("v0002")).outcome(rollback),
            "rolled back to v0001 (was v0002)"
        );
        assert_eq!(
            by_hand("v0003", Some("v0002")).outcome(rollback),
            "rolled forward to v0003 (was v0002)"
        );
        assert_eq!(
            by_hand("v0001", None).outcome(rollback),
            "made champion v0001"
        );
        let train = RunEvent::Train;
        assert_eq!(
            by_hand("v0004", Some("v0003")).outcome(train),
            "promoted v0004"
        );
        let kept = RunModel {
            promoted: false,
            ..by_hand("v0004", Some("v0003"))
        };
        assert_eq!(kept.outcome(train), "kept v0004");
        assert_eq!(RunModel::default().outcome(train), "skipped");
        // The champion's model made again: a retrain on unchanged data, or a
        // hand promotion between two such versions.
        let again = |m: RunModel| RunModel {
            same_as_champion: true,
            ..m
        };
        assert_eq!(
            again(by_hand("v0004", Some("v0003"))).outcome(train),
            "promoted v0004 (the same model as v0003)"
        );
        assert_eq!(
            again(kept).outcome(train),
            "kept v0004 (the same model as v0003)"
        );
        assert_eq!(
            again(by_hand("v0001", Some("v0004"))).outcome(rollback),
            "rolled back to v0001 (was v0004, the same model)"
        );
    }

    #[test]
    fn a_run_in_a_new_second_takes_the_second() {
        let id = RunRecord::unique_id(at("2026-12-07T02:30:01.9Z"), ["20261207T023000Z"]);
        assert_eq!(id, "20261207T023001Z");
        assert_eq!(
            RunRecord::unique_id(at("2026-12-07T02:30:01Z"), []),
            "20261207T023001Z"
        );
    }

    #[test]
    fn runs_in_the_same_second_are_numbered_and_still_sort_in_order() {
        let t = at("2026-12-07T02:30:00.5Z");
        let mut taken = vec!["20261207T022959Z".to_string()];
        for _ in 0..3 {
            let id = RunRecord::unique_id(t, taken.iter().map(String::as_str));
            taken.push(id);
        }
        assert_eq!(
            taken,
            [
                "20261207T022959Z",
                "20261207T023000Z",
                "20261207T023000Z-2",
                "20261207T023000Z-3"
            ]
        );
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(sorted, taken);
    }
}
