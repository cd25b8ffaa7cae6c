use tempfile::tempdir;

use crate::common::*;

/// `make pipeline` with no database: synthetic data, a banner, then every stage.
#[test]
fn make_pipeline_runs_out_of_the_box_and_reruns_only_stale_stages() {
    let data = tempdir().unwrap();
    let make = |extra: &[&str]| {
        let mut cmd = make();
        cmd.args(["stages", "ROWS=800"])
            .arg(format!("DATA={}", data.path().display()))
            .arg(format!("BIN={}", bin_dir().display()))
            .args(extra)
            .env_remove("SUPABASE_URL")
            .env_remove("DATABASE_URL");
        cmd
    };
    let out = ok(&mut make(&[]));
    let err = String::from_utf8_lossy(&out.stderr);
    let text = stdout(&out);
    assert!(err.contains("using SYNTHETIC data"), "{err}");
    assert!(
        text.contains("transform: quality") && text.contains("validate: performance"),
        "{text}"
    );
    assert!(text.contains("baseline RMSE"), "{text}");
    assert_models_trained(data.path());
    // The report stage ran last, and the pipeline ends with the page's path.
    // The stable link the user opens, not the generation it points into.
    let html = data
        .path()
        .canonicalize()
        .unwrap()
        .join("reports/report.html");
    assert!(text.contains("best CSAT in quality range"), "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("pipeline: report: {}", html.display())),
        "{text}"
    );
    // Nothing is stale: nothing reruns.
    let again = stdout(&ok(&mut make(&[])));
    assert!(!again.contains("transform:"), "{again}");
    assert!(!again.contains("insight tables"), "{again}");
    assert!(again.contains("pipeline: report: "), "{again}");
    // A new seed makes the raw data stale, and everything after it.
    let changed = stdout(&ok(&mut make(&["SEED=9"])));
    // train's own summary, which no other stage prints.
    assert!(
        changed.contains("transform:") && changed.contains("baseline RMSE"),
        "{changed}"
    );
}
