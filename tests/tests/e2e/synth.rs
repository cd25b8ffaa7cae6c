use contract::columns::*;
use contract::{RawTable, SYNTH_SOURCE};
use tempfile::tempdir;

use crate::common::*;

#[test]
fn writes_three_tables_tagged_synth() {
    let dir = tempdir().unwrap();
    let out = synth(dir.path(), 300, 0.0);
    assert!(stdout(&out).contains("ai_gm_ab_testing"));
    for table in RawTable::ALL {
        let df = read(
            dir.path()
                .join("raw")
                .join(table.name())
                .join("part-000000.parquet"),
        );
        assert_eq!(df.height(), 300, "{table}");
        assert!(
            strs(&df, SOURCE)
                .iter()
                .all(|s| s.as_deref() == Some(SYNTH_SOURCE))
        );
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let want: Vec<String> = table.schema().iter_names().map(|s| s.to_string()).collect();
        assert_eq!(names, want, "{table} schema");
    }
}

#[test]
fn same_seed_and_now_same_rows() {
    let (a, b) = (tempdir().unwrap(), tempdir().unwrap());
    synth(a.path(), 200, 0.1);
    synth(b.path(), 200, 0.1);
    for table in RawTable::ALL {
        let part = |d: &std::path::Path| {
            read(d.join("raw").join(table.name()).join("part-000000.parquet"))
                .drop(EXTRACTED_AT)
                .unwrap()
        };
        assert_eq!(part(a.path()), part(b.path()), "{table}");
    }
}

#[test]
fn realistic_links_and_text() {
    let dir = tempdir().unwrap();
    synth(dir.path(), 2000, 0.0);
    let fb = read(
        dir.path()
            .join("raw/ai_gm_quality_feedback/part-000000.parquet"),
    );
    let ab = read(dir.path().join("raw/ai_gm_ab_testing/part-000000.parquet"));
    let ab_ids: std::collections::HashSet<_> =
        strs(&ab, RESPONSE_ID).into_iter().flatten().collect();
    let shared = strs(&fb, RESPONSE_ID)
        .iter()
        .flatten()
        .filter(|r| ab_ids.contains(*r))
        .count();
    let share = shared as f64 / fb.height() as f64;
    assert!(
        (0.65..0.75).contains(&share),
        "share of feedback sharing an A/B response: {share}"
    );
    let texts: Vec<String> = strs(&fb, FEEDBACK_TEXT).into_iter().flatten().collect();
    for needle in [",", "\"", "\n", "🎲"] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "feedback_text with {needle:?}"
        );
    }
}

#[test]
fn messy_reports_what_it_injected() {
    let dir = tempdir().unwrap();
    let out = stdout(&synth(dir.path(), 1000, 0.04));
    // 4% of 1000 = 40 per table, 10 of each kind.
    assert!(
        out.contains("messy ai_gm_explanations 10 null_target, 10 out_of_range_target, 10 duplicate_id, 10 future_timestamp"),
        "{out}"
    );
}

#[test]
fn bad_arguments_fail_clearly() {
    let dir = tempdir().unwrap();
    for value in ["1.5", "-0.1"] {
        let (code, err) =
            fails(bin("synth").args(["--data", dir.path().to_str().unwrap(), "--messy", value]));
        assert_eq!(code, 1, "{value}: {err}");
        assert!(
            err.contains(&format!(
                "--messy must be a fraction between 0 and 1, got {value}"
            )),
            "{err}"
        );
        assert!(files(dir.path()).is_empty(), "nothing written");
    }
}

/// Large runs are made a chunk at a time (a part file each): rows add up,
/// time order holds across parts, every defect is counted, and the chunks
/// run through the whole pipeline like one part would; CSV exports get one
/// header.
#[test]
fn chunked_synth_adds_up_and_runs_through_the_pipeline() {
    let data = tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let args = [
        "--rows",
        "2500",
        "--chunk-rows",
        "1000",
        "--seed",
        "5",
        "--now",
        NOW,
        "--messy",
        "0.04",
    ];
    ok(bin("synth").args(["--data", d]).args(args));
    let report = extract_report(data.path());
    for table in RawTable::ALL {
        let dir = data.path().join("raw").join(table.name());
        assert_eq!(
            files(&dir),
            [
                "part-000000.parquet",
                "part-000001.parquet",
                "part-000002.parquet"
            ]
        );
        let counts = &report.tables[table.name()];
        assert_eq!(counts.rows_written, 2500, "{table}");
        let injected: usize = counts.injected.values().sum();
        // 4% of each chunk: 40 + 40 + 20.
        assert_eq!(injected, 100, "{table}");
        // Chunk k holds the k-th slice of the window, so parts follow in time.
        let last_of_first = nums_i64(&read(dir.join("part-000000.parquet")), CREATED_AT);
        let first_of_second = nums_i64(&read(dir.join("part-000001.parquet")), CREATED_AT);
        let max0 = last_of_first
            .iter()
            .flatten()
            .filter(|t| **t < now_micros())
            .max()
            .unwrap();
        let min1 = first_of_second.iter().flatten().min().unwrap();
        assert!(max0 <= min1, "{table}: parts overlap in time");
    }
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    let validation = validation_report(data.path());
    assert_eq!(validation.datasets["performance"].rows_in, 2500);
    assert_eq!(validation.datasets["csat"].rows_in, 5000);

    let exports = tempdir().unwrap();
    ok(bin("synth")
        .args(["--format", "csv", "--out", exports.path().to_str().unwrap()])
        .args(args));
    for table in RawTable::ALL {
        let text =
            std::fs::read_to_string(exports.path().join(format!("{}.csv", table.name()))).unwrap();
        let header = text.lines().next().unwrap().to_string();
        assert_eq!(
            text.lines().filter(|l| **l == *header).count(),
            1,
            "{table}"
        );
    }
    // The exports read back as the same 2500 rows per table.
    let extracted = tempdir().unwrap();
    // The rows end at NOW, months ago: a window that reaches them.
    extract_csv(extracted.path(), exports.path(), &["--days", "3650"]);
    let report = extract_report(extracted.path());
    for table in RawTable::ALL {
        assert_eq!(report.tables[table.name()].rows_read, 2500, "{table}");
    }
}

fn nums_i64(df: &polars::prelude::DataFrame, column: &str) -> Vec<Option<i64>> {
    df.column(column)
        .unwrap()
        .cast(&polars::prelude::DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

fn now_micros() -> i64 {
    contract::timestamp::parse_utc(NOW)
        .unwrap()
        .timestamp_micros()
}
