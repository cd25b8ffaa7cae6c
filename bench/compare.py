"""Held-out accuracy of our models beside LightGBM and scikit-learn in Python,
fitted on exactly the same training rows and scored on the same held-out rows
(data/models/<model>/holdout.parquet)."""
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
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

data = sys.argv[1]
rows = []
for model in ["quality", "csat", "performance"]:
    card = json.load(open(f"{data}/models/{model}/model.json"))
    df = pd.read_parquet(f"{data}/clean/{model}.parquet")
    hold = pd.read_parquet(f"{data}/models/{model}/holdout.parquet")
    key = df["source_table"] + "\x1f" + df["source_id"]
    is_test = key.isin(set(hold["source_table"] + "\x1f" + hold["source_id"]))
    num, cat, target = card["numeric_features"], card["categorical_features"], card["target"]
    X = df[num + cat].copy()
    for c in cat:
        X[c] = X[c].astype("category")
    y = df[target].to_numpy()
    Xtr, Xte, ytr, yte = X[~is_test], X[is_test], y[~is_test], y[is_test]

    def score(name, pred, secs):
        rows.append((model, name, r2_score(yte, pred), mean_absolute_error(yte, pred),
                     mean_squared_error(yte, pred) ** 0.5, secs))

    t = time.time()
    m = lgb.LGBMRegressor(verbose=-1).fit(Xtr, ytr)
    score("python lightgbm (defaults)", m.predict(Xte), time.time() - t)
    t = time.time()
    m = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0).fit(Xtr, ytr)
    score("sklearn HistGradientBoosting", m.predict(Xte), time.time() - t)
    t = time.time()
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="ignore"), cat),
    ])
    Xs_tr = Xtr.copy(); Xs_te = Xte.copy()
    for c in cat:
        Xs_tr[c] = Xs_tr[c].astype(object).where(Xs_tr[c].notna(), "__null__")
        Xs_te[c] = Xs_te[c].astype(object).where(Xs_te[c].notna(), "__null__")
    m = make_pipeline(pre, Ridge(alpha=1.0)).fit(Xs_tr, ytr)
    score("sklearn ridge", m.predict(Xs_te), time.time() - t)
    for algo in ["lightgbm", "ridge", "mean_baseline"]:
        c = card["candidates"].get(algo)
        if c:
            chosen = " (chosen)" if card["algorithm"] == algo else ""
            rows.append((model, f"ours: {algo}{chosen}", c["test"]["r2"], c["test"]["mae"], c["test"]["rmse"], float("nan")))

print(f"## Held-out accuracy, same rows as ours ({len(rows)} fits)")
print()
print("| model | fitted by | R2 | MAE | RMSE | fit s |")
print("|---|---|---|---|---|---|")
for model, name, r2, mae, rmse, secs in rows:
    fit = "" if np.isnan(secs) else f"{secs:.1f}"
    print(f"| {model} | {name} | {r2:.4f} | {mae:.4f} | {rmse:.4f} | {fit} |")
