//! `validate`: every row of each training dataset lands in exactly one of
//! `data/clean/<dataset>.parquet` or `data/rejected/<dataset>.parquet`, the
//! rejected ones with the first reason that applies and a detail saying which
//! column and value. Column work only, one pass per dataset.
//!
//! This file reads, writes and reports; `checks` turns the rules into column
//! expressions, `seen_keys` is the duplicate check's memory, `summary` what
//! validation.json says of each dataset.

pub use contract::rules;

mod checks;
mod seen_keys;
mod summary;

pub use crate::checks::split;
use crate::checks::split_batch;
pub use crate::seen_keys::SeenKeys;
pub use crate::summary::Summary;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use contract::commit::Commit;
use contract::reports::{DatasetReport, Reason, ValidationReport};
use contract::{Dataset, Layout, io};
use polars::prelude::*;

/// The exit status when a dataset has fewer clean rows than its minimum.
pub const EXIT_BELOW_MINIMUM: u8 = 3;

/// Splits DATA/training/<dataset>.parquet into DATA/clean and DATA/rejected.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Timestamps later than this (plus --skew-minutes) are rejected; default: now.
    #[arg(long, value_parser = contract::timestamp::parse_arg)]
    pub now: Option<DateTime<Utc>>,
    /// No progress bar or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// Clock skew tolerated for timestamps in the future, in minutes.
    #[arg(long, default_value_t = 5)]
    pub skew_minutes: u32,
    /// Minimum clean rows for the quality dataset: below it validate exits 3. It
    /// can be raised, not lowered: train skips a dataset below its own minimum.
    #[arg(long, default_value_t = Dataset::Quality.min_rows(), value_parser = raised_minimum(Dataset::Quality))]
    pub min_quality: usize,
    /// Minimum clean rows for the csat dataset: below it validate exits 3. It
    /// can be raised, not lowered: train skips a dataset below its own minimum.
    #[arg(long, default_value_t = Dataset::Csat.min_rows(), value_parser = raised_minimum(Dataset::Csat))]
    pub min_csat: usize,
    /// Minimum clean rows for the performance dataset: below it validate exits 3. It
    /// can be raised, not lowered: train skips a dataset below its own minimum.
    #[arg(long, default_value_t = Dataset::Performance.min_rows(), value_parser = raised_minimum(Dataset::Performance))]
    pub min_performance: usize,
    /// Exit 0 even when a dataset is below its minimum (a warning is still reported).
    #[arg(long)]
    pub allow_small: bool,
    /// Rows read, checked and written at a time: memory holds a few batches
    /// and the duplicate check's keys, whatever the size of the dataset.
    #[arg(long, default_value_t = BATCH_ROWS, value_parser = contract::at_least_one::<usize>)]
    pub batch_rows: usize,
}

/// Rows per batch: one of the training files' row groups. At 1M rows per
/// table, faster than four (1.14 s against 1.39 s) and under half the memory.
pub const BATCH_ROWS: usize = io::ROW_GROUP_ROWS;

impl Args {
    fn minimum(&self, dataset: Dataset) -> usize {
        match dataset {
            Dataset::Quality => self.min_quality,
            Dataset::Csat => self.min_csat,
            Dataset::Performance => self.min_performance,
        }
    }
}

/// A `--min-<dataset>` value: at least train's minimum for that dataset. A
/// lower one would let validate pass a dataset train then skips.
fn raised_minimum(
    dataset: Dataset,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| {
        let value: usize = text.parse().map_err(|e| format!("{e}"))?;
        let floor = dataset.min_rows();
        if value < floor {
            return Err(format!(
                "train needs at least {floor} clean {dataset} rows and skips a smaller \
                 dataset, so this minimum can be raised, not lowered; --allow-small goes on \
                 with fewer"
            ));
        }
        Ok(value)
    }
}

/// Datasets with fewer clean rows than their minimum; `main` exits with
/// [`EXIT_BELOW_MINIMUM`]. The message says how to get past it, from the
/// command line and from make.
#[derive(Debug, thiserror::Error)]
#[error("{}; {}", .small.join("; "), advice(.trainable))]
pub struct BelowMinimum {
    /// One `<dataset>: N clean rows, below the minimum of M` per small dataset.
    pub small: Vec<String>,
    /// The datasets with train's minimum of clean rows or more: what train
    /// trains when validate is told to go on.
    pub trainable: Vec<Dataset>,
}

fn advice(trainable: &[Dataset]) -> String {
    let go_on = if trainable.is_empty() {
        "to go on anyway (train then has no dataset to train; `make report` shows the data \
         meanwhile)"
            .to_string()
    } else {
        let names: Vec<_> = trainable.iter().map(|d| d.name()).collect();
        format!(
            "to go on and train {} (train skips a dataset below its own minimum)",
            names.join(" and ")
        )
    };
    format!(
        "more rows fix it (a longer --days window, or synth's --rows; DAYS= and ROWS= for \
         make), or pass --allow-small (ALLOW_SMALL=yes for make) {go_on}"
    )
}

pub fn run(args: &Args) -> Result<()> {
    contract::progress::set_quiet(args.quiet);
    let layout = Layout::new(&args.data);
    // clean/, rejected/ and the report change together, or not at all.
    let mut commit = Commit::begin(&layout, "validate")?;
    let now = args.now.unwrap_or_else(Utc::now);
    let horizon = now + Duration::minutes(i64::from(args.skew_minutes));

    // Check every input before reading any rows.
    let (total_rows, mut noticed) = check_inputs(&layout)?;

    let mut report = ValidationReport {
        validated_at: Utc::now(),
        now,
        allow_small: args.allow_small,
        datasets: BTreeMap::new(),
    };
    let mut small = Vec::new();
    let mut trainable = Vec::new();
    let progress =
        contract::progress::Progress::new("validate", "datasets", "rows", Some(total_rows));
    for dataset in Dataset::ALL {
        progress.set_phase(&format!("reading and checking {dataset}"));
        let minimum = args.minimum(dataset);
        let staged = (
            commit.file(&layout.clean(dataset))?,
            commit.file(&layout.rejected(dataset))?,
        );
        let mut entry = validate_dataset(
            &layout.training(dataset),
            dataset,
            horizon,
            args.batch_rows,
            staged,
            &progress,
        )?
        .into_report(minimum);
        if let Some(first) = noticed.remove(&dataset) {
            entry.warnings.splice(0..0, first);
        }
        progress.suspend(|| print_entry(dataset, &entry));
        if entry.clean < minimum {
            small.push(format!(
                "{}: {}, below the minimum of {minimum}",
                dataset.name(),
                contract::count(entry.clean, "clean row")
            ));
        }
        if entry.clean >= dataset.min_rows() {
            trainable.push(dataset);
        }
        report.datasets.insert(dataset.name().to_string(), entry);
    }
    progress.finish();
    io::write_json(&report, &commit.file(&layout.validation_report())?)?;
    commit.finish()?;
    if !small.is_empty() && !args.allow_small {
        return Err(BelowMinimum { small, trainable }.into());
    }
    Ok(())
}

/// What the writer thread is handed: a batch's clean and rejected rows, then
/// `Done` once every batch is split (without it, nothing is kept).
enum Written {
    Batch(DataFrame, DataFrame),
    Done,
}

/// Splits one training dataset into its clean and rejected files, a batch of
/// rows at a time: memory holds a few batches and the duplicate check's keys
/// (16 bytes per distinct key), never the whole dataset. Batches are read in
/// row order, so "the first row with a key is kept" means what it does on
/// the whole file; a writer thread encodes each batch's rows while the next
/// batch is read and split (at most one batch waits for it).
fn validate_dataset(
    path: &std::path::Path,
    dataset: Dataset,
    horizon: DateTime<Utc>,
    batch_rows: usize,
    (clean_path, rejected_path): (PathBuf, PathBuf),
    progress: &contract::progress::Progress,
) -> Result<Summary> {
    let rows = io::parquet_rows(path)?;
    let columns: Vec<&str> = dataset.columns().iter().map(|(n, _)| *n).collect();
    let (send, receive) = std::sync::mpsc::sync_channel::<Written>(1);
    std::thread::scope(|scope| -> Result<Summary> {
        let writer = scope.spawn(move || write_split(receive, &clean_path, &rejected_path));
        let mut seen = SeenKeys::default();
        let mut summary = Summary::new(dataset);
        let mut split_all = || -> Result<()> {
            for offset in (0..rows).step_by(batch_rows) {
                let df = io::read_dataset_slice(path, dataset, &columns, offset, batch_rows)?;
                progress.inc(df.height() as u64);
                let (clean, rejected) = split_batch(df.clone(), dataset, horizon, &mut seen)
                    .with_context(|| format!("validating {}", path.display()))?;
                summary.add(&df, &clean, &rejected)?;
                drop(df);
                if send.send(Written::Batch(clean, rejected)).is_err() {
                    break; // the writer failed: its error is the one to report
                }
            }
            Ok(())
        };
        let split = split_all();
        if split.is_ok() {
            let _ = send.send(Written::Done);
        }
        drop(send);
        let written = join(writer);
        split?;
        written?;
        Ok(summary)
    })
}

/// The writer thread: each batch's clean and rejected rows appended to their
/// files (created with the first batch's columns), committed on `Done`.
fn write_split(
    receive: std::sync::mpsc::Receiver<Written>,
    clean_path: &std::path::Path,
    rejected_path: &std::path::Path,
) -> Result<()> {
    let mut clean_file = io::AtomicFile::create(clean_path)?;
    let mut rejected_file = io::AtomicFile::create(rejected_path)?;
    let compression = ParquetCompression::Uncompressed;
    let mut writers = None;
    let mut done = false;
    let failed = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| contract::ContractError::Write { path, source }
    };
    for message in receive {
        let (mut clean, mut rejected) = match message {
            Written::Batch(clean, rejected) => (clean, rejected),
            Written::Done => {
                done = true;
                break;
            }
        };
        if writers.is_none() {
            writers = Some((
                io::RowGroupWriter::new(clean_file.writer(), clean.schema(), compression)
                    .map_err(failed(clean_path))?,
                io::RowGroupWriter::new(rejected_file.writer(), rejected.schema(), compression)
                    .map_err(failed(rejected_path))?,
            ));
        }
        let (c, r) = writers.as_mut().expect("created above");
        c.write(&mut clean).map_err(failed(clean_path))?;
        r.write(&mut rejected).map_err(failed(rejected_path))?;
    }
    if !done {
        return Ok(()); // the reading side failed and reports why
    }
    let (c, r) = writers.context("no batch to write")?;
    c.finish().map_err(failed(clean_path))?;
    r.finish().map_err(failed(rejected_path))?;
    clean_file.commit()?;
    rejected_file.commit()?;
    Ok(())
}

/// Every training dataset's footer and schema checked: their rows in all, and
/// the warnings about each file's columns, which come first in its dataset's
/// warnings: columns that are not the dataset's, and timestamps without a
/// time zone (both what a swapped transform may write).
fn check_inputs(layout: &Layout) -> Result<(u64, BTreeMap<Dataset, Vec<String>>)> {
    let mut total_rows = 0;
    let mut noticed = BTreeMap::new();
    for dataset in Dataset::ALL {
        let path = layout.training(dataset);
        let io::CheckedDataset {
            rows,
            extra_columns,
            naive_timestamps,
        } = io::check_dataset(&path, dataset)?;
        let mut warnings = Vec::new();
        if !extra_columns.is_empty() {
            warnings.push(not_carried(dataset, &extra_columns));
        }
        warnings.extend(naive_timestamps.iter().map(|c| read_as_utc(dataset, c)));
        if !warnings.is_empty() {
            noticed.insert(dataset, warnings);
        }
        total_rows += rows as u64;
        if rows == 0 {
            anyhow::bail!(
                "{}: empty dataset (0 rows); nothing to validate",
                path.display()
            );
        }
    }
    Ok((total_rows, noticed))
}

/// The warning for a timestamp column written without a time zone.
fn read_as_utc(dataset: Dataset, column: &str) -> String {
    format!(
        "column `{column}` of training/{dataset}.parquet has no time zone and is read as UTC: \
         if it holds local times, each is off by its offset (write it with a zone, or in UTC)"
    )
}

/// The warning for a training file's columns that are not the dataset's: a
/// transform swapped for another program may add one and expect train to use it.
fn not_carried(dataset: Dataset, columns: &[String]) -> String {
    let (noun, verb, them) = if columns.len() == 1 {
        ("column", "is", "it")
    } else {
        ("columns", "are", "them")
    };
    format!(
        "{noun} {} of training/{dataset}.parquet {verb} not among the {dataset} dataset's \
         columns (DESIGN.md), so clean/{dataset}.parquet leaves {them} out and no model sees {them}",
        contract::column_list(columns),
    )
}

/// A dataset's line: rows in, clean, rejected by reason; then its warnings.
fn print_entry(dataset: Dataset, entry: &DatasetReport) {
    let by_reason: Vec<String> = Reason::ALL
        .iter()
        .map(|r| format!("{r} {}", entry.rejected.get(r).copied().unwrap_or(0)))
        .collect();
    println!(
        "validate: {:<12} {:>9} in {:>9} clean {:>7} rejected ({})",
        dataset.name(),
        entry.rows_in,
        entry.clean,
        entry.rows_in - entry.clean,
        by_reason.join(", ")
    );
    for w in &entry.warnings {
        println!("validate: {:<12} warning: {w}", dataset.name());
    }
}

/// A writer thread's result; its panic goes on in this thread.
fn join(handle: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
