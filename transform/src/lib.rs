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

mod earliest;
mod keys;
mod metadata;

use crate::keys::{KEY_HI, KEY_LO, key_hash, with_key_hash};
use crate::metadata::{METADATA_RESPONSE, with_metadata_columns};

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
