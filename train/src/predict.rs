//! `predict`: a trained model applied to rows shaped like its dataset
//! (Parquet or CSV, by extension), written back with `predicted_<target>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use contract::{ContractError, Dataset, Layout, io, registry};
use polars::prelude::*;

use crate::artifact;
use crate::features::Data;

/// Adds the model's prediction (predicted_quality_score, predicted_csat_score or
/// predicted_actual) to the rows of --input and writes them to --output.
#[derive(Debug, Parser)]
#[command(name = "predict", version, about, long_about = None)]
pub struct PredictArgs {
    /// A model folder written by train, e.g. data/models/quality.
    #[arg(long)]
    pub model: PathBuf,
    /// Rows shaped like the model's training dataset (.parquet or .csv).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the rows with their prediction (.parquet or .csv).
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Parquet,
    Csv,
}

fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("parquet") => Ok(Format::Parquet),
        Some("csv") => Ok(Format::Csv),
        _ => bail!(
            "{}: unknown file type; use .parquet or .csv",
            path.display()
        ),
    }
}

/// Reads the input; in a CSV the model's numeric features are read as numbers
/// whatever the rows hold (a column empty in every row is all nulls, not text).
fn read(path: &Path, dataset: Dataset) -> Result<DataFrame> {
    Ok(match format_of(path)? {
        Format::Parquet => io::read_parquet(path)?,
        Format::Csv => {
            if !path.exists() {
                bail!("{}: not found", path.display());
            }
            let numeric: Schema = dataset
                .numeric_features()
                .iter()
                .map(|n| Field::new((*n).into(), DataType::Float64))
                .collect();
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(10_000))
                .with_schema_overwrite(Some(Arc::new(numeric)))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| anyhow::anyhow!("{}: not a readable CSV file: {e}", path.display()))?
        }
    })
}

fn write(df: &mut DataFrame, path: &Path) -> Result<()> {
    match format_of(path)? {
        Format::Parquet => io::write_parquet(df, path)?,
        Format::Csv => io::write_atomic(path, |w| {
            CsvWriter::new(w)
                .include_header(true)
                .finish(df)
                .map_err(|source| ContractError::Write {
                    path: path.to_path_buf(),
                    source,
                })
        })?,
    }
    Ok(())
}

/// A champion path with no model behind it (`data/models/performance`):
/// says why, as status does (too few clean rows, or no train run yet), or
/// that the name is no model's (`data/models/qualty`).
fn check_champion(model: &Path) -> Result<()> {
    if model.symlink_metadata().is_ok() {
        return Ok(());
    }
    let Some(data) = model
        .parent()
        .filter(|p| p.file_name() == Some("models".as_ref()))
        .and_then(Path::parent)
    else {
        return Ok(());
    };
    let name = model.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dataset =
        crate::model_name(name).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    bail!(
        "{}: {}",
        model.display(),
        registry::no_champion_yet(&Layout::new(data), dataset)
    )
}

pub fn run(args: &PredictArgs) -> Result<()> {
    check_champion(&args.model)?;
    let (card, fitted) = artifact::load(&args.model)?;
    let dataset = card.dataset().context("unknown model")?;
    format_of(&args.output)?;
    let df = read(&args.input, dataset)?;
    let data = Data::from_frame(&df, dataset, false, &args.input)?;
    let rows: Vec<usize> = (0..data.rows).collect();
    let predicted = fitted.predict(dataset, &card.encoding.encode(&data), &rows)?;
    let name = format!("predicted_{}", card.target);
    let mut out = df;
    out.with_column(Column::new(name.as_str().into(), predicted))
        .map_err(anyhow::Error::from)
        .with_context(|| format!("adding {name}"))?;
    write(&mut out, &args.output)?;
    // Which version answered: the champion link resolves when predict runs.
    let model = match card.version {
        Some(v) => format!("{} {v}", card.model),
        None => format!("{} model", card.model),
    };
    println!(
        "predict: {} rows -> {} ({name}, {model}, {})",
        out.height(),
        args.output.display(),
        card.algorithm.name()
    );
    Ok(())
}
