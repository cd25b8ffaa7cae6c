//! Splits: held-out rows by a stable hash of each row's lineage key, and
//! seeded, shuffled samples and K folds of the training rows.
//!
//! The held-out rows are not drawn by shuffle position: a row's place in
//! [0, 1) is the xxh3 hash of (source_table, source_id), the same in every
//! run, and rows below the held-out fraction are held out. So a row held out
//! once is held out in every later run (at the same or a larger fraction),
//! and a champion and its challenger are scored on rows neither trained on.
//! The hash takes no seed: a seed that moved the held-out rows would break
//! that promise. `--seed` still drives the folds, the selection sample and
//! LightGBM.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// A row's stable place in [0, 1): the hash of its lineage key.
pub fn bucket(source_table: &str, source_id: &str) -> f64 {
    let mut key = Vec::with_capacity(source_table.len() + source_id.len() + 1);
    key.extend_from_slice(source_table.as_bytes());
    key.push(0x1f);
    key.extend_from_slice(source_id.as_bytes());
    (xxhash_rust::xxh3::xxh3_64(&key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Every row's bucket, from its key columns.
pub fn buckets<'a>(keys: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Vec<f64> {
    keys.map(|(t, i)| bucket(t.unwrap_or_default(), i.unwrap_or_default()))
        .collect()
}

/// (training rows, held-out rows): held out when the bucket is below
/// `test_fraction`. With very few rows, at least one row lands on each side.
pub fn train_test(buckets: &[f64], test_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let (mut test_rows, mut train_rows): (Vec<usize>, Vec<usize>) =
        (0..buckets.len()).partition(|&r| buckets[r] < test_fraction);
    if buckets.len() > 1 && (test_rows.is_empty() || train_rows.is_empty()) {
        // Degenerate only for a handful of rows: the lowest bucket is held out.
        let mut all: Vec<usize> = (0..buckets.len()).collect();
        all.sort_by(|&a, &b| buckets[a].total_cmp(&buckets[b]));
        test_rows = vec![all[0]];
        train_rows = all[1..].to_vec();
        train_rows.sort_unstable();
    }
    (train_rows, test_rows)
}

/// A seeded sample of at most `max` of `rows`.
pub fn sample(rows: &[usize], max: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let mut copy = rows.to_vec();
    copy.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed));
    copy.truncate(max);
    // The sample is kept through the fits: not the whole copy's room.
    copy.shrink_to_fit();
    copy.sort_unstable();
    copy
}

/// K folds of `rows`: (fit rows, held-out rows) per fold, after a seeded shuffle.
pub fn k_fold(rows: &[usize], k: usize, seed: u64) -> Vec<(Vec<usize>, Vec<usize>)> {
    let k = k.clamp(2, rows.len().max(2));
    let mut shuffled = rows.to_vec();
    shuffled.shuffle(&mut StdRng::seed_from_u64(seed ^ 0xf01d));
    (0..k)
        .map(|f| {
            let (mut fit, mut held) = (Vec::new(), Vec::new());
            for (i, &r) in shuffled.iter().enumerate() {
                if i % k == f {
                    held.push(r)
                } else {
                    fit.push(r)
                }
            }
            fit.sort_unstable();
            held.sort_unstable();
            (fit, held)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: std::ops::Range<usize>) -> Vec<f64> {
        ids.map(|i| bucket("ai_gm_explanations", &i.to_string()))
            .collect()
    }

    #[test]
    fn split_is_by_key_stable_and_disjoint() {
        let b = keys(0..10_000);
        let (train, test) = train_test(&b, 0.2);
        assert!((1_850..2_150).contains(&test.len()), "{}", test.len());
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
        // The same keys in another order and among other rows: the same rows held out.
        let more = keys(5_000..20_000);
        let (_, test2) = train_test(&more, 0.2);
        let held2: std::collections::HashSet<usize> = test2.iter().map(|r| r + 5_000).collect();
        for r in 5_000..10_000 {
            assert_eq!(test.contains(&r), held2.contains(&r), "row {r}");
        }
        // The key includes the table: the same id in another table is another row.
        assert_ne!(bucket("a", "1"), bucket("b", "1"));
        // A hash, not the id's order.
        assert!(test.iter().any(|&i| i < 5_000) && test.iter().any(|&i| i >= 5_000));
    }

    #[test]
    fn folds_cover_every_row_once() {
        let rows: Vec<usize> = (0..103).collect();
        let folds = k_fold(&rows, 5, 1);
        assert_eq!(folds.len(), 5);
        let mut held: Vec<usize> = folds.iter().flat_map(|(_, h)| h.clone()).collect();
        held.sort_unstable();
        assert_eq!(held, rows);
        for (fit, h) in &folds {
            assert_eq!(fit.len() + h.len(), 103);
            assert!(h.iter().all(|r| !fit.contains(r)));
        }
    }
}
