//! Insight tables as per-group statistics from one streaming read: each
//! group's distinct values counted as the batches pass, its numbers summed
//! from the counts in value order, so the same data gives the same bits.

use anyhow::{Context, Result};
use contract::columns::SOURCE;
use polars::prelude::*;
use rayon::prelude::*;

use crate::insights::{Group, stat};

/// Each table's statistics of `value` per (source, key...) group, where a
/// table is a list of names from `keys`; every table from one streaming read
/// of `lf`.
///
/// Each group's distinct values are counted here, as the batches stream past
/// (counts add up the same in any order), and the group's numbers are then
/// summed from the (value, count) pairs in value order: the same bits on every
/// run, whichever batches the engine handed its threads (polars' own mean and
/// std add partial sums in the order the threads finish). Memory is set by the
/// number of (group, value) pairs (scores carry a few decimals: about 10 000
/// values a group), not by the rows. Not polars' group-by on (keys, value):
/// beyond its 4096 hot groups a thread keeps every row of the other groups
/// until the end, which grew the report's peak with the rows (1.27 GB at
/// 10M rows per table, 3.5 GB at 30M).
pub(crate) fn grouped_tables(
    lf: LazyFrame,
    keys: &[(&str, Expr)],
    value: &str,
    tables: &[&[&str]],
) -> Result<Vec<Vec<Group>>> {
    let columns: Vec<Vec<usize>> = tables
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    keys.iter()
                        .position(|(k, _)| k == n)
                        .map(|i| i + 1)
                        .with_context(|| format!("no key column {n}"))
                })
                .collect::<Result<Vec<usize>>>()
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(
        columns.iter().all(|c| c.len() < PackedKey::MAX_PARTS),
        "an insight table has more than {} keys",
        PackedKey::MAX_PARTS - 1
    );
    let mut select = vec![col(SOURCE)];
    select.extend(keys.iter().map(|(name, e)| e.clone().alias(*name)));
    select.push(col(value).cast(DataType::Float64).alias(value));
    let counter = Counter::new(keys.len() + 1, columns);
    let counter = contract::io::fold_batches(lf.select(select), counter, false, Counter::add)?;
    Ok(counter.groups())
}

/// [`grouped_tables`] for one table keyed by all of `keys`.
#[cfg(test)]
pub(crate) fn grouped(lf: LazyFrame, keys: &[(&str, Expr)], value: &str) -> Result<Vec<Group>> {
    let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
    Ok(grouped_tables(lf, keys, value, &[&names])?.remove(0))
}

/// A key column's value, ordered as polars sorts them: numbers as numbers,
/// text by its bytes, null last.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KeyValue {
    Int(i64),
    Text(String),
    Null,
}

impl KeyValue {
    fn text(&self) -> Option<String> {
        match self {
            KeyValue::Int(v) => Some(v.to_string()),
            KeyValue::Text(s) => Some(s.clone()),
            KeyValue::Null => None,
        }
    }
}

/// A key column's values, each given a small id at first sight.
#[derive(Default)]
struct Interner {
    text: PlHashMap<String, u32>,
    ints: PlHashMap<i64, u32>,
    null: Option<u32>,
    values: Vec<KeyValue>,
}

impl Interner {
    fn new_id(values: &mut Vec<KeyValue>, value: KeyValue) -> u32 {
        values.push(value);
        (values.len() - 1) as u32
    }

    fn ids(&mut self, column: &Column) -> PolarsResult<Vec<u32>> {
        let Self {
            text,
            ints,
            null,
            values,
        } = self;
        if column.dtype() == &DataType::String {
            Ok(column
                .str()?
                .iter()
                .map(|s| match s {
                    None => *null.get_or_insert_with(|| Self::new_id(values, KeyValue::Null)),
                    Some(s) => match text.get(s) {
                        Some(&id) => id,
                        None => {
                            let id = Self::new_id(values, KeyValue::Text(s.to_string()));
                            text.insert(s.to_string(), id);
                            id
                        }
                    },
                })
                .collect())
        } else {
            let column = column.cast(&DataType::Int64)?;
            Ok(column
                .i64()?
                .iter()
                .map(|v| match v {
                    None => *null.get_or_insert_with(|| Self::new_id(values, KeyValue::Null)),
                    Some(v) => *ints
                        .entry(v)
                        .or_insert_with(|| Self::new_id(values, KeyValue::Int(v))),
                })
                .collect())
        }
    }
}

/// A group's key column ids (the source's, then its keys'), 21 bits each,
/// in one integer.
struct PackedKey;

impl PackedKey {
    const MAX_PARTS: usize = 3;
    const BITS: u32 = 21;
    const MAX_IDS: usize = 1 << Self::BITS;

    fn pack(ids: &[Vec<u32>], columns: &[usize], row: usize) -> u64 {
        columns.iter().fold(ids[0][row] as u64, |key, &c| {
            key << Self::BITS | ids[c][row] as u64
        })
    }

    fn unpack(key: u64, parts: usize) -> Vec<u32> {
        (0..parts)
            .rev()
            .map(|i| ((key >> (Self::BITS as usize * i)) & (Self::MAX_IDS as u64 - 1)) as u32)
            .collect()
    }
}

/// A null value among the counted ones: a NaN's bits that no counted value
/// has (every NaN is counted as `f64::NAN`).
const NULL_VALUE: u64 = u64::MAX;

/// How often each (group, value) pair was seen, per table.
struct Counter {
    /// Column 0 is the source, then the key columns.
    interners: Vec<Interner>,
    /// Per table, its key columns (indexes into `interners`, after the source).
    columns: Vec<Vec<usize>>,
    /// Per table: (packed group, value bits or [`NULL_VALUE`]) -> rows.
    counts: Vec<PlHashMap<(u64, u64), u64>>,
}

impl Counter {
    fn new(width: usize, columns: Vec<Vec<usize>>) -> Self {
        Self {
            interners: (0..width).map(|_| Interner::default()).collect(),
            counts: columns.iter().map(|_| PlHashMap::default()).collect(),
            columns,
        }
    }

    fn add(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let width = self.interners.len();
        let ids: Vec<Vec<u32>> = self
            .interners
            .par_iter_mut()
            .zip(df.columns()[..width].par_iter())
            .map(|(interner, column)| interner.ids(column))
            .collect::<PolarsResult<_>>()?;
        // One bit pattern per value: -0.0 counts as 0.0, every NaN as one NaN.
        let values: Vec<u64> = df.columns()[width]
            .f64()?
            .iter()
            .map(|v| match v {
                None => NULL_VALUE,
                Some(v) if v.is_nan() => f64::NAN.to_bits(),
                // -0.0 == 0.0
                Some(v) => (v + 0.0).to_bits(),
            })
            .collect();
        if let Some(full) = self
            .interners
            .iter()
            .position(|i| i.values.len() > PackedKey::MAX_IDS)
        {
            polars_bail!(ComputeError: "{}: more than {} distinct values", df.columns()[full].name(), PackedKey::MAX_IDS);
        }
        self.counts
            .par_iter_mut()
            .zip(self.columns.par_iter())
            .for_each(|(counts, columns)| {
                for (row, value) in values.iter().enumerate() {
                    *counts
                        .entry((PackedKey::pack(&ids, columns, row), *value))
                        .or_insert(0) += 1;
                }
            });
        Ok(())
    }

    /// Each table's groups, sorted by source then key (null last), each
    /// summed from its (value, count) pairs in value order.
    fn groups(self) -> Vec<Vec<Group>> {
        let Self {
            interners,
            columns,
            counts,
        } = self;
        // Each id's place among its column's values, in polars' sort order.
        let ranks: Vec<Vec<u32>> = interners
            .iter()
            .map(|interner| {
                let mut order: Vec<u32> = (0..interner.values.len() as u32).collect();
                order.sort_by(|&a, &b| {
                    interner.values[a as usize].cmp(&interner.values[b as usize])
                });
                let mut rank = vec![0; order.len()];
                for (place, id) in order.into_iter().enumerate() {
                    rank[id as usize] = place as u32;
                }
                rank
            })
            .collect();
        counts
            .into_iter()
            .zip(&columns)
            .map(|(counts, columns)| {
                let parts = columns.len() + 1;
                let column_of = |part: usize| if part == 0 { 0 } else { columns[part - 1] };
                // (the key's ranks packed, the value's order, the key, the value, rows)
                let mut rows: Vec<(u64, u64, u64, u64, u64)> = counts
                    .into_iter()
                    .map(|((key, value), count)| {
                        let ranked = PackedKey::unpack(key, parts).into_iter().enumerate().fold(
                            0u64,
                            |packed, (part, id)| {
                                packed << PackedKey::BITS
                                    | ranks[column_of(part)][id as usize] as u64
                            },
                        );
                        (ranked, value_order(value), key, value, count)
                    })
                    .collect();
                rows.sort_unstable_by_key(|r| (r.0, r.1));
                rows.chunk_by(|a, b| a.0 == b.0)
                    .map(|group| {
                        // (value, count) pairs of the group, nulls dropped, in value order.
                        let pairs: Vec<(f64, f64)> = group
                            .iter()
                            .filter(|r| r.3 != NULL_VALUE)
                            .map(|r| (f64::from_bits(r.3), r.4 as f64))
                            .collect();
                        let n: f64 = pairs.iter().map(|(_, c)| c).sum();
                        let mean =
                            (n > 0.0).then(|| pairs.iter().map(|(v, c)| v * c).sum::<f64>() / n);
                        let std = mean.filter(|_| n >= 2.0).map(|m| {
                            let squares: f64 =
                                pairs.iter().map(|(v, c)| c * (v - m) * (v - m)).sum();
                            (squares / (n - 1.0)).sqrt()
                        });
                        let key: Vec<Option<String>> = PackedKey::unpack(group[0].2, parts)
                            .into_iter()
                            .enumerate()
                            .map(|(part, id)| interners[column_of(part)].values[id as usize].text())
                            .collect();
                        Group {
                            source: key[0].clone().unwrap_or_else(|| "(none)".to_string()),
                            key: key[1..].to_vec(),
                            stat: stat(n as usize, mean, std),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// A counted value's place in polars' sort order (ascending, NaN after
/// every number, null last) as an unsigned integer.
fn value_order(bits: u64) -> u64 {
    const SIGN: u64 = 1 << 63;
    match bits {
        NULL_VALUE => u64::MAX,
        b if b & SIGN != 0 => !b,
        b => b | SIGN,
    }
}

#[cfg(test)]
mod tests {
    use contract::columns::{CSAT_SCORE, PROVIDER};

    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// Counting distinct values then summing from the counts gives each
    /// group's plain mean and sample deviation; a group whose values are all
    /// null stays, with no rows and no mean.
    #[test]
    fn grouped_counts_match_the_plain_statistics() {
        let mut sources = Vec::new();
        let mut providers = Vec::new();
        let mut values = Vec::new();
        for i in 0..2000usize {
            sources.push(if i % 3 == 0 { "synth" } else { "supabase" });
            providers.push(["a", "b", "c"][i % 7 % 3]);
            // Few distinct values, repeated; a null now and then.
            values.push((i % 11 != 0).then(|| ((i * 37) % 101) as f64 / 100.0));
        }
        sources.push("synth");
        providers.push("only-null");
        values.push(None);
        let df = df!(SOURCE => &sources, PROVIDER => &providers, CSAT_SCORE => &values).unwrap();
        let groups = grouped(df.lazy(), &[(PROVIDER, col(PROVIDER))], CSAT_SCORE).unwrap();
        assert_eq!(groups.len(), 7);
        for g in &groups {
            let provider = g.key[0].as_deref().unwrap();
            let v: Vec<f64> = (0..values.len())
                .filter(|&i| sources[i] == g.source && providers[i] == provider)
                .filter_map(|i| values[i])
                .collect();
            assert_eq!(g.stat.rows, v.len(), "{g:?}");
            if v.is_empty() {
                assert_eq!((g.stat.mean, g.stat.std), (None, None));
                continue;
            }
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
            assert!(close(g.stat.mean, mean), "{g:?} vs {mean}");
            assert!(close(g.stat.std, std), "{g:?} vs {std}");
        }
        // Sorted by source, then key.
        let order: Vec<(String, Option<String>)> = groups
            .iter()
            .map(|g| (g.source.clone(), g.key[0].clone()))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    /// One read gives every table, each as polars' own group-by and sort
    /// give it: numbers sorted as numbers (9 before 10), text by its bytes,
    /// null keys and sources last, -0.0 counted with 0.0, null values left out.
    #[test]
    fn one_read_gives_every_table_as_polars_groups_it() {
        let df = df!(
            SOURCE => [Some("b"), Some("a"), None, Some("a"), Some("a"), Some("a"), Some("a")],
            "n" => [Some(10i64), Some(9), Some(10), None, Some(10), Some(9), Some(9)],
            "t" => [Some("x"), None, Some("y"), Some("x"), Some("y"), Some("x"), Some("X")],
            CSAT_SCORE => [Some(0.5), Some(-0.0), Some(1.0), Some(0.25), None, Some(0.0), Some(0.75)],
        )
        .unwrap();
        let keys = [("n", col("n")), ("t", col("t"))];
        let layouts: [&[&str]; 3] = [&["n"], &["n", "t"], &["t"]];
        let tables = grouped_tables(df.clone().lazy(), &keys, CSAT_SCORE, &layouts).unwrap();
        for (names, groups) in layouts.iter().zip(&tables) {
            let mut by = vec![SOURCE];
            by.extend(names.iter());
            let expected = df
                .clone()
                .lazy()
                .group_by(by.iter().map(|c| col(*c)).collect::<Vec<_>>())
                .agg([
                    col(CSAT_SCORE).count().alias("rows"),
                    col(CSAT_SCORE).mean().alias("mean"),
                    col(CSAT_SCORE).std(1).alias("std"),
                ])
                .sort(
                    by.clone(),
                    SortMultipleOptions::default().with_nulls_last(true),
                )
                .collect()
                .unwrap();
            assert_eq!(groups.len(), expected.height(), "{names:?}: {groups:?}");
            let text = |c: &str| -> Vec<Option<String>> {
                let s = expected.column(c).unwrap().cast(&DataType::String).unwrap();
                s.str()
                    .unwrap()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect()
            };
            let sources = text(SOURCE);
            let rows = expected
                .column("rows")
                .unwrap()
                .cast(&DataType::UInt64)
                .unwrap();
            let means = expected.column("mean").unwrap().f64().unwrap().clone();
            let stds = expected.column("std").unwrap().f64().unwrap().clone();
            for (i, g) in groups.iter().enumerate() {
                let source = sources[i].clone().unwrap_or_else(|| "(none)".to_string());
                assert_eq!(g.source, source, "{names:?} row {i}");
                for (k, name) in names.iter().enumerate() {
                    assert_eq!(g.key[k], text(name)[i], "{names:?} row {i}");
                }
                assert_eq!(g.stat.rows as u64, rows.u64().unwrap().get(i).unwrap());
                assert!(
                    g.stat
                        .mean
                        .zip(means.get(i))
                        .is_none_or(|(a, b)| (a - b).abs() < 1e-12)
                        && g.stat.mean.is_some() == means.get(i).is_some(),
                    "{names:?} row {i}: {g:?}"
                );
                if g.stat.rows >= 2 {
                    assert!(close(g.stat.std, stds.get(i).unwrap()), "{g:?}");
                }
            }
            // The same groups as a read for this table alone.
            let alone: Vec<(&str, Expr)> = keys
                .iter()
                .filter(|(k, _)| names.contains(k))
                .cloned()
                .collect();
            assert_eq!(
                groups,
                &grouped(df.clone().lazy(), &alone, CSAT_SCORE).unwrap()
            );
        }
    }

    #[test]
    fn value_order_is_polars_sort_order() {
        let values = [
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            0.75,
            3.0,
            f64::INFINITY,
            f64::NAN,
        ];
        let order: Vec<u64> = values.iter().map(|v| value_order(v.to_bits())).collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        assert!(order.iter().all(|&o| o < value_order(NULL_VALUE)));
    }
}
