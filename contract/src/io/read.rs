//! Reading the pipeline's files: every error names the file, a missing
//! input names the stage that writes it, and columns are conformed to the
//! contract's types.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::tables::{Kind, utc_timestamp};
use crate::{ContractError, Dataset, Layout, RawTable};

/// Reads a JSON file into a value; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ContractError> {
    let mut text = String::new();
    open_input(path)?
        .read_to_string(&mut text)
        .map_err(|e| ContractError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ContractError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks that a stage's input is there and readable before work starts; a
/// missing one says which stage writes it.
pub fn require_input(path: &Path) -> Result<(), ContractError> {
    open_input(path).map(drop)
}

/// Opens a stage's input; a missing one says which stage writes it.
fn open_input(path: &Path) -> Result<File, ContractError> {
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ContractError::NotFound {
                path: path.to_path_buf(),
                hint: missing_hint(path),
            }
        } else {
            ContractError::io(path, e)
        }
    })
}

/// What to run so a missing input exists: the stage that writes it, when
/// the path lies in a data folder's layout (any of its ancestors as the root).
fn missing_hint(path: &Path) -> String {
    match path
        .ancestors()
        .skip(1)
        .find_map(|root| Layout::new(root).writer_of(path))
    {
        Some(stage) => format!("run {stage} first"),
        None => "run the stage that writes it first".into(),
    }
}

/// A lazy scan of one Parquet file (polars' default scan options). Polars'
/// own error is returned so each caller names the file in its own words.
pub fn scan_parquet(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::try_from_path(path)?, ScanArgsParquet::default())
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<DataFrame, ContractError> {
    let file = open_input(path)?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| ContractError::Parquet {
            path: path.to_path_buf(),
            source,
        })
}

/// Checks that `df` has each expected column with a compatible type and casts
/// it to the contract's exact type (any numeric to f64, any datetime to UTC
/// microseconds). Columns beyond the expected ones are kept as they are.
pub fn conform(
    mut df: DataFrame,
    expected: &[(&str, Kind)],
    path: &Path,
) -> Result<DataFrame, ContractError> {
    for (name, kind) in expected {
        let column = df.column(name).map_err(|_| ContractError::MissingColumn {
            path: path.to_path_buf(),
            column: (*name).to_string(),
        })?;
        let found = column.dtype().clone();
        let want = kind.dtype();
        if found == want {
            continue;
        }
        let compatible = match kind {
            Kind::Text | Kind::Json => matches!(found, DataType::Null),
            Kind::Number => found.is_primitive_numeric() || matches!(found, DataType::Null),
            Kind::Timestamp => matches!(found, DataType::Datetime(_, _) | DataType::Null),
        };
        if !compatible {
            return Err(ContractError::WrongType {
                path: path.to_path_buf(),
                column: (*name).to_string(),
                found: found.to_string(),
                expected: want.to_string(),
            });
        }
        let cast = match (kind, &found) {
            // A timestamp without a zone is taken as UTC.
            (Kind::Timestamp, DataType::Datetime(unit, None)) => column
                .cast(&DataType::Datetime(*unit, Some(TimeZone::UTC)))
                .and_then(|c| c.cast(&utc_timestamp())),
            _ => column.cast(&want),
        }
        .map_err(|source| ContractError::Column {
            path: path.to_path_buf(),
            column: name.to_string(),
            source,
        })?;
        df.with_column(cast)
            .map_err(|source| ContractError::Frame {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(df)
}

/// Reads a training, clean or rejected dataset file and checks its schema.
pub fn read_dataset(path: &Path, dataset: Dataset) -> Result<DataFrame, ContractError> {
    conform(read_parquet(path)?, dataset.columns(), path)
}

/// Rows `offset..offset + len` of `columns` of a dataset file (Parquet reads
/// only the row groups they lie in), checked and cast to the contract's
/// types: a stage that works in batches reads a file this way, one batch at
/// a time.
pub fn read_dataset_slice(
    path: &Path,
    dataset: Dataset,
    columns: &[&str],
    offset: usize,
    len: usize,
) -> Result<DataFrame, ContractError> {
    read_dataset_rows(path, dataset, columns, Some((offset, len)))
}

/// [`read_dataset_columns`] and [`read_dataset_slice`]: `slice` rows of
/// `columns` (all rows when None), checked and cast to the contract's types.
fn read_dataset_rows(
    path: &Path,
    dataset: Dataset,
    columns: &[&str],
    slice: Option<(usize, usize)>,
) -> Result<DataFrame, ContractError> {
    let df = read_parquet_columns_with(path, columns, |r| r.with_slice(slice))?;
    conform(df, &dataset_kinds(dataset, columns), path)
}

/// A dataset file as [`check_dataset`] found it.
pub struct CheckedDataset {
    pub rows: usize,
    /// Its columns that are not the dataset's, in file order: what a swapped
    /// stage added. The stages read the dataset's columns only, so these go
    /// no further; a stage says so.
    pub extra_columns: Vec<String>,
    /// Its timestamp columns written without a time zone, which every stage
    /// reads as UTC ([`conform`]): a swapped stage that wrote local times
    /// would have them shifted by their offset.
    pub naive_timestamps: Vec<String>,
}

/// Checks a dataset file without reading its rows: it opens as Parquet and
/// has the contract's columns with compatible types. Lets a stage check every
/// input before it reads one in full.
pub fn check_dataset(path: &Path, dataset: Dataset) -> Result<CheckedDataset, ContractError> {
    let (rows, footer) = read_footer(path)?;
    let extra_columns = footer
        .get_column_names()
        .into_iter()
        .filter(|name| dataset.column(name).is_none())
        .map(|name| name.to_string())
        .collect();
    let naive_timestamps = footer
        .columns()
        .iter()
        .filter(|c| dataset.column(c.name()) == Some(Kind::Timestamp))
        .filter(|c| matches!(c.dtype(), DataType::Datetime(_, None)))
        .map(|c| c.name().to_string())
        .collect();
    conform(footer, dataset.columns(), path)?;
    Ok(CheckedDataset {
        rows,
        extra_columns,
        naive_timestamps,
    })
}

/// [`check_dataset`] for only `columns` of the dataset (what a stage reads).
pub fn check_dataset_columns(
    path: &Path,
    dataset: Dataset,
    columns: &[&str],
) -> Result<usize, ContractError> {
    check_footer(path, &dataset_kinds(dataset, columns))
}

/// Rows of a Parquet file, from its footer alone.
pub fn parquet_rows(path: &Path) -> Result<usize, ContractError> {
    ParquetReader::new(open_input(path)?)
        .num_rows()
        .map_err(|source| ContractError::Parquet {
            path: path.to_path_buf(),
            source,
        })
}

/// A JSON report that may be absent (a stage run by hand on files made
/// elsewhere): None then; one that is there but unreadable is an error.
pub fn read_json_if_present<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, ContractError> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Opens a Parquet file, conforms its (empty) schema to `expected` and
/// returns its row count from the footer.
fn check_footer(path: &Path, expected: &[(&str, Kind)]) -> Result<usize, ContractError> {
    let (rows, footer) = read_footer(path)?;
    conform(footer, expected, path)?;
    Ok(rows)
}

/// A Parquet file's row count and its (empty) frame of columns, from the
/// footer alone.
fn read_footer(path: &Path) -> Result<(usize, DataFrame), ContractError> {
    let invalid = |source| ContractError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ParquetReader::new(open_input(path)?);
    let rows = reader.num_rows().map_err(invalid)?;
    Ok((rows, footer_frame(&mut reader).map_err(invalid)?))
}

/// An empty frame with the columns and types of a Parquet file's footer
/// (no row group is read: polars' zero-row slice decoded the first one).
fn footer_frame(reader: &mut ParquetReader<File>) -> PolarsResult<DataFrame> {
    let schema = Schema::from_arrow_schema(reader.schema()?.as_ref());
    Ok(DataFrame::empty_with_schema(&schema))
}

/// The contract's name and kind of each of `columns` in the dataset.
fn dataset_kinds(dataset: Dataset, columns: &[&str]) -> Vec<(&'static str, Kind)> {
    dataset
        .columns()
        .iter()
        .filter(|(n, _)| columns.contains(n))
        .copied()
        .collect()
}

/// A lazy scan of only `columns` of a dataset file, cast to the contract's
/// types, for a streaming plan. The footer is checked first: a missing
/// column or a wrong type names the file before any row is read.
pub fn scan_dataset_columns(
    path: &Path,
    dataset: Dataset,
    columns: &[&str],
) -> Result<LazyFrame, ContractError> {
    scan_conformed(path, columns, &dataset_kinds(dataset, columns))
}

/// A lazy scan of `columns` of one Parquet file, cast to `expected`'s types
/// (the lazy twin of [`read_conformed`]). The footer is checked first, as
/// [`conform`] checks a frame: a missing column or a wrong type names the
/// file before any row is read.
fn scan_conformed(
    path: &Path,
    columns: &[&str],
    expected: &[(&str, Kind)],
) -> Result<LazyFrame, ContractError> {
    let mut reader = ParquetReader::new(open_input(path)?);
    let empty = footer_frame(&mut reader)
        .and_then(|df| {
            let names: Vec<&str> = columns
                .iter()
                .copied()
                .filter(|c| df.schema().contains(c))
                .collect();
            df.select(names)
        })
        .map_err(|source| ContractError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    let found = empty.schema().clone();
    conform(empty, expected, path)?;
    let exprs: Vec<Expr> = expected
        .iter()
        .map(|(name, kind)| {
            let dtype = found.get(name).cloned().unwrap_or(DataType::Null);
            conform_expr(name, *kind, &dtype)
        })
        .collect();
    Ok(scan_parquet(path)
        .map_err(|source| ContractError::Parquet {
            path: path.to_path_buf(),
            source,
        })?
        .select(exprs))
}

/// Reads only `columns` of a dataset file (Parquet reads just those column
/// chunks), checked and cast to the contract's types.
pub fn read_dataset_columns(
    path: &Path,
    dataset: Dataset,
    columns: &[&str],
) -> Result<DataFrame, ContractError> {
    read_dataset_rows(path, dataset, columns, None)
}

/// Reads `columns` of one Parquet file and casts them to `expected`'s types.
fn read_conformed(
    path: &Path,
    columns: &[&str],
    expected: &[(&str, Kind)],
) -> Result<DataFrame, ContractError> {
    conform(read_parquet_columns(path, columns)?, expected, path)
}

/// Reads the columns of `names` a Parquet file has (a missing one is named
/// when the frame is conformed).
pub fn read_parquet_columns(path: &Path, names: &[&str]) -> Result<DataFrame, ContractError> {
    read_parquet_columns_with(path, names, |reader| reader)
}

/// [`read_parquet_columns`], the reader set up by `configure` (a slice).
fn read_parquet_columns_with(
    path: &Path,
    names: &[&str],
    configure: impl FnOnce(ParquetReader<File>) -> ParquetReader<File>,
) -> Result<DataFrame, ContractError> {
    let file = open_input(path)?;
    let invalid = |source| ContractError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ParquetReader::new(file);
    let present: Vec<String> = reader
        .schema()
        .map_err(invalid)?
        .iter_names()
        .map(|n| n.to_string())
        .collect();
    let wanted: Vec<String> = names
        .iter()
        .filter(|n| present.iter().any(|p| p == *n))
        .map(|n| n.to_string())
        .collect();
    configure(reader.with_columns(Some(wanted)))
        .finish()
        .map_err(invalid)
}

/// Reads every part of a raw table into one frame with the raw schema.
pub fn read_raw(layout: &Layout, table: RawTable) -> Result<DataFrame, ContractError> {
    use crate::columns::{EXTRA, EXTRACTED_AT, SOURCE};
    let mut names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
    names.extend([SOURCE, EXTRACTED_AT, EXTRA]);
    read_raw_columns(layout, table, &names)
}

/// The contract's kind of each of `columns` of a raw table.
fn raw_kinds<'a>(table: RawTable, columns: &[&'a str]) -> Vec<(&'a str, Kind)> {
    columns
        .iter()
        .filter_map(|c| raw_kind(table, c).map(|k| (*c, k)))
        .collect()
}

/// An empty frame with `expected`'s columns and types (a table with no parts).
fn empty_frame(expected: &[(&str, Kind)]) -> DataFrame {
    DataFrame::empty_with_schema(
        &expected
            .iter()
            .map(|(n, k)| Field::new((*n).into(), k.dtype()))
            .collect(),
    )
}

/// The kind of a raw column, lineage columns included.
fn raw_kind(table: RawTable, name: &str) -> Option<Kind> {
    use crate::columns::{EXTRA, EXTRACTED_AT, SOURCE};
    match name {
        SOURCE | EXTRA => Some(Kind::Text),
        EXTRACTED_AT => Some(Kind::Timestamp),
        other => table.column(other).map(|c| c.kind),
    }
}

/// The first part of a raw table whose `columns` do not read (a corrupt page
/// behind a sound footer), as the error reading it gives; None when every
/// part reads. One part in memory at a time: for naming the file after a
/// streamed plan failed, since the streaming engine's errors name no file.
pub fn find_unreadable_raw_part(
    layout: &Layout,
    table: RawTable,
    columns: &[&str],
) -> Result<Option<ContractError>, ContractError> {
    let expected = raw_kinds(table, columns);
    for part in layout.raw_parts(table)? {
        if let Err(e) = read_conformed(&part, columns, &expected) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Reads only `columns` of every part of a raw table (Parquet reads just
/// those column chunks), checked and cast to the contract's types.
pub fn read_raw_columns(
    layout: &Layout,
    table: RawTable,
    columns: &[&str],
) -> Result<DataFrame, ContractError> {
    let expected = raw_kinds(table, columns);
    let names: Vec<PlSmallStr> = expected.iter().map(|(n, _)| (*n).into()).collect();
    // The parts are read on every core (each is one row group, which polars
    // would decode on one), then stacked in order.
    let parts = layout.raw_parts(table)?;
    let frames: Vec<DataFrame> = {
        use rayon::prelude::*;
        parts
            .par_iter()
            .map(|part| {
                read_conformed(part, columns, &expected)?
                    .select(names.clone())
                    .map_err(|source| ContractError::Frame {
                        path: part.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut all: Option<DataFrame> = None;
    for (part, df) in parts.iter().zip(frames) {
        match all.as_mut() {
            None => all = Some(df),
            Some(acc) => {
                acc.vstack_mut(&df).map_err(|source| ContractError::Frame {
                    path: part.clone(),
                    source,
                })?;
            }
        }
    }
    let mut df = all.unwrap_or_else(|| empty_frame(&expected));
    df.align_chunks_par();
    Ok(df)
}

/// The expression that gives column `name`, found as `found`, the contract's
/// type for `kind` (the lazy twin of [`conform`]'s casts).
fn conform_expr(name: &str, kind: Kind, found: &DataType) -> Expr {
    let want = kind.dtype();
    match (kind, found) {
        _ if *found == want => col(name),
        // A timestamp without a zone is taken as UTC.
        (Kind::Timestamp, DataType::Datetime(unit, None)) => col(name)
            .cast(DataType::Datetime(*unit, Some(TimeZone::UTC)))
            .cast(want),
        _ => col(name).cast(want),
    }
}

/// A lazy scan of only `columns` of every part of a raw table, cast to the
/// contract's types, for a streaming plan: the rows are read batch by batch
/// as the plan asks for them. Each part's footer is checked first, so a
/// missing column or a wrong type names the part before any row is read.
pub fn scan_raw_columns(
    layout: &Layout,
    table: RawTable,
    columns: &[&str],
) -> Result<LazyFrame, ContractError> {
    let expected = raw_kinds(table, columns);
    let scans = layout
        .raw_parts(table)?
        .iter()
        .map(|part| scan_conformed(part, columns, &expected))
        .collect::<Result<Vec<_>, _>>()?;
    if scans.is_empty() {
        return Ok(empty_frame(&expected).lazy());
    }
    let args = UnionArgs {
        parallel: true,
        rechunk: false,
        ..UnionArgs::default()
    };
    concat(scans, args).map_err(|source| ContractError::Frame {
        path: layout.raw_dir(table),
        source,
    })
}

/// Runs `plan` on the streaming engine and folds its batches into `state`
/// with `add`, one batch at a time (in the plan's order when
/// `maintain_order`), for state that polars cannot build as it streams (a
/// hash table filled row by row, counts). Returns the state.
pub fn fold_batches<S: Send + 'static>(
    plan: LazyFrame,
    state: S,
    maintain_order: bool,
    add: fn(&mut S, &DataFrame) -> PolarsResult<()>,
) -> PolarsResult<S> {
    let state = Arc::new(std::sync::Mutex::new(state));
    let fill = Arc::clone(&state);
    plan.sink_batches(
        PlanCallback::new(move |df: DataFrame| {
            add(&mut fill.lock().unwrap_or_else(|e| e.into_inner()), &df)?;
            Ok(false)
        }),
        maintain_order,
        None,
    )?
    .collect_with_engine(Engine::Streaming)?;
    let state = Arc::try_unwrap(state)
        .map_err(|_| polars_err!(ComputeError: "the batches are still being read"))?;
    Ok(state.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Builds a raw table frame in the contract's column order and types from
/// named columns; source columns not given are nulls.
pub fn raw_frame(
    table: RawTable,
    mut columns: Vec<Column>,
    height: usize,
) -> Result<DataFrame, PolarsError> {
    let schema = table.schema();
    let mut ordered = Vec::with_capacity(schema.len());
    for (name, dtype) in schema.iter() {
        let found = columns.iter().position(|c| c.name() == name);
        let column = match found {
            Some(i) => columns.swap_remove(i).cast(dtype)?,
            None => Column::full_null(name.clone(), height, dtype),
        };
        ordered.push(column);
    }
    DataFrame::new(height, ordered)
}
