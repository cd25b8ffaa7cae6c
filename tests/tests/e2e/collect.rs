//! Collection that runs for months: hourly parts are compacted without
//! losing or doubling a row, old parts age out by a rule that never cuts into
//! the window, and the collect loop retrains when its rule says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contract::columns::{CREATED_AT, ID};
use polars::prelude::*;
use tempfile::tempdir;

use crate::common::*;

const TABLES: [&str; 3] = [
    "ai_gm_explanations",
    "ai_gm_quality_feedback",
    "ai_gm_ab_testing",
];

/// Synthetic exports, then `slices` cumulative copies of them: the oldest
/// 1/n, 2/n, ... of each table's rows by created_at, as hourly exports grow.
fn growing_exports(dir: &Path, rows: usize, slices: usize) -> Vec<PathBuf> {
    let full = dir.join("full");
    ok(bin("synth").args([
        "--rows",
        &rows.to_string(),
        "--seed",
        "5",
        "--now",
        NOW,
        "--format",
        "csv",
        "--out",
        full.to_str().unwrap(),
    ]));
    let mut out = Vec::new();
    for k in 1..=slices {
        let slice = dir.join(format!("slice-{k}"));
        fs::create_dir_all(&slice).unwrap();
        for table in TABLES {
            let df = CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .try_into_reader_with_file_path(Some(full.join(format!("{table}.csv"))))
                .unwrap()
                .finish()
                .unwrap()
                .sort([CREATED_AT], SortMultipleOptions::default())
                .unwrap();
            let mut head = df.head(Some(df.height() * k / slices));
            let mut f = fs::File::create(slice.join(format!("{table}.csv"))).unwrap();
            CsvWriter::new(&mut f).finish(&mut head).unwrap();
        }
        out.push(slice);
    }
    out
}

fn export_ids(exports: &Path, table: &str) -> Vec<String> {
    let df = CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(exports.join(format!("{table}.csv"))))
        .unwrap()
        .finish()
        .unwrap();
    let mut ids: Vec<String> = strs(&df, ID).into_iter().map(Option::unwrap).collect();
    ids.sort();
    ids
}

fn parts(data: &Path, table: &str) -> usize {
    files(&data.join("raw").join(table)).len()
}

fn report(data: &Path) -> contract::reports::ExtractReport {
    extract_report(data)
}

#[test]
fn parts_are_compacted_without_losing_or_doubling_a_row() {
    let work = tempdir().unwrap();
    let slices = growing_exports(work.path(), 2000, 4);
    let data = work.path().join("data");
    for (i, slice) in slices.iter().enumerate() {
        extract_csv(
            &data,
            slice,
            &["--incremental", "--max-parts", "2", "--now", NOW],
        );
        let want = [1, 2, 2, 2][i];
        for table in TABLES {
            assert_eq!(parts(&data, table), want, "{table} after run {}", i + 1);
        }
    }
    let last = report(&data);
    for table in TABLES {
        assert_eq!(last.tables[table].parts_merged, 2, "{table}");
        let mut ids = raw_ids(&data, table);
        ids.sort();
        assert_eq!(
            ids,
            export_ids(slices.last().unwrap(), table),
            "{table}: every row once"
        );
    }
    // The compacted folder reads on: the whole pipeline after it.
    stage("transform", &data, &[]);
}

#[test]
fn retention_drops_whole_parts_older_than_the_window_and_nothing_inside_it() {
    let work = tempdir().unwrap();
    let slices = growing_exports(work.path(), 2000, 4);
    let data = work.path().join("data");
    for slice in &slices {
        extract_csv(&data, slice, &["--incremental", "--now", NOW]);
    }
    for table in TABLES {
        assert_eq!(parts(&data, table), 4);
    }
    // Ten days on, keeping 20 days: rows created before NOW - 10 days may go,
    // but only as whole parts.
    let later = "2026-01-25T12:00:00Z";
    let cutoff = chrono::DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z")
        .unwrap()
        .timestamp_micros() as f64;
    let before: Vec<DataFrame> = TABLES
        .iter()
        .map(|t| {
            contract::io::read_raw(
                &contract::Layout::new(&data),
                contract::RawTable::from_name(t).unwrap(),
            )
            .unwrap()
        })
        .collect();
    extract_csv(
        &data,
        slices.last().unwrap(),
        &["--incremental", "--retain-days", "20", "--now", later],
    );
    let said = report(&data);
    for (table, old) in TABLES.iter().zip(before) {
        let dropped = said.tables[*table].parts_dropped;
        assert!(dropped >= 1, "{table}: {said:?}");
        assert_eq!(parts(&data, table), 4 - dropped);
        let now = contract::io::read_raw(
            &contract::Layout::new(&data),
            contract::RawTable::from_name(table).unwrap(),
        )
        .unwrap();
        let kept: std::collections::HashSet<String> =
            strs(&now, ID).into_iter().map(Option::unwrap).collect();
        // Every row inside the window is still there.
        let times = nums(&old, CREATED_AT);
        for (id, t) in strs(&old, ID).into_iter().zip(times) {
            let (id, t) = (id.unwrap(), t.unwrap());
            if t >= cutoff {
                assert!(
                    kept.contains(&id),
                    "{table}: {id} at {t} is inside the window"
                );
            }
        }
        assert!(now.height() < old.height(), "{table}: something aged out");
    }
}

/// Starts `extract --every 1s` with a retrain rule (`--retrain-rows 1`
/// unless `rule` gives one); returns its stdout once `until` appears in it
/// `times` times (or after a minute), then stops it with Ctrl-C.
fn collect_until(
    data: &Path,
    exports: &Path,
    command: &str,
    rule: &[&str],
    until: &str,
    times: usize,
) -> String {
    let log = data.with_extension("log");
    let mut child = bin("extract")
        .args([
            "--data",
            data.to_str().unwrap(),
            "--source",
            "csv",
            "--input",
        ])
        .arg(exports)
        .args(["--incremental", "--every", "1s", "--now", NOW])
        .args(if rule.is_empty() {
            &["--retrain-rows", "1"][..]
        } else {
            rule
        })
        .args(["--retrain-command", command])
        .stdout(Stdio::from(fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while fs::read_to_string(&log)
        .unwrap_or_default()
        .matches(until)
        .count()
        < times
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C ends collection cleanly");
    fs::read_to_string(&log).unwrap()
}

/// What `make retrain` runs before train: transform, then validate (its
/// flags can follow).
fn prepare_command(data: &Path) -> String {
    format!(
        "{b}/transform --data {d} && {b}/validate --data {d} --now {NOW}",
        b = bin_dir().display(),
        d = data.display()
    )
}

/// What `make retrain` runs, minus the report: transform, validate, train.
fn retrain_command(data: &Path) -> String {
    format!(
        "{} && {}/train --data {}",
        prepare_command(data),
        bin_dir().display(),
        data.display()
    )
}

/// A column the database gained is said when collection starts (and would
/// be again if the columns changed), not every cycle.
#[test]
fn collection_names_a_column_beyond_the_contract_once() {
    let work = tempdir().unwrap();
    let exports = growing_exports(work.path(), 300, 1).pop().unwrap();
    let path = exports.join("ai_gm_ab_testing.csv");
    let widened: Vec<String> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, line)| format!("{line},{}", if i == 0 { "latency_ms" } else { "12" }))
        .collect();
    fs::write(&path, widened.join("\n") + "\n").unwrap();
    let data = work.path().join("data");
    let log = collect_until(&data, &exports, "true", &[], " ok in ", 3);
    let said = "extract: ai_gm_ab_testing         `latency_ms` not in the table's contract \
                (DESIGN.md): kept in each row's `_extra`, read by no stage";
    assert_eq!(log.matches(said).count(), 1, "{log}");
    assert!(
        log.find(said) < log.find(" ok in "),
        "said before the first cycle's line: {log}"
    );
}

#[test]
fn collection_retrains_when_due_and_logs_a_failed_retrain() {
    let work = tempdir().unwrap();
    let exports = growing_exports(work.path(), 2000, 1).pop().unwrap();
    let data = work.path().join("data");
    let retrain = retrain_command(&data);
    let log = collect_until(&data, &exports, &retrain, &[], "retrain not due", 1);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" ok in ")).collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(
        lines[0].contains("retrained (no model trained yet)"),
        "{log}"
    );
    // It says what the retrain's train run decided, model by model.
    assert!(
        lines[0]
            .contains(": csat promoted v0001, performance promoted v0001, quality promoted v0001"),
        "{log}"
    );
    assert!(
        lines[1].contains("+0") && lines[1].contains("retrain not due"),
        "{log}"
    );
    assert!(data.join("reports/training.json").exists());
    assert_eq!(
        fs::read_link(data.join("models/csat")).unwrap(),
        Path::new("versions/csat/v0001")
    );

    // Once the last training is older than --retrain-every, the next cycle
    // retrains, and says why in the units it was given.
    let log = collect_until(
        &data,
        &exports,
        &retrain,
        &["--retrain-every", "2s"],
        "since the last training",
        1,
    );
    assert!(
        log.contains("s since the last training (every 2s)) in "),
        "{log}"
    );
    // No row came in since: the champion's model made again, and it says so.
    assert!(
        log.contains(": csat promoted v0002 (the same model as v0001), "),
        "{log}"
    );

    // A retrain that fails is logged, and the next cycle runs.
    let data2 = work.path().join("data2");
    let log = collect_until(&data2, &exports, "exit 7", &[], "FAILED", 2);
    assert_eq!(log.matches("FAILED").count(), 2, "{log}");
    assert!(
        log.contains("retrain (no model trained yet) FAILED"),
        "{log}"
    );
    assert!(log.contains("exit status: 7"), "{log}");
}

/// A new game's first hours: too few rows for one model. The retrain stops
/// for that, says which and how many, and is not run again on the same rows;
/// once the rows are there, it trains.
#[test]
fn a_retrain_short_of_rows_says_so_and_waits_for_new_rows() {
    let work = tempdir().unwrap();
    let slices = growing_exports(work.path(), 800, 2);
    let data = work.path().join("data");
    let retrain = retrain_command(&data);
    let log = collect_until(
        &data,
        &slices[0],
        &retrain,
        &[],
        "waits for new rows: the last",
        2,
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" ok in ")).collect();
    assert!(lines.len() >= 3, "{log}");
    assert!(
        lines[0].contains("retrain (no model trained yet) stopped after ")
            && lines[0].contains(
                "for too few clean rows (performance 400 of 500); the next waits for new rows \
             (ALLOW_SMALL=yes for make collect trains quality and csat meanwhile)"
            ),
        "{log}"
    );
    for line in &lines[1..3] {
        assert!(
            line.contains("+0")
                && line.ends_with(
                    "retrain (no model trained yet) waits for new rows: the last one stopped for \
                 too few clean rows (performance 400 of 500)"
                ),
            "{log}"
        );
    }
    assert!(!data.join("reports/training.json").exists(), "{log}");

    // Told to go on past the short dataset (ALLOW_SMALL=yes), a retrain that
    // then fails for another reason (a full disk, here exit 7) is a failure,
    // retried next cycle, not a wait for rows.
    let allowed = work.path().join("allowed");
    let failing = format!("{} --allow-small && exit 7", prepare_command(&allowed));
    let log = collect_until(&allowed, &slices[0], &failing, &[], "FAILED", 2);
    assert_eq!(log.matches("FAILED").count(), 2, "{log}");
    assert!(log.contains("exit status: 7"), "{log}");
    assert!(!log.contains("too few clean rows"), "{log}");
    assert!(
        validation_report(&allowed).allow_small,
        "the report says validate went on past performance's 400 rows"
    );

    // The rest of the rows: enough for every model.
    let log = collect_until(&data, &slices[1], &retrain, &[], "retrained", 1);
    assert!(
        log.contains("retrained (no model trained yet) in ")
            && log.contains(
                ": csat promoted v0001, performance promoted v0001, quality promoted v0001"
            ),
        "{log}"
    );
}

/// The exports with one row of each table dated years ahead (a client clock
/// gone wrong), cut to the oldest `share` of rows (by their true dates).
fn with_a_future_row(full: &Path, out: &Path, share: f64) {
    fs::create_dir_all(out).unwrap();
    for table in TABLES {
        let mut df = CsvReadOptions::default()
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(full.join(format!("{table}.csv"))))
            .unwrap()
            .finish()
            .unwrap()
            .sort([CREATED_AT], SortMultipleOptions::default())
            .unwrap();
        let dates: Vec<Option<String>> = strs(&df, CREATED_AT)
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                if i == 10 {
                    Some("2030-01-01T00:00:00Z".into())
                } else {
                    d
                }
            })
            .collect();
        df.with_column(Column::new(CREATED_AT.into(), dates))
            .unwrap();
        let mut head = df.head(Some((df.height() as f64 * share) as usize));
        let mut f = fs::File::create(out.join(format!("{table}.csv"))).unwrap();
        CsvWriter::new(&mut f).finish(&mut head).unwrap();
    }
}

#[test]
fn the_cursor_follows_the_data_not_our_clock_and_a_future_row_is_collected_once() {
    let work = tempdir().unwrap();
    let full = growing_exports(work.path(), 3000, 1).pop().unwrap();
    let (first, all) = (work.path().join("first"), work.path().join("all"));
    with_a_future_row(&full, &first, 0.6);
    with_a_future_row(&full, &all, 1.0);
    let data = work.path().join("data");
    extract_csv(&data, &first, &["--incremental"]);
    extract_csv(&data, &all, &["--incremental"]);
    for table in TABLES {
        let mut ids = raw_ids(&data, table);
        ids.sort();
        assert_eq!(
            ids,
            export_ids(&all, table),
            "{table}: every row exactly once"
        );
    }
    // The future row is there once, for validate to reject.
    stage("transform", &data, &[]);
    stage("validate", &data, &["--allow-small"]);
    let report = validation_report(&data);
    assert_eq!(
        report.datasets["performance"].rejected[&contract::reports::Reason::BadTimestamp],
        1
    );
}
