//! A prediction request's rows, checked and turned into the model's inputs.
//!
//! Each row is a JSON object keyed by the dataset's column names (as in
//! `data/clean/<dataset>.parquet`); other keys are ignored, and the answer
//! names those that are not the dataset's at all (a typo, say). A feature the
//! validate stage requires must be present and not null; an optional one may
//! be absent or null (missing, as in training). Numbers must be finite and
//! inside the ranges validate enforces: a model is not asked about values it
//! could never have been trained on. Text features take any string; a level
//! unseen in training is missing, as `predict` treats it.

use contract::Dataset;
use contract::rules;
use model::features::{Categorical, Data};
use serde_json::{Map, Value};

/// Why a request's rows cannot be predicted; the message names the row and field.
#[derive(Debug)]
pub struct RowError(pub String);

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The model inputs of `rows`, in order, or the first problem found.
pub fn to_data(dataset: Dataset, rows: &[Map<String, Value>]) -> Result<Data, RowError> {
    let field = |i: usize, name: &str| -> Result<Option<&Value>, RowError> {
        match rows[i].get(name) {
            None | Some(Value::Null) if rules::is_required(dataset, name) => {
                Err(RowError(format!(
                    "rows[{i}]: `{name}` is required by the {dataset} model and is {}",
                    if rows[i].contains_key(name) {
                        "null"
                    } else {
                        "missing"
                    }
                )))
            }
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    };
    let mut numeric = Vec::with_capacity(dataset.numeric_features().len());
    for name in dataset.numeric_features() {
        let mut column = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let value = match field(i, name)? {
                None => f64::NAN,
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(x) if x.is_finite() => x,
                    _ => {
                        return Err(RowError(format!(
                            "rows[{i}].{name}: {n} is not a finite number"
                        )));
                    }
                },
                Some(other) => {
                    return Err(RowError(format!(
                        "rows[{i}].{name}: expected a number, got {}",
                        kind(other)
                    )));
                }
            };
            column.push(value);
        }
        numeric.push(column);
    }
    let mut categorical = Vec::with_capacity(dataset.categorical_features().len());
    for name in dataset.categorical_features() {
        let mut column: Vec<Option<&str>> = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            column.push(match field(i, name)? {
                None => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    return Err(RowError(format!(
                        "rows[{i}].{name}: expected a string, got {}",
                        kind(other)
                    )));
                }
            });
        }
        categorical.push(Categorical::from_values(column));
    }
    let data = Data {
        rows: rows.len(),
        numeric,
        categorical,
        target: Vec::new(),
    };
    match data.first_out_of_range(dataset) {
        Some(out) => Err(RowError(format!(
            "rows[{}].{}: {}",
            out.row,
            out.column,
            out.problem()
        ))),
        None => Ok(data),
    }
}

/// The keys of `rows` that are none of the dataset's columns, each once, in
/// order: likely a misspelt optional feature (`response_time` for
/// `response_time_ms`), which would otherwise be predicted as missing without
/// a word. A clean row's other columns (`source_id`, the target) are the
/// dataset's, so sending whole clean rows names nothing.
pub fn unknown_keys(dataset: Dataset, rows: &[Map<String, Value>]) -> Vec<String> {
    let mut unknown = std::collections::BTreeSet::new();
    for row in rows {
        for key in row.keys() {
            if dataset.column(key).is_none() {
                unknown.insert(key.as_str());
            }
        }
    }
    unknown.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fields_checked_by_the_validation_rules() {
        let ok = rows(json!([
            {"provider": "openai", "model": "gpt-4o", "action_type": "combat", "quality_score": 0.8, "response_time_ms": null},
            {"provider": "openai", "model": "gpt-4o", "extra": [1, 2]}
        ]));
        let data = to_data(Dataset::Csat, &ok).unwrap();
        assert_eq!(data.rows, 2);
        assert_eq!(data.numeric[0][0], 0.8);
        assert!(data.numeric[1][0].is_nan() && data.numeric[0][1].is_nan());
        assert_eq!(data.categorical[2].value(1), None);

        let err = |v: Value| match to_data(Dataset::Csat, &rows(v)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0,
        };
        assert!(
            err(json!([{"model": "m"}]))
                .contains("rows[0]: `provider` is required by the csat model and is missing")
        );
        assert!(err(json!([{"provider": null, "model": "m"}])).contains("is null"));
        assert!(
            err(json!([{"provider": "p", "model": "m", "quality_score": "high"}]))
                .contains("rows[0].quality_score: expected a number, got a string")
        );
        assert!(
            err(json!([{"provider": 3, "model": "m"}])).contains("expected a string, got a number")
        );
        assert!(err(json!([{"provider": "p", "model": "m"}, {"provider": "p", "model": "m", "quality_score": 1.5}]))
            .contains("rows[1].quality_score: 1.5 is outside"));
        assert!(
            err(json!([{"provider": "p", "model": "m", "response_time_ms": -1}]))
                .contains("response_time_ms: -1 is outside the range the csat model was trained on (0 or more)")
        );
    }
}
