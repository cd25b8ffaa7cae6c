//! What `train` leaves in a model version folder
//! (`data/models/versions/<model>/<version>/`, see `contract::registry`):
//! model.json (features and their encoding, the chosen algorithm and its
//! parameters, every candidate's metrics, lineage: run, data window, row
//! counts, data hash, seed, program versions, time), the held-out rows with
//! their predictions, the training data's profile for drift and, for
//! LightGBM, its own text model file, which LightGBM in Python or any runtime
//! can load.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use contract::drift::Profile;
use contract::registry::{self, Version, files};
pub use contract::registry::{CrossValidation, Lineage};
use contract::{ContractError, Dataset, io};
use serde::{Deserialize, Serialize};

use crate::features::Encoding;
use crate::models::{Algorithm, Fitted, Params};
pub use contract::reports::Candidate;

pub use contract::registry::MODEL_FORMAT as FORMAT;
/// Cards of the layout before versions: the same fields, no lineage.
const FORMAT_V1: &str = "gm-training-pipeline/model-v1";
pub use files::{
    ACTUAL, HOLDOUT as HOLDOUT_FILE, LIGHTGBM as LIGHTGBM_FILE, MODEL_JSON, PREDICTED,
};

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
    pub fit_seconds: BTreeMap<Algorithm, f64>,
    /// None for a model of the layout before versions.
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub lineage: Lineage,
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
    profile: &Profile,
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
    io::write_json(profile, &dir.join(files::PROFILE))?;
    io::write_json(card, &dir.join(MODEL_JSON))?;
    Ok(())
}

/// Loads a model written by `train`: a champion (`data/models/<model>`,
/// resolved once to its version folder, so every file comes from one
/// version) or a version folder.
pub fn load(dir: &Path) -> Result<(ModelCard, Fitted)> {
    if !dir.exists() {
        bail!("{}: no model folder here; run `train` first", dir.display());
    }
    let dir = &registry::resolve(dir)?;
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
    if card.format != FORMAT && card.format != FORMAT_V1 {
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
