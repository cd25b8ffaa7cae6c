//! The promotion gate: a new version replaces the champion only when it
//! beats its baselines and, on held-out rows neither trained on, its RMSE is
//! no worse than the champion's by more than the tolerance, counting what the
//! champion itself was promoted behind (so the tolerance is spent once, not
//! once per run).

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
    /// What it predicts with and learnt from (see `retention`): the same as
    /// the champion's when retrained on unchanged data.
    pub identity: Option<[u8; 32]>,
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
        cumulative_ratio: Some(1.0),
        same_as_champion: false,
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
        PromotePolicy::Always => {
            // The user's choice starts a new run of promotions.
            promotion.cumulative_ratio = Some(1.0);
            (true, format!("forced (--promote always): {why}"))
        }
        PromotePolicy::Never => (false, format!("refused (--promote never): {why}")),
    };
    Ok(promotion)
}

/// The challenger against a champion that loaded: both scored on the rows
/// both held out; better when it beats its baselines and is no worse than
/// the champion within the tolerance, the champion's own lag included (see
/// [`judge`]). Fills in the promotion's scores.
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
    let behind = card
        .lineage
        .promotion
        .as_ref()
        .map_or(1.0, |p| p.cumulative());
    let verdict = judge(rmse, champion_rmse, behind, tolerance);
    promotion.cumulative_ratio = Some(verdict.cumulative()).filter(|c| c.is_finite());
    let percent = |ratio: f64| (ratio - 1.0) * 100.0;
    let tolerance = tolerance * 100.0;
    let scores =
        format!("RMSE {rmse:.4} vs champion {version}'s {champion_rmse:.4} on {n} held-out rows");
    let (better, why) = if n == 0 {
        (
            false,
            format!("no held-out rows in common with champion {version}"),
        )
    } else if !beats_baselines {
        (
            false,
            format!("does not beat its baselines ({vs_baseline}); champion {version} stays"),
        )
    } else {
        match verdict {
            Verdict::Within(cumulative) if cumulative <= 1.0 => {
                (true, format!("{scores} (tolerance {tolerance:.1}%)"))
            }
            Verdict::Within(cumulative) => (
                true,
                format!(
                    "{scores} (tolerance {tolerance:.1}%, {:.1}% of it used)",
                    percent(cumulative)
                ),
            ),
            Verdict::Worse(_) => (
                false,
                format!(
                    "RMSE {rmse:.4} is worse than champion {version}'s {champion_rmse:.4} on {n} held-out rows (tolerance {tolerance:.1}%)"
                ),
            ),
            Verdict::BeyondInAll(cumulative) => (
                false,
                format!(
                    "{scores}: within the tolerance alone, but {version} was itself promoted {:.1}% behind the versions before it; {:.1}% in all (tolerance {tolerance:.1}%)",
                    percent(behind),
                    percent(cumulative)
                ),
            ),
        }
    };
    // A retrain on unchanged data makes the champion again, byte for byte:
    // the verdict is the same as for any model, and the reason says so.
    let same =
        challenger.identity.is_some() && challenger.identity == champion_identity(card, fitted);
    promotion.same_as_champion = same;
    Ok(if same {
        (
            better,
            format!("the same model as champion {version}, retrained on unchanged data: {why}"),
        )
    } else {
        (better, why)
    })
}

/// The champion's identity (see `retention`), from its card and loaded model.
fn champion_identity(card: &ModelCard, fitted: &crate::models::Fitted) -> Option<[u8; 32]> {
    let model = card
        .model_file
        .as_ref()
        .and(fitted.model_text.as_deref())
        .map(str::as_bytes);
    crate::retention::card_identity(card, model)
}

/// What the gate makes of a challenger's RMSE against the champion's on the same rows.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Within the tolerance, the champion's lag included: the new cumulative ratio.
    Within(f64),
    /// Worse than the champion by more than the tolerance: the cumulative
    /// ratio it would have had.
    Worse(f64),
    /// Within the tolerance against the champion alone, beyond it with the
    /// champion's own lag: the cumulative ratio it would have had.
    BeyondInAll(f64),
}

impl Verdict {
    /// The challenger's cumulative ratio (what it records, promoted or not).
    fn cumulative(&self) -> f64 {
        match self {
            Verdict::Within(c) | Verdict::Worse(c) | Verdict::BeyondInAll(c) => *c,
        }
    }
}

/// The challenger's RMSE against the champion's, `behind` being how far the
/// champion already stood behind the versions before it
/// ([`Promotion::cumulative_ratio`](contract::reports::Promotion)): the
/// ratios compound, and a version that is no worse than its champion starts
/// afresh (1.0), so the tolerance is spent once over a run of promotions.
fn judge(rmse: f64, champion_rmse: f64, behind: f64, tolerance: f64) -> Verdict {
    let ratio = if champion_rmse > 0.0 {
        rmse / champion_rmse
    } else if rmse > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    let cumulative = (behind.max(1.0) * ratio).max(1.0);
    if ratio > 1.0 + tolerance {
        Verdict::Worse(cumulative)
    } else if cumulative > 1.0 + tolerance {
        Verdict::BeyondInAll(cumulative)
    } else {
        Verdict::Within(cumulative)
    }
}

#[cfg(test)]
mod tests {
    use contract::reports::PromotePolicy;

    use super::*;

    #[test]
    fn the_tolerance_is_spent_once_over_a_run_of_promotions() {
        // Each challenger 0.6% worse than its champion: the first is promoted
        // (0.6% of the 1% used), the second not (1.2% in all), though each
        // alone is within 1%.
        let second = judge(1.006, 1.0, 1.0, 0.01);
        assert_eq!(second, Verdict::Within(1.006));
        let third = judge(1.006 * 1.006, 1.006, second.cumulative(), 0.01);
        assert!(
            matches!(third, Verdict::BeyondInAll(c) if (c - 1.006 * 1.006).abs() < 1e-12),
            "{third:?}"
        );
        // A challenger better than the champion by more than its lag starts afresh.
        assert_eq!(judge(0.99, 1.0, 1.006, 0.01), Verdict::Within(1.0));
        // One that is better but not by as much keeps the rest of the lag.
        let Verdict::Within(c) = judge(0.998, 1.0, 1.006, 0.01) else {
            panic!("within")
        };
        assert!((c - 0.998 * 1.006).abs() < 1e-12, "{c}");
        // Worse than the tolerance on its own.
        assert_eq!(judge(1.02, 1.0, 1.0, 0.01), Verdict::Worse(1.02));
        // Equal scores (even both zero) are within.
        assert_eq!(judge(0.0, 0.0, 1.0, 0.01), Verdict::Within(1.0));
        assert_eq!(judge(0.1, 0.0, 1.0, 0.01), Verdict::Worse(f64::INFINITY));
    }

    #[test]
    fn a_card_from_before_the_cumulative_ratio_counts_its_own_step() {
        let promotion = |promoted, policy, rmse, champion_rmse| Promotion {
            promoted,
            reason: String::new(),
            policy,
            gate_rows: 10,
            rmse,
            baseline_rmse: 9.0,
            champion: None,
            champion_rmse,
            tolerance: 0.01,
            cumulative_ratio: None,
            same_as_champion: false,
        };
        let old = promotion(true, PromotePolicy::Better, 1.008, Some(1.0));
        assert!((old.cumulative() - 1.008).abs() < 1e-12);
        // Better than its champion, forced, not promoted or a first version: 1.
        assert_eq!(
            promotion(true, PromotePolicy::Better, 0.9, Some(1.0)).cumulative(),
            1.0
        );
        assert_eq!(
            promotion(true, PromotePolicy::Always, 1.5, Some(1.0)).cumulative(),
            1.0
        );
        assert_eq!(
            promotion(false, PromotePolicy::Better, 1.5, Some(1.0)).cumulative(),
            1.0
        );
        // Not promoted (champion only by a rollback, which starts afresh): 1,
        // whatever it recorded.
        let refused = Promotion {
            cumulative_ratio: Some(1.3),
            ..promotion(false, PromotePolicy::Better, 1.3, Some(1.0))
        };
        assert_eq!(refused.cumulative(), 1.0);
        assert_eq!(
            promotion(true, PromotePolicy::Better, 1.0, None).cumulative(),
            1.0
        );
        // A card that has it: as recorded.
        let new = Promotion {
            cumulative_ratio: Some(1.004),
            ..old
        };
        assert_eq!(new.cumulative(), 1.004);
    }
}
