//! The baselines every model is reported beside: the training mean, and the
//! mean per group of categorical columns (the seed's provider x model and
//! action type baselines), with the training mean for unseen or null groups.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::features::{Encoded, MISSING};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupMean {
    /// The group's values of the `by` columns.
    pub key: Vec<String>,
    pub mean: f64,
    pub rows: usize,
}

pub fn mean(y: &[f64]) -> f64 {
    y.iter().sum::<f64>() / y.len().max(1) as f64
}

/// Training codes of the `by` features at `row` into `key`; false when one is missing.
fn key_of(encoded: &Encoded, by: &[usize], row: usize, key: &mut Vec<u32>) -> bool {
    key.clear();
    for &f in by {
        let code = encoded.code(f, row);
        if code == MISSING {
            return false;
        }
        key.push(code);
    }
    true
}

/// Mean target per group of the categorical features `by` (indices).
pub fn fit_groups(encoded: &Encoded, by: &[usize], rows: &[usize], y: &[f64]) -> Vec<GroupMean> {
    let mut sums: HashMap<Vec<u32>, (f64, usize)> = HashMap::new();
    let mut key = Vec::with_capacity(by.len());
    for (&r, &t) in rows.iter().zip(y) {
        if key_of(encoded, by, r, &mut key) {
            let e = sums.entry(key.clone()).or_insert((0.0, 0));
            e.0 += t;
            e.1 += 1;
        }
    }
    let levels = &encoded.encoding.categorical;
    let mut groups: Vec<GroupMean> = sums
        .into_iter()
        .map(|(codes, (s, n))| GroupMean {
            key: codes
                .iter()
                .zip(by)
                .map(|(&c, &f)| levels[f].levels[c as usize].clone())
                .collect(),
            mean: s / n as f64,
            rows: n,
        })
        .collect();
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    groups
}

pub fn predict_groups(
    encoded: &Encoded,
    by: &[usize],
    groups: &[GroupMean],
    fallback: f64,
    rows: &[usize],
) -> Vec<f64> {
    let levels = &encoded.encoding.categorical;
    let table: HashMap<Vec<u32>, f64> = groups
        .iter()
        .filter_map(|g| {
            let codes = g
                .key
                .iter()
                .zip(by)
                .map(|(v, &f)| {
                    levels[f]
                        .levels
                        .iter()
                        .position(|l| l == v)
                        .map(|i| i as u32)
                })
                .collect::<Option<Vec<u32>>>()?;
            Some((codes, g.mean))
        })
        .collect();
    let mut key = Vec::with_capacity(by.len());
    rows.iter()
        .map(|&r| {
            if key_of(encoded, by, r, &mut key) {
                table.get(key.as_slice()).copied().unwrap_or(fallback)
            } else {
                fallback
            }
        })
        .collect()
}
