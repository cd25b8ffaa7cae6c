//! Every column name the pipeline uses, defined once.

// Raw tables (source names, as the GM's Supabase project stores them).
pub const ID: &str = "id";
pub const CREATED_AT: &str = "created_at";
pub const PROVIDER: &str = "provider";
pub const MODEL: &str = "model";
pub const ACTION_TYPE: &str = "action_type";
pub const SCENARIO_ID: &str = "scenario_id";
pub const QUALITY_SCORE: &str = "quality_score";
pub const METADATA: &str = "metadata";
pub const SESSION_ID: &str = "session_id";
pub const USER_ID: &str = "user_id";
pub const RESPONSE_ID: &str = "response_id";
pub const QUALITY_RATING: &str = "quality_rating";
pub const FEEDBACK_TEXT: &str = "feedback_text";
pub const RESPONSE_TIME_MS: &str = "response_time_ms";
pub const EXPERIMENT_NAME: &str = "experiment_name";
pub const VARIANT: &str = "variant";
pub const PREDICTED_QUALITY: &str = "predicted_quality";
pub const USER_RATING: &str = "user_rating";

// Lineage columns added by extract and synth.
pub const SOURCE: &str = "_source";
pub const EXTRACTED_AT: &str = "_extracted_at";
pub const EXTRA: &str = "_extra";

// Keys inside the explanations' `metadata` JSON, paired with their dataset column.
pub const METRICS: [(&str, &str); 6] = [
    ("codeQuality", CODE_QUALITY),
    ("testCoverage", TEST_COVERAGE),
    ("security", SECURITY),
    ("performance", PERFORMANCE),
    ("maintainability", MAINTAINABILITY),
    ("complexity", COMPLEXITY),
];
/// Where an explanation names the response it explains, when the table has no column for it.
pub const METADATA_RESPONSE_ID: &str = "responseId";

// Training datasets.
pub const SOURCE_TABLE: &str = "source_table";
pub const SOURCE_ID: &str = "source_id";
pub const TIMESTAMP: &str = "timestamp";
pub const CODE_QUALITY: &str = "code_quality";
pub const TEST_COVERAGE: &str = "test_coverage";
pub const SECURITY: &str = "security";
pub const PERFORMANCE: &str = "performance";
pub const MAINTAINABILITY: &str = "maintainability";
pub const COMPLEXITY: &str = "complexity";
pub const CSAT: &str = "csat";
pub const CSAT_SCORE: &str = "csat_score";
pub const MODEL_NAME: &str = "model_name";
pub const PREDICTION: &str = "prediction";
pub const ACTUAL: &str = "actual";

// Rejected rows.
pub const REASON: &str = "reason";
/// The reason of a raw row that could not be read (`data/rejected/raw_<table>.parquet`).
pub const UNPARSEABLE: &str = "unparseable";
pub const DETAIL: &str = "detail";
pub const FIELD: &str = "field";
