//! The insight tables as JSON: `data/insights/<table>.parquet` as a list of
//! row objects, and the optimal quality range (`data/reports/insights.json`)
//! as the report stage wrote it. Only the tables the contract names can be
//! asked for; nothing else on disk is reachable.

use anyhow::{Context, Result};
use contract::reports::{InsightsReport, insight};
use contract::{Layout, io};
use polars::prelude::*;
use serde_json::{Map, Number, Value};

/// The name under `/v1/insights/` of the optimal quality range.
pub const OPTIMAL_RANGE: &str = "optimal_quality_range";

/// Every table a client may ask for.
pub const TABLES: [&str; 8] = [
    insight::CSAT_BY_QUALITY_RANGE,
    insight::CSAT_BY_PROVIDER,
    insight::CSAT_BY_MODEL,
    insight::CSAT_BY_ACTION_TYPE,
    insight::CSAT_BY_DAY,
    insight::QUALITY_BASELINES,
    insight::FEATURE_IMPORTANCE,
    insight::CALIBRATION,
];

/// What `/v1/insights/<name>` answers, or None for a name that is not an insight.
pub fn read(layout: &Layout, name: &str) -> Option<Result<Value>> {
    let missing = |path: &std::path::Path| {
        Some(Err(anyhow::anyhow!(
            "{} does not exist yet",
            path.display()
        )))
    };
    if name == OPTIMAL_RANGE {
        let path = layout.insights_report();
        if !path.exists() {
            return missing(&path);
        }
        return Some(
            io::read_json::<InsightsReport>(&path)
                .map_err(anyhow::Error::from)
                .and_then(|r| serde_json::to_value(r).context("encoding the insights")),
        );
    }
    let table = TABLES.into_iter().find(|t| *t == name)?;
    let path = layout.insight(table);
    if !path.exists() {
        return missing(&path);
    }
    Some(
        io::read_parquet(&path)
            .map_err(anyhow::Error::from)
            .and_then(|df| records(&df))
            .map(|rows| {
                let mut out = Map::new();
                out.insert("table".into(), Value::String(table.to_string()));
                out.insert("rows".into(), Value::Array(rows));
                Value::Object(out)
            }),
    )
}

fn value(v: AnyValue) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Float64(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        AnyValue::Float32(x) => Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number),
        AnyValue::Int64(x) => Value::from(x),
        AnyValue::Int32(x) => Value::from(x),
        AnyValue::UInt64(x) => Value::from(x),
        AnyValue::UInt32(x) => Value::from(x),
        other => Value::String(other.to_string()),
    }
}

/// A frame as one JSON object per row, keyed by column name.
fn records(df: &DataFrame) -> Result<Vec<Value>> {
    let columns = df.columns();
    (0..df.height())
        .map(|i| {
            let mut row = Map::new();
            for c in columns {
                row.insert(c.name().to_string(), value(c.get(i)?));
            }
            Ok(Value::Object(row))
        })
        .collect()
}
