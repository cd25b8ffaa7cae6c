//! data/reports/training.json, the printed summary, and the
//! calibration table of the performance model.

use anyhow::Result;
use contract::Dataset;
use contract::columns::PROVIDER;
use contract::drift::{DriftLevel, DriftReport};
use contract::reports::{Algorithm, ModelReport, ModelStatus, TrainingReport};
use polars::prelude::*;

use crate::artifact::ModelCard;
use crate::features::Data;

/// The summary line of a trained model.
pub fn trained(card: &ModelCard, rows: usize) -> ModelReport {
    ModelReport {
        status: ModelStatus::Trained,
        rows,
        message: None,
        algorithm: Some(card.algorithm),
        training_rows: card.training_rows,
        test_rows: card.test_rows,
        candidates: card.candidates.clone(),
        train_seconds: card.train_seconds,
        fit_seconds: card.fit_seconds.clone(),
        version: card.version,
        promotion: card.lineage.promotion.clone(),
    }
}

/// One line per new version: promoted or not, and why.
pub fn print_promotions(report: &TrainingReport) {
    for (name, m) in &report.models {
        if let (Some(v), Some(p)) = (m.version, &m.promotion) {
            let verdict = if p.promoted {
                "promoted to champion"
            } else {
                "kept, not promoted"
            };
            println!("train: {name} {v} {verdict}: {}", p.reason);
        }
    }
}

/// One line per dataset whose data moved away from its champion's.
pub fn print_drift(report: &DriftReport) {
    for (name, d) in &report.datasets {
        if !d.flagged() {
            continue;
        }
        let mut parts = Vec::new();
        if d.level != DriftLevel::None {
            let top: Vec<String> = d
                .features
                .iter()
                .filter(|f| f.level != DriftLevel::None)
                .map(|f| format!("{} PSI {:.2}", f.feature, f.psi))
                .collect();
            parts.push(format!(
                "{} shift (max PSI {:.2}) {}",
                d.level.name(),
                d.max_psi,
                top.join(", ")
            ));
        }
        for (feature, levels) in &d.unseen_levels {
            parts.push(format!(
                "{feature} levels never seen by the champion: {}",
                levels.join(", ")
            ));
        }
        if let Some(r) = d.reject_rate.as_ref().filter(|r| r.jumped) {
            parts.push(format!(
                "reject rate jumped from {:.1}% to {:.1}%",
                r.champion * 100.0,
                r.current * 100.0
            ));
        }
        println!("train: drift in {name}: {}", parts.join("; "));
    }
}

fn rows_of(report: &TrainingReport) -> Vec<[String; 7]> {
    let mut out = Vec::new();
    for (name, m) in &report.models {
        match (m.algorithm, m.candidates.get(&Algorithm::MeanBaseline)) {
            (Some(a), Some(base)) => {
                let t = &m.candidates[&a].test;
                out.push([
                    name.clone(),
                    m.rows.to_string(),
                    a.name().to_string(),
                    format!("{:.3}", t.r2),
                    format!("{:.4}", t.mae),
                    format!("{:.4}", t.rmse),
                    format!("{:.4}", base.test.rmse),
                ]);
            }
            _ => out.push([
                name.clone(),
                m.rows.to_string(),
                "skipped".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    out
}

const HEADER: [&str; 7] = [
    "model",
    "rows",
    "algorithm",
    "R2",
    "MAE",
    "RMSE",
    "baseline RMSE",
];

/// The table of held-out metrics, and where every candidate's figures are
/// (`candidates`: the training report this run wrote).
pub fn print_summary(report: &TrainingReport, candidates: &std::path::Path) {
    println!(
        "{:<12} {:>9}  {:<20} {:>7} {:>9} {:>9} {:>14}",
        HEADER[0], HEADER[1], HEADER[2], HEADER[3], HEADER[4], HEADER[5], HEADER[6]
    );
    for r in rows_of(report) {
        println!(
            "{:<12} {:>9}  {:<20} {:>7} {:>9} {:>9} {:>14}",
            r[0], r[1], r[2], r[3], r[4], r[5], r[6]
        );
    }
    println!(
        "(held-out metrics; baseline = training-set mean; all candidates in {})",
        candidates.display()
    );
}

/// Per provider and decile of the A/B prediction, on held-out rows: the mean
/// prediction, the mean actual rating, and the calibrated model's mean.
pub fn calibration(data: &Data, rows: &[usize], model: &[f64]) -> Result<DataFrame> {
    use contract::reports::insight::calibration as column;
    let dataset = Dataset::Performance;
    let provider_col = dataset
        .categorical_features()
        .iter()
        .position(|c| *c == PROVIDER)
        .unwrap_or(0);
    let prediction = &data.numeric[0];
    let df = df!(
        PROVIDER => rows.iter().map(|&r| data.categorical[provider_col].value(r)).collect::<Vec<_>>(),
        column::BIN => rows.iter().map(|&r| (prediction[r] * 10.0).floor().clamp(0.0, 9.0) / 10.0).collect::<Vec<_>>(),
        "prediction" => rows.iter().map(|&r| prediction[r]).collect::<Vec<_>>(),
        "actual" => rows.iter().map(|&r| data.target[r]).collect::<Vec<_>>(),
        "calibrated" => model.to_vec(),
    )?;
    Ok(df
        .lazy()
        .group_by([col(PROVIDER), col(column::BIN)])
        .agg([
            len().alias(column::ROWS),
            col("prediction").mean().alias(column::MEAN_PREDICTION),
            col("actual").mean().alias(column::MEAN_ACTUAL),
            col("calibrated").mean().alias(column::MEAN_CALIBRATED),
        ])
        .sort([PROVIDER, column::BIN], SortMultipleOptions::default())
        .collect()?)
}
