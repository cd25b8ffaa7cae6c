//! Drift: how far new clean data has moved from the data the champion was
//! trained on. Each model version keeps a small [`Profile`] of its training
//! rows (per numeric feature: decile bins; per categorical: level shares; the
//! target's distribution); each train run compares the new clean dataset with
//! the champion's profile and writes `data/reports/drift.json`
//! ([`DriftReport`]).
//!
//! PSI (population stability index) = sum over bins of (a - e) * ln(a / e),
//! where e and a are the champion's and the new data's shares of a bin (nulls
//! are a bin of their own; a share is floored at [`PSI_FLOOR`] so an empty
//! bin counts without dividing by zero). Conventional reading: below 0.1
//! stable, 0.1-0.2 moderate, above 0.2 major.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::Version;

/// PSI above this is a moderate shift.
pub const PSI_MODERATE: f64 = 0.1;
/// PSI above this is a major shift.
pub const PSI_MAJOR: f64 = 0.2;
/// Smallest share a bin counts with in PSI.
pub const PSI_FLOOR: f64 = 1e-4;
/// Quantile bins of a numeric profile.
pub const BINS: usize = 10;
/// Bin edges come from at most this many values (an even stride): deciles of
/// a large sample are as good as of every row, at a fraction of the sort.
pub const EDGE_SAMPLE: usize = 100_000;
/// A reject rate has jumped when it is this many points (0-1) above the
/// champion's and at least twice it.
pub const REJECT_JUMP: f64 = 0.05;

/// How much a distribution moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftLevel {
    #[default]
    None,
    Moderate,
    Major,
}

impl DriftLevel {
    pub fn of_psi(psi: f64) -> Self {
        if psi > PSI_MAJOR {
            DriftLevel::Major
        } else if psi > PSI_MODERATE {
            DriftLevel::Moderate
        } else {
            DriftLevel::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DriftLevel::None => "none",
            DriftLevel::Moderate => "moderate",
            DriftLevel::Major => "major",
        }
    }
}

/// PSI between the champion's shares `expected` and the new `actual` ones
/// (same bins, each summing to 1).
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// A numeric column's distribution: the shares of the training rows in bins
/// cut at the training deciles, and of nulls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Interior cut points, increasing: bin i holds values <= edges[i] and
    /// above edges[i - 1].
    pub edges: Vec<f64>,
    /// One share per bin (edges + 1 of them), then the null share last.
    pub shares: Vec<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

impl NumericProfile {
    /// The profile of `values` (NaN for null): edges from at most
    /// [`EDGE_SAMPLE`] of them, shares, mean and deviation from all.
    pub fn of(values: &[f64]) -> Self {
        let stride = values.len().div_ceil(EDGE_SAMPLE).max(1);
        let mut sample: Vec<f64> = values
            .iter()
            .step_by(stride)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        sample.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..BINS)
            .filter_map(|i| sample.get(i * sample.len() / BINS).copied())
            .collect();
        edges.dedup();
        // A cut at the largest value would leave the last bin empty by construction.
        if edges.last() == sample.last() {
            edges.pop();
        }
        let present = || values.iter().filter(|v| v.is_finite());
        let n = present().count() as f64;
        let mean = (n > 0.0).then(|| present().sum::<f64>() / n);
        let std = mean
            .filter(|_| n > 1.0)
            .map(|m| (present().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        let mut profile = Self {
            edges,
            shares: Vec::new(),
            mean,
            std,
        };
        profile.shares = profile.shares_of(values);
        profile
    }

    /// The shares of `values` in this profile's bins (nulls last).
    pub fn shares_of(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 2];
        for &v in values {
            let bin = if v.is_finite() {
                self.edges.partition_point(|&e| e < v)
            } else {
                self.edges.len() + 1
            };
            counts[bin] += 1;
        }
        let total = values.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / total).collect()
    }
}

/// A categorical column's distribution: the share of each level, and of nulls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    pub shares: BTreeMap<String, f64>,
    pub null_share: f64,
}

impl CategoricalProfile {
    /// The profile of `values`.
    pub fn of<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut nulls, mut total) = (0usize, 0usize);
        for v in values {
            total += 1;
            match v {
                Some(s) => *counts.entry(s).or_default() += 1,
                None => nulls += 1,
            }
        }
        let total = total.max(1) as f64;
        Self {
            shares: counts
                .into_iter()
                .map(|(k, c)| (k.to_string(), c as f64 / total))
                .collect(),
            null_share: nulls as f64 / total,
        }
    }

    /// PSI of `current` against this profile, over the union of levels.
    pub fn psi(&self, current: &CategoricalProfile) -> f64 {
        let mut levels: Vec<&String> = self.shares.keys().chain(current.shares.keys()).collect();
        levels.sort();
        levels.dedup();
        let share = |p: &CategoricalProfile, l: &String| p.shares.get(l).copied().unwrap_or(0.0);
        let mut expected: Vec<f64> = levels.iter().map(|l| share(self, l)).collect();
        let mut actual: Vec<f64> = levels.iter().map(|l| share(current, l)).collect();
        expected.push(self.null_share);
        actual.push(current.null_share);
        psi(&expected, &actual)
    }

    /// Levels of `current` this profile never saw.
    pub fn unseen(&self, current: &CategoricalProfile) -> Vec<String> {
        current
            .shares
            .keys()
            .filter(|l| !self.shares.contains_key(*l))
            .cloned()
            .collect()
    }
}

/// `profile.json` of a model version: its training rows, described.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: usize,
    pub numeric: BTreeMap<String, NumericProfile>,
    pub categorical: BTreeMap<String, CategoricalProfile>,
    pub target: NumericProfile,
    /// validate's reject rate of the dataset when the version was trained.
    pub reject_rate: Option<f64>,
}

/// One feature's shift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    pub level: DriftLevel,
}

/// The target's shift: its mean, in the champion's standard deviations too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetDrift {
    pub champion_mean: Option<f64>,
    pub mean: Option<f64>,
    /// mean - champion_mean, over the champion's standard deviation.
    pub shift_std: Option<f64>,
    pub psi: f64,
    pub level: DriftLevel,
}

/// The dataset's reject rate now and when the champion was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectDrift {
    pub champion: f64,
    pub current: f64,
    /// See [`REJECT_JUMP`].
    pub jumped: bool,
}

impl RejectDrift {
    pub fn new(champion: f64, current: f64) -> Self {
        Self {
            champion,
            current,
            jumped: current > champion + REJECT_JUMP && current >= 2.0 * champion,
        }
    }
}

/// One dataset against its model's champion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    /// The champion compared with; None when the model has none yet.
    pub champion: Option<Version>,
    /// Clean rows compared.
    pub rows: usize,
    /// Why there is nothing to compare, when there is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every feature, largest PSI first.
    pub features: Vec<FeatureDrift>,
    pub target: Option<TargetDrift>,
    /// Per categorical feature, levels the champion never saw.
    pub unseen_levels: BTreeMap<String, Vec<String>>,
    pub reject_rate: Option<RejectDrift>,
    /// The largest level among features and target.
    pub level: DriftLevel,
    pub max_psi: f64,
}

impl DatasetDrift {
    /// The one-line summary `status`, the history and the report show.
    pub fn summary(&self) -> DriftSummary {
        DriftSummary {
            level: self.level,
            max_psi: self.max_psi,
            drifted: self
                .features
                .iter()
                .filter(|f| f.level != DriftLevel::None)
                .map(|f| f.feature.clone())
                .collect(),
            unseen_levels: self.unseen_levels.values().map(Vec::len).sum(),
            target_shift_std: self.target.as_ref().and_then(|t| t.shift_std),
            reject_rate_jumped: self.reject_rate.as_ref().is_some_and(|r| r.jumped),
        }
    }

    /// Whether anything here deserves a look.
    pub fn flagged(&self) -> bool {
        self.level != DriftLevel::None
            || !self.unseen_levels.is_empty()
            || self.reject_rate.as_ref().is_some_and(|r| r.jumped)
    }
}

/// `data/reports/drift.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub computed_at: Option<DateTime<Utc>>,
    pub datasets: BTreeMap<String, DatasetDrift>,
}

/// A dataset's drift in a line of the run history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub level: DriftLevel,
    pub max_psi: f64,
    /// Features with a moderate or major PSI.
    pub drifted: Vec<String>,
    pub unseen_levels: usize,
    pub target_shift_std: Option<f64>,
    pub reject_rate_jumped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_data_is_stable_and_a_shift_is_major() {
        let base: Vec<f64> = (0..10_000).map(|i| (i % 100) as f64).collect();
        let p = NumericProfile::of(&base);
        assert_eq!(p.shares.len(), p.edges.len() + 2);
        assert!((p.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(psi(&p.shares, &p.shares_of(&base)) < 1e-9);
        let shifted: Vec<f64> = base.iter().map(|v| v + 30.0).collect();
        let moved = psi(&p.shares, &p.shares_of(&shifted));
        assert_eq!(DriftLevel::of_psi(moved), DriftLevel::Major, "{moved}");
        // Nulls count as a bin of their own.
        let mut with_nulls = base.clone();
        with_nulls.iter_mut().step_by(3).for_each(|v| *v = f64::NAN);
        assert!(psi(&p.shares, &p.shares_of(&with_nulls)) > PSI_MAJOR);
    }

    #[test]
    fn unseen_levels_and_their_psi() {
        let old = CategoricalProfile::of(["a", "b", "a", "b"].map(Some));
        let same = CategoricalProfile::of(["b", "a"].map(Some));
        assert!(old.psi(&same) < 1e-9);
        let new = CategoricalProfile::of(["a", "b", "c", "c"].map(Some));
        assert_eq!(old.unseen(&new), vec!["c".to_string()]);
        assert!(old.psi(&new) > PSI_MAJOR);
    }

    #[test]
    fn a_reject_rate_jumps_when_it_doubles_and_rises_five_points() {
        assert!(RejectDrift::new(0.01, 0.30).jumped);
        assert!(!RejectDrift::new(0.01, 0.03).jumped);
        assert!(!RejectDrift::new(0.20, 0.30).jumped);
    }
}
