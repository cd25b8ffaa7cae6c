use std::fs;
use std::path::{Path, PathBuf};

use contract::columns::*;
use polars::prelude::*;
use tempfile::tempdir;

use crate::browser::Browser;
use crate::common::*;

/// Every stage up to train on synthetic data, then the report.
fn reported(rows: usize, messy: f64) -> (tempfile::TempDir, String) {
    let data = tempdir().unwrap();
    synth(data.path(), rows, messy);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    stage("train", data.path(), &["--seed", "3"]);
    let out = stdout(&stage("report", data.path(), &[]));
    (data, out)
}

/// The charts every complete report has, by `data-chart`.
fn expected_charts() -> Vec<String> {
    let mut charts: Vec<String> = [
        "csat-by-quality-range",
        "csat-by-provider",
        "csat-by-model",
        "csat-by-action-type",
        "csat-by-day",
        "quality-by-provider-model",
        "quality-by-action-type",
        "calibration-bias",
        "calibration-before",
        "calibration-after",
    ]
    .map(String::from)
    .to_vec();
    for model in ["quality", "csat", "performance"] {
        for chart in ["candidates", "scatter", "residuals"] {
            charts.push(format!("{model}-{chart}"));
        }
    }
    charts
}

fn screenshots() -> PathBuf {
    bin_dir().parent().unwrap().join("report-screenshots")
}

/// The page in a real browser: every section and chart drawn, nothing
/// fetched from anywhere, no console error, legible at phone width.
#[test]
fn report_page_in_headless_chromium() {
    let (data, out) = reported(3000, 0.05);
    let html_path = data.path().join("reports/report.html");
    assert!(out.contains("report.html ("), "{out}");
    let html = fs::read_to_string(&html_path).unwrap();
    // Self-contained: no script, no stylesheet or image from elsewhere.
    for banned in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(banned), "report.html contains {banned}");
    }

    // The harness sees what it must catch: a console error, a failed fetch.
    let canary = data.path().join("canary.html");
    fs::write(
        &canary,
        "<!doctype html><img src='http://127.0.0.1:9/x.png'><script>console.error('canary')</script>",
    )
    .unwrap();
    let mut probe = Browser::launch();
    probe.open(&canary, 800);
    assert!(
        probe.errors().iter().any(|e| e.contains("canary")),
        "{:?}",
        probe.errors()
    );
    assert!(probe.requests().iter().any(|u| u.starts_with("http://")));
    drop(probe);

    let mut browser = Browser::launch();
    browser.open(&html_path, 1280);
    let sections = browser.eval(
        "['data','csat','models','calibration','synthetic-warning']\
         .filter(id => document.getElementById(id) !== null)",
    );
    assert_eq!(
        sections,
        serde_json::json!(["data", "csat", "models", "calibration", "synthetic-warning"])
    );
    // Each chart: an inline SVG, laid out with a real size, with shapes in it.
    let charts = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('figure.chart')].map(f => {
            const svg = f.querySelector('svg');
            const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
            const shapes = svg ? svg.querySelectorAll('rect,circle,polyline,path,line').length : 0;
            return [f.dataset.chart, [Math.round(r.width), Math.round(r.height), shapes]];
        }))",
    );
    for name in expected_charts() {
        let c = &charts[&name];
        assert!(
            c[0].as_u64().unwrap() > 300
                && c[1].as_u64().unwrap() > 100
                && c[2].as_u64().unwrap() > 5,
            "chart {name}: {c} (width, height, shapes) in {charts}"
        );
    }
    // The optimal range is called out and drawn highlighted.
    let callout = browser.eval("document.getElementById('optimal-synth').textContent");
    assert!(
        callout.as_str().unwrap().contains("Optimal quality range"),
        "{callout}"
    );
    // Rejected rows: a line per reason, with at most three examples each.
    let rejects = browser.eval(
        "[...document.querySelectorAll('details.rejects')].map(d =>
            [d.dataset.origin, d.dataset.reason, d.querySelectorAll('tr').length - 1])",
    );
    let rejects = rejects.as_array().unwrap();
    assert!(rejects.len() >= 4, "{rejects:?}");
    for r in rejects {
        let n = r[2].as_u64().unwrap();
        assert!((1..=3).contains(&n), "{r}");
    }
    browser.screenshot(1280, &screenshots().join("laptop.png"));

    browser.open(&html_path, 390);
    let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth");
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is {overflow} px wider than a phone's screen"
    );
    let narrowest = browser.eval(
        "Math.min(...[...document.querySelectorAll('figure.chart svg')]
            .map(s => s.getBoundingClientRect().width))",
    );
    assert!(narrowest.as_f64().unwrap() > 250.0, "{narrowest}");
    browser.screenshot(390, &screenshots().join("phone.png"));

    assert_eq!(browser.errors(), Vec::<String>::new());
    let requests = browser.requests();
    assert!(
        requests.iter().all(|u| u.starts_with("file://")),
        "{requests:?}"
    );
    assert!(screenshots().join("phone.png").exists());
}

/// The insight tables agree with the clean data they summarise.
#[test]
fn insight_tables_add_up_to_the_clean_data() {
    let (data, _) = reported(2000, 0.0);
    let clean = read(data.path().join("clean/csat.parquet"));
    let by_provider = read(data.path().join("insights/csat_by_provider.parquet"));
    let rows: u64 = by_provider
        .column("rows")
        .unwrap()
        .u64()
        .unwrap()
        .sum()
        .unwrap();
    assert_eq!(rows as usize, clean.height());
    let want = clean
        .lazy()
        .group_by([col(PROVIDER)])
        .agg([col(CSAT_SCORE).mean().alias("want")])
        .collect()
        .unwrap();
    let joined = by_provider
        .lazy()
        .join(
            want.lazy(),
            [col(PROVIDER)],
            [col(PROVIDER)],
            JoinArgs::new(JoinType::Inner),
        )
        .select([(col("mean_csat_score") - col("want")).alias("diff")])
        .collect()
        .unwrap();
    let diffs = nums(&joined, "diff");
    assert!(!diffs.is_empty());
    for diff in diffs {
        assert!(diff.unwrap().abs() < 1e-12, "{joined}");
    }

    let ranges = read(data.path().join("insights/csat_by_quality_range.parquet"));
    let labels: Vec<String> = strs(&ranges, "quality_range")
        .into_iter()
        .flatten()
        .collect();
    for range in ["0.0-0.5", "0.5-0.7", "0.7-0.8", "0.8-0.9", "0.9-1.0"] {
        assert!(labels.iter().any(|l| l == range), "{labels:?}");
    }
    let range_rows: u64 = ranges.column("rows").unwrap().u64().unwrap().sum().unwrap();
    assert_eq!(
        range_rows as usize,
        read(data.path().join("clean/csat.parquet")).height()
    );

    let insights = insights_report(data.path());
    let best = &insights.sources["synth"]
        .optimal
        .as_ref()
        .expect("an optimal range")
        .best
        .stat;
    assert!(best.rows >= 30, "{insights:?}");
    assert!(best.ci_low.unwrap() <= best.mean.unwrap());
    for name in [
        "csat_by_model",
        "csat_by_action_type",
        "csat_by_day",
        "quality_baselines",
    ] {
        let df = read(data.path().join("insights").join(format!("{name}.parquet")));
        assert!(df.height() > 0, "{name} is empty");
        assert_eq!(strs(&df, SOURCE)[0].as_deref(), Some("synth"));
    }

    // The group-bys run streamed; each group's values are summed in value
    // order, so a second run gives the same tables to the last bit.
    let tables = ["csat_by_provider", "csat_by_model", "quality_baselines"];
    let bytes =
        || tables.map(|t| fs::read(data.path().join(format!("insights/{t}.parquet"))).unwrap());
    let first = bytes();
    stage("report", data.path(), &[]);
    assert!(
        first == bytes(),
        "a second report changed the insight tables"
    );
}

/// From Supabase-style CSV exports: the same page, with no synthetic banner.
#[test]
fn report_from_csv_exports() {
    let exports = tempdir().unwrap();
    let scratch = tempdir().unwrap();
    ok(bin("synth").args([
        "--data",
        scratch.path().to_str().unwrap(),
        "--rows",
        "1500",
        "--now",
        NOW,
        "--format",
        "csv",
        "--out",
        exports.path().to_str().unwrap(),
    ]));
    let data = tempdir().unwrap();
    // The rows end at NOW, months ago: a window that reaches them.
    extract_csv(data.path(), exports.path(), &["--days", "3650"]);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    stage("train", data.path(), &[]);
    stage("report", data.path(), &[]);
    let html = fs::read_to_string(data.path().join("reports/report.html")).unwrap();
    assert!(
        !html.contains("synthetic-warning"),
        "a CSV export is not synthetic"
    );
    assert!(html.contains("id=\"optimal-csv\""));
    for chart in expected_charts() {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["reports", "insights"] {
        for name in files(&dir.join(sub)) {
            out.push((
                format!("{sub}/{name}"),
                fs::read(dir.join(sub).join(&name)).unwrap(),
            ));
        }
    }
    out
}

enum Damage {
    Garbage,
    Remove,
    Truncate,
}

impl Damage {
    fn apply(&self, path: &Path) {
        match self {
            Damage::Garbage => fs::write(path, b"PAR1 { not what it should be").unwrap(),
            Damage::Remove => fs::remove_file(path).unwrap(),
            Damage::Truncate => {
                let bytes = fs::read(path).unwrap();
                fs::write(path, &bytes[..bytes.len() / 2]).unwrap()
            }
        }
    }
}

/// Before any model is trained (a game's first hours, or every dataset short
/// of its minimum) the page is about the data and says why each model has
/// none; once a model was trained, a missing training report is an error.
#[test]
fn a_report_before_any_training_says_why_each_model_has_none() {
    let data = tempdir().unwrap();
    let d = data.path();
    synth(d, 300, 0.02);
    stage("transform", d, &[]);
    stage("validate", d, &["--allow-small", "--now", NOW]);
    let said = stdout(&stage("report", d, &[]));
    assert!(said.contains("report.html"), "{said}");
    let page = fs::read_to_string(d.join("reports/report.html")).unwrap();
    for want in [
        "No model was trained yet.",
        "performance: no model here yet: 294 clean rows, train needs 500",
        "quality: no model here yet; run `make train`",
        "No train run yet.",
        "id=\"table-rows\"",
    ] {
        assert!(page.contains(want), "{want:?} not in the page");
    }
    stage("train", d, &["--folds", "2"]);
    stage("report", d, &[]);
    let page = fs::read_to_string(d.join("reports/report.html")).unwrap();
    assert!(!page.contains("No model was trained yet."));
    // Every dataset short: validate stops the run and points at the report,
    // which then works on what validate wrote.
    let tiny = tempdir().unwrap();
    synth(tiny.path(), 40, 0.0);
    stage("transform", tiny.path(), &[]);
    let (code, err) =
        fails(bin("validate").args(["--data", tiny.path().to_str().unwrap(), "--now", NOW]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("train then has no dataset to train; `make report` shows the data meanwhile"),
        "{err}"
    );
    stage("report", tiny.path(), &[]);
    let page = fs::read_to_string(tiny.path().join("reports/report.html")).unwrap();
    assert!(
        page.contains("performance: no model here yet: 40 clean rows, train needs 500"),
        "the page says why"
    );
    fs::remove_file(d.join("reports/training.json")).unwrap();
    let (code, err) = fails(bin("report").args(["--data", d.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("reports/training.json"), "{err}");
}

/// A missing or corrupt input: one line naming the file, and the previous
/// report and insights left exactly as they were.
#[test]
fn report_on_bad_input_names_the_file_and_keeps_the_previous_report() {
    let (data, _) = reported(1500, 0.0);
    let d = data.path();
    let cases = [
        ("insights/calibration.parquet", Damage::Garbage),
        ("insights/feature_importance.parquet", Damage::Remove),
        ("models/versions/csat/v0001/holdout.parquet", Damage::Remove),
        ("models/versions/quality/v0001/model.json", Damage::Garbage),
        ("clean/csat.parquet", Damage::Truncate),
        ("reports/training.json", Damage::Remove),
    ];
    let before = snapshot(d);
    for (file, damage) in cases {
        let path = d.join(file);
        let good = fs::read(&path).unwrap();
        damage.apply(&path);
        let (code, err) = fails(bin("report").args(["--data", d.to_str().unwrap()]));
        assert_eq!(code, 1, "{file}: {err}");
        let lines = error_lines(&err);
        assert_eq!(lines.len(), 1, "{file}: {err}");
        assert!(lines[0].contains(file), "{file}: {err}");
        fs::write(&path, good).unwrap();
        let after = snapshot(d);
        assert!(
            before == after,
            "{file}: the previous report or insights changed"
        );
    }
    // Mended, it runs again.
    stage("report", d, &[]);
}
