use tempfile::tempdir;

use crate::common::*;

/// `make pipeline` with no database: synthetic data, a banner, then every stage.
#[test]
fn make_pipeline_runs_out_of_the_box_and_reruns_only_stale_stages() {
    let data = tempdir().unwrap();
    let make = |extra: &[&str]| make_synth("stages", data.path(), &[&["ROWS=800"], extra].concat());
    let out = ok(&mut make(&[]));
    let err = String::from_utf8_lossy(&out.stderr);
    let text = stdout(&out);
    assert!(err.contains("using SYNTHETIC data"), "{err}");
    assert!(
        text.contains("transform: quality") && text.contains("validate: performance"),
        "{text}"
    );
    assert!(text.contains("baseline RMSE"), "{text}");
    // The summary points at this data folder's training report, not the default's.
    let candidates = format!(
        "all candidates in {})",
        data.path().join("reports/training.json").display()
    );
    assert!(text.contains(&candidates), "{text}");
    assert_models_trained(data.path());
    // The report stage ran last, and the pipeline ends with the page's path.
    // The stable link the user opens, not the generation it points into.
    let html = data
        .path()
        .canonicalize()
        .unwrap()
        .join("reports/report.html");
    assert!(
        text.contains("report: synth: optimal quality range "),
        "{text}"
    );
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
    // clean-data keeps model versions unless told: they are what serve
    // answers from, and a rerun does not make the same history again.
    let clean = |extra: &[&str]| {
        let mut cmd = super::common::make();
        cmd.arg("clean-data")
            .arg(format!("DATA={}", data.path().display()))
            .args(extra);
        cmd
    };
    let (code, err) = fails(&mut clean(&[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("make clean-data CONFIRM=yes removes them"),
        "{err}"
    );
    assert!(data.path().join("models/versions/csat/v0002").is_dir());
    ok(&mut clean(&["CONFIRM=yes"]));
    assert!(files(data.path()).is_empty(), "{:?}", files(data.path()));
}

/// A stage run before the one that feeds it says, in its only line, which
/// file is missing and which stage writes it, and leaves nothing behind.
#[test]
fn a_stage_run_too_early_names_the_missing_file_and_the_stage_to_run() {
    let data = tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for (stage, wants) in [
        (
            "transform",
            "raw/ai_gm_explanations: not found (run `extract` or `synth` first)",
        ),
        (
            "validate",
            "training/quality.parquet: not found (run `transform` first)",
        ),
        (
            "train",
            "clean/quality.parquet: not found (run `validate` first)",
        ),
        (
            "report",
            "reports/extract.json: not found (run `extract` or `synth` first)",
        ),
    ] {
        let (code, err) = fails(bin(stage).args(["--data", dir]));
        assert_eq!(code, 1, "{stage}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{stage}: one line, no progress first: {err}"
        );
        assert_eq!(error_lines(&err).len(), 1, "{stage}: {err}");
        assert!(lines[0].contains(wants), "{stage}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "nothing but hidden state: {left:?}"
    );
}

/// `make help` names every target a user may type, each once.
#[test]
fn make_help_names_every_target() {
    let out = ok(make().arg("help"));
    let text = stdout(&out);
    let described: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once(": ").map(|(t, _)| t))
        .filter(|t| !t.starts_with(' '))
        .collect();
    for target in [
        "pipeline",
        "build",
        "models",
        "rollback",
        "report",
        "status",
        "collect",
        "retrain",
        "serve",
        "predict",
        "clean-data",
        "help",
        "test",
        "check",
        "bench",
        "bench-scale",
        "bench-db",
        "bench-serve",
        "soak",
    ] {
        assert_eq!(
            described.iter().filter(|t| **t == target).count(),
            1,
            "{target} in:\n{text}"
        );
    }
    assert!(
        text.contains("extract / transform / validate / train: run one stage now"),
        "{text}"
    );
    assert!(text.contains("make pipeline [DAYS=30|DAYS=]"), "{text}");
}

/// make cannot name files under a path with a space: such a DATA or CSV_DIR
/// is refused before anything is made, naming the variable.
#[test]
fn a_data_folder_with_a_space_is_refused_before_anything_is_made() {
    let work = tempdir().unwrap();
    let spaced = work.path().join("my data");
    for (var, value, wants) in [
        (
            "DATA",
            spaced.display().to_string(),
            "make needs a folder path without spaces",
        ),
        ("DATA", String::new(), "DATA is empty"),
        (
            "CSV_DIR",
            spaced.display().to_string(),
            "make needs a folder path without spaces",
        ),
    ] {
        let mut cmd = make();
        cmd.args(["pipeline", "SOURCE=csv"])
            .arg(format!("BIN={}", bin_dir().display()))
            .arg(format!("{var}={value}"));
        if var == "CSV_DIR" {
            cmd.arg(format!("DATA={}", work.path().join("data").display()));
        }
        let (code, err) = fails(&mut cmd);
        assert_eq!(code, 2, "{var}={value:?}: {err}");
        assert!(
            err.contains(var) && err.contains(wants),
            "{var}={value:?}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
        assert!(left.is_empty(), "{var}={value:?}: {left:?}");
    }
}

/// A first build on a machine without cmake >= 3.28 or libclang failed ten
/// minutes in, with a build script's panic. `make build` now says what is
/// missing before cargo starts, and starts cargo when nothing is.
#[test]
fn a_first_build_names_what_is_missing_before_cargo_starts() {
    let work = tempdir().unwrap();
    let fake = work.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    let script = |name: &str, body: &str| {
        let path = fake.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    };
    let ran = work.path().join("cargo-ran");
    let cargo = script("cargo", &format!("echo \"$@\" > {}", ran.display()));
    script("cmake", "echo 'cmake version 3.25.1'");
    // An empty target folder: nothing built yet, so everything is checked.
    let target = work.path().join("target");
    let no_libclang = work.path().join("no-libclang");
    std::fs::create_dir_all(&no_libclang).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let build = |libclang: &std::path::Path| {
        let mut cmd = make();
        cmd.arg("build")
            .arg(format!("BIN={}", target.display()))
            .arg(format!("CARGO={}", cargo.display()))
            .env("PATH", &path)
            .env("LIBCLANG_PATH", libclang);
        cmd
    };
    let (code, err) = fails(&mut build(&no_libclang));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("build: missing: cmake 3.25.1")
            && err.contains("LightGBM needs 3.28 or newer; pip install cmake"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "build: missing: libclang: not found in LIBCLANG_PATH={}",
            no_libclang.display()
        )) && err.contains("apt-get install clang libclang-dev"),
        "{err}"
    );
    assert!(err.contains("build: nothing was built"), "{err}");
    assert!(!ran.exists(), "cargo ran: {err}");

    // A libclang where LIBCLANG_PATH says and a cmake that is new enough: cargo runs.
    let libclang = work.path().join("llvm");
    std::fs::create_dir_all(&libclang).unwrap();
    std::fs::write(libclang.join("libclang-19.so.1"), "").unwrap();
    script("cmake", "echo 'cmake version 3.31.6'");
    let out = ok(&mut build(&libclang));
    assert!(ran.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read_to_string(&ran)
            .unwrap()
            .contains("build --release --workspace --bins")
    );

    // Once LightGBM's bindings exist, a rebuild does not need cmake or libclang.
    std::fs::remove_file(&ran).unwrap();
    script("cmake", "echo 'cmake version 3.25.1'");
    let bindings = target.join("build/lightgbm3-sys-0123/out");
    std::fs::create_dir_all(&bindings).unwrap();
    std::fs::write(bindings.join("bindings.rs"), "").unwrap();
    ok(&mut build(&no_libclang));
    assert!(ran.exists());
}

/// A make target that only reads (status, models, predict, help) makes no
/// folder for a DATA that is not there, so the stage can say it is missing:
/// a typo (`make serve DATA=dta`) is said as one.
#[test]
fn a_make_target_that_only_reads_makes_no_data_folder() {
    let work = tempdir().unwrap();
    let typo = work.path().join("dta");
    let input = format!("INPUT={}", work.path().join("rows.parquet").display());
    let output = format!("OUTPUT={}", work.path().join("out.parquet").display());
    for (target, extra) in [
        ("status", vec![]),
        ("models", vec![]),
        ("predict", vec![input.as_str(), output.as_str()]),
        ("help", vec![]),
    ] {
        // CARGO=true: the build before each is this test's own build.
        let out = make_synth(target, &typo, &[&["CARGO=true"], &extra[..]].concat())
            .output()
            .unwrap();
        assert!(
            !typo.exists(),
            "make {target} made {}: {}",
            typo.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Extracting makes it, with the settings make compares on the next run.
    ok(&mut make_synth(
        "stages",
        &typo,
        &["ROWS=200", "ALLOW_SMALL=yes"],
    ));
    assert!(typo.join(".make/extract.params").exists());
}

/// validate writes its outputs, then exits 3, when a dataset has too few clean
/// rows. The next `make pipeline` used to take its fresh report for a pass and
/// train; it now runs validate again. ALLOW_SMALL=yes goes on, training what
/// has enough rows.
#[test]
fn a_dataset_below_its_minimum_stops_every_make_run_until_allowed() {
    let data = tempdir().unwrap();
    let make = |extra: &[&str]| make_synth("stages", data.path(), &[&["ROWS=300"], extra].concat());
    for run in ["first", "second"] {
        let (code, err) = fails(&mut make(&[]));
        assert_eq!(code, 2, "{run}: {err}");
        assert!(
            err.contains("validate: error: performance: 300 clean rows, below the minimum of 500")
                && err.contains("ALLOW_SMALL=yes for make"),
            "{run}: {err}"
        );
        assert!(
            !data.path().join("reports/training.json").exists(),
            "{run}: train ran after validate failed: {err}"
        );
    }
    let out = ok(&mut make(&["ALLOW_SMALL=yes"]));
    let text = stdout(&out);
    assert!(
        text.contains("validate --data") && text.contains("--allow-small"),
        "{text}"
    );
    assert!(
        text.contains("train: performance  skipped: 300 clean rows, below the minimum of 500"),
        "{text}"
    );
    for model in ["quality", "csat"] {
        assert!(
            data.path().join(format!("models/{model}")).exists(),
            "{model}: {text}"
        );
    }
    assert!(!data.path().join("models/performance").exists());
    assert!(!data.path().join(".make/validate.again").exists());
    // status says which dataset is short, and why its model has no champion.
    let out = ok(bin("status").args(["--data", data.path().to_str().unwrap()]));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("  performance")
            && l.ends_with("rejects: none  too few clean rows to train (needs 500)")),
        "{text}"
    );
    assert!(
        text.contains("  performance  no champion yet: 300 clean rows, train needs 500 (more rows"),
        "{text}"
    );
    assert!(!text.contains("quality      no champion yet"), "{text}");
    // So does `models list`, where the model has no version.
    let out = ok(bin("models").args(["--data", data.path().to_str().unwrap(), "list"]));
    let text = stdout(&out);
    assert!(
        text.contains(
            "performance: 0 kept (last run: 300 clean rows, below the minimum of 500; not trained)"
        ) && text.contains("quality: 1 kept\n"),
        "{text}"
    );
    // And a rollback to a version it never had.
    let (code, err) = fails(bin("models").args([
        "--data",
        data.path().to_str().unwrap(),
        "promote",
        "--model",
        "performance",
        "--version",
        "v0001",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "no such version of the performance model (kept: none; last run: 300 clean rows, \
             below the minimum of 500; not trained)"
        ),
        "{err}"
    );
    // The report page gives the reason once.
    let page = std::fs::read_to_string(data.path().join("reports/report.html")).unwrap();
    assert!(
        page.contains("Not trained: 300 clean rows, below the minimum of 500<"),
        "{page}"
    );
    // Asked for a prediction, predict and serve say why there is no model.
    let why = "models/performance: no model here yet: 300 clean rows, train needs 500 \
               (more rows: a longer DAYS window, or ROWS for synth)";
    let rows = data.path().join("clean/quality.parquet");
    let (code, err) = fails(&mut predict_command(
        &data.path().join("models/performance"),
        &rows,
        &data.path().join("out.parquet"),
    ));
    assert_eq!(code, 1, "{err}");
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(err.contains(why), "{err}");
    let server = crate::serve::Server::start(data.path(), &[], &[]);
    assert!(server.log().contains(why), "{}", server.log());
    // Ready: every model on disk is served.
    let (status, ready) = crate::serve::get(&server, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready["models"]["performance"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains(why)),
        "{ready}"
    );
    assert_eq!(ready["models"]["quality"]["loaded"], true, "{ready}");
}
