//! Compaction and retention of a raw table's part files, staged in the same
//! commit as the run's new parts.
//!
//! Hourly collection adds a part per table per hour (720 a month), and every
//! reader opens every part. When a table would hold more than `--max-parts`
//! parts with this run's new ones, the trailing run of small parts already there (fewer than [`SMALL_PART_ROWS`]
//! rows each, after the last large one) is merged into one part that takes
//! the name of the last of them: row order, and so "name order is write
//! order", is kept, and no row is lost or duplicated.
//!
//! Retention (`--retain-days D`) drops whole parts whose newest row was
//! created more than D days ago. A part is never cut: a row inside the
//! window always stays, and a row older than it stays until every row of
//! its part has aged out.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use contract::columns::CREATED_AT;
use contract::commit::Commit;
use contract::{Layout, RawTable, io};
use polars::prelude::*;

/// A part with fewer rows than this is small: merged when parts pile up.
pub const SMALL_PART_ROWS: usize = 1_000_000;

/// What compaction and retention did to one table.
#[derive(Debug, Default)]
pub struct Tidied {
    pub merged: usize,
    pub dropped: usize,
}

/// Stages retention and compaction of `table`'s existing parts; `new_parts`
/// is how many this run adds beside them.
pub fn tidy(
    commit: &mut Commit,
    layout: &Layout,
    table: RawTable,
    new_parts: usize,
    max_parts: usize,
    retain_before: Option<DateTime<Utc>>,
) -> Result<Tidied> {
    let mut parts = layout.raw_parts_if_any(table)?;
    if parts.is_empty() {
        return Ok(Tidied::default());
    }
    let mut done = Tidied::default();
    if let Some(cutoff) = retain_before {
        let cutoff = cutoff.timestamp_micros();
        // The newest part always stays, so the table never vanishes.
        let newest = parts.pop();
        let mut kept = Vec::new();
        for part in parts {
            if newest_created_at(&part)?.is_some_and(|t| t < cutoff) {
                commit.remove(&part);
                done.dropped += 1;
            } else {
                kept.push(part);
            }
        }
        kept.extend(newest);
        parts = kept;
    }
    if parts.len() + new_parts <= max_parts {
        return Ok(done);
    }
    let sizes: Vec<usize> = parts
        .iter()
        .map(|p| io::parquet_rows(p))
        .collect::<Result<_, _>>()?;
    let first_small = sizes
        .iter()
        .rposition(|&n| n >= SMALL_PART_ROWS)
        .map_or(0, |big| big + 1);
    let small = &parts[first_small..];
    if small.len() < 2 {
        return Ok(done);
    }
    let mut merged: Option<DataFrame> = None;
    for part in small {
        let df = io::read_parquet(part)?;
        match merged.as_mut() {
            None => merged = Some(df),
            Some(acc) => {
                if let Err(e) = acc.vstack_mut(&df) {
                    // Parts of another schema (an older version of extract): left as they are.
                    eprintln!(
                        "extract: not compacting {}: {} differs from the parts before it ({e})",
                        table.name(),
                        part.display()
                    );
                    return Ok(done);
                }
            }
        }
    }
    let Some(mut merged) = merged else {
        return Ok(done);
    };
    merged.align_chunks_par();
    let (last, rest) = small.split_last().context("no parts to merge")?;
    io::write_parquet(&mut merged, &commit.file(last)?)?;
    for part in rest {
        commit.remove(part);
    }
    done.merged = small.len();
    Ok(done)
}

fn newest_created_at(part: &Path) -> Result<Option<i64>> {
    let df = contract::io::scan_parquet(part)
        .and_then(|lf| lf.select([col(CREATED_AT).max()]).collect())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{}: not a readable Parquet file", part.display()))?;
    let c = df.column(CREATED_AT)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.get(0))
}
