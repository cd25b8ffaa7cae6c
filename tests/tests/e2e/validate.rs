use std::fs;
use std::path::Path;

use contract::columns::*;
use contract::reports::Reason;
use contract::{Dataset, Kind};
use polars::prelude::*;
use tempfile::tempdir;

use crate::common::*;

const NOW_US: i64 = 1_768_478_400_000_000;
const MINUTE_US: i64 = 60_000_000;

#[derive(Clone, Debug)]
enum V {
    T(Option<&'static str>),
    N(Option<f64>),
    Ts(Option<i64>),
}

/// A valid row of each dataset, column by column.
fn base(dataset: Dataset) -> Vec<(&'static str, V)> {
    dataset
        .columns()
        .iter()
        .map(|(name, kind)| {
            let v = match (*name, kind) {
                (TIMESTAMP, _) => V::Ts(Some(NOW_US - 60 * MINUTE_US)),
                (SOURCE_TABLE, _) => V::T(Some("t")),
                (_, Kind::Number) => V::N(Some(
                    if matches!(*name, CSAT | CSAT_SCORE | PREDICTION | ACTUAL)
                        || (dataset == Dataset::Csat && *name == QUALITY_SCORE)
                    {
                        0.5
                    } else {
                        50.0
                    },
                )),
                (_, _) => V::T(Some("x")),
            };
            (*name, v)
        })
        .collect()
}

/// (column, value, expected reason or None for clean)
type Case = (&'static str, V, Option<&'static str>);

fn cases(dataset: Dataset) -> Vec<Case> {
    use V::*;
    let mut c: Vec<Case> = vec![
        (SOURCE_ID, T(None), Some("missing")),
        (TIMESTAMP, Ts(None), Some("bad_timestamp")),
        (
            TIMESTAMP,
            Ts(Some(NOW_US + 10 * MINUTE_US)),
            Some("bad_timestamp"),
        ),
        (TIMESTAMP, Ts(Some(NOW_US + 4 * MINUTE_US)), None),
        (PROVIDER, T(None), Some("missing")),
    ];
    let rating = |col: &'static str, required: bool| -> Vec<Case> {
        vec![
            (col, N(Some(0.0)), None),
            (col, N(Some(1.0)), None),
            (col, N(Some(1.0001)), Some("out_of_range")),
            (col, N(Some(-0.01)), Some("out_of_range")),
            (col, N(Some(f64::NAN)), Some("out_of_range")),
            (col, N(Some(f64::INFINITY)), Some("out_of_range")),
            (col, N(None), if required { Some("missing") } else { None }),
        ]
    };
    let score = |col: &'static str| -> Vec<Case> {
        vec![
            (col, N(Some(0.0)), None),
            (col, N(Some(100.0)), None),
            (col, N(Some(100.5)), Some("out_of_range")),
            (col, N(Some(-1.0)), Some("out_of_range")),
            (col, N(Some(f64::NAN)), Some("out_of_range")),
            (col, N(None), Some("missing")),
        ]
    };
    match dataset {
        Dataset::Quality => {
            for m in [
                QUALITY_SCORE,
                CODE_QUALITY,
                TEST_COVERAGE,
                SECURITY,
                PERFORMANCE,
                MAINTAINABILITY,
                COMPLEXITY,
            ] {
                c.extend(score(m));
            }
            c.extend(rating(CSAT, false));
            c.push((ACTION_TYPE, T(None), Some("missing")));
        }
        Dataset::Csat => {
            c.extend(rating(CSAT_SCORE, true));
            c.extend(rating(QUALITY_SCORE, false));
            c.push((RESPONSE_TIME_MS, N(Some(0.0)), None));
            c.push((RESPONSE_TIME_MS, N(Some(-1.0)), Some("out_of_range")));
            c.push((RESPONSE_TIME_MS, N(None), None));
            c.push((ACTION_TYPE, T(None), None));
        }
        Dataset::Performance => {
            c.extend(rating(ACTUAL, true));
            c.extend(rating(PREDICTION, true));
            c.push((VARIANT, T(None), Some("missing")));
        }
    }
    c
}

/// Writes the baseline row, one row per case, and a duplicate of the baseline.
fn write_cases(dir: &Path, dataset: Dataset) -> Vec<(String, Option<&'static str>)> {
    let cases = cases(dataset);
    let mut rows: Vec<Vec<(&'static str, V)>> = vec![base(dataset)];
    let mut expected = vec![("row-0".to_string(), None)];
    for (i, (column, value, reason)) in cases.into_iter().enumerate() {
        let mut row = base(dataset);
        for (name, v) in row.iter_mut() {
            if *name == column {
                *v = value.clone();
            }
        }
        let id = format!("row-{}", i + 1);
        rows.push(row);
        expected.push((id, reason));
    }
    rows.push(base(dataset)); // same source_id as row 0 once ids are set below
    expected.push(("row-0".to_string(), Some("duplicate")));

    let mut columns = Vec::new();
    for (j, (name, kind)) in dataset.columns().iter().enumerate() {
        let column = match kind {
            Kind::Timestamp => Column::new(
                (*name).into(),
                rows.iter()
                    .map(|r| match r[j].1 {
                        V::Ts(t) => t,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )
            .cast(&contract::tables::utc_timestamp())
            .unwrap(),
            Kind::Number => Column::new(
                (*name).into(),
                rows.iter()
                    .map(|r| match r[j].1 {
                        V::N(x) => x,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            _ if *name == SOURCE_ID => Column::new(
                (*name).into(),
                rows.iter()
                    .zip(&expected)
                    .map(|(r, (id, _))| match r[j].1 {
                        V::T(None) => None,
                        _ => Some(id.clone()),
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => Column::new(
                (*name).into(),
                rows.iter()
                    .map(|r| match r[j].1 {
                        V::T(t) => t,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        columns.push(column);
    }
    let mut df = DataFrame::new_infer_height(columns).unwrap();
    contract::io::write_parquet(
        &mut df,
        &dir.join("training")
            .join(format!("{}.parquet", dataset.name())),
    )
    .unwrap();
    expected
}

#[test]
fn every_rule_with_a_row_that_breaks_it_and_one_that_just_passes() {
    let data = tempdir().unwrap();
    let expected: Vec<_> = Dataset::ALL
        .iter()
        .map(|d| (*d, write_cases(data.path(), *d)))
        .collect();
    stage("validate", data.path(), &["--now", NOW, "--allow-small"]);
    for (dataset, expected) in expected {
        let clean = read(
            data.path()
                .join("clean")
                .join(format!("{}.parquet", dataset.name())),
        );
        let rejected = read(
            data.path()
                .join("rejected")
                .join(format!("{}.parquet", dataset.name())),
        );
        assert_eq!(
            clean.height() + rejected.height(),
            expected.len(),
            "{dataset}: clean + rejected = input"
        );
        let reasons = strs(&rejected, REASON);
        let details = strs(&rejected, DETAIL);
        let ids = strs(&rejected, SOURCE_ID);
        let clean_ids = strs(&clean, SOURCE_ID);
        let mut r = 0;
        for (i, (id, want)) in expected.iter().enumerate() {
            match want {
                Some(reason) => {
                    assert_eq!(
                        reasons[r].as_deref(),
                        Some(*reason),
                        "{dataset} case {i} ({id}): {:?}",
                        details[r]
                    );
                    assert!(details[r].is_some(), "a detail for every reject");
                    if ids[r].is_some() {
                        assert_eq!(
                            ids[r].as_deref(),
                            Some(id.as_str()),
                            "{dataset}: rejects keep input order"
                        );
                    }
                    r += 1;
                }
                None => assert!(
                    clean_ids.contains(&Some(id.clone())),
                    "{dataset} case {i} ({id}) should be clean"
                ),
            }
        }
    }
    // The detail says which column and value.
    let rejected = read(data.path().join("rejected/performance.parquet"));
    let details: Vec<String> = strs(&rejected, DETAIL).into_iter().flatten().collect();
    assert!(
        details.iter().any(|d| d == "actual = 1.0001 > 1"),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d == "prediction is NaN"),
        "{details:?}"
    );
    // A quality metric with no value names the metadata key it comes from.
    let rejected = read(data.path().join("rejected/quality.parquet"));
    let details: Vec<String> = strs(&rejected, DETAIL).into_iter().flatten().collect();
    assert!(
        details.iter().any(|d| d
            == "code_quality is null (no number under `codeQuality` in the explanation's metadata)"),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d == "provider is null"),
        "{details:?}"
    );

    // The clock skew allowed: with --skew-minutes 0 the row 4 minutes
    // ahead of --now is rejected too, in every dataset.
    let future = |data: &Path| -> Vec<usize> {
        validation_report(data)
            .datasets
            .values()
            .map(|d| d.rejected[&Reason::BadTimestamp])
            .collect()
    };
    assert_eq!(future(data.path()), [2, 2, 2]);
    stage(
        "validate",
        data.path(),
        &["--now", NOW, "--allow-small", "--skew-minutes", "0"],
    );
    assert_eq!(future(data.path()), [3, 3, 3]);
}

#[test]
fn messy_synth_rejects_exactly_what_was_injected() {
    let data = tempdir().unwrap();
    let out = stdout(&synth(data.path(), 2000, 0.04));
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    let per_table = |table: &str| -> [usize; 4] {
        let line = out
            .lines()
            .find(|l| l.contains("messy") && l.contains(table))
            .unwrap();
        [
            "null_target",
            "out_of_range_target",
            "duplicate_id",
            "future_timestamp",
        ]
        .map(|k| {
            let at = line.find(k).unwrap();
            line[..at]
                .trim_end()
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
    };
    let (ex, fb, ab) = (
        per_table("ai_gm_explanations"),
        per_table("ai_gm_quality_feedback"),
        per_table("ai_gm_ab_testing"),
    );
    let report = validation_report(data.path());
    let expect = [
        ("quality", ex, [0; 4]),
        ("performance", ab, [0; 4]),
        ("csat", fb, ab),
    ];
    for (name, a, b) in expect {
        let d = &report.datasets[name];
        let got = [
            Reason::Missing,
            Reason::OutOfRange,
            Reason::Duplicate,
            Reason::BadTimestamp,
        ]
        .map(|r| d.rejected[&r]);
        let want = [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]];
        assert_eq!(
            got, want,
            "{name}: rejects per reason = what synth injected"
        );
        let rows_in = d.rows_in;
        let clean = read(data.path().join("clean").join(format!("{name}.parquet"))).height();
        let rejected = read(data.path().join("rejected").join(format!("{name}.parquet"))).height();
        assert_eq!(
            clean + rejected,
            rows_in,
            "{name}: clean + rejected = input"
        );
        assert_eq!(clean, d.clean);
    }
    assert_eq!(ex.iter().sum::<usize>(), 80, "4% of 2000");
}

#[test]
fn below_minimum_exits_3_naming_the_dataset() {
    let data = tempdir().unwrap();
    synth(data.path(), 150, 0.0);
    stage("transform", data.path(), &[]);
    let (code, err) =
        fails(bin("validate").args(["--data", data.path().to_str().unwrap(), "--now", NOW]));
    assert_eq!(code, 3);
    assert!(
        err.contains("performance: 150 clean rows, below the minimum of 500"),
        "{err}"
    );
    assert!(!err.contains("quality:"), "quality has 150 >= 100: {err}");
    // How to get past it, by hand and from make, and what train would then train.
    assert!(
        err.contains("more rows fix it")
            && err.contains(
                "--allow-small (ALLOW_SMALL=yes for make) to go on and train quality and csat"
            ),
        "{err}"
    );
    assert!(
        data.path().join("clean/performance.parquet").exists(),
        "clean outputs are still written"
    );
    let report = fs::read_to_string(data.path().join("reports/validation.json")).unwrap();
    assert!(report.contains("below the minimum"), "{report}");
    stage("validate", data.path(), &["--now", NOW, "--allow-small"]);
    // A minimum below train's would pass a dataset train then skips: refused.
    let (code, err) = fails(bin("validate").args([
        "--data",
        data.path().to_str().unwrap(),
        "--now",
        NOW,
        "--min-performance",
        "100",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value '100' for '--min-performance <MIN_PERFORMANCE>': train needs at least 500 clean performance rows"),
        "{err}"
    );
    // Each dataset has its own minimum, which can be raised.
    for (flag, name, rows) in [
        ("--min-quality", "quality", 150),
        ("--min-csat", "csat", 300),
    ] {
        let (code, err) = fails(bin("validate").args([
            "--data",
            data.path().to_str().unwrap(),
            "--now",
            NOW,
            flag,
            "1000",
        ]));
        assert_eq!(code, 3, "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{name}: {rows} clean rows, below the minimum of 1000"
            )),
            "{flag}: {err}"
        );
        // Below validate's raised minimum, not train's: train would still train it.
        assert!(
            err.contains("to go on and train quality and csat"),
            "{flag}: {err}"
        );
    }
    // Batches of no rows would check nothing: refused, naming the flag.
    let (code, err) =
        fails(bin("validate").args(["--data", data.path().to_str().unwrap(), "--batch-rows", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value '0' for '--batch-rows <BATCH_ROWS>': must be at least 1"),
        "{err}"
    );
}

fn fresh_inputs() -> tempfile::TempDir {
    let data = tempdir().unwrap();
    synth(data.path(), 600, 0.0);
    stage("transform", data.path(), &[]);
    data
}

fn fails_without_output(data: &Path, expected: &str) {
    let (code, err) = fails(bin("validate").args(["--data", data.to_str().unwrap(), "--now", NOW]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(err.contains(expected), "expected {expected:?} in {err}");
    assert!(
        !data.join("clean").exists() && !data.join("reports/validation.json").exists(),
        "no partial output"
    );
}

#[test]
fn empty_dataset_is_an_error() {
    let data = fresh_inputs();
    let path = data.path().join("training/csat.parquet");
    let mut df = read(&path).head(Some(0));
    contract::io::write_parquet(&mut df, &path).unwrap();
    fails_without_output(data.path(), "training/csat.parquet: empty dataset (0 rows)");
}

#[test]
fn missing_required_column_is_an_error() {
    let data = fresh_inputs();
    let path = data.path().join("training/quality.parquet");
    let mut df = read(&path).drop(SECURITY).unwrap();
    contract::io::write_parquet(&mut df, &path).unwrap();
    fails_without_output(
        data.path(),
        "training/quality.parquet: missing column `security`",
    );
}

/// A transform swapped for another program (`TRANSFORM=... make pipeline`) may
/// add a column and expect a model to use it. validate keeps the dataset's
/// columns only; it says which it leaves out, on its output, in its report
/// and on the report page, and every row still goes to clean or rejected.
#[test]
fn a_column_a_swapped_transform_adds_is_named_and_left_out() {
    let data = fresh_inputs();
    let path = data.path().join("training/csat.parquet");
    let mut df = read(&path);
    let rows = df.height();
    let mood = Column::new("mood".into(), vec!["calm"; rows]);
    let seen = Column::new("seen".into(), vec![1.0; rows]);
    df.with_column(mood).unwrap();
    df.with_column(seen).unwrap();
    // As pandas writes a datetime without a zone.
    let utc = df.column("timestamp").unwrap().clone();
    let naive = utc
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap();
    df.with_column(naive).unwrap();
    contract::io::write_parquet(&mut df, &path).unwrap();

    // A raised minimum gives performance (600 clean rows) the minimum's warning too.
    let said = stdout(&stage(
        "validate",
        data.path(),
        &["--now", NOW, "--allow-small", "--min-performance", "700"],
    ));
    let warning = "columns `mood`, `seen` of training/csat.parquet are not among the csat \
                   dataset's columns (DESIGN.md), so clean/csat.parquet leaves them out and no \
                   model sees them";
    assert!(
        said.contains(&format!("validate: csat         warning: {warning}")),
        "{said}"
    );
    assert!(!said.contains("quality      warning: column"), "{said}");
    let zone = "column `timestamp` of training/csat.parquet has no time zone and is read as \
                UTC: if it holds local times, each is off by its offset (write it with a zone, \
                or in UTC)";
    assert!(
        said.contains(&format!("validate: csat         warning: {zone}")),
        "{said}"
    );
    assert!(!said.contains("quality      warning: column"), "{said}");
    let report = validation_report(data.path());
    assert_eq!(report.datasets["csat"].warnings[0], warning);
    assert_eq!(report.datasets["csat"].warnings[1], zone);
    let clean = read(data.path().join("clean/csat.parquet"));
    let rejected = read(data.path().join("rejected/csat.parquet"));
    assert_eq!(clean.height() + rejected.height(), rows);
    for column in ["mood", "seen"] {
        assert!(clean.column(column).is_err() && rejected.column(column).is_err());
    }
    // Read as UTC: the same instants as the file held before, with the zone.
    let kept: Vec<_> = [&clean, &rejected]
        .iter()
        .map(|df| {
            df.column("timestamp")
                .unwrap()
                .as_materialized_series()
                .clone()
        })
        .collect();
    assert_eq!(kept[0].dtype(), utc.dtype());
    let mut both = kept[0].clone();
    both.append(&kept[1]).unwrap();
    let mut sorted = both.sort(Default::default()).unwrap();
    let mut original = utc
        .as_materialized_series()
        .sort(Default::default())
        .unwrap();
    sorted.rename("t".into());
    original.rename("t".into());
    assert!(
        sorted.equals_missing(&original),
        "the same instants, read as UTC"
    );

    // status says it under the dataset's line, and not the minimum twice.
    let status = stdout(&stage("status", data.path(), &[]));
    assert!(
        status.contains(&format!("\n               warning: {warning}\n")),
        "{status}"
    );
    let minimum = "600 clean rows, below the minimum of 700 to train";
    assert!(
        report.datasets["performance"]
            .warnings
            .iter()
            .any(|w| w == minimum)
    );
    assert!(!status.contains(minimum), "{status}");

    // The report, before any model is trained, lists what validate noticed.
    stage("report", data.path(), &[]);
    let html = fs::read_to_string(data.path().join("reports/report.html")).unwrap();
    assert!(
        html.contains(&format!(
            "<ul id=\"validation-warnings\"><li><strong>csat</strong>: {warning}</li>"
        )),
        "the page lists the warning"
    );
}

#[test]
fn corrupt_parquet_is_an_error() {
    let data = fresh_inputs();
    fs::write(data.path().join("training/performance.parquet"), b"garbage").unwrap();
    fails_without_output(
        data.path(),
        "training/performance.parquet: not a readable Parquet file",
    );
}

/// Validate reads, checks and writes a batch of rows at a time: many small
/// batches give the same clean and rejected files and the same report as one
/// batch holding every row (what the whole-frame validate did), duplicates
/// whose first row lies in an earlier batch included.
#[test]
fn batches_split_rows_as_one_batch_does() {
    let data = tempdir().unwrap();
    synth(data.path(), 3000, 0.1);
    stage("transform", data.path(), &[]);
    let batch = 97;
    // Some duplicate's first row is in an earlier batch than the duplicate.
    let training = read(data.path().join("training/csat.parquet"));
    let keys: Vec<(Option<String>, Option<String>)> = strs(&training, SOURCE_TABLE)
        .into_iter()
        .zip(strs(&training, SOURCE_ID))
        .collect();
    let mut first = std::collections::HashMap::new();
    let across = keys.iter().enumerate().any(|(row, key)| {
        key.1.is_some() && *first.entry(key.clone()).or_insert(row) / batch < row / batch
    });
    assert!(across, "a duplicate across batches");
    let split = |rows: usize| {
        stage(
            "validate",
            data.path(),
            &["--now", NOW, "--batch-rows", &rows.to_string()],
        );
        let files = ["clean", "rejected"].map(|kind| {
            ["quality", "csat", "performance"]
                .map(|d| read(data.path().join(format!("{kind}/{d}.parquet"))))
        });
        let mut report = validation_report(data.path());
        report.validated_at = Default::default();
        (files, serde_json::to_string(&report).unwrap())
    };
    let (whole, whole_report) = split(1 << 30);
    let (batched, batched_report) = split(batch);
    for (a, b) in whole.iter().flatten().zip(batched.iter().flatten()) {
        assert!(a.height() > 0);
        assert!(a.equals_missing(b), "batched files differ\n{a}\n{b}");
    }
    assert_eq!(whole_report, batched_report);
}

/// A damaged row group behind a sound footer fails when its batch is read,
/// after earlier batches were split and written: one line naming the file,
/// and nothing of the earlier batches is left behind.
#[test]
fn a_damaged_later_batch_leaves_no_output() {
    let data = fresh_inputs();
    let path = data.path().join("training/csat.parquet");
    let mut df = read(&path);
    let file = fs::File::create(&path).unwrap();
    ParquetWriter::new(file)
        .with_row_group_size(Some(100))
        .finish(&mut df)
        .unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() * 2 / 3;
    // The footer (its length sits before the closing magic) stays sound.
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    assert!(at + 2000 < n - 8 - footer, "the damage misses the footer");
    bytes[at..at + 2000].fill(0xAB);
    fs::write(&path, bytes).unwrap();
    let before = files(data.path());
    let (code, err) = fails(bin("validate").args([
        "--data",
        data.path().to_str().unwrap(),
        "--now",
        NOW,
        "--batch-rows",
        "100",
    ]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("training/csat.parquet: not a readable Parquet file"),
        "{err}"
    );
    assert!(
        !data.path().join("clean").exists()
            && !data.path().join("reports/validation.json").exists(),
        "no partial output"
    );
    assert_eq!(files(data.path()), before, "no file left behind");
}
