//! `train`: the three models on `data/clean/`, evaluated honestly (held-out
//! rows by a stable hash of their key, seeded K-fold CV on the training part,
//! held-out metrics, every model beside its baselines), each saved as a new
//! version that replaces the champion only when the promotion gate says so
//! (`gate`), with the data's drift against the champion (`drift`) and a line
//! of run history.

mod drift;
mod gate;
pub mod metrics;
pub mod predict;
mod retention;
pub mod split;
mod summary;
pub mod versions;

// The model format lives in its own crate, shared with `serve`; train's
// modules name it by these paths.
pub use model::{artifact, features, models, respawn_with_passive_openmp};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use contract::columns::{SOURCE_ID, SOURCE_TABLE, TIMESTAMP};
use contract::commit::Commit;
use contract::drift::{DatasetDrift, DriftReport};
use contract::history::{RunEvent, RunModel, RunRecord, RunRows};
use contract::registry::{self, Version};
use contract::reports::{ExtractReport, PromotePolicy, ValidationReport};
use contract::{Dataset, Layout, history, io};
use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::artifact::{Candidate, CrossValidation, Lineage, ModelCard};
use crate::features::{Data, Encoding};
use crate::gate::{Challenger, Champion};
use crate::metrics::evaluate;
use crate::models::{Algorithm, Fitted, GbmSettings};
use contract::reports::{ModelReport, ModelStatus, TrainingReport};

/// `--promote`: when a new version becomes the champion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Promote {
    /// When it beats its baselines and is no worse than the champion
    /// (within --tolerance) on held-out rows neither trained on.
    Better,
    /// Always: force the new versions live.
    Always,
    /// Never: keep the new versions, leave the champions as they are.
    Never,
}

impl From<Promote> for PromotePolicy {
    fn from(p: Promote) -> Self {
        match p {
            Promote::Better => PromotePolicy::Better,
            Promote::Always => PromotePolicy::Always,
            Promote::Never => PromotePolicy::Never,
        }
    }
}

/// `--only`'s values: a model by its dataset's name.
fn model_name(name: &str) -> Result<Dataset, String> {
    Dataset::from_name(name)
        .ok_or_else(|| format!("unknown model `{name}` (quality, csat, performance)"))
}

/// Trains the quality, csat and performance models on DATA/clean.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Seed of the split, the model-selection sample and folds, and LightGBM.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Model-selection folds, on a seeded sample of the training rows.
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Share of rows held out for the final metrics and the promotion gate,
    /// chosen by a stable hash of (source_table, source_id): a row held out
    /// once is held out in every run.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// When a new version replaces the champion.
    #[arg(long, value_enum, default_value_t = Promote::Better)]
    pub promote: Promote,
    /// With --promote better: a new version may be this much worse than the
    /// champion (relative RMSE; 0.01 = 1%) and still be promoted, so noise
    /// does not freeze the champion.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// Model versions kept per model (the champion is always kept besides).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// Model selection runs on a seeded sample of at most this many training
    /// rows (a tenth of them, at least 10 000); the chosen model is then fitted
    /// on all training rows.
    #[arg(long, default_value_t = 50_000)]
    pub selection_rows: usize,
    /// Threads to use: up to this many models are trained side by side (at
    /// most three), LightGBM's threads shared equally among them; 0 = one per
    /// core this process may use. A model depends on its share, so the same
    /// seed and --threads give the same models.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Memory to plan for, in GiB: models train side by side only while
    /// their estimated peaks fit in it together (a model larger than this
    /// still trains, alone). 0 = a third of this machine's memory (or of the
    /// cgroup's limit): the database and the game master may share the machine.
    /// Which models run together never changes their settings (see --threads).
    #[arg(long, default_value_t = 0.0)]
    pub memory: f64,
    /// No progress bars or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// Train only these models, e.g. `--only csat,quality` (default: all three).
    #[arg(long, value_delimiter = ',', value_parser = model_name)]
    pub only: Vec<Dataset>,
}

impl Args {
    fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The memory budget in bytes (see --memory).
    fn memory_budget(&self) -> u64 {
        if self.memory > 0.0 {
            (self.memory * GIB) as u64
        } else {
            contract::machine_memory().map_or(u64::MAX, |bytes| bytes / 3)
        }
    }

    /// How many training rows model selection uses.
    fn selection_size(&self, training_rows: usize) -> usize {
        (training_rows / 10)
            .max(10_000)
            .min(self.selection_rows.max(1))
            .min(training_rows)
    }
}

/// What every model of one run shares: its id and the data's lineage.
struct RunContext {
    run_id: String,
    extract: Option<ExtractReport>,
    validation: Option<ValidationReport>,
}

impl RunContext {
    /// validate's (rows in, rejected) of a dataset, when validate ran.
    fn counts(&self, dataset: Dataset) -> Option<(usize, usize)> {
        let d = self.validation.as_ref()?.datasets.get(dataset.name())?;
        Some((d.rows_in, d.rejected.values().sum()))
    }

    fn reject_rate(&self, dataset: Dataset) -> Option<f64> {
        self.counts(dataset)
            .map(|(rows_in, rejected)| rejected as f64 / rows_in.max(1) as f64)
    }
}

/// One model to train: its dataset, clean rows, and the version it becomes.
struct Job {
    dataset: Dataset,
    rows: usize,
    version: Version,
    dir: PathBuf,
    champion: Option<Version>,
}

pub fn run(args: &Args) -> Result<()> {
    contract::progress::set_quiet(args.quiet);
    let started_at = Utc::now();
    args.check()?;
    let datasets: Vec<Dataset> = if args.only.is_empty() {
        Dataset::ALL.to_vec()
    } else {
        args.only.clone()
    };
    let layout = Layout::new(&args.data);
    // Models, champions, insights and reports change together; a failing run changes nothing.
    let mut commit = Commit::begin(&layout, "train")?;
    let context = RunContext {
        run_id: RunRecord::id_at(started_at),
        extract: io::read_json_if_present(&layout.extract_report())?,
        validation: io::read_json_if_present(&layout.validation_report())?,
    };
    let mut results = Results {
        report: TrainingReport {
            trained_at: Utc::now(),
            seed: args.seed,
            models: BTreeMap::new(),
        },
        drift: DriftReport {
            computed_at: Some(Utc::now()),
            datasets: BTreeMap::new(),
        },
        importance_rows: Vec::new(),
        calibration: None,
    };
    let jobs = plan(&layout, &mut commit, &datasets, &mut results)?;
    for (job, outcome) in jobs
        .iter()
        .zip(train_side_by_side(args, &layout, &context, &jobs))
    {
        results.take(args, &layout, &mut commit, job, outcome?)?;
    }
    let Results {
        report,
        drift,
        importance_rows,
        calibration,
    } = results;
    if report
        .models
        .values()
        .all(|m| m.status != ModelStatus::Trained)
    {
        bail!("no model trained: every dataset is below its minimum of clean rows");
    }
    write_insights(&mut commit, &layout, importance_rows, calibration)?;
    io::write_json(&report, &commit.file(&layout.training_report())?)?;
    io::write_json(&drift, &commit.file(&layout.drift_report())?)?;
    let record = run_record(&context, started_at, &report, &drift);
    history::append(&mut commit, &layout, &record)?;
    // report.html (the `report` stage) replaced the old tables-only page.
    let stale_html = layout.reports_dir().join("training.html");
    if stale_html.exists() {
        commit.remove(&stale_html);
    }
    commit.finish()?;
    summary::print_summary(&report, &layout.training_report());
    summary::print_promotions(&report);
    summary::print_drift(&drift);
    Ok(())
}

impl Args {
    fn check(&self) -> Result<()> {
        if !(0.05..=0.5).contains(&self.test_fraction) {
            bail!(
                "--test-fraction must be between 0.05 and 0.5, got {}",
                self.test_fraction
            );
        }
        if !(self.memory >= 0.0 && self.memory.is_finite()) {
            bail!(
                "--memory must be a number of GiB (0 = a third of the machine's), got {}",
                self.memory
            );
        }
        if self.folds < 2 {
            bail!("--folds must be at least 2, got {}", self.folds);
        }
        if !(0.0..=1.0).contains(&self.tolerance) {
            bail!(
                "--tolerance must be between 0 and 1, got {}",
                self.tolerance
            );
        }
        Ok(())
    }
}

/// What the run's reports and insight tables gather, model by model.
struct Results {
    report: TrainingReport,
    drift: DriftReport,
    importance_rows: Vec<(String, String, f64)>,
    calibration: Option<DataFrame>,
}

impl Results {
    /// A dataset with too few clean rows: reported, not trained. The champion
    /// stays: too little data is no reason to change models.
    fn skip(&mut self, dataset: Dataset, rows: usize, champion: Option<Version>) {
        let line = format!(
            "{rows} clean rows, below the minimum of {}; not trained",
            dataset.min_rows()
        );
        println!("train: {:<12} skipped: {line}", dataset.name());
        self.report.models.insert(
            dataset.name().into(),
            ModelReport::skipped(rows, line.clone()),
        );
        self.drift.datasets.insert(
            dataset.name().into(),
            DatasetDrift {
                champion,
                rows,
                note: Some(line),
                ..DatasetDrift::default()
            },
        );
    }

    /// A trained model's outcome: its reports and insights gathered, its
    /// version made champion when the gate said so, old versions pruned.
    fn take(
        &mut self,
        args: &Args,
        layout: &Layout,
        commit: &mut Commit,
        job: &Job,
        outcome: Outcome,
    ) -> Result<()> {
        let dataset = job.dataset;
        for (feature, gain) in outcome.importance.into_iter().flatten() {
            self.importance_rows
                .push((dataset.name().into(), feature, gain));
        }
        if let Some(c) = outcome.calibration {
            self.calibration = Some(c);
        }
        let promoted = outcome
            .report
            .promotion
            .as_ref()
            .is_some_and(|p| p.promoted);
        if promoted {
            registry::stage_champion(commit, layout, dataset, job.version)?;
        }
        let champion = if promoted {
            Some(job.version)
        } else {
            job.champion
        };
        retention::prune(commit, layout, dataset, job.version, champion, args.keep)?;
        self.drift
            .datasets
            .insert(dataset.name().into(), outcome.drift);
        self.report
            .models
            .insert(dataset.name().into(), outcome.report);
        Ok(())
    }
}

/// The models to train, each with its new version folder. Every input is
/// checked (its footer and columns) before any model is fitted; each is read
/// in full when its model's turn comes, so only the models being trained
/// hold their data.
fn plan(
    layout: &Layout,
    commit: &mut Commit,
    datasets: &[Dataset],
    results: &mut Results,
) -> Result<Vec<Job>> {
    let mut inputs = Vec::new();
    for &dataset in datasets {
        let path = layout.clean(dataset);
        let rows = io::check_dataset_columns(&path, dataset, &train_columns(dataset))?;
        inputs.push((dataset, rows));
    }
    let mut jobs = Vec::new();
    for (dataset, rows) in inputs {
        let champion = registry::champion(layout, dataset)?;
        if rows < dataset.min_rows() {
            results.skip(dataset, rows, champion);
            continue;
        }
        let version = registry::next_version(layout, dataset)?;
        let dir = commit.dir(&layout.version_dir(dataset, version))?;
        jobs.push(Job {
            dataset,
            rows,
            version,
            dir,
            champion,
        });
    }
    Ok(jobs)
}

/// The run's line of reports/history.jsonl.
fn run_record(
    context: &RunContext,
    started_at: DateTime<Utc>,
    report: &TrainingReport,
    drift: &DriftReport,
) -> RunRecord {
    let extract = context.extract.as_ref();
    RunRecord {
        run_id: context.run_id.clone(),
        event: RunEvent::Train,
        started_at,
        finished_at: Utc::now(),
        source: extract.map(|e| e.source.clone()),
        since: extract.and_then(|e| e.since),
        until: extract.and_then(|e| e.until),
        datasets: context
            .validation
            .iter()
            .flat_map(|v| &v.datasets)
            .map(|(name, d)| {
                let rows = RunRows {
                    rows_in: d.rows_in,
                    clean: d.clean,
                    rejected: d.rejected.values().sum(),
                };
                (name.clone(), rows)
            })
            .collect(),
        models: report
            .models
            .iter()
            .map(|(name, m)| {
                let p = m.promotion.as_ref();
                let model = RunModel {
                    version: m.version,
                    promoted: p.is_some_and(|p| p.promoted),
                    reason: p
                        .map(|p| p.reason.clone())
                        .or_else(|| m.message.clone())
                        .unwrap_or_default(),
                    rmse: p.map(|p| p.rmse),
                    champion: p.and_then(|p| p.champion),
                    champion_rmse: p.and_then(|p| p.champion_rmse),
                };
                (name.clone(), model)
            })
            .collect(),
        drift: drift
            .datasets
            .iter()
            .map(|(name, d)| (name.clone(), d.summary()))
            .collect(),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// A model's estimated peak memory in train, in bytes: per row its numbers
/// (8 bytes a numeric feature, 4 a category code, 8 for the target and 8 for
/// its bucket), 8 for its place in the split, and about 48 for LightGBM's
/// binned dataset, gradients and scores on the training rows; 100 MiB
/// besides. Measured at 10M rows per table, each model alone: csat 1.85 GB
/// (estimate 1.98), quality 1.39 (1.37), performance 0.91 (0.94).
fn estimated_peak(dataset: Dataset, rows: usize) -> u64 {
    let per_row =
        8 * dataset.numeric_features().len() + 4 * dataset.categorical_features().len() + 72;
    (rows * per_row) as u64 + (100 << 20)
}

/// Trains the models side by side: LightGBM uses a second core poorly on
/// these few features (1.2-1.4x at 1M rows, slower than one below 400k
/// rows), so up to `--threads` workers (at most three) share the models,
/// each LightGBM fit with an equal share of the threads. The share depends
/// only on `--threads`, never on timing, on `--only` or on memory: LightGBM's
/// result depends on its thread count, and the same seed must give the same
/// model.
///
/// Each model is two pieces of work: its head (rows, split and the LightGBM
/// fit on all training rows, the longest single piece) and its tail
/// (model selection, the other candidates, held-out predictions, gate,
/// drift, the saved version). A worker takes a head before any tail, the
/// largest model first, then the largest tail ready: so the long fits start
/// early and the short tails fill the cores at the end. With whole models
/// per worker, three models on two cores left one core idle for the last
/// model (at 1M rows per table train took 1.13x as long).
///
/// A model starts (its head) only while the estimated peaks of the models
/// started and not yet finished, and its own, fit in the memory budget
/// (`--memory`); when none is started, the largest waiting model starts
/// whatever its size. Outcomes come back in `jobs` order.
fn train_side_by_side(
    args: &Args,
    layout: &Layout,
    context: &RunContext,
    jobs: &[Job],
) -> Vec<Result<Outcome>> {
    use std::sync::{Condvar, Mutex};

    let threads = args.threads();
    let workers = threads.clamp(1, Dataset::ALL.len());
    let share = (threads / workers).max(1);
    let budget = args.memory_budget();
    let peaks: Vec<u64> = jobs
        .iter()
        .map(|j| estimated_peak(j.dataset, j.rows))
        .collect();
    /// Where a model is in its course.
    enum Step {
        Waiting,
        Head,
        Ready(Box<Head>),
        Tail,
        Done,
    }
    enum Task {
        Head(usize),
        Tail(usize, Box<Head>),
    }
    /// Each model's step.
    struct Queue {
        steps: Vec<Step>,
    }
    impl Queue {
        /// The models started and not yet done.
        fn started(&self) -> impl Iterator<Item = usize> + '_ {
            (0..self.steps.len())
                .filter(|&i| matches!(self.steps[i], Step::Head | Step::Ready(_) | Step::Tail))
        }
    }
    // Largest first, for heads and tails alike.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].rows));
    let state = Mutex::new(Queue {
        steps: jobs.iter().map(|_| Step::Waiting).collect(),
    });
    let changed = Condvar::new();
    let outcomes: Vec<Mutex<Option<Result<Outcome>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = || -> Option<Task> {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let queue = &mut *guard;
            // The bytes the started models are estimated to hold.
            let held: u64 = queue.started().map(|i| peaks[i]).sum();
            let none_started = queue.started().next().is_none();
            let head = order.iter().copied().find(|&i| {
                matches!(queue.steps[i], Step::Waiting)
                    && (none_started || held.saturating_add(peaks[i]) <= budget)
            });
            if let Some(i) = head {
                queue.steps[i] = Step::Head;
                return Some(Task::Head(i));
            }
            let tail = order
                .iter()
                .copied()
                .find(|&i| matches!(queue.steps[i], Step::Ready(_)));
            if let Some(i) = tail {
                let Step::Ready(head) = std::mem::replace(&mut queue.steps[i], Step::Tail) else {
                    unreachable!("found ready")
                };
                return Some(Task::Tail(i, head));
            }
            // Nothing to take now: wait while a head still running will
            // leave a tail, or a waiting model may start when memory frees.
            if !queue
                .steps
                .iter()
                .any(|s| matches!(s, Step::Waiting | Step::Head))
            {
                return None;
            }
            guard = changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    };
    let finish = |i: usize, step: Step, outcome: Option<Result<Outcome>>| {
        if let Some(outcome) = outcome {
            *outcomes[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
        let mut queue = state.lock().unwrap_or_else(|e| e.into_inner());
        queue.steps[i] = step;
        changed.notify_all();
    };
    let training = |job: &Job| {
        let path = layout.clean(job.dataset);
        format!("training the {} model on {}", job.dataset, path.display())
    };
    let work = || {
        while let Some(task) = next() {
            match task {
                Task::Head(i) => {
                    let job = &jobs[i];
                    let head = caught(|| {
                        Rows::load(&layout.clean(job.dataset), job.dataset).and_then(|rows| {
                            train_head(args, share, layout, job, rows)
                                .with_context(|| training(job))
                        })
                    });
                    match head {
                        Ok(head) => finish(i, Step::Ready(Box::new(head)), None),
                        Err(e) => finish(i, Step::Done, Some(Err(e))),
                    }
                }
                Task::Tail(i, head) => {
                    let job = &jobs[i];
                    let outcome = caught(|| {
                        train_tail(args, share, layout, context, job, *head)
                            .with_context(|| training(job))
                    });
                    finish(i, Step::Done, Some(outcome));
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        // One worker is this thread.
        work();
    });
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(anyhow::anyhow!("not trained")))
        })
        .collect()
}

/// `f`'s result, or an error when it panicked (the panic's message is
/// already on stderr): a piece of work that panicked must still be marked
/// done, or the other workers would wait for its tail forever.
fn caught<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
}

struct Outcome {
    report: ModelReport,
    drift: DatasetDrift,
    importance: Option<Vec<(String, f64)>>,
    calibration: Option<DataFrame>,
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
fn train_columns(dataset: Dataset) -> Vec<&'static str> {
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
struct Rows {
    data: Data,
    buckets: Vec<f64>,
    timestamp_min: Option<i64>,
    timestamp_max: Option<i64>,
}

/// Rows read at a time.
const LOAD_BATCH_ROWS: usize = io::ROW_GROUP_ROWS;

impl Rows {
    fn load(path: &std::path::Path, dataset: Dataset) -> Result<Self> {
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

/// What a model's head leaves for its tail (see [`train_side_by_side`]).
struct Head {
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
fn train_head(args: &Args, threads: usize, layout: &Layout, job: &Job, rows: Rows) -> Result<Head> {
    let started = Instant::now();
    let dataset = job.dataset;
    let bad = rows.data.target.iter().filter(|t| !t.is_finite()).count();
    if bad > 0 {
        bail!(
            "{}: {bad} rows have no usable target; run `validate` first",
            layout.clean(dataset).display()
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
fn train_tail(
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
    let (promotion, drift, profile) =
        gate_and_drift(args, layout, context, job, &data, &buckets, &split, &chosen)?;
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
        data_sha256: file_sha256(&path)?,
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
#[allow(clippy::too_many_arguments)]
fn gate_and_drift(
    args: &Args,
    layout: &Layout,
    context: &RunContext,
    job: &Job,
    data: &Data,
    buckets: &[f64],
    split: &Split,
    chosen: &Chosen,
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

/// Fits the candidates of one model, timing each algorithm's fits.
struct Fitter<'a> {
    dataset: Dataset,
    data: &'a Data,
    candidates: &'a [Algorithm],
    settings: &'a GbmSettings,
    round: &'a dyn Fn(),
    fit_seconds: BTreeMap<Algorithm, f64>,
}

/// The model chosen by cross-validation, refitted on all training rows, with
/// every candidate's metrics beside it.
struct Chosen {
    fitted: Fitted,
    encoding: Encoding,
    /// Its predictions for the held-out rows, and their truth.
    predicted: Vec<f64>,
    truth: Vec<f64>,
    results: BTreeMap<Algorithm, Candidate>,
}

impl Fitter<'_> {
    fn fit(
        &mut self,
        algorithm: Algorithm,
        encoded: &features::Encoded,
        rows: &[usize],
    ) -> Result<Fitted> {
        let t = Instant::now();
        let fitted = Fitted::fit(
            algorithm,
            self.dataset,
            encoded,
            rows,
            self.settings,
            self.round,
        )?;
        *self.fit_seconds.entry(algorithm).or_default() += t.elapsed().as_secs_f64();
        Ok(fitted)
    }

    /// Model selection: every candidate on every fold of the sample,
    /// encodings fitted on the fold's training rows. Each candidate's RMSE per fold.
    fn cross_validate(
        &mut self,
        folds: &[(Vec<usize>, Vec<usize>)],
        progress: &contract::progress::Progress,
    ) -> Result<BTreeMap<Algorithm, Vec<f64>>> {
        let mut cv: BTreeMap<Algorithm, Vec<f64>> = BTreeMap::new();
        for (i, (fit_rows, held_rows)) in folds.iter().enumerate() {
            progress.set_phase(&format!("model selection, fold {}/{}", i + 1, folds.len()));
            let encoding = Encoding::fit(self.data, self.dataset, fit_rows);
            let encoded = encoding.encode(self.data);
            let truth = self.data.target_of(held_rows);
            for &algorithm in self.candidates {
                let fitted = self.fit(algorithm, &encoded, fit_rows)?;
                let predicted = fitted.predict(self.dataset, &encoded, held_rows)?;
                cv.entry(algorithm)
                    .or_default()
                    .push(evaluate(&truth, &predicted, self.dataset.tolerance()).rmse);
            }
        }
        Ok(cv)
    }

    /// Final fits on all training rows, metrics on the held-out rows. Every
    /// candidate is refitted so each is reported beside the chosen one: the
    /// one with the lowest mean RMSE over the folds. `encoding` was fitted
    /// on `train_rows`; `gbm` is LightGBM already fitted on them (the head's).
    fn final_fits(
        &mut self,
        mut cv: BTreeMap<Algorithm, Vec<f64>>,
        encoding: Encoding,
        mut gbm: Option<Fitted>,
        train_rows: &[usize],
        test_rows: &[usize],
    ) -> Result<Chosen> {
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let chosen = *cv
            .iter()
            .min_by(|a, b| mean(a.1).total_cmp(&mean(b.1)))
            .map(|(a, _)| a)
            .context("no candidate")?;
        let encoded = encoding.encode(self.data);
        let truth = self.data.target_of(test_rows);
        let mut results = BTreeMap::new();
        let mut chosen_fit = None;
        let mut chosen_pred = Vec::new();
        for &algorithm in self.candidates {
            let fitted = match gbm.take() {
                Some(fitted) if algorithm == Algorithm::Lightgbm => fitted,
                other => {
                    gbm = other;
                    self.fit(algorithm, &encoded, train_rows)?
                }
            };
            let predicted = fitted.predict(self.dataset, &encoded, test_rows)?;
            let folds_rmse = cv.remove(&algorithm).unwrap_or_default();
            results.insert(
                algorithm,
                Candidate {
                    cv_rmse: mean(&folds_rmse),
                    cv_rmse_per_fold: folds_rmse,
                    test: evaluate(&truth, &predicted, self.dataset.tolerance()),
                },
            );
            if algorithm == chosen {
                chosen_fit = Some(fitted);
                chosen_pred = predicted;
            }
        }
        Ok(Chosen {
            fitted: chosen_fit.context("the chosen model was not fitted")?,
            encoding,
            predicted: chosen_pred,
            truth,
            results,
        })
    }
}

impl Chosen {
    /// Each LightGBM feature's share of the total gain, when the chosen model has gains.
    fn importance_shares(&self) -> Option<Vec<(String, f64)>> {
        self.fitted.importance().map(|gains| {
            let total: f64 = gains.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            self.encoding
                .gbm_feature_names()
                .into_iter()
                .zip(gains)
                .map(|(f, g)| (f, g / total))
                .collect()
        })
    }
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

fn write_insights(
    commit: &mut Commit,
    layout: &Layout,
    importance: Vec<(String, String, f64)>,
    calibration: Option<DataFrame>,
) -> Result<()> {
    use contract::reports::insight::{self, importance as column};
    if !importance.is_empty() {
        let mut df = df!(
            column::MODEL => importance.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            column::FEATURE => importance.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            column::GAIN_SHARE => importance.iter().map(|r| r.2).collect::<Vec<_>>(),
        )?;
        io::write_parquet(
            &mut df,
            &commit.file(&layout.insight(insight::FEATURE_IMPORTANCE))?,
        )?;
    }
    if let Some(mut c) = calibration {
        io::write_parquet(&mut c, &commit.file(&layout.insight(insight::CALIBRATION))?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_piece_of_work_becomes_an_error() {
        let panicked: Result<()> = caught(|| panic!("boom"));
        assert_eq!(panicked.unwrap_err().to_string(), "a worker panicked");
        assert_eq!(caught(|| Ok(7)).unwrap(), 7);
        let failed: Result<()> = caught(|| bail!("no rows"));
        assert_eq!(failed.unwrap_err().to_string(), "no rows");
    }
}
