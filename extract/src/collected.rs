//! What an incremental run already holds: the ids of a raw table's rows
//! created inside the lookback window, read back from the part files (only
//! the `id` and `created_at` columns, only the window's rows), so a re-read
//! row is recognised without keeping every id ever seen. With no window (the
//! first incremental run, without --days, over tables a full run wrote),
//! every id held.

use std::collections::HashSet;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use contract::columns::{CREATED_AT, ID};
use contract::tables::utc_timestamp;
use contract::{Layout, RawTable};
use polars::prelude::*;

pub fn ids_since(
    layout: &Layout,
    table: RawTable,
    since: Option<DateTime<Utc>>,
) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let since = since.map(|s| lit(s.timestamp_micros()).cast(utc_timestamp()));
    for part in layout.raw_parts_if_any(table)? {
        let df = contract::io::scan_parquet(&part)
            .and_then(|lf| {
                let lf = lf.select([col(ID).cast(DataType::String), col(CREATED_AT)]);
                match &since {
                    Some(since) => lf.filter(col(CREATED_AT).gt_eq(since.clone())),
                    None => lf,
                }
                .select([col(ID)])
                .collect()
            })
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: reading the ids already collected", part.display()))?;
        ids.extend(df.column(ID)?.str()?.iter().flatten().map(str::to_string));
    }
    Ok(ids)
}
