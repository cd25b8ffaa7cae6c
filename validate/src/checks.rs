//! The rules as column expressions: each row's first reason, clean split
//! from rejected, and the rejected rows' detail.

use anyhow::Result;
use chrono::{DateTime, Utc};
use contract::Dataset;
use contract::columns::*;
use contract::reports::Reason;
use polars::prelude::*;

use crate::SeenKeys;
use crate::rules::{self, Check};

fn null_text() -> Expr {
    lit(NULL).cast(DataType::String)
}

fn any(flags: Vec<Expr>) -> Expr {
    flags
        .into_iter()
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

fn bound_text(x: f64) -> String {
    if x == f64::MAX {
        "max".into()
    } else {
        format!("{x}")
    }
}

/// True where a row breaks the rule.
fn breaks(rule: &rules::Rule) -> Expr {
    let c = col(rule.column);
    match rule.check {
        Check::Required => c.is_null(),
        Check::Range { min, max } => c.clone().is_not_null().and(
            c.clone()
                .is_nan()
                .or(c.clone().gt(lit(max)))
                .or(c.lt(lit(min))),
        ),
    }
}

/// Why a required value is null. A quality metric comes from a key of the
/// explanation's metadata JSON, so its detail names the key: a producer that
/// renamed its keys (`code_quality`) shows as such, not as missing scores.
fn null_detail(rule: &rules::Rule) -> String {
    let name = rule.column;
    match METRICS.iter().find(|(_, column)| *column == name) {
        Some((key, _)) if rule.dataset == Dataset::Quality => {
            format!("{name} is null (no number under `{key}` in the explanation's metadata)")
        }
        _ => format!("{name} is null"),
    }
}

/// What a row breaking the rule did, e.g. `csat_score = 1.7 > 1`; null elsewhere.
fn detail(rule: &rules::Rule) -> Expr {
    let name = rule.column;
    let c = col(name);
    let value = |op: &str, bound: f64| {
        concat_str(
            [
                lit(format!("{name} = ")),
                c.clone().cast(DataType::String),
                lit(format!(" {op} {}", bound_text(bound))),
            ],
            "",
            false,
        )
    };
    match rule.check {
        Check::Required => when(c.clone().is_null())
            .then(lit(null_detail(rule)))
            .otherwise(null_text()),
        Check::Range { min, max } => when(c.clone().is_null())
            .then(null_text())
            .when(c.clone().is_nan())
            .then(lit(format!("{name} is NaN")))
            .when(c.clone().gt(lit(max)))
            .then(value(">", max))
            .when(c.clone().lt(lit(min)))
            .then(value("<", min))
            .otherwise(null_text()),
    }
}

/// Adds `reason` to every row with cheap boolean rules, splits clean from
/// rejected, then writes each rejected row's `detail` (only those rows pay for
/// the text).
pub fn split(
    df: DataFrame,
    dataset: Dataset,
    horizon: DateTime<Utc>,
) -> Result<(DataFrame, DataFrame)> {
    split_batch(df, dataset, horizon, &mut SeenKeys::default())
}

/// [`split`] for one batch of a dataset's rows, in order: `seen` holds the
/// keys of the earlier batches' rows kept, and gains this batch's.
pub(crate) fn split_batch(
    df: DataFrame,
    dataset: Dataset,
    horizon: DateTime<Utc>,
    seen: &mut SeenKeys,
) -> Result<(DataFrame, DataFrame)> {
    let all: Vec<&rules::Rule> = rules::for_dataset(dataset).collect();
    let of_kind = |required: bool| -> Vec<&rules::Rule> {
        all.iter()
            .copied()
            .filter(|r| matches!(r.check, Check::Required) == required)
            .collect()
    };
    let (required, ranges) = (of_kind(true), of_kind(false));
    let horizon_lit = lit(horizon.timestamp_micros()).cast(DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ));
    let bad_time = col(TIMESTAMP).is_null().or(col(TIMESTAMP).gt(horizon_lit));

    let pre_reason = when(any(required.iter().map(|r| breaks(r)).collect()))
        .then(lit(Reason::Missing.name()))
        .when(any(ranges.iter().map(|r| breaks(r)).collect()))
        .then(lit(Reason::OutOfRange.name()))
        .when(bad_time)
        .then(lit(Reason::BadTimestamp.name()))
        .otherwise(null_text());
    let mut out = df.lazy().with_column(pre_reason.alias(REASON)).collect()?;
    // Duplicates among the rows no other rule rejected: the first is kept.
    let repeated = seen.repeated(&out)?;
    if repeated.any() {
        let reason = out.column(REASON)?.str()?.zip_with(
            &!&repeated,
            &StringChunked::full(REASON.into(), Reason::Duplicate.name(), out.height()),
        )?;
        out.with_column(reason.into_column())?;
    }
    let is_clean = out.column(REASON)?.is_null();
    let clean = out.filter(&is_clean)?.drop(REASON)?;
    let rejected = out.filter(&!is_clean)?;

    let mut details: Vec<Expr> = required.iter().chain(&ranges).map(|r| detail(r)).collect();
    details.push(
        when(col(TIMESTAMP).is_null())
            .then(lit(format!("{TIMESTAMP} is null")))
            .when(col(REASON).eq(lit(Reason::BadTimestamp.name())))
            .then(concat_str(
                [
                    lit(format!("{TIMESTAMP} = ")),
                    col(TIMESTAMP).dt().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    lit(format!(
                        " is after {}",
                        horizon.format("%Y-%m-%dT%H:%M:%SZ")
                    )),
                ],
                "",
                false,
            ))
            .otherwise(null_text()),
    );
    details.push(
        when(col(REASON).eq(lit(Reason::Duplicate.name())))
            .then(concat_str(
                [
                    lit(format!("{SOURCE_TABLE}, {SOURCE_ID} = ")),
                    col(SOURCE_TABLE),
                    lit(", "),
                    col(SOURCE_ID),
                    lit(" seen earlier"),
                ],
                "",
                false,
            ))
            .otherwise(null_text()),
    );
    let rejected = rejected
        .lazy()
        .with_column(coalesce(&details).alias(DETAIL))
        .collect()?;
    Ok((clean, rejected))
}

#[cfg(test)]
mod properties {
    //! Arbitrary rows through validate: every row lands in exactly one of
    //! clean and rejected, with the first reason that applies.

    use super::*;
    use chrono::Duration;
    use contract::tables::utc_timestamp;
    use proptest::prelude::*;

    /// A rating as sources send them: often fine, sometimes broken.
    fn rating() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            6 => (0.0f64..=1.0).prop_map(Some),
            1 => Just(None),
            1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.5), Just(1.0001), Just(7.0)].prop_map(Some),
        ]
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![5 => "[a-z]{1,6}".prop_map(Some), 1 => Just(None)]
    }

    #[derive(Clone, Debug)]
    struct Row {
        /// Which of two source tables (the duplicate key is table + id).
        table: bool,
        id: Option<String>,
        /// Seconds from the reference time; positive = future.
        offset: Option<i64>,
        text: [Option<String>; 4],
        prediction: Option<f64>,
        actual: Option<f64>,
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            proptest::bool::ANY,
            prop_oneof![8 => (0u8..40).prop_map(|i| Some(format!("id-{i}"))), 1 => Just(None)],
            prop_oneof![8 => (-100_000i64..200).prop_map(Some), 1 => (400i64..100_000).prop_map(Some), 1 => Just(None)],
            [text(), text(), text(), text()],
            rating(),
            rating(),
        )
            .prop_map(|(table, id, offset, text, prediction, actual)| Row { table, id, offset, text, prediction, actual })
    }

    /// The reason the rules give, written independently of the expressions.
    fn table_of(r: &Row, two_tables: bool) -> &'static str {
        if two_tables && r.table {
            "ai_gm_quality_feedback"
        } else {
            "ai_gm_ab_testing"
        }
    }

    fn expected(
        r: &Row,
        two_tables: bool,
        seen: &mut std::collections::HashSet<String>,
    ) -> Option<Reason> {
        let bad = |v: Option<f64>| v.is_some_and(|x| !(0.0..=1.0).contains(&x) || x.is_nan());
        if r.id.is_none()
            || r.prediction.is_none()
            || r.actual.is_none()
            || r.text.iter().any(Option::is_none)
        {
            return Some(Reason::Missing);
        }
        if bad(r.prediction) || bad(r.actual) {
            return Some(Reason::OutOfRange);
        }
        if r.offset.is_none_or(|o| o > 300) {
            return Some(Reason::BadTimestamp);
        }
        let key = format!(
            "{}/{}",
            table_of(r, two_tables),
            r.id.clone().unwrap_or_default()
        );
        if !seen.insert(key) {
            return Some(Reason::Duplicate);
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn every_row_lands_once_with_its_reason(rows in proptest::collection::vec(row(), 1..60), two_tables in proptest::bool::ANY) {
            let now = chrono::DateTime::from_timestamp(1_768_478_400, 0).unwrap();
            let micros = |r: &Row| r.offset.map(|o| (now.timestamp() + o) * 1_000_000);
            let texts = |i: usize| rows.iter().map(|r| r.text[i].clone()).collect::<Vec<_>>();
            let mut df = df!(
                SOURCE_TABLE => rows.iter().map(|r| table_of(r, two_tables)).collect::<Vec<_>>(),
                SOURCE_ID => rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                TIMESTAMP => rows.iter().map(micros).collect::<Vec<_>>(),
                SOURCE => vec!["synth"; rows.len()],
                MODEL_NAME => texts(0),
                VARIANT => texts(1),
                PROVIDER => texts(2),
                MODEL => texts(3),
                PREDICTION => rows.iter().map(|r| r.prediction).collect::<Vec<_>>(),
                ACTUAL => rows.iter().map(|r| r.actual).collect::<Vec<_>>(),
            ).unwrap();
            df.apply(TIMESTAMP, |c| c.cast(&utc_timestamp()).unwrap()).unwrap();
            let horizon = now + Duration::minutes(5);
            let (clean, rejected) = split(df, Dataset::Performance, horizon).unwrap();
            prop_assert_eq!(clean.height() + rejected.height(), rows.len());
            let mut seen = std::collections::HashSet::new();
            let want: Vec<Option<Reason>> = rows.iter().map(|r| expected(r, two_tables, &mut seen)).collect();
            prop_assert_eq!(clean.height(), want.iter().filter(|w| w.is_none()).count());
            let got: Vec<Reason> = rejected
                .column(REASON).unwrap().str().unwrap().iter()
                .map(|r| Reason::from_name(r.unwrap()).unwrap())
                .collect();
            let want_rejected: Vec<Reason> = want.into_iter().flatten().collect();
            prop_assert_eq!(got, want_rejected);
        }
    }
}
