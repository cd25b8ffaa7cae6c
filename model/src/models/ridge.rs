//! Ridge regression by its normal equations: (X'X + λI) b = X'y on centred
//! columns, so the intercept is not penalised. X is never held whole: each row
//! is built into a buffer of the model's width and added to X'X, skipping its
//! zeros (most of a one-hot row).

use anyhow::{Context, Result};
use nalgebra::{DMatrix, DVector};

pub const LAMBDA: f64 = 1.0;

/// Fits on `rows` with targets `y`; `fill(row, out)` writes a row's features.
/// Returns (intercept, coefficients).
pub fn fit(
    width: usize,
    rows: &[usize],
    y: &[f64],
    lambda: f64,
    fill: impl Fn(usize, &mut [f64]),
) -> Result<(f64, Vec<f64>)> {
    let n = rows.len().max(1) as f64;
    let mut xtx = DMatrix::<f64>::zeros(width, width);
    let mut xty = DVector::<f64>::zeros(width);
    let mut sum_x = vec![0.0; width];
    let mut sum_y = 0.0;
    let mut buf = vec![0.0; width];
    let mut nonzero: Vec<usize> = Vec::with_capacity(width);
    for (&r, &t) in rows.iter().zip(y) {
        fill(r, &mut buf);
        nonzero.clear();
        nonzero.extend((0..width).filter(|&i| buf[i] != 0.0));
        sum_y += t;
        for (a, &i) in nonzero.iter().enumerate() {
            let xi = buf[i];
            sum_x[i] += xi;
            xty[i] += xi * t;
            for &j in &nonzero[a..] {
                xtx[(i, j)] += xi * buf[j];
            }
        }
    }
    // Centre: Xc'Xc = X'X - n m m', Xc'yc = X'y - n m ybar.
    let mean_y = sum_y / n;
    let mean_x: Vec<f64> = sum_x.iter().map(|s| s / n).collect();
    for i in 0..width {
        for j in i..width {
            xtx[(i, j)] -= n * mean_x[i] * mean_x[j];
        }
        xty[i] -= n * mean_x[i] * mean_y;
        xtx[(i, i)] += lambda;
    }
    xtx.fill_lower_triangle_with_upper_triangle();
    let coefficients: Vec<f64> = xtx
        .cholesky()
        .context("ridge: the normal equations are not positive definite")?
        .solve(&xty)
        .iter()
        .copied()
        .collect();
    let intercept = mean_y
        - coefficients
            .iter()
            .zip(&mean_x)
            .map(|(b, m)| b * m)
            .sum::<f64>();
    Ok((intercept, coefficients))
}

/// Predictions for `rows`.
pub fn predict(
    rows: &[usize],
    intercept: f64,
    coefficients: &[f64],
    fill: impl Fn(usize, &mut [f64]),
) -> Vec<f64> {
    let mut buf = vec![0.0; coefficients.len()];
    rows.iter()
        .map(|&r| {
            fill(r, &mut buf);
            intercept
                + buf
                    .iter()
                    .zip(coefficients)
                    .map(|(x, b)| x * b)
                    .sum::<f64>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_closed_form() {
        // One feature x = [-1, 1, -1, 1], y = [0, 2, 0, 2]: Sxx = 4, Sxy = 4, so
        // b = Sxy / (Sxx + λ) = 0.8 with λ = 1, and the intercept is ybar = 1.
        let x = [-1.0, 1.0, -1.0, 1.0];
        let y = [0.0, 2.0, 0.0, 2.0];
        let rows = [0, 1, 2, 3];
        let fill = |r: usize, out: &mut [f64]| out[0] = x[r];
        let (a, b) = fit(1, &rows, &y, 1.0, fill).unwrap();
        assert!(
            (b[0] - 0.8).abs() < 1e-12 && (a - 1.0).abs() < 1e-12,
            "{a} {b:?}"
        );
        assert!((predict(&[1], a, &b, fill)[0] - 1.8).abs() < 1e-12);
    }

    #[test]
    fn two_features_against_a_direct_solve() {
        // Uncentred features: the intercept absorbs the means, not the penalty.
        let x = [[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0], [5.0, 1.0]];
        let y = [3.0, 6.5, 7.0, 10.5, 12.0];
        let rows: Vec<usize> = (0..5).collect();
        let (a, b) = fit(2, &rows, &y, 0.5, |r, out| out.copy_from_slice(&x[r])).unwrap();
        // Direct: centred X, (Xc'Xc + 0.5 I) b = Xc'yc.
        let mx = [3.0, 0.6];
        let my = y.iter().sum::<f64>() / 5.0;
        let xc = DMatrix::from_fn(5, 2, |i, j| x[i][j] - mx[j]);
        let yc = DVector::from_fn(5, |i, _| y[i] - my);
        let want = (xc.transpose() * &xc + DMatrix::identity(2, 2) * 0.5)
            .cholesky()
            .unwrap()
            .solve(&(xc.transpose() * yc));
        assert!((b[0] - want[0]).abs() < 1e-9 && (b[1] - want[1]).abs() < 1e-9);
        assert!((a - (my - want[0] * mx[0] - want[1] * mx[1])).abs() < 1e-9);
    }
}
