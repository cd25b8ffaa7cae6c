//! The metadata JSON of the explanations: the six metrics and the response
//! id parsed out of each document, on every core, batch by batch.

use contract::columns::*;
use polars::prelude::*;
use rayon::prelude::*;

/// The six metrics and the response id out of the metadata JSON, parsing each
/// document once into just those keys (every other key is skipped without
/// being kept, a response id is borrowed from the text), on every core; the
/// seven columns are then built in parallel too. A key that is absent, null
/// or not a number gives null, never 0.
pub(crate) fn metadata_columns(metadata: &Column) -> PolarsResult<Vec<Column>> {
    let texts: Vec<Option<&str>> = metadata.str()?.iter().collect();
    let rows: Vec<MetadataRow> = texts
        .par_iter()
        .map(|t| {
            let m = t
                .and_then(|t| serde_json::from_str::<Metadata>(t).ok())
                .unwrap_or_default();
            let value = |n: &Option<Number>| n.as_ref().and_then(Number::value);
            MetadataRow {
                metrics: [
                    value(&m.code_quality),
                    value(&m.test_coverage),
                    value(&m.security),
                    value(&m.performance),
                    value(&m.maintainability),
                    value(&m.complexity),
                ],
                response: m.response_id.and_then(Number::into_text),
            }
        })
        .collect();
    let columns = (0..=METRICS.len())
        .into_par_iter()
        .map(|k| match METRICS.get(k) {
            Some((_, name)) => {
                Float64Chunked::from_iter_options((*name).into(), rows.iter().map(|r| r.metrics[k]))
                    .into_column()
            }
            None => StringChunked::from_iter_options(
                METADATA_RESPONSE.into(),
                rows.iter().map(|r| r.response.as_deref()),
            )
            .into_column(),
        })
        .collect();
    Ok(columns)
}

/// One document's values, in the order of contract::columns::METRICS.
struct MetadataRow<'a> {
    metrics: [Option<f64>; 6],
    response: Option<std::borrow::Cow<'a, str>>,
}

/// The keys of `metadata` the datasets use (names in contract::columns::METRICS).
#[derive(Default, serde::Deserialize)]
struct Metadata<'a> {
    #[serde(rename = "codeQuality", default)]
    code_quality: Option<Number<'a>>,
    #[serde(rename = "testCoverage", default)]
    test_coverage: Option<Number<'a>>,
    #[serde(default)]
    security: Option<Number<'a>>,
    #[serde(default)]
    performance: Option<Number<'a>>,
    #[serde(default)]
    maintainability: Option<Number<'a>>,
    #[serde(default)]
    complexity: Option<Number<'a>>,
    #[serde(rename = "responseId", default, borrow)]
    response_id: Option<Number<'a>>,
}

/// A metadata value: a number, text holding one, or anything else (ignored).
enum Number<'a> {
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(std::borrow::Cow<'a, str>),
    Other,
}

/// Decoded straight from the JSON token: `#[serde(untagged)]` would buffer
/// each value and build (and format) an error for every variant it rules
/// out, which cost a quarter of transform's CPU.
impl<'de: 'a, 'a> serde::Deserialize<'de> for Number<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Number<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, x: i64) -> Result<Number<'a>, E> {
                Ok(Number::Int(x))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Number<'a>, E> {
                Ok(Number::Unsigned(x))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Number<'a>, E> {
                Ok(Number::Float(x))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Number<'a>, E> {
                Ok(Number::Text(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Number<'a>, E> {
                Ok(Number::Text(std::borrow::Cow::Owned(s.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Number<'a>, E> {
                Ok(Number::Other)
            }
            fn visit_unit<E>(self) -> Result<Number<'a>, E> {
                Ok(Number::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Number<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Number::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Number<'a>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Number::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl<'a> Number<'a> {
    fn value(&self) -> Option<f64> {
        match self {
            Number::Int(x) => Some(*x as f64),
            Number::Unsigned(x) => Some(*x as f64),
            Number::Float(x) => Some(*x),
            Number::Text(s) => s.trim().parse().ok(),
            Number::Other => None,
        }
    }

    /// As a response id: text as it is, a number as JSON writes it.
    fn into_text(self) -> Option<std::borrow::Cow<'a, str>> {
        match self {
            Number::Text(s) => Some(s),
            Number::Int(x) => Some(x.to_string().into()),
            Number::Unsigned(x) => Some(x.to_string().into()),
            Number::Float(x) => Some(serde_json::Number::from_f64(x)?.to_string().into()),
            Number::Other => None,
        }
    }
}

pub(crate) const METADATA_RESPONSE: &str = "__metadata_response";

/// The explanations with their metadata text replaced by the seven columns
/// [`metadata_columns`] parses out of it. A map over frames that the
/// streaming engine runs batch by batch (the in-memory one gives it the
/// whole table): the text is dropped as soon as a batch is parsed.
pub(crate) fn with_metadata_columns(explanations: LazyFrame) -> LazyFrame {
    let schema = |input: &Schema| -> PolarsResult<SchemaRef> {
        let mut schema = input.clone();
        schema.shift_remove(METADATA);
        for (_, name) in METRICS {
            schema.with_column((*name).into(), DataType::Float64);
        }
        schema.with_column(METADATA_RESPONSE.into(), DataType::String);
        Ok(Arc::new(schema))
    };
    explanations.map(
        |df: DataFrame| {
            let parsed = metadata_columns(df.column(METADATA)?)?;
            let mut df = df.drop(METADATA)?;
            df.hstack_mut(&parsed)?;
            Ok(df)
        },
        // Streamable; no pushdown past it (its input must keep the text).
        OptFlags::STREAMING,
        Some(Arc::new(schema)),
        Some("metadata"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape a metadata value can take: numbers (integer, float, huge,
    /// as text), and values that give null (bool, null, object, array, text
    /// that is not a number, a missing key, a document that is not JSON).
    #[test]
    fn metadata_values_of_every_shape() {
        let docs = Column::new(
            METADATA.into(),
            [
                Some(
                    r#"{"codeQuality": 80, "testCoverage": 7.5, "security": "91", "responseId": "r-1"}"#,
                ),
                Some(
                    r#"{"codeQuality": 18446744073709551615, "security": " 3.25 ", "responseId": 42}"#,
                ),
                Some(
                    r#"{"codeQuality": true, "testCoverage": null, "security": {"a": [1, 2]}, "performance": [1], "maintainability": "n/a", "responseId": 1.5}"#,
                ),
                Some(
                    r#"{"other": {"codeQuality": 5}, "complexity": -2e3, "responseId": {"id": 1}}"#,
                ),
                Some("not json"),
                None,
            ],
        );
        let columns = metadata_columns(&docs).unwrap();
        let values = |name: &str| -> Vec<Option<f64>> {
            let c = columns.iter().find(|c| c.name() == name).unwrap();
            c.f64().unwrap().iter().collect()
        };
        assert_eq!(
            values(CODE_QUALITY),
            [
                Some(80.0),
                Some(18446744073709551615.0),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            values(TEST_COVERAGE),
            [Some(7.5), None, None, None, None, None]
        );
        assert_eq!(
            values(SECURITY),
            [Some(91.0), Some(3.25), None, None, None, None]
        );
        assert_eq!(values(PERFORMANCE), [None; 6]);
        assert_eq!(values(MAINTAINABILITY), [None; 6]);
        assert_eq!(
            values(COMPLEXITY),
            [None, None, None, Some(-2000.0), None, None]
        );
        let response: Vec<Option<&str>> = columns
            .iter()
            .find(|c| c.name() == METADATA_RESPONSE)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            response,
            [Some("r-1"), Some("42"), Some("1.5"), None, None, None]
        );
    }

    /// The keys this stage reads are the contract's (serde's renames cannot
    /// name a constant): a document with only the contract's key for one
    /// metric fills that metric's column, and the response id likewise.
    #[test]
    fn metadata_keys_are_the_contracts() {
        for (k, (key, column)) in METRICS.iter().enumerate() {
            let doc = format!(r#"{{"{key}": {}, "{METADATA_RESPONSE_ID}": "r"}}"#, k + 1);
            let docs = Column::new(METADATA.into(), [Some(doc.as_str())]);
            let columns = metadata_columns(&docs).unwrap();
            for c in &columns {
                let expected = if c.name() == *column {
                    Some(AnyValue::Float64((k + 1) as f64))
                } else if c.name() == METADATA_RESPONSE {
                    Some(AnyValue::String("r"))
                } else {
                    None
                };
                let got = c.get(0).unwrap();
                assert_eq!(got.is_null(), expected.is_none(), "{key}: {}", c.name());
                if let Some(v) = expected {
                    assert_eq!(got, v, "{key}: {}", c.name());
                }
            }
        }
    }
}
