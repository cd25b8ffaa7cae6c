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
    // Summed in row order, one group at a time, so the same rows give the
    // same bytes on every run. With polars' parallel group-by the file
    // differed between two runs on the same rows (its threads can add a
    // group's values in a different order each time).
    #[derive(Default)]
    struct Sums {
        rows: u32,
        prediction: f64,
        actual: f64,
        calibrated: f64,
    }
    let mut groups: std::collections::BTreeMap<(Option<&str>, i64), Sums> = Default::default();
    for (&r, &calibrated) in rows.iter().zip(model) {
        let bin = (prediction[r] * 10.0).floor().clamp(0.0, 9.0) as i64;
        let g = groups
            .entry((data.categorical[provider_col].value(r), bin))
            .or_default();
        g.rows += 1;
        g.prediction += prediction[r];
        g.actual += data.target[r];
        g.calibrated += calibrated;
    }
    let mean = |sum: f64, g: &Sums| sum / f64::from(g.rows);
    Ok(df!(
        PROVIDER => groups.keys().map(|k| k.0).collect::<Vec<_>>(),
        column::BIN => groups.keys().map(|k| k.1 as f64 / 10.0).collect::<Vec<_>>(),
        column::ROWS => groups.values().map(|g| g.rows).collect::<Vec<_>>(),
        column::MEAN_PREDICTION => groups.values().map(|g| mean(g.prediction, g)).collect::<Vec<_>>(),
        column::MEAN_ACTUAL => groups.values().map(|g| mean(g.actual, g)).collect::<Vec<_>>(),
        column::MEAN_CALIBRATED => groups.values().map(|g| mean(g.calibrated, g)).collect::<Vec<_>>(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Categorical;

    #[test]
    fn calibration_groups_by_provider_and_decile_in_order() {
        let features = Dataset::Performance.categorical_features();
        let at = features.iter().position(|c| *c == PROVIDER).unwrap();
        let providers = [
            Some("openai"),
            None,
            Some("anthropic"),
            Some("openai"),
            Some("openai"),
        ];
        let categorical = (0..features.len())
            .map(|i| match i == at {
                true => Categorical::from_values(providers),
                false => Categorical::from_values(providers.map(|_| Some("x"))),
            })
            .collect();
        let data = Data {
            rows: 5,
            numeric: vec![vec![0.15, 0.5, 0.99, 0.12, 1.0]],
            categorical,
            target: vec![0.2, 0.4, 0.9, 0.1, 0.8],
        };
        // Row 1 is not among the held-out rows; row 4's prediction of 1.0 is in the top decile.
        let df = calibration(&data, &[0, 2, 3, 4], &[0.3, 0.95, 0.1, 0.7]).unwrap();
        let strs = |c: &str| {
            let s = df.column(c).unwrap().str().unwrap();
            s.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        let f64s = |c: &str| {
            df.column(c)
                .unwrap()
                .f64()
                .unwrap()
                .to_vec_null_aware()
                .left()
                .unwrap()
        };
        use contract::reports::insight::calibration as column;
        assert_eq!(
            strs(PROVIDER),
            [Some("anthropic"), Some("openai"), Some("openai")].map(|v| v.map(str::to_string))
        );
        assert_eq!(f64s(column::BIN), [0.9, 0.1, 0.9]);
        let rows = df
            .column(column::ROWS)
            .unwrap()
            .u32()
            .unwrap()
            .to_vec_null_aware();
        assert_eq!(rows.left().unwrap(), [1, 2, 1]);
        assert_eq!(
            f64s(column::MEAN_PREDICTION),
            [0.99, (0.15 + 0.12) / 2.0, 1.0]
        );
        assert_eq!(f64s(column::MEAN_ACTUAL), [0.9, (0.2 + 0.1) / 2.0, 0.8]);
        assert_eq!(
            f64s(column::MEAN_CALIBRATED),
            [0.95, (0.3 + 0.1) / 2.0, 0.7]
        );
    }
}
