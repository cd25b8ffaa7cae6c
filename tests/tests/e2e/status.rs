//! `status` reads every report through the contract's types and says so when
//! one cannot be read, naming the file.

use std::fs;

use tempfile::tempdir;

use crate::common::*;

#[test]
fn status_summarises_every_layer_and_names_an_unreadable_report() {
    let data = tempdir().unwrap();
    let (code, err) = fails(bin("status").args(["--data", data.path().to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("no data yet; run `make pipeline`"), "{err}");

    synth(data.path(), 800, 0.02);
    // Raw data only: each later layer says which step makes it.
    let early = stdout(&stage("status", data.path(), &[]));
    for want in [
        "  csat         none yet (make transform)",
        "  csat         no champion yet (make train)",
        "report: none yet (run `make report` once validate has run)",
    ] {
        assert!(early.contains(want), "{want:?} not in:\n{early}");
    }
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--allow-small", "--now", NOW]);
    stage("train", data.path(), &[]);
    let out = stage("status", data.path(), &[]);
    let text = stdout(&out);
    for want in [
        "ai_gm_explanations             800 rows  sources synth",
        "last extraction:",
        "rejects: missing",
        "  quality      ",
        " R2 0.",
        "(1 version kept)",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    for (file, broken) in [
        ("reports/validation.json", "{\"validated_at\": 3"),
        ("reports/training.json", "not json"),
        ("clean/csat.parquet", "not parquet"),
        ("raw/ai_gm_ab_testing/part-000000.parquet", "PAR1 broken"),
    ] {
        let path = data.path().join(file);
        let good = fs::read(&path).unwrap();
        fs::write(&path, broken).unwrap();
        let (code, err) = fails(bin("status").args(["--data", data.path().to_str().unwrap()]));
        assert_eq!(code, 1, "{file}");
        assert_eq!(error_lines(&err).len(), 1, "{file}: {err}");
        assert!(err.contains(&path.display().to_string()), "{file}: {err}");
        fs::write(&path, good).unwrap();
    }
}

#[test]
fn status_into_a_closed_pipe_ends_quietly() {
    let dir = tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 300, 0.0);
    let mut child = bin("status")
        .args(["--data", data.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `status | head -0`: the reader is gone before status prints (it starts
    // by recovering and reading the data folder, milliseconds after spawn).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
