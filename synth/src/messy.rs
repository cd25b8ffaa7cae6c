//! `--messy`: give a share of rows exactly one defect each, so validate can be
//! checked against a known count of every kind of bad row.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use contract::RawTable;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::generate::Tables;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    NullTarget,
    OutOfRangeTarget,
    DuplicateId,
    FutureTimestamp,
}

impl Defect {
    pub const ALL: [Defect; 4] = [
        Defect::NullTarget,
        Defect::OutOfRangeTarget,
        Defect::DuplicateId,
        Defect::FutureTimestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::NullTarget => "null_target",
            Defect::OutOfRangeTarget => "out_of_range_target",
            Defect::DuplicateId => "duplicate_id",
            Defect::FutureTimestamp => "future_timestamp",
        }
    }
}

/// The parts of a table a defect touches.
struct View<'a> {
    ids: &'a mut [String],
    created_at: &'a mut [i64],
    target: &'a mut [Option<f64>],
    /// The largest valid target value; an out-of-range one lies above it.
    target_max: f64,
}

pub type Injected = BTreeMap<RawTable, BTreeMap<Defect, usize>>;

pub fn inject(tables: &mut Tables, fraction: f64, seed: u64, now: DateTime<Utc>) -> Injected {
    let mut injected = Injected::new();
    if fraction <= 0.0 {
        return injected;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d65_7373_795f_7261);
    let views = [
        (
            RawTable::Explanations,
            View {
                ids: &mut tables.explanations.id,
                created_at: &mut tables.explanations.created_at,
                target: &mut tables.explanations.quality_score,
                target_max: 1.0,
            },
        ),
        (
            RawTable::Feedback,
            View {
                ids: &mut tables.feedback.id,
                created_at: &mut tables.feedback.created_at,
                target: &mut tables.feedback.quality_rating,
                target_max: 1.0,
            },
        ),
        (
            RawTable::AbTesting,
            View {
                ids: &mut tables.ab_testing.id,
                created_at: &mut tables.ab_testing.created_at,
                target: &mut tables.ab_testing.user_rating,
                target_max: 1.0,
            },
        ),
    ];
    for (table, view) in views {
        injected.insert(table, inject_table(view, fraction, &mut rng, now));
    }
    injected
}

fn inject_table(
    view: View<'_>,
    fraction: f64,
    rng: &mut StdRng,
    now: DateTime<Utc>,
) -> BTreeMap<Defect, usize> {
    let rows = view.ids.len();
    // Row 0 is never defective, so every duplicate has a clean earlier original.
    let total = ((rows as f64 * fraction).round() as usize).min(rows.saturating_sub(1));
    let mut candidates: Vec<usize> = (1..rows).collect();
    candidates.shuffle(rng);
    candidates.truncate(total);
    let defective: HashSet<usize> = candidates.iter().copied().collect();

    let mut counts = BTreeMap::new();
    for (k, &row) in candidates.iter().enumerate() {
        // Equal parts: the remainder goes to the first kinds.
        let defect = Defect::ALL[k % Defect::ALL.len()];
        match defect {
            Defect::NullTarget => view.target[row] = None,
            Defect::OutOfRangeTarget => {
                let over = rng.random_range(0.05..0.8) * view.target_max;
                view.target[row] = Some(if rng.random_bool(0.8) {
                    view.target_max + over
                } else {
                    -over
                });
            }
            Defect::DuplicateId => {
                let original = (0..64)
                    .map(|_| rng.random_range(0..row))
                    .find(|s| !defective.contains(s))
                    .or_else(|| (0..row).rev().find(|s| !defective.contains(s)))
                    .unwrap_or(0);
                view.ids[row] = view.ids[original].clone();
            }
            Defect::FutureTimestamp => {
                let ahead_us = rng.random_range(3_600i64..30 * 86_400) * 1_000_000;
                view.created_at[row] = now.timestamp_micros() + ahead_us;
            }
        }
        *counts.entry(defect).or_insert(0) += 1;
    }
    counts
}
