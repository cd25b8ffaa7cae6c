//! The candidates: baselines, ridge, LightGBM. Each is fitted on given rows
//! and predicts given rows; all are saved the same way in model.json.

use std::collections::HashMap;

use anyhow::{Context, Result};
use contract::Dataset;
use contract::columns::{ACTION_TYPE, MODEL, PREDICTION, PROVIDER};
pub use contract::reports::Algorithm;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::features::{Data, Encoding};
use crate::gbm;

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

/// LightGBM settings, fixed and recorded in model.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GbmSettings {
    pub iterations: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    pub min_data_in_leaf: usize,
    pub seed: u64,
}

impl GbmSettings {
    pub fn new(seed: u64) -> Self {
        Self {
            iterations: 300,
            learning_rate: 0.05,
            num_leaves: 31,
            min_data_in_leaf: 20,
            seed,
        }
    }
}

pub const RIDGE_LAMBDA: f64 = 1.0;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupMean {
    /// The group's values of the `by` columns.
    pub key: Vec<String>,
    pub mean: f64,
    pub rows: usize,
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
}

fn index_of(dataset: Dataset, name: &str) -> Option<usize> {
    dataset
        .categorical_features()
        .iter()
        .position(|c| *c == name)
}

fn group_key(data: &Data, dataset: Dataset, by: &[String], row: usize) -> Option<Vec<String>> {
    by.iter()
        .map(|c| data.categorical[index_of(dataset, c)?][row].clone())
        .collect()
}

fn prediction_column(dataset: Dataset) -> Option<usize> {
    dataset
        .numeric_features()
        .iter()
        .position(|c| *c == PREDICTION)
}

impl Fitted {
    pub fn fit(
        algorithm: Algorithm,
        dataset: Dataset,
        data: &Data,
        encoding: &Encoding,
        rows: &[usize],
        settings: &GbmSettings,
    ) -> Result<Self> {
        let y = data.target_of(rows);
        let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
        let params = match algorithm {
            Algorithm::MeanBaseline => Params::Mean { mean },
            Algorithm::PredictionBaseline => Params::Prediction,
            Algorithm::ProviderModelBaseline | Algorithm::ActionTypeBaseline => {
                let by: Vec<String> = match algorithm {
                    Algorithm::ProviderModelBaseline => vec![PROVIDER.into(), MODEL.into()],
                    _ => vec![ACTION_TYPE.into()],
                };
                let mut sums: HashMap<Vec<String>, (f64, usize)> = HashMap::new();
                for (&r, &t) in rows.iter().zip(&y) {
                    if let Some(k) = group_key(data, dataset, &by, r) {
                        let e = sums.entry(k).or_insert((0.0, 0));
                        e.0 += t;
                        e.1 += 1;
                    }
                }
                let mut groups: Vec<GroupMean> = sums
                    .into_iter()
                    .map(|(key, (s, n))| GroupMean {
                        key,
                        mean: s / n as f64,
                        rows: n,
                    })
                    .collect();
                groups.sort_by(|a, b| a.key.cmp(&b.key));
                Params::Group {
                    by,
                    groups,
                    fallback: mean,
                }
            }
            Algorithm::Ridge => {
                let p = encoding.ridge_width();
                let x = encoding.ridge_matrix(data, rows);
                let mut xtx = DMatrix::<f64>::zeros(p, p);
                let mut xty = DVector::<f64>::zeros(p);
                let mut col_mean = vec![0.0; p];
                for row in x.chunks_exact(p) {
                    for (m, v) in col_mean.iter_mut().zip(row) {
                        *m += v;
                    }
                }
                let n = rows.len().max(1) as f64;
                col_mean.iter_mut().for_each(|m| *m /= n);
                // Centre columns and target so the intercept is not penalised.
                let mut centred = vec![0.0; p];
                for (row, &t) in x.chunks_exact(p).zip(&y) {
                    for ((c, v), m) in centred.iter_mut().zip(row).zip(&col_mean) {
                        *c = v - m;
                    }
                    let yt = t - mean;
                    for (i, &ci) in centred.iter().enumerate() {
                        if ci == 0.0 {
                            continue;
                        }
                        xty[i] += ci * yt;
                        for (j, &cj) in centred.iter().enumerate().skip(i) {
                            xtx[(i, j)] += ci * cj;
                        }
                    }
                }
                xtx.fill_lower_triangle_with_upper_triangle();
                for i in 0..p {
                    xtx[(i, i)] += RIDGE_LAMBDA;
                }
                let coefficients: Vec<f64> = xtx
                    .cholesky()
                    .context("ridge: the normal equations are not positive definite")?
                    .solve(&xty)
                    .iter()
                    .copied()
                    .collect();
                let intercept = mean
                    - coefficients
                        .iter()
                        .zip(&col_mean)
                        .map(|(b, m)| b * m)
                        .sum::<f64>();
                Params::Ridge {
                    lambda: RIDGE_LAMBDA,
                    intercept,
                    coefficients,
                }
            }
            Algorithm::Lightgbm => {
                let x = encoding.gbm_matrix(data, rows);
                let width = encoding.gbm_feature_names().len();
                let cats: Vec<String> = encoding
                    .gbm_categorical_indices()
                    .iter()
                    .map(|i| i.to_string())
                    .collect();
                let dataset_params = format!(
                    "categorical_feature={} max_bin=255 verbosity=-1 data_random_seed={}",
                    cats.join(","),
                    settings.seed
                );
                let booster_params = format!(
                    "objective=regression learning_rate={} num_leaves={} min_data_in_leaf={} \
                     seed={} deterministic=true force_row_wise=true verbosity=-1",
                    settings.learning_rate,
                    settings.num_leaves,
                    settings.min_data_in_leaf,
                    settings.seed
                );
                let text = gbm::train(
                    &x,
                    &y,
                    width,
                    &dataset_params,
                    &booster_params,
                    settings.iterations,
                )?;
                let booster =
                    lightgbm3::Booster::from_string(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
                return Ok(Self {
                    algorithm,
                    params: Params::Lightgbm {
                        settings: settings.clone(),
                        feature_names: encoding.gbm_feature_names(),
                    },
                    model_text: Some(text),
                    booster: Some(booster),
                });
            }
        };
        Ok(Self {
            algorithm,
            params,
            model_text: None,
            booster: None,
        })
    }

    /// Rebuilds a fitted model from model.json (and LightGBM's text).
    pub fn load(algorithm: Algorithm, params: Params, model_text: Option<String>) -> Result<Self> {
        let booster = match &model_text {
            Some(text) if algorithm == Algorithm::Lightgbm => {
                Some(lightgbm3::Booster::from_string(text).map_err(|e| anyhow::anyhow!("{e}"))?)
            }
            _ => None,
        };
        Ok(Self {
            algorithm,
            params,
            model_text,
            booster,
        })
    }

    pub fn predict(
        &self,
        dataset: Dataset,
        data: &Data,
        encoding: &Encoding,
        rows: &[usize],
    ) -> Result<Vec<f64>> {
        Ok(match &self.params {
            Params::Mean { mean } => vec![*mean; rows.len()],
            Params::Prediction => {
                let col =
                    prediction_column(dataset).context("no prediction column in this dataset")?;
                rows.iter().map(|&r| data.numeric[col][r]).collect()
            }
            Params::Group {
                by,
                groups,
                fallback,
            } => {
                let table: HashMap<&[String], f64> =
                    groups.iter().map(|g| (g.key.as_slice(), g.mean)).collect();
                rows.iter()
                    .map(|&r| {
                        group_key(data, dataset, by, r)
                            .and_then(|k| table.get(k.as_slice()).copied())
                            .unwrap_or(*fallback)
                    })
                    .collect()
            }
            Params::Ridge {
                intercept,
                coefficients,
                ..
            } => {
                let p = coefficients.len();
                encoding
                    .ridge_matrix(data, rows)
                    .chunks_exact(p)
                    .map(|row| {
                        intercept
                            + row
                                .iter()
                                .zip(coefficients)
                                .map(|(x, b)| x * b)
                                .sum::<f64>()
                    })
                    .collect()
            }
            Params::Lightgbm { .. } => {
                let booster = self
                    .booster
                    .as_ref()
                    .context("LightGBM model text missing")?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let x = encoding.gbm_matrix(data, rows);
                let width = encoding.gbm_feature_names().len();
                booster
                    .predict(&x, width as i32, true)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
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
