//! `status`: what data is there, where it came from, how fresh it is, and how
//! the models did, on one screen.

use std::path::PathBuf;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use contract::columns::{CREATED_AT, SOURCE};
use contract::reports::ExtractReport;
use contract::{Dataset, Layout, RawTable, io};
use polars::prelude::*;
use serde_json::Value;

/// Shows rows, sources, time ranges, rejects and model metrics under DATA.
#[derive(Debug, Parser)]
#[command(name = "status", version, about, long_about = None)]
pub struct StatusArgs {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

fn age(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

fn range(df: &DataFrame, column: &str) -> String {
    let Ok(c) = df.column(column) else {
        return "-".into();
    };
    let Ok(ts) = c.datetime() else {
        return "-".into();
    };
    let fmt = |v: Option<i64>| {
        v.and_then(DateTime::from_timestamp_micros)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    format!("{} .. {}", fmt(ts.min()), fmt(ts.max()))
}

fn sources(df: &DataFrame) -> String {
    df.column(SOURCE)
        .ok()
        .and_then(|c| c.unique().ok())
        .and_then(|u| {
            u.str().ok().map(|s| {
                s.into_iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
        })
        .map(|mut v| {
            v.sort();
            v.join(",")
        })
        .unwrap_or_else(|| "-".into())
}

pub fn run(args: &StatusArgs) -> Result<()> {
    let layout = Layout::new(&args.data);
    let mut any = false;

    println!("raw tables ({})", layout.raw_root().display());
    for table in RawTable::ALL {
        match io::read_raw(&layout, table) {
            Ok(df) => {
                any = true;
                let rejected = io::read_parquet(&layout.raw_rejected(table))
                    .map(|r| r.height())
                    .unwrap_or(0);
                println!(
                    "  {:<24} {:>9} rows  sources {:<10} {}  unparseable {}",
                    table.name(),
                    df.height(),
                    sources(&df),
                    range(&df, CREATED_AT),
                    rejected
                );
            }
            Err(_) => println!("  {:<24} none", table.name()),
        }
    }
    if let Ok(report) = io::read_json::<ExtractReport>(&layout.extract_report()) {
        let when = report
            .extracted_at
            .map(|t| format!("{} ({})", t.format("%Y-%m-%d %H:%M:%SZ"), age(t)))
            .unwrap_or_else(|| "-".into());
        println!(
            "  last extraction: {when} from {}{}",
            report.source,
            if report.incremental {
                ", incremental"
            } else {
                ""
            }
        );
    }

    let validation: Option<Value> = io::read_json(&layout.validation_report()).ok();
    println!("datasets");
    for dataset in Dataset::ALL {
        let training = io::read_parquet(&layout.training(dataset));
        let clean = io::read_parquet(&layout.clean(dataset)).map(|d| d.height());
        match training {
            Ok(df) => {
                any = true;
                let rejects = validation
                    .as_ref()
                    .and_then(|v| v.pointer(&format!("/datasets/{}/rejected", dataset.name())))
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                            .map(|(k, n)| format!("{k} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".into());
                println!(
                    "  {:<12} {:>9} rows  clean {:<9} sources {:<10} {}  rejects: {rejects}",
                    dataset.name(),
                    df.height(),
                    clean.map(|n| n.to_string()).unwrap_or_else(|_| "-".into()),
                    sources(&df),
                    range(&df, contract::columns::TIMESTAMP),
                )
            }
            Err(_) => println!("  {:<12} none", dataset.name()),
        }
    }

    println!("models");
    for dataset in Dataset::ALL {
        let path = layout.model_dir(dataset).join("model.json");
        match io::read_json::<Value>(&path) {
            Ok(model) => {
                let chosen = model
                    .get("algorithm")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let test = model.pointer(&format!("/candidates/{chosen}/test"));
                let metric = |k: &str| {
                    test.and_then(|t| t.get(k))
                        .and_then(Value::as_f64)
                        .map(|x| format!("{x:.3}"))
                        .unwrap_or_else(|| "-".into())
                };
                let trained = model
                    .get("trained_at")
                    .and_then(Value::as_str)
                    .and_then(contract::timestamp::parse_utc)
                    .map(age)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "  {:<12} {:<8} R2 {}  MAE {}  RMSE {}  trained {trained}",
                    dataset.name(),
                    chosen,
                    metric("r2"),
                    metric("mae"),
                    metric("rmse")
                );
            }
            Err(_) => println!("  {:<12} none", dataset.name()),
        }
    }
    if !any {
        bail!(
            "{}: no data yet; run `make pipeline` (or `synth` / `extract`, then `transform`)",
            layout.root().display()
        );
    }
    Ok(())
}
