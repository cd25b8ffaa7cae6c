//! The bad-input corpus: every folder of `tests/corpus/` is one case, its
//! `args` the command (a stage and its flags; `{data}` and `{case}` are the
//! data folder and the case folder), `input/` and `data/` its files (`data/`
//! is laid over a data folder built by the `setup` stages), and `expect` the
//! exact outcome: `exit N`, `stderr TEXT`, `file PATH rows N`,
//! `report TABLE FIELD N` (in extract.json), and `unchanged` (a failed run
//! changes nothing in the data folder).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tempfile::tempdir;

use crate::common::*;

fn snapshot(data: &Path) -> BTreeMap<String, Vec<u8>> {
    files(data)
        .into_iter()
        .filter(|f| f != ".lock")
        .map(|f| {
            let bytes = fs::read(data.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

fn overlay(from: &Path, to: &Path) {
    for f in files(from) {
        let target = to.join(&f);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(from.join(&f), target).unwrap();
    }
}

fn run_case(case: &Path) {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let expect = fs::read_to_string(case.join("expect")).unwrap();
    let args = fs::read_to_string(case.join("args")).unwrap();
    let data = tempdir().unwrap();
    for line in expect.lines().filter(|l| l.starts_with("setup ")) {
        for stage_name in line.split_whitespace().skip(1) {
            match stage_name {
                "synth" => {
                    synth(data.path(), 600, 0.02);
                }
                "validate" => {
                    stage("validate", data.path(), &["--allow-small", "--now", NOW]);
                }
                other => {
                    stage(other, data.path(), &[]);
                }
            }
        }
    }
    if case.join("data").is_dir() {
        overlay(&case.join("data"), data.path());
    }
    let before = snapshot(data.path());
    let words: Vec<String> = args
        .split_whitespace()
        .map(|w| {
            w.replace("{data}", data.path().to_str().unwrap())
                .replace("{case}", case.to_str().unwrap())
        })
        .collect();
    let mut cmd = bin(&words[0]);
    if words[0] != "predict" {
        cmd.args(["--data", data.path().to_str().unwrap()]);
    }
    let out = cmd.args(&words[1..]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    for line in expect.lines() {
        let (what, rest) = line.split_once(' ').unwrap_or((line, ""));
        match what {
            "setup" => {}
            "exit" => {
                assert_eq!(
                    code.to_string(),
                    rest,
                    "{name}: exit code; stderr: {stderr}"
                );
                if code == 1 {
                    assert_eq!(
                        error_lines(&stderr).len(),
                        1,
                        "{name}: one error line: {stderr}"
                    );
                }
            }
            "stderr" => assert!(
                stderr.contains(rest),
                "{name}: {rest:?} not in stderr: {stderr}"
            ),
            "file" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let n: usize = parts[2].parse().unwrap();
                assert_eq!(
                    read(data.path().join(parts[0])).height(),
                    n,
                    "{name}: rows of {}",
                    parts[0]
                );
            }
            "report" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                // The corpus names the count; the report is read as its contract type.
                let report = extract_report(data.path());
                let counts = serde_json::to_value(&report.tables[parts[0]]).unwrap();
                assert_eq!(counts[parts[1]].to_string(), parts[2], "{name}: {rest}");
            }
            "unchanged" => assert!(
                before == snapshot(data.path()),
                "{name}: a failed run changed the data folder"
            ),
            other => panic!("{name}: unknown expectation `{other}`"),
        }
    }
}

#[test]
fn every_corpus_case_has_its_exact_outcome() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    for case in &cases {
        run_case(case);
    }
    eprintln!("corpus: {} cases", cases.len());
}
