//! CSV files as Supabase's table editor exports them: a header row, any column
//! order, RFC 4180 quoting, empty field = null.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
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
        let mut last: Option<csv::Position> = None;
        loop {
            let more = self
                .reader
                .read_byte_record(&mut record)
                .with_context(|| format!("{}: unreadable CSV", self.path.display()))?;
            if !more {
                if let Some(last) = last {
                    self.check_last_record(&last)?;
                }
                break;
            }
            last = record.position().cloned();
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

    /// A quote that opens a field and never closes swallows every record
    /// after it into the last field of one: the file is broken (cut short,
    /// or a stray `"`), not one bad row, so it is an error naming the line
    /// where the quote opened, before anything is written.
    fn check_last_record(&self, last: &csv::Position) -> Result<()> {
        let mut tail = Vec::new();
        let mut file = File::open(&self.path).map_err(|e| ContractError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(last.byte()))
            .and_then(|_| file.read_to_end(&mut tail))
            .map_err(|e| ContractError::io(&self.path, e))?;
        if ends_inside_quotes(&tail) {
            anyhow::bail!(
                "{}: line {}: a quoted field opens there and the file ends before it closes \
                 (an export cut short, or a stray `\"`); nothing written",
                self.path.display(),
                last.line()
            );
        }
        Ok(())
    }
}

/// Whether a record running to the end of the file ends inside a quoted
/// field. As RFC 4180 and the csv reader have it, a quote opens a field only
/// at its start, and `""` inside a quoted field is a quote character.
fn ends_inside_quotes(record: &[u8]) -> bool {
    let (mut quoted, mut field_start) = (false, true);
    let mut bytes = record.iter().peekable();
    while let Some(&b) = bytes.next() {
        if quoted {
            if b == b'"' && bytes.next_if_eq(&&b'"').is_none() {
                quoted = false;
            }
        } else {
            quoted = b == b'"' && field_start;
            field_start = matches!(b, b',' | b'\n' | b'\r');
        }
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::ends_inside_quotes;

    #[test]
    fn a_quote_left_open_at_the_end_is_found() {
        for (record, open) in [
            ("a,b,c\n", false),
            ("a,\"b, \"\"c\"\"\nd\",e\n", false),
            ("a,\"b\"\"\n", true),
            ("a,\"b\nc,d\n", true),
            ("a,b\"c,d", false),
            ("\"", true),
            ("\"\"", false),
            ("a,\"b\"x\"y", false),
        ] {
            assert_eq!(ends_inside_quotes(record.as_bytes()), open, "{record:?}");
        }
    }
}
