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
use contract::reports::{ExtractReport, TableCounts};
use contract::{Layout, RawTable, SYNTH_SOURCE, io};

pub use messy::Defect;

/// Writes synthetic raw tables to DATA/raw/<table>/part-000000.parquet.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Rows per table.
    #[arg(long, default_value_t = 5000)]
    pub rows: usize,
    /// Random seed: the same seed and --now give the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Spread created_at over this many days, ending at --now.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=contract::timestamp::MAX_DAYS))]
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Parquet,
    Csv,
}

pub fn run(args: &Args) -> Result<()> {
    if !(0.0..=1.0).contains(&args.messy) {
        bail!(
            "--messy must be a fraction between 0 and 1, got {}",
            args.messy
        );
    }
    if args.rows == 0 {
        bail!("--rows must be at least 1");
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let start = now
        .checked_sub_signed(Duration::days(i64::from(args.days)))
        .with_context(|| {
            format!(
                "--days {} reaches before the earliest date there is",
                args.days
            )
        })?;
    let layout = Layout::new(&args.data);
    let mut tables = generate::generate(args.rows, args.seed, start, now)?;
    let injected = messy::inject(&mut tables, args.messy, args.seed, now);
    if let (Format::Csv, Some(out)) = (args.format, &args.out) {
        for (table, frame) in tables.frames(now)? {
            let path = export::write_csv(table, frame, out)?;
            println!(
                "synth: {:<24} {:>8} rows -> {}",
                table.name(),
                args.rows,
                path.display()
            );
        }
        return Ok(());
    }

    let mut report = ExtractReport {
        source: SYNTH_SOURCE.into(),
        extracted_at: Some(Utc::now()),
        since: Some(start),
        until: Some(now),
        incremental: false,
        tables: BTreeMap::new(),
    };
    // The raw layer, its rejects and the extract report change together.
    let mut commit = Commit::begin(&layout, "synth")?;
    for (table, frame) in tables.frames(now)? {
        let dir = commit.dir(&layout.raw_dir(table))?;
        let part = contract::layout::part_name(0);
        let mut frame = frame;
        io::write_parquet(&mut frame, &dir.join(&part))?;
        let counts = TableCounts {
            rows_read: frame.height(),
            rows_written: frame.height(),
            parts_written: vec![part],
            injected: injected
                .get(&table)
                .map(|by_kind| {
                    by_kind
                        .iter()
                        .map(|(d, n)| (d.name().to_string(), *n))
                        .collect()
                })
                .unwrap_or_default(),
            ..TableCounts::default()
        };
        report.tables.insert(table.name().to_string(), counts);
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
