//! `--every`: one incremental run per period until Ctrl-C; a failed run is
//! logged and retried at the next tick. With a retrain rule, a cycle that
//! finds it due runs the retrain command (`make retrain`: transform,
//! validate, the gated train, report) and logs how it went; a failed
//! retrain is logged and the next cycle goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use contract::Layout;
use contract::drift::DriftLevel;
use contract::history::RunEvent;

pub fn parse_every(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a period like 30s, 15m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "" => return Err(format!("`{s}` needs a unit: s, m or h")),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m or h)")),
    };
    if secs == 0 {
        return Err("the period must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// A period as `--every` takes it, to the minute once it is an hour or more
/// (`15s`, `2m 30s`, `24h`, `25h 10m`).
pub fn show_period(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// When to retrain: after `every` since the last training, or after `rows`
/// rows collected since this process last retrained, whichever comes first.
pub struct Retrain {
    pub every: Option<Duration>,
    pub rows: Option<usize>,
    pub command: String,
    /// Rows collected since the last retrain this process ran.
    pub rows_since: usize,
    /// Which datasets had too few clean rows when the last retrain stopped
    /// for that reason. The same rows would stop it again, so the
    /// next retrain waits for new rows.
    pub short: Option<String>,
}

impl Retrain {
    /// Why a retrain is due now, or None.
    fn due(&self, last_trained: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
        let Some(last) = last_trained else {
            return Some("no model trained yet".into());
        };
        let since = (chrono::Utc::now() - last).to_std().unwrap_or_default();
        if let Some(every) = self.every.filter(|e| since >= *e) {
            return Some(format!(
                "{} since the last training (every {})",
                show_period(since),
                show_period(every)
            ));
        }
        if let Some(rows) = self.rows.filter(|r| self.rows_since >= *r) {
            return Some(format!(
                "{} collected (every {rows})",
                contract::count(self.rows_since, "row")
            ));
        }
        None
    }

    /// After a collection that wrote `new_rows`: retrains when due; one
    /// phrase for the cycle's log line.
    pub fn after_cycle(&mut self, layout: &Layout, new_rows: usize) -> String {
        self.rows_since += new_rows;
        if new_rows > 0 {
            self.short = None;
        }
        let last =
            contract::io::read_json::<contract::reports::TrainingReport>(&layout.training_report())
                .ok()
                .map(|r| r.trained_at);
        let Some(why) = self.due(last) else {
            return format!(
                "retrain not due ({} since the last)",
                contract::count(self.rows_since, "row")
            );
        };
        if let Some(short) = &self.short {
            return format!(
                "retrain ({why}) waits for new rows: the last one stopped for too few clean rows ({short})"
            );
        }
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .status();
        let took = started.elapsed().as_secs_f64();
        match status {
            Ok(s) if s.success() => {
                self.rows_since = 0;
                format!(
                    "retrained ({why}) in {took:.1}s{}",
                    outcomes(layout, started_at).map_or(String::new(), |o| format!(": {o}"))
                )
            }
            Ok(s) => match too_few_rows(layout, started_at) {
                Some((short, trainable)) => {
                    let meanwhile = if trainable.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (ALLOW_SMALL=yes for make collect trains {} meanwhile)",
                            trainable.join(" and ")
                        )
                    };
                    let line = format!(
                        "retrain ({why}) stopped after {took:.1}s for too few clean rows ({short}); \
                         the next waits for new rows{meanwhile}"
                    );
                    self.short = Some(short);
                    line
                }
                None => {
                    format!("retrain ({why}) FAILED after {took:.1}s ({s}); next cycle goes on")
                }
            },
            Err(e) => format!("retrain ({why}) could not start `{}`: {e}", self.command),
        }
    }
}

/// What the train run the retrain made decided, model by model, from its
/// history line (`csat promoted v0007, quality kept v0004`); None when the
/// retrain command trained nothing since `since` (or the history cannot be read).
fn outcomes(layout: &Layout, since: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let history = contract::history::read(&layout.history()).ok()?;
    let run = history
        .iter()
        .rev()
        .find(|r| r.event == RunEvent::Train && r.started_at >= since)?;
    // Drift the run flagged, so a quiet log still shows the data moving.
    let drifted: Vec<String> = run
        .drift
        .iter()
        .filter(|(_, d)| d.level != DriftLevel::None)
        .map(|(name, d)| {
            let what = if d.drifted.is_empty() {
                String::new()
            } else {
                format!(" in {}", d.drifted.join(", "))
            };
            format!("{name} {}{what}", d.level.name())
        })
        .collect();
    let drift = if drifted.is_empty() {
        String::new()
    } else {
        format!("; drift: {}", drifted.join("; "))
    };
    (!run.models.is_empty()).then(|| format!("{}{drift}", run.outcomes()))
}

/// When a validation since `since` stopped the run for datasets with fewer
/// clean rows than their minimum: those (`performance 400 of 500`), and the
/// datasets with enough for train. A validation told to go on past them
/// (`--allow-small`) did not stop the run, so its failure was another's.
fn too_few_rows(
    layout: &Layout,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<(String, Vec<&'static str>)> {
    let report =
        contract::io::read_json::<contract::reports::ValidationReport>(&layout.validation_report())
            .ok()
            .filter(|r| r.validated_at >= since && !r.allow_small)?;
    let mut short = Vec::new();
    let mut trainable = Vec::new();
    for dataset in contract::Dataset::ALL {
        let Some(d) = report.datasets.get(dataset.name()) else {
            continue;
        };
        if d.clean < d.min_rows {
            short.push(format!("{dataset} {} of {}", d.clean, d.min_rows));
        }
        if d.clean >= dataset.min_rows() {
            trainable.push(dataset.name());
        }
    }
    (!short.is_empty()).then(|| (short.join(", "), trainable))
}

pub fn every(period: Duration, mut run_once: impl FnMut() -> Result<String>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    eprintln!(
        "extract: collecting every {}; Ctrl-C stops after the current run",
        show_period(period)
    );
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        match run_once() {
            Ok(summary) => println!(
                "{now} ok in {:.1}s: {summary}",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => println!(
                "{now} failed (retrying next run): {}",
                contract::secrets::redact(&format!("{e:#}"))
            ),
        }
        let next = started + period;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(
                Duration::from_millis(200).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }
    eprintln!("extract: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retrain_line_names_each_models_outcome_and_the_drift() {
        use contract::drift::DriftSummary;
        use contract::history::{RunModel, RunRecord};
        use contract::registry::Version;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.reports_dir()).unwrap();
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let model = |promoted: bool, version: u32| RunModel {
            version: Some(Version(version)),
            promoted,
            reason: String::new(),
            rmse: None,
            champion: Some(Version(3)),
            champion_rmse: None,
            same_as_champion: false,
        };
        let drift = |level: DriftLevel, drifted: &[&str]| DriftSummary {
            level,
            max_psi: 0.0,
            drifted: drifted.iter().map(|s| s.to_string()).collect(),
            unseen_levels: 0,
            target_shift_std: None,
            reject_rate_jumped: false,
        };
        let run = RunRecord {
            run_id: "20261207T100000Z".into(),
            event: RunEvent::Train,
            started_at: at("2026-12-07T10:00:00Z"),
            finished_at: at("2026-12-07T10:01:00Z"),
            source: None,
            since: None,
            until: None,
            datasets: Default::default(),
            models: [
                ("csat".to_string(), model(true, 4)),
                ("quality".to_string(), model(false, 4)),
            ]
            .into(),
            drift: [
                ("csat".to_string(), drift(DriftLevel::None, &[])),
                (
                    "quality".to_string(),
                    drift(DriftLevel::Major, &["complexity", "provider"]),
                ),
            ]
            .into(),
        };
        let line = serde_json::to_string(&run).unwrap() + "\n";
        std::fs::write(layout.history(), line).unwrap();
        assert_eq!(
            outcomes(&layout, at("2026-12-07T09:59:00Z")).as_deref(),
            Some(
                "csat promoted v0004, quality kept v0004; drift: quality major in complexity, provider"
            )
        );
        // A train run from before the retrain began is not its outcome.
        assert_eq!(outcomes(&layout, at("2026-12-07T10:00:01Z")), None);
    }

    #[test]
    fn periods() {
        assert_eq!(parse_every("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_every("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_every("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_every("1").is_err());
        assert!(parse_every("0s").is_err());
        assert!(parse_every("2d").is_err());
    }

    #[test]
    fn periods_are_shown_as_they_are_given() {
        for given in ["30s", "15m", "1h", "24h"] {
            assert_eq!(show_period(parse_every(given).unwrap()), given);
        }
        assert_eq!(show_period(Duration::from_secs(150)), "2m 30s");
        assert_eq!(
            show_period(Duration::from_secs(25 * 3600 + 10 * 60 + 7)),
            "25h 10m"
        );
        assert_eq!(show_period(Duration::from_millis(400)), "0s");
    }
}
