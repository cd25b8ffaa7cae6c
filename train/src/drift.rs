//! A version's training-data profile, and the new clean data compared with
//! the champion's (the types and PSI are the contract's, `contract::drift`).

use anyhow::Result;
use contract::drift::{
    CategoricalProfile, DatasetDrift, DriftLevel, FeatureDrift, NumericProfile, Profile,
    RejectDrift, TargetDrift, psi,
};
use contract::registry::{Version, files};
use contract::{Dataset, Layout, io};

use crate::features::Data;
use crate::gate::Champion;

/// The profile of `rows` of `data` (a version's training rows).
pub fn profile(data: &Data, dataset: Dataset, rows: &[usize], reject_rate: Option<f64>) -> Profile {
    let pick = |col: &[f64]| rows.iter().map(|&r| col[r]).collect::<Vec<_>>();
    Profile {
        rows: rows.len(),
        numeric: dataset
            .numeric_features()
            .iter()
            .zip(&data.numeric)
            .map(|(name, col)| (name.to_string(), NumericProfile::of(&pick(col))))
            .collect(),
        categorical: dataset
            .categorical_features()
            .iter()
            .zip(&data.categorical)
            .map(|(name, cat)| {
                let p = CategoricalProfile::of(rows.iter().map(|&r| cat.value(r)));
                (name.to_string(), p)
            })
            .collect(),
        target: NumericProfile::of(&pick(&data.target)),
        reject_rate,
    }
}

/// Every row of `data` against the champion's profile.
pub fn compare(
    champion: Version,
    reference: &Profile,
    data: &Data,
    dataset: Dataset,
    reject_rate: Option<f64>,
) -> DatasetDrift {
    let mut features = Vec::new();
    for (name, col) in dataset.numeric_features().iter().zip(&data.numeric) {
        if let Some(p) = reference.numeric.get(*name) {
            let value = psi(&p.shares, &p.shares_of(col));
            features.push(FeatureDrift {
                feature: name.to_string(),
                psi: value,
                level: DriftLevel::of_psi(value),
            });
        }
    }
    let mut unseen_levels = std::collections::BTreeMap::new();
    for (name, cat) in dataset.categorical_features().iter().zip(&data.categorical) {
        if let Some(p) = reference.categorical.get(*name) {
            let current = CategoricalProfile::of((0..data.rows).map(|r| cat.value(r)));
            let value = p.psi(&current);
            features.push(FeatureDrift {
                feature: name.to_string(),
                psi: value,
                level: DriftLevel::of_psi(value),
            });
            let unseen = p.unseen(&current);
            if !unseen.is_empty() {
                unseen_levels.insert(name.to_string(), unseen);
            }
        }
    }
    features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    let t = &reference.target;
    let current_target = NumericProfile::of(&data.target);
    let target_psi = psi(&t.shares, &t.shares_of(&data.target));
    let target = TargetDrift {
        champion_mean: t.mean,
        mean: current_target.mean,
        shift_std: match (t.mean, current_target.mean, t.std) {
            (Some(a), Some(b), Some(s)) if s > 0.0 => Some((b - a) / s),
            _ => None,
        },
        psi: target_psi,
        level: DriftLevel::of_psi(target_psi),
    };
    let max_psi = features
        .iter()
        .map(|f| f.psi)
        .chain([target_psi])
        .fold(0.0, f64::max);
    DatasetDrift {
        champion: Some(champion),
        rows: data.rows,
        note: None,
        level: DriftLevel::of_psi(max_psi),
        max_psi,
        features,
        target: Some(target),
        unseen_levels,
        reject_rate: match (reference.reject_rate, reject_rate) {
            (Some(old), Some(new)) => Some(RejectDrift::new(old, new)),
            _ => None,
        },
    }
}

/// The new clean data against the champion's profile, or a note saying why
/// there is nothing to compare with.
pub fn against_champion(
    layout: &Layout,
    dataset: Dataset,
    champion: &Champion,
    data: &Data,
    reject_rate: Option<f64>,
) -> Result<DatasetDrift> {
    let note = |version: Option<Version>, note: String| DatasetDrift {
        champion: version,
        rows: data.rows,
        note: Some(note),
        ..DatasetDrift::default()
    };
    let version = match champion {
        Champion::Loaded { version, .. } => version,
        Champion::None => {
            return Ok(note(
                None,
                "first training: no earlier champion to compare with".into(),
            ));
        }
        Champion::Unreadable { version, .. } => {
            return Ok(note(
                Some(*version),
                format!("champion {version} cannot be loaded, so nothing to compare with"),
            ));
        }
    };
    let path = layout.version_dir(dataset, *version).join(files::PROFILE);
    Ok(match io::read_json_if_present::<Profile>(&path)? {
        Some(reference) => compare(*version, &reference, data, dataset, reject_rate),
        None => note(Some(*version), format!("{} has no profile", path.display())),
    })
}
