//! From a dataset frame to model inputs. Encodings are fitted on training rows
//! only: numeric means and deviations for ridge, category levels for both
//! ridge (one-hot) and LightGBM (integer codes as categorical features).
//! A null stays missing: NaN for LightGBM, the training mean plus a missing
//! indicator for ridge; an unseen category is missing too.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, bail};
use contract::Dataset;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// A dataset's model inputs, column by column.
pub struct Data {
    pub rows: usize,
    /// Per numeric feature, NaN for null.
    pub numeric: Vec<Vec<f64>>,
    /// Per categorical feature.
    pub categorical: Vec<Vec<Option<String>>>,
    /// The target; empty when the input has none (prediction).
    pub target: Vec<f64>,
}

impl Data {
    /// Takes the features (and the target when `with_target`) out of a frame;
    /// a missing column or one of the wrong type is an error naming it.
    pub fn from_frame(
        df: &DataFrame,
        dataset: Dataset,
        with_target: bool,
        origin: &Path,
    ) -> Result<Self> {
        let numeric_column = |name: &str| -> Result<Vec<f64>> {
            let Ok(c) = df.column(name) else {
                bail!(
                    "{}: missing column `{name}` (the {dataset} model needs it)",
                    origin.display()
                );
            };
            if !(c.dtype().is_primitive_numeric() || c.dtype() == &DataType::Null) {
                bail!(
                    "{}: column `{name}` has type {}, expected a number",
                    origin.display(),
                    c.dtype()
                );
            }
            let c = c.cast(&DataType::Float64)?;
            Ok(c.f64()?
                .into_iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect())
        };
        let numeric = dataset
            .numeric_features()
            .iter()
            .map(|n| numeric_column(n))
            .collect::<Result<Vec<_>>>()?;
        let mut categorical = Vec::new();
        for name in dataset.categorical_features() {
            let Ok(c) = df.column(name) else {
                bail!(
                    "{}: missing column `{name}` (the {dataset} model needs it)",
                    origin.display()
                );
            };
            if !matches!(c.dtype(), DataType::String | DataType::Null) {
                bail!(
                    "{}: column `{name}` has type {}, expected text",
                    origin.display(),
                    c.dtype()
                );
            }
            let c = c.cast(&DataType::String)?;
            categorical.push(
                c.str()?
                    .into_iter()
                    .map(|v| v.map(str::to_string))
                    .collect(),
            );
        }
        let target = if with_target {
            numeric_column(dataset.target())?
        } else {
            Vec::new()
        };
        Ok(Self {
            rows: df.height(),
            numeric,
            categorical,
            target,
        })
    }

    pub fn target_of(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&r| self.target[r]).collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NumericEncoding {
    pub name: String,
    pub mean: f64,
    pub std: f64,
    /// Training rows had nulls: ridge gets a missing indicator.
    pub has_missing: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CategoricalEncoding {
    pub name: String,
    /// Levels seen in training, in code order.
    pub levels: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Encoding {
    pub numeric: Vec<NumericEncoding>,
    pub categorical: Vec<CategoricalEncoding>,
}

impl Encoding {
    pub fn fit(data: &Data, dataset: Dataset, rows: &[usize]) -> Self {
        let numeric = dataset
            .numeric_features()
            .iter()
            .zip(&data.numeric)
            .map(|(name, values)| {
                let present: Vec<f64> = rows
                    .iter()
                    .map(|&r| values[r])
                    .filter(|v| v.is_finite())
                    .collect();
                let n = present.len().max(1) as f64;
                let mean = present.iter().sum::<f64>() / n;
                let var = present.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                NumericEncoding {
                    name: (*name).to_string(),
                    mean: if present.is_empty() { 0.0 } else { mean },
                    std: if var > 0.0 { var.sqrt() } else { 1.0 },
                    has_missing: present.len() < rows.len(),
                }
            })
            .collect();
        let categorical = dataset
            .categorical_features()
            .iter()
            .zip(&data.categorical)
            .map(|(name, values)| {
                let mut levels: Vec<String> =
                    rows.iter().filter_map(|&r| values[r].clone()).collect();
                levels.sort();
                levels.dedup();
                CategoricalEncoding {
                    name: (*name).to_string(),
                    levels,
                }
            })
            .collect();
        Self {
            numeric,
            categorical,
        }
    }

    fn codes(&self, data: &Data) -> Vec<Vec<Option<usize>>> {
        self.categorical
            .iter()
            .zip(&data.categorical)
            .map(|(enc, values)| {
                let index: HashMap<&str, usize> = enc
                    .levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect();
                values
                    .iter()
                    .map(|v| v.as_deref().and_then(|s| index.get(s).copied()))
                    .collect()
            })
            .collect()
    }

    /// Feature names of the LightGBM matrix; the categoricals come last.
    pub fn gbm_feature_names(&self) -> Vec<String> {
        self.numeric
            .iter()
            .map(|n| n.name.clone())
            .chain(self.categorical.iter().map(|c| c.name.clone()))
            .collect()
    }

    /// Indices of the categorical columns in the LightGBM matrix.
    pub fn gbm_categorical_indices(&self) -> Vec<usize> {
        (self.numeric.len()..self.numeric.len() + self.categorical.len()).collect()
    }

    /// Row-major LightGBM matrix: raw numerics (NaN missing), category codes.
    pub fn gbm_matrix(&self, data: &Data, rows: &[usize]) -> Vec<f64> {
        let codes = self.codes(data);
        let width = self.numeric.len() + self.categorical.len();
        let mut x = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            for values in &data.numeric {
                x.push(values[r]);
            }
            for c in &codes {
                x.push(c[r].map_or(f64::NAN, |code| code as f64));
            }
        }
        x
    }

    pub fn ridge_width(&self) -> usize {
        self.numeric
            .iter()
            .map(|n| 1 + usize::from(n.has_missing))
            .sum::<usize>()
            + self
                .categorical
                .iter()
                .map(|c| c.levels.len())
                .sum::<usize>()
    }

    /// Row-major ridge matrix: standardised numerics (missing = 0, the mean,
    /// plus an indicator), one-hot categories (unseen = all zeros).
    pub fn ridge_matrix(&self, data: &Data, rows: &[usize]) -> Vec<f64> {
        let codes = self.codes(data);
        let width = self.ridge_width();
        let mut x = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            for (enc, values) in self.numeric.iter().zip(&data.numeric) {
                let v = values[r];
                let present = v.is_finite();
                x.push(if present {
                    (v - enc.mean) / enc.std
                } else {
                    0.0
                });
                if enc.has_missing {
                    x.push(if present { 0.0 } else { 1.0 });
                }
            }
            for (enc, c) in self.categorical.iter().zip(&codes) {
                let start = x.len();
                x.extend(std::iter::repeat_n(0.0, enc.levels.len()));
                if let Some(code) = c[r] {
                    x[start + code] = 1.0;
                }
            }
        }
        x
    }
}
