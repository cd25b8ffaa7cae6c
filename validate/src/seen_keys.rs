//! The duplicate check's memory: the keys of the rows kept so far.

use anyhow::Result;
use contract::columns::*;
use polars::prelude::*;

/// The keys (source_table, source_id) of the rows kept so far, for the
/// duplicate check across batches. A key is kept as its 128-bit xxh3 hash
/// (the id hashed with a seed drawn from the table's name), 16 bytes
/// whatever the id's length: two distinct keys share a hash with odds of
/// about n^2 / 2^129, 1e-23 for 60M keys, far below a disk's error rate. The
/// hashes are split into partitions by their top bits, searched in parallel,
/// each in row order, so "earlier" means what it says. (Polars'
/// `is_first_distinct` needs the whole column and grows one set on one core.)
pub struct SeenKeys {
    partitions: Vec<hashbrown::HashTable<u128>>,
}

/// Partitions of the duplicate check: enough that each grows (and briefly
/// doubles) in small steps, and every core has work.
const PARTITIONS: usize = 256;

impl Default for SeenKeys {
    fn default() -> Self {
        Self {
            partitions: (0..PARTITIONS)
                .map(|_| hashbrown::HashTable::new())
                .collect(),
        }
    }
}

impl SeenKeys {
    /// True on each row of `df` whose key an earlier row with no other
    /// reason (in this batch or an earlier one) already had; the keys of the
    /// rows that are first join the set.
    pub(crate) fn repeated(&mut self, df: &DataFrame) -> Result<BooleanChunked> {
        use rayon::prelude::*;
        use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};

        let tables = df.column(SOURCE_TABLE)?.str()?;
        let ids = df.column(SOURCE_ID)?.str()?;
        let eligible = df.column(REASON)?.is_null();
        // One seed per table name (a handful), so a row's hash is one call.
        let mut seeds: Vec<(Option<&str>, u64)> = Vec::new();
        let keyed: Vec<(u32, u128)> = tables
            .iter()
            .zip(ids.iter())
            .zip(eligible.iter())
            .enumerate()
            .filter_map(|(row, ((table, id), eligible))| {
                let id = id.filter(|_| eligible == Some(true))?;
                let seed = match seeds.iter().find(|(t, _)| *t == table) {
                    Some(&(_, seed)) => seed,
                    None => {
                        let seed = table.map_or(0, |t| xxh3_64(t.as_bytes()) | 1);
                        seeds.push((table, seed));
                        seed
                    }
                };
                Some((row as u32, xxh3_128_with_seed(id.as_bytes(), seed)))
            })
            .collect();
        let mut by_partition: Vec<Vec<(u32, u128)>> = vec![Vec::new(); PARTITIONS];
        for &(row, key) in &keyed {
            by_partition[(key >> 120) as usize % PARTITIONS].push((row, key));
        }
        drop(keyed);
        let repeated: Vec<u32> = self
            .partitions
            .par_iter_mut()
            .zip(by_partition.par_iter())
            .flat_map_iter(|(seen, rows)| {
                seen.reserve(rows.len(), |&k| k as u64);
                let mut repeated = Vec::new();
                for &(row, key) in rows {
                    match seen.entry(key as u64, |&k| k == key, |&k| k as u64) {
                        hashbrown::hash_table::Entry::Occupied(_) => repeated.push(row),
                        hashbrown::hash_table::Entry::Vacant(slot) => {
                            slot.insert(key);
                        }
                    }
                }
                repeated
            })
            .collect();
        let mut mask = vec![false; df.height()];
        for row in repeated {
            mask[row as usize] = true;
        }
        Ok(BooleanChunked::from_slice(REASON.into(), &mask))
    }
}
