//! Reading and writing the pipeline's files. Reads name the file in every
//! error; writes go to a temporary file beside the target and are renamed over
//! it, so a crash never leaves half a file.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use crate::tables::{Kind, utc_timestamp};
use crate::{ContractError, Dataset, Layout, RawTable};

fn ensure_parent(path: &Path) -> Result<(), ContractError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|e| ContractError::io(dir, e))
        }
        _ => Ok(()),
    }
}

/// A file written under a temporary name beside its target and renamed over
/// it by [`AtomicFile::commit`]; dropped uncommitted, it is deleted.
pub struct AtomicFile {
    path: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self, ContractError> {
        ensure_parent(path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // Outputs are ordinary files, readable by the group and others as usual.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| ContractError::io(dir, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(tmp),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writer(&mut self) -> &mut BufWriter<tempfile::NamedTempFile> {
        &mut self.writer
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> Result<(), ContractError> {
        let path = self.path;
        let tmp = self
            .writer
            .into_inner()
            .map_err(|e| ContractError::io(&path, e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| ContractError::io(tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| ContractError::io(&path, e.error))?;
        Ok(())
    }
}

/// Writes `path` through `fill` into a temporary file, then renames it into
/// place: a reader never sees half a file.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<tempfile::NamedTempFile>) -> Result<(), ContractError>,
) -> Result<(), ContractError> {
    let mut file = AtomicFile::create(path)?;
    fill(file.writer())?;
    file.commit()
}

/// Writes a DataFrame as zstd-compressed Parquet, atomically. Level 1: as
/// small as the default level 3 on these tables, and a third faster to write.
/// For what is kept (the raw layer, models, insights).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), ContractError> {
    let level =
        polars_parquet::write::ZstdLevel::try_new(1).map_err(|source| ContractError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    write_parquet_with(df, path, ParquetCompression::Zstd(Some(level)))
}

/// Writes a DataFrame as uncompressed Parquet, atomically: for the layers
/// every run rebuilds from raw (training, clean, rejected). At 1M rows per
/// table 1.3x the size of LZ4 (555 MB against 484 MB for training and clean)
/// and 0.45 s faster across transform and validate; readers skip the
/// decompression too.
pub fn write_parquet_fast(df: &mut DataFrame, path: &Path) -> Result<(), ContractError> {
    write_parquet_with(df, path, ParquetCompression::Uncompressed)
}

fn write_parquet_with(
    df: &mut DataFrame,
    path: &Path,
    compression: ParquetCompression,
) -> Result<(), ContractError> {
    let error = |source| ContractError::Write {
        path: path.to_path_buf(),
        source,
    };
    write_atomic(path, |w| {
        parallel_parquet(df, w, compression).map_err(error)
    })
}

/// Rows per row group, as polars writes them.
pub const ROW_GROUP_ROWS: usize = 512 * 512;

/// Row groups encoded at once: their compressed pages wait in memory for
/// their turn to be written.
const ROW_GROUPS_IN_FLIGHT: usize = 4;

/// Polars' Parquet writer encodes a row group's columns in parallel but
/// compresses every page on the writing thread, which made writing the
/// largest serial part of every stage. Here each (row group, column) is
/// encoded and compressed on its own rayon task, with polars' encoder and
/// settings (dictionary where it pays, statistics, 1 MiB pages), and the
/// pages are written in order: the same file, on every core.
fn parallel_parquet(
    df: &mut DataFrame,
    w: &mut impl Write,
    compression: ParquetCompression,
) -> PolarsResult<()> {
    let mut writer = RowGroupWriter::new(w, df.schema(), compression)?;
    writer.write(df)?;
    writer.finish()
}

/// A Parquet file written frame after frame (each frame's rows become whole
/// row groups of at most [`ROW_GROUP_ROWS`]), so a stage that works in
/// batches never holds more than one: split into row groups, encode and
/// compress every (row group, column) on its own rayon task, write in order.
pub struct RowGroupWriter<W: Write> {
    writer: polars::io::parquet::write::BatchedWriter<W>,
    fields: Vec<polars_parquet::parquet::schema::types::ParquetType>,
    encodings: Vec<Vec<polars_parquet::write::Encoding>>,
    options: polars_parquet::write::WriteOptions,
    schema: SchemaRef,
}

impl<W: Write> RowGroupWriter<W> {
    /// A writer of frames with `schema` (the file is valid with no frames at all).
    pub fn new(w: W, schema: &SchemaRef, compression: ParquetCompression) -> PolarsResult<Self> {
        use polars_parquet::write::{StatisticsOptions, Version, WriteOptions};
        let arrow_schema = schema.to_arrow(CompatLevel::newest());
        let mut writer = ParquetWriter::new(w)
            .with_compression(compression)
            .batched(schema)?;
        Ok(Self {
            fields: writer.parquet_schema().fields().to_vec(),
            encodings: get_encodings(&arrow_schema).to_vec(),
            options: WriteOptions {
                statistics: StatisticsOptions::default(),
                version: Version::V1,
                compression: compression.into(),
                data_page_size: None,
            },
            schema: schema.clone(),
            writer,
        })
    }

    /// Appends `df`'s rows (its schema must be the writer's).
    pub fn write(&mut self, df: &mut DataFrame) -> PolarsResult<()> {
        use polars_parquet::write::{CompressedPage, array_to_columns, compress};
        use rayon::prelude::*;

        if df.schema() != &self.schema {
            polars_bail!(SchemaMismatch: "a batch's columns {:?} are not the file's {:?}",
                df.schema().iter_names().collect::<Vec<_>>(),
                self.schema.iter_names().collect::<Vec<_>>());
        }
        // Every column's chunks line up; each chunk becomes one or more row
        // groups (a copy only when the chunks are too small to be row groups).
        df.align_chunks_par();
        if df.first_col_n_chunks() > 1 && df.height() / df.first_col_n_chunks() < ROW_GROUP_ROWS / 4
        {
            df.rechunk_mut_par();
        }
        let (fields, encodings, options) = (&self.fields, &self.encodings, self.options);
        let lengths: Vec<usize> = match df.columns().first() {
            Some(c) => c.as_materialized_series().chunk_lengths().collect(),
            None => Vec::new(),
        };
        // (chunk, offset, rows) of each row group.
        let slices: Vec<(usize, usize, usize)> = lengths
            .iter()
            .enumerate()
            .flat_map(|(chunk, &len)| {
                (0..len)
                    .step_by(ROW_GROUP_ROWS)
                    .map(move |start| (chunk, start, ROW_GROUP_ROWS.min(len - start)))
            })
            .collect();
        for window in slices.chunks(ROW_GROUPS_IN_FLIGHT) {
            let groups: Vec<Vec<ArrayRef>> = window
                .iter()
                .map(|&(chunk, start, rows)| {
                    df.columns()
                        .iter()
                        .map(|c| {
                            c.as_materialized_series()
                                .to_arrow(chunk, CompatLevel::newest())
                                .sliced(start, rows)
                        })
                        .collect()
                })
                .collect();
            let tasks: Vec<(usize, usize)> = (0..groups.len())
                .flat_map(|g| (0..fields.len()).map(move |c| (g, c)))
                .collect();
            let encoded: Vec<Vec<Vec<CompressedPage>>> = tasks
                .par_iter()
                .map(|&(g, c)| {
                    array_to_columns(&groups[g][c], fields[c].clone(), options, &encodings[c])?
                        .into_iter()
                        .map(|pages| {
                            pages
                                .map(|page| Ok(compress(page?, vec![], options.compression)?))
                                .collect::<PolarsResult<Vec<CompressedPage>>>()
                        })
                        .collect()
                })
                .collect::<PolarsResult<_>>()?;
            let mut encoded = encoded.into_iter();
            for &(_, _, rows) in window {
                let group: Vec<Vec<CompressedPage>> =
                    encoded.by_ref().take(fields.len()).flatten().collect();
                self.writer.write_row_group(rows as u64, &group)?;
            }
        }
        Ok(())
    }

    /// Writes the footer.
    pub fn finish(self) -> PolarsResult<()> {
        self.writer.finish()?;
        Ok(())
    }
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<(), ContractError> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(|source| {
            ContractError::JsonWrite {
                path: path.to_path_buf(),
                source,
            }
        })?;
        w.write_all(b"\n").map_err(|e| ContractError::io(path, e))
    })
}

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

/// Checks a dataset file without reading its rows: it opens as Parquet and
/// has the contract's columns with compatible types. Returns its row count.
/// Lets a stage check every input before it reads one in full.
pub fn check_dataset(path: &Path, dataset: Dataset) -> Result<usize, ContractError> {
    check_footer(path, dataset.columns())
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
    let invalid = |source| ContractError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ParquetReader::new(open_input(path)?);
    let rows = reader.num_rows().map_err(invalid)?;
    conform(footer_frame(&mut reader).map_err(invalid)?, expected, path)?;
    Ok(rows)
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

/// Runs `plan` on polars' streaming engine into an uncompressed Parquet file
/// at `path` (as [`write_parquet_fast`] writes one), atomically: rows pass
/// through in batches, so memory holds what the plan must keep (a join's
/// build side, a sort's input, a group-by's table), never the whole output.
/// Row groups of the same size as the in-memory writer's. Returns the rows.
pub fn sink_parquet_fast(plan: LazyFrame, path: &Path) -> Result<usize, ContractError> {
    // The same temporary file, permissions and rename as every other write;
    // polars opens it by name and writes it, the rename publishes it.
    let mut file = AtomicFile::create(path)?;
    let tmp = file.writer().get_ref().path().to_path_buf();
    let options = ParquetWriteOptions {
        compression: ParquetCompression::Uncompressed,
        row_group_size: Some(ROW_GROUP_ROWS),
        ..ParquetWriteOptions::default()
    };
    let target = PlRefPath::try_from_path(&tmp).map_err(|source| ContractError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    plan.sink(
        SinkDestination::File {
            target: SinkTarget::Path(target),
        },
        FileWriteFormat::Parquet(Arc::new(options)),
        UnifiedSinkArgs::default(),
    )
    .and_then(|plan| plan.collect_with_engine(Engine::Streaming))
    .map_err(|source| ContractError::Frame {
        path: path.to_path_buf(),
        source,
    })?;
    let rows = parquet_rows(&tmp)?;
    file.commit()?;
    Ok(rows)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_input_names_the_stage_that_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::Layout::new(dir.path());
        let hint = |path: &Path| match read_json::<serde_json::Value>(path) {
            Err(ContractError::NotFound { hint, .. }) => hint,
            other => panic!("{}: {other:?}", path.display()),
        };
        let q = crate::Dataset::Quality;
        assert_eq!(hint(&layout.training(q)), "run `transform` first");
        assert_eq!(hint(&layout.clean(q)), "run `validate` first");
        assert_eq!(hint(&layout.rejected(q)), "run `validate` first");
        assert_eq!(hint(&layout.validation_report()), "run `validate` first");
        assert_eq!(
            hint(&layout.extract_report()),
            "run `extract` or `synth` first"
        );
        assert_eq!(hint(&layout.training_report()), "run `train` first");
        // extract writes the raw rows it could not parse into rejected/ too.
        assert_eq!(
            hint(&layout.raw_rejected(crate::RawTable::AbTesting)),
            "run `extract` or `synth` first"
        );
        assert_eq!(hint(&layout.insights_report()), "run `report` first");
        assert_eq!(
            hint(&dir.path().join("elsewhere.json")),
            "run the stage that writes it first"
        );
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.parquet");
        let mut df = df!("a" => [1.0, 2.0], "b" => ["x", "y"]).unwrap();
        write_parquet(&mut df, &path).unwrap();
        assert_eq!(read_parquet(&path).unwrap(), df);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.parquet")]);
    }

    /// The row-group writer on the shapes frames arrive in: chunks that line
    /// up or not, larger and smaller than a row group, many tiny ones, nulls,
    /// every type the contract uses, no rows. Read back, each is the frame;
    /// polars' metadata agrees on the rows.
    #[test]
    fn parallel_writer_round_trips_every_chunk_shape() {
        let dir = tempfile::tempdir().unwrap();
        let part = |rows: usize, offset: usize| {
            let id: Vec<Option<String>> = (0..rows)
                .map(|i| (i % 7 != 0).then(|| format!("id-{}", offset + i)))
                .collect();
            let x: Vec<Option<f64>> = (0..rows)
                .map(|i| (i % 5 != 0).then_some((offset + i) as f64 / 3.0))
                .collect();
            let provider: Vec<&str> = (0..rows).map(|i| ["a", "b", "c"][i % 3]).collect();
            let t: Vec<i64> = (0..rows).map(|i| (offset + i) as i64 * 1_000_000).collect();
            let mut df = df!("id" => id, "x" => x, "provider" => provider, "t" => t).unwrap();
            df.with_column(df.column("t").unwrap().cast(&utc_timestamp()).unwrap())
                .unwrap();
            df
        };
        let stacked = |sizes: &[usize]| {
            let mut offset = 0;
            let mut all: Option<DataFrame> = None;
            for &n in sizes {
                let df = part(n, offset);
                offset += n;
                match all.as_mut() {
                    None => all = Some(df),
                    Some(acc) => {
                        acc.vstack_mut(&df).unwrap();
                    }
                }
            }
            all.unwrap()
        };
        let mut misaligned = stacked(&[300_000, 1]);
        misaligned
            .with_column(Column::new("y".into(), vec![1.5; 300_001]))
            .unwrap();
        let cases = [
            (
                "one chunk, three row groups",
                stacked(&[ROW_GROUP_ROWS * 2 + 17]),
            ),
            (
                "uneven chunks",
                stacked(&[ROW_GROUP_ROWS + 1, 5, ROW_GROUP_ROWS]),
            ),
            ("many tiny chunks", stacked(&[10; 200])),
            ("misaligned chunks", misaligned),
            ("no rows", part(0, 0)),
        ];
        for (name, df) in cases {
            for write in [write_parquet, write_parquet_fast] {
                let path = dir.path().join("x.parquet");
                let mut copy = df.clone();
                write(&mut copy, &path).unwrap();
                let back = read_parquet(&path).unwrap();
                assert!(back.equals_missing(&df), "{name}");
                let mut reader = ParquetReader::new(File::open(&path).unwrap());
                assert_eq!(reader.num_rows().unwrap(), df.height(), "{name}");
            }
        }
    }

    #[test]
    fn corrupt_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        fs::write(&path, b"not parquet at all").unwrap();
        let err = read_parquet(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("not a readable Parquet file"),
            "{err}"
        );
    }

    #[test]
    fn conform_casts_and_rejects() {
        let path = Path::new("t.parquet");
        let df = df!("n" => [1i64, 2], "s" => ["a", "b"]).unwrap();
        let ok = conform(df.clone(), &[("n", Kind::Number)], path).unwrap();
        assert_eq!(ok.column("n").unwrap().dtype(), &DataType::Float64);
        let err = conform(df.clone(), &[("s", Kind::Number)], path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.parquet: column `s` has type str, expected f64");
        let err = conform(df, &[("zz", Kind::Text)], path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.parquet: missing column `zz`");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::columns::*;

        /// id, created_at, experiment_name, _extra, predicted_quality, user_rating.
        type RawRow = (
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<f64>,
            Option<f64>,
        );

        fn text() -> impl Strategy<Value = Option<String>> {
            prop_oneof![4 => "\\PC{0,12}".prop_map(Some), 1 => Just(None)]
        }

        fn number() -> impl Strategy<Value = Option<f64>> {
            prop_oneof![
                4 => any::<f64>().prop_map(Some),
                1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.0)].prop_map(Some),
                1 => Just(None),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Arbitrary rows written as a raw part and read back are the same rows.
            #[test]
            fn raw_rows_round_trip(rows in proptest::collection::vec(
                (text(), prop_oneof![Just(None), (-62_000_000_000_000_000i64..250_000_000_000_000_000).prop_map(Some)],
                 text(), text(), number(), number()), 0..40)
            ) {
                let dir = tempfile::tempdir().unwrap();
                let layout = Layout::new(dir.path());
                let table = RawTable::AbTesting;
                let n = rows.len();
                let texts = |f: fn(&RawRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
                let columns = vec![
                    Column::new(ID.into(), texts(|r| r.0.clone())),
                    Column::new(CREATED_AT.into(), rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .cast(&crate::tables::utc_timestamp()).unwrap(),
                    Column::new(EXPERIMENT_NAME.into(), texts(|r| r.2.clone())),
                    Column::new(EXTRA.into(), texts(|r| r.3.clone())),
                    Column::new(PREDICTED_QUALITY.into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
                    Column::new(USER_RATING.into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
                ];
                let mut frame = raw_frame(table, columns, n).unwrap();
                let part = layout.raw_dir(table).join(crate::layout::part_name(0));
                write_parquet(&mut frame, &part).unwrap();
                let back = read_raw(&layout, table).unwrap();
                prop_assert_eq!(back.height(), n);
                for (a, b) in frame.columns().iter().zip(back.columns()) {
                    prop_assert_eq!(a.name(), b.name());
                    prop_assert_eq!(a.dtype(), b.dtype());
                    if a.dtype() == &DataType::Float64 {
                        let bits = |c: &Column| c.f64().unwrap().iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
                        prop_assert_eq!(bits(a), bits(b));
                    } else {
                        prop_assert!(a.equals_missing(b), "{} differs", a.name());
                    }
                }
            }
        }
    }
}
