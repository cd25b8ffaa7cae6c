use std::fs;

use contract::columns::*;
use tempfile::tempdir;

use crate::common::*;

fn csv_then_transform() -> tempfile::TempDir {
    let data = tempdir().unwrap();
    extract_fixtures(data.path());
    stage("transform", data.path(), &[]);
    data
}

#[test]
fn csv_exports_become_exactly_the_expected_rows() {
    let data = csv_then_transform();
    let q = read(data.path().join("training/quality.parquet"));
    assert_eq!(
        strs(&q, SOURCE_ID),
        [Some("exp-1".into()), Some("exp-2".into())]
    );
    assert_eq!(
        strs(&q, SOURCE_TABLE)[0].as_deref(),
        Some("ai_gm_explanations")
    );
    assert_eq!(nums(&q, QUALITY_SCORE), [Some(82.0), Some(50.0)], "x 100");
    assert_eq!(nums(&q, CODE_QUALITY), [Some(80.0), Some(55.0)]);
    assert_eq!(
        nums(&q, SECURITY),
        [Some(90.0), None],
        "a metric missing from metadata stays null"
    );
    assert_eq!(nums(&q, COMPLEXITY), [Some(30.0), Some(70.0)]);
    // resp-1 was rated 0.9 and 0.7; resp-2's only rating ("high") was unparseable.
    let csat = nums(&q, CSAT);
    assert!((csat[0].unwrap() - 0.8).abs() < 1e-12, "{csat:?}");
    assert_eq!(csat[1], None);

    let c = read(data.path().join("training/csat.parquet"));
    assert_eq!(
        strs(&c, SOURCE_ID),
        ["fb-1", "fb-2", "fb-3", "ab-1", "ab-2", "ab-3"].map(|s| Some(s.to_string()))
    );
    // Two A/B rows share resp-1: the feedback rows are not multiplied, and take
    // the earliest A/B row's predicted quality.
    assert_eq!(
        nums(&c, QUALITY_SCORE),
        [
            Some(0.8),
            Some(0.8),
            Some(0.6),
            Some(0.8),
            Some(0.85),
            Some(0.6)
        ]
    );
    assert_eq!(
        nums(&c, CSAT_SCORE),
        [Some(0.9), Some(0.7), Some(0.4), Some(0.75), Some(0.9), None]
    );
    assert_eq!(
        nums(&c, RESPONSE_TIME_MS),
        [Some(1200.0), None, Some(800.0), None, None, None]
    );
    assert_eq!(
        strs(&c, ACTION_TYPE)[..4],
        [
            Some("combat".into()),
            Some("combat".into()),
            Some("lore".into()),
            None
        ]
    );
    assert_eq!(strs(&c, SESSION_ID)[0].as_deref(), Some("sess-1"));

    let p = read(data.path().join("training/performance.parquet"));
    assert_eq!(
        strs(&p, MODEL_NAME),
        ["prompt-v2", "prompt-v2", "temp-0.3"].map(|s| Some(s.to_string()))
    );
    assert_eq!(nums(&p, PREDICTION), [Some(0.8), Some(0.85), Some(0.6)]);
    assert_eq!(nums(&p, ACTUAL), [Some(0.75), Some(0.9), None]);
    let cols: Vec<String> = p.get_column_names().iter().map(|s| s.to_string()).collect();
    let want: Vec<String> = contract::Dataset::Performance
        .columns()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(cols, want);
}

#[test]
fn synth_rows_become_datasets() {
    let data = tempdir().unwrap();
    synth(data.path(), 500, 0.0);
    let out = stdout(&stage("transform", data.path(), &[]));
    assert!(out.contains("quality") && out.contains("500 rows"), "{out}");
    assert_eq!(
        read(data.path().join("training/quality.parquet")).height(),
        500
    );
    assert_eq!(
        read(data.path().join("training/csat.parquet")).height(),
        1000
    );
    assert_eq!(
        read(data.path().join("training/performance.parquet")).height(),
        500
    );
    let q = read(data.path().join("training/quality.parquet"));
    let scores: Vec<f64> = nums(&q, QUALITY_SCORE).into_iter().flatten().collect();
    assert!(scores.iter().all(|s| (0.0..=100.0).contains(s)));
    assert!(scores.iter().any(|s| *s > 1.0), "scores are on 0-100");
    assert!(
        nums(&q, CSAT).iter().any(Option::is_some),
        "some explanations have csat"
    );
}

#[test]
fn refuses_to_mix_synthetic_and_real_rows() {
    let data = tempdir().unwrap();
    extract_fixtures(data.path());
    // Replace one table with synthetic rows.
    let synth_dir = tempdir().unwrap();
    synth(synth_dir.path(), 50, 0.0);
    let table = data.path().join("raw/ai_gm_ab_testing");
    fs::remove_dir_all(&table).unwrap();
    fs::create_dir_all(&table).unwrap();
    fs::copy(
        synth_dir
            .path()
            .join("raw/ai_gm_ab_testing/part-000000.parquet"),
        table.join("part-000000.parquet"),
    )
    .unwrap();
    let (code, err) = fails(bin("transform").args(["--data", data.path().to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "refusing to mix synthetic rows (_source = synth) with real rows (_source = csv)"
        ),
        "{err}"
    );
    assert!(!data.path().join("training").exists(), "no partial output");
    stage("transform", data.path(), &["--allow-mixed"]);
    assert_eq!(
        read(data.path().join("training/performance.parquet")).height(),
        50
    );
}

#[test]
fn missing_or_corrupt_raw_data_is_one_clear_error() {
    let data = tempdir().unwrap();
    let (code, err) = fails(bin("transform").args(["--data", data.path().to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(
        err.contains("raw/ai_gm_explanations: not found (run `extract` or `synth` first)"),
        "{err}"
    );

    synth(data.path(), 50, 0.0);
    let part = data
        .path()
        .join("raw/ai_gm_quality_feedback/part-000000.parquet");
    fs::write(&part, b"PAR1 this is not parquet").unwrap();
    let (code, err) = fails(bin("transform").args(["--data", data.path().to_str().unwrap()]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("part-000000.parquet: not a readable Parquet file"),
        "{err}"
    );
    assert!(!data.path().join("training").exists(), "no partial output");

    // A corrupt page behind a sound footer fails inside the streamed plan,
    // whose errors name no file: the part is still named, on both engines.
    let data = tempdir().unwrap();
    synth(data.path(), 20_000, 0.0);
    let part = data
        .path()
        .join("raw/ai_gm_quality_feedback/part-000000.parquet");
    let mut bytes = fs::read(&part).unwrap();
    let third = bytes.len() / 3;
    bytes[third..third + 2000].fill(0xAB);
    fs::write(&part, bytes).unwrap();
    for engine in ["streaming", "in-memory"] {
        let (code, err) = fails(bin("transform").args([
            "--data",
            data.path().to_str().unwrap(),
            "--engine",
            engine,
        ]));
        assert_eq!(code, 1, "{engine}");
        assert_eq!(error_lines(&err).len(), 1, "{engine}: {err}");
        assert!(
            err.contains("ai_gm_quality_feedback/part-000000.parquet: not a readable Parquet file"),
            "{engine}: {err}"
        );
        assert!(!data.path().join("training").exists(), "no partial output");
    }
}

#[test]
fn wrong_column_type_names_file_and_column() {
    use polars::prelude::*;
    let data = tempdir().unwrap();
    synth(data.path(), 50, 0.0);
    let part = data.path().join("raw/ai_gm_ab_testing/part-000000.parquet");
    let mut df = read(&part);
    let as_text = df
        .column(USER_RATING)
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    df.with_column(as_text).unwrap();
    contract::io::write_parquet(&mut df, &part).unwrap();
    let (_, err) = fails(bin("transform").args(["--data", data.path().to_str().unwrap()]));
    assert!(
        err.contains("column `user_rating` has type str, expected f64"),
        "{err}"
    );
    assert!(
        err.contains("ai_gm_ab_testing/part-000000.parquet"),
        "{err}"
    );
}

/// The streaming engine (the default) gives the same three datasets as the
/// in-memory one, row for row and bit for bit: on the fixtures' edge cases,
/// and on messy synthetic rows spread over several raw parts (run twice: a
/// streamed mean once moved the last bit of a csat from run to run).
#[test]
fn streamed_datasets_equal_in_memory_ones() {
    let fixtures = tempdir().unwrap();
    extract_fixtures(fixtures.path());
    let parts = tempdir().unwrap();
    ok(bin("synth").args([
        "--data",
        parts.path().to_str().unwrap(),
        "--rows",
        "3000",
        "--chunk-rows",
        "1000",
        "--seed",
        "11",
        "--now",
        NOW,
        "--messy",
        "0.1",
    ]));
    assert_eq!(
        files(&parts.path().join("raw/ai_gm_explanations")).len(),
        3,
        "several parts"
    );
    for data in [fixtures.path(), parts.path()] {
        let datasets = ["quality", "csat", "performance"];
        let built = |engine: &str| {
            stage("transform", data, &["--engine", engine]);
            datasets.map(|d| {
                let path = data.join(format!("training/{d}.parquet"));
                // Ordinary files, readable by others, whichever engine wrote them.
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &fs::metadata(&path).unwrap().permissions(),
                );
                assert_eq!(mode & 0o044, 0o044, "{engine}: {d}: mode {mode:o}");
                read(path)
            })
        };
        let in_memory = built("in-memory");
        let streamed = [built("streaming"), built("streaming")].concat();
        let twice = in_memory.iter().chain(&in_memory);
        for ((name, a), b) in datasets.iter().cycle().zip(twice).zip(&streamed) {
            assert!(a.height() > 0, "{name}: rows");
            assert_eq!(a.schema(), b.schema(), "{name}: schema");
            for (x, y) in a.columns().iter().zip(b.columns()) {
                assert!(
                    x.equals_missing(y),
                    "{name}.{}: the streamed values differ from the in-memory ones\n{x:?}\n{y:?}",
                    x.name()
                );
            }
        }
    }
}
