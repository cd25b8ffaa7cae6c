//! CSV files as Supabase's table editor exports them: a header row, any column
//! order, RFC 4180 quoting, empty field = null.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use contract::{ContractError, RawTable};
use serde_json::Value;

use crate::sink::TableSink;

pub fn csv_path(dir: &Path, table: RawTable) -> PathBuf {
    table.csv_export(dir)
}

/// An opened export whose header has been read.
pub struct CsvTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    reader: csv::Reader<Box<dyn Read>>,
}

pub fn open(dir: &Path, table: RawTable) -> Result<CsvTable> {
    let path = csv_path(dir, table);
    let file = File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ContractError::NotFound {
                path: path.clone(),
                hint: format!("export the {} table to CSV there", table.name()),
            }
        } else {
            ContractError::io(&path, e)
        }
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(Box::new(file) as Box<dyn Read>);
    let header = reader
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                &h
            };
            h.trim().to_string()
        })
        .collect::<Vec<_>>();
    if header.iter().all(String::is_empty) {
        return Err(ContractError::NoHeader { path }.into());
    }
    Ok(CsvTable {
        path,
        header,
        reader,
    })
}

impl CsvTable {
    /// Streams every record into the sink. A field that is not UTF-8 is kept
    /// (lossily) and the sink rejects it; a broken file is an error.
    pub fn stream_into(mut self, sink: &mut TableSink) -> Result<()> {
        let mut record = csv::ByteRecord::new();
        let mut values: Vec<Value> = Vec::with_capacity(self.header.len());
        loop {
            let more = self
                .reader
                .read_byte_record(&mut record)
                .with_context(|| format!("{}: unreadable CSV", self.path.display()))?;
            if !more {
                break;
            }
            values.clear();
            let mut bad_utf8 = false;
            for field in record.iter() {
                match std::str::from_utf8(field) {
                    Ok("") => values.push(Value::Null),
                    Ok(s) => values.push(Value::String(s.to_string())),
                    Err(_) => {
                        bad_utf8 = true;
                        values.push(Value::String(String::from_utf8_lossy(field).into_owned()));
                    }
                }
            }
            if bad_utf8 {
                sink.push_unparseable(&values, "_record", "a field is not valid UTF-8".into());
            } else {
                sink.push(&values)
                    .with_context(|| format!("writing rows of {}", self.path.display()))?;
            }
            if sink.full() {
                // Count what --limit leaves unread, so read = written + rejected + skipped.
                sink.skip_rest(self.reader.byte_records().count());
                break;
            }
        }
        Ok(())
    }
}
