//! `--format csv`: the tables as Supabase's table editor exports them: the
//! source columns only, `created_at` as `2025-12-20 17:49:11.433050+00`,
//! metadata as JSON text, empty fields for nulls.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use contract::columns::CREATED_AT;
use contract::{ContractError, RawTable, io};
use polars::prelude::*;

pub fn write_csv(table: RawTable, frame: DataFrame, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(format!("{}.csv", table.name()));
    let columns: Vec<Expr> = table
        .columns()
        .iter()
        .map(|c| match c.name {
            CREATED_AT => col(CREATED_AT).dt().strftime("%Y-%m-%d %H:%M:%S%.6f+00"),
            name => col(name),
        })
        .collect();
    let mut df = frame
        .lazy()
        .select(columns)
        .collect()
        .with_context(|| format!("formatting {}", path.display()))?;
    io::write_atomic(&path, |w| {
        CsvWriter::new(w)
            .include_header(true)
            .finish(&mut df)
            .map_err(|source| ContractError::Write {
                path: path.clone(),
                source,
            })
    })?;
    Ok(path)
}
