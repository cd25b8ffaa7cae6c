//! PostgreSQL through DATABASE_URL, with TLS when the URL asks for it (as
//! Supabase's connection strings do). Streams each table with COPY ... TO
//! STDOUT in CSV, in blocks, so no table is ever held in memory whole; each
//! block goes through the same columnar reader as exported files.

use std::io::Read;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use contract::RawTable;
use contract::columns::{CREATED_AT, ID};
use polars::prelude::*;
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use crate::csv_columnar::Columnar;
use crate::pg_conn;
use crate::sink::{self, Finished, Target};
use contract::progress::Progress;

pub struct Db {
    client: Client,
    /// host:port/dbname, for messages: never the password.
    name: String,
    /// The role we log in as, to name a missing grant.
    user: String,
}

/// Where a connection goes, without its credentials.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// How long to wait for the server: the whole connection handshake, and each
/// statement (enforced by the server, and by us if the server stops answering).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub statement: Duration,
}

impl Db {
    pub fn from_env(timeouts: Timeouts) -> Result<Self> {
        use contract::secrets::DATABASE_URL;
        let url = std::env::var(DATABASE_URL)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .with_context(|| {
                format!("{DATABASE_URL} is not set (a postgresql:// connection string)")
            })?;
        Self::connect(&url, timeouts)
    }

    pub fn connect(url: &str, timeouts: Timeouts) -> Result<Self> {
        let mut spec = pg_conn::parse(url)?;
        let name = describe(&spec.config);
        let user = spec.config.get_user().unwrap_or("").to_string();
        if spec.config.get_connect_timeout().is_none() {
            spec.config.connect_timeout(timeouts.connect);
        }
        let connect_timeout = spec
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(timeouts.connect);
        // Keepalives and the TCP user timeout notice a peer that went away.
        spec.config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(timeouts.statement);
        let connector = pg_conn::connector(&spec)?;
        let config = spec.config.clone();
        // The driver's connect_timeout covers the TCP connect only; a server that
        // accepts and never answers would hang the handshake, so bound it whole.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let client = match connector {
                None => config.connect(NoTls),
                Some(c) => config.connect(postgres_native_tls::MakeTlsConnector::new(c)),
            };
            let _ = tx.send(client);
        });
        let mut client = match rx.recv_timeout(connect_timeout + Duration::from_secs(1)) {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => bail!("cannot connect to PostgreSQL at {name}: {}", one_line(&e)),
            Err(_) => bail!(
                "cannot connect to PostgreSQL at {name}: no answer within {} s (--connect-timeout)",
                connect_timeout.as_secs()
            ),
        };
        // Read only, and the server cancels any statement that runs too long. Set
        // after connecting: poolers (Supabase's included) refuse startup options.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET default_transaction_read_only = on; \
                 SET TIME ZONE 'UTC'; SET extra_float_digits = 3",
                timeouts.statement.as_millis().max(1)
            ))
            .map_err(|e| anyhow::anyhow!("PostgreSQL at {name}: {}", one_line(&e)))?;
        Ok(Self { client, name, user })
    }

    /// The present by the database's clock (`now()`), which bounds the
    /// incremental cursor: a clock behind ours must not make rows it dates
    /// "now" look older than the position saved.
    pub fn now(&mut self) -> Result<DateTime<Utc>> {
        let micros: i64 = self
            .client
            .query_one("SELECT (extract(epoch FROM now()) * 1000000)::bigint", &[])
            .map_err(|e| anyhow::anyhow!("PostgreSQL at {}: {}", self.name, one_line(&e)))?
            .get(0);
        DateTime::from_timestamp_micros(micros)
            .with_context(|| format!("PostgreSQL at {}: now() is {micros} µs", self.name))
    }

    /// The table's columns, after checking it exists and that we may read it.
    pub fn columns(&mut self, table: RawTable) -> Result<Vec<String>> {
        let row = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, \
                        CASE WHEN to_regclass($1) IS NULL THEN false \
                             ELSE has_table_privilege(to_regclass($1), 'SELECT') END",
                &[&quote(table.name())],
            )
            .map_err(|e| anyhow::anyhow!("{table} at {}: {}", self.name, one_line(&e)))?;
        let (exists, readable): (bool, bool) = (row.get(0), row.get(1));
        if !exists {
            bail!("{table}: no such table at {}", self.name);
        }
        if !readable {
            bail!(
                "{table}: the role `{}` may not read it at {} (missing grant: GRANT SELECT ON {table} TO {};)",
                self.user,
                self.name,
                self.user
            );
        }
        let rows = self
            .client
            .query(
                "SELECT attname FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
                 ORDER BY attnum",
                &[&quote(table.name())],
            )
            .map_err(|e| anyhow::anyhow!("{table} at {}: {}", self.name, one_line(&e)))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// Reads one table whose columns [`Db::columns`] returned: COPY's CSV in
    /// blocks, each parsed and classified in columns (the CSV exports'
    /// reader) while the next block arrives. Kept whole (~80 lines): the
    /// reading thread and the parsing loop share the channel and its errors.
    pub fn extract_table(
        &mut self,
        table: RawTable,
        header: Vec<String>,
        target: &Target,
        write_empty: bool,
    ) -> Result<Finished> {
        let origin = format!("{table} at {}", self.name);
        sink::check_header(table, &origin, &header)?;
        let window = target.window;
        let mut conditions = Vec::new();
        if let Some(since) = window.since {
            conditions.push(format!("{CREATED_AT} >= '{}'::timestamptz", stamp(since)));
        }
        if let Some(until) = window.until {
            conditions.push(format!("{CREATED_AT} < '{}'::timestamptz", stamp(until)));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        // Only a limit needs the rows in order (the oldest N); part files do
        // not, and the cursor is the largest (created_at, id) read, in any order.
        let (order, limit) = match window.limit {
            Some(l) => (
                format!(" ORDER BY {CREATED_AT}, {ID}"),
                format!(" LIMIT {l}"),
            ),
            None => (String::new(), String::new()),
        };
        let total: i64 = self
            .client
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {} {filter}{limit}) t",
                    quote(table.name())
                ),
                &[],
            )
            .map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e)))?
            .get(0);
        // timestamptz prints as `2025-12-20 17:49:11.43305+00`: the session is in UTC.
        let select: Vec<String> = header.iter().map(|h| quote(h)).collect();
        let copy = format!(
            "COPY (SELECT {} FROM {}{filter}{order}{limit}) TO STDOUT WITH (FORMAT csv)",
            select.join(", "),
            quote(table.name()),
        );
        let mut reader = self
            .client
            .copy_out(&copy)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e)))?;
        let progress = Progress::new("extract", table.name(), "rows", u64::try_from(total).ok());
        let mut columnar = Columnar::new(table, &header, "postgres", target);
        let header = &header;
        let finished = std::thread::scope(|scope| -> Result<Finished> {
            // One block parsed while the next is read: two in memory at most.
            let (blocks, arriving) = mpsc::sync_channel::<Vec<u8>>(1);
            let parser = scope.spawn(|| -> Result<Finished> {
                for block in arriving {
                    let raw = parse_block(block, header)
                        .with_context(|| format!("{origin}: reading COPY output"))?;
                    progress.inc(raw.height() as u64);
                    columnar.push(raw)?;
                }
                columnar.finish(write_empty)
            });
            let read = read_blocks(&mut reader, BLOCK_BYTES, |block| blocks.send(block).is_ok())
                .map_err(|e| anyhow::anyhow!("{origin}: reading COPY output: {e}"));
            drop(blocks);
            let parsed = parser
                .join()
                .map_err(|_| anyhow::anyhow!("{origin}: the COPY parser panicked"))?;
            // The parser's error first: a failed send only means it stopped.
            let finished = parsed?;
            read?;
            Ok(finished)
        })?;
        progress.finish();
        Ok(finished)
    }
}

/// Bytes of COPY output per block.
const BLOCK_BYTES: usize = 32 << 20;

/// Reads `reader` in blocks of whole CSV records (cut after the last newline
/// outside quotes), handing each to `send` until it returns false.
fn read_blocks(
    reader: &mut impl Read,
    block_bytes: usize,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> std::io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut block = std::mem::take(&mut carry);
        let start = block.len();
        block.resize(start + block_bytes, 0);
        let mut filled = start;
        let mut eof = false;
        while filled < block.len() {
            match reader.read(&mut block[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        block.truncate(filled);
        if eof {
            if !block.is_empty() {
                send(block);
            }
            return Ok(());
        }
        match last_record_end(&block) {
            Some(end) => {
                carry = block[end + 1..].to_vec();
                block.truncate(end + 1);
                if !send(block) {
                    return Ok(());
                }
            }
            // A record longer than a block: read on.
            None => carry = block,
        }
    }
}

/// The position of the last newline outside quotes: a block that starts at
/// a record's start is inside quotes exactly where an odd number of quote
/// characters precede.
fn last_record_end(block: &[u8]) -> Option<usize> {
    let mut quotes_before = memchr::memchr_iter(b'"', block).count();
    let mut end = block.len();
    while let Some(newline) = memchr::memrchr(b'\n', &block[..end]) {
        quotes_before -= memchr::memchr_iter(b'"', &block[newline..end]).count();
        if quotes_before.is_multiple_of(2) {
            return Some(newline);
        }
        end = newline;
    }
    None
}

/// One block of COPY's CSV as text columns named by the header. The server
/// writes every field of every record, so no ragged-record check is needed.
fn parse_block(block: Vec<u8>, header: &[String]) -> Result<DataFrame> {
    let schema: Schema = header
        .iter()
        .map(|h| Field::new(h.as_str().into(), DataType::String))
        .collect();
    Ok(CsvReadOptions::default()
        .with_has_header(false)
        .with_schema(Some(Arc::new(schema)))
        .with_parse_options(CsvParseOptions::default().with_truncate_ragged_lines(false))
        .into_reader_with_file_handle(std::io::Cursor::new(block))
        .finish()?)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL error on one line: the server's message when there is one.
fn one_line(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if db.code() == &postgres::error::SqlState::QUERY_CANCELED => format!(
            "{} ({}); raise --statement-timeout if the table is just slow to read",
            db.message(),
            db.code().code()
        ),
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_at_record_ends_outside_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\ne"), Some(7));
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc,\"p\nq"), Some(7));
        assert_eq!(last_record_end(b"a,\"x\ny"), None);
        // Whatever the block size, the blocks put back together are the input.
        let text: Vec<u8> = (0..5000)
            .map(|i| format!("{i},\"line\n{i} \"\"quoted\"\"\",x\n"))
            .collect::<String>()
            .into_bytes();
        for size in [7, 64, 1000, 1 << 20] {
            let mut blocks = Vec::new();
            read_blocks(&mut &text[..], size, |b| {
                blocks.push(b);
                true
            })
            .unwrap();
            assert_eq!(blocks.concat(), text, "blocks of {size}");
            assert!(
                blocks.iter().all(|b| b.ends_with(b"\n")),
                "blocks of {size}"
            );
            assert!(size > 1000 || blocks.len() > 10, "blocks of {size}");
        }
    }
}
