//! `status`: what data is there, where it came from, how fresh it is, which
//! model versions are champions and how they did, how the data drifted and
//! what the last runs decided, on one screen. Reports are read through the contract's
//! types; a file that is there but cannot be read is an error naming it, never
//! shown as "none".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use contract::columns::{CREATED_AT, SOURCE, TIMESTAMP};
use contract::drift::{DriftLevel, DriftReport};
use contract::history::{RunEvent, RunRecord};
use contract::registry::{self, CardSummary};
use contract::reports::{ExtractReport, TrainingReport, ValidationReport};
use contract::{ContractError, Dataset, Layout, RawTable, commit, history, io};
use polars::prelude::*;

/// Shows rows, sources, time ranges, rejects and model metrics under DATA.
#[derive(Debug, Parser)]
#[command(name = "status", version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

fn age(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// Rows, sources and time range of some Parquet files, reading only the two
/// columns needed.
struct Summary {
    rows: usize,
    sources: String,
    range: String,
}

fn summarise(paths: &[PathBuf], time_column: &str) -> Result<Summary, ContractError> {
    let invalid = |path: &Path, e: PolarsError| ContractError::Parquet {
        path: path.to_path_buf(),
        source: e,
    };
    let mut rows = 0;
    let mut sources = std::collections::BTreeSet::new();
    let (mut min, mut max): (Option<i64>, Option<i64>) = (None, None);
    for path in paths {
        let df = contract::io::scan_parquet(path)
            .and_then(|lf| lf.select([col(time_column), col(SOURCE)]).collect())
            .map_err(|e| invalid(path, e))?;
        rows += df.height();
        let times = df
            .column(time_column)
            .and_then(|c| c.cast(&DataType::Int64))
            .map_err(|e| invalid(path, e))?;
        let times = times.i64().map_err(|e| invalid(path, e))?;
        min = min.into_iter().chain(times.min()).min();
        max = max.into_iter().chain(times.max()).max();
        let unique = df
            .column(SOURCE)
            .and_then(|c| c.unique())
            .map_err(|e| invalid(path, e))?;
        for s in unique.str().map_err(|e| invalid(path, e))?.iter().flatten() {
            sources.insert(s.to_string());
        }
    }
    let fmt = |v: Option<i64>| {
        v.and_then(DateTime::from_timestamp_micros)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "no timestamps".into())
    };
    Ok(Summary {
        rows,
        sources: sources.into_iter().collect::<Vec<_>>().join(","),
        range: format!("{} .. {}", fmt(min), fmt(max)),
    })
}

/// A JSON report: `None` when absent, an error naming it when unreadable.
fn report<T: serde::de::DeserializeOwned>(path: &Path, errors: &mut Vec<String>) -> Option<T> {
    io::read_json_if_present(path).unwrap_or_else(|e| {
        errors.push(e.to_string());
        None
    })
}

/// Rows of a Parquet file from its footer: `None` when absent, an error
/// naming it when it cannot be opened or read.
fn rows_of(path: &Path, errors: &mut Vec<String>) -> Option<usize> {
    if !path.exists() {
        return None;
    }
    io::parquet_rows(path)
        .map_err(|e| errors.push(e.to_string()))
        .ok()
}

pub fn run(args: &Args) -> Result<()> {
    let layout = Layout::new(&args.data);
    // Finish or undo a run a crash interrupted, unless a stage is at work now.
    if layout.root().is_dir() {
        match commit::lock(&layout, "status", Duration::ZERO) {
            Ok(_lock) => commit::recover(&layout)?,
            Err(_) => println!(
                "(a stage is writing to {} now; what follows may change when it commits)",
                layout.root().display()
            ),
        }
    }
    let mut errors: Vec<String> = Vec::new();
    let mut any = raw_tables(&layout, &mut errors);
    let (some, too_few) = datasets(&layout, &mut errors);
    any |= some;
    // Read once: the models' hand promotions and the last runs both come from it.
    let history = history::read(&layout.history());
    models(
        &layout,
        history.as_deref().unwrap_or(&[]),
        &too_few,
        &mut errors,
    );
    drift(&layout, &mut errors);
    runs(&layout, history, &mut errors);
    let html = layout.report_html();
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match modified(&html) {
        Some(written) => {
            let stale = modified(&layout.training_report()).is_some_and(|t| t > written);
            println!(
                "report: {} (written {}){}",
                html.display(),
                age(DateTime::<Utc>::from(written)),
                if stale {
                    "; older than the last training, run `make report`"
                } else {
                    ""
                }
            );
        }
        None => println!("report: none yet (run `make report` once validate has run)"),
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    if !any {
        bail!(
            "{}: no data yet; run `make pipeline` (or `synth` / `extract`, then `transform`)",
            layout.root().display()
        );
    }
    Ok(())
}

/// The raw tables: rows, sources, time range and unparseable rows, and the
/// last extraction. True when any table has rows.
fn raw_tables(layout: &Layout, errors: &mut Vec<String>) -> bool {
    let mut any = false;
    println!("raw tables ({})", layout.raw_root().display());
    for table in RawTable::ALL {
        let parts = match layout.raw_parts(table) {
            Ok(parts) => parts,
            Err(ContractError::NotFound { .. }) => {
                println!("  {:<24} none", table.name());
                continue;
            }
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        match summarise(&parts, CREATED_AT) {
            Ok(s) => {
                any = true;
                let unparseable = rows_of(&layout.raw_rejected(table), errors).unwrap_or(0);
                println!(
                    "  {:<24} {:>9} rows  sources {:<10} {}  unparseable {unparseable}",
                    table.name(),
                    s.rows,
                    s.sources,
                    s.range,
                );
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(r) = report::<ExtractReport>(&layout.extract_report(), errors) {
        let when = r
            .extracted_at
            .map(|t| format!("{} ({})", t.format("%Y-%m-%d %H:%M:%SZ"), age(t)))
            .unwrap_or_else(|| "at an unknown time".into());
        println!(
            "  last extraction: {when} from {}{}",
            r.source,
            if r.incremental { ", incremental" } else { "" }
        );
        for (table, c) in r.tables.iter().filter(|(_, c)| !c.extra_columns.is_empty()) {
            println!(
                "  {table}: beyond the contract, kept in _extra and read by no stage: {}",
                c.extra_columns.join(", ")
            );
        }
    }

    any
}

/// Clean rows of the datasets below train's minimum, by the last validation.
type TooFew = BTreeMap<Dataset, usize>;

/// The training datasets: rows, clean rows, sources, time range and rejects
/// by reason, and whether there are enough clean rows to train. True when any
/// dataset exists, and the datasets with too few.
fn datasets(layout: &Layout, errors: &mut Vec<String>) -> (bool, TooFew) {
    let mut any = false;
    let mut too_few = TooFew::new();
    let validation = report::<ValidationReport>(&layout.validation_report(), errors);
    println!("datasets");
    for dataset in Dataset::ALL {
        let path = layout.training(dataset);
        if !path.exists() {
            println!("  {:<12} none yet (make transform)", dataset.name());
            continue;
        }
        let summary = match summarise(std::slice::from_ref(&path), TIMESTAMP) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        any = true;
        let clean = rows_of(&layout.clean(dataset), errors)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "not validated".into());
        let validated = validation.as_ref().map(|v| v.datasets.get(dataset.name()));
        let mut enough = String::new();
        if let Some(Some(d)) = validated
            && d.clean < dataset.min_rows()
        {
            too_few.insert(dataset, d.clean);
            enough = format!(
                "  too few clean rows to train (needs {})",
                dataset.min_rows()
            );
        }
        let rejects = match validated {
            None => "not validated".to_string(),
            Some(None) => format!("not in {}", layout.validation_report().display()),
            Some(Some(d)) => {
                let parts: Vec<String> = d
                    .rejected
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(", ")
                }
            }
        };
        println!(
            "  {:<12} {:>9} rows  clean {clean:<9} sources {:<10} {}  rejects: {rejects}{enough}",
            dataset.name(),
            summary.rows,
            summary.sources,
            summary.range,
        );
        // What validate noticed, but the minimum, which the line above says.
        if let Some(Some(d)) = validated {
            for warning in d.other_warnings() {
                println!("  {:<12} warning: {warning}", "");
            }
        }
    }

    (any, too_few)
}

/// Each model's champion with its age and metrics, and what the last train
/// run decided about its new version.
fn models(layout: &Layout, history: &[RunRecord], too_few: &TooFew, errors: &mut Vec<String>) {
    println!("models (champions in {})", layout.models_dir().display());
    let training = report::<TrainingReport>(&layout.training_report(), errors);
    for dataset in Dataset::ALL {
        let name = dataset.name();
        let kept = registry::versions(layout, dataset).map_or(0, |v| v.len());
        let dir = layout.model_dir(dataset);
        match registry::champion(layout, dataset) {
            Ok(Some(version)) => match CardSummary::read(&dir) {
                Ok(card) => {
                    let line = match card.chosen() {
                        Some(c) => format!(
                            "{:<8} R2 {:.3}  MAE {:.3}  RMSE {:.3}",
                            card.algorithm.name(),
                            c.test.r2,
                            c.test.mae,
                            c.test.rmse
                        ),
                        None => card.algorithm.name().to_string(),
                    };
                    let versions = if kept == 1 { "version" } else { "versions" };
                    println!(
                        "  {name:<12} {version}  {line}  trained {}  ({kept} {versions} kept)",
                        age(card.trained_at)
                    );
                }
                Err(e) => errors.push(e.to_string()),
            },
            Ok(None) if dir.is_dir() => {
                println!("  {name:<12} a model from before versions (retrain)")
            }
            Ok(None) => match too_few.get(&dataset) {
                Some(&clean) => println!(
                    "  {name:<12} no champion yet: {}",
                    registry::too_few_to_train(dataset, clean)
                ),
                None => println!("  {name:<12} no champion yet (make train)"),
            },
            Err(e) => errors.push(e.to_string()),
        }
        if let Some(m) = training.as_ref().and_then(|t| t.models.get(name)) {
            match (m.version, &m.promotion) {
                (Some(v), Some(p)) => println!(
                    "  {:<12} last run: {v} {}: {}",
                    "",
                    if p.promoted {
                        "promoted"
                    } else {
                        "not promoted"
                    },
                    p.reason
                ),
                _ => println!(
                    "  {:<12} last run: {}",
                    "",
                    m.message.as_deref().unwrap_or("not trained")
                ),
            }
        }
        // A promotion by hand after that run moved the champion: say so.
        // (An unreadable history is reported once, with the runs below.)
        let last = history
            .iter()
            .rev()
            .find_map(|r| r.models.get(name).map(|m| (r, m)));
        if let Some((r, m)) = last.filter(|(r, _)| r.event == RunEvent::Rollback) {
            println!(
                "  {:<12} then by hand: {}, {}",
                "",
                m.outcome(r.event),
                age(r.finished_at)
            );
        }
    }
}

/// The last drift check, one line per dataset.
fn drift(layout: &Layout, errors: &mut Vec<String>) {
    let Some(report) = report::<DriftReport>(&layout.drift_report(), errors) else {
        return;
    };
    println!(
        "drift at the last training, against the champions then ({})",
        layout.drift_report().display()
    );
    for (name, d) in &report.datasets {
        if let Some(note) = &d.note {
            println!("  {name:<12} {note}");
            continue;
        }
        let champion = d.champion.map_or("-".into(), |v| v.to_string());
        let mut line = format!(
            "{} (max PSI {:.2}) vs {champion}",
            d.level.name(),
            d.max_psi
        );
        let moved: Vec<String> = d
            .features
            .iter()
            .filter(|f| f.level != DriftLevel::None)
            .map(|f| format!("{} {:.2}", f.feature, f.psi))
            .collect();
        if !moved.is_empty() {
            line.push_str(&format!("; PSI {}", moved.join(", ")));
        }
        for (feature, levels) in &d.unseen_levels {
            line.push_str(&format!("; new {feature}: {}", levels.join(", ")));
        }
        if let Some(t) = d.target.as_ref().and_then(|t| t.shift_std) {
            line.push_str(&format!("; target mean {t:+.2} sd"));
        }
        if let Some(r) = d.reject_rate.as_ref().filter(|r| r.jumped) {
            line.push_str(&format!(
                "; REJECT RATE JUMPED {:.1}% -> {:.1}%",
                r.champion * 100.0,
                r.current * 100.0
            ));
        }
        println!("  {name:<12} {line}");
    }
}

/// The last few lines of the run history.
fn runs(layout: &Layout, history: Result<Vec<RunRecord>, ContractError>, errors: &mut Vec<String>) {
    const SHOWN: usize = 5;
    let records = match history {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.to_string());
            return;
        }
    };
    if records.is_empty() {
        return;
    }
    println!(
        "last runs ({} in {})",
        records.len(),
        layout.history().display()
    );
    let shown: Vec<&RunRecord> = records.iter().rev().take(SHOWN).collect();
    // Ids of runs in the same second carry a suffix (-2): pad to the longest.
    let id_width = shown.iter().map(|r| r.run_id.len()).max().unwrap_or(0);
    let source_width = shown
        .iter()
        .map(|r| r.source.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(0);
    for r in shown {
        // A rollback reads no data.
        let rows = match r.event {
            RunEvent::Train => r
                .datasets
                .values()
                .map(|d| d.clean)
                .sum::<usize>()
                .to_string(),
            RunEvent::Rollback => "-".into(),
        };
        println!(
            "  {:<id_width$}  {:<9} {:<source_width$}  clean rows {rows}  {}",
            r.run_id,
            match r.event {
                RunEvent::Train => "train",
                RunEvent::Rollback => "rollback",
            },
            r.source.as_deref().unwrap_or("-"),
            r.outcomes()
        );
    }
}
