//! Long work shows progress: bars on a terminal (a pseudo-terminal here,
//! through util-linux's `script`), plain lines in a log, nothing with --quiet.

use std::process::{Command, Stdio};

use tempfile::tempdir;

use crate::common::*;

fn validated(rows: usize) -> tempfile::TempDir {
    let data = tempdir().unwrap();
    synth(data.path(), rows, 0.0);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    data
}

#[test]
fn on_a_terminal_train_draws_its_rounds_before_it_ends() {
    let data = validated(3000);
    let train = format!(
        "{} --data {} --seed 3",
        bin_dir().join("train").display(),
        data.path().display()
    );
    // `script` runs train on a pseudo-terminal and copies the screen to its stdout.
    let out = Command::new("script")
        .args(["-qefc", &train, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) is installed");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let bar = screen
        .find("rounds (model selection, fold 1/3)")
        .unwrap_or_else(|| panic!("no progress bar on the terminal:\n{screen}"));
    let summary = screen.find("baseline RMSE").expect("train's summary");
    assert!(
        bar < summary,
        "the bar shows while train works, before its summary"
    );
    assert!(screen.contains("train: csat (6000 rows)"), "{screen}");
    assert!(screen.contains('\x1b'), "a terminal gets a drawn bar");
}

#[test]
fn off_a_terminal_progress_is_a_few_plain_lines_and_quiet_silences_it() {
    let data = validated(1500);
    let out = ok(bin("train").args(["--data", data.path().to_str().unwrap(), "--seed", "3"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("train: csat (3000 rows): started, 400 rounds to go"),
        "{err}"
    );
    assert!(
        err.contains("train: csat (3000 rows): done, 400 rounds in"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "no escape codes in a log: {err:?}"
    );
    assert!(
        err.lines().count() <= 12,
        "a few lines, not one per round: {err}"
    );

    let out = ok(bin("transform").args(["--data", data.path().to_str().unwrap()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("transform: raw tables -> datasets: done, 6 steps"),
        "{err}"
    );

    let out = ok(bin("train").args(["--data", data.path().to_str().unwrap(), "--quiet"]));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "--quiet");
    // --quiet never hides an error.
    let empty = tempdir().unwrap();
    let (code, err) =
        fails(bin("train").args(["--data", empty.path().to_str().unwrap(), "--quiet"]));
    assert_eq!(code, 1);
    assert!(err.contains("train: error:"), "{err}");
}
