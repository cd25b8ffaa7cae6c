//! The validation rules (validate applies them; serve refuses rows that break
//! them), one line each. A row's reason is the first that
//! applies, in the order missing, out_of_range, bad_timestamp, duplicate.

use crate::Dataset::{self, Csat, Performance, Quality};
use crate::columns::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// The value must not be null.
    Required,
    /// A non-null value must be a finite number in [min, max].
    Range { min: f64, max: f64 },
}

#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub dataset: Dataset,
    pub column: &'static str,
    pub check: Check,
}

const fn required(dataset: Dataset, column: &'static str) -> Rule {
    Rule {
        dataset,
        column,
        check: Check::Required,
    }
}

const fn range(dataset: Dataset, column: &'static str, min: f64, max: f64) -> Rule {
    Rule {
        dataset,
        column,
        check: Check::Range { min, max },
    }
}

const RATING: (f64, f64) = (0.0, 1.0);
const SCORE: (f64, f64) = (0.0, 100.0);

/// Every rule. Traceability columns are required everywhere; targets and the
/// features a model cannot do without are required; optional features (csat,
/// quality_score in csat rows, response_time_ms) are range-checked only.
pub const RULES: &[Rule] = &[
    // quality: the explanation's score from its six code metrics.
    required(Quality, SOURCE_TABLE),
    required(Quality, SOURCE_ID),
    required(Quality, QUALITY_SCORE),
    required(Quality, PROVIDER),
    required(Quality, MODEL),
    required(Quality, ACTION_TYPE),
    required(Quality, CODE_QUALITY),
    required(Quality, TEST_COVERAGE),
    required(Quality, SECURITY),
    required(Quality, PERFORMANCE),
    required(Quality, MAINTAINABILITY),
    required(Quality, COMPLEXITY),
    range(Quality, QUALITY_SCORE, SCORE.0, SCORE.1),
    range(Quality, CODE_QUALITY, SCORE.0, SCORE.1),
    range(Quality, TEST_COVERAGE, SCORE.0, SCORE.1),
    range(Quality, SECURITY, SCORE.0, SCORE.1),
    range(Quality, PERFORMANCE, SCORE.0, SCORE.1),
    range(Quality, MAINTAINABILITY, SCORE.0, SCORE.1),
    range(Quality, COMPLEXITY, SCORE.0, SCORE.1),
    range(Quality, CSAT, RATING.0, RATING.1),
    // csat: what the player thought. A/B rows have no action type or response time.
    required(Csat, SOURCE_TABLE),
    required(Csat, SOURCE_ID),
    required(Csat, CSAT_SCORE),
    required(Csat, PROVIDER),
    required(Csat, MODEL),
    range(Csat, CSAT_SCORE, RATING.0, RATING.1),
    // quality_score here is the A/B test's predicted_quality, a 0-1 rating.
    range(Csat, QUALITY_SCORE, RATING.0, RATING.1),
    range(Csat, RESPONSE_TIME_MS, 0.0, f64::MAX),
    // performance: predicted quality against the user's rating.
    required(Performance, SOURCE_TABLE),
    required(Performance, SOURCE_ID),
    required(Performance, ACTUAL),
    required(Performance, PREDICTION),
    required(Performance, PROVIDER),
    required(Performance, MODEL),
    required(Performance, MODEL_NAME),
    required(Performance, VARIANT),
    range(Performance, ACTUAL, RATING.0, RATING.1),
    range(Performance, PREDICTION, RATING.0, RATING.1),
];

pub fn for_dataset(dataset: Dataset) -> impl Iterator<Item = &'static Rule> {
    RULES.iter().filter(move |r| r.dataset == dataset)
}

/// Whether `column` must hold a value in every row of `dataset`.
pub fn is_required(dataset: Dataset, column: &str) -> bool {
    for_dataset(dataset).any(|r| r.column == column && r.check == Check::Required)
}

/// The range a value of `column` must lie in, when the column has one.
pub fn range_of(dataset: Dataset, column: &str) -> Option<(f64, f64)> {
    for_dataset(dataset).find_map(|r| match r.check {
        Check::Range { min, max } if r.column == column => Some((min, max)),
        _ => None,
    })
}

/// A range as a message says it: `0 to 1`, or `0 or more` when it has no top.
pub fn describe_range(min: f64, max: f64) -> String {
    if max == f64::MAX {
        format!("{min} or more")
    } else {
        format!("{min} to {max}")
    }
}
