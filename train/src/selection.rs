//! Model selection: every candidate cross-validated on the sample's folds,
//! then refitted on all training rows and scored on the held-out rows.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use contract::Dataset;

use crate::artifact::Candidate;
use crate::features::{self, Data, Encoding};
use crate::metrics::evaluate;
use crate::models::{Algorithm, Fitted, GbmSettings};

/// Fits the candidates of one model, timing each algorithm's fits.
pub(crate) struct Fitter<'a> {
    pub(crate) dataset: Dataset,
    pub(crate) data: &'a Data,
    pub(crate) candidates: &'a [Algorithm],
    pub(crate) settings: &'a GbmSettings,
    pub(crate) round: &'a dyn Fn(),
    pub(crate) fit_seconds: BTreeMap<Algorithm, f64>,
}

/// The model chosen by cross-validation, refitted on all training rows, with
/// every candidate's metrics beside it.
pub(crate) struct Chosen {
    pub(crate) fitted: Fitted,
    pub(crate) encoding: Encoding,
    /// Its predictions for the held-out rows, and their truth.
    pub(crate) predicted: Vec<f64>,
    pub(crate) truth: Vec<f64>,
    pub(crate) results: BTreeMap<Algorithm, Candidate>,
}

impl Fitter<'_> {
    pub(crate) fn fit(
        &mut self,
        algorithm: Algorithm,
        encoded: &features::Encoded,
        rows: &[usize],
    ) -> Result<Fitted> {
        let t = Instant::now();
        let fitted = Fitted::fit(
            algorithm,
            self.dataset,
            encoded,
            rows,
            self.settings,
            self.round,
        )?;
        *self.fit_seconds.entry(algorithm).or_default() += t.elapsed().as_secs_f64();
        Ok(fitted)
    }

    /// Model selection: every candidate on every fold of the sample,
    /// encodings fitted on the fold's training rows. Each candidate's RMSE per fold.
    pub(crate) fn cross_validate(
        &mut self,
        folds: &[(Vec<usize>, Vec<usize>)],
        progress: &contract::progress::Progress,
    ) -> Result<BTreeMap<Algorithm, Vec<f64>>> {
        let mut cv: BTreeMap<Algorithm, Vec<f64>> = BTreeMap::new();
        for (i, (fit_rows, held_rows)) in folds.iter().enumerate() {
            progress.set_phase(&format!("model selection, fold {}/{}", i + 1, folds.len()));
            let encoding = Encoding::fit(self.data, self.dataset, fit_rows);
            let encoded = encoding.encode(self.data);
            let truth = self.data.target_of(held_rows);
            for &algorithm in self.candidates {
                let fitted = self.fit(algorithm, &encoded, fit_rows)?;
                let predicted = fitted.predict(self.dataset, &encoded, held_rows)?;
                cv.entry(algorithm)
                    .or_default()
                    .push(evaluate(&truth, &predicted, self.dataset.tolerance()).rmse);
            }
        }
        Ok(cv)
    }

    /// Final fits on all training rows, metrics on the held-out rows. Every
    /// candidate is refitted so each is reported beside the chosen one: the
    /// one with the lowest mean RMSE over the folds. `encoding` was fitted
    /// on `train_rows`; `gbm` is LightGBM already fitted on them (the head's).
    pub(crate) fn final_fits(
        &mut self,
        mut cv: BTreeMap<Algorithm, Vec<f64>>,
        encoding: Encoding,
        mut gbm: Option<Fitted>,
        train_rows: &[usize],
        test_rows: &[usize],
    ) -> Result<Chosen> {
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let chosen = *cv
            .iter()
            .min_by(|a, b| mean(a.1).total_cmp(&mean(b.1)))
            .map(|(a, _)| a)
            .context("no candidate")?;
        let encoded = encoding.encode(self.data);
        let truth = self.data.target_of(test_rows);
        let mut results = BTreeMap::new();
        let mut chosen_fit = None;
        let mut chosen_pred = Vec::new();
        for &algorithm in self.candidates {
            let fitted = match gbm.take() {
                Some(fitted) if algorithm == Algorithm::Lightgbm => fitted,
                other => {
                    gbm = other;
                    self.fit(algorithm, &encoded, train_rows)?
                }
            };
            let predicted = fitted.predict(self.dataset, &encoded, test_rows)?;
            let folds_rmse = cv.remove(&algorithm).unwrap_or_default();
            results.insert(
                algorithm,
                Candidate {
                    cv_rmse: mean(&folds_rmse),
                    cv_rmse_per_fold: folds_rmse,
                    test: evaluate(&truth, &predicted, self.dataset.tolerance()),
                },
            );
            if algorithm == chosen {
                chosen_fit = Some(fitted);
                chosen_pred = predicted;
            }
        }
        Ok(Chosen {
            fitted: chosen_fit.context("the chosen model was not fitted")?,
            encoding,
            predicted: chosen_pred,
            truth,
            results,
        })
    }
}

impl Chosen {
    /// Each LightGBM feature's share of the total gain, when the chosen model has gains.
    pub(crate) fn importance_shares(&self) -> Option<Vec<(String, f64)>> {
        self.fitted.importance().map(|gains| {
            let total: f64 = gains.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            self.encoding
                .gbm_feature_names()
                .into_iter()
                .zip(gains)
                .map(|(f, g)| (f, g / total))
                .collect()
        })
    }
}
