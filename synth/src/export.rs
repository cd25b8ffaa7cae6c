//! `--format csv`: the tables as Supabase's table editor exports them: the
//! source columns only, `created_at` as `2025-12-20 17:49:11.433050+00`,
//! metadata as JSON text, empty fields for nulls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use contract::columns::CREATED_AT;
use contract::io::AtomicFile;
use contract::{ContractError, RawTable};
use polars::prelude::*;

/// The three export files being written, a chunk of rows at a time; they
/// appear under their names only when every chunk is in.
pub struct CsvExport {
    files: BTreeMap<RawTable, AtomicFile>,
}

impl CsvExport {
    pub fn create(dir: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        for table in RawTable::ALL {
            let path = table.csv_export(dir);
            files.insert(table, AtomicFile::create(&path)?);
        }
        Ok(Self { files })
    }

    /// Appends a chunk of a table's rows (the header with the first).
    pub fn append(&mut self, table: RawTable, frame: DataFrame, first: bool) -> Result<()> {
        let file = self.files.get_mut(&table).context("no such export")?;
        let path = file.path().to_path_buf();
        let mut df = formatted(table, frame, &path)?;
        CsvWriter::new(file.writer())
            .include_header(first)
            .finish(&mut df)
            .map_err(|source| ContractError::Write { path, source })?;
        Ok(())
    }

    /// Renames every file into place; returns their paths.
    pub fn commit(self) -> Result<Vec<(RawTable, PathBuf)>> {
        let mut out = Vec::new();
        for (table, file) in self.files {
            let path = file.path().to_path_buf();
            file.commit()?;
            out.push((table, path));
        }
        Ok(out)
    }
}

fn formatted(table: RawTable, frame: DataFrame, path: &Path) -> Result<DataFrame> {
    let columns: Vec<Expr> = table
        .columns()
        .iter()
        .map(|c| match c.name {
            CREATED_AT => col(CREATED_AT).dt().strftime("%Y-%m-%d %H:%M:%S%.6f+00"),
            name => col(name),
        })
        .collect();
    frame
        .lazy()
        .select(columns)
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("formatting {}", path.display()))
}
