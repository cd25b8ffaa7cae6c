//! Each response's earliest A/B prediction: the csat dataset's quality_score
//! for a feedback row is the predicted quality of the earliest A/B row with
//! its response_id (by created_at; rows of the same microsecond by the xxh3
//! hash of their id, then in file order), whatever the order of the parts.
//!
//! On the streaming engine this is a hash table filled from the A/B rows as
//! they stream past, then looked up by each feedback row: one entry per
//! response (about 49 bytes an A/B row, see [`PARTITION_ROWS`]). Polars has no streaming "arg-min per group" (a
//! `sort_by().first()` inside a group-by gathers each group's rows), and
//! sorting the A/B rows first held them all, several times over: 2.2 GB of
//! transform's 3.2 GB peak at 10M rows per table. The in-memory engine keeps
//! that sort, with the same order ([`sort_key`]), and the tests check that
//! both give the same datasets.

use std::sync::Arc;

use contract::columns::*;
use polars::prelude::*;
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::keys::key_halves;
use crate::with_computed_column;

/// Entries a partition holds at most (when the responses are as many as
/// the A/B rows): a partition is sized for it once, 65 536 slots at
/// hashbrown's 7/8 load with a 5% margin, so none grows by doubling and the
/// table holds about 49 bytes an A/B row (hashbrown alone, growing, filled
/// between 44% and 88%: up to twice that).
const PARTITION_ROWS: usize = 54_000;

/// The hash of an A/B row's id that orders rows of the same microsecond
/// (a missing id after every other, as a sort puts nulls last).
const ID_HASH: &str = "__id_hash";

#[derive(Clone, Copy)]
struct Entry {
    /// The response_id's 128-bit xxh3 hash (see `with_key_hash`): the
    /// high half picks the partition, the low half is the table's hash.
    key: [u64; 2],
    /// created_at in microseconds (a missing time after every other).
    at: i64,
    quality: f64,
    id: u32,
    has_quality: bool,
}

impl Entry {
    fn order(&self) -> (i64, u32) {
        (self.at, self.id)
    }
}

pub struct Earliest {
    partitions: Vec<hashbrown::HashTable<Entry>>,
}

impl Earliest {
    /// Reads the A/B rows (`rows` of them, from the parts' footers: the
    /// table is sized once, for that many) on the streaming engine, in file order.
    pub fn build(ab_testing: LazyFrame, rows: usize) -> PolarsResult<Self> {
        let partitions = rows.div_ceil(PARTITION_ROWS).max(1);
        let per_partition = rows.div_ceil(partitions);
        let table = Self {
            partitions: (0..partitions)
                .map(|_| hashbrown::HashTable::with_capacity(per_partition))
                .collect(),
        };
        contract::io::fold_batches(predictions(ab_testing), table, true, Self::add)
    }

    /// Adds a batch of A/B rows, in file order: a row replaces a response's
    /// entry only when it comes strictly earlier.
    fn add(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let responses = df.column(RESPONSE_ID)?.str()?;
        let times = df.column(CREATED_AT)?.cast(&DataType::Int64)?;
        let times = times.i64()?;
        let ids = df.column(ID)?.str()?;
        let quality = df.column(PREDICTED_QUALITY)?.cast(&DataType::Float64)?;
        let quality = quality.f64()?;
        let partitions = self.partitions.len();
        let mut by_partition: Vec<Vec<Entry>> = vec![Vec::new(); partitions];
        for (((response, at), id), quality) in responses
            .iter()
            .zip(times.iter())
            .zip(ids.iter())
            .zip(quality.iter())
        {
            let Some(response) = response else { continue };
            let entry = Entry {
                key: key_halves(response),
                at: at.unwrap_or(i64::MAX),
                quality: quality.unwrap_or(f64::NAN),
                id: id_hash(id),
                has_quality: quality.is_some(),
            };
            by_partition[entry.key[0] as usize % partitions].push(entry);
        }
        self.partitions
            .par_iter_mut()
            .zip(by_partition.into_par_iter())
            .for_each(|(table, rows)| {
                for row in rows {
                    match table.entry(row.key[1], |e| e.key == row.key, hasher) {
                        hashbrown::hash_table::Entry::Occupied(mut kept) => {
                            if row.order() < kept.get().order() {
                                *kept.get_mut() = row;
                            }
                        }
                        hashbrown::hash_table::Entry::Vacant(slot) => {
                            slot.insert(row);
                        }
                    }
                }
            });
        Ok(())
    }

    /// The earliest predicted quality of a response (None when it has no A/B
    /// row, or its earliest has no prediction).
    fn quality(&self, response_id: &str) -> Option<f64> {
        let key = key_halves(response_id);
        self.partitions[key[0] as usize % self.partitions.len()]
            .find(key[1], |e| e.key == key)
            .filter(|e| e.has_quality)
            .map(|e| e.quality)
    }

    /// `feedback` with QUALITY_SCORE, each row's earliest predicted
    /// quality: a map the streaming engine runs batch by batch.
    pub fn looked_up(self: Arc<Self>, feedback: LazyFrame) -> LazyFrame {
        with_computed_column(
            feedback,
            QUALITY_SCORE,
            DataType::Float64,
            "earliest prediction",
            move |df| {
                let quality: Float64Chunked = df
                    .column(RESPONSE_ID)?
                    .str()?
                    .iter()
                    .map(|r| r.and_then(|r| self.quality(r)))
                    .collect();
                Ok(quality.into_column())
            },
        )
    }
}

/// The A/B rows with a response, and what both engines read of them.
pub fn predictions(ab_testing: LazyFrame) -> LazyFrame {
    ab_testing.filter(col(RESPONSE_ID).is_not_null()).select([
        col(RESPONSE_ID),
        col(CREATED_AT),
        col(ID),
        col(PREDICTED_QUALITY),
    ])
}

fn hasher(e: &Entry) -> u64 {
    e.key[1]
}

/// The top 32 bits of the id's xxh3 hash (ids of the same response and
/// microsecond that share them keep their file order).
fn id_hash(id: Option<&str>) -> u32 {
    id.map_or(u32::MAX, |id| (xxh3_64(id.as_bytes()) >> 32) as u32)
}

/// The A/B rows' order for the in-memory engine's sort, the same as
/// [`Earliest`]'s: created_at, then the id's hash (column [`ID_HASH`]).
pub fn sort_key(ab_testing: LazyFrame) -> (LazyFrame, [&'static str; 2]) {
    let plan = with_computed_column(ab_testing, ID_HASH, DataType::UInt32, "id hash", |df| {
        let hashes: UInt32Chunked = df
            .column(ID)?
            .str()?
            .iter()
            .map(|id| Some(id_hash(id)))
            .collect();
        Ok(hashes.into_column())
    });
    (plan, [CREATED_AT, ID_HASH])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The earliest A/B row of each response, ties at one microsecond
    /// broken by the id's hash (not by file order), a missing time last;
    /// the same table whichever order the rows come in, and the same rows
    /// the in-memory engine's sort keeps.
    #[test]
    fn earliest_prediction_of_each_response() {
        let rows = [
            (Some("r1"), Some(10i64), "b", Some(0.1)),
            (Some("r1"), Some(5), "z", Some(0.2)),
            (Some("r1"), Some(5), "a", Some(0.3)),
            (Some("r2"), None, "c", Some(0.4)),
            (Some("r2"), Some(7), "d", None),
            (Some("r3"), None, "e", Some(0.5)),
            (None, Some(1), "f", Some(0.6)),
        ];
        let frame = |order: &[usize]| {
            DataFrame::new_infer_height(vec![
                Column::new(
                    RESPONSE_ID.into(),
                    order.iter().map(|&i| rows[i].0).collect::<Vec<_>>(),
                ),
                Column::new(
                    CREATED_AT.into(),
                    order.iter().map(|&i| rows[i].1).collect::<Vec<_>>(),
                ),
                Column::new(
                    ID.into(),
                    order.iter().map(|&i| rows[i].2).collect::<Vec<_>>(),
                ),
                Column::new(
                    PREDICTED_QUALITY.into(),
                    order.iter().map(|&i| rows[i].3).collect::<Vec<_>>(),
                ),
            ])
            .unwrap()
        };
        let tie_winner = if id_hash(Some("a")) < id_hash(Some("z")) {
            0.3
        } else {
            0.2
        };
        let want = [
            ("r1", Some(tie_winner)),
            ("r2", None),
            ("r3", Some(0.5)),
            ("r4", None),
        ];
        let forward: Vec<usize> = (0..rows.len()).collect();
        let backward: Vec<usize> = forward.iter().rev().copied().collect();
        for order in [&forward, &backward] {
            let table = Earliest::build(frame(order).lazy(), rows.len()).unwrap();
            for (response, quality) in want {
                assert_eq!(table.quality(response), quality, "{response} {order:?}");
            }
            // The in-memory engine's order keeps the same row first.
            let (keyed, by) = sort_key(frame(order).lazy());
            let first = keyed
                .filter(col(RESPONSE_ID).is_not_null())
                .sort(
                    by,
                    SortMultipleOptions::default()
                        .with_maintain_order(true)
                        .with_nulls_last(true),
                )
                .unique_stable(Some(cols([RESPONSE_ID])), UniqueKeepStrategy::First)
                .sort([RESPONSE_ID], SortMultipleOptions::default())
                .collect()
                .unwrap();
            let quality: Vec<Option<f64>> = first
                .column(PREDICTED_QUALITY)
                .unwrap()
                .f64()
                .unwrap()
                .iter()
                .collect();
            assert_eq!(quality, [Some(tie_winner), None, Some(0.5)], "{order:?}");
        }
    }
}
