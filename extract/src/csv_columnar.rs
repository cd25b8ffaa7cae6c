//! The fast path for CSV exports: polars reads the file as text columns, a
//! batch of rows at a time, then each known column is cast as a column; only the cells a
//! vectorised cast could not read go through the row-by-row reader
//! ([`crate::values::parse`]), so every row ends up exactly where the
//! row-by-row path would put it, with the same detail.
//!
//! A file polars cannot read strictly (a record with more fields than the
//! header, invalid UTF-8) or whose separators do not add up (a record with
//! fewer fields, which polars would pad with nulls) is left to the row-by-row
//! path, which rejects those records one by one.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use contract::columns::*;
use contract::tables::utc_timestamp;
use contract::{Kind, RawTable, io, timestamp};
use polars::prelude::*;
use rayon::prelude::*;
use serde_json::Value;

use crate::classify::{Classifier, Fate};
use crate::sink::{Finished, ROWS_PER_PART, Target, reason_columns};
use crate::values::parse;

/// Rows handed over at a time: a part's worth. At 1M rows per table, a
/// batch of two parts measured 5% slower, five parts 60% slower with more
/// memory; reading the whole file at once was 20% faster (parts written on
/// every core) but held all of it (0.8 GB a million rows of the widest table).
const BATCH_ROWS: usize = ROWS_PER_PART;

/// Reads a CSV export in columns, a batch of rows at a time (polars'
/// streaming CSV reader, in file order): each batch is classified and its
/// kept rows written as parts fill, so memory holds a batch and one part,
/// not the file. `Ok(None)` when the file needs the row-by-row path; the
/// parts already written are removed first.
pub fn read(
    path: &Path,
    table: RawTable,
    header: &[String],
    source: &'static str,
    target: &Target,
    write_empty: bool,
) -> Result<Option<Finished>> {
    let schema: Schema = header
        .iter()
        .map(|h| Field::new(h.as_str().into(), DataType::String))
        .collect();
    let (send, batches) = std::sync::mpsc::sync_channel::<DataFrame>(1);
    let plan = LazyCsvReader::new(PlRefPath::try_from_path(path)?)
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema)))
        .with_truncate_ragged_lines(false)
        .finish()?
        // Stops the reader (returns true) once nobody takes the batches.
        .sink_batches(
            PlanCallback::new(move |df: DataFrame| Ok(send.send(df).is_err())),
            true,
            std::num::NonZeroUsize::new(BATCH_ROWS),
        )?;
    let mut columnar = Columnar::new(table, header, source, target);
    let mut rows = 0usize;
    // Count the separators on one thread while polars parses on the others.
    let (parsed, separators, pushed) = std::thread::scope(|scope| {
        let counting = scope.spawn(|| count_separators(path));
        let parsing = scope.spawn(move || plan.collect_with_engine(Engine::Streaming));
        let mut pushed = Ok(());
        for batch in batches.iter() {
            rows += batch.height();
            pushed = columnar.push(batch);
            if pushed.is_err() {
                break;
            }
        }
        drop(batches);
        (parsing.join(), counting.join(), pushed)
    });
    pushed?;
    let separators = separators
        .map_err(|_| anyhow::anyhow!("{}: counting separators failed", path.display()))?
        .with_context(|| format!("reading {}", path.display()))?;
    let parsed =
        parsed.map_err(|_| anyhow::anyhow!("{}: the CSV reader failed", path.display()))?;
    if parsed.is_err() || separators != (rows + 1) * header.len().saturating_sub(1) {
        columnar.abandon()?;
        return Ok(None);
    }
    Ok(Some(columnar.finish(write_empty)?))
}

/// Rows read in columns, classified and written block by block: a CSV export
/// is one block, PostgreSQL's COPY output many. Every row ends up exactly
/// where the row-by-row path would put it; kept rows are written as part
/// files of ROWS_PER_PART rows as soon as a part is full, so memory holds a
/// block and at most one part's rows.
pub struct Columnar<'a> {
    table: RawTable,
    header: &'a [String],
    source: &'static str,
    target: &'a Target,
    /// Each row's fate, the counts and the cursor.
    rows: Classifier,
    rejects: Vec<DataFrame>,
    /// Kept rows not yet in a part file.
    pending: Option<DataFrame>,
}

impl<'a> Columnar<'a> {
    pub fn new(
        table: RawTable,
        header: &'a [String],
        source: &'static str,
        target: &'a Target,
    ) -> Self {
        Self {
            table,
            header,
            source,
            target,
            rows: Classifier::new(target),
            rejects: Vec::new(),
            pending: None,
        }
    }

    /// Classifies one block of rows, a text column per header field.
    pub fn push(&mut self, raw: DataFrame) -> Result<()> {
        let (table, header, target) = (self.table, self.header, self.target);
        let n = raw.height();
        let (typed, failed) = typed_columns(&raw, header, table)?;
        let (keep, rejected_rows) = self.classify(&typed, &failed);

        let mask = BooleanChunked::from_slice("keep".into(), &keep);
        let extra = extra_column(&raw, header, table)?;
        let mut all = typed;
        all.push(Column::new_scalar(
            SOURCE.into(),
            Scalar::new(DataType::String, self.source.into()),
            n,
        ));
        all.push(
            Column::new_scalar(
                EXTRACTED_AT.into(),
                Scalar::new(
                    DataType::Int64,
                    AnyValue::Int64(target.extracted_at.timestamp_micros()),
                ),
                n,
            )
            .cast(&utc_timestamp())?,
        );
        all.push(extra);
        let kept = io::raw_frame(table, all, n)?.filter(&mask)?;
        if !rejected_rows.is_empty() {
            self.rejects
                .push(rejects_frame(&raw, header, &rejected_rows, &failed)?);
        }
        match &mut self.pending {
            Some(pending) => {
                pending.vstack_mut(&kept)?;
            }
            None => self.pending = Some(kept),
        }
        self.write_parts(false)
    }

    /// Each row's fate, in order (see [`Classifier`]). Returns the kept
    /// mask and the rejected rows.
    fn classify(
        &mut self,
        typed: &[Column],
        failed: &[Option<(&'static str, String)>],
    ) -> (Vec<bool>, Vec<usize>) {
        let n = failed.len();
        let created = typed
            .iter()
            .find(|c| c.name() == CREATED_AT)
            .and_then(|c| c.datetime().ok())
            .map(|c| c.physical().clone());
        let ids = typed
            .iter()
            .find(|c| c.name() == ID)
            .and_then(|c| c.str().ok().cloned());
        let mut keep = Vec::with_capacity(n);
        let mut rejected_rows = Vec::new();
        for (row, failure) in failed.iter().enumerate() {
            if self.rows.full() {
                // Every later row is beyond the limit: counted, not looked at.
                self.rows.skip_rest(n - row);
                keep.resize(n, false);
                break;
            }
            let t = created.as_ref().and_then(|c| c.get(row));
            let id = ids.as_ref().and_then(|c| c.get(row));
            let fate = self.rows.classify(failure.is_some(), t, id);
            if fate == Fate::Rejected {
                rejected_rows.push(row);
            }
            keep.push(fate == Fate::Kept);
        }
        (keep, rejected_rows)
    }

    /// Writes the full parts among the pending rows (`all`: every pending
    /// row), several at once: each part's widest column, the metadata text,
    /// is compressed on one core.
    fn write_parts(&mut self, all: bool) -> Result<()> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        let rows = pending.height();
        let ready = if all {
            rows
        } else {
            rows / ROWS_PER_PART * ROWS_PER_PART
        };
        if ready == 0 && !(all && self.rows.counts.parts_written.is_empty() && rows == 0) {
            self.pending = Some(pending);
            return Ok(());
        }
        pending.rechunk_mut_par();
        let mut offsets: Vec<usize> = (0..ready).step_by(ROWS_PER_PART).collect();
        if offsets.is_empty() {
            // An empty table still gets one (empty) part when asked.
            offsets.push(0);
        }
        let first = self.target.first_part + self.rows.counts.parts_written.len();
        let names: Vec<String> = (0..offsets.len())
            .map(|i| contract::layout::part_name(first + i))
            .collect();
        offsets
            .par_iter()
            .zip(&names)
            .try_for_each(|(&offset, name)| {
                let mut part = pending.slice(offset as i64, (ready - offset).min(ROWS_PER_PART));
                io::write_parquet(&mut part, &self.target.out_dir.join(name))
            })?;
        self.rows.counts.parts_written.extend(names);
        if ready < rows {
            self.pending = Some(pending.slice(ready as i64, rows - ready));
        }
        Ok(())
    }

    /// Removes the parts written so far (the row-by-row path starts over).
    fn abandon(self) -> Result<()> {
        for name in &self.rows.counts.parts_written {
            let part = self.target.out_dir.join(name);
            std::fs::remove_file(&part).with_context(|| format!("removing {}", part.display()))?;
        }
        Ok(())
    }

    /// Writes the rows left; an empty table gets one empty part when
    /// `write_empty` (a replaced table always exists).
    pub fn finish(mut self, write_empty: bool) -> Result<Finished> {
        if self.pending.is_none() && write_empty && self.rows.counts.parts_written.is_empty() {
            let empty: Vec<Column> = self
                .header
                .iter()
                .map(|h| Column::new_empty(h.as_str().into(), &DataType::String))
                .collect();
            self.push(DataFrame::new(0, empty)?)?;
        }
        if write_empty || self.pending.as_ref().is_some_and(|p| p.height() > 0) {
            self.write_parts(true)?;
        }
        let mut rejects = self.rejects.into_iter();
        let rejects = match rejects.next() {
            None => None,
            Some(mut first) => {
                for more in rejects {
                    first.vstack_mut(&more)?;
                }
                Some(first)
            }
        };
        Ok(Finished {
            counts: contract::reports::TableCounts {
                extra_columns: super::sink::extra_columns(self.table, self.header),
                ..self.rows.counts
            },
            max_key: self.rows.max_key,
            horizon: self.target.horizon.timestamp_micros(),
            rejects,
        })
    }
}

/// Per row, the first column that did not read and the detail, if any.
type Failed = Vec<Option<(&'static str, String)>>;

/// The block's known columns cast to their kinds (on every core) and, per
/// row, the first column that failed, as the row-by-row path reports it.
fn typed_columns(
    raw: &DataFrame,
    header: &[String],
    table: RawTable,
) -> Result<(Vec<Column>, Failed)> {
    let columns = table.columns();
    let n = raw.height();
    // Per known column, in header order: its typed values and, per row, the
    // first column that failed (as the row-by-row path reports it). The
    // columns are cast on every core, then merged in header order.
    let known: Vec<(usize, &contract::tables::RawColumn)> = header
        .iter()
        .enumerate()
        .filter_map(|(position, name)| Some((position, columns.iter().find(|c| c.name == name)?)))
        .collect();
    let casts: Vec<(Column, Vec<(usize, String)>)> = known
        .par_iter()
        .map(|&(position, column)| {
            let text = blank_is_null(raw.columns()[position].str()?);
            let (values, failures) = cast(&text, column.kind)?;
            Ok((values.with_name(column.name.into()), failures))
        })
        .collect::<Result<_>>()?;
    let mut typed: Vec<Column> = Vec::with_capacity(columns.len());
    let mut failed: Failed = vec![None; n];
    for ((_, column), (values, failures)) in known.iter().zip(casts) {
        for (row, detail) in failures {
            if failed[row].is_none() {
                failed[row] = Some((column.name, format!("{}: {detail}", column.name)));
            }
        }
        typed.push(values);
    }
    Ok((typed, failed))
}

/// Separators outside quotes in a file. With no record longer than the
/// header (polars refuses those), every record has all its fields exactly when
/// there are `fields - 1` of them per record, the header's included.
fn count_separators(path: &Path) -> std::io::Result<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    // A multiple of 64 bytes: every read but the last fills whole blocks.
    let mut buf = vec![0u8; 1 << 20];
    let mut quoted = false;
    let mut commas = 0usize;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(commas);
        }
        let (blocks, rest) = buf[..filled].split_at(filled / 64 * 64);
        for block in blocks.chunks_exact(64) {
            commas += separators_in_block(block, &mut quoted);
        }
        for &b in rest {
            match b {
                b'"' => quoted = !quoted,
                b',' if !quoted => commas += 1,
                _ => {}
            }
        }
    }
}

/// Separators outside quotes in 64 bytes, as bit masks: a byte is inside
/// quotes when an odd number of quotes precede it, a prefix XOR of the quote
/// mask.
fn separators_in_block(block: &[u8], quoted: &mut bool) -> usize {
    debug_assert_eq!(block.len(), 64);
    let (mut quotes, mut commas) = (0u64, 0u64);
    for (i, word) in block.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(std::array::from_fn(|k| word[k]));
        quotes |= byte_mask(word, b'"') << (8 * i);
        commas |= byte_mask(word, b',') << (8 * i);
    }
    let mut inside = quotes;
    for shift in [1, 2, 4, 8, 16, 32] {
        inside ^= inside << shift;
    }
    if *quoted {
        inside = !inside;
    }
    *quoted = inside >> 63 == 1;
    (commas & !inside).count_ones() as usize
}

/// One bit per byte of `word` (little-endian order) that equals `byte`,
/// eight bytes at a time (exact: no carries between bytes).
fn byte_mask(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // High bit of each byte set where the byte of x is zero.
    let zero = !(((x & LOW7) + LOW7) | x | LOW7);
    // Gather the eight high bits into the low byte.
    (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Empty text is null, as in the row-by-row path: a blank cell's validity
/// bit is cleared, the text itself is not copied.
fn blank_is_null(text: &StringChunked) -> StringChunked {
    use polars_arrow::array::Array;
    use polars_arrow::bitmap::Bitmap;
    let chunks = text.downcast_iter().map(|array| {
        let filled: Bitmap = array.views().iter().map(|v| v.length != 0).collect();
        let validity = match array.validity() {
            Some(valid) => valid & &filled,
            None => filled,
        };
        array.clone().with_validity(Some(validity))
    });
    StringChunked::from_chunk_iter(text.name().clone(), chunks)
}

/// A text column cast to its kind, with (row, detail) for every cell that
/// does not read.
#[allow(clippy::type_complexity)]
fn cast(text: &StringChunked, kind: Kind) -> Result<(Column, Vec<(usize, String)>)> {
    let mut failures = Vec::new();
    let column = match kind {
        Kind::Text => text.clone().into_column(),
        Kind::Number => {
            let values: Float64Chunked = text
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    let s = v?;
                    match fast_float(s) {
                        Some(x) => Some(x),
                        None => match parse(kind, &Value::String(s.to_string())) {
                            Ok(crate::values::Parsed::Number(x)) => x,
                            Ok(_) => None,
                            Err(detail) => {
                                failures.push((row, detail));
                                None
                            }
                        },
                    }
                })
                .collect();
            values.into_column()
        }
        Kind::Timestamp => {
            let values: Int64Chunked = text
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    let s = v?;
                    match fast_timestamp(s).or_else(|| timestamp::parse_utc(s).map(micros)) {
                        Some(t) => Some(t),
                        None => {
                            failures.push((row, format!("`{s}` is not a timestamp")));
                            None
                        }
                    }
                })
                .collect();
            values.into_column().cast(&utc_timestamp())?
        }
        Kind::Json => {
            for (row, detail) in json_failures(text) {
                failures.push((row, detail));
            }
            text.clone().into_column()
        }
    };
    Ok((column, failures))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Plain decimal numbers as exports write them; anything else (spaces, `inf`,
/// a typo) goes to the row-by-row reader.
fn fast_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let plain = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'e' | b'E' | b'+'));
    if plain { s.parse().ok() } else { None }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]+00` (Supabase's export) without allocating;
/// other shapes go to [`timestamp::parse_utc`].
fn fast_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 22 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(b[10] == b' ' || b[10] == b'T') || !s.ends_with("+00") {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    let rest = &b[19..b.len() - 3];
    let micros_part = match rest {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() && digits.len() <= 9 => {
            let mut v = 0i64;
            for (i, &c) in digits.iter().enumerate() {
                if !c.is_ascii_digit() {
                    return None;
                }
                if i < 6 {
                    v = v * 10 + i64::from(c - b'0');
                }
            }
            v * 10i64.pow(6u32.saturating_sub(digits.len() as u32))
        }
        _ => return None,
    };
    Some(date.and_time(time).and_utc().timestamp() * 1_000_000 + micros_part)
}

/// Rows whose metadata is not a JSON object, with the reason; checked on
/// every core.
fn json_failures(text: &StringChunked) -> Vec<(usize, String)> {
    let cells: Vec<Option<&str>> = text.iter().collect();
    cells
        .par_iter()
        .enumerate()
        .filter_map(|(row, cell)| {
            let s = (*cell)?;
            let ok = s.trim_start().starts_with('{')
                && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok();
            if ok {
                return None;
            }
            parse(Kind::Json, &Value::String(s.to_string()))
                .err()
                .map(|detail| (row, detail))
        })
        .collect()
}

/// `_extra`: the columns beyond the contract's, as a JSON object of their text
/// per row (null when the export has none).
fn extra_column(raw: &DataFrame, header: &[String], table: RawTable) -> Result<Column> {
    let extras: Vec<(usize, &String)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| table.column(h).is_none())
        .collect();
    let n = raw.height();
    if extras.is_empty() {
        return Ok(Column::full_null(EXTRA.into(), n, &DataType::String));
    }
    let columns: Vec<&StringChunked> = extras
        .iter()
        .map(|(i, _)| raw.columns()[*i].str())
        .collect::<PolarsResult<_>>()?;
    let values: StringChunked = (0..n)
        .map(|row| {
            let mut object = serde_json::Map::new();
            for ((_, name), column) in extras.iter().zip(&columns) {
                let value = column
                    .get(row)
                    .filter(|s| !s.is_empty())
                    .map_or(Value::Null, |s| Value::String(s.to_string()));
                object.insert((*name).clone(), value);
            }
            Some(Value::Object(object).to_string())
        })
        .collect();
    Ok(values.into_column().with_name(EXTRA.into()))
}

/// Rows that did not read, every field as its text, with reason and detail.
fn rejects_frame(
    raw: &DataFrame,
    header: &[String],
    rows: &[usize],
    failed: &[Option<(&'static str, String)>],
) -> Result<DataFrame> {
    let idx = IdxCa::from_vec("idx".into(), rows.iter().map(|&r| r as IdxSize).collect());
    let mut cols: Vec<Column> = Vec::with_capacity(header.len() + 3);
    for (position, name) in header.iter().enumerate() {
        let text = blank_is_null(raw.columns()[position].str()?).take(&idx)?;
        cols.push(text.into_column().with_name(name.as_str().into()));
    }
    let picked: Vec<&(&'static str, String)> =
        rows.iter().filter_map(|&r| failed[r].as_ref()).collect();
    cols.extend(reason_columns(
        picked.iter().map(|(f, _)| *f).collect(),
        picked.iter().map(|(_, d)| d.as_str()).collect(),
    ));
    Ok(DataFrame::new(rows.len(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timestamps_agree_with_the_general_parser() {
        for s in [
            "2025-12-20 17:49:11.43305+00",
            "2025-12-20 17:49:11+00",
            "2025-12-20T17:49:11.123456789+00",
            "2024-02-29 00:00:00.5+00",
        ] {
            assert_eq!(
                fast_timestamp(s),
                timestamp::parse_utc(s).map(micros),
                "{s}"
            );
        }
        for s in [
            "2025-02-30 00:00:00+00",
            "2025-12-20 17:49:11+01",
            "garbage",
        ] {
            assert_eq!(fast_timestamp(s), None, "{s}");
        }
    }

    #[test]
    fn separators_count_outside_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a,b,c\n1,\"x,y\",3\n\"multi\nline\",2,3\n").unwrap();
        assert_eq!(count_separators(&path).unwrap(), 6);
        std::fs::write(&path, "a,b,c\n1,2,3\n4,5\n").unwrap();
        assert_eq!(count_separators(&path).unwrap(), 5);
        // Across 64-byte blocks and read buffers: the block masks agree with
        // a byte-by-byte count, quotes open across a block's end included.
        let mut text = String::new();
        for i in 0..600_000 {
            match i % 7 {
                0 => text.push_str("\"a,\"\"b\"\",c\","),
                1 => text.push_str("x,y,"),
                2 => text.push_str(&"\"".repeat(i % 5)),
                3 => text.push('\n'),
                _ => text.push_str(&",".repeat(i % 3)),
            }
        }
        std::fs::write(&path, &text).unwrap();
        let mut quoted = false;
        let expected = text
            .bytes()
            .filter(|&b| {
                quoted ^= b == b'"';
                b == b',' && !quoted
            })
            .count();
        assert!(text.len() > 1 << 20);
        assert_eq!(count_separators(&path).unwrap(), expected);
    }
}
