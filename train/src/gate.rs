//! The promotion gate: a new version replaces the champion only when it
//! beats its baselines and, on held-out rows neither trained on, its RMSE is
//! no worse than the champion's by more than the tolerance.

use anyhow::Result;
use contract::registry::Version;
use contract::reports::{PromotePolicy, Promotion};
use contract::{Dataset, Layout};

use crate::artifact::{self, ModelCard};
use crate::features::Data;
use crate::metrics::evaluate;

/// The new version's scores on its held-out rows.
pub struct Challenger<'a> {
    /// The held-out rows (indices into `data`) and its predictions on them.
    pub rows: &'a [usize],
    pub predicted: &'a [f64],
    /// Every row's bucket (see `split`): which rows the champion held out too.
    pub buckets: &'a [f64],
    pub rmse: f64,
    /// The best baseline's RMSE on the same rows.
    pub baseline_rmse: f64,
}

/// The champion, loaded, or why it could not be.
pub enum Champion {
    None,
    Loaded {
        version: Version,
        card: Box<ModelCard>,
        fitted: Box<crate::models::Fitted>,
    },
    Unreadable {
        version: Version,
        error: String,
    },
}

impl Champion {
    /// The champion `version` of `dataset`, read from its version folder.
    pub fn load(layout: &Layout, dataset: Dataset, version: Option<Version>) -> Self {
        match version {
            None => Champion::None,
            Some(version) => match artifact::load(&layout.version_dir(dataset, version)) {
                Ok((card, fitted)) => Champion::Loaded {
                    version,
                    card: Box::new(card),
                    fitted: Box::new(fitted),
                },
                Err(e) => Champion::Unreadable {
                    version,
                    error: format!("{e:#}"),
                },
            },
        }
    }

    pub fn version(&self) -> Option<Version> {
        match self {
            Champion::None => None,
            Champion::Loaded { version, .. } | Champion::Unreadable { version, .. } => {
                Some(*version)
            }
        }
    }
}

/// Scores the champion and the challenger on the rows both held out, then decides.
pub fn decide(
    dataset: Dataset,
    data: &Data,
    challenger: &Challenger,
    champion: &Champion,
    policy: PromotePolicy,
    tolerance: f64,
) -> Result<Promotion> {
    let beats_baselines = challenger.rmse < challenger.baseline_rmse;
    let mut promotion = Promotion {
        promoted: false,
        reason: String::new(),
        policy,
        gate_rows: challenger.rows.len(),
        rmse: challenger.rmse,
        baseline_rmse: challenger.baseline_rmse,
        champion: champion.version(),
        champion_rmse: None,
        tolerance,
    };
    let vs_baseline = format!(
        "RMSE {:.4} vs best baseline {:.4}",
        challenger.rmse, challenger.baseline_rmse
    );
    let (better, why) = match champion {
        Champion::None if beats_baselines => (true, format!("first version: {vs_baseline}")),
        Champion::None => (
            false,
            format!("first version does not beat its baselines: {vs_baseline}"),
        ),
        Champion::Unreadable { version, error } => (
            beats_baselines,
            format!(
                "champion {version} cannot be loaded ({error}); judged on baselines: {vs_baseline}"
            ),
        ),
        Champion::Loaded {
            version,
            card,
            fitted,
        } => against_loaded(
            dataset,
            data,
            challenger,
            (*version, card, fitted),
            tolerance,
            beats_baselines,
            &vs_baseline,
            &mut promotion,
        )?,
    };
    (promotion.promoted, promotion.reason) = match policy {
        PromotePolicy::Better => (better, why),
        PromotePolicy::Always => (true, format!("forced (--promote always): {why}")),
        PromotePolicy::Never => (false, format!("refused (--promote never): {why}")),
    };
    Ok(promotion)
}

/// The challenger against a champion that loaded: both scored on the rows
/// both held out; better when it beats its baselines and is no worse than
/// the champion within the tolerance. Fills in the promotion's scores.
#[allow(clippy::too_many_arguments)]
fn against_loaded(
    dataset: Dataset,
    data: &Data,
    challenger: &Challenger,
    (version, card, fitted): (Version, &ModelCard, &crate::models::Fitted),
    tolerance: f64,
    beats_baselines: bool,
    vs_baseline: &str,
    promotion: &mut Promotion,
) -> Result<(bool, String)> {
    // Rows the champion held out too (it may have held out a smaller share).
    let picked: Vec<usize> = (0..challenger.rows.len())
        .filter(|&i| challenger.buckets[challenger.rows[i]] < card.test_fraction)
        .collect();
    let rows: Vec<usize> = picked.iter().map(|&i| challenger.rows[i]).collect();
    let truth = data.target_of(&rows);
    let ours: Vec<f64> = picked.iter().map(|&i| challenger.predicted[i]).collect();
    let theirs = fitted.predict(dataset, &card.encoding.encode(data), &rows)?;
    let rmse = evaluate(&truth, &ours, dataset.tolerance()).rmse;
    let champion_rmse = evaluate(&truth, &theirs, dataset.tolerance()).rmse;
    promotion.gate_rows = rows.len();
    promotion.rmse = rmse;
    promotion.champion_rmse = Some(champion_rmse);
    let n = rows.len();
    let limit = champion_rmse * (1.0 + tolerance);
    Ok(if n == 0 {
        (
            false,
            format!("no held-out rows in common with champion {version}"),
        )
    } else if !beats_baselines {
        (
            false,
            format!("does not beat its baselines ({vs_baseline}); champion {version} stays"),
        )
    } else if rmse <= limit {
        (
            true,
            format!(
                "RMSE {rmse:.4} vs champion {version}'s {champion_rmse:.4} on {n} held-out rows (tolerance {:.1}%)",
                tolerance * 100.0
            ),
        )
    } else {
        (
            false,
            format!(
                "RMSE {rmse:.4} is worse than champion {version}'s {champion_rmse:.4} on {n} held-out rows (tolerance {:.1}%)",
                tolerance * 100.0
            ),
        )
    })
}
