use std::fs;
use std::path::Path;

use contract::columns::*;
use contract::reports::{Algorithm, ModelStatus};
use polars::prelude::*;
use tempfile::tempdir;

use crate::common::*;

/// synth -> transform -> validate -> train on a small dataset.
fn trained(rows: usize) -> tempfile::TempDir {
    let data = tempdir().unwrap();
    synth(data.path(), rows, 0.02);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    stage("train", data.path(), &["--seed", "3", "--folds", "3"]);
    data
}

#[test]
fn every_model_beats_its_mean_baseline_and_predict_reproduces_it() {
    let data = trained(1500);
    let report = training_report(data.path());
    for (model, target) in [
        ("quality", QUALITY_SCORE),
        ("csat", CSAT_SCORE),
        ("performance", ACTUAL),
    ] {
        let card = model_card(data.path(), model);
        let test = &card.candidates[&card.algorithm].test;
        let base = &card.candidates[&Algorithm::MeanBaseline].test;
        assert!(
            test.r2 > base.r2 + 0.2,
            "{model}: {} vs baseline {}",
            test.r2,
            base.r2
        );
        assert!(test.rmse < base.rmse);
        for key in [Algorithm::Ridge, Algorithm::Lightgbm] {
            assert!(
                card.candidates[&key].cv_rmse.is_finite(),
                "{model}: {key:?} reported"
            );
        }
        assert_eq!(report.models[model].status, ModelStatus::Trained);
        assert_eq!(card.seed, 3);
        assert!(card.data_sha256.len() == 64);

        // predict on the clean file, restricted to the held-out rows, gives the same metrics.
        let out = data.path().join(format!("{model}-pred.parquet"));
        ok(&mut predict_command(
            &data.path().join("models").join(model),
            &data.path().join("clean").join(format!("{model}.parquet")),
            &out,
        ));
        let predicted = read(&out);
        let holdout = read(
            data.path()
                .join("models")
                .join(model)
                .join("holdout.parquet"),
        );
        let joined = holdout
            .lazy()
            .join(
                predicted.lazy(),
                [col(SOURCE_TABLE), col(SOURCE_ID)],
                [col(SOURCE_TABLE), col(SOURCE_ID)],
                JoinArgs::new(JoinType::Left),
            )
            .collect()
            .unwrap();
        let truth: Vec<f64> = nums(&joined, target)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let pred: Vec<f64> = nums(&joined, &format!("predicted_{target}"))
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let n = truth.len() as f64;
        let rmse = (truth
            .iter()
            .zip(&pred)
            .map(|(t, p)| (t - p).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let want = test.rmse;
        assert!(
            (rmse - want).abs() < 1e-9 * want.max(1.0),
            "{model}: predict RMSE {rmse} vs train's {want}"
        );
        assert_eq!(truth.len(), card.test_rows);
    }
    // report.html (the report stage) replaced the tables-only page.
    assert!(!data.path().join("reports/training.html").exists());
    assert!(data.path().join("insights/calibration.parquet").exists());
    assert!(
        data.path().join("models/quality/lightgbm.txt").exists()
            || model_card(data.path(), "quality").algorithm != Algorithm::Lightgbm
    );
}

/// The first `n` clean rows of `model`'s dataset, as a user's CSV would hold them.
fn clean_head(data: &Path, model: &str, n: usize) -> DataFrame {
    read(data.join("clean").join(format!("{model}.parquet")))
        .head(Some(n))
        .drop(contract::columns::TIMESTAMP)
        .unwrap()
}

/// Writes `rows` as a CSV, runs predict with `model` on it, returns the output CSV.
fn predict_csv(data: &Path, model: &str, rows: &mut DataFrame) -> String {
    let input = data.join("rows.csv");
    let mut f = fs::File::create(&input).unwrap();
    CsvWriter::new(&mut f).finish(rows).unwrap();
    let out = data.join("out.csv");
    let said = stdout(&ok(&mut predict_command(
        &data.join("models").join(model),
        &input,
        &out,
    )));
    // It names the version that answered, the champion when it ran.
    assert!(
        said.contains(&format!(
            "rows -> {} (predicted_{}, {model} v0001, ",
            out.display(),
            contract::Dataset::from_name(model).unwrap().target()
        )),
        "{said}"
    );
    fs::read_to_string(&out).unwrap()
}

#[test]
fn predict_reads_and_writes_csv() {
    let data = trained(800);
    let text = predict_csv(
        data.path(),
        "performance",
        &mut clean_head(data.path(), "performance", 20),
    );
    assert!(
        text.lines().next().unwrap().ends_with("predicted_actual"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 21);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let data = trained(800);
    let model = data.path().join("models/quality");
    let clean = data.path().join("clean/quality.parquet");
    // A missing feature column.
    let input = data.path().join("no-security.parquet");
    let mut df = read(&clean).drop(SECURITY).unwrap();
    contract::io::write_parquet(&mut df, &input).unwrap();
    let out = data.path().join("out.parquet");
    let (code, err) = fails(&mut predict_command(&model, &input, &out));
    assert_eq!(code, 1);
    assert!(
        err.contains("no-security.parquet: missing column `security`"),
        "{err}"
    );
    assert!(!out.exists());
    // Rows of another model.
    let (_, err) = fails(&mut predict_command(
        &model,
        &data.path().join("clean/performance.parquet"),
        &out,
    ));
    assert!(err.contains("missing column `code_quality`"), "{err}");
    // A wrong type.
    let input = data.path().join("text-metric.parquet");
    let mut df = read(&clean);
    let as_text = df
        .column(COMPLEXITY)
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    df.with_column(as_text).unwrap();
    contract::io::write_parquet(&mut df, &input).unwrap();
    let (_, err) = fails(&mut predict_command(&model, &input, &out));
    assert!(
        err.contains("column `complexity` has type str, expected a number"),
        "{err}"
    );
    // No model by that name (a typo of MODEL=), no model folder, or a
    // folder that is no model.
    for (model, expected) in [
        (
            "models/qualty",
            "models/qualty: unknown model `qualty` (quality, csat, performance)",
        ),
        ("nope", "nope: no model folder here; run `train` first"),
        ("clean", "not a model folder"),
    ] {
        let (_, err) = fails(&mut predict_command(&data.path().join(model), &clean, &out));
        assert!(err.contains(expected), "{model}: {err}");
    }
    assert!(!out.exists(), "no output from a failed predict");
}

/// A setting out of range is one line naming the flag, before any model is
/// fitted: the champions, versions and training report stay as they were.
#[test]
fn settings_out_of_range_are_one_line_and_change_nothing() {
    let data = trained(800);
    let report = fs::read(data.path().join("reports/training.json")).unwrap();
    let versions = files(&data.path().join("models/versions/quality"));
    for (flag, value, expected) in [
        (
            "--selection-rows",
            "0",
            "--selection-rows must be at least 100, got 0",
        ),
        ("--folds", "1", "--folds must be at least 2, got 1"),
        (
            "--test-fraction",
            "0.9",
            "--test-fraction must be between 0.05 and 0.5, got 0.9",
        ),
        (
            "--tolerance",
            "NaN",
            "--tolerance must be between 0 and 1, got NaN",
        ),
        // A negative number reaches train's own check (clap took "-0.5" for a flag).
        (
            "--tolerance",
            "-0.5",
            "--tolerance must be between 0 and 1, got -0.5",
        ),
        (
            "--test-fraction",
            "-0.1",
            "--test-fraction must be between 0.05 and 0.5, got -0.1",
        ),
        (
            "--memory",
            "-1",
            "--memory must be a number of GiB (0 = a third of the machine's), got -1",
        ),
    ] {
        let (code, err) =
            fails(bin("train").args(["--data", data.path().to_str().unwrap(), flag, value]));
        assert_eq!(code, 1, "{flag} {value}: {err}");
        let line = format!("train: error: {expected}");
        assert_eq!(error_lines(&err), [line.as_str()], "{err}");
    }
    assert_eq!(
        fs::read(data.path().join("reports/training.json")).unwrap(),
        report
    );
    assert_eq!(
        files(&data.path().join("models/versions/quality")),
        versions
    );
}

#[test]
fn small_or_empty_datasets_are_skipped_not_trained() {
    let data = tempdir().unwrap();
    synth(data.path(), 300, 0.0);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW, "--allow-small"]);
    let out = stdout(&stage("train", data.path(), &["--folds", "2"]));
    assert!(
        out.contains("performance  skipped: 300 clean rows, below the minimum of 500; not trained"),
        "{out}"
    );
    assert!(!data.path().join("models/performance").exists());
    assert!(data.path().join("models/quality/model.json").exists());

    // Every dataset empty: nothing to train is an error.
    for name in ["quality", "csat", "performance"] {
        let path = data.path().join("clean").join(format!("{name}.parquet"));
        let mut df = read(&path).head(Some(0));
        contract::io::write_parquet(&mut df, &path).unwrap();
    }
    let (code, err) = fails(bin("train").args(["--data", data.path().to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no model trained: every dataset is below its minimum of clean rows \
             (`make report` shows the data meanwhile)"
        ),
        "{err}"
    );
    assert!(
        data.path().join("models/quality/model.json").exists(),
        "the older model stays"
    );
}

#[test]
fn predict_reads_a_csv_whose_optional_number_column_is_empty_everywhere() {
    let data = trained(800);
    let mut first = clean_head(data.path(), "quality", 10);
    // quality's `csat` is often empty for every row of an export.
    first
        .with_column(Column::full_null("csat".into(), 10, &DataType::Float64))
        .unwrap();
    let text = predict_csv(data.path(), "quality", &mut first);
    assert_eq!(text.lines().count(), 11);
}

/// A blank line is no row, as for extract and spreadsheets (polars reads it as
/// a row of nulls, which predict would refuse as a row without a provider);
/// a row of empty fields is one, and the row numbers of errors count it.
#[test]
fn predict_skips_blank_lines_in_a_csv_and_counts_rows_as_written() {
    let data = trained(800);
    let model = data.path().join("models/csat");
    let out = data.path().join("out.csv");
    let input = data.path().join("blank.csv");
    let header = "provider,model,action_type,quality_score,response_time_ms\n";
    let rows = "\nopenai,gpt-4o,combat,0.5,120\r\n\n\
                \"anthropic\",\"claude\nsonnet\",lore,0.9,\n\n\n";
    fs::write(&input, format!("{header}{rows}")).unwrap();
    let said = stdout(&ok(&mut predict_command(&model, &input, &out)));
    assert!(said.starts_with("predict: 2 rows -> "), "{said}");
    let written = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(out.clone()))
        .and_then(|r| r.finish())
        .unwrap();
    assert_eq!(written.height(), 2);
    let provider = written.column("provider").unwrap().str().unwrap().clone();
    assert_eq!(provider.get(1), Some("anthropic"));
    let model_names = written.column("model").unwrap().str().unwrap().clone();
    assert_eq!(model_names.get(1), Some("claude\nsonnet"));
    assert!(written.column("predicted_csat_score").unwrap().null_count() == 0);

    // One row is one row.
    fs::write(&input, format!("{header}\nopenai,gpt-4o,combat,0.5,\n\n")).unwrap();
    let said = stdout(&ok(&mut predict_command(&model, &input, &out)));
    assert!(said.starts_with("predict: 1 row -> "), "{said}");

    // A row of empty fields after a blank line is row 2, as written.
    fs::remove_file(&out).unwrap();
    fs::write(
        &input,
        format!("{header}openai,gpt-4o,combat,0.5,\n\n,,,,\n"),
    )
    .unwrap();
    let (code, err) = fails(&mut predict_command(&model, &input, &out));
    assert_eq!(code, 1);
    assert!(
        err.contains("blank.csv: row 2: `provider` is required by the csat model and has no value"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A CSV predict cannot read, or rows the model must not be asked about (as
/// serve refuses them), is one line naming the file, the row and the cause,
/// and no output: polars' own CSV errors run to a dozen lines of advice for
/// its Python API.
#[test]
fn predict_refuses_a_broken_csv_or_values_outside_training_in_one_line() {
    let data = trained(800);
    let model = data.path().join("models/csat");
    let out = data.path().join("out.csv");
    let header = "provider,model,action_type,quality_score,response_time_ms\n";
    for (name, rows, expected) in [
        (
            "not-a-number",
            "openai,gpt-4o,combat,0.5,120\nopenai,gpt-4o,combat,high,\n",
            "not-a-number.csv: row 2, column `quality_score`: `high` is not a number",
        ),
        (
            "out-of-range",
            "openai,gpt-4o,combat,0.5,120\nopenai,gpt-4o,,1.7,\n",
            "out-of-range.csv: row 2: quality_score 1.7 is outside the range the csat model was trained on (0 to 1)",
        ),
        (
            "infinite",
            "openai,gpt-4o,combat,0.5,inf\n",
            "infinite.csv: row 1: response_time_ms inf is outside the range the csat model was trained on (0 or more)",
        ),
        (
            "required-empty",
            "openai,gpt-4o,combat,0.5,120\nopenai,,combat,0.5,120\n",
            "required-empty.csv: row 2: `model` is required by the csat model and has no value",
        ),
        (
            // polars would pad it with nulls: a response time cut off the
            // end would be predicted as one the game never measured.
            "cut-short",
            "openai,gpt-4o,combat,0.5,120\n\nopenai,gpt-4o,combat,0.5\n",
            "cut-short.csv: row 2 has 4 fields, the header 5",
        ),
        (
            "ragged",
            "openai,gpt-4o,combat,0.5,120,7\n",
            "ragged.csv: not a readable CSV file: a row has more fields than the header",
        ),
        (
            "broken-quote",
            "\"openai,gpt-4o,combat,0.5,120\n",
            "broken-quote.csv: not a readable CSV file: invalid csv file Field `\"openai,gpt-4o,combat,0.5,120 ` is not properly escaped.",
        ),
    ] {
        let input = data.path().join(format!("{name}.csv"));
        fs::write(&input, format!("{header}{rows}")).unwrap();
        let (code, err) = fails(&mut predict_command(&model, &input, &out));
        assert_eq!(code, 1, "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!out.exists(), "{name}: no output from a failed predict");
    }
}

/// predict never writes into what the stages own: a clean file or a model
/// version replaced behind train's back would no longer be what its reports
/// and hashes describe. A folder of the user's, or the input itself, is fine.
#[test]
fn predict_never_writes_over_the_pipelines_own_files() {
    let data = trained(800);
    let model = data.path().join("models/csat");
    let clean = data.path().join("clean/csat.parquet");
    let before = fs::read(&clean).unwrap();
    let versions = files(&data.path().join("models/versions/csat"));
    for (output, writer) in [
        ("clean/csat.parquet", "`validate`"),
        ("models/csat/out.csv", "`train`"),
        ("raw/out.parquet", "`extract` or `synth`"),
        (".gen/out.csv", "the pipeline's stages"),
    ] {
        let out = data.path().join(output);
        let (code, err) = fails(&mut predict_command(&model, &clean, &out));
        assert_eq!(code, 1, "{output}: {err}");
        assert_eq!(err.lines().count(), 1, "{output}: {err}");
        assert!(
            err.contains(&format!(
                "{output}: a file of the data folder {} that only {writer} may write",
                data.path().display()
            )),
            "{output}: {err}"
        );
    }
    assert_eq!(fs::read(&clean).unwrap(), before);
    assert_eq!(files(&data.path().join("models/versions/csat")), versions);
    // A folder no file can be made in: the folder and the cause, not the name
    // of the temporary file predict would have written first.
    let nowhere = Path::new("/proc/predictions.parquet");
    let (code, err) = fails(&mut predict_command(&model, &clean, nowhere));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "predict: error: /proc: No such file or directory (os error 2)"
    );
    // The user's own folder inside the data folder, and a file predicted in place.
    fs::create_dir(data.path().join("predictions")).unwrap();
    let mine = data.path().join("predictions/csat.parquet");
    ok(&mut predict_command(&model, &clean, &mine));
    ok(&mut predict_command(&model, &mine, &mine));
    assert_eq!(read(&mine).height(), read(&clean).height());
}

/// A CSV without an optional feature's column is predicted as serve predicts
/// a row without it (missing), and predict says so; a category that looks
/// like a number stays a category.
#[test]
fn predict_takes_a_csv_without_an_optional_column_and_says_so() {
    let data = trained(800);
    let model = data.path().join("models/csat");
    let out = data.path().join("out.csv");
    let without = data.path().join("without.csv");
    fs::write(
        &without,
        "provider,model,action_type,quality_score\nopenai,gpt-4o,combat,0.8\nopenai,4,,0.3\n",
    )
    .unwrap();
    let said = stdout(&ok(&mut predict_command(&model, &without, &out)));
    assert!(
        said.contains(&format!(
            "predict: {} has no `response_time_ms` column: missing in every row",
            without.display()
        )),
        "{said}"
    );
    let predicted = |text: String| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().to_string())
            .collect()
    };
    let first = predicted(fs::read_to_string(&out).unwrap());
    assert_eq!(first.len(), 2);
    let empty = data.path().join("empty-column.csv");
    fs::write(
        &empty,
        "provider,model,action_type,quality_score,response_time_ms\nopenai,gpt-4o,combat,0.8,\nopenai,4,,0.3,\n",
    )
    .unwrap();
    let said = stdout(&ok(&mut predict_command(&model, &empty, &out)));
    assert!(!said.contains("has no"), "{said}");
    assert_eq!(predicted(fs::read_to_string(&out).unwrap()), first);
    // A required column is still required.
    let no_model = data.path().join("no-model.csv");
    fs::write(&no_model, "provider,quality_score\nopenai,0.8\n").unwrap();
    let (_, err) = fails(&mut predict_command(&model, &no_model, &out));
    assert!(
        err.contains("no-model.csv: missing column `model` (the csat model needs it)"),
        "{err}"
    );
}

#[test]
fn a_corrupt_lightgbm_model_is_our_one_line_not_lightgbms() {
    let data = trained(800);
    // Whichever model chose LightGBM at this size (csat does).
    let name = ["quality", "csat", "performance"]
        .into_iter()
        .find(|m| {
            data.path()
                .join("models")
                .join(m)
                .join("lightgbm.txt")
                .exists()
        })
        .expect("at least one model chose LightGBM");
    let model = data.path().join("models").join(name);
    let file = model.join("lightgbm.txt");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, &text[..text.len() / 3]).unwrap();
    let (code, err) = fails(&mut predict_command(
        &model,
        &data.path().join("clean").join(format!("{name}.parquet")),
        &data.path().join("out.parquet"),
    ));
    assert_eq!(code, 1);
    assert!(!err.contains("[LightGBM]"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a complete LightGBM model"), "{err}");
}

/// A memory budget too small for any two models trains them one at a time,
/// and the models are the ones trained side by side: LightGBM's threads per
/// model depend on --threads only.
#[test]
fn the_memory_budget_orders_models_but_never_changes_them() {
    let data = tempdir().unwrap();
    synth(data.path(), 1500, 0.02);
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--now", NOW]);
    let train = |memory: &str| {
        stage(
            "train",
            data.path(),
            &["--seed", "3", "--threads", "2", "--memory", memory],
        )
    };
    train("64");
    train("0.000001");
    for model in ["quality", "csat", "performance"] {
        let versions = data.path().join("models/versions").join(model);
        let read = |v: &str| {
            contract::registry::CardSummary::read(&versions.join(v))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (a, b) = (read("v0001"), read("v0002"));
        assert_eq!(a.algorithm, b.algorithm, "{model}");
        // The same up to the last bits of a sum: LightGBM's vectorised sums
        // can round differently with the alignment of its buffers.
        for (algorithm, x) in &a.candidates {
            let y = &b.candidates[algorithm];
            for (p, q) in [(x.test.rmse, y.test.rmse), (x.cv_rmse, y.cv_rmse)] {
                assert!(
                    (p - q).abs() <= 1e-9 * p.abs(),
                    "{model} {algorithm:?}: {p} vs {q}"
                );
            }
        }
    }
    let (code, err) =
        fails(bin("train").args(["--data", data.path().to_str().unwrap(), "--memory=-1"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--memory"), "{err}");
}

/// `predict --rejected`: the rows predict would refuse are set aside as
/// written, each with its row, reason, field and detail, and the others are
/// predicted exactly as they would be alone; rows out + rows set aside =
/// rows in. Neither file is in place unless both are written.
#[test]
fn predict_sets_aside_the_rows_it_cannot_score_with_their_reason() {
    let data = trained(800);
    let model = data.path().join("models/csat");
    let dir = data.path().join("mine");
    fs::create_dir_all(&dir).unwrap();
    let header = "provider,model,action_type,quality_score,response_time_ms\n";
    let good = [
        "openai,gpt-4o,combat,0.5,120",
        "anthropic,claude-3-haiku,lore,0.9,",
        "google,gemini-1.5-pro,trade,0.2,800",
    ];
    let bad = [
        (
            "openai,gpt-4o,combat,high,",
            2,
            "unparseable",
            "quality_score",
            "`high` is not a number",
        ),
        (
            "openai,,combat,0.5,",
            4,
            "missing",
            "model",
            "required by the csat model and has no value",
        ),
        (
            "openai,gpt-4o,combat,1.7,-3",
            5,
            "out_of_range",
            "quality_score",
            "1.7 is outside the range the csat model was trained on (0 to 1)",
        ),
    ];
    let all = [good[0], bad[0].0, good[1], bad[1].0, bad[2].0, good[2]];
    let input = dir.join("rows.csv");
    fs::write(&input, format!("{header}{}\n", all.join("\n"))).unwrap();
    let alone = dir.join("good.csv");
    fs::write(&alone, format!("{header}{}\n", good.join("\n"))).unwrap();

    // Without --rejected the first such row refuses the file.
    let out = dir.join("out.csv");
    let (code, err) = fails(&mut predict_command(&model, &input, &out));
    assert_eq!(code, 1);
    assert!(
        err.contains("rows.csv: row 2, column `quality_score`: `high` is not a number"),
        "{err}"
    );
    assert!(!out.exists());

    let read_csv = |path: &Path| {
        CsvReadOptions::default()
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .unwrap()
    };
    let expected_out = dir.join("expected.csv");
    ok(&mut predict_command(&model, &alone, &expected_out));
    for (out, rejected) in [("out.csv", "aside.csv"), ("out.parquet", "aside.parquet")] {
        let (out, rejected) = (dir.join(out), dir.join(rejected));
        let said = stdout(&ok(predict_command(&model, &input, &out)
            .arg("--rejected")
            .arg(&rejected)));
        assert!(said.contains("predict: 3 rows -> "), "{said}");
        assert!(
            said.contains(&format!(
                "predict: 3 rows set aside -> {} (missing 1, out_of_range 1, unparseable 1)",
                rejected.display()
            )),
            "{said}"
        );
        let (predicted, aside) = if out.extension().unwrap() == "csv" {
            (read_csv(&out), read_csv(&rejected))
        } else {
            let cast = |df: DataFrame| {
                let columns = df
                    .columns()
                    .iter()
                    .map(|c| c.cast(&DataType::String).unwrap())
                    .collect();
                DataFrame::new_infer_height(columns).unwrap()
            };
            (cast(read(&out)), cast(read(&rejected)))
        };
        assert_eq!(predicted.height() + aside.height(), all.len());
        // The kept rows' predictions are those of the good rows alone.
        let expected = read_csv(&expected_out);
        let column = |df: &DataFrame, name: &str| -> Vec<f64> {
            let c = df.column(name).unwrap().cast(&DataType::Float64).unwrap();
            c.f64().unwrap().into_no_null_iter().collect()
        };
        assert_eq!(
            column(&predicted, "predicted_csat_score"),
            column(&expected, "predicted_csat_score")
        );
        for (i, (line, row, reason, field, detail)) in bad.iter().enumerate() {
            let text = |name: &str| {
                aside
                    .column(name)
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .map(str::to_string)
            };
            assert_eq!(text("row").as_deref(), Some(row.to_string().as_str()));
            assert_eq!(text(REASON).as_deref(), Some(*reason));
            assert_eq!(text(FIELD).as_deref(), Some(*field));
            assert_eq!(text(DETAIL).as_deref(), Some(*detail));
            if out.extension().unwrap() == "csv" {
                // As written: `high` and `-3` are there as the file had them.
                let cells: Vec<String> = [
                    "provider",
                    "model",
                    "action_type",
                    "quality_score",
                    "response_time_ms",
                ]
                .iter()
                .map(|c| text(c).unwrap_or_default())
                .collect();
                assert_eq!(cells.join(","), *line);
            }
        }
    }

    // Every row good: an empty file of set-aside rows, so a script finds it.
    let rejected = dir.join("none.csv");
    let said = stdout(&ok(predict_command(&model, &alone, &out)
        .arg("--rejected")
        .arg(&rejected)));
    assert!(said.contains("predict: 0 rows set aside -> "), "{said}");
    assert_eq!(read_csv(&rejected).height(), 0);

    // Refused before anything is written: one file for both, or a stage's
    // file; and an output that cannot be made leaves no set-aside file.
    let aside = dir.join("late.csv");
    for (output, rejected, expected) in [
        (
            out.clone(),
            out.clone(),
            "--rejected and --output are one file",
        ),
        (
            out.clone(),
            data.path().join("clean/x.csv"),
            "that only `validate` may write",
        ),
        (
            Path::new("/proc/x.csv").to_path_buf(),
            aside.clone(),
            "/proc: No such file or directory",
        ),
    ] {
        let (code, err) = fails(
            predict_command(&model, &input, &output)
                .arg("--rejected")
                .arg(&rejected),
        );
        assert_eq!(code, 1);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{err}");
    }
    assert!(!aside.exists(), "no set-aside file without its predictions");
}
