//! What `train` leaves in `data/models/<model>/`: model.json (features and
//! their encoding, the chosen algorithm and its parameters, every candidate's
//! metrics, seed, row counts, data hash, versions, time) and, for LightGBM,
//! its own text model file, which LightGBM in Python or any runtime can load.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use contract::{ContractError, Dataset, io};
use serde::{Deserialize, Serialize};

use crate::features::Encoding;
use crate::models::{Algorithm, Fitted, Params};
pub use contract::reports::Candidate;

pub const FORMAT: &str = "gm-training-pipeline/model-v1";
pub const MODEL_JSON: &str = "model.json";
pub const LIGHTGBM_FILE: &str = "lightgbm.txt";
pub const HOLDOUT_FILE: &str = "holdout.parquet";
/// holdout.parquet's columns beside source_table and source_id.
pub const ACTUAL: &str = "actual";
pub const PREDICTED: &str = "predicted";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: usize,
    pub rows: usize,
    /// True when CV ran on a seeded sample of the training rows.
    pub sampled: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub model: String,
    pub target: String,
    pub numeric_features: Vec<String>,
    pub categorical_features: Vec<String>,
    pub encoding: Encoding,
    pub algorithm: Algorithm,
    pub params: Params,
    pub model_file: Option<String>,
    pub seed: u64,
    pub test_fraction: f64,
    pub training_rows: usize,
    pub test_rows: usize,
    pub cross_validation: CrossValidation,
    pub candidates: BTreeMap<Algorithm, Candidate>,
    /// SHA-256 of the clean dataset file the model was trained on.
    pub data_sha256: String,
    pub data_file: String,
    pub versions: BTreeMap<String, String>,
    pub trained_at: DateTime<Utc>,
    /// Wall time of the whole model, and of the fits (CV folds included) per candidate.
    pub train_seconds: f64,
    pub fit_seconds: BTreeMap<String, f64>,
}

impl ModelCard {
    pub fn dataset(&self) -> Option<Dataset> {
        Dataset::from_name(&self.model)
    }
}

pub fn versions() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("train".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("polars".to_string(), polars::VERSION.to_string()),
        (
            "lightgbm".to_string(),
            "4 (bundled by lightgbm3 1.x)".to_string(),
        ),
    ])
}

/// Writes a model folder's files into `dir` (a staged folder that replaces
/// the model's folder when train commits).
pub fn save(
    dir: &Path,
    card: &ModelCard,
    fitted: &Fitted,
    holdout: &mut polars::prelude::DataFrame,
) -> Result<()> {
    if let Some(text) = &fitted.model_text {
        let path = dir.join(LIGHTGBM_FILE);
        io::write_atomic(&path, |w| {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .map_err(|e| ContractError::io(&path, e))
        })?;
    }
    io::write_parquet(holdout, &dir.join(HOLDOUT_FILE))?;
    io::write_json(card, &dir.join(MODEL_JSON))?;
    Ok(())
}

/// Loads a model folder written by `train`.
pub fn load(dir: &Path) -> Result<(ModelCard, Fitted)> {
    let json = dir.join(MODEL_JSON);
    if !dir.is_dir() {
        bail!("{}: no model folder here; run `train` first", dir.display());
    }
    if !json.exists() {
        bail!(
            "{}: not a model folder (no {MODEL_JSON}); run `train` first",
            dir.display()
        );
    }
    let card: ModelCard = io::read_json(&json)?;
    if card.format != FORMAT {
        bail!(
            "{}: model format `{}`, this predict reads `{FORMAT}`",
            json.display(),
            card.format
        );
    }
    let dataset = card
        .dataset()
        .with_context(|| format!("{}: unknown model `{}`", json.display(), card.model))?;
    let expected_features: Vec<String> = dataset
        .numeric_features()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if card.numeric_features != expected_features || card.target != dataset.target() {
        bail!(
            "{}: features do not match the {dataset} model of this version; retrain",
            json.display()
        );
    }
    let text = match &card.model_file {
        Some(file) => {
            let path: PathBuf = dir.join(file);
            Some(fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let fitted = Fitted::load(card.algorithm, card.params.clone(), text)
        .with_context(|| format!("loading the model in {}", dir.display()))?;
    Ok((card, fitted))
}
