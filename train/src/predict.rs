//! `predict`: a trained model applied to rows shaped like its dataset
//! (Parquet or CSV, by extension), written back with `predicted_<target>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use contract::{ContractError, Dataset, Layout, io, registry, rules};
use polars::prelude::*;

use crate::artifact;
use crate::features::{Data, MISSING};

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

/// Reads the input. In a CSV every feature column is read as text and its
/// numbers parsed here, so a value that is no number is an error naming its
/// row, and a category that looks like a number (`4`) stays a category; a
/// column empty in every row is all nulls. A blank line is no row, and a row
/// cut short an error ([`csv_rows`]).
fn read(path: &Path, dataset: Dataset) -> Result<DataFrame> {
    Ok(match format_of(path)? {
        Format::Parquet => io::read_parquet(path)?,
        Format::Csv => {
            if !path.exists() {
                bail!("{}: not found", path.display());
            }
            let text: Schema = feature_names(dataset)
                .map(|n| Field::new(n.into(), DataType::String))
                .collect();
            let mut df = CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(10_000))
                .with_schema_overwrite(Some(Arc::new(text)))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: not a readable CSV file: {}",
                        path.display(),
                        csv_cause(&e)
                    )
                })?;
            df = without_blank_lines(df, &csv_rows(path)?, path)?;
            for name in dataset.numeric_features() {
                if let Ok(column) = df.column(name) {
                    let numbers = parse_numbers(column, path)?;
                    df.with_column(numbers)?;
                }
            }
            df
        }
    })
}

/// What polars' CSV reader takes in silence and predict must not: a row with
/// fewer fields than the header is padded with nulls, so a missing optional
/// feature at its end would pass for an absent one. So the file is read again
/// with the csv crate, as extract reads exports: a row of another length is an
/// error naming it (the first after the header is 1). Returns, per row,
/// whether every field is empty, for [`without_blank_lines`].
fn csv_rows(path: &Path) -> Result<Vec<bool>> {
    let unreadable =
        |e: csv::Error| anyhow::anyhow!("{}: not a readable CSV file: {e}", path.display());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(unreadable)?;
    reader.byte_headers().map_err(unreadable)?;
    let mut record = csv::ByteRecord::new();
    let mut empty = Vec::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(empty),
            Ok(true) => empty.push(record.iter().all(<[u8]>::is_empty)),
            Err(e) => match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => bail!(
                    "{}: row {} has {}, the header {expected_len}",
                    path.display(),
                    empty.len() + 1,
                    contract::count(*len as usize, "field")
                ),
                _ => return Err(unreadable(e)),
            },
        }
    }
}

/// polars reads a blank line as a row of nulls; the csv crate, spreadsheets
/// and extract skip it. Leaves out polars' rows that are blank lines, so that
/// the rows left are the csv crate's `rows` and every later error's row number
/// is theirs. A blank line and a row of empty fields look alike in polars; of
/// such rows, those the csv crate has no empty row for are the blank lines,
/// matched in order.
fn without_blank_lines(df: DataFrame, rows: &[bool], path: &Path) -> Result<DataFrame> {
    if df.height() == rows.len() {
        return Ok(df);
    }
    let mut empty = BooleanChunked::full("empty".into(), true, df.height());
    for column in df.columns() {
        let void = match column.str() {
            Ok(text) => text.equal("").fill_null_with_values(true)?,
            Err(_) => column.is_null(),
        };
        empty = &empty & &void;
    }
    let mut next = rows.iter().peekable();
    let keep: BooleanChunked = empty
        .iter()
        .map(|empty| {
            let blank = empty == Some(true) && next.peek().is_none_or(|row| !**row);
            if !blank {
                next.next();
            }
            Some(!blank)
        })
        .collect();
    let df = df.filter(&keep)?;
    if df.height() != rows.len() {
        bail!(
            "{}: not a readable CSV file: polars read {} rows where the csv reader read {}",
            path.display(),
            df.height(),
            rows.len()
        );
    }
    Ok(df)
}

fn feature_names(dataset: Dataset) -> impl Iterator<Item = &'static str> {
    let numeric = dataset.numeric_features().iter();
    numeric.chain(dataset.categorical_features()).copied()
}

/// polars' CSV errors run to several lines, with advice for its Python API;
/// the cause is what we keep, on one line.
fn csv_cause(e: &PolarsError) -> String {
    let text = e.to_string();
    let cause = match text.split_once("Original error: ```") {
        Some((_, rest)) => rest.split("```").next().unwrap_or(rest),
        None => text.lines().next().unwrap_or_default(),
    };
    let cause = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    if cause.starts_with("found more fields than defined in 'Schema'") {
        return "a row has more fields than the header".into();
    }
    cause
}

/// A text column of a CSV as numbers; an empty cell is null, anything else
/// that is no number an error naming the row (the first after the header is 1).
fn parse_numbers(column: &Column, path: &Path) -> Result<Column> {
    let numbers = column.cast(&DataType::Float64)?;
    let bad = column
        .str()?
        .iter()
        .zip(numbers.f64()?.iter())
        .position(|(text, number)| text.is_some_and(|t| !t.is_empty()) && number.is_none());
    if let Some(row) = bad {
        let text = column.str()?.get(row).unwrap_or_default();
        bail!(
            "{}: row {}, column `{}`: `{text}` is not a number",
            path.display(),
            row + 1,
            column.name()
        );
    }
    Ok(numbers)
}

/// What the model reads of `df`: an optional feature the input has no column
/// for is null in every row, as serve takes a row without it. Returns the
/// names so filled.
fn model_inputs(df: &DataFrame, dataset: Dataset) -> Result<(DataFrame, Vec<&'static str>)> {
    let mut inputs = df.clone();
    let mut filled = Vec::new();
    for name in feature_names(dataset) {
        if df.column(name).is_err() && !rules::is_required(dataset, name) {
            let dtype = if dataset.numeric_features().contains(&name) {
                DataType::Float64
            } else {
                DataType::String
            };
            inputs.with_column(Column::full_null(name.into(), df.height(), &dtype))?;
            filled.push(name);
        }
    }
    Ok((inputs, filled))
}

/// The first value the model must not be asked about, as serve refuses it: a
/// required feature without a value, or a number outside the range validate
/// accepts (and so outside every training row).
fn check_values(data: &Data, dataset: Dataset, path: &Path) -> Result<()> {
    let empty = dataset
        .numeric_features()
        .iter()
        .zip(&data.numeric)
        .filter(|(name, _)| rules::is_required(dataset, name))
        .filter_map(|(name, values)| Some((values.iter().position(|v| v.is_nan())?, *name)))
        .chain(
            dataset
                .categorical_features()
                .iter()
                .zip(&data.categorical)
                .filter(|(name, _)| rules::is_required(dataset, name))
                .filter_map(|(name, c)| Some((c.codes.iter().position(|&c| c == MISSING)?, *name))),
        )
        .min_by_key(|(row, _)| *row);
    let out = data.first_out_of_range(dataset);
    match (empty, out) {
        (Some((row, name)), out) if out.as_ref().is_none_or(|o| row <= o.row) => bail!(
            "{}: row {}: `{name}` is required by the {dataset} model and has no value",
            path.display(),
            row + 1
        ),
        (_, Some(out)) => bail!(
            "{}: row {}: {} {}",
            path.display(),
            out.row + 1,
            out.column,
            out.problem()
        ),
        _ => Ok(()),
    }
}

/// Refuses an --output inside a data folder's stage outputs (`clean/`,
/// `models/`, the generations behind them): only their stage writes there,
/// under the folder's lock and in one commit, and a file replaced behind
/// its back would change a layer (or a model version) that its reports and
/// hashes describe. Anywhere else, the input itself included, is the user's.
fn check_output(output: &Path) -> Result<()> {
    let Ok(path) = std::path::absolute(output) else {
        return Ok(());
    };
    let Some((root, internal)) = contract::commit::data_folder_of(&path) else {
        return Ok(());
    };
    let writer = Layout::new(root)
        .writer_of(&path)
        .or(internal.then_some("the pipeline's stages"));
    if let Some(writer) = writer {
        let elsewhere = root
            .join("predictions")
            .join(path.file_name().unwrap_or_default());
        bail!(
            "{}: a file of the data folder {} that only {writer} may write (under the \
             folder's lock, in one commit); write the predictions elsewhere, e.g. {}",
            output.display(),
            root.display(),
            elsewhere.display()
        );
    }
    Ok(())
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
    check_output(&args.output)?;
    let df = read(&args.input, dataset)?;
    let (inputs, filled) = model_inputs(&df, dataset)?;
    let data = Data::from_frame(&inputs, dataset, false, &args.input)?;
    check_values(&data, dataset, &args.input)?;
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
        "predict: {} -> {} ({name}, {model}, {})",
        contract::count(out.height(), "row"),
        args.output.display(),
        card.algorithm.name()
    );
    for column in filled {
        println!(
            "predict: {} has no `{column}` column: missing in every row, as for a row without it",
            args.input.display()
        );
    }
    Ok(())
}
