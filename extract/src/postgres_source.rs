//! PostgreSQL through DATABASE_URL, with TLS when the URL asks for it (as
//! Supabase's connection strings do). Streams each table with COPY ... TO
//! STDOUT in CSV, so no table is ever held in memory whole; the CSV text goes
//! through the same sink as exported files.

use std::str::FromStr;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use contract::RawTable;
use contract::columns::{CREATED_AT, ID};
use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};
use serde_json::Value;

use crate::progress::Progress;
use crate::sink::{TableSink, Target};

pub struct Db {
    client: Client,
    /// host:port/dbname, for messages: never the password.
    name: String,
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

impl Db {
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .context("DATABASE_URL is not set (a postgresql:// connection string)")?;
        Self::connect(&url)
    }

    pub fn connect(url: &str) -> Result<Self> {
        // The parse error of a URL could quote it; say only what is wrong.
        let config = Config::from_str(url).map_err(|_| {
            anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL connection string")
        })?;
        let name = describe(&config);
        let client = match config.get_ssl_mode() {
            SslMode::Disable => config.connect(NoTls),
            _ => {
                // libpq's sslmode=require encrypts without verifying the certificate.
                let connector = native_tls::TlsConnector::builder()
                    .danger_accept_invalid_certs(true)
                    .build()
                    .context("setting up TLS")?;
                config.connect(postgres_native_tls::MakeTlsConnector::new(connector))
            }
        }
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {name}: {}", one_line(&e)))?;
        Ok(Self { client, name })
    }

    fn columns(&mut self, table: RawTable) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = ANY (current_schemas(false)) \
                 ORDER BY ordinal_position",
                &[&table.name()],
            )
            .map_err(|e| anyhow::anyhow!("{table} at {}: {}", self.name, one_line(&e)))?;
        if rows.is_empty() {
            bail!("{table}: no such table at {}", self.name);
        }
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    pub fn extract_table(&mut self, table: RawTable, target: &Target) -> Result<TableSink> {
        let header = self.columns(table)?;
        let origin = format!("{table} at {}", self.name);
        let mut sink = TableSink::new(table, "postgres", &origin, header.clone(), target)?;
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
        let limit = window
            .limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
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
        // timestamptz prints as `2025-12-20 17:49:11.43305+00` in UTC.
        self.client
            .batch_execute("SET TIME ZONE 'UTC'; SET extra_float_digits = 3")
            .map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e)))?;
        let select: Vec<String> = header.iter().map(|h| quote(h)).collect();
        let copy = format!(
            "COPY (SELECT {} FROM {}{filter} ORDER BY {CREATED_AT}, {ID}{limit}) TO STDOUT WITH (FORMAT csv)",
            select.join(", "),
            quote(table.name()),
        );
        let reader = self
            .client
            .copy_out(&copy)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e)))?;
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut progress = Progress::new(table.name(), u64::try_from(total).ok());
        let mut record = csv::StringRecord::new();
        let mut values: Vec<Value> = Vec::with_capacity(header.len());
        let mut since_tick = 0u64;
        while csv
            .read_record(&mut record)
            .map_err(|e| anyhow::anyhow!("{origin}: reading COPY output: {e}"))?
        {
            values.clear();
            values.extend(record.iter().map(|f| {
                if f.is_empty() {
                    Value::Null
                } else {
                    Value::String(f.to_string())
                }
            }));
            sink.push(&values)?;
            since_tick += 1;
            if since_tick == 10_000 {
                progress.add(since_tick);
                since_tick = 0;
            }
        }
        progress.add(since_tick);
        progress.finish();
        Ok(sink)
    }
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
