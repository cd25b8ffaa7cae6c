//! The CSAT insights of the seed's optimisation service, from the clean
//! datasets: CSAT by quality range, provider, model, action type and day,
//! quality baselines, and the optimal quality range. Polars streams the rows
//! (one read of each dataset for all its tables) and `grouping` counts each
//! group's distinct values as they pass; the groups themselves are few, so
//! means, intervals and the optimum are worked out on them in plain Rust.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use contract::columns::{
    ACTION_TYPE, CSAT_SCORE, MODEL, PROVIDER, QUALITY_SCORE, SOURCE, TIMESTAMP,
};
use contract::reports::{GroupStat, InsightsReport, OptimalRange, SourceInsights, Stat, insight};
use polars::prelude::*;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::grouping::grouped_tables;

/// The seed's quality ranges of a response (quality_score is 0-1): lower
/// bound inclusive, upper exclusive except the last.
pub const QUALITY_RANGES: [(&str, f64); 5] = [
    ("0.0-0.5", 0.5),
    ("0.5-0.7", 0.7),
    ("0.7-0.8", 0.8),
    ("0.8-0.9", 0.9),
    ("0.9-1.0", f64::INFINITY),
];
/// Rows whose response has no quality score (feedback with no A/B match).
pub const NO_SCORE: &str = "no score";
/// A range needs this many rows to be a candidate for the optimum.
pub const MIN_ROWS: usize = 30;

pub const QUALITY_RANGE: &str = "quality_range";
pub const DAY: &str = "day";
pub const GROUPING: &str = "grouping";
pub const ROWS: &str = "rows";
pub const CI_LOW: &str = "ci_low";
pub const CI_HIGH: &str = "ci_high";

/// A group's [`Stat`] from its count, mean and standard deviation: no mean
/// without rows, no deviation or interval below two rows.
pub fn stat(rows: usize, mean: Option<f64>, std: Option<f64>) -> Stat {
    let mean = mean.filter(|m| rows > 0 && m.is_finite());
    let std = std.filter(|s| rows >= 2 && s.is_finite());
    let half = match (mean, std) {
        (Some(_), Some(s)) => t_975(rows - 1).map(|t| t * s / (rows as f64).sqrt()),
        _ => None,
    };
    Stat {
        rows,
        mean,
        std,
        ci_low: mean.zip(half).map(|(m, h)| m - h),
        ci_high: mean.zip(half).map(|(m, h)| m + h),
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom. Past
/// 1000, the series in 1/df around the normal quantile (Abramowitz and
/// Stegun 26.7.5; its error there is below 1e-9): statrs inverts the
/// incomplete beta function, whose iterations grow with df, and a group of
/// 58M rows (csat at 30M rows per table) kept the report busy for minutes.
fn t_975(df: usize) -> Option<f64> {
    if df >= 1000 {
        let (z, n) = (1.959_963_984_540_054_f64, df as f64);
        let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
        return Some(
            z + (z3 + z) / (4.0 * n)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * n.powi(3)),
        );
    }
    StudentsT::new(0.0, 1.0, df as f64)
        .ok()
        .map(|t| t.inverse_cdf(0.975))
}

#[cfg(test)]
mod t_quantile {
    /// The series meets statrs where both are cheap, and is quick far past it.
    #[test]
    fn series_matches_the_exact_quantile() {
        use statrs::distribution::{ContinuousCDF, StudentsT};
        for df in [1000usize, 1500, 5000, 20_000] {
            let exact = StudentsT::new(0.0, 1.0, df as f64)
                .unwrap()
                .inverse_cdf(0.975);
            let series = super::t_975(df).unwrap();
            assert!(
                (exact - series).abs() < 1e-8,
                "df {df}: {exact} vs {series}"
            );
        }
        let t = super::t_975(58_000_000).unwrap();
        assert!((t - 1.959_963_984_540_054).abs() < 1e-7);
    }
}

fn overlaps(a: &Stat, b: &Stat) -> bool {
    match (a.ci_low, a.ci_high, b.ci_low, b.ci_high) {
        (Some(a0), Some(a1), Some(b0), Some(b1)) => a0 <= b1 && b0 <= a1,
        _ => false,
    }
}

/// One group of an insight table: its source, its key values, its numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub source: String,
    pub key: Vec<Option<String>>,
    pub stat: Stat,
}

impl Group {
    /// Its label and numbers, as insights.json gives them.
    pub fn labelled(&self) -> GroupStat {
        GroupStat {
            group: self.label(),
            stat: self.stat,
        }
    }

    /// The key as one label ("openai / gpt-4o"); a null key part is "(none)".
    pub fn label(&self) -> String {
        self.key
            .iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// An insight table: group keys, the value summarised, and its groups.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: &'static str,
    pub keys: Vec<&'static str>,
    pub value: &'static str,
    pub groups: Vec<Group>,
}

impl Table {
    pub fn mean_column(&self) -> String {
        format!("mean_{}", self.value)
    }

    pub fn std_column(&self) -> String {
        format!("std_{}", self.value)
    }

    /// The groups of one source, in table order.
    pub fn of_source<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups.iter().filter(move |g| g.source == source)
    }

    pub fn to_frame(&self) -> PolarsResult<DataFrame> {
        let mut columns = vec![Column::new(
            SOURCE.into(),
            self.groups
                .iter()
                .map(|g| g.source.as_str())
                .collect::<Vec<_>>(),
        )];
        for (i, key) in self.keys.iter().enumerate() {
            columns.push(Column::new(
                (*key).into(),
                self.groups
                    .iter()
                    .map(|g| g.key[i].as_deref())
                    .collect::<Vec<_>>(),
            ));
        }
        let stat = |f: fn(&Stat) -> Option<f64>| -> Vec<Option<f64>> {
            self.groups.iter().map(|g| f(&g.stat)).collect()
        };
        columns.push(Column::new(
            ROWS.into(),
            self.groups
                .iter()
                .map(|g| g.stat.rows as u64)
                .collect::<Vec<_>>(),
        ));
        columns.push(Column::new(self.mean_column().into(), stat(|s| s.mean)));
        columns.push(Column::new(self.std_column().into(), stat(|s| s.std)));
        columns.push(Column::new(CI_LOW.into(), stat(|s| s.ci_low)));
        columns.push(Column::new(CI_HIGH.into(), stat(|s| s.ci_high)));
        DataFrame::new_infer_height(columns)
    }
}

/// Every insight the report stage writes.
pub struct Insights {
    pub tables: Vec<Table>,
    pub report: InsightsReport,
}

impl Insights {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// The index of a 0-1 quality score's range in [`QUALITY_RANGES`]; null
/// without a score (labelled after grouping, see [`range_label`]).
fn quality_range() -> Expr {
    let score = col(QUALITY_SCORE);
    let last = QUALITY_RANGES.len() as u32 - 1;
    let mut expr = lit(last);
    for (i, (_, upper)) in QUALITY_RANGES.iter().enumerate().rev().skip(1) {
        expr = when(score.clone().lt(lit(*upper)))
            .then(lit(i as u32))
            .otherwise(expr);
    }
    when(score.is_null())
        .then(lit(NULL).cast(DataType::UInt32))
        .otherwise(expr)
}

/// A range index (as grouped) back to its label; null is `no score`.
fn range_label(index: Option<&str>) -> String {
    index
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| QUALITY_RANGES.get(i))
        .map_or(NO_SCORE, |(label, _)| label)
        .to_string()
}

/// Every quality range of every source, an empty one as zero rows.
fn with_empty_ranges(mut groups: Vec<Group>) -> Vec<Group> {
    let sources: BTreeSet<String> = groups.iter().map(|g| g.source.clone()).collect();
    for source in &sources {
        for (label, _) in QUALITY_RANGES {
            let present = groups
                .iter()
                .any(|g| &g.source == source && g.key[0].as_deref() == Some(label));
            if !present {
                groups.push(Group {
                    source: source.clone(),
                    key: vec![Some(label.to_string())],
                    stat: stat(0, None, None),
                });
            }
        }
    }
    // Labels sort in range order, and "no score" after the ranges.
    groups.sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
    groups
}

/// Days since 1970-01-01 back to a date label.
fn day_label(days: &str) -> Option<String> {
    let n: i64 = days.parse().ok()?;
    let date =
        NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(n))?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// The range with the highest mean CSAT among those with at least
/// [`MIN_ROWS`] rows, and the lowest such range whose interval overlaps it.
pub fn optimal_range(ranges: &[Group]) -> (Option<OptimalRange>, Option<String>) {
    let candidates: Vec<&Group> = ranges
        .iter()
        .filter(|g| g.key[0].as_deref() != Some(NO_SCORE))
        .filter(|g| g.stat.rows >= MIN_ROWS && g.stat.mean.is_some())
        .collect();
    let Some(best) = candidates.iter().max_by(|a, b| {
        a.stat
            .mean
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.stat.mean.unwrap_or(f64::NEG_INFINITY))
    }) else {
        return (
            None,
            Some(format!(
                "no quality range has {MIN_ROWS} or more rows with a quality score"
            )),
        );
    };
    // Ranges are in ascending order, so the first overlap is the cheapest.
    let cheapest = candidates
        .iter()
        .find(|g| overlaps(&g.stat, &best.stat))
        .unwrap_or(best);
    (
        Some(OptimalRange {
            best: best.labelled(),
            cheapest_as_good: cheapest.labelled(),
        }),
        None,
    )
}

/// All insight tables and the optimal range, from the clean csat dataset
/// (`_source`, provider, model, action_type, quality_score, csat_score,
/// timestamp) and the clean quality dataset (`_source`, provider, model,
/// action_type, quality_score).
pub fn compute(csat: LazyFrame, quality: LazyFrame, now: DateTime<Utc>) -> Result<Insights> {
    let day = col(TIMESTAMP)
        .cast(DataType::Int64)
        .floor_div(lit(86_400_000_000i64));
    let keys = [
        (QUALITY_RANGE, quality_range()),
        (PROVIDER, col(PROVIDER)),
        (MODEL, col(MODEL)),
        (ACTION_TYPE, col(ACTION_TYPE)),
        (DAY, day),
    ];
    let layouts: [&[&str]; 5] = [
        &[QUALITY_RANGE],
        &[PROVIDER],
        &[PROVIDER, MODEL],
        &[ACTION_TYPE],
        &[PROVIDER, DAY],
    ];
    let [mut ranges, by_provider, by_model, by_action, mut by_day]: [Vec<Group>; 5] =
        grouped_tables(csat, &keys, CSAT_SCORE, &layouts)
            .context("CSAT by quality range, provider, model, action type and day")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("one result per insight table"))?;
    for g in &mut ranges {
        g.key[0] = Some(range_label(g.key[0].as_deref()));
    }
    let ranges = with_empty_ranges(ranges);
    for g in &mut by_day {
        g.key[1] = g.key[1].as_deref().and_then(day_label);
    }
    let baselines = quality_baselines(quality)?;
    let sources = source_insights(&ranges);
    let csat_table = |name, keys: Vec<&'static str>, groups| Table {
        name,
        keys,
        value: CSAT_SCORE,
        groups,
    };
    let tables = vec![
        csat_table(insight::CSAT_BY_QUALITY_RANGE, vec![QUALITY_RANGE], ranges),
        csat_table(insight::CSAT_BY_PROVIDER, vec![PROVIDER], by_provider),
        csat_table(insight::CSAT_BY_MODEL, vec![PROVIDER, MODEL], by_model),
        csat_table(insight::CSAT_BY_ACTION_TYPE, vec![ACTION_TYPE], by_action),
        csat_table(insight::CSAT_BY_DAY, vec![PROVIDER, DAY], by_day),
        Table {
            name: insight::QUALITY_BASELINES,
            keys: vec![GROUPING, PROVIDER, MODEL, ACTION_TYPE],
            value: QUALITY_SCORE,
            groups: baselines,
        },
    ];
    Ok(Insights {
        tables,
        report: InsightsReport {
            computed_at: now,
            min_rows: MIN_ROWS,
            rule: format!(
                "best = the quality range with the highest mean CSAT among ranges with at least \
                 {MIN_ROWS} rows; cheapest_as_good = the lowest such range whose 95% t-interval \
                 overlaps the best's"
            ),
            sources,
        },
    })
}

/// Mean quality score by provider / model and by action type, in one table
/// keyed (grouping, provider, model, action_type).
fn quality_baselines(quality: LazyFrame) -> Result<Vec<Group>> {
    let groupings: [(&str, &[&str]); 2] = [
        ("provider_model", &[PROVIDER, MODEL]),
        ("action_type", &[ACTION_TYPE]),
    ];
    let keys = [
        (PROVIDER, col(PROVIDER)),
        (MODEL, col(MODEL)),
        (ACTION_TYPE, col(ACTION_TYPE)),
    ];
    let layouts: Vec<&[&str]> = groupings.iter().map(|(_, k)| *k).collect();
    let tables =
        grouped_tables(quality, &keys, QUALITY_SCORE, &layouts).context("quality baselines")?;
    let mut baselines = Vec::new();
    for ((grouping, keys), groups) in groupings.iter().zip(tables) {
        for g in groups {
            let mut key = vec![Some(grouping.to_string()), None, None, None];
            for (k, v) in keys.iter().zip(g.key) {
                let slot = match *k {
                    PROVIDER => 1,
                    MODEL => 2,
                    _ => 3,
                };
                key[slot] = v;
            }
            baselines.push(Group { key, ..g });
        }
    }
    Ok(baselines)
}

/// Per source: its CSAT rows, quality ranges and optimal range.
fn source_insights(ranges: &[Group]) -> BTreeMap<String, SourceInsights> {
    let mut sources = BTreeMap::new();
    let by_source: BTreeSet<String> = ranges.iter().map(|g| g.source.clone()).collect();
    for source in by_source {
        let of_source: Vec<Group> = ranges
            .iter()
            .filter(|g| g.source == source)
            .cloned()
            .collect();
        let (optimal, note) = optimal_range(&of_source);
        sources.insert(
            source,
            SourceInsights {
                rows: of_source.iter().map(|g| g.stat.rows).sum(),
                optimal,
                note,
                ranges: of_source.iter().map(Group::labelled).collect(),
            },
        );
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn stat_by_hand() {
        // 0.2, 0.4, 0.6: mean 0.4, sample sd 0.2, t(0.975, 2) = 4.302652729911275.
        let s = stat(3, Some(0.4), Some(0.2));
        let half = 4.302652729911275 * 0.2 / 3f64.sqrt();
        assert!(close(s.ci_low, 0.4 - half), "{s:?}");
        assert!(close(s.ci_high, 0.4 + half), "{s:?}");
        // One row: a mean, no deviation, no interval.
        let one = stat(1, Some(0.7), None);
        assert_eq!((one.mean, one.std, one.ci_low), (Some(0.7), None, None));
        // No rows: nothing, and never a division by zero.
        assert_eq!(stat(0, Some(f64::NAN), None), Stat::default());
    }

    #[test]
    fn optimal_range_picks_the_cheapest_that_is_as_good() {
        let g = |label: &str, rows, mean: f64, half: f64| Group {
            source: "synth".into(),
            key: vec![Some(label.into())],
            stat: Stat {
                rows,
                mean: Some(mean),
                std: Some(0.1),
                ci_low: Some(mean - half),
                ci_high: Some(mean + half),
            },
        };
        let ranges = vec![
            g("0.0-0.5", 100, 0.50, 0.01),
            g("0.5-0.7", 100, 0.80, 0.03),
            g("0.7-0.8", 100, 0.83, 0.02),
            g("0.8-0.9", 100, 0.84, 0.02),
            // Highest mean, but too few rows to count.
            g("0.9-1.0", 10, 0.99, 0.2),
        ];
        let (best, note) = optimal_range(&ranges);
        let best = best.unwrap();
        assert_eq!(note, None);
        assert_eq!(best.best.group, "0.8-0.9");
        assert_eq!(best.cheapest_as_good.group, "0.5-0.7");
        let (none, note) = optimal_range(&ranges[4..]);
        assert!(none.is_none());
        assert!(note.unwrap().contains("30 or more rows"));
    }

    /// A small fixture worked out by hand: a group with one row, empty
    /// ranges, a row without a quality score, and two sources kept apart.
    #[test]
    fn insight_tables_by_hand() {
        use contract::timestamp::to_micros;
        let day = |d: u32| {
            to_micros(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, d, 12, 0, 0).unwrap())
        };
        let csat = df!(
            SOURCE => ["synth", "synth", "synth", "synth", "synth", "csv"],
            PROVIDER => ["a", "a", "a", "b", "a", "a"],
            MODEL => ["m1", "m1", "m2", "m3", "m1", "m1"],
            ACTION_TYPE => [Some("combat"), Some("combat"), Some("lore"), None, Some("lore"), Some("lore")],
            QUALITY_SCORE => [Some(0.95), Some(0.92), Some(0.55), Some(0.75), None, Some(0.1)],
            CSAT_SCORE => [0.9, 0.8, 0.4, 0.6, 0.5, 0.3],
            TIMESTAMP => [day(1), day(1), day(2), day(2), day(2), day(1)],
        )
        .unwrap();
        let csat = csat
            .lazy()
            .with_column(col(TIMESTAMP).cast(contract::tables::utc_timestamp()))
            .collect()
            .unwrap();
        let quality = df!(
            SOURCE => ["synth", "synth", "synth"],
            PROVIDER => ["a", "a", "b"],
            MODEL => ["m1", "m1", "m3"],
            ACTION_TYPE => ["combat", "lore", "lore"],
            QUALITY_SCORE => [80.0, 90.0, 40.0],
        )
        .unwrap();
        let insights = compute(csat.lazy(), quality.lazy(), Utc::now()).unwrap();
        let table = |name| insights.table(name).unwrap();
        let find = |name, source: &str, key: &[Option<&str>]| -> Stat {
            table(name)
                .groups
                .iter()
                .find(|g| {
                    g.source == source
                        && g.key.iter().map(|k| k.as_deref()).collect::<Vec<_>>() == key
                })
                .unwrap_or_else(|| panic!("{name}: no group {source} {key:?}"))
                .stat
        };
        let ranges = insight::CSAT_BY_QUALITY_RANGE;
        // 0.9-1.0: 0.9 and 0.8 -> mean 0.85, sd sqrt(0.005) = 0.0707107,
        // t(0.975, 1) = 12.7062047 -> half = 12.7062047 * 0.0707107 / sqrt(2) = 0.6353102.
        let top = find(ranges, "synth", &[Some("0.9-1.0")]);
        assert_eq!(top.rows, 2);
        assert!(close(top.mean, 0.85));
        assert!(close(top.std.map(|s| (s * 1e7).round() / 1e7), 0.0707107));
        assert!(
            (top.ci_low.unwrap() - (0.85 - 0.6353102)).abs() < 1e-6,
            "{top:?}"
        );
        assert!(
            (top.ci_high.unwrap() - (0.85 + 0.6353102)).abs() < 1e-6,
            "{top:?}"
        );
        // One row: its mean, no deviation, no interval.
        let one = find(ranges, "synth", &[Some("0.7-0.8")]);
        assert_eq!(
            (one.rows, one.mean, one.std, one.ci_low),
            (1, Some(0.6), None, None)
        );
        // Empty ranges are there, as empty.
        for empty in ["0.0-0.5", "0.8-0.9"] {
            assert_eq!(find(ranges, "synth", &[Some(empty)]), Stat::default());
        }
        assert_eq!(find(ranges, "synth", &[Some(NO_SCORE)]).rows, 1);
        // The csv row is its own source, never pooled with synth.
        assert_eq!(find(ranges, "csv", &[Some("0.0-0.5")]).rows, 1);
        // Five ranges per source, and "no score" where there is such a row.
        assert_eq!(table(ranges).groups.len(), 5 + 1 + 5);
        // Provider a (synth): 0.9, 0.8, 0.4, 0.5 -> mean 0.65, sd = sqrt(0.17 / 3).
        let a = find(insight::CSAT_BY_PROVIDER, "synth", &[Some("a")]);
        let sd = (0.17f64 / 3.0).sqrt();
        let half = 3.182446305284263 * sd / 2.0;
        assert!(close(a.mean, 0.65) && close(a.std, sd) && close(a.ci_low, 0.65 - half));
        let b = find(insight::CSAT_BY_MODEL, "synth", &[Some("b"), Some("m3")]);
        assert_eq!((b.rows, b.mean, b.ci_high), (1, Some(0.6), None));
        // A null action type is its own group, not dropped.
        assert_eq!(find(insight::CSAT_BY_ACTION_TYPE, "synth", &[None]).rows, 1);
        let nov2 = find(
            insight::CSAT_BY_DAY,
            "synth",
            &[Some("a"), Some("2026-11-02")],
        );
        assert_eq!(nov2.rows, 2);
        assert!(close(nov2.mean, 0.45));
        let pm = find(
            insight::QUALITY_BASELINES,
            "synth",
            &[Some("provider_model"), Some("a"), Some("m1"), None],
        );
        assert_eq!(pm.rows, 2);
        assert!(close(pm.mean, 85.0));
        let lore = find(
            insight::QUALITY_BASELINES,
            "synth",
            &[Some("action_type"), None, None, Some("lore")],
        );
        assert!(close(lore.mean, 65.0));
        // No range has 30 rows: no optimum, and a note that says why.
        let synth = &insights.report.sources["synth"];
        assert!(synth.optimal.is_none());
        assert!(synth.note.as_deref().unwrap().contains("30"));
        assert_eq!(synth.rows, 5);
        // Every table makes a frame with the documented columns.
        let frame = table(ranges).to_frame().unwrap();
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            names,
            [
                SOURCE,
                QUALITY_RANGE,
                ROWS,
                "mean_csat_score",
                "std_csat_score",
                CI_LOW,
                CI_HIGH
            ]
        );
    }
}
