//! `predict`: a trained model applied to rows shaped like its dataset
//! (Parquet or CSV, by extension), written back with `predicted_<target>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use contract::reports::Reason;
use contract::{ContractError, Dataset, Layout, columns, io, registry, rules};
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
    /// Set aside the rows the model cannot be asked about (a cell that is no
    /// number, a required feature without a value, a number outside training)
    /// into this file (.parquet or .csv), each with `row`, `reason`, `field` and
    /// `detail`, and predict the others; without it, one such row refuses the
    /// whole file. Written even when empty: rows out + rows set aside = rows in.
    #[arg(long)]
    pub rejected: Option<PathBuf>,
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
/// numbers parsed here, so a value that is no number is a [`Problem`] of its
/// row (null in the frame), and a category that looks like a number (`4`)
/// stays a category; a column empty in every row is all nulls. A blank line
/// is no row, and a row cut short an error ([`csv_rows`]). Returns the rows
/// as read, and as written: a CSV's rows with its feature columns as their
/// text, which `predict --rejected` sets aside (a Parquet file's are the same).
fn read(path: &Path, dataset: Dataset) -> Result<Input> {
    let mut unparseable = Vec::new();
    let mut written = None;
    let df = match format_of(path)? {
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
            written = Some(df.clone());
            for name in dataset.numeric_features() {
                if let Ok(column) = df.column(name) {
                    let numbers = parse_numbers(column, name, &mut unparseable)?;
                    df.with_column(numbers)?;
                }
            }
            df
        }
    };
    Ok(Input {
        written: written.unwrap_or_else(|| df.clone()),
        df,
        unparseable,
    })
}

/// What [`read`] makes of the input.
struct Input {
    /// Feature columns as the model takes them.
    df: DataFrame,
    /// The same rows as in the file (a CSV's feature columns as text).
    written: DataFrame,
    /// CSV cells that are no number (null in `df`).
    unparseable: Vec<Problem>,
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

/// A text column of a CSV as numbers; an empty cell is null, and so is
/// anything else that is no number, which is also a [`Problem`] of its row.
fn parse_numbers(
    column: &Column,
    name: &'static str,
    problems: &mut Vec<Problem>,
) -> Result<Column> {
    let numbers = column.cast(&DataType::Float64)?;
    let texts = column.str()?;
    for (row, (text, number)) in texts.iter().zip(numbers.f64()?.iter()).enumerate() {
        if let Some(text) = text.filter(|t| !t.is_empty() && number.is_none()) {
            problems.push(Problem {
                row,
                reason: Why::Unparseable,
                field: name,
                detail: format!("`{text}` is not a number"),
            });
        }
    }
    Ok(numbers)
}

/// A row the model cannot be asked about, and why, in the columns extract's
/// rejects have: `reason`, `field` and `detail`.
struct Problem {
    /// Counted from 0.
    row: usize,
    reason: Why,
    field: &'static str,
    detail: String,
}

#[derive(Clone, Copy)]
enum Why {
    /// A CSV cell that is no number.
    Unparseable,
    /// A required feature without a value.
    Missing,
    /// A number outside the range validate accepts.
    OutOfRange,
}

impl Why {
    /// As extract's and validate's rejects name it.
    fn name(self) -> &'static str {
        match self {
            Why::Unparseable => columns::UNPARSEABLE,
            Why::Missing => Reason::Missing.name(),
            Why::OutOfRange => Reason::OutOfRange.name(),
        }
    }
}

impl Problem {
    /// What a refusal says: `rows.csv: row 2: quality_score 1.7 is outside ...`.
    fn refusal(&self, path: &Path) -> anyhow::Error {
        let (path, row, field, detail) = (path.display(), self.row + 1, self.field, &self.detail);
        match self.reason {
            Why::Unparseable => anyhow::anyhow!("{path}: row {row}, column `{field}`: {detail}"),
            Why::Missing => anyhow::anyhow!("{path}: row {row}: `{field}` is {detail}"),
            Why::OutOfRange => anyhow::anyhow!("{path}: row {row}: {field} {detail}"),
        }
    }
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

/// The rows the model must not be asked about, as serve refuses them, beside
/// `unparseable` (from [`read`]): a required feature without a value, a number
/// outside the range validate accepts (and so outside every training row).
/// Per row the first that applies (no number, then no value, then out of
/// range, each in the dataset's feature order), ordered by row.
fn problems(data: &Data, dataset: Dataset, unparseable: Vec<Problem>) -> Vec<Problem> {
    let mut first: BTreeMap<usize, Problem> = BTreeMap::new();
    let mut note = |p: Problem| {
        first.entry(p.row).or_insert(p);
    };
    unparseable.into_iter().for_each(&mut note);
    let required = format!("required by the {dataset} model and has no value");
    let numeric = dataset.numeric_features().iter().zip(&data.numeric);
    for (&name, values) in numeric.filter(|(name, _)| rules::is_required(dataset, name)) {
        for row in (0..values.len()).filter(|&r| values[r].is_nan()) {
            note(Problem {
                row,
                reason: Why::Missing,
                field: name,
                detail: required.clone(),
            });
        }
    }
    let categorical = dataset.categorical_features().iter().zip(&data.categorical);
    for (&name, c) in categorical.filter(|(name, _)| rules::is_required(dataset, name)) {
        for row in (0..c.codes.len()).filter(|&r| c.codes[r] == MISSING) {
            note(Problem {
                row,
                reason: Why::Missing,
                field: name,
                detail: required.clone(),
            });
        }
    }
    for out in data.out_of_range(dataset) {
        note(Problem {
            row: out.row,
            reason: Why::OutOfRange,
            field: out.column,
            detail: out.problem(),
        });
    }
    first.into_values().collect()
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

/// `df` written to a temporary file beside `path`, in place once committed.
fn stage(df: &mut DataFrame, path: &Path) -> Result<io::AtomicFile> {
    Ok(match format_of(path)? {
        Format::Parquet => io::stage_parquet(df, path)?,
        Format::Csv => io::stage_atomic(path, |w| {
            CsvWriter::new(w)
                .include_header(true)
                .finish(df)
                .map_err(|source| ContractError::Write {
                    path: path.to_path_buf(),
                    source,
                })
        })?,
    })
}

/// The rows of `df` that `problems` name, each with its problem: `row` (the
/// first after a CSV's header is 1, as errors count), `reason`, `field`, `detail`.
fn set_aside(df: &DataFrame, problems: &[Problem], input: &Path) -> Result<DataFrame> {
    let idx: Vec<IdxSize> = problems.iter().map(|p| p.row as IdxSize).collect();
    let mut rows = df.take(&IdxCa::from_vec("row".into(), idx))?;
    let number: Vec<u64> = problems.iter().map(|p| p.row as u64 + 1).collect();
    let reason: Vec<&str> = problems.iter().map(|p| p.reason.name()).collect();
    let field: Vec<&str> = problems.iter().map(|p| p.field).collect();
    let detail: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
    for column in [
        Column::new("row".into(), number),
        Column::new(columns::REASON.into(), reason),
        Column::new(columns::FIELD.into(), field),
        Column::new(columns::DETAIL.into(), detail),
    ] {
        if rows.column(column.name()).is_ok() {
            bail!(
                "{}: has a `{}` column, which --rejected adds to the rows it sets aside; \
                 rename it",
                input.display(),
                column.name()
            );
        }
        rows.with_column(column)?;
    }
    Ok(rows)
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
    if let Some(rejected) = &args.rejected {
        format_of(rejected)?;
        check_output(rejected)?;
        if std::path::absolute(rejected)? == std::path::absolute(&args.output)? {
            bail!(
                "{}: --rejected and --output are one file",
                rejected.display()
            );
        }
    }
    let Input {
        df,
        written,
        unparseable,
    } = read(&args.input, dataset)?;
    let (inputs, filled) = model_inputs(&df, dataset)?;
    let data = Data::from_frame(&inputs, dataset, false, &args.input)?;
    let problems = problems(&data, dataset, unparseable);
    if args.rejected.is_none()
        && let Some(first) = problems.first()
    {
        return Err(first.refusal(&args.input));
    }
    let mut keep = vec![true; data.rows];
    for p in &problems {
        keep[p.row] = false;
    }
    let rows: Vec<usize> = (0..data.rows).filter(|&r| keep[r]).collect();
    let predicted = fitted.predict(dataset, &card.encoding.encode(&data), &rows)?;
    let name = format!("predicted_{}", card.target);
    let mut out = if problems.is_empty() {
        df.clone()
    } else {
        df.filter(&BooleanChunked::from_slice("keep".into(), &keep))?
    };
    out.with_column(Column::new(name.as_str().into(), predicted))
        .map_err(anyhow::Error::from)
        .with_context(|| format!("adding {name}"))?;
    // Both files are written before either is in place.
    let staged_rejected = match &args.rejected {
        Some(path) => Some(stage(
            &mut set_aside(&written, &problems, &args.input)?,
            path,
        )?),
        None => None,
    };
    let staged = stage(&mut out, &args.output)?;
    if let Some(file) = staged_rejected {
        file.commit()?;
    }
    staged.commit()?;
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
    if let Some(path) = &args.rejected {
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &problems {
            *by_reason.entry(p.reason.name()).or_default() += 1;
        }
        let counts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "predict: {} set aside -> {}{}",
            contract::count(problems.len(), "row"),
            path.display(),
            if counts.is_empty() {
                String::new()
            } else {
                format!(" ({})", counts.join(", "))
            }
        );
    }
    for column in filled {
        println!(
            "predict: {} has no `{column}` column: missing in every row, as for a row without it",
            args.input.display()
        );
    }
    Ok(())
}
