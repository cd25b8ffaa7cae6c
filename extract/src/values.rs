//! Reading one source value of a known column: text, number, timestamp or
//! JSON object. The row-by-row sink and the columnar CSV reader (for the rows
//! its vectorised casts could not read) both use these, so a value is read
//! the same way whatever path it takes.

use contract::{Kind, timestamp};
use serde_json::Value;

/// A parsed value of a known column.
pub enum Parsed {
    Text(Option<String>),
    Number(Option<f64>),
    Time(Option<i64>),
}

/// A value as the text a person would read; JSON null and empty text are null.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub fn parse(kind: Kind, value: &Value) -> Result<Parsed, String> {
    let text = match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        _ => Some(value),
    };
    let Some(value) = text else {
        return Ok(match kind {
            Kind::Text | Kind::Json => Parsed::Text(None),
            Kind::Number => Parsed::Number(None),
            Kind::Timestamp => Parsed::Time(None),
        });
    };
    match kind {
        Kind::Text => Ok(Parsed::Text(as_text(value))),
        Kind::Number => match value {
            Value::Number(n) => n
                .as_f64()
                .map(|x| Parsed::Number(Some(x)))
                .ok_or_else(|| format!("`{n}` is not a number")),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|x| Parsed::Number(Some(x)))
                .map_err(|_| format!("`{s}` is not a number")),
            other => Err(format!("`{other}` is not a number")),
        },
        Kind::Timestamp => match value {
            Value::String(s) => timestamp::parse_utc(s)
                .map(|t| Parsed::Time(Some(t.timestamp_micros())))
                .ok_or_else(|| format!("`{s}` is not a timestamp")),
            other => Err(format!("`{other}` is not a timestamp")),
        },
        Kind::Json => match value {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(_)) => Ok(Parsed::Text(Some(s.clone()))),
                Ok(_) => Err("not a JSON object".to_string()),
                Err(e) => Err(format!("broken JSON ({e})")),
            },
            Value::Object(_) => Ok(Parsed::Text(Some(value.to_string()))),
            other => Err(format!("`{other}` is not a JSON object")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text() {
        assert!(
            matches!(parse(Kind::Number, &Value::from(" 0.5 ")), Ok(Parsed::Number(Some(x))) if x == 0.5)
        );
        assert!(
            matches!(parse(Kind::Number, &Value::from(3)), Ok(Parsed::Number(Some(x))) if x == 3.0)
        );
        assert!(parse(Kind::Number, &Value::from("high")).is_err());
        assert!(matches!(
            parse(Kind::Number, &Value::from("")),
            Ok(Parsed::Number(None))
        ));
        assert!(
            matches!(parse(Kind::Text, &Value::from(7)), Ok(Parsed::Text(Some(s))) if s == "7")
        );
    }

    #[test]
    fn json_must_be_an_object() {
        assert!(parse(Kind::Json, &Value::from("{\"a\": 1}")).is_ok());
        assert!(parse(Kind::Json, &Value::from("{\"a\": ")).is_err());
        assert!(parse(Kind::Json, &Value::from("[1]")).is_err());
        assert!(parse(Kind::Json, &serde_json::json!({"a": 1})).is_ok());
    }

    #[test]
    fn timestamps() {
        assert!(
            parse(
                Kind::Timestamp,
                &Value::from("2025-12-20 17:49:11.43305+00")
            )
            .is_ok()
        );
        assert!(parse(Kind::Timestamp, &Value::from("last tuesday")).is_err());
    }
}
