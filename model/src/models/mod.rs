//! The candidates: baselines, ridge, LightGBM. Each is fitted on given rows
//! and predicts given rows; all are saved the same way in model.json.

pub mod baseline;
mod gbm;
pub mod lightgbm;
pub mod ridge;

use anyhow::{Context, Result};
use contract::Dataset;
use contract::columns::{ACTION_TYPE, MODEL, PREDICTION, PROVIDER};
use serde::{Deserialize, Serialize};

pub use self::baseline::GroupMean;
pub use self::lightgbm::Settings as GbmSettings;
use crate::features::Encoded;
pub use contract::reports::Algorithm;

/// The candidates fitted and compared for a dataset.
pub fn candidates(dataset: Dataset) -> Vec<Algorithm> {
    match dataset {
        Dataset::Quality | Dataset::Csat => vec![
            Algorithm::MeanBaseline,
            Algorithm::ProviderModelBaseline,
            Algorithm::ActionTypeBaseline,
            Algorithm::Ridge,
            Algorithm::Lightgbm,
        ],
        Dataset::Performance => vec![
            Algorithm::MeanBaseline,
            Algorithm::PredictionBaseline,
            Algorithm::Ridge,
            Algorithm::Lightgbm,
        ],
    }
}

/// A fitted model's parameters, as model.json keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Params {
    Mean {
        mean: f64,
    },
    /// The training mean per group of `by`; unseen or null groups get `fallback`.
    Group {
        by: Vec<String>,
        groups: Vec<GroupMean>,
        fallback: f64,
    },
    Prediction,
    Ridge {
        lambda: f64,
        intercept: f64,
        coefficients: Vec<f64>,
    },
    Lightgbm {
        settings: GbmSettings,
        feature_names: Vec<String>,
    },
}

pub struct Fitted {
    pub algorithm: Algorithm,
    pub params: Params,
    /// LightGBM's model text, for Lightgbm.
    pub model_text: Option<String>,
    booster: Option<lightgbm3::Booster>,
    /// Threads LightGBM predicts on: the fit's own when just trained (train
    /// runs models side by side), every core when loaded to predict.
    predict_threads: usize,
}

/// Positions of categorical features by name.
fn categorical_indices(dataset: Dataset, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|name| {
            dataset
                .categorical_features()
                .iter()
                .position(|c| c == name)
                .with_context(|| format!("`{name}` is not a categorical feature of {dataset}"))
        })
        .collect()
}

fn prediction_column(dataset: Dataset) -> Option<usize> {
    dataset
        .numeric_features()
        .iter()
        .position(|c| *c == PREDICTION)
}

/// Rows LightGBM predicts at a time.
const PREDICT_BLOCK_ROWS: usize = 65_536;

impl Fitted {
    pub fn fit(
        algorithm: Algorithm,
        dataset: Dataset,
        encoded: &Encoded,
        rows: &[usize],
        settings: &GbmSettings,
        on_round: &dyn Fn(),
    ) -> Result<Self> {
        let y = encoded.data.target_of(rows);
        let mean = baseline::mean(&y);
        let encoding = encoded.encoding;
        let params = match algorithm {
            Algorithm::MeanBaseline => Params::Mean { mean },
            Algorithm::PredictionBaseline => Params::Prediction,
            Algorithm::ProviderModelBaseline | Algorithm::ActionTypeBaseline => {
                let by: Vec<String> = match algorithm {
                    Algorithm::ProviderModelBaseline => vec![PROVIDER.into(), MODEL.into()],
                    _ => vec![ACTION_TYPE.into()],
                };
                let groups =
                    baseline::fit_groups(encoded, &categorical_indices(dataset, &by)?, rows, &y);
                Params::Group {
                    by,
                    groups,
                    fallback: mean,
                }
            }
            Algorithm::Ridge => {
                let (intercept, coefficients) =
                    ridge::fit(encoding.ridge_width(), rows, &y, ridge::LAMBDA, |r, out| {
                        encoded.ridge_row(r, out)
                    })?;
                Params::Ridge {
                    lambda: ridge::LAMBDA,
                    intercept,
                    coefficients,
                }
            }
            Algorithm::Lightgbm => {
                let names = encoding.gbm_feature_names();
                // A block of rows at a time: the float matrix is never whole.
                let block = |at: &[usize]| {
                    encoded.gbm_matrix(&at.iter().map(|&i| rows[i]).collect::<Vec<_>>())
                };
                // LightGBM's labels are f32: the f64 copy goes before its dataset is built.
                let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
                drop(y);
                let text = lightgbm::fit(
                    &block,
                    &labels,
                    names.len(),
                    &encoding.gbm_categorical_indices(),
                    settings,
                    on_round,
                )?;
                let booster = lightgbm::load(&text)?;
                return Ok(Self {
                    algorithm,
                    params: Params::Lightgbm {
                        settings: settings.clone(),
                        feature_names: names,
                    },
                    model_text: Some(text),
                    booster: Some(booster),
                    predict_threads: settings.threads.max(1),
                });
            }
        };
        Ok(Self {
            algorithm,
            params,
            model_text: None,
            booster: None,
            predict_threads: 1,
        })
    }

    /// Rebuilds a fitted model from model.json (and LightGBM's text).
    pub fn load(algorithm: Algorithm, params: Params, model_text: Option<String>) -> Result<Self> {
        let booster = match &model_text {
            Some(text) if algorithm == Algorithm::Lightgbm => Some(lightgbm::load(text)?),
            _ => None,
        };
        Ok(Self {
            algorithm,
            params,
            model_text,
            booster,
            predict_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// At most this many threads per prediction call (a service that already
    /// answers requests on every core wants 1).
    pub fn with_predict_threads(mut self, threads: usize) -> Self {
        self.predict_threads = threads.max(1);
        self
    }

    pub fn predict(&self, dataset: Dataset, encoded: &Encoded, rows: &[usize]) -> Result<Vec<f64>> {
        Ok(match &self.params {
            Params::Mean { mean } => vec![*mean; rows.len()],
            Params::Prediction => {
                let col =
                    prediction_column(dataset).context("no prediction column in this dataset")?;
                rows.iter().map(|&r| encoded.data.numeric[col][r]).collect()
            }
            Params::Group {
                by,
                groups,
                fallback,
            } => baseline::predict_groups(
                encoded,
                &categorical_indices(dataset, by)?,
                groups,
                *fallback,
                rows,
            ),
            Params::Ridge {
                intercept,
                coefficients,
                ..
            } => ridge::predict(rows, *intercept, coefficients, |r, out| {
                encoded.ridge_row(r, out)
            }),
            Params::Lightgbm { feature_names, .. } => {
                let booster = self
                    .booster
                    .as_ref()
                    .context("LightGBM model text missing")?;
                // A block of rows at a time, as in training: the float
                // matrix of every held-out row is never whole.
                let mut predicted = Vec::with_capacity(rows.len());
                for block in rows.chunks(PREDICT_BLOCK_ROWS) {
                    predicted.extend(lightgbm::predict(
                        booster,
                        &encoded.gbm_matrix(block),
                        feature_names.len(),
                        self.predict_threads,
                    )?);
                }
                predicted
            }
        })
    }

    /// Gain importance per feature, for LightGBM.
    pub fn importance(&self) -> Option<Vec<f64>> {
        self.booster
            .as_ref()
            .and_then(|b| b.feature_importance(lightgbm3::ImportanceType::Gain).ok())
    }
}
