//! The three source tables, as the GM's Supabase project stores them, and their
//! raw Parquet schema: source names and types, plus `_source`, `_extracted_at`
//! and `_extra` (a JSON object of every column the source had beyond these).

use polars::prelude::*;

use crate::columns::*;

/// How a raw column is typed in Parquet, and how its text form is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Numeric or double precision, as f64.
    Number,
    /// timestamptz, as a UTC timestamp in microseconds.
    Timestamp,
    /// json/jsonb, kept as its JSON text.
    Json,
}

impl Kind {
    pub fn dtype(self) -> DataType {
        match self {
            Kind::Text | Kind::Json => DataType::String,
            Kind::Number => DataType::Float64,
            Kind::Timestamp => utc_timestamp(),
        }
    }
}

/// The one timestamp type of the pipeline: microseconds, UTC.
pub fn utc_timestamp() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

#[derive(Clone, Copy, Debug)]
pub struct RawColumn {
    pub name: &'static str,
    pub kind: Kind,
    /// A source without this column cannot be extracted; optional columns
    /// absent from the source become nulls.
    pub required: bool,
}

const fn req(name: &'static str, kind: Kind) -> RawColumn {
    RawColumn {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> RawColumn {
    RawColumn {
        name,
        kind,
        required: false,
    }
}

const EXPLANATIONS: &[RawColumn] = &[
    req(ID, Kind::Text),
    req(CREATED_AT, Kind::Timestamp),
    req(PROVIDER, Kind::Text),
    req(MODEL, Kind::Text),
    req(ACTION_TYPE, Kind::Text),
    opt(SCENARIO_ID, Kind::Text),
    req(QUALITY_SCORE, Kind::Number),
    req(METADATA, Kind::Json),
];

const FEEDBACK: &[RawColumn] = &[
    req(ID, Kind::Text),
    req(CREATED_AT, Kind::Timestamp),
    opt(SESSION_ID, Kind::Text),
    opt(USER_ID, Kind::Text),
    req(RESPONSE_ID, Kind::Text),
    req(PROVIDER, Kind::Text),
    req(MODEL, Kind::Text),
    req(ACTION_TYPE, Kind::Text),
    req(QUALITY_RATING, Kind::Number),
    opt(FEEDBACK_TEXT, Kind::Text),
    opt(RESPONSE_TIME_MS, Kind::Number),
];

const AB_TESTING: &[RawColumn] = &[
    req(ID, Kind::Text),
    req(CREATED_AT, Kind::Timestamp),
    req(EXPERIMENT_NAME, Kind::Text),
    req(VARIANT, Kind::Text),
    req(PROVIDER, Kind::Text),
    req(MODEL, Kind::Text),
    req(RESPONSE_ID, Kind::Text),
    req(PREDICTED_QUALITY, Kind::Number),
    req(USER_RATING, Kind::Number),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RawTable {
    Explanations,
    Feedback,
    AbTesting,
}

impl RawTable {
    pub const ALL: [RawTable; 3] = [
        RawTable::Explanations,
        RawTable::Feedback,
        RawTable::AbTesting,
    ];

    /// The table's CSV export in `dir`, as Supabase's table editor names it
    /// (`<table>.csv`): what `synth --format csv` writes and `extract --source
    /// csv` reads.
    pub fn csv_export(self, dir: &std::path::Path) -> std::path::PathBuf {
        dir.join(format!("{}.csv", self.name()))
    }

    pub fn name(self) -> &'static str {
        match self {
            RawTable::Explanations => "ai_gm_explanations",
            RawTable::Feedback => "ai_gm_quality_feedback",
            RawTable::AbTesting => "ai_gm_ab_testing",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The source columns, in the order the raw Parquet keeps them.
    pub fn columns(self) -> &'static [RawColumn] {
        match self {
            RawTable::Explanations => EXPLANATIONS,
            RawTable::Feedback => FEEDBACK,
            RawTable::AbTesting => AB_TESTING,
        }
    }

    pub fn column(self, name: &str) -> Option<&'static RawColumn> {
        self.columns().iter().find(|c| c.name == name)
    }

    /// The raw Parquet schema: source columns, then the lineage columns.
    pub fn schema(self) -> Schema {
        let mut schema: Schema = self
            .columns()
            .iter()
            .map(|c| Field::new(c.name.into(), c.kind.dtype()))
            .collect();
        schema.with_column(SOURCE.into(), DataType::String);
        schema.with_column(EXTRACTED_AT.into(), utc_timestamp());
        schema.with_column(EXTRA.into(), DataType::String);
        schema
    }

    /// The (created_at, id) order incremental collection pages by.
    pub fn key_columns() -> [&'static str; 2] {
        [CREATED_AT, ID]
    }
}

impl std::fmt::Display for RawTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in RawTable::ALL {
            assert_eq!(RawTable::from_name(t.name()), Some(t));
        }
        assert_eq!(RawTable::from_name("nope"), None);
    }

    #[test]
    fn schema_ends_with_lineage() {
        let s = RawTable::AbTesting.schema();
        let names: Vec<_> = s.iter_names().map(|n| n.to_string()).collect();
        assert_eq!(names.first().map(String::as_str), Some(ID));
        assert_eq!(&names[names.len() - 3..], [SOURCE, EXTRACTED_AT, EXTRA]);
        assert_eq!(s.get(CREATED_AT), Some(&utc_timestamp()));
    }
}
