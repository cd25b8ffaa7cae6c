//! Seeded, shuffled splits: train/test and K folds.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Shuffles 0..n with `seed` and cuts off `test_fraction` as the test rows.
pub fn train_test(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let test = ((n as f64 * test_fraction).round() as usize)
        .clamp(usize::from(n > 1), n.saturating_sub(1));
    let train = idx.split_off(test);
    let mut test_rows = idx;
    let mut train_rows = train;
    test_rows.sort_unstable();
    train_rows.sort_unstable();
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

    #[test]
    fn split_is_reproducible_and_disjoint() {
        let (a_train, a_test) = train_test(1000, 0.2, 7);
        let (b_train, b_test) = train_test(1000, 0.2, 7);
        assert_eq!((a_train.clone(), a_test.clone()), (b_train, b_test));
        assert_eq!(a_test.len(), 200);
        assert_eq!(a_train.len(), 800);
        let mut all: Vec<usize> = a_train.iter().chain(&a_test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let (_, c_test) = train_test(1000, 0.2, 8);
        assert_ne!(a_test, c_test, "another seed, another split");
        // Shuffled: the test rows are not simply the last ones.
        assert!(a_test.iter().any(|&i| i < 500));
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
