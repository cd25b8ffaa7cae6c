"""The other script users write: pandas to load and reshape the three Supabase
CSV exports, the same validation rules, then scikit-learn's Ridge and
HistGradientBoosting and LightGBM, one holdout fit each, held-out R2/MAE/RMSE.

Run: python3 bench/reference_pandas.py CSV_DIR
"""
import json
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

t0 = time.time()
src = sys.argv[1]
SEED = 42
horizon = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)


def load(table, numeric):
    df = pd.read_csv(f"{src}/{table}.csv", dtype=str, keep_default_na=False, na_values=[""])
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, errors="coerce", format="ISO8601")
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


ex = load("ai_gm_explanations", ["quality_score"])
fb = load("ai_gm_quality_feedback", ["quality_rating", "response_time_ms"])
ab = load("ai_gm_ab_testing", ["predicted_quality", "user_rating"])

metrics = {"codeQuality": "code_quality", "testCoverage": "test_coverage", "security": "security",
           "performance": "performance", "maintainability": "maintainability", "complexity": "complexity"}


def meta(text):
    try:
        m = json.loads(text)
        return [m.get(k) for k in metrics] + [m.get("responseId")]
    except (TypeError, ValueError, AttributeError):
        return [None] * 7


parsed = pd.DataFrame([meta(t) for t in ex["metadata"]], columns=list(metrics.values()) + ["response_id"])
for c in metrics.values():
    parsed[c] = pd.to_numeric(parsed[c], errors="coerce")
ratings = (fb[fb["quality_rating"].between(0, 1)].groupby("response_id")["quality_rating"].mean()
           .rename("csat").reset_index())
quality = pd.concat([ex[["id", "created_at", "provider", "model", "action_type"]].reset_index(drop=True), parsed], axis=1)
quality["quality_score"] = ex["quality_score"].values * 100
quality = quality.merge(ratings, on="response_id", how="left")
quality["source_table"] = "ai_gm_explanations"

predicted = (ab.sort_values(["created_at", "id"]).drop_duplicates("response_id")[["response_id", "predicted_quality"]]
             .rename(columns={"predicted_quality": "quality_score"}))
f = fb.merge(predicted, on="response_id", how="left")
f = f.assign(source_table="ai_gm_quality_feedback", csat_score=f["quality_rating"])
a = ab.assign(source_table="ai_gm_ab_testing", action_type=None, response_time_ms=np.nan,
              quality_score=ab["predicted_quality"], csat_score=ab["user_rating"])
cols = ["source_table", "id", "created_at", "provider", "model", "action_type", "response_time_ms", "quality_score", "csat_score"]
csat = pd.concat([f[cols], a[cols]], ignore_index=True)
performance = ab.rename(columns={"experiment_name": "model_name", "predicted_quality": "prediction", "user_rating": "actual"})
performance["source_table"] = "ai_gm_ab_testing"


def between(df, c, lo, hi):
    return df[c].isna() | df[c].between(lo, hi)


spec = {
    "quality": (quality, "quality_score", list(metrics.values()) + ["csat"], ["provider", "model", "action_type"],
                ["quality_score", "provider", "model", "action_type", *metrics.values()],
                [("quality_score", 0, 100), *[(c, 0, 100) for c in metrics.values()], ("csat", 0, 1)]),
    "csat": (csat, "csat_score", ["quality_score", "response_time_ms"], ["provider", "model", "action_type"],
             ["csat_score", "provider", "model"], [("csat_score", 0, 1), ("quality_score", 0, 1), ("response_time_ms", 0, np.inf)]),
    "performance": (performance, "actual", ["prediction"], ["model_name", "variant", "provider", "model"],
                    ["actual", "prediction", "provider", "model", "model_name", "variant"], [("actual", 0, 1), ("prediction", 0, 1)]),
}
clean = {}
for name, (df, target, num, cat, required, ranges) in spec.items():
    ok = df[required + ["source_table", "id"]].notna().all(axis=1)
    for c, lo, hi in ranges:
        ok &= between(df, c, lo, hi)
    ok &= df["created_at"].notna() & (df["created_at"] <= horizon)
    kept = df[ok]
    kept = kept[~kept.duplicated(["source_table", "id"])]
    clean[name] = kept
t_data = time.time() - t0

rng = np.random.default_rng(SEED)
for name, (_, target, num, cat, _, _) in spec.items():
    df = clean[name]
    X = df[num + cat].copy()
    for c in cat:
        X[c] = X[c].astype("category")
    y = df[target].to_numpy()
    idx = rng.permutation(len(y))
    cut = int(len(y) * 0.8)
    tr, te = idx[:cut], idx[cut:]
    for label, fit in [
        ("ridge", lambda: make_pipeline(ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), num),
            ("cat", OneHotEncoder(handle_unknown="ignore"), cat)]), Ridge(alpha=1.0))),
        ("hgb", lambda: HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=SEED)),
        ("lightgbm", lambda: lgb.LGBMRegressor(verbose=-1, random_state=SEED)),
    ]:
        t = time.time()
        model = fit().fit(X.iloc[tr], y[tr])
        p = model.predict(X.iloc[te])
        err = y[te] - p
        r2 = 1 - (err ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum()
        print(f"{name:<12} {label:<9} rows {len(y):>8}  R2 {r2:.4f}  MAE {np.abs(err).mean():.4f}  RMSE {np.sqrt((err ** 2).mean()):.4f}  {time.time() - t:.1f} s")
print(f"data {t_data:.1f} s, train {time.time() - t0 - t_data:.1f} s, total {time.time() - t0:.1f} s")
