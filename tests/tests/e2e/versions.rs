//! Models over time: every train run makes a version; the gate promotes only
//! a better one; rollback restores a kept version bit for bit; held-out rows
//! stay held out; every run is a line of history; drift is flagged.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use contract::columns::{SOURCE_ID, SOURCE_TABLE};
use contract::drift::{DriftLevel, DriftReport};
use contract::history::{self, RunEvent};
use contract::reports::TrainingReport;
use tempfile::tempdir;

use crate::common::*;

const MODELS: [&str; 3] = ["quality", "csat", "performance"];

/// CSV exports of `rows` synthetic rows per table over 30 days before NOW.
fn exports(dir: &Path, rows: usize, messy: f64) -> PathBuf {
    let out = dir.join(format!("exports-{rows}-{messy}"));
    ok(bin("synth").args([
        "--rows",
        &rows.to_string(),
        "--seed",
        "7",
        "--now",
        NOW,
        "--messy",
        &messy.to_string(),
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ]));
    out
}

/// extract (the last `days` days of the exports), transform, validate, train;
/// returns train's stdout.
fn run(data: &Path, exports: &Path, days: &str, train: &[&str]) -> String {
    extract_csv(data, exports, &["--days", days, "--now", NOW]);
    stage("transform", data, &[]);
    stage("validate", data, &["--now", NOW]);
    let mut args = vec!["--seed", "3"];
    args.extend(train);
    stdout(&stage("train", data, &args))
}

fn training(data: &Path) -> TrainingReport {
    serde_json::from_str(&fs::read_to_string(data.join("reports/training.json")).unwrap()).unwrap()
}

fn drift_report(data: &Path) -> DriftReport {
    serde_json::from_str(&fs::read_to_string(data.join("reports/drift.json")).unwrap()).unwrap()
}

fn promoted(data: &Path, model: &str) -> bool {
    training(data).models[model]
        .promotion
        .as_ref()
        .unwrap()
        .promoted
}

fn champion(data: &Path, model: &str) -> String {
    fs::read_link(data.join("models").join(model))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// predict with the champion of `model` on a fixed input; the output's bytes.
fn predict(data: &Path, model: &str, input: &Path) -> Vec<u8> {
    let out = data.join(format!("predicted-{model}.csv"));
    ok(&mut predict_command(
        &data.join("models").join(model),
        input,
        &out,
    ));
    fs::read(&out).unwrap()
}

fn keys(path: &Path) -> HashSet<(String, String)> {
    let df = read(path);
    strs(&df, SOURCE_TABLE)
        .into_iter()
        .zip(strs(&df, SOURCE_ID))
        .map(|(t, i)| (t.unwrap(), i.unwrap()))
        .collect()
}

/// The kept versions of `model`, as `v0001/model.json`.
fn kept(data: &Path, model: &str) -> Vec<String> {
    files(&data.join("models/versions").join(model))
        .into_iter()
        .filter(|f| f.ends_with("model.json"))
        .collect()
}

fn version_dir(data: &Path, model: &str, version: &str) -> PathBuf {
    data.join("models/versions").join(model).join(version)
}

#[test]
fn the_tolerance_is_spent_once_over_a_run_of_promotions() {
    let work = tempdir().unwrap();
    let exports = exports(work.path(), 9000, 0.0);
    let data = work.path().join("data");
    // v0001 on thirty days; v0002 on two, worse on rows neither trained on,
    // promoted under a tolerance wide enough: it stands behind by its ratio.
    run(&data, &exports, "30", &[]);
    let second = run(&data, &exports, "2", &["--tolerance", "1"]);
    let mut lags = Vec::new();
    for m in MODELS {
        let p = training(&data).models[m].promotion.clone().unwrap();
        assert!(p.promoted, "{m}: {}\n{second}", p.reason);
        let ratio = p.rmse / p.champion_rmse.unwrap();
        assert!(ratio > 1.0, "{m}: two days are worse than thirty: {p:?}");
        assert_eq!(p.cumulative_ratio, Some(ratio), "{m}");
        assert!(p.reason.ends_with("% of it used)"), "{m}: {}", p.reason);
        // The version's card keeps it: the next run reads it from there.
        let card: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(version_dir(&data, m, "v0002").join("model.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            card["lineage"]["promotion"]["cumulative_ratio"].as_f64(),
            Some(ratio),
            "{m}"
        );
        lags.push(ratio);
    }
    // The same two days again make the same models: no worse than v0002
    // (ratio 1), so within any tolerance alone; but with a tolerance below
    // what v0002 already trails by, refused, one model at a time.
    for (m, lag) in MODELS.iter().zip(lags) {
        let tolerance = ((lag - 1.0) / 2.0).to_string();
        let out = run(
            &data,
            &exports,
            "2",
            &["--only", m, "--tolerance", &tolerance],
        );
        let p = training(&data).models[*m].promotion.clone().unwrap();
        assert_eq!(p.rmse, p.champion_rmse.unwrap(), "{m}: the same model");
        assert!(!p.promoted, "{m}: {}\n{out}", p.reason);
        assert!(
            p.reason
                .contains("within the tolerance alone, but v0002 was itself promoted"),
            "{m}: {}",
            p.reason
        );
        assert!(
            p.reason
                .starts_with("the same model as champion v0002, retrained on unchanged data: RMSE"),
            "{m}: {}",
            p.reason
        );
        assert_eq!(champion(&data, m), "v0002");
        // The full tolerance would have let it through.
        let out = run(&data, &exports, "2", &["--only", m, "--tolerance", "1"]);
        assert!(promoted(&data, m), "{m}\n{out}");
    }
}

#[test]
fn only_a_better_version_is_promoted_and_a_rollback_restores_the_old_predictions() {
    let work = tempdir().unwrap();
    let exports = exports(work.path(), 9000, 0.0);
    let data = work.path().join("data");
    // Fixed inputs for predict: the 30-day clean datasets.
    let inputs = work.path().join("inputs");
    fs::create_dir_all(&inputs).unwrap();

    // Run 1: two days of data. The first version is promoted when it beats its baselines.
    let first = run(&data, &exports, "2", &[]);
    for m in MODELS {
        assert!(promoted(&data, m), "{m}: first version\n{first}");
        assert_eq!(champion(&data, m), "v0001");
    }
    assert!(
        first.contains("v0001 promoted to champion: first version"),
        "{first}"
    );

    // Run 2: thirty days. Clearly better on rows neither trained on: promoted.
    let second = run(&data, &exports, "30", &[]);
    for m in MODELS {
        fs::copy(
            data.join("clean").join(format!("{m}.parquet")),
            inputs.join(format!("{m}.parquet")),
        )
        .unwrap();
    }
    let mut before = Vec::new();
    for m in MODELS {
        let p = training(&data).models[m].promotion.clone().unwrap();
        assert!(p.promoted, "{m}: {}\n{second}", p.reason);
        assert!(p.reason.contains("vs champion v0001's"), "{}", p.reason);
        assert!(p.rmse < p.champion_rmse.unwrap(), "{m}: {p:?}");
        assert_eq!(champion(&data, m), "v0002");
        before.push(predict(&data, m, &inputs.join(format!("{m}.parquet"))));
    }
    let v1_predictions = {
        // The same rows through v0001, for the rollback below.
        let out = work.path().join("v1.csv");
        ok(&mut predict_command(
            &version_dir(&data, "csat", "v0001"),
            &inputs.join("csat.parquet"),
            &out,
        ));
        fs::read(out).unwrap()
    };
    // A row held out in run 1 is held out in run 2, never trained on.
    for m in MODELS {
        let held1 = keys(&version_dir(&data, m, "v0001").join("holdout.parquet"));
        let held2 = keys(&version_dir(&data, m, "v0002").join("holdout.parquet"));
        let all2 = keys(&data.join("clean").join(format!("{m}.parquet")));
        let trained2: HashSet<_> = all2.difference(&held2).collect();
        assert!(!held1.is_empty());
        for k in &held1 {
            assert!(all2.contains(k), "{m}: {k:?} is in the 30 days");
            assert!(
                !trained2.contains(k),
                "{m}: {k:?} held out in run 1, trained on in run 2"
            );
        }
    }

    // Run 3: two days again, a weak challenger. Not promoted, exit 0, the
    // champion and its predictions unchanged.
    let third = run(&data, &exports, "2", &[]);
    for (i, m) in MODELS.iter().enumerate() {
        let p = training(&data).models[*m].promotion.clone().unwrap();
        assert!(!p.promoted, "{m}: {}\n{third}", p.reason);
        assert!(
            p.reason.contains("is worse than champion v0002's"),
            "{}",
            p.reason
        );
        assert_eq!(champion(&data, m), "v0002");
        assert!(
            version_dir(&data, m, "v0003").join("model.json").exists(),
            "kept"
        );
        assert_eq!(
            predict(&data, m, &inputs.join(format!("{m}.parquet"))),
            before[i],
            "{m}: predictions changed with a refused promotion"
        );
    }
    assert!(
        third.contains("csat v0003 kept, not promoted: RMSE"),
        "{third}"
    );

    // --promote never keeps the champion even for a better version; always forces.
    let never = run(&data, &exports, "30", &["--promote", "never"]);
    assert!(never.contains("refused (--promote never)"), "{never}");
    assert_eq!(champion(&data, "csat"), "v0002");

    // Rollback: v0001 again, bit for bit; then back to v0002.
    let make = |model: &str, version: &str| {
        let mut cmd = make();
        cmd.args(["rollback"])
            .arg(format!("DATA={}", data.display()))
            .arg(format!("BIN={}", bin_dir().display()))
            .arg(format!("MODEL={model}"))
            .arg(format!("VERSION={version}"));
        ok(&mut cmd)
    };
    let said = stdout(&make("csat", "v0001"));
    assert!(said.contains("csat champion is now v0001"), "{said}");
    assert_eq!(champion(&data, "csat"), "v0001");
    assert_eq!(
        predict(&data, "csat", &inputs.join("csat.parquet")),
        v1_predictions
    );
    make("csat", "v0002");
    assert_eq!(
        predict(&data, "csat", &inputs.join("csat.parquet")),
        before[1]
    );
    // A version that is not kept is refused, naming the kept ones (run 3 made
    // v0001's model again: v0003, a copy between v0001 and the champion's
    // model, went when run 4 made v0004).
    let (code, err) = fails(&mut promote_command(&data, "csat", "v0042"));
    assert_eq!(code, 1);
    assert!(
        err.contains("no such version of the csat model (kept: v0001, v0002, v0004)"),
        "{err}"
    );

    // One history line per run and per rollback, in order.
    let lines = history::read(&data.join("reports/history.jsonl")).unwrap();
    let events: Vec<RunEvent> = lines.iter().map(|r| r.event).collect();
    use RunEvent::{Rollback, Train};
    assert_eq!(events, [Train, Train, Train, Train, Rollback, Rollback]);
    assert_eq!(
        lines[1].models["csat"]
            .champion
            .map(|v| v.to_string())
            .as_deref(),
        Some("v0001")
    );
    assert!(lines[1].models["csat"].promoted && !lines[2].models["csat"].promoted);
    assert!(lines[2].models["csat"].rmse.unwrap() > lines[2].models["csat"].champion_rmse.unwrap());
    assert!(lines.iter().all(|l| !l.run_id.is_empty()));
    assert_eq!(lines[0].source.as_deref(), Some("csv"));
    assert!(lines[1].datasets["csat"].clean > lines[0].datasets["csat"].clean);

    // models lists the kept versions, newest first, the champion marked,
    // each with its held-out metrics and the gate's reason.
    let list = stdout(&ok(bin("models").args([
        "--data",
        data.to_str().unwrap(),
        "list",
    ])));
    let csat: Vec<&str> = list
        .lines()
        .skip_while(|l| *l != "csat: 3 kept")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(csat.len(), 3, "{list}");
    for (line, start) in csat
        .iter()
        .zip(["    v0004  ", "  * v0002  ", "    v0001  "])
    {
        assert!(line.starts_with(start), "{start:?}: {list}");
        assert!(
            line.contains(" RMSE 0.") && line.contains(" R2 0."),
            "{list}"
        );
    }
    assert!(
        csat[0].contains(
            "  (same model as v0002) refused (--promote never): the same model as champion \
             v0002, retrained on unchanged data: RMSE"
        ),
        "{list}"
    );
    let empty = work.path().join("no-data");
    // --data is taken after the subcommand too, where users write it.
    let said = stdout(&ok(bin("models").args([
        "list",
        "--data",
        empty.to_str().unwrap(),
    ])));
    assert!(
        said.starts_with("quality: 0 kept")
            && said.contains("no-data/models yet; run `make train`"),
        "{said}"
    );

    // status shows the champions, the last runs.
    let status = stdout(&stage("status", &data, &[]));
    assert!(status.contains("csat         v0002"), "{status}");
    assert!(status.contains("last runs (6 in"), "{status}");
    // The hand promotions came after the last train run: status says where
    // they left the champion, for csat only.
    assert!(
        status.contains("then by hand: rolled forward to v0002 (was v0001), "),
        "{status}"
    );
    assert_eq!(status.matches("then by hand:").count(), 1, "{status}");
    // The report shows the gate's decisions and the history.
    stage("report", &data, &[]);
    let html = fs::read_to_string(data.join("reports/report.html")).unwrap();
    assert!(html.contains("id=\"promotions\"") && html.contains("id=\"runs\""));
    assert!(html.contains("data-chart=\"history-rmse\""));
}

#[test]
fn retention_keeps_the_newest_versions_and_always_the_champion() {
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    run(
        &data,
        &exports(work.path(), 3000, 0.0),
        "30",
        &["--only", "csat"],
    );
    // New data each time (more messy rows rejected), so four distinct models.
    for messy in [0.01, 0.02, 0.03] {
        run(
            &data,
            &exports(work.path(), 3000, messy),
            "30",
            &["--only", "csat", "--promote", "never", "--keep", "2"],
        );
    }
    let kept = kept(&data, "csat");
    assert_eq!(
        kept,
        ["v0001/model.json", "v0003/model.json", "v0004/model.json"],
        "the two newest and the champion"
    );
    assert_eq!(champion(&data, "csat"), "v0001");
}

#[test]
fn retrains_on_unchanged_data_do_not_push_the_older_models_out() {
    // A quiet week: the daily retrain sees no new rows, so each run makes the
    // same model again. The version before the quiet week stays, for a rollback.
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    let quiet = exports(work.path(), 3000, 0.02);
    run(
        &data,
        &exports(work.path(), 3000, 0.0),
        "30",
        &["--only", "csat"],
    );
    let input = work.path().join("csat.parquet");
    fs::copy(data.join("clean/csat.parquet"), &input).unwrap();
    let before = predict(&data, "csat", &input);
    let mut said = String::new();
    for _ in 0..4 {
        said += &run(
            &data,
            &quiet,
            "30",
            &["--only", "csat", "--promote", "always", "--keep", "2"],
        );
    }
    let kept = kept(&data, "csat");
    assert_eq!(
        kept,
        ["v0001/model.json", "v0002/model.json", "v0005/model.json"],
        "v0003 and v0004, copies of v0002, removed; v0001 kept"
    );
    assert_eq!(champion(&data, "csat"), "v0005");
    assert!(
        said.contains("train: csat v0003 removed: the same model as v0002, which stays"),
        "{said}"
    );
    // The gate says when the new version is its champion made again, and
    // only then (v0002 learnt from other rows than v0001).
    assert!(
        said.contains(
            "train: csat v0003 promoted to champion: forced (--promote always): the same \
             model as champion v0002, retrained on unchanged data: RMSE "
        ),
        "{said}"
    );
    assert_eq!(
        said.matches("the same model as champion").count(),
        3,
        "{said}"
    );
    let history = history::read(&data.join("reports/history.jsonl")).unwrap();
    assert_eq!(history.len(), 5, "every run is still in the history");
    // models says which kept versions are one model, and a promotion
    // between them that it changes nothing.
    let list = stdout(&ok(bin("models").args([
        "list",
        "--data",
        data.to_str().unwrap(),
    ])));
    let line = |v: &str| {
        list.lines()
            .find(|l| l.contains(&format!(" {v}  ")))
            .unwrap_or_else(|| panic!("{v}: {list}"))
            .to_string()
    };
    assert!(line("v0005").contains("(same model as v0002) "), "{list}");
    assert!(!line("v0002").contains("(same model as"), "{list}");
    assert!(!line("v0001").contains("(same model as"), "{list}");
    let said = stdout(&ok(&mut promote_command(&data, "csat", "v0002")));
    assert!(
        said.contains("(was v0005, the same model: predictions do not change)"),
        "{said}"
    );
    let runs = history::read(&data.join("reports/history.jsonl")).unwrap();
    assert!(runs[5].models["csat"].same_as_champion, "{:?}", runs[5]);
    assert!(runs[4].models["csat"].same_as_champion && !runs[1].models["csat"].same_as_champion);
    ok(&mut promote_command(&data, "csat", "v0001"));
    assert_eq!(predict(&data, "csat", &input), before);
}

#[test]
fn every_run_and_rollback_has_a_history_id_of_its_own() {
    // Rollbacks a few milliseconds apart start in the same second; each
    // still gets its own id, and each version's card names exactly one line.
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    for messy in [0.0, 0.02] {
        run(
            &data,
            &exports(work.path(), 3000, messy),
            "30",
            &["--only", "csat", "--promote", "always"],
        );
    }
    // A version as users type it: `make rollback VERSION=1` means v0001.
    for version in ["v0001", "v0002", "1", "0002", "v1", "v0002"] {
        ok(&mut promote_command(&data, "csat", version));
    }
    let history = history::read(&data.join("reports/history.jsonl")).unwrap();
    assert_eq!(history.len(), 8);
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort in the order the runs happened");
    for (i, version) in ["v0001", "v0002"].into_iter().enumerate() {
        let card: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(version_dir(&data, "csat", version).join("model.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(card["lineage"]["run_id"], ids[i], "{version}");
    }
    // status lines the last runs up, suffixed ids or not (the last two lines
    // given ids of one second, so the shown ids differ in length whatever the
    // timing above).
    let path = data.join("reports/history.jsonl");
    let mut lines: Vec<serde_json::Value> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let n = lines.len();
    lines[n - 2]["run_id"] = "20991231T235959Z".into();
    lines[n - 1]["run_id"] = "20991231T235959Z-2".into();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(&path, text).unwrap();
    let status = stdout(&stage("status", &data, &[]));
    let runs: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with("last runs"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(runs.len(), 5, "{status}");
    let columns: HashSet<usize> = runs.iter().map(|l| l.find(" rollback ").unwrap()).collect();
    assert_eq!(columns.len(), 1, "{status}");
    // Each says which way the champion went: the promotes alternated v0001
    // and v0002, ending on v0002.
    assert!(
        runs[0].ends_with("clean rows -  csat rolled forward to v0002 (was v0001)"),
        "a rollback reads no data: {status}"
    );
    assert!(
        runs[1].ends_with("csat rolled back to v0001 (was v0002)"),
        "{status}"
    );
    stage("report", &data, &[]);
    let html = fs::read_to_string(data.join("reports/report.html")).unwrap();
    assert!(
        html.contains("csat rolled forward to v0002 (was v0001)")
            && html.contains("csat rolled back to v0001 (was v0002)"),
        "the report's runs table"
    );
}

#[test]
fn a_champion_that_cannot_be_loaded_is_replaced_on_its_baselines() {
    // A champion whose model file was cut short (a bad copy, a full disk
    // outside our commits): the next run cannot score it, so the gate judges
    // the new version on its baselines alone, and drift says why it has
    // nothing to compare with.
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    let exports = exports(work.path(), 3000, 0.0);
    // Named twice, trained once.
    run(&data, &exports, "30", &["--only", "csat,csat"]);
    assert_eq!(champion(&data, "csat"), "v0001");
    assert_eq!(kept(&data, "csat"), ["v0001/model.json"]);
    let status = stdout(&stage("status", &data, &[]));
    assert!(
        status.contains("csat         first training: no earlier champion to compare with"),
        "{status}"
    );
    let model = version_dir(&data, "csat", "v0001").join("lightgbm.txt");
    let text = fs::read_to_string(&model).unwrap();
    fs::write(&model, &text[..text.len() / 3]).unwrap();

    let said = stdout(&stage("train", &data, &["--seed", "3", "--only", "csat"]));
    assert!(
        said.contains("csat v0002 promoted to champion: champion v0001 cannot be loaded (")
            && said.contains("judged on baselines"),
        "{said}"
    );
    assert_eq!(champion(&data, "csat"), "v0002");
    let drift = drift_report(&data);
    assert_eq!(
        drift.datasets["csat"].note.as_deref(),
        Some("champion v0001 cannot be loaded, so nothing to compare with")
    );
    let status = stdout(&stage("status", &data, &[]));
    assert!(
        status.contains("csat         champion v0001 cannot be loaded, so nothing to compare with"),
        "{status}"
    );
}

/// Rewrites a column of a simple CSV export (no quoted fields) row by row.
fn edit_csv(path: &Path, edit: impl Fn(usize, &mut Vec<String>, &[&str])) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = vec![header.join(",")];
    for (i, line) in lines.enumerate() {
        assert!(!line.contains('"'), "a quoted field: {line}");
        let mut cells: Vec<String> = line.split(',').map(String::from).collect();
        edit(i, &mut cells, &header);
        out.push(cells.join(","));
    }
    fs::write(path, out.join("\n") + "\n").unwrap();
}

#[test]
fn an_unseen_provider_a_shifted_feature_and_a_reject_jump_are_flagged() {
    let work = tempdir().unwrap();
    let data = work.path().join("data");
    run(&data, &exports(work.path(), 3000, 0.0), "30", &[]);
    let drift = drift_report(&data);
    assert_eq!(
        drift.datasets["csat"].note.as_deref(),
        Some("first training: no earlier champion to compare with")
    );

    // The same game a month on: a third of the A/B rows from a new provider,
    // the A/B predictions 0.3 higher, and a broken widget (40% messy rows).
    let moved = exports(work.path(), 3000, 0.4);
    edit_csv(&moved.join("ai_gm_ab_testing.csv"), |i, cells, header| {
        let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
        if i % 3 == 0 {
            cells[at("provider")] = "newcorp".into();
        }
        if let Ok(v) = cells[at("predicted_quality")].parse::<f64>() {
            cells[at("predicted_quality")] = format!("{}", (v + 0.3).min(1.0));
        }
    });
    let out = run(&data, &moved, "30", &[]);
    let drift = drift_report(&data);
    let perf = &drift.datasets["performance"];
    assert_eq!(
        perf.champion.map(|v| v.to_string()).as_deref(),
        Some("v0001")
    );
    assert_eq!(perf.unseen_levels["provider"], ["newcorp"]);
    let prediction = perf
        .features
        .iter()
        .find(|f| f.feature == "prediction")
        .unwrap();
    assert!(
        prediction.psi > 0.2 && prediction.level == DriftLevel::Major,
        "{prediction:?}"
    );
    let provider = perf
        .features
        .iter()
        .find(|f| f.feature == "provider")
        .unwrap();
    assert!(provider.psi > 0.1, "{provider:?}");
    assert_eq!(perf.level, DriftLevel::Major);
    assert!(drift.datasets["csat"].unseen_levels["provider"].contains(&"newcorp".to_string()));
    let rejects = drift.datasets["quality"].reject_rate.clone().unwrap();
    assert!(rejects.jumped && rejects.current > 0.2, "{rejects:?}");
    // Unchanged features stay below the moderate line.
    let quality = &drift.datasets["quality"];
    assert!(quality.unseen_levels.is_empty(), "{quality:?}");
    assert!(
        out.contains("train: drift in performance: major shift")
            && out.contains("provider levels never seen by the champion: newcorp"),
        "{out}"
    );
    assert!(out.contains("reject rate jumped from"), "{out}");
    // In status, in the history and in the report.
    let status = stdout(&stage("status", &data, &[]));
    assert!(status.contains("new provider: newcorp"), "{status}");
    assert!(status.contains("REJECT RATE JUMPED"), "{status}");
    let lines = history::read(&data.join("reports/history.jsonl")).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].drift["performance"].level, DriftLevel::Major);
    assert!(
        lines[1].drift["performance"]
            .drifted
            .contains(&"prediction".to_string())
    );
    stage("report", &data, &[]);
    let html = fs::read_to_string(data.join("reports/report.html")).unwrap();
    assert!(
        html.contains("id=\"drift\"") && html.contains("provider: newcorp"),
        "drift table"
    );
}
