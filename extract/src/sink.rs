//! Turning source records into raw Parquet parts. Every source (CSV export,
//! PostgreSQL COPY, PostgREST JSON) hands over records as JSON values keyed by
//! the source's column names; the sink types the known columns, keeps the rest
//! in `_extra`, applies the window and limit, and sends every row it cannot
//! read to the rejects with the field that failed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contract::columns::*;
use contract::reports::TableCounts;
use contract::tables::utc_timestamp;
use contract::{ContractError, Kind, RawTable, io};
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::classify::{Classifier, Fate};
use crate::values::{Parsed, as_text, parse};

/// Rows per part file: bounds memory whatever the table's size.
pub const ROWS_PER_PART: usize = 200_000;

/// Where a source column goes.
#[derive(Clone, Debug)]
enum Slot {
    Known(usize),
    Extra(String),
}

enum Buf {
    Text(Vec<Option<String>>),
    Number(Vec<Option<f64>>),
    Time(Vec<Option<i64>>),
}

impl Buf {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text | Kind::Json => Buf::Text(Vec::new()),
            Kind::Number => Buf::Number(Vec::new()),
            Kind::Timestamp => Buf::Time(Vec::new()),
        }
    }

    fn take(&mut self, name: &str) -> PolarsResult<Column> {
        Ok(match self {
            Buf::Text(v) => Column::new(name.into(), std::mem::take(v)),
            Buf::Number(v) => Column::new(name.into(), std::mem::take(v)),
            Buf::Time(v) => Column::new(name.into(), std::mem::take(v)).cast(&utc_timestamp())?,
        })
    }
}

/// A source's header is usable: no name twice, every required column there.
/// `origin` names the file or table in the error.
pub fn check_header(table: RawTable, origin: &str, header: &[String]) -> Result<(), ContractError> {
    let mut seen = HashSet::new();
    for name in header {
        if !seen.insert(name.as_str()) {
            return Err(ContractError::DuplicateColumn {
                path: PathBuf::from(origin),
                column: name.clone(),
            });
        }
    }
    for column in table.columns() {
        if column.required && !header.iter().any(|h| h == column.name) {
            return Err(ContractError::MissingColumn {
                path: PathBuf::from(origin),
                column: column.name.to_string(),
            });
        }
    }
    Ok(())
}

/// The columns of a source's header that are not the table's: what `_extra`
/// keeps, and the report names.
pub fn extra_columns(table: RawTable, header: &[String]) -> Vec<String> {
    header
        .iter()
        .filter(|h| table.column(h).is_none())
        .cloned()
        .collect()
}

/// Which rows to keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// Where and how one table's rows are written.
#[derive(Clone, Debug)]
pub struct Target {
    pub window: Window,
    /// The staging folder the part files go to.
    pub out_dir: PathBuf,
    /// The number of the first part file written.
    pub first_part: usize,
    pub extracted_at: DateTime<Utc>,
    /// The present by the source's clock (PostgreSQL's `now()`; ours for
    /// files): rows dated after it are collected but never move the cursor.
    /// Supabase's comes with its first answer ([`TableSink::set_source_now`]).
    pub horizon: DateTime<Utc>,
    /// Ids of this table already in the raw layer inside the window (incremental
    /// runs): re-read rows with these ids are counted, not written again.
    pub collected: Arc<HashSet<String>>,
}

pub struct TableSink {
    table: RawTable,
    source: &'static str,
    extracted_at: i64,
    origin: String,
    header: Vec<String>,
    slots: Vec<Slot>,
    bufs: Vec<Buf>,
    extra: Vec<Option<String>>,
    has_extra: bool,
    buffered: usize,
    rejects: Vec<Vec<Option<String>>>,
    reject_field: Vec<String>,
    reject_detail: Vec<String>,
    out_dir: PathBuf,
    first_part: usize,
    /// Each row's fate, the counts and the cursor.
    pub rows: Classifier,
}

impl TableSink {
    /// `origin` names the file or table in errors; `header` is the source's
    /// column names in record order. A required column missing is an error.
    pub fn new(
        table: RawTable,
        source: &'static str,
        origin: &str,
        header: Vec<String>,
        target: &Target,
    ) -> Result<Self, ContractError> {
        check_header(table, origin, &header)?;
        let slots = header
            .iter()
            .map(|h| match table.columns().iter().position(|c| c.name == h) {
                Some(i) => Slot::Known(i),
                None => Slot::Extra(h.clone()),
            })
            .collect::<Vec<_>>();
        let has_extra = slots.iter().any(|s| matches!(s, Slot::Extra(_)));
        Ok(Self {
            table,
            source,
            extracted_at: target.extracted_at.timestamp_micros(),
            origin: origin.to_string(),
            header,
            slots,
            bufs: table.columns().iter().map(|c| Buf::new(c.kind)).collect(),
            extra: Vec::new(),
            has_extra,
            buffered: 0,
            rejects: Vec::new(),
            reject_field: Vec::new(),
            reject_detail: Vec::new(),
            out_dir: target.out_dir.clone(),
            first_part: target.first_part,
            rows: Classifier::new(target),
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Whether `--limit` is reached, so a source can stop reading.
    pub fn full(&self) -> bool {
        self.rows.full()
    }

    /// A record the source could not even split into text fields.
    pub fn push_unparseable(&mut self, record: &[Value], field: &str, detail: String) {
        if self.rows.classify(true, None, None) == Fate::Rejected {
            self.reject(record, field, detail);
        }
    }

    /// Counts rows left unread once `--limit` is reached.
    pub fn skip_rest(&mut self, rows: usize) {
        self.rows.skip_rest(rows);
    }

    fn reject(&mut self, record: &[Value], field: &str, detail: String) {
        self.rejects.push(record.iter().map(as_text).collect());
        self.reject_field.push(field.to_string());
        self.reject_detail.push(detail);
    }

    /// Takes one record, its values in header order.
    pub fn push(&mut self, record: &[Value]) -> Result<(), ContractError> {
        if record.len() != self.header.len() {
            let detail = format!(
                "the record has {} fields, the header {}",
                record.len(),
                self.header.len()
            );
            self.push_unparseable(record, "_record", detail);
            return Ok(());
        }
        let columns = self.table.columns();
        let mut parsed: Vec<Option<Parsed>> = (0..columns.len()).map(|_| None).collect();
        let mut extra = Map::new();
        for (slot, value) in self.slots.iter().zip(record) {
            match slot {
                Slot::Extra(name) => {
                    extra.insert(name.clone(), value.clone());
                }
                Slot::Known(i) => match parse(columns[*i].kind, value) {
                    Ok(p) => parsed[*i] = Some(p),
                    Err(detail) => {
                        let field = columns[*i].name;
                        self.push_unparseable(record, field, format!("{field}: {detail}"));
                        return Ok(());
                    }
                },
            }
        }
        let created_at = columns
            .iter()
            .position(|c| c.name == CREATED_AT)
            .and_then(|i| match &parsed[i] {
                Some(Parsed::Time(t)) => *t,
                _ => None,
            });
        let id = record_id(&self.slots, columns, record);
        if self.rows.classify(false, created_at, id.as_deref()) != Fate::Kept {
            return Ok(());
        }
        for (buf, value) in self.bufs.iter_mut().zip(parsed) {
            match (buf, value) {
                (Buf::Text(v), Some(Parsed::Text(x))) => v.push(x),
                (Buf::Number(v), Some(Parsed::Number(x))) => v.push(x),
                (Buf::Time(v), Some(Parsed::Time(x))) => v.push(x),
                (Buf::Text(v), _) => v.push(None),
                (Buf::Number(v), _) => v.push(None),
                (Buf::Time(v), _) => v.push(None),
            }
        }
        self.extra.push(if self.has_extra {
            Some(Value::Object(extra).to_string())
        } else {
            None
        });
        self.buffered += 1;
        if self.buffered >= ROWS_PER_PART {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as the next part file.
    fn flush(&mut self) -> Result<(), ContractError> {
        let name =
            contract::layout::part_name(self.first_part + self.rows.counts.parts_written.len());
        let path = self.out_dir.join(&name);
        let mut df = self.frame().map_err(|source| ContractError::Frame {
            path: path.clone(),
            source,
        })?;
        io::write_parquet(&mut df, &path)?;
        self.rows.counts.parts_written.push(name);
        self.buffered = 0;
        Ok(())
    }

    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let n = self.buffered;
        let mut cols = Vec::with_capacity(self.bufs.len() + 3);
        for (buf, column) in self.bufs.iter_mut().zip(self.table.columns()) {
            cols.push(buf.take(column.name)?);
        }
        cols.push(Column::new(SOURCE.into(), vec![self.source; n]));
        cols.push(
            Column::new(EXTRACTED_AT.into(), vec![self.extracted_at; n]).cast(&utc_timestamp())?,
        );
        cols.push(Column::new(EXTRA.into(), std::mem::take(&mut self.extra)));
        io::raw_frame(self.table, cols, n)
    }

    /// Writes the last part (an empty one when the table had no rows at all,
    /// so a replaced table always exists) and returns the rejects.
    pub fn finish(mut self, write_empty: bool) -> Result<Finished, ContractError> {
        if self.buffered > 0 || (write_empty && self.rows.counts.parts_written.is_empty()) {
            self.flush()?;
        }
        let rejects = if self.rejects.is_empty() {
            None
        } else {
            Some(
                self.rejects_frame()
                    .map_err(|source| ContractError::Frame {
                        path: PathBuf::from(&self.origin),
                        source,
                    })?,
            )
        };
        Ok(Finished {
            counts: TableCounts {
                extra_columns: extra_columns(self.table, &self.header),
                ..self.rows.counts
            },
            max_key: self.rows.max_key,
            horizon: self.rows.horizon,
            rejects,
        })
    }

    /// The source's present, read from its answer (Supabase's `Date`), before
    /// any row is pushed.
    pub fn set_source_now(&mut self, now: DateTime<Utc>) {
        self.rows.horizon = now.timestamp_micros();
    }

    fn rejects_frame(&mut self) -> PolarsResult<DataFrame> {
        let mut cols = Vec::with_capacity(self.header.len() + 3);
        for (i, name) in self.header.iter().enumerate() {
            let values: Vec<Option<String>> = self
                .rejects
                .iter()
                .map(|r| r.get(i).cloned().flatten())
                .collect();
            cols.push(Column::new(name.as_str().into(), values));
        }
        cols.extend(reason_columns(
            self.reject_field.iter().map(String::as_str).collect(),
            self.reject_detail.iter().map(String::as_str).collect(),
        ));
        DataFrame::new_infer_height(cols)
    }
}

/// The columns a reject file has after the record's own: why (unparseable),
/// which field, and the detail; one value per rejected row. Both readers of
/// a table build their rejects with these.
pub fn reason_columns(fields: Vec<&str>, details: Vec<&str>) -> [Column; 3] {
    [
        Column::new(REASON.into(), vec![UNPARSEABLE; fields.len()]),
        Column::new(FIELD.into(), fields),
        Column::new(DETAIL.into(), details),
    ]
}

pub struct Finished {
    pub counts: TableCounts,
    pub max_key: Option<(i64, String)>,
    /// The source's present the cursor was held to (microseconds).
    pub horizon: i64,
    pub rejects: Option<DataFrame>,
}

fn record_id(
    slots: &[Slot],
    columns: &[contract::tables::RawColumn],
    record: &[Value],
) -> Option<String> {
    slots.iter().zip(record).find_map(|(slot, v)| match slot {
        Slot::Known(i) if columns[*i].name == ID => as_text(v),
        _ => None,
    })
}
