//! The `report` stage: the CSAT insights (data/insights, reports/insights.json)
//! and the page people read (reports/report.html), from the clean datasets,
//! the rejects, the models and the other stages' reports. Every input is read
//! before anything is written, and the outputs are committed together, so a
//! bad input leaves the previous report in place.

mod charts;
mod grouping;
mod html;
pub mod insights;
mod over_time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use contract::columns::{
    ACTION_TYPE, CSAT_SCORE, MODEL, PROVIDER, QUALITY_SCORE, REASON, SOURCE, TIMESTAMP,
};
use contract::commit::Commit;
use contract::reports::{
    Algorithm, ExtractReport, GroupStat, ModelReport, ModelStatus, SourceInsights, TrainingReport,
    ValidationReport, insight,
};
use contract::{ContractError, Dataset, Layout, RawTable, io};
use polars::prelude::*;

use contract::registry::{CardSummary, MODEL_FORMAT, files};

use crate::insights::Insights;

/// Most points a scatter plot draws (an even stride through the held-out rows).
const SCATTER_POINTS: usize = 2_000;
/// Example rows shown per reject reason.
const EXAMPLES: usize = 3;

/// Writes the CSAT insights and data/reports/report.html from what the other
/// stages left under DATA.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// No progress bar or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
}

/// Rows rejected for one reason, with a few of them as text.
pub struct RejectExamples {
    /// The dataset, or `raw <table>` for rows extract could not read.
    pub origin: String,
    pub reason: String,
    pub rows: usize,
    pub columns: Vec<String>,
    pub examples: Vec<Vec<String>>,
}

/// One model as the page shows it.
pub struct ModelView {
    pub name: String,
    pub report: ModelReport,
    pub card: Option<CardSummary>,
    /// (actual, predicted), an even sample of the held-out rows.
    pub points: Vec<(f64, f64)>,
    /// predicted - actual on every held-out row.
    pub residuals: Vec<f64>,
    /// (feature, share of gain), largest first.
    pub importance: Vec<(String, f64)>,
}

/// One row of train's calibration table: a provider and decile of the A/B prediction.
pub struct CalibrationBin {
    pub provider: String,
    pub rows: usize,
    pub prediction: f64,
    pub actual: f64,
    pub calibrated: f64,
}

impl CalibrationBin {
    /// Mean A/B prediction minus mean rating: positive runs high.
    pub fn bias_before(&self) -> f64 {
        self.prediction - self.actual
    }

    /// The same for the performance model's prediction.
    pub fn bias_after(&self) -> f64 {
        self.calibrated - self.actual
    }
}

/// Clean rows per dataset and `_source`.
pub type CleanBySource = BTreeMap<Dataset, BTreeMap<String, usize>>;

/// Everything the page needs, read and checked before anything is written.
pub struct Inputs {
    pub now: DateTime<Utc>,
    pub extract: ExtractReport,
    pub validation: ValidationReport,
    /// None before any train run: the page then says why each model has none.
    pub training: Option<TrainingReport>,
    /// Per dataset, why there is no model yet (only when `training` is None).
    pub untrained: Vec<(Dataset, String)>,
    /// Clean rows per dataset and `_source`.
    pub clean_by_source: CleanBySource,
    pub rejects: Vec<RejectExamples>,
    pub models: Vec<ModelView>,
    pub calibration: Option<Vec<CalibrationBin>>,
    pub insights: Insights,
    /// Every run so far, and the last drift check.
    pub history: Vec<contract::history::RunRecord>,
    pub drift: Option<contract::drift::DriftReport>,
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::new(&args.data);
    let mut commit = Commit::begin(&layout, "report")?;
    contract::progress::set_quiet(args.quiet);
    // Every input is there before any progress starts. The training report
    // may be missing only while no model was ever trained (a game's first
    // hours, every dataset short of its minimum): the page is then about the
    // data, and says why there is no model.
    let trained_before = Dataset::ALL
        .iter()
        .any(|d| layout.model_dir(*d).symlink_metadata().is_ok());
    for path in [layout.extract_report(), layout.validation_report()]
        .into_iter()
        .chain(trained_before.then(|| layout.training_report()))
        .chain(Dataset::ALL.map(|d| layout.clean(d)))
    {
        io::require_input(&path)?;
    }
    let progress =
        contract::progress::Progress::new("report", "insights and page", "steps", Some(3));
    progress.set_phase("reading inputs, computing insights");
    let inputs = read_inputs(&layout)?;
    progress.inc(1);
    progress.set_phase("drawing the page");
    let page = html::render(&inputs, &layout)?;
    progress.inc(1);
    progress.set_phase("writing");

    for table in &inputs.insights.tables {
        let mut df = table
            .to_frame()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("building the {} table", table.name))?;
        io::write_parquet(&mut df, &commit.file(&layout.insight(table.name))?)?;
    }
    io::write_json(
        &inputs.insights.report,
        &commit.file(&layout.insights_report())?,
    )?;
    let html_path = layout.report_html();
    let staged = commit.file(&html_path)?;
    std::fs::write(&staged, page.as_bytes())
        .with_context(|| format!("writing {}", staged.display()))?;
    commit.finish()?;
    progress.inc(1);
    progress.finish();

    for (source, s) in &inputs.insights.report.sources {
        println!("{}", optimal_line(source, s));
    }
    println!(
        "report: {} ({} kB) and {} insight tables in {}, in {:.2} s",
        html_path.display(),
        page.len().div_ceil(1024),
        inputs.insights.tables.len(),
        layout.insights_dir().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The console's line for one source's optimal quality range, worded as the
/// page's callout is.
fn optimal_line(source: &str, s: &SourceInsights) -> String {
    let mean = |g: &GroupStat| g.stat.mean.unwrap_or(f64::NAN);
    match &s.optimal {
        Some(o) if o.best.group == o.cheapest_as_good.group => format!(
            "report: {source}: optimal quality range {}: the highest mean CSAT \
             ({:.3}, n={}), and no lower range's interval reaches it",
            o.best.group,
            mean(&o.best),
            o.best.stat.rows
        ),
        Some(o) => format!(
            "report: {source}: optimal quality range {} (mean {:.3}, n={}): the cheapest \
             range whose CSAT is as good as the best range's ({}, mean {:.3}, n={})",
            o.cheapest_as_good.group,
            mean(&o.cheapest_as_good),
            o.cheapest_as_good.stat.rows,
            o.best.group,
            mean(&o.best),
            o.best.stat.rows
        ),
        None => format!(
            "report: {source}: no optimal quality range ({})",
            s.note.as_deref().unwrap_or("not enough rows")
        ),
    }
}

fn read_inputs(layout: &Layout) -> Result<Inputs> {
    let now = Utc::now();
    let extract: ExtractReport = io::read_json(&layout.extract_report())?;
    let validation: ValidationReport = io::read_json(&layout.validation_report())?;
    let training: Option<TrainingReport> = io::read_json_if_present(&layout.training_report())?;
    let (clean_by_source, insights) = read_clean(layout, now)?;
    let rejects = read_rejects(layout, &validation)?;
    let (models, calibration) = match &training {
        Some(training) => read_models(layout, training)?,
        None => (Vec::new(), None),
    };
    let untrained = match training {
        Some(_) => Vec::new(),
        None => Dataset::ALL
            .iter()
            .map(|d| (*d, contract::registry::no_champion_yet(layout, *d)))
            .collect(),
    };
    let history = contract::history::read(&layout.history())?;
    let drift = io::read_json_if_present(&layout.drift_report())?;
    Ok(Inputs {
        now,
        extract,
        validation,
        training,
        untrained,
        clean_by_source,
        rejects,
        models,
        calibration,
        insights,
        history,
        drift,
    })
}

/// The clean datasets' rows per source, and the CSAT insights computed from
/// them: group-bys on polars' streaming engine over scans of the clean files,
/// so the report holds the groups, not the datasets.
fn read_clean(layout: &Layout, now: DateTime<Utc>) -> Result<(CleanBySource, Insights)> {
    let scan = |dataset: Dataset, columns: &[&str]| {
        io::scan_dataset_columns(&layout.clean(dataset), dataset, columns)
    };
    let csat = scan(
        Dataset::Csat,
        &[
            SOURCE,
            PROVIDER,
            MODEL,
            ACTION_TYPE,
            QUALITY_SCORE,
            CSAT_SCORE,
            TIMESTAMP,
        ],
    )?;
    let quality = scan(
        Dataset::Quality,
        &[SOURCE, PROVIDER, MODEL, ACTION_TYPE, QUALITY_SCORE],
    )?;
    let performance = scan(Dataset::Performance, &[SOURCE])?;
    let mut clean_by_source = BTreeMap::new();
    for (dataset, lf) in [
        (Dataset::Quality, &quality),
        (Dataset::Csat, &csat),
        (Dataset::Performance, &performance),
    ] {
        clean_by_source.insert(
            dataset,
            count_by_source(lf.clone())
                .with_context(|| format!("{}: counting rows", layout.clean(dataset).display()))?,
        );
    }
    // The streaming engine's errors name no file: say which ones were read.
    let insights = insights::compute(csat, quality, now).with_context(|| {
        format!(
            "{} and {}: computing the insights",
            layout.clean(Dataset::Csat).display(),
            layout.clean(Dataset::Quality).display()
        )
    })?;
    Ok((clean_by_source, insights))
}

/// A few rows of every reject reason: validate's, and extract's unparseable rows.
fn read_rejects(layout: &Layout, validation: &ValidationReport) -> Result<Vec<RejectExamples>> {
    let mut rejects = Vec::new();
    for dataset in Dataset::ALL {
        let Some(counts) = validation.datasets.get(dataset.name()) else {
            continue;
        };
        for (reason, &rows) in counts.rejected.iter().filter(|(_, n)| **n > 0) {
            let path = layout.rejected(dataset);
            let (columns, examples) = examples(&path, Some(reason.name()))?;
            rejects.push(RejectExamples {
                origin: dataset.name().to_string(),
                reason: reason.name().to_string(),
                rows,
                columns,
                examples,
            });
        }
    }
    for table in RawTable::ALL {
        let path = layout.raw_rejected(table);
        if !path.exists() {
            continue;
        }
        let rows = io::parquet_rows(&path)?;
        if rows > 0 {
            let (columns, examples) = examples(&path, None)?;
            rejects.push(RejectExamples {
                origin: format!("raw {}", table.name()),
                reason: contract::columns::UNPARSEABLE.into(),
                rows,
                columns,
                examples,
            });
        }
    }
    Ok(rejects)
}

/// Every model's view (card, held-out points, importance) and the
/// performance model's calibration table when it was trained.
fn read_models(
    layout: &Layout,
    training: &TrainingReport,
) -> Result<(Vec<ModelView>, Option<Vec<CalibrationBin>>)> {
    let mut models = Vec::new();
    for (name, report) in &training.models {
        models.push(model_view(layout, name, report)?);
    }
    let importance_needed = training
        .models
        .values()
        .any(|m| m.algorithm == Some(Algorithm::Lightgbm));
    if importance_needed {
        let path = layout.insight(insight::FEATURE_IMPORTANCE);
        let df = io::read_parquet(&path)?;
        let all = importance(&df).with_context(|| format!("reading {}", path.display()))?;
        for m in &mut models {
            if m.report.algorithm == Some(Algorithm::Lightgbm) {
                m.importance = all.get(&m.name).cloned().unwrap_or_default();
            }
        }
    }
    let calibration = match training.models.get(Dataset::Performance.name()) {
        Some(m) if m.status == ModelStatus::Trained => {
            let path = layout.insight(insight::CALIBRATION);
            let df = io::read_parquet(&path)?;
            Some(calibration(&df).with_context(|| format!("reading {}", path.display()))?)
        }
        _ => None,
    };
    Ok((models, calibration))
}

fn count_by_source(lf: LazyFrame) -> Result<BTreeMap<String, usize>> {
    let counts = lf
        .group_by([col(SOURCE)])
        .agg([len().alias("rows")])
        .collect_with_engine(Engine::Streaming)?
        .unwrap_single();
    let sources = counts.column(SOURCE)?.str()?.clone();
    let rows = counts.column("rows")?.cast(&DataType::UInt64)?;
    let rows = rows.u64()?;
    Ok(sources
        .iter()
        .zip(rows.iter())
        .map(|(s, n)| (s.unwrap_or("(none)").to_string(), n.unwrap_or(0) as usize))
        .collect())
}

/// The contract's error for a file that is not readable Parquet.
fn unreadable(path: &Path) -> impl Fn(PolarsError) -> ContractError + '_ {
    move |source| ContractError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// The columns and first rows (as text) of a reject file, for one reason.
fn examples(path: &Path, reason: Option<&str>) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    if !path.exists() {
        bail!(
            "{}: not found (validation.json counts rejected rows; run `validate` again)",
            path.display()
        );
    }
    let mut lf = io::scan_parquet(path).map_err(unreadable(path))?;
    if let Some(r) = reason {
        lf = lf.filter(col(REASON).eq(lit(r)));
    }
    let df = lf
        .limit(EXAMPLES as IdxSize)
        .collect()
        .map_err(unreadable(path))?;
    let columns = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let rows = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| cell_text(c.get(i).unwrap_or(AnyValue::Null)))
                .collect()
        })
        .collect();
    Ok((columns, rows))
}

fn cell_text(v: AnyValue) -> String {
    let text = match v {
        AnyValue::Null => String::new(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(f) => format!("{f}"),
        other => other.to_string(),
    };
    if text.chars().count() > 48 {
        format!("{}…", text.chars().take(47).collect::<String>())
    } else {
        text
    }
}

fn model_view(layout: &Layout, name: &str, report: &ModelReport) -> Result<ModelView> {
    let mut view = ModelView {
        name: name.to_string(),
        report: report.clone(),
        card: None,
        points: Vec::new(),
        residuals: Vec::new(),
        importance: Vec::new(),
    };
    if report.status != ModelStatus::Trained {
        return Ok(view);
    }
    let dataset = Dataset::from_name(name).with_context(|| {
        format!(
            "{}: unknown model `{name}`",
            layout.training_report().display()
        )
    })?;
    // The version this run made, promoted or not (its metrics are the
    // report's); a model of the layout before versions is its folder.
    let dir = match report.version {
        Some(v) => layout.version_dir(dataset, v),
        None => layout.model_dir(dataset),
    };
    let json = dir.join(files::MODEL_JSON);
    let card = CardSummary::read(&dir)?;
    if card.format != MODEL_FORMAT {
        bail!(
            "{}: model format `{}`, this report reads `{MODEL_FORMAT}`",
            json.display(),
            card.format,
        );
    }
    let holdout_path = dir.join(files::HOLDOUT);
    // Only the two numbers: the held-out keys are text, most of the file.
    let holdout = io::read_parquet_columns(&holdout_path, &[files::ACTUAL, files::PREDICTED])?;
    let column = |name: &str| -> Result<Vec<f64>> {
        let c = holdout
            .column(name)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: missing column `{name}`", holdout_path.display()))?
            .cast(&DataType::Float64)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{}: column `{name}` is not numeric", holdout_path.display())
            })?;
        Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let actual = column(files::ACTUAL)?;
    let predicted = column(files::PREDICTED)?;
    let stride = actual.len().div_ceil(SCATTER_POINTS).max(1);
    view.points = actual
        .iter()
        .zip(&predicted)
        .step_by(stride)
        .map(|(&a, &p)| (a, p))
        .filter(|(a, p)| a.is_finite() && p.is_finite())
        .collect();
    view.residuals = actual
        .iter()
        .zip(&predicted)
        .map(|(a, p)| p - a)
        .filter(|r| r.is_finite())
        .collect();
    view.card = Some(card);
    Ok(view)
}

/// Per model, its features by share of gain, largest first.
fn importance(df: &DataFrame) -> Result<BTreeMap<String, Vec<(String, f64)>>> {
    use contract::reports::insight::importance as column;
    let model = df.column(column::MODEL)?.str()?;
    let feature = df.column(column::FEATURE)?.str()?;
    let gain = df.column(column::GAIN_SHARE)?.f64()?;
    let mut out: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for ((m, f), g) in model.iter().zip(feature.iter()).zip(gain.iter()) {
        if let (Some(m), Some(f), Some(g)) = (m, f, g) {
            out.entry(m.to_string())
                .or_default()
                .push((f.to_string(), g));
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    Ok(out)
}

fn calibration(df: &DataFrame) -> Result<Vec<CalibrationBin>> {
    use contract::reports::insight::calibration as column;
    let provider = df.column(PROVIDER)?.str()?;
    let rows = df.column(column::ROWS)?.cast(&DataType::UInt64)?;
    let f = |name: &str| -> Result<Float64Chunked> {
        Ok(df.column(name)?.cast(&DataType::Float64)?.f64()?.clone())
    };
    let (prediction, actual, calibrated) = (
        f(column::MEAN_PREDICTION)?,
        f(column::MEAN_ACTUAL)?,
        f(column::MEAN_CALIBRATED)?,
    );
    Ok((0..df.height())
        .map(|i| CalibrationBin {
            provider: provider.get(i).unwrap_or("(none)").to_string(),
            rows: rows.u64().ok().and_then(|r| r.get(i)).unwrap_or(0) as usize,
            prediction: prediction.get(i).unwrap_or(f64::NAN),
            actual: actual.get(i).unwrap_or(f64::NAN),
            calibrated: calibrated.get(i).unwrap_or(f64::NAN),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::reports::{OptimalRange, Stat};

    fn group(name: &str, mean: f64, rows: usize) -> GroupStat {
        GroupStat {
            group: name.into(),
            stat: Stat {
                rows,
                mean: Some(mean),
                ..Stat::default()
            },
        }
    }

    #[test]
    fn the_optimal_line_says_which_range_and_why() {
        let mut s = SourceInsights {
            rows: 1000,
            optimal: Some(OptimalRange {
                best: group("0.9-1.0", 0.8941, 300),
                cheapest_as_good: group("0.9-1.0", 0.8941, 300),
            }),
            note: None,
            ranges: Vec::new(),
        };
        assert_eq!(
            optimal_line("synth", &s),
            "report: synth: optimal quality range 0.9-1.0: the highest mean CSAT \
             (0.894, n=300), and no lower range's interval reaches it"
        );
        s.optimal.as_mut().unwrap().cheapest_as_good = group("0.7-0.8", 0.881, 120);
        assert_eq!(
            optimal_line("supabase", &s),
            "report: supabase: optimal quality range 0.7-0.8 (mean 0.881, n=120): the \
             cheapest range whose CSAT is as good as the best range's (0.9-1.0, mean 0.894, n=300)"
        );
        s.optimal = None;
        s.note = Some("no range has 30 rows".into());
        assert_eq!(
            optimal_line("csv", &s),
            "report: csv: no optimal quality range (no range has 30 rows)"
        );
    }
}
