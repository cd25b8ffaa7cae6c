use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use contract::io;
use polars::prelude::*;

/// Where the stage binaries of this test's build profile are: target/<profile>.
/// `make` in the repository root, as a user runs it: without a surrounding
/// make's MAKEFLAGS, nor the variables cargo sets for a test binary. A nested
/// `cargo build` (make's build target) would see those as changes to what
/// build scripts watch (ring watches CARGO_MANIFEST_DIR and CARGO_PKG_NAME)
/// and rebuild ring, rustls, reqwest and all of polars: minutes per test run.
pub fn make() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Command::new("make");
    cmd.current_dir(root)
        .arg("--no-print-directory")
        .env_remove("MAKEFLAGS");
    let set_by_cargo = |name: &str| {
        name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO",
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name)
    };
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `make <target>` on synthetic data in `data`, with this build's binaries
/// and no database configured.
pub fn make_synth(target: &str, data: &Path, extra: &[&str]) -> Command {
    let mut cmd = make();
    cmd.arg(target)
        .arg(format!("DATA={}", data.display()))
        .arg(format!("BIN={}", bin_dir().display()))
        .args(extra)
        .env_remove("SUPABASE_URL")
        .env_remove("DATABASE_URL");
    cmd
}

pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// A stage binary from the same build profile as this test.
pub fn bin(name: &str) -> Command {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --release --bins` (make test does)",
        path.display()
    );
    let mut cmd = Command::new(path);
    // Tests never reach a real database by accident.
    for var in contract::secrets::SECRET_VARS
        .into_iter()
        .chain([contract::secrets::SUPABASE_URL])
    {
        cmd.env_remove(var);
    }
    cmd
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs a command and returns its output, panicking with stderr when it fails.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run binary");
    assert!(
        out.status.success(),
        "{:?} failed with {}:\nstdout: {}\nstderr: {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command expected to fail; returns (exit code, stderr).
pub fn fails(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run binary");
    assert!(
        !out.status.success(),
        "{:?} should have failed:\nstdout: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read(path: impl AsRef<Path>) -> DataFrame {
    io::read_parquet(path.as_ref()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn strs(df: &DataFrame, column: &str) -> Vec<Option<String>> {
    df.column(column)
        .unwrap_or_else(|_| panic!("column {column}"))
        .cast(&DataType::String)
        .expect("cast to text")
        .str()
        .expect("text")
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

pub fn nums(df: &DataFrame, column: &str) -> Vec<Option<f64>> {
    df.column(column)
        .unwrap_or_else(|_| panic!("column {column}"))
        .cast(&DataType::Float64)
        .expect("cast to f64")
        .f64()
        .expect("f64")
        .iter()
        .collect()
}

/// `predict --model MODEL --input INPUT --output OUTPUT`.
pub fn predict_command(model: &Path, input: &Path, output: &Path) -> Command {
    let mut cmd = bin("predict");
    cmd.arg("--model")
        .arg(model)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output);
    cmd
}

/// Asserts that no Parquet file is under `dir`: a stage that failed wrote nothing.
#[track_caller]
pub fn assert_no_parquet(dir: &Path) {
    let files = files(dir);
    assert!(
        files.iter().all(|f| !f.ends_with(".parquet")),
        "a failed run left Parquet files: {files:?}"
    );
}

/// Every file under `dir`, relative, sorted, through output links (not the
/// generations behind them).
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                // The generations behind the output links: each of their
                // files is listed once, at the path that shows it.
                if dir == root && (e.file_name() == ".gen" || e.file_name() == ".current") {
                    continue;
                }
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The fixed "now" of synthetic data (and of validate's future check) in tests.
pub const NOW: &str = "2026-01-15T12:00:00Z";

/// synth with fixed time, seed and rows into `data`.
pub fn synth(data: &Path, rows: usize, messy: f64) -> Output {
    synth_seeded(data, rows, "7", messy)
}

/// synth with fixed time and the given seed and rows into `data`.
pub fn synth_seeded(data: &Path, rows: usize, seed: &str, messy: f64) -> Output {
    ok(bin("synth").args([
        "--data",
        data.to_str().unwrap(),
        "--rows",
        &rows.to_string(),
        "--seed",
        seed,
        "--now",
        NOW,
        "--messy",
        &messy.to_string(),
    ]))
}

pub fn stage(name: &str, data: &Path, extra: &[&str]) -> Output {
    let mut cmd = bin(name);
    cmd.args(["--data", data.to_str().unwrap()]).args(extra);
    ok(&mut cmd)
}

/// Every id in every part file of a raw table.
pub fn raw_ids(data: &Path, table: &str) -> Vec<String> {
    let dir = data.join("raw").join(table);
    files(&dir)
        .into_iter()
        .flat_map(|part| strs(&read(dir.join(part)), contract::columns::ID))
        .flatten()
        .collect()
}

/// Each of the three raw tables holds `n` rows, each id once.
pub fn assert_every_raw_row_once(data: &Path, n: usize) {
    for table in [
        "ai_gm_explanations",
        "ai_gm_quality_feedback",
        "ai_gm_ab_testing",
    ] {
        let ids = raw_ids(data, table);
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            n,
            "{table}: every row once"
        );
        assert_eq!(ids.len(), n);
    }
}

/// The three model folders were written.
pub fn assert_models_trained(data: &Path) {
    for model in ["quality", "csat", "performance"] {
        let card = data.join("models").join(model).join("model.json");
        assert!(card.exists(), "{} missing", card.display());
    }
}

/// `models promote`: make `version` the champion of `model` (a rollback).
pub fn promote_command(data: &Path, model: &str, version: &str) -> Command {
    let mut cmd = bin("models");
    cmd.args([
        "--data",
        data.to_str().unwrap(),
        "promote",
        "--model",
        model,
        "--version",
        version,
    ]);
    cmd
}

/// The command `extract --source csv` on a folder of exports, with `extra`
/// flags, for a test that expects it to fail.
pub fn extract_csv_command(data: &Path, exports: &Path, extra: &[&str]) -> Command {
    let mut cmd = bin("extract");
    cmd.args(["--data", data.to_str().unwrap()])
        .args(["--source", "csv", "--input", exports.to_str().unwrap()])
        .args(extra);
    cmd
}

/// extract --source csv on a folder of exports, with `extra` flags.
pub fn extract_csv(data: &Path, exports: &Path, extra: &[&str]) -> Output {
    ok(&mut extract_csv_command(data, exports, extra))
}

/// extract --source csv on the hand-written fixture exports.
pub fn extract_fixtures(data: &Path) -> Output {
    extract_csv(data, &fixtures().join("csv"), &[])
}

/// The lines of stderr that report an error (progress and notes are other lines).
pub fn error_lines(err: &str) -> Vec<&str> {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
    for line in &lines {
        assert_causes_once(line);
    }
    lines
}

/// An error line says each cause once: no run of ": "-separated parts is
/// followed by the same run again ("x: not a readable Parquet file: E: E").
fn assert_causes_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").collect();
    for len in 1..=parts.len() / 2 {
        for at in 0..=parts.len() - 2 * len {
            assert!(
                parts[at..at + len] != parts[at + len..at + 2 * len],
                "a cause said twice in {line:?}"
            );
        }
    }
}

/// The stages' reports, read into the contract's types (a field renamed or
/// retyped breaks the test that reads it, not only the stage that writes it).
pub fn extract_report(data: &Path) -> contract::reports::ExtractReport {
    read_report(&contract::Layout::new(data).extract_report())
}

pub fn validation_report(data: &Path) -> contract::reports::ValidationReport {
    read_report(&contract::Layout::new(data).validation_report())
}

pub fn training_report(data: &Path) -> contract::reports::TrainingReport {
    read_report(&contract::Layout::new(data).training_report())
}

pub fn insights_report(data: &Path) -> contract::reports::InsightsReport {
    read_report(&contract::Layout::new(data).insights_report())
}

/// A champion's card (`models/<model>/model.json`): the fields other stages read.
pub fn model_card(data: &Path, model: &str) -> contract::registry::CardSummary {
    contract::registry::CardSummary::read(&data.join("models").join(model))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn read_report<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    io::read_json(path).unwrap_or_else(|e| panic!("{e}"))
}
