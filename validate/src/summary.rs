//! What validation.json says of a dataset, gathered batch by batch.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::DateTime;
use contract::Dataset;
use contract::columns::*;
use contract::reports::{DatasetReport, Reason};
use polars::prelude::*;

/// A dataset's counts, ranges and null counts, gathered batch by batch, for
/// the report: what `describe` once read off the whole frames.
pub struct Summary {
    dataset: Dataset,
    rows_in: usize,
    clean: usize,
    rejected: BTreeMap<Reason, usize>,
    null_counts: BTreeMap<String, usize>,
    timestamp_min: Option<i64>,
    timestamp_max: Option<i64>,
    /// (min, max) of each numeric feature's non-null clean values.
    ranges: Vec<Option<(f64, f64)>>,
    /// Each categorical's first clean value, and whether another differs.
    levels: Vec<(Option<String>, bool)>,
}

impl Summary {
    pub fn new(dataset: Dataset) -> Self {
        Self {
            dataset,
            rows_in: 0,
            clean: 0,
            rejected: Reason::ALL.iter().map(|&r| (r, 0)).collect(),
            null_counts: BTreeMap::new(),
            timestamp_min: None,
            timestamp_max: None,
            ranges: vec![None; dataset.numeric_features().len()],
            levels: vec![(None, false); dataset.categorical_features().len()],
        }
    }

    /// Adds a batch: its input rows and how they were split.
    pub fn add(
        &mut self,
        input: &DataFrame,
        clean: &DataFrame,
        rejected: &DataFrame,
    ) -> Result<()> {
        self.rows_in += input.height();
        self.clean += clean.height();
        if rejected.height() > 0 {
            for name in rejected.column(REASON)?.str()?.iter().flatten() {
                let reason = Reason::from_name(name)
                    .with_context(|| format!("unknown rejection reason `{name}`"))?;
                *self.rejected.entry(reason).or_insert(0) += 1;
            }
        }
        for c in input.columns() {
            *self.null_counts.entry(c.name().to_string()).or_insert(0) += c.null_count();
        }
        if clean.height() == 0 {
            return Ok(());
        }
        if let Ok(ts) = clean.column(TIMESTAMP).and_then(|c| c.datetime().cloned()) {
            let (lo, hi) = (ts.physical().min(), ts.physical().max());
            self.timestamp_min = [self.timestamp_min, lo].into_iter().flatten().min();
            self.timestamp_max = [self.timestamp_max, hi].into_iter().flatten().max();
        }
        for (range, feature) in self.ranges.iter_mut().zip(self.dataset.numeric_features()) {
            let c = clean
                .column(feature)?
                .as_materialized_series()
                .f64()?
                .clone();
            if let (Some(lo), Some(hi)) = (c.min(), c.max()) {
                *range = Some(match *range {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                });
            }
        }
        for ((first, varied), feature) in self
            .levels
            .iter_mut()
            .zip(self.dataset.categorical_features())
        {
            if *varied {
                continue;
            }
            // Stops at the first value that differs, so only a constant
            // column is read through.
            let column = clean.column(feature)?.cast(&DataType::String)?;
            let mut values = column.str()?.iter().flatten();
            let first = match first {
                Some(f) => f.as_str(),
                None => match values.next() {
                    Some(v) => first.insert(v.to_string()).as_str(),
                    None => continue,
                },
            };
            *varied = values.any(|v| v != first);
        }
        Ok(())
    }

    /// The report's entry, with the warnings for a dataset below `minimum`,
    /// a constant numeric feature and a categorical of one level or none.
    pub fn into_report(self, minimum: usize) -> DatasetReport {
        let dataset = self.dataset;
        let mut report = DatasetReport {
            rows_in: self.rows_in,
            clean: self.clean,
            min_rows: minimum,
            rejected: self.rejected,
            null_counts: self.null_counts,
            timestamp_min: self.timestamp_min.and_then(DateTime::from_timestamp_micros),
            timestamp_max: self.timestamp_max.and_then(DateTime::from_timestamp_micros),
            ..DatasetReport::default()
        };
        if self.clean < minimum {
            report
                .warnings
                .push(DatasetReport::below_minimum_warning(self.clean, minimum));
        }
        if self.clean > 1 {
            // A feature with one value, or none, tells a model nothing.
            for (range, feature) in self.ranges.iter().zip(dataset.numeric_features()) {
                match range {
                    None => report.warnings.push(format!(
                        "feature `{feature}` has no value in the clean rows"
                    )),
                    Some((lo, hi)) if lo == hi => report.warnings.push(format!(
                        "feature `{feature}` has no variance in the clean rows: {lo} in every \
                         row that has it"
                    )),
                    Some(_) => {}
                }
            }
            for ((first, varied), feature) in self.levels.iter().zip(dataset.categorical_features())
            {
                match (first, varied) {
                    (None, _) => report.warnings.push(format!(
                        "categorical `{feature}` has no value in the clean rows"
                    )),
                    (Some(only), false) => report.warnings.push(format!(
                        "categorical `{feature}` has one level in the clean rows: `{only}` in \
                         every row that has it"
                    )),
                    (Some(_), true) => {}
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    /// The report's warnings: a constant numeric feature, categoricals with
    /// zero, one and several levels (a constant one after many rows, and one
    /// whose second level comes last), nulls counted, and the minimum.
    #[test]
    fn warnings_for_constant_features_and_levels() {
        let n = 1000;
        let mut variant = vec![Some("a"); n];
        variant[n - 1] = Some("b");
        let clean = df!(
            SOURCE_TABLE => vec!["ai_gm_ab_testing"; n],
            SOURCE_ID => (0..n).map(|i| format!("id-{i}")).collect::<Vec<_>>(),
            MODEL_NAME => vec![None::<&str>; n],
            VARIANT => variant,
            PROVIDER => vec![Some("openai"); n],
            MODEL => (0..n).map(|i| Some(["m1", "m2"][i % 2])).collect::<Vec<_>>(),
            PREDICTION => vec![0.5; n],
            ACTUAL => (0..n).map(|i| i as f64 / n as f64).collect::<Vec<_>>(),
        )
        .unwrap();
        let rejected = clean.clear();
        // In two batches, the second level of `variant` in the second.
        let mut summary = Summary::new(Dataset::Performance);
        for (offset, len) in [(0, n / 2), (n as i64 / 2, n / 2)] {
            let part = clean.slice(offset, len);
            summary.add(&part, &part, &rejected).unwrap();
        }
        let report = summary.into_report(2000);
        assert_eq!(
            report.warnings,
            [
                "1000 clean rows, below the minimum of 2000 to train",
                "feature `prediction` has no variance in the clean rows: 0.5 in every row that \
                 has it",
                "categorical `model_name` has no value in the clean rows",
                "categorical `provider` has one level in the clean rows: `openai` in every row \
                 that has it",
            ]
        );
        assert_eq!(report.null_counts[MODEL_NAME], n);
        assert_eq!(report.null_counts[VARIANT], 0);
    }
}
