//! Retention: the versions of the newest `--keep` distinct models stay, and
//! the champion whatever its age; older versions are removed with the run's
//! commit, so disk use stays bounded.
//!
//! Distinct: a retrain on unchanged clean data with an unchanged program
//! gives the same model, byte for byte (the same seed, the same LightGBM
//! threads). Counted version by version, a week of daily retrains on a quiet
//! game would fill the kept versions with copies of one model and remove
//! every earlier one, the versions a rollback needs. So copies count once:
//! of a model made again, the first version that made it stays (the name
//! the history and the report use for it), and so do this run's version and
//! the champion; the copies in between go.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use contract::commit::Commit;
use contract::registry::{self, Version};
use contract::{Dataset, Layout};
use sha2::{Digest, Sha256};

use crate::artifact::{self, ModelCard};

/// Stages the removal of every version of `dataset` beyond the newest
/// `keep` distinct models (counting `new`, the one this run made and staged
/// in `new_dir`), never `new` nor `champion`. Returns the versions removed
/// as copies, each with the first version of the same model, which stays.
pub fn prune(
    commit: &mut Commit,
    layout: &Layout,
    dataset: Dataset,
    (new, new_dir): (Version, &Path),
    champion: Option<Version>,
    keep: u32,
) -> Result<Vec<(Version, Version)>> {
    let mut all = registry::versions(layout, dataset)?;
    all.push(new);
    all.sort_unstable();
    all.dedup();
    let dir = |v: Version| {
        if v == new {
            new_dir.to_path_buf()
        } else {
            layout.version_dir(dataset, v)
        }
    };
    // Each model with its versions, oldest first; a version whose card
    // cannot be read is a model of its own.
    let mut models: Vec<Vec<Version>> = Vec::new();
    let mut by_identity: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    for &v in &all {
        match identity(&dir(v)) {
            Some(id) if by_identity.contains_key(&id) => models[by_identity[&id]].push(v),
            id => {
                if let Some(id) = id {
                    by_identity.insert(id, models.len());
                }
                models.push(vec![v]);
            }
        }
    }
    // The newest models first: a model is as new as its newest version.
    models.sort_unstable_by_key(|m| std::cmp::Reverse(m[m.len() - 1]));
    let mut copies = Vec::new();
    for (rank, versions) in models.iter().enumerate() {
        let first = versions[0];
        for &v in versions {
            let stays = v == new || Some(v) == champion || (v == first && rank < keep as usize);
            if stays {
                continue;
            }
            commit.remove(&dir(v));
            if rank < keep as usize {
                copies.push((v, first));
            }
        }
    }
    copies.sort_unstable();
    Ok(copies)
}

/// What a version predicts with, and what it learnt from: its clean data's
/// hash, its features and their encoding, its algorithm and parameters, and
/// LightGBM's model text. None when its card cannot be read (a version of
/// an older layout, a damaged folder): such a version is never taken for a
/// copy of another.
fn identity(dir: &Path) -> Option<[u8; 32]> {
    let card: ModelCard = contract::io::read_json(&dir.join(artifact::MODEL_JSON)).ok()?;
    let mut hash = Sha256::new();
    let what = (
        &card.data_sha256,
        &card.numeric_features,
        &card.categorical_features,
        &card.encoding,
        &card.algorithm,
        &card.params,
    );
    hash.update(serde_json::to_vec(&what).ok()?);
    if let Some(file) = &card.model_file {
        hash.update(std::fs::read(dir.join(file)).ok()?);
    }
    Some(hash.finalize().into())
}
