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
use crate::features::Encoding;
use crate::models::{Algorithm, Params};

/// Stages the removal of every version of `dataset` beyond the newest
/// `keep` distinct models (counting `new`, the one this run made and staged
/// in `new_dir`), never `new` nor `champion`. Returns one line per model
/// whose copies went, for the run's log.
pub fn prune(
    commit: &mut Commit,
    layout: &Layout,
    dataset: Dataset,
    (new, new_dir): (Version, &Path),
    champion: Option<Version>,
    keep: u32,
) -> Result<Vec<String>> {
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
    let identities: Vec<(Version, Option<[u8; 32]>)> =
        all.iter().map(|&v| (v, identity(&dir(v)))).collect();
    let mut copies: BTreeMap<Version, Vec<String>> = BTreeMap::new();
    for (v, fate) in fates(&identities, new, champion, keep as usize) {
        match fate {
            Fate::Stays => continue,
            Fate::CopyOf(first) => copies.entry(first).or_default().push(v.to_string()),
            Fate::TooOld => {}
        }
        commit.remove(&dir(v));
    }
    Ok(copies
        .into_iter()
        .map(|(first, copies)| {
            format!(
                "train: {dataset} {} removed: the same model as {first}, which stays \
                 (retrained on unchanged data)",
                copies.join(", ")
            )
        })
        .collect())
}

/// What retention does with a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Stays,
    /// Removed: the same model as this version, its first, which stays.
    CopyOf(Version),
    /// Removed: its model is not among the newest `keep`.
    TooOld,
}

/// Each version's fate, oldest first, from the versions (oldest first) and
/// their identities (None: a model of its own).
fn fates(
    versions: &[(Version, Option<[u8; 32]>)],
    new: Version,
    champion: Option<Version>,
    keep: usize,
) -> Vec<(Version, Fate)> {
    // Each model with its versions, oldest first.
    let mut models: Vec<Vec<Version>> = Vec::new();
    let mut by_identity: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    for &(v, id) in versions {
        match id.and_then(|id| by_identity.get(&id).copied()) {
            Some(m) => models[m].push(v),
            None => {
                if let Some(id) = id {
                    by_identity.insert(id, models.len());
                }
                models.push(vec![v]);
            }
        }
    }
    // The newest models first: a model is as new as its newest version.
    models.sort_unstable_by_key(|m| std::cmp::Reverse(m[m.len() - 1]));
    let mut fates = Vec::new();
    for (rank, versions) in models.iter().enumerate() {
        let first = versions[0];
        for &v in versions {
            let fate = if v == new || Some(v) == champion || (v == first && rank < keep) {
                Fate::Stays
            } else if rank < keep {
                Fate::CopyOf(first)
            } else {
                Fate::TooOld
            };
            fates.push((v, fate));
        }
    }
    fates.sort_unstable_by_key(|(v, _)| *v);
    fates
}

/// What a version predicts with, and what it learnt from: its clean data's
/// hash, its features and their encoding, its algorithm and parameters, and
/// LightGBM's model text. None when its card or model file cannot be read
/// (a version of an older layout, a damaged folder): such a version is
/// never taken for a copy of another.
pub(crate) fn identity(dir: &Path) -> Option<[u8; 32]> {
    let card: ModelCard = contract::io::read_json(&dir.join(artifact::MODEL_JSON)).ok()?;
    loaded_identity(dir, &card)
}

/// The identity of the version in `dir` whose card is already read.
pub(crate) fn loaded_identity(dir: &Path, card: &ModelCard) -> Option<[u8; 32]> {
    let model = match &card.model_file {
        Some(file) => Some(std::fs::read(dir.join(file)).ok()?),
        None => None,
    };
    card_identity(card, model.as_deref())
}

/// A card's identity (see [`identity`]), with its model file's bytes.
pub(crate) fn card_identity(card: &ModelCard, model: Option<&[u8]>) -> Option<[u8; 32]> {
    model_identity(
        &card.data_sha256,
        (&card.numeric_features, &card.categorical_features),
        &card.encoding,
        (&card.algorithm, &card.params),
        model,
    )
}

/// The identity (see [`identity`]) of a model not yet saved: train's
/// challenger, compared with its champion at the gate.
pub(crate) fn model_identity(
    data_sha256: &str,
    features: (&[String], &[String]),
    encoding: &Encoding,
    (algorithm, params): (&Algorithm, &Params),
    model: Option<&[u8]>,
) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    let what = (
        data_sha256,
        features.0,
        features.1,
        encoding,
        algorithm,
        params,
    );
    hash.update(serde_json::to_vec(&what).ok()?);
    if let Some(model) = model {
        hash.update(model);
    }
    Some(hash.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> Version {
        format!("v{n:04}").parse().unwrap()
    }

    /// Versions 1..=n with the given identities (0: unreadable).
    fn versions(ids: &[u8]) -> Vec<(Version, Option<[u8; 32]>)> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| (v(i as u32 + 1), (id > 0).then_some([id; 32])))
            .collect()
    }

    fn removed(fates: &[(Version, Fate)]) -> Vec<(u32, Fate)> {
        fates
            .iter()
            .filter(|(_, f)| *f != Fate::Stays)
            .map(|(v, f)| (v.to_string()[1..].parse().unwrap(), *f))
            .collect()
    }

    #[test]
    fn distinct_versions_keep_the_newest_and_the_champion() {
        let all = versions(&[1, 2, 3, 4, 5]);
        let fates = fates(&all, v(5), Some(v(1)), 2);
        assert_eq!(removed(&fates), [(2, Fate::TooOld), (3, Fate::TooOld)]);
    }

    #[test]
    fn copies_count_once_and_their_first_stays() {
        // v1 one model; v2..v5 the same other model; v5 new and champion.
        let all = versions(&[1, 2, 2, 2, 2]);
        let fates = fates(&all, v(5), Some(v(5)), 2);
        assert_eq!(
            removed(&fates),
            [(3, Fate::CopyOf(v(2))), (4, Fate::CopyOf(v(2)))]
        );
    }

    #[test]
    fn the_champion_and_the_new_version_stay_even_as_copies() {
        // v3 champion and v5 new are copies of v1; v2 and v4 distinct.
        let all = versions(&[1, 2, 1, 4, 1]);
        let fates = fates(&all, v(5), Some(v(3)), 2);
        assert_eq!(removed(&fates), [(2, Fate::TooOld)]);
        // With room for only one model, the other models go, not the three.
        let fates = super::fates(&all, v(5), Some(v(3)), 1);
        assert_eq!(removed(&fates), [(2, Fate::TooOld), (4, Fate::TooOld)]);
    }

    #[test]
    fn an_unreadable_version_is_never_a_copy() {
        let all = versions(&[0, 0, 3]);
        let fates = fates(&all, v(3), None, 5);
        assert_eq!(removed(&fates), []);
    }
}
