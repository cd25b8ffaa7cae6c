//! The routes, their errors (a JSON body naming the problem, always), and
//! the layer every request passes: token, timeout, metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use contract::Dataset;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::insights;
use crate::live::{self, Live};
use crate::metrics::Metrics;
use crate::rows;

/// What every handler shares.
pub struct App {
    pub live: Arc<Live>,
    pub metrics: Metrics,
    pub token: Option<String>,
    pub max_body: usize,
    pub max_rows: usize,
    pub timeout: Duration,
}

/// A failed request: its status and the message in its JSON body.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.1, "status": self.0.as_u16()});
        (self.0, axum::Json(body)).into_response()
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/predict/{model}", post(predict))
        .route("/v1/insights", get(insight_list))
        .route("/v1/insights/{name}", get(insight))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), around))
        .with_state(app)
}

/// Token check (all but the health checks), request timeout and metrics.
async fn around(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let open = matches!(route.as_str(), "/healthz" | "/readyz");
    let response = if !open && !authorized(app.token.as_deref(), request.headers()) {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <SERVE_TOKEN>)",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    } else {
        match tokio::time::timeout(app.timeout, next.run(request)).await {
            Ok(r) => r,
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("no answer within {:?}", app.timeout),
            )
            .into_response(),
        }
    };
    app.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({"status": "alive"}))
}

/// Ready when every model with a champion on disk is served, and one at least.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let mut models = Map::new();
    let mut ready = true;
    let mut any = false;
    for dataset in Dataset::ALL {
        let served = app.live.current(dataset);
        let note = app.live.note(dataset);
        let on_disk = app.live.layout().model_dir(dataset).exists();
        any |= served.is_some();
        ready &= served.is_some() || !on_disk;
        models.insert(
            dataset.name().into(),
            json!({
                "loaded": served.is_some(),
                "version": served.map(|s| s.label()),
                "refused": note.refused,
                "problem": note.missing,
            }),
        );
    }
    let ready = ready && any;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": ready, "models": models})),
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(&app.live),
    )
        .into_response()
}

fn dataset(name: &str) -> Result<Dataset, ApiError> {
    Dataset::from_name(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no model `{name}`; the models are quality, csat and performance"),
        )
    })
}

async fn models(State(app): State<Arc<App>>) -> axum::Json<Value> {
    let now = Utc::now();
    let models: Vec<Value> = Dataset::ALL
        .into_iter()
        .map(|d| {
            let note = app.live.note(d);
            match app.live.current(d) {
                Some(s) => {
                    let card = &s.card;
                    json!({
                        "model": d.name(),
                        "loaded": true,
                        "version": s.label(),
                        "algorithm": card.algorithm,
                        "target": card.target,
                        "trained_at": card.trained_at,
                        "age_seconds": (now - card.trained_at).num_seconds(),
                        "loaded_at": s.loaded_at,
                        "training_rows": card.training_rows,
                        "test_rows": card.test_rows,
                        "metrics": card.candidates.get(&card.algorithm).map(|c| c.test),
                        "baselines": card.candidates.iter()
                            .filter(|(a, _)| a.is_baseline())
                            .map(|(a, c)| (a.name().to_string(), json!(c.test)))
                            .collect::<Map<_, _>>(),
                        "features": {
                            "numeric": card.numeric_features,
                            "categorical": card.categorical_features,
                        },
                        "folder": s.dir,
                        "refused": note.refused,
                    })
                }
                None => json!({"model": d.name(), "loaded": false, "problem": note.missing}),
            }
        })
        .collect();
    axum::Json(json!({ "models": models }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    rows: Vec<Map<String, Value>>,
}

#[derive(Serialize)]
struct PredictResponse<'a> {
    model: &'a str,
    version: String,
    predictions: Vec<f64>,
    /// The rows' keys that are none of the dataset's columns: not used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored_fields: Vec<String>,
}

/// The body, refused when longer than the limit (by its length header or
/// while it arrives).
async fn body(app: &App, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over {} bytes (--max-body-bytes)",
                app.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return Err(too_big());
    }
    axum::body::to_bytes(body, app.max_body)
        .await
        .map_err(|_| too_big())
}

async fn predict(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let dataset = dataset(&model)?;
    let bytes = body(&app, &headers, request).await?;
    let parsed: PredictRequest = serde_json::from_slice(&bytes).map_err(|e| {
        let expected = "expected {\"rows\": [{...}, ...]}";
        let message = if !e.is_data() {
            format!("malformed JSON: {e} ({expected})")
        } else if bytes.trim_ascii_start().starts_with(b"[") {
            // serde reads a struct from an array too, and then says "invalid
            // type: map, expected a sequence" of the first row.
            format!("not a prediction request: the body is a list; {expected}")
        } else {
            format!("not a prediction request: {e} ({expected})")
        };
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })?;
    if parsed.rows.len() > app.max_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} rows in one request; at most {} (--max-rows)",
                parsed.rows.len(),
                app.max_rows
            ),
        ));
    }
    let served = app.live.current(dataset).ok_or_else(|| {
        let why = app.live.note(dataset).missing.unwrap_or_default();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no {dataset} model is loaded: {why}"),
        )
    })?;
    let data = rows::to_data(dataset, &parsed.rows)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.0))?;
    let all: Vec<usize> = (0..data.rows).collect();
    let predictions = live::with_fitted(&served, |fitted| {
        fitted.predict(dataset, &served.card.encoding.encode(&data), &all)
    })
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{dataset} {}: {e:#}", served.label()),
        )
    })?;
    app.metrics.predicted(dataset, predictions.len());
    let ignored_fields = rows::unknown_keys(dataset, &parsed.rows);
    if !ignored_fields.is_empty() {
        app.metrics.ignored_fields(dataset);
    }
    Ok(axum::Json(PredictResponse {
        model: dataset.name(),
        version: served.label(),
        predictions,
        ignored_fields,
    })
    .into_response())
}

async fn insight_list() -> axum::Json<Value> {
    let mut names = vec![insights::OPTIMAL_RANGE];
    names.extend(insights::TABLES);
    axum::Json(json!({ "insights": names }))
}

async fn insight(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let live = app.live.clone();
    let asked = name.clone();
    let answer = tokio::task::spawn_blocking(move || {
        insights::read(live.layout(), &name).map(|r| (name, r))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match answer {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no insight `{asked}`; GET /v1/insights lists them"),
        )),
        Some((_, Ok(v))) => Ok(axum::Json(v)),
        Some((name, Err(e))) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name}: {e:#}; run `make report` to compute it"),
        )),
    }
}
