//! Reports the stages write under `data/reports/`, typed once here so every
//! binary that reads one (`status`, `report`) breaks at build time, not at run
//! time, when a field changes.

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

/// Per table: rows read = written + rejected + skipped + already collected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableCounts {
    pub rows_read: usize,
    pub rows_written: usize,
    pub rows_rejected: usize,
    /// Created before the window asked for.
    pub rows_skipped_window: usize,
    /// Beyond `--limit`.
    pub rows_skipped_limit: usize,
    /// Re-read by an incremental run's lookback window, but already in the raw
    /// layer from an earlier run: not written again.
    #[serde(default)]
    pub already_collected: usize,
    pub parts_written: Vec<String>,
    /// Incremental runs: small parts merged into one, and old parts dropped
    /// by retention (see extract's `compact`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts_merged: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts_dropped: usize,
    /// The source's columns that are not the table's (DESIGN.md), in source
    /// order: each row keeps them as JSON text in `_extra`, which no stage reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_columns: Vec<String>,
    /// Defects synth injected on purpose (`--messy`), by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub injected: BTreeMap<String, usize>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why validate rejected a row: the first of these that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The target or a required feature is null.
    Missing,
    /// A rating outside 0-1, a score or metric outside 0-100, a negative time.
    OutOfRange,
    /// No timestamp, or one in the future.
    BadTimestamp,
    /// The same source_table and source_id as an earlier row.
    Duplicate,
}

impl Reason {
    /// In the order they are tried.
    pub const ALL: [Reason; 4] = [
        Reason::Missing,
        Reason::OutOfRange,
        Reason::BadTimestamp,
        Reason::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::OutOfRange => "out_of_range",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::Duplicate => "duplicate",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `data/reports/validation.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidationReport {
    pub validated_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// Validate was told to go on past datasets below their minimum
    /// (`--allow-small`): a run that then failed did not stop for them.
    #[serde(default)]
    pub allow_small: bool,
    pub datasets: BTreeMap<String, DatasetReport>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DatasetReport {
    pub rows_in: usize,
    pub clean: usize,
    pub rejected: BTreeMap<Reason, usize>,
    pub min_rows: usize,
    pub timestamp_min: Option<DateTime<Utc>>,
    pub timestamp_max: Option<DateTime<Utc>>,
    pub null_counts: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
}

impl DatasetReport {
    /// validate's warning for a dataset below its minimum of clean rows.
    pub fn below_minimum_warning(clean: usize, minimum: usize) -> String {
        format!(
            "{}, below the minimum of {minimum} to train",
            crate::count(clean, "clean row")
        )
    }

    /// The warnings but the one about the minimum, for a reader that says
    /// that in its own words (status).
    pub fn other_warnings(&self) -> impl Iterator<Item = &String> {
        let minimum = Self::below_minimum_warning(self.clean, self.min_rows);
        self.warnings.iter().filter(move |w| **w != minimum)
    }
}

/// A model family `train` fits and compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// The training-set mean.
    MeanBaseline,
    /// The provider x model mean (quality, csat).
    ProviderModelBaseline,
    /// The action type mean (quality, csat).
    ActionTypeBaseline,
    /// Take the A/B prediction as it is (performance): what calibration must beat.
    PredictionBaseline,
    Ridge,
    Lightgbm,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::MeanBaseline => "mean_baseline",
            Algorithm::ProviderModelBaseline => "provider_model_baseline",
            Algorithm::ActionTypeBaseline => "action_type_baseline",
            Algorithm::PredictionBaseline => "prediction_baseline",
            Algorithm::Ridge => "ridge",
            Algorithm::Lightgbm => "lightgbm",
        }
    }

    /// A baseline: a model is only worth keeping when it beats these.
    pub fn is_baseline(self) -> bool {
        !matches!(self, Algorithm::Ridge | Algorithm::Lightgbm)
    }
}

/// Regression metrics on held-out rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub r2: f64,
    pub mae: f64,
    pub rmse: f64,
    /// Share of predictions within the dataset's tolerance of the truth.
    pub within_tolerance: f64,
    pub rows: usize,
}

/// One candidate's scores: on the model-selection rows, and held out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    /// Mean RMSE over the model-selection folds.
    pub cv_rmse: f64,
    pub cv_rmse_per_fold: Vec<f64>,
    /// On the held-out rows, fitted on all training rows.
    pub test: Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Trained,
    /// Too few clean rows; not trained.
    Skipped,
}

/// `data/reports/training.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingReport {
    pub trained_at: DateTime<Utc>,
    pub seed: u64,
    pub models: BTreeMap<String, ModelReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelReport {
    pub status: ModelStatus,
    pub rows: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<Algorithm>,
    pub training_rows: usize,
    pub test_rows: usize,
    pub candidates: BTreeMap<Algorithm, Candidate>,
    pub train_seconds: f64,
    pub fit_seconds: BTreeMap<Algorithm, f64>,
    /// The version this run made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<crate::registry::Version>,
    /// The promotion gate's decision about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
}

/// How `train` chooses whether a new version replaces the champion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotePolicy {
    /// When it beats its baselines and is no worse than the champion.
    #[default]
    Better,
    /// Always (a forced promotion).
    Always,
    /// Never: the version is kept, the champion stays.
    Never,
}

/// The promotion gate's decision about a new version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub promoted: bool,
    /// One line: why.
    pub reason: String,
    pub policy: PromotePolicy,
    /// Held-out rows both versions were scored on (rows neither trained on).
    pub gate_rows: usize,
    /// The new version's RMSE on them.
    pub rmse: f64,
    /// The best baseline's RMSE on the new version's held-out rows.
    pub baseline_rmse: f64,
    /// The champion it was compared with, and its RMSE on the gate rows.
    pub champion: Option<crate::registry::Version>,
    pub champion_rmse: Option<f64>,
    /// The relative tolerance: promoted when rmse <= champion_rmse * (1 + tolerance),
    /// and the run of promotions it ends stays within it (`cumulative_ratio`).
    pub tolerance: f64,
    /// How far behind this version stands, compounded: the product of the
    /// RMSE ratios (new / champion) of its promotion and of the promotions
    /// before it, back to the last version that was no worse than its
    /// champion; at least 1 (exactly 1 for a first version, a forced
    /// promotion or one judged on baselines). A challenger is promoted only
    /// while this stays within 1 + tolerance, so a run of versions each just
    /// inside the tolerance cannot walk the champion down. Absent in cards
    /// written before it was kept; none when it would be infinite (a
    /// champion scoring 0): see [`Promotion::cumulative`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cumulative_ratio: Option<f64>,
    /// The new version is its champion's model made again, byte for byte (a
    /// retrain on unchanged data: see train's retention). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_as_champion: bool,
}

impl Promotion {
    /// [`Promotion::cumulative_ratio`] as the gate counts it for a champion:
    /// 1 when this version was not promoted (it became champion by a
    /// rollback, a user's choice, which starts afresh); for a card written
    /// before the ratio was kept, its own promotion's ratio.
    pub fn cumulative(&self) -> f64 {
        if !self.promoted {
            return 1.0;
        }
        self.cumulative_ratio
            .unwrap_or_else(|| match (self.policy, self.champion_rmse) {
                (PromotePolicy::Better, Some(champion)) if champion > 0.0 => {
                    (self.rmse / champion).max(1.0)
                }
                _ => 1.0,
            })
    }
}

impl ModelReport {
    pub fn skipped(rows: usize, message: String) -> Self {
        Self {
            status: ModelStatus::Skipped,
            rows,
            message: Some(message),
            algorithm: None,
            training_rows: 0,
            test_rows: 0,
            candidates: BTreeMap::new(),
            train_seconds: 0.0,
            fit_seconds: BTreeMap::new(),
            version: None,
            promotion: None,
        }
    }

    /// The chosen candidate's held-out metrics, when trained.
    pub fn chosen(&self) -> Option<&Candidate> {
        self.candidates.get(&self.algorithm?)
    }
}

/// Names of the tables under `data/insights/` (see [`crate::Layout::insight`]).
pub mod insight {
    /// Written by `train`: gain share per feature of each LightGBM model.
    pub const FEATURE_IMPORTANCE: &str = "feature_importance";
    /// Written by `train`: the A/B prediction against the rating, per provider and decile.
    pub const CALIBRATION: &str = "calibration";
    /// Written by `report`, from the clean csat dataset.
    pub const CSAT_BY_QUALITY_RANGE: &str = "csat_by_quality_range";
    pub const CSAT_BY_PROVIDER: &str = "csat_by_provider";
    pub const CSAT_BY_MODEL: &str = "csat_by_model";
    pub const CSAT_BY_ACTION_TYPE: &str = "csat_by_action_type";
    pub const CSAT_BY_DAY: &str = "csat_by_day";
    /// Written by `report`, from the clean quality dataset.
    pub const QUALITY_BASELINES: &str = "quality_baselines";
    /// Every table `report` writes, published with its page as one generation.
    pub const BY_REPORT: [&str; 6] = [
        CSAT_BY_QUALITY_RANGE,
        CSAT_BY_PROVIDER,
        CSAT_BY_MODEL,
        CSAT_BY_ACTION_TYPE,
        CSAT_BY_DAY,
        QUALITY_BASELINES,
    ];

    /// The columns of [`FEATURE_IMPORTANCE`]: per model and feature, its share of
    /// the model's total gain.
    pub mod importance {
        pub const MODEL: &str = "model";
        pub const FEATURE: &str = "feature";
        pub const GAIN_SHARE: &str = "gain_share";
    }

    /// The columns of [`CALIBRATION`] besides `provider`: per provider and decile
    /// of the A/B prediction, rows and the means of the prediction, the actual
    /// rating and the calibrated model's output.
    pub mod calibration {
        pub const BIN: &str = "bin";
        pub const ROWS: &str = "rows";
        pub const MEAN_PREDICTION: &str = "mean_prediction";
        pub const MEAN_ACTUAL: &str = "mean_actual";
        pub const MEAN_CALIBRATED: &str = "mean_calibrated";
    }
}

/// Rows, mean, sample standard deviation and 95% t-interval of one group of
/// an insight table: no mean without rows, no deviation or interval below two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub rows: usize,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// A group's label and its numbers, as insights.json gives them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupStat {
    pub group: String,
    #[serde(flatten)]
    pub stat: Stat,
}

/// The quality range with the best CSAT, and the cheapest one as good.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptimalRange {
    /// The range with the highest mean CSAT among those with enough rows.
    pub best: GroupStat,
    /// The lowest range with enough rows whose interval overlaps the best's.
    pub cheapest_as_good: GroupStat,
}

/// Per `_source` (synthetic rows are never pooled with real ones).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceInsights {
    /// Clean csat rows of this source.
    pub rows: usize,
    /// None when no range has enough rows; `note` says so.
    pub optimal: Option<OptimalRange>,
    pub note: Option<String>,
    /// The evidence: every quality range, empty ones included.
    pub ranges: Vec<GroupStat>,
}

/// `data/reports/insights.json`: the optimal quality range, with its evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InsightsReport {
    pub computed_at: DateTime<Utc>,
    /// A range needs this many rows to be a candidate for the optimum.
    pub min_rows: usize,
    pub rule: String,
    pub sources: BTreeMap<String, SourceInsights>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_snake_case_keys() {
        let mut m = BTreeMap::new();
        m.insert(Reason::OutOfRange, 2usize);
        m.insert(Reason::Missing, 1usize);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"missing":1,"out_of_range":2}"#);
        let back: BTreeMap<Reason, usize> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.name()), Some(r));
        }
    }
}
