//! Model versions and champions.
//!
//! Every train run writes each model as a new, immutable version folder,
//! `data/models/versions/<model>/<version>/` (`v0001`, `v0002`, ...). The
//! champion, the version `predict`, `report`, `status` and `serve` use, is
//! `data/models/<model>`: a symbolic link to its version folder, replaced by
//! one rename, so a reader sees the old champion or the new one, never a mix.
//! A reader that opens several files of a model resolves the link once
//! ([`resolve`]) and reads them all from that version folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::commit::Commit;
use crate::reports::{Algorithm, Candidate, Promotion};
use crate::{ContractError, Dataset, Layout, io};

/// Files of a model version folder.
pub mod files {
    /// The model card: features, encoding, algorithm, metrics, lineage.
    pub const MODEL_JSON: &str = "model.json";
    /// LightGBM's own text model, when LightGBM was chosen.
    pub const LIGHTGBM: &str = "lightgbm.txt";
    /// The held-out rows: source_table, source_id, actual, predicted.
    pub const HOLDOUT: &str = "holdout.parquet";
    /// The training rows' profile, the reference for drift.
    pub const PROFILE: &str = "profile.json";
    /// holdout.parquet's columns beside source_table and source_id.
    pub const ACTUAL: &str = "actual";
    pub const PREDICTED: &str = "predicted";
}

/// The card format this version of the pipeline writes and reads.
pub const MODEL_FORMAT: &str = "gm-training-pipeline/model-v2";

/// How model selection ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: usize,
    pub rows: usize,
    /// True when CV ran on a seeded sample of the training rows.
    pub sampled: bool,
}

/// Where a version's data came from and what became of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// The train run that made it (a line of reports/history.jsonl).
    pub run_id: String,
    /// extract.json's source and window, when there is one.
    pub source: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Oldest and newest timestamp of the rows it trained on.
    pub timestamp_min: Option<DateTime<Utc>>,
    pub timestamp_max: Option<DateTime<Utc>>,
    /// validate's counts of the dataset: rows in, clean, rejected.
    pub rows_in: Option<usize>,
    pub clean_rows: usize,
    pub rejected_rows: Option<usize>,
    /// The promotion gate's decision when it was trained.
    pub promotion: Option<Promotion>,
}

/// The fields of a model card (model.json) that stages other than `train`
/// and `predict` read; the card has more (features, encoding, parameters),
/// which only the model loader needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CardSummary {
    pub format: String,
    pub model: String,
    pub algorithm: Algorithm,
    /// LightGBM's own model file in the folder, when the model is LightGBM.
    pub model_file: Option<String>,
    pub seed: u64,
    pub training_rows: usize,
    pub test_rows: usize,
    pub candidates: BTreeMap<Algorithm, Candidate>,
    pub cross_validation: CrossValidation,
    /// SHA-256 of the clean dataset file it was trained on.
    pub data_sha256: String,
    pub trained_at: DateTime<Utc>,
    /// None for a model of the layout before versions.
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub lineage: Lineage,
}

impl CardSummary {
    /// Reads `dir/model.json` (a champion link or a version folder).
    pub fn read(dir: &Path) -> Result<Self, ContractError> {
        io::read_json(&dir.join(files::MODEL_JSON))
    }

    /// The chosen candidate's held-out metrics.
    pub fn chosen(&self) -> Option<&Candidate> {
        self.candidates.get(&self.algorithm)
    }
}

/// A model version: `v` and a number, increasing per model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Version(pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{:04}", self.0)
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('v')
            .and_then(|n| n.parse::<u32>().ok())
            .map(Version)
            .ok_or_else(|| format!("`{s}` is not a model version (like v0003)"))
    }
}

impl From<Version> for String {
    fn from(v: Version) -> Self {
        v.to_string()
    }
}

impl TryFrom<String> for Version {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl Layout {
    /// Every kept version of a model.
    pub fn versions_dir(&self, dataset: Dataset) -> PathBuf {
        self.models_dir().join("versions").join(dataset.name())
    }

    pub fn version_dir(&self, dataset: Dataset, version: Version) -> PathBuf {
        self.versions_dir(dataset).join(version.to_string())
    }
}

/// The kept versions of a model, oldest first.
pub fn versions(layout: &Layout, dataset: Dataset) -> Result<Vec<Version>, ContractError> {
    let dir = layout.versions_dir(dataset);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ContractError::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ContractError::io(&dir, e))?;
        if let Some(v) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Version>().ok())
        {
            out.push(v);
        }
    }
    out.sort();
    Ok(out)
}

/// The version after every kept one (numbers are never reused while a
/// version is kept).
pub fn next_version(layout: &Layout, dataset: Dataset) -> Result<Version, ContractError> {
    let last = versions(layout, dataset)?.last().map_or(0, |v| v.0);
    let champion = champion(layout, dataset)?.map_or(0, |v| v.0);
    Ok(Version(last.max(champion) + 1))
}

/// Why a dataset with `clean` rows, fewer than train's minimum, has no model,
/// and where more rows come from: `300 clean rows, train needs 500 (more
/// rows: ...)`. status and [`no_champion_yet`] both say it.
pub fn too_few_to_train(dataset: Dataset, clean: usize) -> String {
    format!(
        "{}, train needs {} (more rows: a longer DAYS window, or ROWS for synth)",
        crate::count(clean, "clean row"),
        dataset.min_rows()
    )
}

/// Why `dataset` has no champion yet, for whoever asks it for a prediction:
/// its clean rows below train's minimum by the last validation (`no model
/// here yet: 300 clean rows, train needs 500 (more rows: ...)`), else that
/// train has not made it yet.
pub fn no_champion_yet(layout: &Layout, dataset: Dataset) -> String {
    let clean = io::read_json::<crate::reports::ValidationReport>(&layout.validation_report())
        .ok()
        .and_then(|r| r.datasets.get(dataset.name()).map(|d| d.clean))
        .filter(|&clean| clean < dataset.min_rows());
    match clean {
        Some(clean) => format!("no model here yet: {}", too_few_to_train(dataset, clean)),
        None => "no model here yet; run `make train`".into(),
    }
}

/// The champion's version, or None when the model has none yet. A model
/// folder of the layout before versions (a plain folder) has no version.
pub fn champion(layout: &Layout, dataset: Dataset) -> Result<Option<Version>, ContractError> {
    let link = layout.model_dir(dataset);
    match std::fs::read_link(&link) {
        Ok(target) => {
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.parse::<Version>()
                .map(Some)
                .map_err(|message| ContractError::BadChampionLink {
                    path: link.clone(),
                    target: target.clone(),
                    message,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // EINVAL: not a link (a model folder of the layout before versions).
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(None),
        Err(e) => Err(ContractError::io(&link, e)),
    }
}

/// The folder a model path stands for: a champion link resolved to its
/// version folder (once, so every file is read from the same version), a
/// version folder as it is.
pub fn resolve(dir: &Path) -> Result<PathBuf, ContractError> {
    std::fs::canonicalize(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ContractError::NotFound {
                path: dir.to_path_buf(),
                hint: "no model here; run `train` first".into(),
            }
        } else {
            ContractError::io(dir, e)
        }
    })
}

/// Makes `version` the champion of `dataset` when `commit` finishes: a new
/// link is staged and renamed over the old one. A plain model folder of the
/// layout before versions is moved aside first.
pub fn stage_champion(
    commit: &mut Commit,
    layout: &Layout,
    dataset: Dataset,
    version: Version,
) -> Result<(), ContractError> {
    let link = layout.model_dir(dataset);
    if std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
        commit.remove(&link);
    }
    let staged = commit.file(&link)?;
    let target = Path::new("versions")
        .join(dataset.name())
        .join(version.to_string());
    std::os::unix::fs::symlink(&target, &staged).map_err(|e| ContractError::io(&staged, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_print_and_parse() {
        assert_eq!(Version(3).to_string(), "v0003");
        assert_eq!("v0003".parse::<Version>(), Ok(Version(3)));
        assert_eq!("v12345".parse::<Version>(), Ok(Version(12345)));
        assert!("3".parse::<Version>().is_err());
        assert!(Version(2) < Version(10));
        let json = serde_json::to_string(&Version(7)).unwrap();
        assert_eq!(json, "\"v0007\"");
    }

    #[test]
    fn the_champion_link_switches_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let d = Dataset::Csat;
        assert_eq!(champion(&layout, d).unwrap(), None);
        for n in [1, 2] {
            let mut c = Commit::begin(&layout, "test").unwrap();
            let v = next_version(&layout, d).unwrap();
            assert_eq!(v, Version(n));
            let staged = c.dir(&layout.version_dir(d, v)).unwrap();
            std::fs::write(staged.join(files::MODEL_JSON), format!("{n}")).unwrap();
            stage_champion(&mut c, &layout, d, v).unwrap();
            c.finish().unwrap();
            assert_eq!(champion(&layout, d).unwrap(), Some(v));
            let read = std::fs::read_to_string(layout.model_dir(d).join(files::MODEL_JSON));
            assert_eq!(read.unwrap(), format!("{n}"));
        }
        assert_eq!(versions(&layout, d).unwrap(), vec![Version(1), Version(2)]);
        assert!(resolve(&layout.model_dir(d)).unwrap().ends_with("v0002"));
    }
}
