//! One model's course: its clean rows read in batches, its head (the split
//! and LightGBM on all training rows) and its tail (model selection, the
//! other final fits, gate, drift and the saved version); `schedule` decides
//! when each runs.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use contract::columns::{SOURCE_ID, SOURCE_TABLE, TIMESTAMP};
use contract::drift::DatasetDrift;
use contract::reports::ModelReport;
use contract::{Dataset, Layout, io};
use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::artifact::{self, CrossValidation, Lineage, ModelCard};
use crate::features::{Data, Encoding};
use crate::gate::{self, Challenger, Champion};
use crate::models::{self, Algorithm, Fitted, GbmSettings};
use crate::selection::{Chosen, Fitter};
use crate::{Args, Job, RunContext, drift, split, summary};

pub(crate) struct Outcome {
    pub(crate) report: ModelReport,
    pub(crate) drift: DatasetDrift,
    pub(crate) importance: Option<Vec<(String, f64)>>,
    pub(crate) calibration: Option<DataFrame>,
}

/// The file's SHA-256, read through a buffer: the clean layer is
/// uncompressed, ~150 MB per million csat rows, and held whole it was a
/// fifth of train's peak.
fn file_sha256(path: &std::path::Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The columns train reads: features, target, the keys of the held-out rows
/// and the timestamp (the lineage's time range).
pub(crate) fn train_columns(dataset: Dataset) -> Vec<&'static str> {
    let mut columns = vec![SOURCE_TABLE, SOURCE_ID, TIMESTAMP, dataset.target()];
    columns.extend(dataset.numeric_features());
    columns.extend(dataset.categorical_features());
    columns
}

/// A model's clean rows as train holds them: the features and target as
/// numbers, each row's bucket and the time range. The file is read a batch
/// of rows at a time, so its text columns are never all in memory (at 10M
/// rows per table, the csat frame held through the fits was 3 GB of train's
/// 8 GB peak); the held-out rows' keys are read again once the fits are done
/// (see [`holdout_keys`]).
pub(crate) struct Rows {
    data: Data,
    buckets: Vec<f64>,
    timestamp_min: Option<i64>,
    timestamp_max: Option<i64>,
}

/// Rows read at a time.
const LOAD_BATCH_ROWS: usize = io::ROW_GROUP_ROWS;

impl Rows {
    pub(crate) fn load(path: &std::path::Path, dataset: Dataset) -> Result<Self> {
        let columns = train_columns(dataset);
        let rows = io::parquet_rows(path)?;
        let mut data = model::features::DataBuilder::with_capacity(dataset, true, path, rows);
        let mut buckets = Vec::with_capacity(rows);
        let (mut timestamp_min, mut timestamp_max) = (None, None);
        for offset in (0..rows).step_by(LOAD_BATCH_ROWS) {
            let batch = io::read_dataset_slice(path, dataset, &columns, offset, LOAD_BATCH_ROWS)?;
            data.push(&batch)?;
            let times = batch.column(TIMESTAMP)?.cast(&DataType::Int64)?;
            let times = times.i64()?;
            timestamp_min = [timestamp_min, times.min()].into_iter().flatten().min();
            timestamp_max = [timestamp_max, times.max()].into_iter().flatten().max();
            buckets.extend(row_buckets(&batch)?);
        }
        Ok(Self {
            data: data.finish(),
            buckets,
            timestamp_min,
            timestamp_max,
        })
    }
}

/// What a model's head leaves for its tail (see [`crate::schedule::train_side_by_side`]).
pub(crate) struct Head {
    rows: Rows,
    split: Split,
    /// The encoding fitted on all training rows.
    encoding: Encoding,
    /// LightGBM fitted on all training rows, as model.json keeps it (its
    /// params and model text), when it is a candidate.
    gbm: Option<(models::Params, Option<String>)>,
    fit_seconds: BTreeMap<Algorithm, f64>,
    progress: contract::progress::Progress,
    /// Time spent on this model in its head.
    seconds: f64,
}

/// A model's head: its split, and LightGBM on all training rows.
pub(crate) fn train_head(
    args: &Args,
    threads: usize,
    layout: &Layout,
    job: &Job,
    rows: Rows,
) -> Result<Head> {
    let started = Instant::now();
    let dataset = job.dataset;
    let bad = rows.data.target.iter().filter(|t| !t.is_finite()).count();
    if bad > 0 {
        bail!(
            "{}: {} no usable target; run `validate` first",
            layout.clean(dataset).display(),
            if bad == 1 {
                "1 row has".to_string()
            } else {
                format!("{bad} rows have")
            }
        );
    }
    let split = Split::new(args, &rows.buckets);
    let candidates = models::candidates(dataset);
    let settings = GbmSettings::new(args.seed, threads);
    let gbm_candidate = candidates.contains(&Algorithm::Lightgbm);
    // Progress in LightGBM's boosting rounds (one per C API call), over the
    // final fit and every fold's: most of the time goes there.
    let gbm_fits = if gbm_candidate {
        split.folds.len() as u64 + 1
    } else {
        0
    };
    let progress = contract::progress::Progress::new(
        "train",
        &format!("{dataset} ({} rows)", rows.data.rows),
        "rounds",
        Some(gbm_fits * settings.iterations as u64),
    );
    let encoding = Encoding::fit(&rows.data, dataset, &split.train_rows);
    let (gbm, fit_seconds) = if gbm_candidate {
        progress.set_phase("LightGBM on all training rows");
        let round = || progress.inc(1);
        let mut fitter = Fitter {
            dataset,
            data: &rows.data,
            candidates: &candidates,
            settings: &settings,
            round: &round,
            fit_seconds: BTreeMap::new(),
        };
        let fitted = fitter.fit(
            Algorithm::Lightgbm,
            &encoding.encode(&rows.data),
            &split.train_rows,
        )?;
        (Some((fitted.params, fitted.model_text)), fitter.fit_seconds)
    } else {
        (None, BTreeMap::new())
    };
    Ok(Head {
        rows,
        split,
        encoding,
        gbm,
        fit_seconds,
        progress,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A model's tail, from its head to a saved version: model selection, the
/// other final fits, gate and drift, card. Longer than most functions here
/// because the card is one literal listing every field, so none is
/// forgotten; each phase above it is a call.
pub(crate) fn train_tail(
    args: &Args,
    threads: usize,
    layout: &Layout,
    context: &RunContext,
    job: &Job,
    head: Head,
) -> Result<Outcome> {
    let started = Instant::now();
    let dataset = job.dataset;
    let path = layout.clean(dataset);
    let Head {
        rows:
            Rows {
                data,
                buckets,
                timestamp_min,
                timestamp_max,
            },
        split,
        encoding,
        gbm,
        fit_seconds,
        progress,
        seconds,
    } = head;
    let candidates = models::candidates(dataset);
    let settings = GbmSettings::new(args.seed, threads);
    let round = || progress.inc(1);
    let mut fitter = Fitter {
        dataset,
        data: &data,
        candidates: &candidates,
        settings: &settings,
        round: &round,
        fit_seconds,
    };
    let cv = fitter.cross_validate(&split.folds, &progress)?;
    progress.set_phase("final fits on all training rows");
    let gbm = gbm
        .map(|(params, text)| {
            Fitted::load(Algorithm::Lightgbm, params, text)
                .map(|fitted| fitted.with_predict_threads(threads))
        })
        .transpose()?;
    let chosen = fitter.final_fits(cv, encoding, gbm, &split.train_rows, &split.test_rows)?;

    progress.set_phase("promotion gate and drift");
    let data_sha256 = file_sha256(&path)?;
    let identity = crate::retention::model_identity(
        &data_sha256,
        (
            &owned(dataset.numeric_features()),
            &owned(dataset.categorical_features()),
        ),
        &chosen.encoding,
        (&chosen.fitted.algorithm, &chosen.fitted.params),
        chosen.fitted.model_text.as_deref().map(str::as_bytes),
    );
    let (promotion, drift, profile) = gate_and_drift(
        args,
        layout,
        context,
        job,
        (&data, &buckets),
        &split,
        (&chosen, identity),
    )?;
    let importance = chosen.importance_shares();
    let calibration = if dataset == Dataset::Performance {
        Some(summary::calibration(
            &data,
            &split.test_rows,
            &chosen.predicted,
        )?)
    } else {
        None
    };
    let keys = holdout_keys(&path, dataset, data.rows, &split.test_rows)?;
    let mut holdout = holdout_frame(keys, &chosen)?;
    let lineage = lineage(
        context,
        dataset,
        data.rows,
        (timestamp_min, timestamp_max),
        promotion,
    );
    let fit_seconds = fitter.fit_seconds;
    let card = ModelCard {
        format: artifact::FORMAT.into(),
        model: dataset.name().into(),
        target: dataset.target().into(),
        numeric_features: owned(dataset.numeric_features()),
        categorical_features: owned(dataset.categorical_features()),
        encoding: chosen.encoding,
        algorithm: chosen.fitted.algorithm,
        params: chosen.fitted.params.clone(),
        model_file: chosen
            .fitted
            .model_text
            .as_ref()
            .map(|_| artifact::LIGHTGBM_FILE.to_string()),
        seed: args.seed,
        test_fraction: args.test_fraction,
        training_rows: split.train_rows.len(),
        test_rows: split.test_rows.len(),
        cross_validation: split.cross_validation(),
        candidates: chosen.results,
        data_sha256,
        data_file: path.display().to_string(),
        versions: artifact::versions(),
        trained_at: Utc::now(),
        train_seconds: seconds + started.elapsed().as_secs_f64(),
        fit_seconds,
        version: Some(job.version),
        lineage,
    };
    artifact::save(&job.dir, &card, &chosen.fitted, &mut holdout, &profile)?;
    progress.finish();
    Ok(Outcome {
        report: summary::trained(&card, data.rows),
        drift,
        importance,
        calibration,
    })
}

/// How one model's rows are used: held out (by their key's bucket), trained
/// on, and the seeded sample of training rows cross-validation folds.
struct Split {
    train_rows: Vec<usize>,
    test_rows: Vec<usize>,
    selection_rows: Vec<usize>,
    folds: Vec<(Vec<usize>, Vec<usize>)>,
}

impl Split {
    fn new(args: &Args, buckets: &[f64]) -> Self {
        let (train_rows, test_rows) = split::train_test(buckets, args.test_fraction);
        let selection_rows = split::sample(
            &train_rows,
            args.selection_size(train_rows.len()),
            args.seed,
        );
        let folds = split::k_fold(&selection_rows, args.folds, args.seed);
        Self {
            train_rows,
            test_rows,
            selection_rows,
            folds,
        }
    }

    fn cross_validation(&self) -> CrossValidation {
        CrossValidation {
            folds: self.folds.len(),
            rows: self.selection_rows.len(),
            sampled: self.selection_rows.len() < self.train_rows.len(),
        }
    }
}

/// The promotion gate's decision on the chosen model, the data's drift
/// against the champion, and the profile the next run's drift is measured from.
fn gate_and_drift(
    args: &Args,
    layout: &Layout,
    context: &RunContext,
    job: &Job,
    (data, buckets): (&Data, &[f64]),
    split: &Split,
    (chosen, identity): (&Chosen, Option<[u8; 32]>),
) -> Result<(
    contract::reports::Promotion,
    DatasetDrift,
    contract::drift::Profile,
)> {
    let dataset = job.dataset;
    let best_baseline = chosen
        .results
        .iter()
        .filter(|(a, _)| a.is_baseline())
        .map(|(_, c)| c.test.rmse)
        .fold(f64::INFINITY, f64::min);
    let champion = Champion::load(layout, dataset, job.champion);
    let challenger = Challenger {
        rows: &split.test_rows,
        predicted: &chosen.predicted,
        buckets,
        rmse: chosen.results[&chosen.fitted.algorithm].test.rmse,
        baseline_rmse: best_baseline,
        identity,
    };
    let promotion = gate::decide(
        dataset,
        data,
        &challenger,
        &champion,
        args.promote.into(),
        args.tolerance,
    )?;
    let reject_rate = context.reject_rate(dataset);
    let drift = drift::against_champion(layout, dataset, &champion, data, reject_rate)?;
    let profile = drift::profile(data, dataset, &split.train_rows, reject_rate);
    Ok((promotion, drift, profile))
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The held-out rows' keys (source_table, source_id), read again from the
/// clean file a batch at a time once the fits are done: keeping them from
/// the first read would hold text through the fits (polars' filtered text
/// keeps its whole batch's buffers, 0.8 GB of the csat model's 2.4 GB at
/// 10M rows per table). `test_rows` are in ascending order.
fn holdout_keys(
    path: &std::path::Path,
    dataset: Dataset,
    rows: usize,
    test_rows: &[usize],
) -> Result<DataFrame> {
    let now = io::parquet_rows(path)?;
    if now != rows {
        bail!(
            "{}: {now} rows now, {rows} when training began; it changed during the run",
            path.display()
        );
    }
    let mut tables = StringChunked::full_null(SOURCE_TABLE.into(), 0);
    let mut ids = StringChunked::full_null(SOURCE_ID.into(), 0);
    let mut next = 0;
    for offset in (0..rows).step_by(LOAD_BATCH_ROWS) {
        let end = test_rows[next..].partition_point(|&r| r < offset + LOAD_BATCH_ROWS) + next;
        if end == next {
            continue;
        }
        let batch = io::read_dataset_slice(
            path,
            dataset,
            &[SOURCE_TABLE, SOURCE_ID],
            offset,
            LOAD_BATCH_ROWS,
        )?;
        // Picked value by value: new, compact buffers (a gather would keep
        // pointing into the batch's).
        let pick = |name: &str| -> Result<StringChunked> {
            let column = batch.column(name)?.str()?;
            Ok(test_rows[next..end]
                .iter()
                .map(|&r| column.get(r - offset))
                .collect())
        };
        tables.append_owned(pick(SOURCE_TABLE)?)?;
        ids.append_owned(pick(SOURCE_ID)?)?;
        next = end;
    }
    Ok(DataFrame::new_infer_height(vec![
        tables.with_name(SOURCE_TABLE.into()).into_column(),
        ids.with_name(SOURCE_ID.into()).into_column(),
    ])?)
}

/// The held-out rows with their truth and the chosen model's prediction.
fn holdout_frame(mut holdout: DataFrame, chosen: &Chosen) -> Result<DataFrame> {
    holdout.with_column(Column::new(artifact::ACTUAL.into(), chosen.truth.clone()))?;
    holdout.with_column(Column::new(
        artifact::PREDICTED.into(),
        chosen.predicted.clone(),
    ))?;
    Ok(holdout)
}

/// Every row's place in [0, 1) by its lineage key (see `split`).
fn row_buckets(df: &DataFrame) -> Result<Vec<f64>> {
    let tables = df.column(SOURCE_TABLE)?.str()?;
    let ids = df.column(SOURCE_ID)?.str()?;
    Ok(split::buckets(tables.iter().zip(ids.iter())))
}

fn lineage(
    context: &RunContext,
    dataset: Dataset,
    clean_rows: usize,
    (timestamp_min, timestamp_max): (Option<i64>, Option<i64>),
    promotion: contract::reports::Promotion,
) -> Lineage {
    let extract = context.extract.as_ref();
    let counts = context.counts(dataset);
    Lineage {
        run_id: context.run_id.clone(),
        source: extract.map(|e| e.source.clone()),
        since: extract.and_then(|e| e.since),
        until: extract.and_then(|e| e.until),
        timestamp_min: timestamp_min.and_then(DateTime::from_timestamp_micros),
        timestamp_max: timestamp_max.and_then(DateTime::from_timestamp_micros),
        rows_in: counts.map(|c| c.0),
        clean_rows,
        rejected_rows: counts.map(|c| c.1),
        promotion: Some(promotion),
    }
}
