//! From a dataset frame to model inputs, built once per dataset: numeric
//! columns as f64 (NaN for null) and categorical columns as integer codes into
//! the dataset's sorted levels. Encodings are fitted on training rows only
//! (numeric means and deviations for ridge, the levels seen in training for
//! both ridge's one-hot columns and LightGBM's categorical codes); an unseen
//! or null category is missing.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, bail};
use contract::{Dataset, rules};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// The code of a null category, in data and in training codes alike.
pub const MISSING: u32 = u32::MAX;

/// One categorical column: its distinct values, sorted, and a code per row.
pub struct Categorical {
    pub levels: Vec<String>,
    pub codes: Vec<u32>,
}

impl Categorical {
    /// From a column's values in row order (None for null).
    pub fn from_values<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut builder = CategoricalBuilder::default();
        builder.extend(values);
        builder.finish()
    }

    /// The value of a row, for messages and group keys.
    pub fn value(&self, row: usize) -> Option<&str> {
        let code = self.codes[row];
        (code != MISSING).then(|| self.levels[code as usize].as_str())
    }
}

/// A categorical column built batch by batch: codes in order of first
/// appearance, renumbered in sorted level order by [`CategoricalBuilder::finish`].
#[derive(Default)]
pub struct CategoricalBuilder {
    index: HashMap<String, u32>,
    first_seen: Vec<String>,
    codes: Vec<u32>,
}

impl CategoricalBuilder {
    pub fn extend<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) {
        let Self {
            index,
            first_seen,
            codes,
        } = self;
        codes.extend(values.into_iter().map(|v| match v {
            None => MISSING,
            Some(s) => match index.get(s) {
                Some(&code) => code,
                None => {
                    let code = first_seen.len() as u32;
                    index.insert(s.to_string(), code);
                    first_seen.push(s.to_string());
                    code
                }
            },
        }));
    }

    /// Codes in sorted level order, so they do not depend on row order.
    pub fn finish(self) -> Categorical {
        let first_seen = self.first_seen;
        let mut order: Vec<u32> = (0..first_seen.len() as u32).collect();
        order.sort_by(|&a, &b| first_seen[a as usize].cmp(&first_seen[b as usize]));
        let mut remap = vec![0u32; order.len()];
        for (sorted, &old) in order.iter().enumerate() {
            remap[old as usize] = sorted as u32;
        }
        let mut codes = self.codes;
        for c in &mut codes {
            if *c != MISSING {
                *c = remap[*c as usize];
            }
        }
        let mut levels = first_seen;
        let by_code: Vec<String> = order
            .iter()
            .map(|&i| std::mem::take(&mut levels[i as usize]))
            .collect();
        Categorical {
            levels: by_code,
            codes,
        }
    }
}

/// A dataset's model inputs, column by column.
pub struct Data {
    pub rows: usize,
    /// Per numeric feature, NaN for null.
    pub numeric: Vec<Vec<f64>>,
    /// Per categorical feature.
    pub categorical: Vec<Categorical>,
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
        let mut builder = DataBuilder::new(dataset, with_target, origin);
        builder.push(df)?;
        Ok(builder.finish())
    }

    pub fn target_of(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&r| self.target[r]).collect()
    }

    /// The first row (and its first feature) holding a number outside the
    /// range validate accepts (`contract::rules`), so outside every row the
    /// model was trained on: serve and `predict` refuse to ask the model
    /// about it. An infinite value is outside every range; NaN is null.
    pub fn first_out_of_range(&self, dataset: Dataset) -> Option<OutOfRange> {
        // The first of the earliest row: `out_of_range` goes feature by feature.
        self.out_of_range(dataset).into_iter().min_by_key(|o| o.row)
    }

    /// Every value outside the range validate accepts, feature by feature
    /// in the dataset's order, each feature's in row order.
    pub fn out_of_range(&self, dataset: Dataset) -> Vec<OutOfRange> {
        let mut found = Vec::new();
        for (&column, values) in dataset.numeric_features().iter().zip(&self.numeric) {
            let Some((min, max)) = rules::range_of(dataset, column) else {
                continue;
            };
            for (row, &value) in values.iter().enumerate() {
                if !value.is_nan() && !(min..=max).contains(&value) {
                    found.push(OutOfRange {
                        row,
                        column,
                        value,
                        range: rules::describe_range(min, max),
                        dataset,
                    });
                }
            }
        }
        found
    }
}

/// A feature value outside the range the model was trained on.
#[derive(Debug)]
pub struct OutOfRange {
    /// The row, counted from 0.
    pub row: usize,
    pub column: &'static str,
    pub value: f64,
    /// As a message says it: `0 to 1`, `0 or more`.
    pub range: String,
    dataset: Dataset,
}

impl OutOfRange {
    /// `1.7 is outside the range the csat model was trained on (0 to 1)`.
    pub fn problem(&self) -> String {
        format!(
            "{} is outside the range the {} model was trained on ({})",
            self.value, self.dataset, self.range
        )
    }
}

/// A [`Data`] built from a dataset's rows a batch (frame) at a time, so a
/// file is never held whole: only its numbers and codes grow.
pub struct DataBuilder<'a> {
    dataset: Dataset,
    with_target: bool,
    origin: &'a Path,
    rows: usize,
    numeric: Vec<Vec<f64>>,
    categorical: Vec<CategoricalBuilder>,
    target: Vec<f64>,
}

impl<'a> DataBuilder<'a> {
    pub fn new(dataset: Dataset, with_target: bool, origin: &'a Path) -> Self {
        Self::with_capacity(dataset, with_target, origin, 0)
    }

    /// A builder with room for `rows` rows: every column is allocated once
    /// (grown by doubling, a column of 20M rows held up to 1.7 times its size).
    pub fn with_capacity(
        dataset: Dataset,
        with_target: bool,
        origin: &'a Path,
        rows: usize,
    ) -> Self {
        Self {
            dataset,
            with_target,
            origin,
            rows: 0,
            numeric: (0..dataset.numeric_features().len())
                .map(|_| Vec::with_capacity(rows))
                .collect(),
            categorical: (0..dataset.categorical_features().len())
                .map(|_| CategoricalBuilder {
                    codes: Vec::with_capacity(rows),
                    ..CategoricalBuilder::default()
                })
                .collect(),
            target: Vec::with_capacity(if with_target { rows } else { 0 }),
        }
    }

    /// Appends a frame's rows; a missing column or one of the wrong type is
    /// an error naming it.
    pub fn push(&mut self, df: &DataFrame) -> Result<()> {
        let (dataset, origin) = (self.dataset, self.origin);
        let column = |name: &str| -> Result<&Column> {
            df.column(name).map_err(|_| {
                anyhow::anyhow!(
                    "{}: missing column `{name}` (the {dataset} model needs it)",
                    origin.display()
                )
            })
        };
        let numeric_column = |name: &str, into: &mut Vec<f64>| -> Result<()> {
            let c = column(name)?;
            if !(c.dtype().is_primitive_numeric() || c.dtype() == &DataType::Null) {
                bail!(
                    "{}: column `{name}` has type {}, expected a number",
                    origin.display(),
                    c.dtype()
                );
            }
            let c = c.cast(&DataType::Float64)?;
            into.extend(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)));
            Ok(())
        };
        for (name, into) in dataset.numeric_features().iter().zip(&mut self.numeric) {
            numeric_column(name, into)?;
        }
        for (name, into) in dataset
            .categorical_features()
            .iter()
            .zip(&mut self.categorical)
        {
            let c = column(name)?;
            if !matches!(c.dtype(), DataType::String | DataType::Null) {
                bail!(
                    "{}: column `{name}` has type {}, expected text",
                    origin.display(),
                    c.dtype()
                );
            }
            let c = c.cast(&DataType::String)?;
            into.extend(c.str()?.iter());
        }
        if self.with_target {
            numeric_column(dataset.target(), &mut self.target)?;
        }
        self.rows += df.height();
        Ok(())
    }

    pub fn finish(self) -> Data {
        Data {
            rows: self.rows,
            numeric: self.numeric,
            categorical: self
                .categorical
                .into_iter()
                .map(CategoricalBuilder::finish)
                .collect(),
            target: self.target,
        }
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

/// What is fitted on the training rows and saved in model.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Encoding {
    pub numeric: Vec<NumericEncoding>,
    pub categorical: Vec<CategoricalEncoding>,
}

/// An encoding applied to one `Data`: per categorical feature, the training
/// code of each of the data's levels (or MISSING), so a row's code is one
/// array lookup.
pub struct Encoded<'a> {
    pub encoding: &'a Encoding,
    pub data: &'a Data,
    lookup: Vec<Vec<u32>>,
}

impl Encoding {
    pub fn fit(data: &Data, dataset: Dataset, rows: &[usize]) -> Self {
        let numeric = dataset
            .numeric_features()
            .iter()
            .zip(&data.numeric)
            .map(|(name, values)| {
                let (mut n, mut sum) = (0usize, 0.0);
                for &r in rows {
                    let v = values[r];
                    if v.is_finite() {
                        n += 1;
                        sum += v;
                    }
                }
                let mean = if n == 0 { 0.0 } else { sum / n as f64 };
                let var = rows
                    .iter()
                    .map(|&r| values[r])
                    .filter(|v| v.is_finite())
                    .map(|v| (v - mean) * (v - mean))
                    .sum::<f64>()
                    / n.max(1) as f64;
                NumericEncoding {
                    name: (*name).to_string(),
                    mean,
                    std: if var > 0.0 { var.sqrt() } else { 1.0 },
                    has_missing: n < rows.len(),
                }
            })
            .collect();
        let categorical = dataset
            .categorical_features()
            .iter()
            .zip(&data.categorical)
            .map(|(name, column)| {
                let mut seen = vec![false; column.levels.len()];
                for &r in rows {
                    let code = column.codes[r];
                    if code != MISSING {
                        seen[code as usize] = true;
                    }
                }
                CategoricalEncoding {
                    name: (*name).to_string(),
                    levels: column
                        .levels
                        .iter()
                        .zip(seen)
                        .filter(|(_, s)| *s)
                        .map(|(l, _)| l.clone())
                        .collect(),
                }
            })
            .collect();
        Self {
            numeric,
            categorical,
        }
    }

    /// Binds the encoding to a dataset's levels.
    pub fn encode<'a>(&'a self, data: &'a Data) -> Encoded<'a> {
        let lookup = self
            .categorical
            .iter()
            .zip(&data.categorical)
            .map(|(enc, column)| {
                let index: HashMap<&str, u32> = enc
                    .levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i as u32))
                    .collect();
                column
                    .levels
                    .iter()
                    .map(|l| index.get(l.as_str()).copied().unwrap_or(MISSING))
                    .collect()
            })
            .collect();
        Encoded {
            encoding: self,
            data,
            lookup,
        }
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
}

impl Encoded<'_> {
    /// The training code of categorical feature `feature` at `row`, or MISSING.
    pub fn code(&self, feature: usize, row: usize) -> u32 {
        let code = self.data.categorical[feature].codes[row];
        if code == MISSING {
            MISSING
        } else {
            self.lookup[feature][code as usize]
        }
    }

    /// Row-major LightGBM matrix: raw numerics (NaN missing), category codes.
    pub fn gbm_matrix(&self, rows: &[usize]) -> Vec<f64> {
        let width = self.encoding.numeric.len() + self.encoding.categorical.len();
        let mut x = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            for values in &self.data.numeric {
                x.push(values[r]);
            }
            for f in 0..self.lookup.len() {
                let code = self.code(f, r);
                x.push(if code == MISSING {
                    f64::NAN
                } else {
                    f64::from(code)
                });
            }
        }
        x
    }

    /// Ridge's row: standardised numerics (missing = 0, the mean, plus an
    /// indicator), one-hot categories (unseen = all zeros), into `out`, which
    /// holds `ridge_width()` values.
    pub fn ridge_row(&self, row: usize, out: &mut [f64]) {
        out.fill(0.0);
        let mut at = 0;
        for (enc, values) in self.encoding.numeric.iter().zip(&self.data.numeric) {
            let v = values[row];
            let present = v.is_finite();
            if present {
                out[at] = (v - enc.mean) / enc.std;
            }
            at += 1;
            if enc.has_missing {
                out[at] = if present { 0.0 } else { 1.0 };
                at += 1;
            }
        }
        for (f, enc) in self.encoding.categorical.iter().enumerate() {
            let code = self.code(f, row);
            if code != MISSING {
                out[at + code as usize] = 1.0;
            }
            at += enc.levels.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_sorted_levels_and_training_rows_only() {
        let df = df!(
            "provider" => [Some("b"), Some("a"), None, Some("c"), Some("a")],
            "model" => ["m", "m", "m", "m", "m"],
            "action_type" => ["x", "x", "y", "x", "x"],
            "code_quality" => [1.0, 2.0, 3.0, 4.0, 5.0],
            "test_coverage" => [1.0; 5], "security" => [1.0; 5], "performance" => [1.0; 5],
            "maintainability" => [1.0; 5], "complexity" => [1.0; 5],
            "csat" => [Some(0.5), None, Some(0.7), None, None],
            "quality_score" => [10.0, 20.0, 30.0, 40.0, 50.0],
        )
        .unwrap();
        let data = Data::from_frame(&df, Dataset::Quality, true, Path::new("t")).unwrap();
        assert_eq!(data.categorical[0].levels, ["a", "b", "c"]);
        assert_eq!(data.categorical[0].codes, [1, 0, MISSING, 2, 0]);
        // Fitted on rows 0-2: "c" is unseen, so missing at row 3.
        let enc = Encoding::fit(&data, Dataset::Quality, &[0, 1, 2]);
        assert_eq!(enc.categorical[0].levels, ["a", "b"]);
        assert!(enc.numeric[6].has_missing);
        let e = enc.encode(&data);
        assert_eq!(
            (0..5).map(|r| e.code(0, r)).collect::<Vec<_>>(),
            [1, 0, MISSING, MISSING, 0]
        );
        let x = e.gbm_matrix(&[3]);
        assert_eq!(x.len(), 10);
        assert!(x[7].is_nan(), "unseen level is missing for LightGBM");
    }
}
