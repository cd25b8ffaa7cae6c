//! The three training datasets: columns, target, features and the minimum
//! number of clean rows a model needs.

use polars::prelude::*;

use crate::columns::*;
use crate::tables::{Kind, utc_timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    Quality,
    Csat,
    Performance,
}

const QUALITY_COLUMNS: &[(&str, Kind)] = &[
    (SOURCE_TABLE, Kind::Text),
    (SOURCE_ID, Kind::Text),
    (TIMESTAMP, Kind::Timestamp),
    (SOURCE, Kind::Text),
    (PROVIDER, Kind::Text),
    (MODEL, Kind::Text),
    (ACTION_TYPE, Kind::Text),
    (SCENARIO_ID, Kind::Text),
    (CODE_QUALITY, Kind::Number),
    (TEST_COVERAGE, Kind::Number),
    (SECURITY, Kind::Number),
    (PERFORMANCE, Kind::Number),
    (MAINTAINABILITY, Kind::Number),
    (COMPLEXITY, Kind::Number),
    (CSAT, Kind::Number),
    (QUALITY_SCORE, Kind::Number),
];

const CSAT_COLUMNS: &[(&str, Kind)] = &[
    (SOURCE_TABLE, Kind::Text),
    (SOURCE_ID, Kind::Text),
    (TIMESTAMP, Kind::Timestamp),
    (SOURCE, Kind::Text),
    (PROVIDER, Kind::Text),
    (MODEL, Kind::Text),
    (ACTION_TYPE, Kind::Text),
    (SESSION_ID, Kind::Text),
    (RESPONSE_TIME_MS, Kind::Number),
    (QUALITY_SCORE, Kind::Number),
    (CSAT_SCORE, Kind::Number),
];

const PERFORMANCE_COLUMNS: &[(&str, Kind)] = &[
    (SOURCE_TABLE, Kind::Text),
    (SOURCE_ID, Kind::Text),
    (TIMESTAMP, Kind::Timestamp),
    (SOURCE, Kind::Text),
    (MODEL_NAME, Kind::Text),
    (VARIANT, Kind::Text),
    (PROVIDER, Kind::Text),
    (MODEL, Kind::Text),
    (PREDICTION, Kind::Number),
    (ACTUAL, Kind::Number),
];

impl Dataset {
    pub const ALL: [Dataset; 3] = [Dataset::Quality, Dataset::Csat, Dataset::Performance];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Quality => "quality",
            Dataset::Csat => "csat",
            Dataset::Performance => "performance",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn columns(self) -> &'static [(&'static str, Kind)] {
        match self {
            Dataset::Quality => QUALITY_COLUMNS,
            Dataset::Csat => CSAT_COLUMNS,
            Dataset::Performance => PERFORMANCE_COLUMNS,
        }
    }

    /// The kind of the dataset's column `name`, if it has one (as
    /// `RawTable::column` for a table).
    pub fn column(self, name: &str) -> Option<Kind> {
        self.columns()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }

    pub fn schema(self) -> Schema {
        self.columns()
            .iter()
            .map(|(name, kind)| {
                let dtype = if *kind == Kind::Timestamp {
                    utc_timestamp()
                } else {
                    kind.dtype()
                };
                Field::new((*name).into(), dtype)
            })
            .collect()
    }

    /// What the dataset's model predicts.
    pub fn target(self) -> &'static str {
        match self {
            Dataset::Quality => QUALITY_SCORE,
            Dataset::Csat => CSAT_SCORE,
            Dataset::Performance => ACTUAL,
        }
    }

    /// Numeric model inputs; nulls are missing values, never zero.
    pub fn numeric_features(self) -> &'static [&'static str] {
        match self {
            Dataset::Quality => &[
                CODE_QUALITY,
                TEST_COVERAGE,
                SECURITY,
                PERFORMANCE,
                MAINTAINABILITY,
                COMPLEXITY,
                CSAT,
            ],
            Dataset::Csat => &[QUALITY_SCORE, RESPONSE_TIME_MS],
            Dataset::Performance => &[PREDICTION],
        }
    }

    /// Categorical model inputs.
    pub fn categorical_features(self) -> &'static [&'static str] {
        match self {
            Dataset::Quality => &[PROVIDER, MODEL, ACTION_TYPE],
            Dataset::Csat => &[PROVIDER, MODEL, ACTION_TYPE],
            Dataset::Performance => &[MODEL_NAME, VARIANT, PROVIDER, MODEL],
        }
    }

    /// Fewer clean rows than this and the model is not trained.
    pub fn min_rows(self) -> usize {
        match self {
            Dataset::Quality => 100,
            Dataset::Csat => 200,
            Dataset::Performance => 500,
        }
    }

    /// How close a prediction must be to count as "within tolerance".
    pub fn tolerance(self) -> f64 {
        match self {
            Dataset::Quality => 5.0,
            Dataset::Csat | Dataset::Performance => 0.05,
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
