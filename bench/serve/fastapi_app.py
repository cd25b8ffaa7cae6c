"""The prediction service a Python team would write: FastAPI + uvicorn + the
same LightGBM model file our `serve` loads, with the same encoding (numeric
features as given, NaN for missing; categories as their code among the
training levels in model.json, NaN when unseen). For `make bench` only.

    MODEL_DIR=data/models/csat uvicorn fastapi_app:app --port 8081
"""

import json
import math
import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MODEL_DIR = os.environ.get("MODEL_DIR", "data/models/csat")
with open(os.path.join(MODEL_DIR, "model.json")) as f:
    CARD = json.load(f)
BOOSTER = lgb.Booster(model_file=os.path.join(MODEL_DIR, "lightgbm.txt"))
NUMERIC = CARD["numeric_features"]
CATEGORICAL = CARD["categorical_features"]
LEVELS = {
    c["name"]: {level: i for i, level in enumerate(c["levels"])}
    for c in CARD["encoding"]["categorical"]
}

app = FastAPI()


class Request(BaseModel):
    rows: list[dict]


@app.post("/v1/predict/{model}")
def predict(model: str, request: Request):
    if model != CARD["model"]:
        raise HTTPException(status_code=404, detail=f"no model {model}")
    x = np.empty((len(request.rows), len(NUMERIC) + len(CATEGORICAL)))
    for i, row in enumerate(request.rows):
        for j, name in enumerate(NUMERIC):
            v = row.get(name)
            x[i, j] = math.nan if v is None else float(v)
        for k, name in enumerate(CATEGORICAL):
            code = LEVELS[name].get(row.get(name))
            x[i, len(NUMERIC) + k] = math.nan if code is None else code
    predictions = BOOSTER.predict(x, num_threads=1)
    return {"model": model, "version": CARD.get("version"), "predictions": predictions.tolist()}
