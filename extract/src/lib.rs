//! `extract`: the three source tables, from CSV exports, Supabase's REST API
//! or PostgreSQL, into the raw layer (`data/raw/<table>/part-*.parquet`).
//!
//! A full run replaces each table's folder atomically; `--incremental` appends
//! one part per table with only the rows newer than the last run's, and
//! remembers how far it got in `data/state/extract.json`.

mod classify;
mod collected;
mod compact;
mod csv_columnar;
mod csv_source;
mod pg_conn;
mod postgres_source;
mod schedule;
pub mod sink;
pub mod state;
pub mod supabase;
mod values;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, ValueEnum};
use contract::commit::Commit;
use contract::reports::ExtractReport;
use contract::{Layout, RawTable, io};
use polars::prelude::*;

use crate::sink::{TableSink, Target, Window};
use crate::state::ExtractState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// Supabase's REST API: SUPABASE_URL and a key (SUPABASE_KEY,
    /// SUPABASE_SECRET_KEY, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_PUBLISHABLE_KEY
    /// or SUPABASE_ANON_KEY, the first set).
    Supabase,
    /// A PostgreSQL connection string in DATABASE_URL.
    Postgres,
    /// CSV exports of the three tables in --input DIR.
    Csv,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Supabase => "supabase",
            Source::Postgres => "postgres",
            Source::Csv => "csv",
        }
    }
}

/// Reads the GM's three tables into DATA/raw/<table>/.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Where the rows come from.
    #[arg(long, value_enum)]
    pub source: Source,
    /// Folder holding <table>.csv exports (with --source csv).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Keep rows created in the last D days, at least 1 (no upper bound:
    /// future-dated rows pass on for validate to reject). Without --days or
    /// --since every row is kept.
    #[arg(long, conflicts_with = "since", value_parser = clap::value_parser!(u32).range(1..=contract::timestamp::MAX_DAYS))]
    pub days: Option<u32>,
    /// Keep rows created at or after this date or RFC 3339 time.
    #[arg(long, value_parser = contract::timestamp::parse_arg)]
    pub since: Option<DateTime<Utc>>,
    /// Keep rows created before this date or RFC 3339 time.
    #[arg(long, value_parser = contract::timestamp::parse_arg)]
    pub until: Option<DateTime<Utc>>,
    /// At most N rows per table (at least 1).
    #[arg(long, value_parser = contract::at_least_one::<usize>)]
    pub limit: Option<usize>,
    /// Append only rows newer than the last run (state in DATA/state/extract.json).
    #[arg(long)]
    pub incremental: bool,
    /// A full run over raw tables that --incremental has been collecting into
    /// replaces what it collected (refused without this flag).
    #[arg(long, conflicts_with = "incremental")]
    pub replace: bool,
    /// Minutes re-read before the last collected row, for rows that committed late
    /// (with --incremental; re-read rows already collected are not written again).
    #[arg(long, default_value_t = 5)]
    pub lookback_minutes: u32,
    /// Keep collecting on this schedule (e.g. 1h, 15m), one incremental run each
    /// time, until Ctrl-C.
    #[arg(long, value_parser = schedule::parse_every, requires = "incremental")]
    pub every: Option<std::time::Duration>,
    /// With --every: retrain (run --retrain-command) when the last training
    /// is older than this (e.g. 24h).
    #[arg(long, value_parser = schedule::parse_every, requires = "every")]
    pub retrain_every: Option<std::time::Duration>,
    /// With --every: retrain after this many new rows were collected.
    #[arg(long, requires = "every")]
    pub retrain_rows: Option<usize>,
    /// What a retrain runs (`make collect` sets `make retrain`).
    #[arg(long, default_value = "make retrain")]
    pub retrain_command: String,
    /// With --incremental: when a table holds more than this many part files,
    /// its trailing small parts are merged into one (row order kept).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(2..))]
    pub max_parts: u32,
    /// With --incremental: drop whole part files whose newest row is older
    /// than this many days, at least 1 (a part is never cut; the newest part
    /// stays).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=contract::timestamp::MAX_DAYS))]
    pub retain_days: Option<u32>,
    /// Attempts per request to Supabase before giving up on 429, 5xx or
    /// connection errors (at least 1).
    #[arg(long, default_value_t = 6, value_parser = contract::at_least_one::<u32>)]
    pub retries: u32,
    /// First backoff delay in milliseconds; it doubles per attempt, with jitter.
    #[arg(long, default_value_t = 500)]
    pub retry_base_ms: u64,
    /// Longest wait, in seconds, before a retry, whatever Retry-After asks.
    #[arg(long, default_value_t = 60)]
    pub max_retry_wait: u64,
    /// Seconds one request to Supabase may take, answer included.
    #[arg(long, default_value_t = 120, value_parser = contract::at_least_one::<u64>)]
    pub request_timeout: u64,
    /// Supabase requests in flight per table: the window is read in this many
    /// time slices side by side, rows kept in order (1: one page at a time).
    #[arg(long, default_value_t = supabase::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub supabase_concurrency: u16,
    /// Seconds to wait for PostgreSQL to accept and answer a connection.
    #[arg(long, default_value_t = 10, value_parser = contract::at_least_one::<u64>)]
    pub connect_timeout: u64,
    /// Seconds one PostgreSQL statement may run (enforced by the server).
    #[arg(long, default_value_t = 600, value_parser = contract::at_least_one::<u64>)]
    pub statement_timeout: u64,
    /// No progress bars or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// The time --days counts back from; default: the current time.
    #[arg(long, value_parser = contract::timestamp::parse_arg, hide = true)]
    pub now: Option<DateTime<Utc>>,
    /// How CSV exports are read: in columns when polars can read the file
    /// strictly, else row by row (auto); or always row by row, to compare the
    /// two readers (they must agree on every row).
    #[arg(long, value_enum, default_value_t = CsvReader::Auto, hide = true)]
    pub csv_reader: CsvReader,
}

/// `--csv-reader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CsvReader {
    Auto,
    Rows,
}

/// The extract options, for code that embeds the extract crate.
#[derive(Clone, Debug)]
pub struct Options {
    pub source: Source,
    pub input: Option<PathBuf>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub incremental: bool,
    /// See `Args::replace`.
    pub replace: bool,
    pub lookback: Duration,
    pub retry: supabase::Retry,
    pub supabase_concurrency: usize,
    pub timeouts: postgres_source::Timeouts,
    /// Compaction and retention of incremental runs (see `compact`).
    pub max_parts: usize,
    pub retain_before: Option<DateTime<Utc>>,
    pub csv_reader: CsvReader,
}

impl Options {
    pub fn from_args(args: &Args) -> Result<Self> {
        let now = args.now.unwrap_or_else(Utc::now);
        let days_ago = |d: u32| {
            now.checked_sub_signed(Duration::days(i64::from(d)))
                .with_context(|| format!("--days {d} reaches before the earliest date there is"))
        };
        Ok(Self {
            source: args.source,
            input: args.input.clone(),
            since: match args.since {
                Some(s) => Some(s),
                None => args.days.map(days_ago).transpose()?,
            },
            until: args.until,
            limit: args.limit,
            incremental: args.incremental,
            replace: args.replace,
            lookback: Duration::minutes(i64::from(args.lookback_minutes)),
            retry: supabase::Retry {
                attempts: args.retries,
                base_delay: std::time::Duration::from_millis(args.retry_base_ms),
                max_wait: std::time::Duration::from_secs(args.max_retry_wait),
                request_timeout: std::time::Duration::from_secs(args.request_timeout),
            },
            supabase_concurrency: usize::from(args.supabase_concurrency),
            timeouts: postgres_source::Timeouts {
                connect: std::time::Duration::from_secs(args.connect_timeout),
                statement: std::time::Duration::from_secs(args.statement_timeout),
            },
            max_parts: args.max_parts as usize,
            retain_before: args.retain_days.map(days_ago).transpose()?,
            csv_reader: args.csv_reader,
        })
    }
}

pub fn run(args: &Args) -> Result<()> {
    contract::progress::set_quiet(args.quiet);
    let layout = Layout::new(&args.data);
    let mut retrain =
        (args.retrain_every.is_some() || args.retrain_rows.is_some()).then(|| schedule::Retrain {
            every: args.retrain_every,
            rows: args.retrain_rows,
            command: args.retrain_command.clone(),
            rows_since: 0,
            short: None,
        });
    // Collecting: the columns beyond the contract are said at the first cycle
    // and when they change, not every hour. A cycle that read no row of a
    // table (Supabase knows its columns from the rows) tells nothing.
    let mut extra_said = BTreeMap::new();
    match args.every {
        Some(every) => schedule::every(every, || {
            let options = Options::from_args(args)?;
            let report = extract(&layout, &options)?;
            for (table, c) in report.tables.iter().filter(|(_, c)| c.rows_read > 0) {
                if extra_said.get(table) != Some(&c.extra_columns) {
                    if !c.extra_columns.is_empty() {
                        println!("extract: {table:<24} {}", kept_in_extra(&c.extra_columns));
                    }
                    extra_said.insert(table.clone(), c.extra_columns.clone());
                }
            }
            let mut line = summary_line(&report);
            if let Some(r) = retrain.as_mut() {
                let new_rows = report.tables.values().map(|c| c.rows_written).sum();
                line.push_str("; ");
                line.push_str(&r.after_cycle(&layout, new_rows));
            }
            Ok(line)
        }),
        None => {
            let report = extract(&layout, &Options::from_args(args)?)?;
            for (table, c) in &report.tables {
                let already = if report.incremental {
                    format!(" {:>7} already collected", c.already_collected)
                } else {
                    String::new()
                };
                println!(
                    "extract: {table:<24} {:>9} read {:>9} written {:>6} rejected {:>7} outside window{already}",
                    c.rows_read, c.rows_written, c.rows_rejected, c.rows_skipped_window
                );
                if !c.extra_columns.is_empty() {
                    println!("extract: {table:<24} {}", kept_in_extra(&c.extra_columns));
                }
            }
            Ok(())
        }
    }
}

/// What extract says of a source's columns that are not the table's.
fn kept_in_extra(columns: &[String]) -> String {
    format!(
        "{} not in the table's contract (DESIGN.md): kept in each row's `_extra`, read by no stage",
        contract::column_list(columns)
    )
}

fn summary_line(report: &ExtractReport) -> String {
    let parts: Vec<String> = report
        .tables
        .iter()
        .map(|(t, c)| {
            let mut tidy = String::new();
            if c.parts_merged > 0 {
                tidy.push_str(&format!(", {} parts merged", c.parts_merged));
            }
            if c.parts_dropped > 0 {
                tidy.push_str(&format!(", {} old parts dropped", c.parts_dropped));
            }
            format!(
                "{t} +{} ({} rejected, {} already collected{tidy})",
                c.rows_written, c.rows_rejected, c.already_collected
            )
        })
        .collect();
    parts.join(", ")
}

/// One CSV export: in columns when polars can read it strictly, else row by
/// row (ragged records or bad UTF-8), rejecting what does not read.
fn read_csv(
    table: RawTable,
    csv: csv_source::CsvTable,
    target: &Target,
    write_empty: bool,
    reader: CsvReader,
) -> Result<sink::Finished> {
    let source = Source::Csv.name();
    let origin = csv.path.display().to_string();
    sink::check_header(table, &origin, &csv.header)?;
    let progress = contract::progress::Progress::new("extract", table.name(), "rows", None);
    let fast = match reader {
        CsvReader::Auto => {
            csv_columnar::read(&csv.path, table, &csv.header, source, target, write_empty)?
        }
        CsvReader::Rows => None,
    };
    let done = match fast {
        Some(done) => done,
        None => {
            let mut sink = TableSink::new(table, source, &origin, csv.header.clone(), target)?;
            csv.stream_into(&mut sink)?;
            sink.finish(write_empty)?
        }
    };
    progress.inc(done.counts.rows_read as u64);
    progress.finish();
    Ok(done)
}

/// Stages one table's outputs in the run's commit: its parts (joining the
/// table's folder when incremental), its rejects, compaction and retention,
/// and the cursor. Returns the table's counts for the report.
fn publish(
    commit: &mut Commit,
    layout: &Layout,
    options: &Options,
    state: &mut ExtractState,
    table: RawTable,
    done: sink::Finished,
    out_dir: &std::path::Path,
) -> Result<contract::reports::TableCounts> {
    if options.incremental {
        // New parts join the table's folder beside the ones already there.
        for part in &done.counts.parts_written {
            let to = commit.file(&layout.raw_dir(table).join(part))?;
            let from = out_dir.join(part);
            fs::rename(&from, &to).with_context(|| format!("staging {}", from.display()))?;
        }
    }
    stage_rejects(commit, layout, table, done.rejects, options.incremental)?;
    let mut counts = done.counts;
    if options.incremental {
        // The parts already there; this run's new ones are merged in a later run.
        let tidied = compact::tidy(
            commit,
            layout,
            table,
            counts.parts_written.len(),
            options.max_parts,
            options.retain_before,
        )?;
        counts.parts_merged = tidied.merged;
        counts.parts_dropped = tidied.dropped;
    }
    if let Some((t, id)) = done.max_key {
        // The sinks leave rows dated past the source's present out of
        // max_key; this guard keeps the promise whatever a sink did.
        let (t, id) = if t > done.horizon {
            (done.horizon, String::new())
        } else {
            (t, id)
        };
        state.advance(options.source.name(), table, t, id);
    }
    Ok(counts)
}

/// Extracts the three tables. All or nothing: the tables are written to
/// staging folders and only replace (or join) the raw layer once all three
/// were read without error.
pub fn extract(layout: &Layout, options: &Options) -> Result<ExtractReport> {
    let extracted_at = Utc::now();
    // One writer at a time; the raw layer, its rejects, the state and the
    // report change together (see contract::commit).
    let mut commit = Commit::begin(layout, "extract")?;
    if !options.incremental {
        contract::replace_collected(&mut commit, layout, "extract", options.replace)?;
    }
    let mut state = if options.incremental {
        state::load(layout)?
    } else {
        ExtractState::default()
    };
    let run = Run {
        layout,
        options,
        state: &state,
        extracted_at,
    };
    let finished = run.read_tables(&mut commit)?;
    let mut report = ExtractReport {
        source: options.source.name().into(),
        extracted_at: Some(extracted_at),
        since: options.since,
        until: options.until,
        incremental: options.incremental,
        tables: BTreeMap::new(),
    };
    for (table, done, out_dir) in finished {
        let counts = publish(
            &mut commit,
            layout,
            options,
            &mut state,
            table,
            done,
            &out_dir,
        )?;
        report.tables.insert(table.name().to_string(), counts);
    }
    if options.incremental {
        state::save(&state, &commit.file(&layout.extract_state())?)?;
    }
    io::write_json(&report, &commit.file(&layout.extract_report())?)?;
    commit.finish()?;
    Ok(report)
}

/// One extract run: what it reads from where, and since when.
struct Run<'a> {
    layout: &'a Layout,
    options: &'a Options,
    state: &'a ExtractState,
    extracted_at: DateTime<Utc>,
}

impl Run<'_> {
    /// Every table read from the source into its staged part files. Every
    /// table is opened first: a missing file or column fails before anything is read.
    fn read_tables(&self, commit: &mut Commit) -> Result<Vec<(RawTable, sink::Finished, PathBuf)>> {
        let options = self.options;
        let write_empty = !options.incremental;
        let mut finished = Vec::new();
        match options.source {
            Source::Csv => {
                let dir = options
                    .input
                    .clone()
                    .context("--source csv needs --input DIR holding the <table>.csv exports")?;
                let mut opened = Vec::new();
                for table in RawTable::ALL {
                    opened.push((table, csv_source::open(&dir, table)?));
                }
                for (table, csv) in opened {
                    let target = self.target(commit, table, None)?;
                    let done = read_csv(table, csv, &target, write_empty, options.csv_reader)?;
                    finished.push((table, done, target.out_dir));
                }
            }
            Source::Supabase => {
                let client = supabase::Client::from_env(options.retry)?
                    .with_concurrency(options.supabase_concurrency);
                eprintln!(
                    "extract: Supabase at {} with {}",
                    client.base(),
                    client.key_description()
                );
                for table in RawTable::ALL {
                    // Supabase's clock arrives with each table's first answer.
                    let target = self.target(commit, table, None)?;
                    let sink = client.extract_table(table, &target)?;
                    finished.push((table, sink.finish(write_empty)?, target.out_dir));
                }
            }
            Source::Postgres => {
                let mut db = postgres_source::Db::from_env(options.timeouts)?;
                // Every table there and readable before any is read.
                let mut headers = Vec::new();
                for table in RawTable::ALL {
                    headers.push((table, db.columns(table)?));
                }
                // The database's own clock bounds the cursor, not ours.
                let db_now = db.now()?;
                for (table, header) in headers {
                    let target = self.target(commit, table, Some(db_now))?;
                    let done = db.extract_table(table, header, &target, write_empty)?;
                    finished.push((table, done, target.out_dir));
                }
            }
        }
        Ok(finished)
    }

    /// The rows of `table` to read (window, rows already collected) and where
    /// its part files go: a new folder that replaces the table, or
    /// (incremental) a scratch folder whose parts join the existing ones.
    fn target(
        &self,
        commit: &mut Commit,
        table: RawTable,
        source_now: Option<DateTime<Utc>>,
    ) -> Result<Target> {
        let (options, layout) = (self.options, self.layout);
        let resume = self.state.resume_point(options.source.name(), table);
        // A saved position past this run's start (written by an older version) is
        // treated as the start: the cursor never passes the present.
        let since = match (options.since, &resume) {
            (Some(s), Some((t, _))) => Some(s.max(*t.min(&self.extracted_at) - options.lookback)),
            (None, Some((t, _))) => Some(*t.min(&self.extracted_at) - options.lookback),
            (s, None) => s,
        };
        let window = Window {
            since,
            until: options.until,
            limit: options.limit,
        };
        // Rows the lookback re-reads that an earlier run already wrote; with
        // no window and no position yet (the first incremental run over
        // tables a full run wrote), every row held.
        let collected = if options.incremental {
            Arc::new(collected::ids_since(layout, table, window.since)?)
        } else {
            Default::default()
        };
        let out_dir = if options.incremental {
            commit.scratch(table.name())?
        } else {
            commit.dir(&layout.raw_dir(table))?
        };
        Ok(Target {
            collected,
            window,
            out_dir,
            first_part: if options.incremental {
                layout.next_part_index(table)?
            } else {
                0
            },
            extracted_at: self.extracted_at,
            horizon: source_now.unwrap_or(self.extracted_at),
        })
    }
}

/// Stages the rows extract could not read. A full run replaces the file (or
/// removes a stale one); an incremental run adds to it.
fn stage_rejects(
    commit: &mut Commit,
    layout: &Layout,
    table: RawTable,
    rejects: Option<DataFrame>,
    incremental: bool,
) -> Result<()> {
    let path = layout.raw_rejected(table);
    let previous = if incremental && path.exists() {
        Some(io::read_parquet(&path)?)
    } else {
        None
    };
    let combined = match (previous, rejects) {
        (None, None) => {
            if !incremental && path.exists() {
                commit.remove(&path);
            }
            return Ok(());
        }
        (Some(_), None) => return Ok(()),
        (None, Some(new)) => new,
        (Some(old), Some(new)) => stack_text_frames(old, new)?,
    };
    let mut combined = combined;
    io::write_parquet(&mut combined, &commit.file(&path)?)?;
    Ok(())
}

/// Stacks two all-text frames whose columns may differ, keeping every column.
fn stack_text_frames(a: DataFrame, b: DataFrame) -> Result<DataFrame> {
    let mut names: Vec<PlSmallStr> = a.get_column_names_owned();
    for n in b.get_column_names_owned() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let widen = |mut df: DataFrame| -> Result<DataFrame> {
        let h = df.height();
        for n in &names {
            if df.column(n).is_err() {
                df.with_column(Column::full_null(n.clone(), h, &DataType::String))?;
            }
        }
        Ok(df.select(names.clone())?)
    };
    let mut out = widen(a)?;
    out.vstack_mut(&widen(b)?)?;
    Ok(out)
}
