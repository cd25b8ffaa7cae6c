//! `synth`: realistic synthetic rows for the three raw tables, tagged
//! `_source = synth`, so the pipeline runs with no database at all.

mod export;
mod generate;
mod messy;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use contract::commit::Commit;
use contract::reports::ExtractReport;
use contract::{Layout, RawTable, SYNTH_SOURCE, io};

pub use messy::Defect;

/// Rows generated and written at a time, so memory stays that of one chunk
/// whatever --rows is (10M rows per table would otherwise need ~20 GB).
pub const CHUNK_ROWS: usize = 1_000_000;

/// Writes synthetic raw tables to DATA/raw/<table>/part-000000.parquet.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Rows per table.
    #[arg(long, default_value_t = 5000, value_parser = contract::at_least_one::<usize>)]
    pub rows: usize,
    /// Random seed: the same seed and --now give the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Spread created_at over this many days, ending at --now.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=contract::timestamp::MAX_DAYS))]
    pub days: u32,
    /// End of the time window (RFC 3339 or YYYY-MM-DD); default: the current time.
    #[arg(long, value_parser = contract::timestamp::parse_arg)]
    pub now: Option<DateTime<Utc>>,
    /// Give this share of rows exactly one defect each (null target, out-of-range
    /// target, duplicated id, future timestamp, in equal parts).
    #[arg(long, default_value_t = 0.0)]
    pub messy: f64,
    /// parquet: the raw layer under DATA, as extract writes it. csv: exports of
    /// the three tables as Supabase's table editor writes them, into --out, for
    /// `extract --source csv` (DATA is not touched).
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Folder for the CSV exports (with --format csv).
    #[arg(long, required_if_eq("format", "csv"))]
    pub out: Option<PathBuf>,
    /// Rows generated and written at a time (a part file each): memory stays
    /// that of one chunk. Rows never refer to rows of another chunk.
    #[arg(long, default_value_t = CHUNK_ROWS, value_parser = contract::at_least_one::<usize>)]
    pub chunk_rows: usize,
    /// No progress bar or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// Write over raw tables that `extract --incremental` has been collecting
    /// into, replacing what it collected (refused without this flag).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Parquet,
    Csv,
}

pub fn run(args: &Args) -> Result<()> {
    args.check()?;
    contract::progress::set_quiet(args.quiet);
    let plan = Plan::new(args)?;
    // Rows of the three tables, counted as each chunk is written.
    let progress = contract::progress::Progress::new(
        "synth",
        "generating",
        "rows",
        Some(3 * args.rows as u64),
    );
    if let (Format::Csv, Some(out)) = (args.format, &args.out) {
        return write_csv_exports(&plan, out, &progress);
    }
    let layout = Layout::new(&args.data);
    let injected = write_raw(&plan, &layout, args.replace, &progress)?;
    for table in RawTable::ALL {
        println!(
            "synth: {:<24} {:>8} rows -> {}",
            table.name(),
            args.rows,
            layout.raw_dir(table).display()
        );
    }
    if args.messy > 0.0 {
        for table in RawTable::ALL {
            let by_kind = injected.get(&table).cloned().unwrap_or_default();
            let parts: Vec<String> = Defect::ALL
                .iter()
                .map(|d| format!("{} {}", by_kind.get(d).copied().unwrap_or(0), d.name()))
                .collect();
            println!("synth: messy {:<18} {}", table.name(), parts.join(", "));
        }
    }
    Ok(())
}

impl Args {
    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.messy) {
            bail!(
                "--messy must be a fraction between 0 and 1, got {}",
                self.messy
            );
        }
        Ok(())
    }
}

/// The rows to make, chunk by chunk: each chunk covers its slice of the time
/// window (so tables stay in time order) and has a seed of its own.
struct Plan<'a> {
    args: &'a Args,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    chunks: usize,
}

impl<'a> Plan<'a> {
    fn new(args: &'a Args) -> Result<Self> {
        let now = args.now.unwrap_or_else(Utc::now);
        let start = now
            .checked_sub_signed(Duration::days(i64::from(args.days)))
            .with_context(|| {
                format!(
                    "--days {} reaches before the earliest date there is",
                    args.days
                )
            })?;
        Ok(Self {
            args,
            now,
            start,
            chunks: args.rows.div_ceil(args.chunk_rows),
        })
    }

    fn slice_start(&self, k: usize) -> DateTime<Utc> {
        let span = (self.now - self.start).num_microseconds().unwrap_or(0);
        self.start + Duration::microseconds((span as i128 * k as i128 / self.chunks as i128) as i64)
    }

    /// Chunk `k`'s tables, with the defects injected into them.
    fn chunk(&self, k: usize) -> Result<(generate::Tables, messy::Injected)> {
        let args = self.args;
        let rows = args.chunk_rows.min(args.rows - k * args.chunk_rows);
        // Chunk 0 keeps the seed, so one chunk's rows are what they always were.
        let seed = args.seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut tables =
            generate::generate(rows, seed, self.slice_start(k), self.slice_start(k + 1))?;
        let injected = messy::inject(&mut tables, args.messy, seed, self.now);
        Ok((tables, injected))
    }
}

fn merge(into: &mut messy::Injected, from: messy::Injected) {
    for (table, by_kind) in from {
        for (kind, n) in by_kind {
            *into.entry(table).or_default().entry(kind).or_default() += n;
        }
    }
}

/// `--format csv`: the three tables as Supabase exports into `out`.
fn write_csv_exports(
    plan: &Plan,
    out: &std::path::Path,
    progress: &contract::progress::Progress,
) -> Result<()> {
    let mut export = export::CsvExport::create(out)?;
    for k in 0..plan.chunks {
        let (tables, _) = plan.chunk(k)?;
        for (table, frame) in tables.frames(plan.now)? {
            let rows = frame.height() as u64;
            export.append(table, frame, k == 0)?;
            progress.inc(rows);
        }
    }
    progress.finish();
    for (table, path) in export.commit()? {
        println!(
            "synth: {:<24} {:>8} rows -> {}",
            table.name(),
            plan.args.rows,
            path.display()
        );
    }
    Ok(())
}

/// The raw layer (a part per chunk), with the extract report that describes
/// it, committed together; an earlier extract's rejects and cursor go with
/// the data replaced. Returns the defects injected.
fn write_raw(
    plan: &Plan,
    layout: &Layout,
    replace: bool,
    progress: &contract::progress::Progress,
) -> Result<messy::Injected> {
    let mut report = ExtractReport {
        source: SYNTH_SOURCE.into(),
        extracted_at: Some(Utc::now()),
        since: Some(plan.start),
        until: Some(plan.now),
        incremental: false,
        tables: BTreeMap::new(),
    };
    let mut commit = Commit::begin(layout, "synth")?;
    contract::replace_collected(&mut commit, layout, "synth", replace)?;
    let mut dirs = BTreeMap::new();
    for table in RawTable::ALL {
        dirs.insert(table, commit.dir(&layout.raw_dir(table))?);
    }
    let mut injected = messy::Injected::new();
    for k in 0..plan.chunks {
        let (tables, inj) = plan.chunk(k)?;
        merge(&mut injected, inj);
        for (table, mut frame) in tables.frames(plan.now)? {
            let part = contract::layout::part_name(k);
            io::write_parquet(&mut frame, &dirs[&table].join(&part))?;
            let counts = report.tables.entry(table.name().to_string()).or_default();
            counts.rows_read += frame.height();
            counts.rows_written += frame.height();
            counts.parts_written.push(part);
            progress.inc(frame.height() as u64);
        }
    }
    progress.finish();
    for table in RawTable::ALL {
        if let Some(counts) = report.tables.get_mut(table.name()) {
            counts.injected = injected
                .get(&table)
                .map(|by_kind| {
                    by_kind
                        .iter()
                        .map(|(d, n)| (d.name().to_string(), *n))
                        .collect()
                })
                .unwrap_or_default();
        }
        // Rows an earlier extract could not read belong to the data replaced.
        let stale = layout.raw_rejected(table);
        if stale.exists() {
            commit.remove(&stale);
        }
    }
    if layout.extract_state().exists() {
        commit.remove(&layout.extract_state());
    }
    io::write_json(&report, &commit.file(&layout.extract_report())?)?;
    commit.finish()?;
    Ok(injected)
}
