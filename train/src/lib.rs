//! `train`: the three models on `data/clean/`, evaluated honestly (held-out
//! rows by a stable hash of their key, seeded K-fold CV on the training part,
//! held-out metrics, every model beside its baselines), each saved as a new
//! version that replaces the champion only when the promotion gate says so
//! (`gate`), with the data's drift against the champion (`drift`) and a line
//! of run history.
//!
//! This file holds the flags and the run (plan, commit, reports, history);
//! `schedule` puts the models on the cores, `course` is one model's work from
//! its clean rows to its saved version, `selection` its candidates'
//! cross-validation and final fits.

mod course;
mod drift;
mod gate;
pub mod metrics;
pub mod predict;
mod retention;
mod schedule;
mod selection;
pub mod split;
mod summary;
pub mod versions;

// The model format lives in its own crate, shared with `serve`; train's
// modules name it by these paths.
pub use model::{artifact, features, models, respawn_with_passive_openmp};

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use contract::commit::Commit;
use contract::drift::{DatasetDrift, DriftReport};
use contract::history::{RunEvent, RunModel, RunRecord, RunRows};
use contract::registry::{self, Version};
use contract::reports::{
    ExtractReport, ModelReport, ModelStatus, PromotePolicy, TrainingReport, ValidationReport,
};
use contract::{Dataset, Layout, history, io};
use polars::prelude::*;

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
    /// does not freeze the champion. Counted over a run of such promotions,
    /// not per run: the champion's own lag uses it up.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// Models kept per model name (the champion is always kept besides). A
    /// model made again (a retrain on unchanged data) counts once: its first
    /// version stays, and this run's and the champion; the copies between go.
    #[arg(long, default_value_t = 5, value_parser = contract::at_least_one::<u32>)]
    pub keep: u32,
    /// Model selection runs on a seeded sample of the training rows: a tenth
    /// of them, at least 10 000, at most this many (itself at least 100); the
    /// chosen model is then fitted on all training rows.
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
            .min(self.selection_rows)
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
    // `--only csat,csat` (or `--only csat --only csat`) trains csat once.
    let datasets: Vec<Dataset> = Dataset::ALL
        .into_iter()
        .filter(|d| args.only.is_empty() || args.only.contains(d))
        .collect();
    let layout = Layout::new(&args.data);
    // Models, champions, insights and reports change together; a failing run changes nothing.
    let mut commit = Commit::begin(&layout, "train")?;
    let context = RunContext {
        run_id: history::new_run_id(&layout, started_at)?,
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
        notes: Vec::new(),
    };
    let jobs = plan(&layout, &mut commit, &datasets, &mut results)?;
    for (job, outcome) in jobs
        .iter()
        .zip(schedule::train_side_by_side(args, &layout, &context, &jobs))
    {
        results.take(args, &layout, &mut commit, job, outcome?)?;
    }
    let Results {
        report,
        drift,
        importance_rows,
        calibration,
        notes,
    } = results;
    if report
        .models
        .values()
        .all(|m| m.status != ModelStatus::Trained)
    {
        bail!(
            "no model trained: every dataset is below its minimum of clean rows \
             (`make report` shows the data meanwhile)"
        );
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
    for line in notes {
        println!("{line}");
    }
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
        // Fewer and the folds' fits get a few rows each, or none (LightGBM
        // then fails with a message about labels that names no flag).
        if self.selection_rows < 100 {
            bail!(
                "--selection-rows must be at least 100, got {}",
                self.selection_rows
            );
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
    /// Lines printed once the run is committed.
    notes: Vec<String>,
}

impl Results {
    /// A dataset with too few clean rows: reported, not trained. The champion
    /// stays: too little data is no reason to change models.
    fn skip(&mut self, dataset: Dataset, rows: usize, champion: Option<Version>) {
        let line = format!(
            "{}, below the minimum of {}; not trained",
            contract::count(rows, "clean row"),
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
        outcome: course::Outcome,
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
        self.notes.extend(retention::prune(
            commit,
            layout,
            dataset,
            (job.version, &job.dir),
            champion,
            args.keep,
        )?);
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
        let rows = io::check_dataset_columns(&path, dataset, &course::train_columns(dataset))?;
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
                    same_as_champion: p.is_some_and(|p| p.same_as_champion),
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
