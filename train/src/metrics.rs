//! Regression metrics: R2, MAE, RMSE, and the within-tolerance rate beside them.

pub use contract::reports::Metrics;

pub fn evaluate(truth: &[f64], predicted: &[f64], tolerance: f64) -> Metrics {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return Metrics::default();
    }
    let mean = truth.iter().take(n).sum::<f64>() / n as f64;
    let (mut abs, mut sq, mut total, mut within) = (0.0, 0.0, 0.0, 0usize);
    for (t, p) in truth.iter().zip(predicted).take(n) {
        let e = t - p;
        abs += e.abs();
        sq += e * e;
        total += (t - mean) * (t - mean);
        if e.abs() <= tolerance + 1e-12 {
            within += 1;
        }
    }
    Metrics {
        r2: if total > 0.0 { 1.0 - sq / total } else { 0.0 },
        mae: abs / n as f64,
        rmse: (sq / n as f64).sqrt(),
        within_tolerance: within as f64 / n as f64,
        rows: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // errors: 0.5, -0.5, 1, 0 ; mean truth 2.5 ; SST = 2.25+0.25+0.25+2.25 = 5
        let m = evaluate(&[1.0, 2.0, 3.0, 4.0], &[0.5, 2.5, 2.0, 4.0], 0.5);
        assert!((m.mae - 0.5).abs() < 1e-12);
        assert!((m.rmse - (1.5f64 / 4.0).sqrt()).abs() < 1e-12);
        assert!((m.r2 - (1.0 - 1.5 / 5.0)).abs() < 1e-12);
        assert!((m.within_tolerance - 0.75).abs() < 1e-12);
        assert_eq!(m.rows, 4);
    }

    #[test]
    fn perfect_and_constant() {
        let m = evaluate(&[1.0, 2.0], &[1.0, 2.0], 0.0);
        assert_eq!((m.r2, m.mae, m.rmse), (1.0, 0.0, 0.0));
        // Predicting the mean gives R2 = 0.
        let m = evaluate(&[1.0, 3.0], &[2.0, 2.0], 0.1);
        assert!(m.r2.abs() < 1e-12);
    }
}
