//! The page's "Models over time" section: what this run's promotion gate
//! decided, how the new data drifted from each champion's, and the run
//! history (metrics, rows and reject rates over runs).

use anyhow::Result;
use contract::drift::{DriftLevel, DriftReport};
use contract::history::{RunEvent, RunRecord};
use contract::reports::TrainingReport;
use maud::{Markup, html};

use crate::charts;
use crate::html::{count, figure, num, stamp};

/// Runs shown in the history table (the charts show every run).
const TABLE_RUNS: usize = 20;

pub fn section(
    training: Option<&TrainingReport>,
    drift: Option<&DriftReport>,
    history: &[RunRecord],
) -> Result<Markup> {
    let runs: Vec<&RunRecord> = history
        .iter()
        .filter(|r| r.event == RunEvent::Train)
        .collect();
    let charts = if runs.len() >= 2 {
        Some(history_charts(&runs)?)
    } else {
        None
    };
    Ok(html! {
        section id="history" {
            h2 { "Models over time" }
            h3 { "This run's promotion gate" }
            p.muted {
                "A new version replaces the champion only when it beats its baselines and its RMSE is no worse "
                "than the champion's on held-out rows neither of them trained on, within the tolerance; "
                "the tolerance is spent once over a run of promotions, so what the champion was itself "
                "promoted behind counts too."
            }
            @if let Some(training) = training {
                (promotions_table(training))
            } @else {
                p.muted { "No train run yet." }
            }
            @if let Some(drift) = drift {
                (drift_table(drift))
            }
            h3 { "Run history" }
            @if let Some(charts) = charts {
                (charts)
            } @else {
                p.muted { "Charts appear from the second run on (" (runs.len()) " so far)." }
            }
            (runs_table(history))
        }
    })
}

/// Each model's RMSE, clean rows and reject rate over the train runs.
fn history_charts(runs: &[&RunRecord]) -> Result<Markup> {
    let x_label = |x: f64| {
        runs.get(x.round().max(0.0) as usize)
            .map(|r| r.started_at.format("%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let series = |value: &dyn Fn(&RunRecord, &str) -> Option<f64>, names: &[String]| {
        names
            .iter()
            .map(|name| {
                let points = runs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| value(r, name).map(|v| (i as f64, v)))
                    .collect();
                (name.clone(), points)
            })
            .collect::<Vec<_>>()
    };
    let mut names: Vec<String> = runs.iter().flat_map(|r| r.models.keys().cloned()).collect();
    names.sort();
    names.dedup();
    // Each model's RMSE relative to its first recorded one: the three models'
    // scales differ a hundredfold (quality is 0-100), so raw RMSEs would
    // flatten two of them against the axis.
    let first_rmse = |n: &str| {
        runs.iter()
            .find_map(|r| r.models.get(n).and_then(|m| m.rmse))
            .filter(|v| *v > 0.0)
    };
    let rmse = series(
        &|r, n| {
            let base = first_rmse(n)?;
            r.models.get(n).and_then(|m| m.rmse).map(|v| v / base)
        },
        &names,
    );
    let clean = series(&|r, n| r.datasets.get(n).map(|d| d.clean as f64), &names);
    let rejects = series(
        &|r, n| {
            r.datasets
                .get(n)
                .map(|d| 100.0 * d.rejected as f64 / d.rows_in.max(1) as f64)
        },
        &names,
    );
    let a = charts::lines(
        "New versions' held-out RMSE per run",
        "run",
        "RMSE",
        &rmse,
        &x_label,
        false,
    )?;
    let b = charts::lines("Clean rows per run", "run", "rows", &clean, &x_label, false)?;
    let c = charts::lines(
        "Reject rate per run (%)",
        "run",
        "% rejected",
        &rejects,
        &x_label,
        false,
    )?;
    Ok(html! {
        div.grid {
            (figure("history-rmse", a, "Each run's new version, scored on its held-out rows, relative to the model's first run: below 1 is better."))
            (figure("history-rows", b, "Clean rows each run trained on."))
            (figure("history-rejects", c, "Share of rows validate rejected."))
        }
    })
}

/// What the promotion gate decided for each model of this run.
fn promotions_table(training: &TrainingReport) -> Markup {
    html! {
        div.table-wrap { table id="promotions" {
            tr { th.text { "model" } th { "version" } th { "promoted" } th { "RMSE" } th { "champion" } th { "champion RMSE" } th { "rows" } th.text { "why" } }
            @for (name, m) in &training.models {
                @if let (Some(v), Some(p)) = (m.version, &m.promotion) {
                    tr {
                        td { (name) } td { (v.to_string()) }
                        td class=(if p.promoted { "" } else { "bad" }) { (if p.promoted { "yes" } else { "no" }) }
                        td { (num(Some(p.rmse), 4)) }
                        td { (p.champion.map_or("none".into(), |c| c.to_string())) }
                        td { (num(p.champion_rmse, 4)) }
                        td { (count(p.gate_rows)) }
                        td.text { (p.reason) }
                    }
                } @else {
                    tr { td { (name) } td { "–" } td { "–" } td {} td {} td {} td {} td.text { (m.message.as_deref().unwrap_or("not trained")) } }
                }
            }
        } }
    }
}

/// The new data's drift against each champion's training data.
fn drift_table(drift: &DriftReport) -> Markup {
    html! {
        h3 { "Drift against the champions" }
        p.muted {
            "PSI of the new clean data against the champion's training data, per feature "
            "(above 0.1 moderate, above 0.2 major); levels the champion never saw; the reject rate then and now."
        }
        div.table-wrap { table id="drift" {
            tr { th.text { "dataset" } th { "champion" } th { "level" } th { "max PSI" } th.text { "moved features" } th.text { "unseen levels" } th { "target shift (sd)" } th { "reject rate then → now" } }
            @for (name, d) in &drift.datasets {
                tr {
                    td { (name) }
                    td { (d.champion.map_or("none".into(), |c| c.to_string())) }
                    @if let Some(note) = &d.note {
                        td.text colspan="6" { (note) }
                    } @else {
                        td class=(if d.level == DriftLevel::None { "" } else { "bad" }) { (d.level.name()) }
                        td { (num(Some(d.max_psi), 3)) }
                        td.text { (d.features.iter().filter(|f| f.level != DriftLevel::None).map(|f| format!("{} {:.2}", f.feature, f.psi)).collect::<Vec<_>>().join(", ")) }
                        td.text class=(if d.unseen_levels.is_empty() { "" } else { "bad" }) { (d.unseen_levels.iter().map(|(f, l)| format!("{f}: {}", l.join(", "))).collect::<Vec<_>>().join("; ")) }
                        td { (num(d.target.as_ref().and_then(|t| t.shift_std), 2)) }
                        td class=(if d.reject_rate.as_ref().is_some_and(|r| r.jumped) { "bad" } else { "" }) {
                            (d.reject_rate.as_ref().map_or("–".into(), |r| format!("{:.1}% → {:.1}%", r.champion * 100.0, r.current * 100.0)))
                        }
                    }
                }
            }
        } }
    }
}

/// The last runs, newest first.
fn runs_table(history: &[RunRecord]) -> Markup {
    html! {
        div.table-wrap { table id="runs" {
            tr { th.text { "run" } th.text { "event" } th.text { "source" } th.text { "models" } }
            @for r in history.iter().rev().take(TABLE_RUNS) {
                tr {
                    td { (stamp(r.started_at)) }
                    td.text { (match r.event { RunEvent::Train => "train", RunEvent::Rollback => "rollback" }) }
                    td.text { (r.source.as_deref().unwrap_or("–")) }
                    td.text { (r.outcomes()) }
                }
            }
        } }
    }
}
