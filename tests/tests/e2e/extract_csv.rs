use std::fs;
use std::path::Path;

use contract::columns::*;
use tempfile::tempdir;

use crate::common::*;

/// Supabase-style CSV exports of `rows` synthetic rows per table in
/// `work/exports`, dated up to 2026-01-15.
fn synth_exports(work: &Path, rows: &str, seed: &str, messy: &str) -> std::path::PathBuf {
    let exports = work.join("exports");
    ok(bin("synth").args([
        "--format",
        "csv",
        "--out",
        exports.to_str().unwrap(),
        "--rows",
        rows,
        "--seed",
        seed,
        "--now",
        "2026-01-15T00:00:00Z",
        "--messy",
        messy,
    ]));
    exports
}

/// A copy of the fixture exports that a test may break.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempdir().unwrap();
    for e in fs::read_dir(fixtures().join("csv")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

#[test]
fn reads_supabase_exports() {
    let data = tempdir().unwrap();
    let out = stdout(&extract_csv(data.path(), &fixtures().join("csv"), &[]));
    assert!(out.contains("ai_gm_explanations"), "{out}");
    assert!(out.contains("extract: ai_gm_explanations       `tokens_used` not in the table's contract (DESIGN.md): kept in each row's `_extra`, read by no stage"), "{out}");
    assert_eq!(
        extract_report(data.path()).tables["ai_gm_explanations"].extra_columns,
        ["tokens_used"]
    );
    // So do status and the report's data section.
    let status = stdout(&stage("status", data.path(), &[]));
    assert!(
        status.contains(
            "  ai_gm_explanations: beyond the contract, kept in _extra and read by no stage: \
             tokens_used\n"
        ),
        "{status}"
    );
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--allow-small"]);
    stage("report", data.path(), &[]);
    let html = fs::read_to_string(data.path().join("reports/report.html")).unwrap();
    assert!(
        html.contains(
            "read by no stage: <strong>ai_gm_explanations</strong> tokens_used; \
             <strong>ai_gm_quality_feedback</strong> client.</p>"
        ),
        "the page names the column beyond the contract"
    );

    let ex = read(
        data.path()
            .join("raw/ai_gm_explanations/part-000000.parquet"),
    );
    assert_eq!(strs(&ex, ID), [Some("exp-1".into()), Some("exp-2".into())]);
    assert_eq!(strs(&ex, SOURCE), [Some("csv".into()), Some("csv".into())]);
    // Unknown columns are kept, unchanged, in _extra.
    assert_eq!(
        strs(&ex, EXTRA),
        [
            Some(r#"{"tokens_used":"512"}"#.into()),
            Some(r#"{"tokens_used":null}"#.into())
        ]
    );
    let created = ex
        .column(CREATED_AT)
        .unwrap()
        .datetime()
        .unwrap()
        .physical()
        .get(0)
        .unwrap();
    assert_eq!(
        created, 1_766_252_951_433_050,
        "2025-12-20 17:49:11.43305+00 in µs"
    );

    let fb = read(
        data.path()
            .join("raw/ai_gm_quality_feedback/part-000000.parquet"),
    );
    let text = strs(&fb, FEEDBACK_TEXT);
    assert_eq!(
        text[0].as_deref(),
        Some("Great answer, but the \"fireball\" rule\nwas wrong")
    );
    assert_eq!(text[1].as_deref(), Some("Très bien 🎲 ünïcödé"));
    assert_eq!(text[2], None, "empty field = null");
    assert_eq!(
        nums(&fb, RESPONSE_TIME_MS),
        [Some(1200.0), None, Some(800.0)]
    );

    // Unparseable rows: every field as text, the reason and the field.
    let rej = read(data.path().join("rejected/raw_ai_gm_explanations.parquet"));
    assert_eq!(strs(&rej, ID), [Some("exp-3".into()), Some("exp-4".into())]);
    assert_eq!(
        strs(&rej, REASON),
        [Some("unparseable".into()), Some("unparseable".into())]
    );
    assert_eq!(
        strs(&rej, FIELD),
        [Some(CREATED_AT.into()), Some(METADATA.into())]
    );
    assert_eq!(strs(&rej, CREATED_AT)[0].as_deref(), Some("yesterday-ish"));
    let rej = read(
        data.path()
            .join("rejected/raw_ai_gm_quality_feedback.parquet"),
    );
    assert_eq!(strs(&rej, FIELD), [Some(QUALITY_RATING.into())]);
    assert_eq!(strs(&rej, QUALITY_RATING), [Some("high".into())]);

    // The report adds up: read = written + rejected + skipped.
    let report = extract_report(data.path());
    let t = &report.tables["ai_gm_explanations"];
    assert_eq!((t.rows_read, t.rows_written, t.rows_rejected), (4, 2, 2));
    assert_eq!(report.source, "csv");
}

#[test]
fn days_window_and_limit_are_counted() {
    let data = tempdir().unwrap();
    // One day back from 2025-12-22: the rows of 2025-12-20 fall outside.
    extract_csv(
        data.path(),
        &fixtures().join("csv"),
        &["--days", "1", "--now", "2025-12-22T00:00:00Z"],
    );
    let ab = read(data.path().join("raw/ai_gm_ab_testing/part-000000.parquet"));
    assert_eq!(strs(&ab, ID), [Some("ab-3".into())]);
    let report = extract_report(data.path());
    assert_eq!(report.tables["ai_gm_ab_testing"].rows_skipped_window, 2);

    let data = tempdir().unwrap();
    extract_csv(data.path(), &fixtures().join("csv"), &["--limit", "1"]);
    let ab = read(data.path().join("raw/ai_gm_ab_testing/part-000000.parquet"));
    assert_eq!(ab.height(), 1);
    let report = extract_report(data.path());
    let t = &report.tables["ai_gm_ab_testing"];
    assert_eq!((t.rows_read, t.rows_skipped_limit), (3, 2));
}

/// A window of no days, or a limit of no rows, would keep nothing and
/// replace the raw tables with nothing (retention of no days would drop all
/// but the newest part; no attempts would never ask): each is refused before
/// anything is read, naming the flag (synth too). `make`'s `DAYS=` (empty) takes every
/// row instead, however old.
#[test]
fn zero_windows_and_counts_are_refused_and_an_empty_days_takes_every_row() {
    for (flag, why) in [
        ("--days", "0 is not in 1..=36600"),
        ("--retain-days", "0 is not in 1..=36600"),
        ("--limit", "must be at least 1"),
        ("--retries", "must be at least 1"),
        // Timeouts of no time: refused, not read as 1 s (0 is "no limit"
        // to PostgreSQL's statement_timeout).
        ("--statement-timeout", "must be at least 1"),
        ("--connect-timeout", "must be at least 1"),
        ("--request-timeout", "must be at least 1"),
    ] {
        // A negative number is the flag's value too, refused by the same
        // check (clap took "-1" for an unknown flag).
        for value in ["0", "-1"] {
            let data = tempdir().unwrap();
            let (code, err) = fails(&mut extract_csv_command(
                data.path(),
                &fixtures().join("csv"),
                &[flag, value],
            ));
            assert_eq!(code, 2, "{err}");
            let why = why.replace("0 is not", &format!("{value} is not"));
            assert!(
                err.contains(&format!("invalid value '{value}' for '{flag} <"))
                    && err.contains(&why),
                "{err}"
            );
            assert!(
                !data.path().join("raw").exists(),
                "{flag} {value} wrote raw/"
            );
        }
    }
    // synth, the source when no database is set, refuses no days too, so
    // `make pipeline DAYS=0` fails the same way whatever the source; and no
    // rows (`make pipeline ROWS=0`) the same way.
    for (flag, why) in [
        ("--days", "0 is not in 1..=36600"),
        ("--rows", "must be at least 1"),
        ("--chunk-rows", "must be at least 1"),
    ] {
        let data = tempdir().unwrap();
        let (code, err) =
            fails(bin("synth").args(["--data", data.path().to_str().unwrap(), flag, "0"]));
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("invalid value '0' for '{flag} <")) && err.contains(why),
            "{err}"
        );
        assert!(
            !data.path().join("raw").exists(),
            "synth {flag} 0 wrote raw/"
        );
    }
    // The fixtures' rows are from December 2025: none within the default 30
    // days of now, all of them with DAYS= (empty).
    for (days, written) in [("DAYS=", 3), ("DAYS=30", 0)] {
        let data = tempdir().unwrap();
        ok(make()
            .args(["extract", "SOURCE=csv", days])
            .arg(format!("CSV_DIR={}", fixtures().join("csv").display()))
            .arg(format!("DATA={}", data.path().display()))
            .arg(format!("BIN={}", bin_dir().display())));
        let report = extract_report(data.path());
        assert_eq!(
            report.tables["ai_gm_ab_testing"].rows_written, written,
            "{days}"
        );
    }
}

#[test]
fn a_rerun_replaces_the_table() {
    let data = tempdir().unwrap();
    extract_csv(data.path(), &fixtures().join("csv"), &[]);
    extract_csv(data.path(), &fixtures().join("csv"), &[]);
    let parts = files(&data.path().join("raw/ai_gm_ab_testing"));
    assert_eq!(parts, ["part-000000.parquet"]);
    assert_eq!(
        read(data.path().join("raw/ai_gm_ab_testing/part-000000.parquet")).height(),
        3
    );
}

/// A full run over tables that `--incremental` (`make collect`) has been
/// collecting into would drop what it collected: refused, naming the folder,
/// for extract and synth alike, unless --replace, which also drops the
/// collection's position. And the first incremental run over tables a full
/// run wrote, without a window, writes no row twice.
#[test]
fn a_full_run_over_collected_tables_is_refused_unless_told_to_replace() {
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    let exports = synth_exports(work.path(), "300", "5", "0");
    extract_csv(&data, &exports, &[]);
    extract_csv(&data, &exports, &["--incremental"]);
    assert_every_raw_row_once(&data, 300);
    let t = &extract_report(&data).tables["ai_gm_ab_testing"];
    assert_eq!((t.rows_written, t.already_collected), (0, 300));

    let before = files(&data);
    let state = data.join("state/extract.json");
    assert!(state.exists());
    for (stage, mut cmd) in [
        ("extract", extract_csv_command(&data, &exports, &[])),
        ("synth", {
            let mut cmd = bin("synth");
            cmd.args(["--data", data.to_str().unwrap(), "--rows", "50"]);
            cmd
        }),
    ] {
        let (code, err) = fails(&mut cmd);
        assert_eq!(code, 1, "{stage}: {err}");
        assert_eq!(error_lines(&err).len(), 1, "{stage}: {err}");
        assert!(
            err.contains(&format!(
                "{}: holds rows collected incrementally (`make collect`; ",
                data.join("raw").display()
            )) && err.contains(&format!("which this full {stage} would replace"))
                && err.contains("--replace"),
            "{stage}: {err}"
        );
        assert_eq!(files(&data), before, "{stage} changed nothing");
    }
    extract_csv(&data, &exports, &["--replace"]);
    assert_every_raw_row_once(&data, 300);
    assert!(!state.exists(), "the collection's place went with its rows");
    // Refused beside --incremental, which never replaces.
    let (code, err) = fails(&mut extract_csv_command(
        &data,
        &exports,
        &["--incremental", "--replace"],
    ));
    assert_eq!(code, 2, "{err}");
}

fn assert_fails_cleanly(input: &Path, expected: &str) {
    let data = tempdir().unwrap();
    let (code, err) = fails(&mut extract_csv_command(data.path(), input, &[]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "one line: {err}");
    assert!(err.contains(expected), "expected {expected:?} in {err}");
    let left: Vec<String> = files(data.path())
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert!(left.is_empty(), "nothing half-written: {left:?}");
}

#[test]
fn missing_file_is_one_clear_error() {
    let input = fixture_copy();
    fs::remove_file(input.path().join("ai_gm_ab_testing.csv")).unwrap();
    assert_fails_cleanly(input.path(), "ai_gm_ab_testing.csv: not found");
}

#[test]
fn missing_required_column_is_one_clear_error() {
    let input = fixture_copy();
    let path = input.path().join("ai_gm_ab_testing.csv");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replacen("user_rating", "rating_by_user", 1);
    fs::write(&path, text).unwrap();
    assert_fails_cleanly(
        input.path(),
        "ai_gm_ab_testing.csv: missing column `user_rating`",
    );
}

#[test]
fn unreadable_file_is_one_clear_error() {
    let input = fixture_copy();
    let path = input.path().join("ai_gm_quality_feedback.csv");
    fs::write(&path, "").unwrap();
    assert_fails_cleanly(input.path(), "ai_gm_quality_feedback.csv: empty file");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_fails_cleanly(input.path(), "ai_gm_quality_feedback.csv");
}

#[test]
fn database_sources_need_their_settings() {
    let data = tempdir().unwrap();
    let (code, err) = fails(bin("extract").args([
        "--data",
        data.path().to_str().unwrap(),
        "--source",
        "supabase",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("SUPABASE_URL is not set"), "{err}");
    let (_, err) = fails(bin("extract").args([
        "--data",
        data.path().to_str().unwrap(),
        "--source",
        "postgres",
    ]));
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
}

/// Synthetic tables exported to CSV and extracted again give the same datasets
/// as the synthetic tables themselves.
#[test]
fn csv_exports_of_synth_data_round_trip() {
    use polars::prelude::*;
    let direct = tempdir().unwrap();
    synth(direct.path(), 700, 0.0);
    let exports = tempdir().unwrap();
    for table in contract::RawTable::ALL {
        let mut df = read(
            direct
                .path()
                .join("raw")
                .join(table.name())
                .join("part-000000.parquet"),
        )
        .drop_many([SOURCE, EXTRACTED_AT, EXTRA]);
        let mut file =
            fs::File::create(exports.path().join(format!("{}.csv", table.name()))).unwrap();
        CsvWriter::new(&mut file).finish(&mut df).unwrap();
    }
    let via_csv = tempdir().unwrap();
    extract_csv(via_csv.path(), exports.path(), &[]);
    stage("transform", direct.path(), &[]);
    stage("transform", via_csv.path(), &[]);
    for name in ["quality", "csat", "performance"] {
        let path = |d: &Path| d.join("training").join(format!("{name}.parquet"));
        let a = read(path(direct.path())).drop(SOURCE).unwrap();
        let b = read(path(via_csv.path())).drop(SOURCE).unwrap();
        assert!(
            a.equals_missing(&b),
            "{name}: same rows through CSV\n{a}\n{b}"
        );
    }
}

/// The two readers of CSV exports (in columns, row by row) share one row
/// classification; run the same export through each, with a window, a limit
/// and rows that do not read, and every kept row, every reject and every
/// count must be the same.
#[test]
fn both_csv_readers_keep_reject_and_count_every_row_alike() {
    let work = tempdir().unwrap();
    let exports = synth_exports(work.path(), "3000", "11", "0.05");
    // Rows no reader can type, in files polars still reads strictly.
    let spoil = |table: &str, column: &str, value: &str, every: usize| {
        let path = exports.join(format!("{table}.csv"));
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header = reader.headers().unwrap().clone();
        let at = header.iter().position(|h| h == column).unwrap();
        let mut writer = csv::Writer::from_path(path.with_extension("tmp")).unwrap();
        writer.write_record(&header).unwrap();
        for (i, record) in reader.records().enumerate() {
            let record = record.unwrap();
            let fields: Vec<&str> = record
                .iter()
                .enumerate()
                .map(|(j, f)| if j == at && i % every == 7 { value } else { f })
                .collect();
            writer.write_record(fields).unwrap();
        }
        writer.flush().unwrap();
        fs::rename(path.with_extension("tmp"), &path).unwrap();
    };
    spoil("ai_gm_ab_testing", "predicted_quality", "high", 97);
    spoil("ai_gm_explanations", "created_at", "yesterday", 89);
    spoil("ai_gm_quality_feedback", "response_time_ms", "12 ms", 101);

    let runs: [&[&str]; 3] = [
        &["--since", "2020-01-01"],
        &["--since", "2026-01-01", "--until", "2026-01-10"],
        &["--since", "2020-01-01", "--limit", "1234"],
    ];
    for args in runs {
        let mut outcome = Vec::new();
        for reader in ["auto", "rows"] {
            let data = work.path().join(format!("data-{reader}"));
            let _ = fs::remove_dir_all(&data);
            extract_csv(&data, &exports, &[args, &["--csv-reader", reader]].concat());
            outcome.push(data);
        }
        let (columns, rows) = (&outcome[0], &outcome[1]);
        let (a, b) = (extract_report(columns), extract_report(rows));
        for table in contract::RawTable::ALL {
            let name = table.name();
            let (ca, cb) = (&a.tables[name], &b.tables[name]);
            assert_eq!(
                serde_json::to_value(ca).unwrap(),
                serde_json::to_value(cb).unwrap(),
                "{args:?} {name}: counts"
            );
            assert!(
                ca.rows_rejected > 0,
                "{args:?} {name}: some rows do not read"
            );
            let raw = |data: &Path| {
                contract::io::read_raw(&contract::Layout::new(data), table)
                    .unwrap()
                    .drop(EXTRACTED_AT)
                    .unwrap()
            };
            assert!(
                raw(columns).equals_missing(&raw(rows)),
                "{args:?} {name}: kept rows"
            );
            let rejects = |data: &Path| read(contract::Layout::new(data).raw_rejected(table));
            assert!(
                rejects(columns).equals_missing(&rejects(rows)),
                "{args:?} {name}: rejects"
            );
        }
    }
}

/// An export longer than one batch of the columnar reader (200 000 rows,
/// a part's worth):
/// read batch by batch, its rows, parts and counts are the row reader's.
/// One export has a record with one field too many near its end, found after
/// parts were written: those parts go and the row reader takes over.
#[test]
fn a_long_export_is_read_in_batches_as_the_row_reader_reads_it() {
    let work = tempdir().unwrap();
    let exports = synth_exports(work.path(), "250000", "5", "0.01");
    let ab = exports.join("ai_gm_ab_testing.csv");
    let mut text = fs::read_to_string(&ab).unwrap();
    let header_fields = text.lines().next().unwrap().split(',').count();
    text.push_str(&vec!["x"; header_fields + 1].join(","));
    text.push('\n');
    fs::write(&ab, text).unwrap();
    let mut runs = Vec::new();
    for reader in ["auto", "rows"] {
        let data = work.path().join(format!("data-{reader}"));
        extract_csv(&data, &exports, &["--csv-reader", reader]);
        runs.push(data);
    }
    let (a, b) = (extract_report(&runs[0]), extract_report(&runs[1]));
    for table in contract::RawTable::ALL {
        let name = table.name();
        assert_eq!(
            serde_json::to_value(&a.tables[name]).unwrap(),
            serde_json::to_value(&b.tables[name]).unwrap(),
            "{name}: counts"
        );
        let parts = |data: &Path| files(&data.join("raw").join(name));
        assert!(parts(&runs[0]).len() >= 2, "{name}: several parts");
        assert_eq!(parts(&runs[0]), parts(&runs[1]), "{name}: the same parts");
        let raw = |data: &Path| {
            contract::io::read_raw(&contract::Layout::new(data), table)
                .unwrap()
                .drop(EXTRACTED_AT)
                .unwrap()
        };
        assert!(raw(&runs[0]).equals_missing(&raw(&runs[1])), "{name}: rows");
    }
    assert_eq!(
        a.tables["ai_gm_ab_testing"].rows_rejected,
        b.tables["ai_gm_ab_testing"].rows_rejected
    );
    assert!(
        a.tables["ai_gm_ab_testing"].rows_rejected > 0,
        "the long record"
    );
}
