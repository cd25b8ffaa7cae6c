//! Writing the pipeline's files: each goes to a temporary file beside its
//! target and is renamed over it, so a crash never leaves half a file.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use super::read::parquet_rows;
use crate::ContractError;

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
        // tempfile ends its errors with ` at path "<dir>/.<name>.XXXXXX.tmp"`, the
        // name of a file the user never chose and that does not exist: the folder
        // and the cause make the line.
        let tmp = builder.tempfile_in(dir).map_err(|e| {
            let text = e.to_string();
            let cause = text
                .rsplit_once(" at path ")
                .map_or(&*text, |(cause, _)| cause);
            ContractError::io(dir, std::io::Error::new(e.kind(), cause.to_string()))
        })?;
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
            .map_err(|e| ContractError::io(&path, e))?;
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
    stage_atomic(path, fill)?.commit()
}

/// [`write_atomic`] but for the rename: the file is filled and waits for
/// [`AtomicFile::commit`], so that several outputs are written before any
/// is in place (dropped uncommitted, it leaves nothing).
pub fn stage_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<tempfile::NamedTempFile>) -> Result<(), ContractError>,
) -> Result<AtomicFile, ContractError> {
    let mut file = AtomicFile::create(path)?;
    fill(file.writer())?;
    Ok(file)
}

/// Writes a DataFrame as zstd-compressed Parquet, atomically. Level 1: as
/// small as the default level 3 on these tables, and a third faster to write.
/// For what is kept (the raw layer, models, insights).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), ContractError> {
    stage_parquet(df, path)?.commit()
}

/// [`write_parquet`] staged: in place once committed ([`stage_atomic`]).
pub fn stage_parquet(df: &mut DataFrame, path: &Path) -> Result<AtomicFile, ContractError> {
    let error = |source| ContractError::Write {
        path: path.to_path_buf(),
        source,
    };
    let level = polars_parquet::write::ZstdLevel::try_new(1).map_err(error)?;
    stage_atomic(path, |w| {
        parallel_parquet(df, w, ParquetCompression::Zstd(Some(level))).map_err(error)
    })
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
