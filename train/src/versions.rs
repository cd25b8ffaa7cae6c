//! `models`: the kept versions of each model with their metrics, and
//! rollback: any kept version made champion again, by the same one-step
//! switch a promotion uses, recorded in the run history.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use contract::commit::Commit;
use contract::history::{RunEvent, RunModel, RunRecord};
use contract::registry::{self, Version};
use contract::{Dataset, Layout, history};

use crate::{artifact, retention};

/// Lists model versions, or makes a kept version the champion again.
#[derive(Debug, Parser)]
#[command(name = "models", version, about, long_about = None)]
pub struct ModelsArgs {
    /// Root of the data layout.
    #[arg(long, default_value = "data", global = true)]
    pub data: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every kept version of each model, its metrics, and which is champion.
    List,
    /// Make a kept version the champion (a rollback, or a roll forward).
    Promote {
        /// quality, csat or performance.
        #[arg(long)]
        model: String,
        /// A kept version, like v0003, v3 or 3 (see `models list`).
        #[arg(long, value_parser = version_arg)]
        version: Version,
    },
}

/// A version as a user types it: `v0003`, `v3`, or the number alone (`3`,
/// `0003`), as `make rollback VERSION=3` passes it.
fn version_arg(s: &str) -> Result<Version, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("v{s}").parse()
    } else {
        s.parse()
    }
}

pub fn run(args: &ModelsArgs) -> Result<()> {
    let layout = Layout::new(&args.data);
    match &args.command {
        Command::List => list(&layout),
        Command::Promote { model, version } => {
            let dataset = Dataset::from_name(model).with_context(|| {
                format!("--model: unknown model `{model}` (quality, csat, performance)")
            })?;
            promote(&layout, dataset, *version)
        }
    }
}

fn list(layout: &Layout) -> Result<()> {
    let mut any = false;
    for dataset in Dataset::ALL {
        let champion = registry::champion(layout, dataset)?;
        let versions = registry::versions(layout, dataset)?;
        any |= !versions.is_empty();
        let why_none = versions
            .is_empty()
            .then(|| last_run(layout, dataset))
            .flatten()
            .map_or(String::new(), |m| format!(" (last run: {m})"));
        println!("{dataset}: {} kept{why_none}", versions.len());
        let cards = versions
            .iter()
            .map(|&v| {
                let dir = layout.version_dir(dataset, v);
                let card: artifact::ModelCard =
                    contract::io::read_json(&dir.join(artifact::MODEL_JSON))?;
                Ok((v, dir, card))
            })
            .collect::<Result<Vec<_>>>()?;
        // A version that is the same model as an older kept one says which
        // (retrained on unchanged data): a rollback to it changes nothing.
        let mut first_of = std::collections::BTreeMap::new();
        let same_as: std::collections::BTreeMap<Version, Version> = cards
            .iter()
            .filter_map(|(v, dir, card)| {
                let id = retention::loaded_identity(dir, card)?;
                let first = *first_of.entry(id).or_insert(*v);
                (first != *v).then_some((*v, first))
            })
            .collect();
        for (v, _, card) in cards.iter().rev() {
            let test = card.candidates.get(&card.algorithm).map(|c| c.test);
            let mark = if Some(*v) == champion { "*" } else { " " };
            println!(
                "  {mark} {v}  {}  {:<10} rows {:>9}  RMSE {}  R2 {}  {}{}",
                card.trained_at.format("%Y-%m-%d %H:%M"),
                card.algorithm.name(),
                card.lineage.clean_rows,
                test.map_or("-".into(), |t| format!("{:.4}", t.rmse)),
                test.map_or("-".into(), |t| format!("{:.3}", t.r2)),
                same_as
                    .get(v)
                    .map_or(String::new(), |first| format!("(same model as {first}) ")),
                card.lineage
                    .promotion
                    .as_ref()
                    .map_or(String::new(), |p| p.reason.clone()),
            );
        }
    }
    if any {
        println!("(* = champion)");
    } else {
        println!(
            "no model versions in {} yet; run `make train`",
            layout.models_dir().display()
        );
    }
    Ok(())
}

/// Why a model has no version: the last training report's reason for it
/// (`300 clean rows, below the minimum of 500; not trained`), if any.
fn last_run(layout: &Layout, dataset: Dataset) -> Option<String> {
    contract::io::read_json::<contract::reports::TrainingReport>(&layout.training_report())
        .ok()?
        .models
        .get(dataset.name())?
        .message
        .clone()
}

fn promote(layout: &Layout, dataset: Dataset, version: Version) -> Result<()> {
    let started_at = Utc::now();
    let mut commit = Commit::begin(layout, "models")?;
    let dir = layout.version_dir(dataset, version);
    if !dir.is_dir() {
        let kept: Vec<String> = registry::versions(layout, dataset)?
            .iter()
            .map(Version::to_string)
            .collect();
        bail!(
            "{}: no such version of the {dataset} model (kept: {})",
            dir.display(),
            if kept.is_empty() {
                let why =
                    last_run(layout, dataset).map_or(String::new(), |m| format!("; last run: {m}"));
                format!("none{why}")
            } else {
                kept.join(", ")
            }
        );
    }
    // Refuse a version that would not load: the champion must always serve.
    artifact::load(&dir).with_context(|| format!("{version} cannot be made champion"))?;
    let before = registry::champion(layout, dataset)?;
    if before == Some(version) {
        println!("models: {version} is already the {dataset} champion");
        return Ok(());
    }
    registry::stage_champion(&mut commit, layout, dataset, version)?;
    let same = before.is_some_and(|b| {
        let id = |v| retention::identity(&layout.version_dir(dataset, v));
        let new = id(version);
        new.is_some() && new == id(b)
    });
    let reason = format!(
        "made champion by hand (was {}{})",
        before.map_or("none".into(), |v| v.to_string()),
        if same {
            ", the same model: predictions do not change"
        } else {
            ""
        }
    );
    let record = RunRecord {
        run_id: history::new_run_id(layout, started_at)?,
        event: RunEvent::Rollback,
        started_at,
        finished_at: Utc::now(),
        source: None,
        since: None,
        until: None,
        datasets: Default::default(),
        models: [(
            dataset.name().to_string(),
            RunModel {
                version: Some(version),
                promoted: true,
                reason: reason.clone(),
                rmse: None,
                champion: before,
                champion_rmse: None,
                same_as_champion: same,
            },
        )]
        .into(),
        drift: Default::default(),
    };
    history::append(&mut commit, layout, &record)?;
    commit.finish()?;
    println!("models: {dataset} champion is now {version}: {reason}");
    Ok(())
}
