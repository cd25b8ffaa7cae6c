//! Retention: the newest `--keep` versions of a model stay, and the
//! champion whatever its age; older versions are removed with the run's
//! commit, so disk use stays bounded.

use anyhow::Result;
use contract::commit::Commit;
use contract::registry::{self, Version};
use contract::{Dataset, Layout};

/// Stages the removal of every version of `dataset` beyond the newest
/// `keep` (counting `new`, the one this run made), never `champion`.
pub fn prune(
    commit: &mut Commit,
    layout: &Layout,
    dataset: Dataset,
    new: Version,
    champion: Option<Version>,
    keep: u32,
) -> Result<()> {
    let mut all = registry::versions(layout, dataset)?;
    all.push(new);
    all.sort_unstable_by(|a, b| b.cmp(a));
    all.dedup();
    for old in all.into_iter().skip(keep as usize) {
        if Some(old) != champion {
            commit.remove(&layout.version_dir(dataset, old));
        }
    }
    Ok(())
}
