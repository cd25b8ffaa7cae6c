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
    let (code, err) =
        fails(bin("synth").args(["--data", dir.path().to_str().unwrap(), "--messy", "1.5"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("--messy must be a fraction between 0 and 1"),
        "{err}"
    );
    assert!(files(dir.path()).is_empty(), "nothing written");
}
