//! `transform`: the raw tables in `data/raw` become the three training datasets
//! in `data/training`, exactly as DESIGN.md maps them. Column work only: polars
//! lazy expressions, no row loops, run on polars' streaming engine so memory
//! does not grow with the tables (see [`Engine`]).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use contract::columns::*;
use contract::commit::Commit;
use contract::progress::Progress;
use contract::{Dataset, Layout, RawTable, SYNTH_SOURCE, io};
use polars::prelude::*;
use rayon::prelude::*;

mod earliest;

/// Builds DATA/training/{quality,csat,performance}.parquet from DATA/raw.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Root of the data layout.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Allow synthetic rows (_source = synth) beside real ones.
    #[arg(long)]
    pub allow_mixed: bool,
    /// No progress bar or progress lines (errors are printed all the same).
    #[arg(long)]
    pub quiet: bool,
    /// How the datasets are computed: streaming reads the raw parts batch by
    /// batch and writes each dataset as it is built; in-memory reads the
    /// tables whole first (the same rows; kept to check the streamed output).
    #[arg(long, value_enum, default_value_t = Engine::Streaming)]
    pub engine: Engine,
}

/// The polars engine a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Polars' streaming engine: memory holds what the plans must keep (the
    /// ratings' group-by and join build side: one row per rated response;
    /// the earliest A/B prediction of each response), never a whole table
    /// or dataset.
    Streaming,
    /// Every raw table read whole (on every core), the datasets built in
    /// memory, then written.
    InMemory,
}

impl Engine {
    fn polars(self) -> polars::prelude::Engine {
        match self {
            Engine::Streaming => polars::prelude::Engine::Streaming,
            Engine::InMemory => polars::prelude::Engine::InMemory,
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    contract::progress::set_quiet(args.quiet);
    let layout = Layout::new(&args.data);
    // Holds the data folder while reading raw/ and until the three datasets
    // replace the old ones together.
    let mut commit = Commit::begin(&layout, "transform")?;
    // Every raw table has parts before any progress starts.
    for table in RawTable::ALL {
        layout.raw_parts(table)?;
    }
    // Only the columns the datasets use: Parquet reads just those.
    // Steps: three raw tables read, three datasets built and written.
    let progress = Progress::new("transform", "raw tables -> datasets", "steps", Some(6));
    let mut raw = Vec::new();
    for table in RawTable::ALL {
        let columns = used_columns(table);
        raw.push(match args.engine {
            Engine::Streaming => {
                // Each part's footer is checked here; rows are read later,
                // batch by batch, as the plans ask for them.
                progress.set_phase(&format!("checking {}", table.name()));
                io::scan_raw_columns(&layout, table, columns)?
            }
            Engine::InMemory => {
                progress.set_phase(&format!("reading {}", table.name()));
                io::read_raw_columns(&layout, table, columns)?.lazy()
            }
        });
        progress.inc(1);
    }
    check_sources(&layout, &raw, args.allow_mixed, args.engine)?;
    let [explanations, fb, ab]: [LazyFrame; 3] = raw
        .try_into()
        .map_err(|_| anyhow::anyhow!("three raw tables"))?;
    let ab_rows = layout
        .raw_parts(RawTable::AbTesting)?
        .iter()
        .map(|part| io::parquet_rows(part))
        .sum::<Result<usize, _>>()?;
    // Each dataset is staged as soon as it is built (writing one beside
    // building the next measured no faster: the joins keep both cores busy);
    // none replaces the old ones until all three are there.
    let mut lines = Vec::new();
    for dataset in Dataset::ALL {
        progress.set_phase(&format!("building {dataset}"));
        let context = || format!("building the {dataset} dataset");
        let plan = match dataset {
            Dataset::Quality => quality(explanations.clone(), fb.clone()),
            // On the streaming engine this reads the A/B rows already.
            Dataset::Csat => match csat(fb.clone(), ab.clone(), ab_rows, args.engine) {
                Ok(plan) => plan,
                Err(e) => {
                    let e = contract::ContractError::Frame {
                        path: layout.raw_dir(RawTable::AbTesting),
                        source: e,
                    };
                    return Err(streaming_failure(&layout, e, &context()));
                }
            },
            Dataset::Performance => performance(ab.clone()),
        };
        let plan = conform(plan, dataset);
        let path = layout.training(dataset);
        let staged = commit.file(&path)?;
        let rows = match args.engine {
            Engine::Streaming => match io::sink_parquet_fast(plan, &staged) {
                Ok(rows) => rows,
                Err(e) => return Err(streaming_failure(&layout, e, &context())),
            },
            Engine::InMemory => {
                let mut df = plan
                    .collect()
                    .map_err(anyhow::Error::from)
                    .with_context(context)?;
                io::write_parquet_fast(&mut df, &staged)?;
                df.height()
            }
        };
        lines.push(format!(
            "transform: {:<12} {:>9} rows -> {}",
            dataset.name(),
            rows,
            path.display()
        ));
        progress.inc(1);
    }
    progress.finish();
    commit.finish()?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The error of a streamed dataset that failed. The streaming engine's
/// errors do not say which file they came from, so the raw parts are read
/// again, one at a time, for the first that does not read: that error names
/// the part, as the in-memory engine's does. Otherwise (a full disk, say)
/// the engine's own error, with what was being built.
fn streaming_failure(
    layout: &Layout,
    error: contract::ContractError,
    doing: &str,
) -> anyhow::Error {
    for table in RawTable::ALL {
        match io::find_unreadable_raw_part(layout, table, used_columns(table)) {
            Ok(Some(unreadable)) => return unreadable.into(),
            Ok(None) => {}
            Err(e) => return e.into(),
        }
    }
    anyhow::Error::from(error).context(doing.to_string())
}

/// The raw columns each table contributes to the datasets.
fn used_columns(table: RawTable) -> &'static [&'static str] {
    match table {
        RawTable::Explanations => &[
            ID,
            CREATED_AT,
            SOURCE,
            PROVIDER,
            MODEL,
            ACTION_TYPE,
            SCENARIO_ID,
            QUALITY_SCORE,
            METADATA,
            EXTRA,
        ],
        RawTable::Feedback => &[
            ID,
            CREATED_AT,
            SOURCE,
            SESSION_ID,
            RESPONSE_ID,
            PROVIDER,
            MODEL,
            ACTION_TYPE,
            QUALITY_RATING,
            RESPONSE_TIME_MS,
        ],
        RawTable::AbTesting => &[
            ID,
            CREATED_AT,
            SOURCE,
            EXPERIMENT_NAME,
            VARIANT,
            PROVIDER,
            MODEL,
            RESPONSE_ID,
            PREDICTED_QUALITY,
            USER_RATING,
        ],
    }
}

/// Refuses to mix synthetic rows with real ones unless asked to.
fn check_sources(
    layout: &Layout,
    raw: &[LazyFrame],
    allow_mixed: bool,
    engine: Engine,
) -> Result<()> {
    let mut sources = BTreeSet::new();
    for plan in raw {
        let unique = plan
            .clone()
            .select([col(SOURCE)])
            .unique(None, UniqueKeepStrategy::Any)
            .collect_with_engine(engine.polars())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: reading {SOURCE}", layout.raw_root().display()))?
            .unwrap_single();
        for s in unique.column(SOURCE)?.str()?.iter().flatten() {
            sources.insert(s.to_string());
        }
    }
    let real: Vec<&String> = sources.iter().filter(|s| *s != SYNTH_SOURCE).collect();
    if sources.contains(SYNTH_SOURCE) && !real.is_empty() && !allow_mixed {
        bail!(
            "{}: refusing to mix synthetic rows (_source = synth) with real rows (_source = {}); \
             re-extract or re-synth so one source remains, or pass --allow-mixed",
            layout.raw_root().display(),
            real.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Select exactly the dataset's columns, in order, with the contract's types.
fn conform(plan: LazyFrame, dataset: Dataset) -> LazyFrame {
    let exprs: Vec<Expr> = dataset
        .columns()
        .iter()
        .map(|(name, kind)| col(*name).cast(kind.dtype()))
        .collect();
    plan.select(exprs)
}

/// The six metrics and the response id out of the metadata JSON, parsing each
/// document once into just those keys (every other key is skipped without
/// being kept, a response id is borrowed from the text), on every core; the
/// seven columns are then built in parallel too. A key that is absent, null
/// or not a number gives null, never 0.
fn metadata_columns(metadata: &Column) -> PolarsResult<Vec<Column>> {
    let texts: Vec<Option<&str>> = metadata.str()?.iter().collect();
    let rows: Vec<MetadataRow> = texts
        .par_iter()
        .map(|t| {
            let m = t
                .and_then(|t| serde_json::from_str::<Metadata>(t).ok())
                .unwrap_or_default();
            let value = |n: &Option<Number>| n.as_ref().and_then(Number::value);
            MetadataRow {
                metrics: [
                    value(&m.code_quality),
                    value(&m.test_coverage),
                    value(&m.security),
                    value(&m.performance),
                    value(&m.maintainability),
                    value(&m.complexity),
                ],
                response: m.response_id.and_then(Number::into_text),
            }
        })
        .collect();
    let columns = (0..=METRICS.len())
        .into_par_iter()
        .map(|k| match METRICS.get(k) {
            Some((_, name)) => {
                Float64Chunked::from_iter_options((*name).into(), rows.iter().map(|r| r.metrics[k]))
                    .into_column()
            }
            None => StringChunked::from_iter_options(
                METADATA_RESPONSE.into(),
                rows.iter().map(|r| r.response.as_deref()),
            )
            .into_column(),
        })
        .collect();
    Ok(columns)
}

/// One document's values, in the order of contract::columns::METRICS.
struct MetadataRow<'a> {
    metrics: [Option<f64>; 6],
    response: Option<std::borrow::Cow<'a, str>>,
}

/// The keys of `metadata` the datasets use (names in contract::columns::METRICS).
#[derive(Default, serde::Deserialize)]
struct Metadata<'a> {
    #[serde(rename = "codeQuality", default)]
    code_quality: Option<Number<'a>>,
    #[serde(rename = "testCoverage", default)]
    test_coverage: Option<Number<'a>>,
    #[serde(default)]
    security: Option<Number<'a>>,
    #[serde(default)]
    performance: Option<Number<'a>>,
    #[serde(default)]
    maintainability: Option<Number<'a>>,
    #[serde(default)]
    complexity: Option<Number<'a>>,
    #[serde(rename = "responseId", default, borrow)]
    response_id: Option<Number<'a>>,
}

/// A metadata value: a number, text holding one, or anything else (ignored).
enum Number<'a> {
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(std::borrow::Cow<'a, str>),
    Other,
}

/// Decoded straight from the JSON token: `#[serde(untagged)]` would buffer
/// each value and build (and format) an error for every variant it rules
/// out, which cost a quarter of transform's CPU.
impl<'de: 'a, 'a> serde::Deserialize<'de> for Number<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Number<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, x: i64) -> Result<Number<'a>, E> {
                Ok(Number::Int(x))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Number<'a>, E> {
                Ok(Number::Unsigned(x))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Number<'a>, E> {
                Ok(Number::Float(x))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Number<'a>, E> {
                Ok(Number::Text(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Number<'a>, E> {
                Ok(Number::Text(std::borrow::Cow::Owned(s.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Number<'a>, E> {
                Ok(Number::Other)
            }
            fn visit_unit<E>(self) -> Result<Number<'a>, E> {
                Ok(Number::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Number<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Number::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Number<'a>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Number::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl<'a> Number<'a> {
    fn value(&self) -> Option<f64> {
        match self {
            Number::Int(x) => Some(*x as f64),
            Number::Unsigned(x) => Some(*x as f64),
            Number::Float(x) => Some(*x),
            Number::Text(s) => s.trim().parse().ok(),
            Number::Other => None,
        }
    }

    /// As a response id: text as it is, a number as JSON writes it.
    fn into_text(self) -> Option<std::borrow::Cow<'a, str>> {
        match self {
            Number::Text(s) => Some(s),
            Number::Int(x) => Some(x.to_string().into()),
            Number::Unsigned(x) => Some(x.to_string().into()),
            Number::Float(x) => Some(serde_json::Number::from_f64(x)?.to_string().into()),
            Number::Other => None,
        }
    }
}

const METADATA_RESPONSE: &str = "__metadata_response";

fn json_text(column: &str, key: &str) -> Expr {
    col(column).str().json_path_match(lit(format!("$.{key}")))
}

/// Every dataset row's lineage (the raw table and row it came from, its time
/// and source) followed by `rest`.
fn with_lineage(table: RawTable, rest: impl IntoIterator<Item = Expr>) -> Vec<Expr> {
    let mut columns = vec![
        lit(table.name()).alias(SOURCE_TABLE),
        col(ID).alias(SOURCE_ID),
        col(CREATED_AT).alias(TIMESTAMP),
        col(SOURCE),
    ];
    columns.extend(rest);
    columns
}

/// A left join that keeps the left rows in their order (no sort afterwards).
fn left_join_in_order() -> JoinArgs {
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    args
}

fn null_text() -> Expr {
    lit(NULL).cast(DataType::String)
}

fn null_number() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

const RESPONSE_KEY: &str = "__response";

/// The explanations with their metadata text replaced by the seven columns
/// [`metadata_columns`] parses out of it. A map over frames that the
/// streaming engine runs batch by batch (the in-memory one gives it the
/// whole table): the text is dropped as soon as a batch is parsed.
fn with_metadata_columns(explanations: LazyFrame) -> LazyFrame {
    let schema = |input: &Schema| -> PolarsResult<SchemaRef> {
        let mut schema = input.clone();
        schema.shift_remove(METADATA);
        for (_, name) in METRICS {
            schema.with_column((*name).into(), DataType::Float64);
        }
        schema.with_column(METADATA_RESPONSE.into(), DataType::String);
        Ok(Arc::new(schema))
    };
    explanations.map(
        |df: DataFrame| {
            let parsed = metadata_columns(df.column(METADATA)?)?;
            let mut df = df.drop(METADATA)?;
            df.hstack_mut(&parsed)?;
            Ok(df)
        },
        // Streamable; no pushdown past it (its input must keep the text).
        OptFlags::STREAMING,
        Some(Arc::new(schema)),
        Some("metadata"),
    )
}

/// The two halves of a join key's 128-bit hash, the columns the joins and
/// group-bys match on.
const KEY_HI: &str = "__key_hi";
const KEY_LO: &str = "__key_lo";

/// `plan` with `column`'s text replaced by its 128-bit xxh3 hash, as two
/// u64 columns ([`KEY_HI`], [`KEY_LO`]; null for a null key). The joins'
/// build sides and the group-by tables hold every response id of a table:
/// 16 bytes a key instead of the id's text (a UUID is 52 bytes as a view and
/// its text). Two distinct ids share a hash with odds of about n^2 / 2^129
/// (1e-23 for 30M ids). A map the streaming engine runs batch by batch.
/// A response id's 128-bit xxh3 hash as its (high, low) halves: the key of
/// the joins and group-bys here, and of [`earliest::Earliest`]'s table.
fn key_halves(id: &str) -> [u64; 2] {
    let hash = xxhash_rust::xxh3::xxh3_128(id.as_bytes());
    [(hash >> 64) as u64, hash as u64]
}

/// `plan` with a column `name` of type `dtype` added to each batch by `f`: a
/// map the streaming engine runs batch by batch (`label` names it in plans).
fn with_computed_column(
    plan: LazyFrame,
    name: &'static str,
    dtype: DataType,
    label: &'static str,
    f: impl Fn(&DataFrame) -> PolarsResult<Column> + Send + Sync + 'static,
) -> LazyFrame {
    let schema = move |input: &Schema| -> PolarsResult<SchemaRef> {
        let mut schema = input.clone();
        schema.with_column(name.into(), dtype.clone());
        Ok(Arc::new(schema))
    };
    plan.map(
        move |mut df: DataFrame| {
            let column = f(&df)?.with_name(name.into());
            df.with_column(column)?;
            Ok(df)
        },
        OptFlags::STREAMING,
        Some(Arc::new(schema)),
        Some(label),
    )
}

fn with_key_hash(plan: LazyFrame, column: &'static str) -> LazyFrame {
    let schema = move |input: &Schema| -> PolarsResult<SchemaRef> {
        let mut schema = input.clone();
        schema.shift_remove(column);
        schema.with_column(KEY_HI.into(), DataType::UInt64);
        schema.with_column(KEY_LO.into(), DataType::UInt64);
        Ok(Arc::new(schema))
    };
    plan.map(
        move |df: DataFrame| {
            let keys = df.column(column)?.str()?.clone();
            let hashes: Vec<Option<[u64; 2]>> = keys.iter().map(|k| k.map(key_halves)).collect();
            let mut df = df.drop(column)?;
            df.hstack_mut(&[
                UInt64Chunked::from_iter_options(
                    KEY_HI.into(),
                    hashes.iter().map(|h| h.map(|h| h[0])),
                )
                .into_column(),
                UInt64Chunked::from_iter_options(
                    KEY_LO.into(),
                    hashes.iter().map(|h| h.map(|h| h[1])),
                )
                .into_column(),
            ])?;
            Ok(df)
        },
        OptFlags::STREAMING,
        Some(Arc::new(schema)),
        Some("key hash"),
    )
}

fn key_hash() -> [Expr; 2] {
    [col(KEY_HI), col(KEY_LO)]
}

/// One row per explanation: metrics from metadata (null when absent), the
/// score on 0-100, and csat = mean of the valid (0-1) ratings of the response.
pub fn quality(explanations: LazyFrame, feedback: LazyFrame) -> LazyFrame {
    let ratings = feedback.filter(
        col(RESPONSE_ID).is_not_null().and(
            col(QUALITY_RATING)
                .gt_eq(lit(0.0))
                .and(col(QUALITY_RATING).lt_eq(lit(1.0))),
        ),
    );
    let ratings = with_key_hash(
        ratings.select([col(RESPONSE_ID), col(QUALITY_RATING)]),
        RESPONSE_ID,
    );
    // Each response's ratings are summed in value order: the same bits
    // whichever batches the rows came in (a streamed mean adds up partial
    // sums in the order its threads finish, which moved the last bit of about
    // one csat in 200 from run to run). One or two ratings need no order
    // (a + b is b + a), so their mean comes from the count, the smallest and
    // the largest, all streaming reductions (one group-by row a response, no
    // list per response: polars gathers lists on its in-memory engine,
    // 1.2 GB at 10M rows per table). Only the responses rated three times or
    // more (4% of them in the synthetic data) have their ratings listed.
    const COUNT: &str = "__count";
    const LOW: &str = "__low";
    const HIGH: &str = "__high";
    const LISTED: &str = "__listed";
    let counted = ratings.clone().group_by(key_hash()).agg([
        len().alias(COUNT),
        col(QUALITY_RATING).min().alias(LOW),
        col(QUALITY_RATING).max().alias(HIGH),
    ]);
    let many = counted
        .clone()
        .filter(col(COUNT).gt_eq(lit(3)))
        .select(key_hash());
    let listed = ratings
        .join(many, key_hash(), key_hash(), JoinArgs::new(JoinType::Inner))
        .group_by(key_hash())
        .agg([col(QUALITY_RATING)])
        .select([
            col(KEY_HI),
            col(KEY_LO),
            col(QUALITY_RATING)
                .list()
                .sort(SortOptions::default())
                .list()
                .mean()
                .alias(LISTED),
        ]);
    let ratings = counted
        .join(
            listed,
            key_hash(),
            key_hash(),
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col(KEY_HI),
            col(KEY_LO),
            when(col(COUNT).eq(lit(1)))
                .then(col(LOW))
                .when(col(COUNT).eq(lit(2)))
                .then((col(LOW) + col(HIGH)) / lit(2.0))
                .otherwise(col(LISTED))
                .alias(CSAT),
        ]);

    let from_extra = json_text(EXTRA, RESPONSE_ID);
    let response_key = when(from_extra.clone().is_not_null())
        .then(from_extra)
        .otherwise(col(METADATA_RESPONSE))
        .alias(RESPONSE_KEY);

    let mut columns = with_lineage(
        RawTable::Explanations,
        [
            col(PROVIDER),
            col(MODEL),
            col(ACTION_TYPE),
            col(SCENARIO_ID),
            (col(QUALITY_SCORE) * lit(100.0)).alias(QUALITY_SCORE),
            response_key,
        ],
    );
    columns.extend(METRICS.iter().map(|(_, name)| col(*name)));
    with_key_hash(
        with_metadata_columns(explanations).select(columns),
        RESPONSE_KEY,
    )
    .join(ratings, key_hash(), key_hash(), left_join_in_order())
}

/// One row per feedback row (quality_score from the A/B row of the same
/// response, the earliest if several; see [`earliest`]) and one per A/B row.
/// On the streaming engine the earliest predictions are read here, first.
/// `ab_rows` is the A/B table's row count.
pub fn csat(
    feedback: LazyFrame,
    ab_testing: LazyFrame,
    ab_rows: usize,
    engine: Engine,
) -> PolarsResult<LazyFrame> {
    let with_quality = match engine {
        Engine::Streaming => {
            Arc::new(earliest::Earliest::build(ab_testing.clone(), ab_rows)?).looked_up(feedback)
        }
        Engine::InMemory => {
            // The A/B rows with a response (its id, time and predicted
            // quality) sorted in the order `Earliest` keeps; ties keep their
            // order: the same rows on both engines.
            let (keyed, order) = earliest::sort_key(earliest::predictions(ab_testing.clone()));
            let predicted = with_key_hash(keyed, RESPONSE_ID)
                .sort(
                    order,
                    SortMultipleOptions::default()
                        .with_maintain_order(true)
                        .with_nulls_last(true),
                )
                .unique_stable(Some(cols([KEY_HI, KEY_LO])), UniqueKeepStrategy::First)
                .select([
                    col(KEY_HI),
                    col(KEY_LO),
                    col(PREDICTED_QUALITY).alias(QUALITY_SCORE),
                ]);
            with_key_hash(feedback, RESPONSE_ID).join(
                predicted,
                key_hash(),
                key_hash(),
                left_join_in_order(),
            )
        }
    };
    let from_feedback = with_quality.select(with_lineage(
        RawTable::Feedback,
        [
            col(PROVIDER),
            col(MODEL),
            col(ACTION_TYPE),
            col(SESSION_ID),
            col(RESPONSE_TIME_MS),
            col(QUALITY_SCORE),
            col(QUALITY_RATING).alias(CSAT_SCORE),
        ],
    ));

    let from_ab = ab_testing.select(with_lineage(
        RawTable::AbTesting,
        [
            col(PROVIDER),
            col(MODEL),
            null_text().alias(ACTION_TYPE),
            null_text().alias(SESSION_ID),
            null_number().alias(RESPONSE_TIME_MS),
            col(PREDICTED_QUALITY).alias(QUALITY_SCORE),
            col(USER_RATING).alias(CSAT_SCORE),
        ],
    ));

    concat([from_feedback, from_ab], UnionArgs::default())
}

/// One row per A/B row: how the predicted quality compared with the rating.
pub fn performance(ab_testing: LazyFrame) -> LazyFrame {
    ab_testing.select(with_lineage(
        RawTable::AbTesting,
        [
            col(EXPERIMENT_NAME).alias(MODEL_NAME),
            col(VARIANT),
            col(PROVIDER),
            col(MODEL),
            col(PREDICTED_QUALITY).alias(PREDICTION),
            col(USER_RATING).alias(ACTUAL),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape a metadata value can take: numbers (integer, float, huge,
    /// as text), and values that give null (bool, null, object, array, text
    /// that is not a number, a missing key, a document that is not JSON).
    #[test]
    fn metadata_values_of_every_shape() {
        let docs = Column::new(
            METADATA.into(),
            [
                Some(
                    r#"{"codeQuality": 80, "testCoverage": 7.5, "security": "91", "responseId": "r-1"}"#,
                ),
                Some(
                    r#"{"codeQuality": 18446744073709551615, "security": " 3.25 ", "responseId": 42}"#,
                ),
                Some(
                    r#"{"codeQuality": true, "testCoverage": null, "security": {"a": [1, 2]}, "performance": [1], "maintainability": "n/a", "responseId": 1.5}"#,
                ),
                Some(
                    r#"{"other": {"codeQuality": 5}, "complexity": -2e3, "responseId": {"id": 1}}"#,
                ),
                Some("not json"),
                None,
            ],
        );
        let columns = metadata_columns(&docs).unwrap();
        let values = |name: &str| -> Vec<Option<f64>> {
            let c = columns.iter().find(|c| c.name() == name).unwrap();
            c.f64().unwrap().iter().collect()
        };
        assert_eq!(
            values(CODE_QUALITY),
            [
                Some(80.0),
                Some(18446744073709551615.0),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            values(TEST_COVERAGE),
            [Some(7.5), None, None, None, None, None]
        );
        assert_eq!(
            values(SECURITY),
            [Some(91.0), Some(3.25), None, None, None, None]
        );
        assert_eq!(values(PERFORMANCE), [None; 6]);
        assert_eq!(values(MAINTAINABILITY), [None; 6]);
        assert_eq!(
            values(COMPLEXITY),
            [None, None, None, Some(-2000.0), None, None]
        );
        let response: Vec<Option<&str>> = columns
            .iter()
            .find(|c| c.name() == METADATA_RESPONSE)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            response,
            [Some("r-1"), Some("42"), Some("1.5"), None, None, None]
        );
    }

    /// The keys this stage reads are the contract's (serde's renames cannot
    /// name a constant): a document with only the contract's key for one
    /// metric fills that metric's column, and the response id likewise.
    #[test]
    fn metadata_keys_are_the_contracts() {
        for (k, (key, column)) in METRICS.iter().enumerate() {
            let doc = format!(r#"{{"{key}": {}, "{METADATA_RESPONSE_ID}": "r"}}"#, k + 1);
            let docs = Column::new(METADATA.into(), [Some(doc.as_str())]);
            let columns = metadata_columns(&docs).unwrap();
            for c in &columns {
                let expected = if c.name() == *column {
                    Some(AnyValue::Float64((k + 1) as f64))
                } else if c.name() == METADATA_RESPONSE {
                    Some(AnyValue::String("r"))
                } else {
                    None
                };
                let got = c.get(0).unwrap();
                assert_eq!(got.is_null(), expected.is_none(), "{key}: {}", c.name());
                if let Some(v) = expected {
                    assert_eq!(got, v, "{key}: {}", c.name());
                }
            }
        }
    }
}
