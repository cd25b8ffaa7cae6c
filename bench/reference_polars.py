"""The short script our users weigh the pipeline against: polars (lazy) to load,
reshape and validate the three Supabase CSV exports, LightGBM fed integer codes,
one holdout fit per model with LightGBM's defaults, held-out R2/MAE/RMSE.

Same job as `extract --source csv`, `transform`, `validate` and `train`, minus
the files between stages, the rejects with reasons, model selection, the
baselines and the report. Run: python3 bench/reference_polars.py CSV_DIR

With a second argument, LAYERS_DIR, the same script also writes the layers our
stages write, as they write them, and reads each back before the next step: the
typed tables as zstd-1 Parquet (raw/), the reshaped rows uncompressed (training/),
the rows kept and the rows dropped uncompressed (clean/, rejected/), and the fits
read the clean files. That is what the files between stages cost polars itself:
`make bench` runs both ways.
"""
import os
import sys
import time

import lightgbm as lgb
import numpy as np
import polars as pl

t0 = time.time()
src = sys.argv[1]
SEED = 42
now = pl.lit(time.time() * 1e6).cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
horizon = now + pl.duration(minutes=5)


def scan(table, schema):
    lf = pl.scan_csv(f"{src}/{table}.csv", infer_schema=False)
    casts = [pl.col("created_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", strict=False).dt.convert_time_zone("UTC")]
    casts += [pl.col(c).cast(pl.Float64, strict=False) for c in schema]
    return lf.with_columns(casts)


layers = sys.argv[2] if len(sys.argv) > 2 else None
raw = {"ai_gm_explanations": ["quality_score"], "ai_gm_quality_feedback": ["quality_rating", "response_time_ms"],
       "ai_gm_ab_testing": ["predicted_quality", "user_rating"]}
if layers:
    for d in ["raw", "training", "clean", "rejected"]:
        os.makedirs(f"{layers}/{d}", exist_ok=True)
    pl.collect_all([scan(t, c).sink_parquet(f"{layers}/raw/{t}.parquet", compression="zstd", compression_level=1, lazy=True)
                    for t, c in raw.items()])
    ex, fb, ab = (pl.scan_parquet(f"{layers}/raw/{t}.parquet") for t in raw)
else:
    ex, fb, ab = (scan(t, c) for t, c in raw.items())

metrics = {"codeQuality": "code_quality", "testCoverage": "test_coverage", "security": "security",
           "performance": "performance", "maintainability": "maintainability", "complexity": "complexity"}
meta = pl.Struct({**{k: pl.Float64 for k in metrics}, "responseId": pl.String})
ratings = (fb.filter(pl.col("quality_rating").is_between(0, 1))
           .group_by("response_id").agg(pl.col("quality_rating").mean().alias("csat")))
quality = (ex.with_columns(pl.col("metadata").str.json_decode(meta).alias("m"))
           .select(pl.lit("ai_gm_explanations").alias("source_table"), pl.col("id").alias("source_id"),
                   pl.col("created_at").alias("timestamp"), "provider", "model", "action_type",
                   *[pl.col("m").struct.field(k).alias(v) for k, v in metrics.items()],
                   pl.col("m").struct.field("responseId").alias("response_id"),
                   (pl.col("quality_score") * 100).alias("quality_score"))
           .join(ratings, on="response_id", how="left"))
predicted = (ab.sort("created_at", "id").unique("response_id", keep="first", maintain_order=True)
             .select("response_id", pl.col("predicted_quality").alias("quality_score")))
csat = pl.concat([
    fb.join(predicted, on="response_id", how="left").select(
        pl.lit("ai_gm_quality_feedback").alias("source_table"), pl.col("id").alias("source_id"),
        pl.col("created_at").alias("timestamp"), "provider", "model", "action_type", "response_time_ms",
        "quality_score", pl.col("quality_rating").alias("csat_score")),
    ab.select(pl.lit("ai_gm_ab_testing").alias("source_table"), pl.col("id").alias("source_id"),
              pl.col("created_at").alias("timestamp"), "provider", "model",
              pl.lit(None, pl.String).alias("action_type"), pl.lit(None, pl.Float64).alias("response_time_ms"),
              pl.col("predicted_quality").alias("quality_score"), pl.col("user_rating").alias("csat_score")),
])
performance = ab.select(pl.lit("ai_gm_ab_testing").alias("source_table"), pl.col("id").alias("source_id"),
                        pl.col("created_at").alias("timestamp"), pl.col("experiment_name").alias("model_name"),
                        "variant", "provider", "model", pl.col("predicted_quality").alias("prediction"),
                        pl.col("user_rating").alias("actual"))


def in_range(c, lo, hi):
    return pl.col(c).is_null() | pl.col(c).is_between(lo, hi)


spec = {
    "quality": (quality, "quality_score", list(metrics.values()) + ["csat"], ["provider", "model", "action_type"],
                ["quality_score", "provider", "model", "action_type", *metrics.values()],
                [in_range(c, 0, 100) for c in ["quality_score", *metrics.values()]] + [in_range("csat", 0, 1)]),
    "csat": (csat, "csat_score", ["quality_score", "response_time_ms"], ["provider", "model", "action_type"],
             ["csat_score", "provider", "model"],
             [in_range("csat_score", 0, 1), in_range("quality_score", 0, 1), pl.col("response_time_ms").is_null() | (pl.col("response_time_ms") >= 0)]),
    "performance": (performance, "actual", ["prediction"], ["model_name", "variant", "provider", "model"],
                    ["actual", "prediction", "provider", "model", "model_name", "variant"],
                    [in_range("actual", 0, 1), in_range("prediction", 0, 1)]),
}

if layers:
    pl.collect_all([lf.sink_parquet(f"{layers}/training/{name}.parquet", compression="uncompressed", lazy=True)
                    for name, (lf, *_) in spec.items()])
    spec = {name: (pl.scan_parquet(f"{layers}/training/{name}.parquet"), *rest) for name, (_, *rest) in spec.items()}

plans = []
for name, (lf, target, num, cat, required, ranges) in spec.items():
    ok = pl.all_horizontal([pl.col(c).is_not_null() for c in required + ["source_table", "source_id"]]
                           + [r.fill_null(False) for r in ranges]
                           + [pl.col("timestamp").is_not_null() & (pl.col("timestamp") <= horizon)])
    if layers:
        # The same rows kept as below: the first of each key among the valid rows.
        keep = ok & pl.struct("source_table", "source_id", ok.alias("ok")).is_first_distinct()
        marked = lf.with_columns(keep.alias("_keep"))
        for part, rows in [("clean", pl.col("_keep")), ("rejected", ~pl.col("_keep"))]:
            plans.append(marked.filter(rows).drop("_keep").sink_parquet(
                f"{layers}/{part}/{name}.parquet", compression="uncompressed", lazy=True))
    else:
        plans.append(lf.filter(ok).filter(pl.struct("source_table", "source_id").is_first_distinct())
                     .select(num + cat + [target]))
frames = pl.collect_all(plans)
t_data = time.time() - t0
if layers:
    # Read back as our train reads them, so in the train time as in ours.
    frames = [pl.read_parquet(f"{layers}/clean/{name}.parquet", columns=num + cat + [target])
              for name, (_, target, num, cat, _, _) in spec.items()]

rng = np.random.default_rng(SEED)
for (name, (_, target, num, cat, _, _)), df in zip(spec.items(), frames):
    t = time.time()
    X = df.select(num + [pl.col(c).cast(pl.Categorical).to_physical().cast(pl.Int32) for c in cat]).to_numpy()
    y = df[target].to_numpy()
    idx = rng.permutation(len(y))
    cut = int(len(y) * 0.8)
    tr, te = idx[:cut], idx[cut:]
    model = lgb.LGBMRegressor(verbose=-1, random_state=SEED)
    model.fit(X[tr], y[tr], categorical_feature=list(range(len(num), len(num) + len(cat))))
    p = model.predict(X[te])
    err = y[te] - p
    r2 = 1 - (err ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum()
    print(f"{name:<12} rows {len(y):>8}  R2 {r2:.4f}  MAE {np.abs(err).mean():.4f}  RMSE {np.sqrt((err ** 2).mean()):.4f}  fit+predict {time.time() - t:.1f} s")
print(f"data {t_data:.1f} s, train {time.time() - t0 - t_data:.1f} s, total {time.time() - t0:.1f} s")
