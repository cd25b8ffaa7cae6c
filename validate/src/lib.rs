//! `validate`: every row of each training dataset lands in exactly one of
//! `data/clean/<dataset>.parquet` or `data/rejected/<dataset>.parquet`, the
//! rejected ones with the first reason that applies and a detail saying which
//! column and value. Column work only, one pass per dataset.

pub use contract::rules;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use contract::columns::*;
use contract::commit::Commit;
use contract::reports::{DatasetReport, Reason, ValidationReport};
use contract::{Dataset, Layout, io};
use polars::prelude::*;

use crate::rules::Check;

/// The exit status when a dataset has fewer clean rows than its minimum.
pub const EXIT_BELOW_MINIMUM: u8 = 3;

/// Splits DATA/training/<dataset>.parquet into DATA/clean and DATA/rejected.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Timestamps later than this (plus --skew-minutes) are rejected; default: now.
    #[arg(long, value_parser = contract::timestamp::parse_arg)]
    pub now: Option<DateTime<Utc>>,
    /// No progress bar or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// Clock skew tolerated for timestamps in the future, in minutes.
    #[arg(long, default_value_t = 5)]
    pub skew_minutes: u32,
    /// Minimum clean rows for the quality dataset.
    #[arg(long, default_value_t = Dataset::Quality.min_rows())]
    pub min_quality: usize,
    /// Minimum clean rows for the csat dataset.
    #[arg(long, default_value_t = Dataset::Csat.min_rows())]
    pub min_csat: usize,
    /// Minimum clean rows for the performance dataset.
    #[arg(long, default_value_t = Dataset::Performance.min_rows())]
    pub min_performance: usize,
    /// Exit 0 even when a dataset is below its minimum (a warning is still reported).
    #[arg(long)]
    pub allow_small: bool,
}

impl Args {
    fn minimum(&self, dataset: Dataset) -> usize {
        match dataset {
            Dataset::Quality => self.min_quality,
            Dataset::Csat => self.min_csat,
            Dataset::Performance => self.min_performance,
        }
    }
}

/// A dataset with fewer clean rows than its minimum; `main` exits with
/// [`EXIT_BELOW_MINIMUM`].
#[derive(Debug, thiserror::Error)]
#[error("{}; pass --allow-small to go on anyway, or set the minimum with --min-<dataset>", .0.join("; "))]
pub struct BelowMinimum(pub Vec<String>);

pub fn run(args: &Args) -> Result<()> {
    contract::progress::set_quiet(args.quiet);
    let layout = Layout::new(&args.data);
    // clean/, rejected/ and the report change together, or not at all.
    let mut commit = Commit::begin(&layout, "validate")?;
    let now = args.now.unwrap_or_else(Utc::now);
    let horizon = now + Duration::minutes(i64::from(args.skew_minutes));

    // Check every input before reading any in full; then one dataset at a
    // time, so memory is that of the largest (csat), not of all three.
    let total_rows = check_inputs(&layout)?;

    let mut report = ValidationReport {
        validated_at: Utc::now(),
        now,
        datasets: BTreeMap::new(),
    };
    let mut small = Vec::new();
    let staged = Dataset::ALL
        .iter()
        .map(|&d| {
            Ok((
                commit.file(&layout.clean(d))?,
                commit.file(&layout.rejected(d))?,
            ))
        })
        .collect::<Result<Vec<(PathBuf, PathBuf)>>>()?;
    // Each dataset's files are written on a thread of their own while the next
    // dataset is read and split (at most one dataset waits to be written).
    let progress =
        contract::progress::Progress::new("validate", "datasets", "rows", Some(total_rows));
    std::thread::scope(|scope| -> Result<()> {
        let mut writing: Option<std::thread::ScopedJoinHandle<Result<()>>> = None;
        for (dataset, (clean_path, rejected_path)) in Dataset::ALL.into_iter().zip(&staged) {
            progress.set_phase(&format!("reading and checking {dataset}"));
            let df = io::read_dataset(&layout.training(dataset), dataset)?;
            progress.inc(df.height() as u64);
            let minimum = args.minimum(dataset);
            let (mut clean, mut rejected) = split(df.clone(), dataset, horizon)
                .with_context(|| format!("validating {}", layout.training(dataset).display()))?;
            let mut entry = describe(&df, &clean, &rejected, dataset, minimum)?;
            drop(df);
            if let Some(previous) = writing.take() {
                join(previous)?;
            }
            writing = Some(scope.spawn(move || {
                io::write_parquet_fast(&mut clean, clean_path)?;
                io::write_parquet_fast(&mut rejected, rejected_path)?;
                Ok(())
            }));
            progress.suspend(|| print_entry(dataset, &entry));
            if entry.clean < minimum {
                small.push(format!(
                    "{}: {} clean rows, below the minimum of {minimum}",
                    dataset.name(),
                    entry.clean
                ));
            }
            entry.min_rows = minimum;
            report.datasets.insert(dataset.name().to_string(), entry);
        }
        writing.map_or(Ok(()), join)
    })?;
    progress.finish();
    io::write_json(&report, &commit.file(&layout.validation_report())?)?;
    commit.finish()?;
    if !small.is_empty() && !args.allow_small {
        return Err(BelowMinimum(small).into());
    }
    Ok(())
}

/// Every training dataset's footer and schema checked; their rows in all.
fn check_inputs(layout: &Layout) -> Result<u64> {
    let mut total_rows = 0;
    for dataset in Dataset::ALL {
        let path = layout.training(dataset);
        let rows = io::check_dataset(&path, dataset)?;
        total_rows += rows as u64;
        if rows == 0 {
            anyhow::bail!(
                "{}: empty dataset (0 rows); nothing to validate",
                path.display()
            );
        }
    }
    Ok(total_rows)
}

/// A dataset's line: rows in, clean, rejected by reason; then its warnings.
fn print_entry(dataset: Dataset, entry: &DatasetReport) {
    let by_reason: Vec<String> = Reason::ALL
        .iter()
        .map(|r| format!("{r} {}", entry.rejected.get(r).copied().unwrap_or(0)))
        .collect();
    println!(
        "validate: {:<12} {:>9} in {:>9} clean {:>7} rejected ({})",
        dataset.name(),
        entry.rows_in,
        entry.clean,
        entry.rows_in - entry.clean,
        by_reason.join(", ")
    );
    for w in &entry.warnings {
        println!("validate: {:<12} warning: {w}", dataset.name());
    }
}

/// A writer thread's result; its panic goes on in this thread.
fn join(handle: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

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
            .then(lit(format!("{name} is null")))
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
    let repeated = repeated_keys(&out)?;
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

/// True on each row whose key (source_table, source_id) an earlier row with
/// no other reason already had. Each key is hashed once, on every core; the
/// rows are then split by hash into partitions that are searched in parallel,
/// each in row order, so "earlier" means what it says. (Polars'
/// `is_first_distinct` grows one set on one core as it goes: rehashing 2M
/// string keys was a sixth of validate.)
fn repeated_keys(df: &DataFrame) -> Result<BooleanChunked> {
    use rayon::prelude::*;
    const PARTITIONS: usize = 64;

    let tables: Vec<Option<&str>> = df.column(SOURCE_TABLE)?.str()?.iter().collect();
    let ids: Vec<Option<&str>> = df.column(SOURCE_ID)?.str()?.iter().collect();
    let eligible: Vec<bool> = df
        .column(REASON)?
        .is_null()
        .iter()
        .map(|e| e == Some(true))
        .collect();
    let state = PlRandomState::default();
    let key = |row: usize| (tables[row], ids[row]);
    let hashes: Vec<u64> = (0..df.height())
        .into_par_iter()
        .map(|row| state.hash_one(key(row)))
        .collect();
    let mut partitions: Vec<Vec<u32>> = vec![Vec::new(); PARTITIONS];
    for (row, hash) in hashes.iter().enumerate() {
        if eligible[row] && ids[row].is_some() {
            // Middle bits: hashbrown places a key by its low bits and
            // tells keys apart by its top seven.
            partitions[(hash >> 32) as usize % PARTITIONS].push(row as u32);
        }
    }
    let repeated: Vec<u32> = partitions
        .par_iter()
        .flat_map_iter(|rows| {
            let mut seen = hashbrown::HashTable::<u32>::with_capacity(rows.len());
            let mut repeated = Vec::new();
            for &row in rows {
                let hash = hashes[row as usize];
                let first = seen.find(hash, |&other| key(other as usize) == key(row as usize));
                if first.is_some() {
                    repeated.push(row);
                } else {
                    seen.insert_unique(hash, row, |&r| hashes[r as usize]);
                }
            }
            repeated
        })
        .collect();
    let mut mask = vec![false; df.height()];
    for row in repeated {
        mask[row as usize] = true;
    }
    Ok(BooleanChunked::from_slice(REASON.into(), &mask))
}

/// Counts, ranges, null counts and warnings for the report.
fn describe(
    input: &DataFrame,
    clean: &DataFrame,
    rejected: &DataFrame,
    dataset: Dataset,
    minimum: usize,
) -> Result<DatasetReport> {
    let mut report = DatasetReport {
        rows_in: input.height(),
        clean: clean.height(),
        min_rows: minimum,
        ..DatasetReport::default()
    };
    for r in Reason::ALL {
        report.rejected.insert(r, 0);
    }
    if rejected.height() > 0 {
        for name in rejected.column(REASON)?.str()?.iter().flatten() {
            let reason = Reason::from_name(name)
                .with_context(|| format!("unknown rejection reason `{name}`"))?;
            *report.rejected.entry(reason).or_insert(0) += 1;
        }
    }
    for c in input.columns() {
        report
            .null_counts
            .insert(c.name().to_string(), c.null_count());
    }
    if let Ok(ts) = clean.column(TIMESTAMP).and_then(|c| c.datetime().cloned()) {
        report.timestamp_min = ts
            .physical()
            .min()
            .and_then(DateTime::from_timestamp_micros);
        report.timestamp_max = ts
            .physical()
            .max()
            .and_then(DateTime::from_timestamp_micros);
    }
    if clean.height() < minimum {
        report.warnings.push(format!(
            "{} clean rows, below the minimum of {minimum} to train",
            clean.height()
        ));
    }
    if clean.height() > 1 {
        for feature in dataset.numeric_features() {
            let c = clean
                .column(feature)?
                .as_materialized_series()
                .f64()?
                .clone();
            let non_null = c.len() - c.null_count();
            let constant = non_null == 0 || c.min() == c.max();
            if constant {
                report.warnings.push(format!(
                    "feature `{feature}` has no variance in the clean rows"
                ));
            }
        }
        for feature in dataset.categorical_features() {
            // At most one level when no value differs from the first: stops
            // at the second level, so only a constant column is read through.
            let column = clean.column(feature)?.cast(&DataType::String)?;
            let mut values = column.str()?.iter().flatten();
            let levels = match values.next() {
                None => 0,
                Some(first) if values.any(|v| v != first) => 2,
                Some(_) => 1,
            };
            if levels <= 1 {
                report.warnings.push(format!(
                    "categorical `{feature}` has {levels} level(s) in the clean rows"
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod properties {
    //! Arbitrary rows through validate: every row lands in exactly one of
    //! clean and rejected, with the first reason that applies.

    use super::*;
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
        let report = describe(&clean, &clean, &rejected, Dataset::Performance, 2000).unwrap();
        assert_eq!(
            report.warnings,
            [
                "1000 clean rows, below the minimum of 2000 to train",
                "feature `prediction` has no variance in the clean rows",
                "categorical `model_name` has 0 level(s) in the clean rows",
                "categorical `provider` has 1 level(s) in the clean rows",
            ]
        );
        assert_eq!(report.null_counts[MODEL_NAME], n);
        assert_eq!(report.null_counts[VARIANT], 0);
    }
}
