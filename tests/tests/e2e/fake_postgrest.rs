//! A local HTTP server that behaves like PostgREST for the requests extract
//! makes: the 1000-row cap whatever `limit` asks, Content-Range with
//! `Prefer: count=exact`, the filter and order grammar, JSON errors, and
//! injected failures.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub const CAP: usize = 1000;
/// Threads answering requests.
const THREADS: usize = 4;

pub type Row = Map<String, Value>;

#[derive(Default)]
pub struct State {
    /// Rows per table with their parsed created_at and id, kept in
    /// (created_at nulls last, id) order, as PostgreSQL would sort them.
    pub tables: HashMap<String, Vec<(Option<i64>, String, Row)>>,
    pub key: String,
    /// Responses (status, retry-after) served before any real one.
    pub failures: VecDeque<(u16, Option<u64>)>,
    /// Every request's path and query, in order.
    pub log: Vec<String>,
    /// Rows per response at most, whatever `limit` asks.
    pub cap: usize,
    /// The User-Agent of every request.
    pub agents: Vec<String>,
    /// Refuse every request with a body that echoes the request's headers,
    /// key included, as some proxies do.
    pub echo_headers: bool,
    /// The server's clock against ours, in seconds (its `Date` header).
    pub clock_offset_secs: i64,
    /// Added to every answer: the network's round trip and the query's time
    /// on a real Supabase project.
    pub latency: std::time::Duration,
    /// From the n-th request on (counting from 0), every answer is this status.
    pub fail_from: Option<(usize, u16)>,
}

/// Three base64url parts: a JWT's shape.
#[derive(Clone, Copy)]
enum Order {
    CreatedAsc,
    CreatedDesc,
    Id,
}

pub fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub struct FakePostgrest {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

fn micros(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(contract::timestamp::parse_utc)
        .map(|t| t.timestamp_micros())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quoted(s: &str) -> Vec<String> {
    s.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn error(status: u16, code: &str, message: &str) -> (u16, String, Option<String>) {
    (
        status,
        json!({"code": code, "message": message, "details": null, "hint": null}).to_string(),
        None,
    )
}

fn handle(state: &mut State, url: &str, headers: &HeaderMap) -> (u16, String, Option<String>) {
    state.log.push(url.to_string());
    if let Some((n, status)) = state.fail_from
        && state.log.len() > n
    {
        return error(status, "PGRST000", "injected failure");
    }
    if let Some((status, retry)) = state.failures.pop_front() {
        let mut body = error(status, "PGRST000", "injected failure");
        body.2 = retry.map(|s| format!("retry-after:{s}"));
        return body;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    state.agents.push(header("user-agent").unwrap_or_default());
    if state.echo_headers {
        let echoed: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        return (
            401,
            json!({"message": format!("bad request; you sent {}", echoed.join("; ")), "code": "PGRST301"}).to_string(),
            None,
        );
    }
    // Supabase's gateway: the key always in `apikey`; `Authorization: Bearer`
    // only with a JWT (an sb_ key there is refused); secret keys never from a browser.
    if header("apikey").as_deref() != Some(state.key.as_str()) {
        return error(401, "PGRST301", "Invalid API key");
    }
    if let Some(auth) = header("authorization") {
        let token = auth.strip_prefix("Bearer ").unwrap_or("");
        if !is_jwt(token) {
            return error(401, "PGRST301", "JWT could not be decoded");
        }
        if token != state.key {
            return error(401, "PGRST301", "JWT does not match the apikey");
        }
    } else if is_jwt(&state.key) {
        return error(
            401,
            "PGRST302",
            "Anonymous access is disabled; send the JWT as a bearer token",
        );
    }
    if state.key.starts_with("sb_secret_")
        && header("user-agent").is_some_and(|a| a.contains("Mozilla"))
    {
        return error(
            401,
            "PGRST301",
            "Forbidden use of secret API key in browser",
        );
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let Some(table) = path.strip_prefix("/rest/v1/") else {
        return error(404, "PGRST000", "not found");
    };
    let Some(rows) = state.tables.get(table) else {
        return error(
            404,
            "42P01",
            &format!("relation \"public.{table}\" does not exist"),
        );
    };
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                let bytes = s.replace('+', " ");
                percent_encoding::percent_decode_str(&bytes)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect();
    // Filters as predicates; rows are kept in (created_at nulls last, id)
    // order, so a lower bound on created_at is a binary search, as an index
    // makes it for PostgreSQL, and a page costs its own rows, not the table's.
    type Pred = Box<dyn Fn(&(Option<i64>, String, Row)) -> bool>;
    let mut preds: Vec<Pred> = Vec::new();
    let mut from_micros = i64::MIN;
    let mut limit = usize::MAX;
    let mut order = Order::Id;
    let mut only_created_at = false;
    for (k, v) in &params {
        match k.as_str() {
            "select" if v == "*" => {}
            "select" if v == "created_at" => only_created_at = true,
            "limit" => limit = v.parse().unwrap_or(usize::MAX),
            "order" if v == "created_at.asc,id.asc" => order = Order::CreatedAsc,
            "order" if v == "created_at.desc,id.desc" => order = Order::CreatedDesc,
            "order" if v == "id.asc" => order = Order::Id,
            "created_at" if v == "is.null" => preds.push(Box::new(|r| r.0.is_none())),
            "created_at" if v == "not.is.null" => preds.push(Box::new(|r| r.0.is_some())),
            "created_at" | "id" => {
                let (op, value) = v.split_once('.').unwrap_or((v, ""));
                let value = value.trim_matches('"').to_string();
                if k == "id" {
                    if op != "gt" {
                        return error(400, "PGRST100", &format!("unexpected filter id={v}"));
                    }
                    preds.push(Box::new(move |r| r.1 > value));
                    continue;
                }
                let Some(x) = contract::timestamp::parse_utc(&value).map(|t| t.timestamp_micros())
                else {
                    return error(
                        400,
                        "22007",
                        &format!("invalid input syntax for type timestamp: \"{value}\""),
                    );
                };
                if matches!(op, "gte" | "gt" | "eq") {
                    from_micros = from_micros.max(x);
                }
                let keep: fn(i64, i64) -> bool = match op {
                    "gte" => |c, x| c >= x,
                    "lt" => |c, x| c < x,
                    "gt" => |c, x| c > x,
                    "eq" => |c, x| c == x,
                    _ => {
                        return error(
                            400,
                            "PGRST100",
                            &format!("unexpected filter created_at={v}"),
                        );
                    }
                };
                preds.push(Box::new(move |r| r.0.is_some_and(|c| keep(c, x))));
            }
            "or" => {
                let q = quoted(v);
                let shape = format!(
                    "(created_at.gt.\"{0}\",and(created_at.eq.\"{0}\",id.gt.\"{1}\"))",
                    q.first().cloned().unwrap_or_default(),
                    q.get(2).cloned().unwrap_or_default()
                );
                if q.len() != 3 || *v != shape {
                    return error(
                        400,
                        "PGRST100",
                        &format!("failed to parse logic tree ({v})"),
                    );
                }
                let Some(t) = contract::timestamp::parse_utc(&q[0]).map(|t| t.timestamp_micros())
                else {
                    return error(
                        400,
                        "22007",
                        &format!("invalid input syntax for type timestamp: \"{}\"", q[0]),
                    );
                };
                from_micros = from_micros.max(t);
                let id = q[2].clone();
                preds.push(Box::new(move |r| {
                    r.0.is_some_and(|c| c > t || (c == t && r.1 > id))
                }));
            }
            other => {
                return error(
                    400,
                    "PGRST100",
                    &format!("unexpected parameter {other}={v}"),
                );
            }
        }
    }
    let keep = |r: &&(Option<i64>, String, Row)| preds.iter().all(|p| p(r));
    let start = rows.partition_point(|r| r.0.unwrap_or(i64::MAX) < from_micros);
    let take = limit.min(state.cap);
    let mut page: Vec<&Row> = match order {
        Order::CreatedAsc => rows[start..]
            .iter()
            .filter(keep)
            .take(take)
            .map(|r| &r.2)
            .collect(),
        Order::CreatedDesc => rows
            .iter()
            .rev()
            .filter(keep)
            .take(take)
            .map(|r| &r.2)
            .collect(),
        Order::Id => {
            let mut all: Vec<&(Option<i64>, String, Row)> = rows.iter().filter(keep).collect();
            all.sort_by(|a, b| a.1.cmp(&b.1));
            all.into_iter().take(take).map(|r| &r.2).collect()
        }
    };
    let counted = header("prefer").is_some_and(|v| v.contains("count=exact"));
    let total = if counted {
        rows.iter().filter(|r| keep(r)).count().to_string()
    } else {
        "*".to_string()
    };
    let narrowed: Vec<Row>;
    if only_created_at {
        narrowed = page
            .iter()
            .map(|r| {
                r.iter()
                    .filter(|(k, _)| *k == "created_at")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        page = narrowed.iter().collect();
    }
    let range = if page.is_empty() {
        format!("*/{total}")
    } else {
        format!("0-{}/{total}", page.len() - 1)
    };
    (
        200,
        serde_json::to_string(&page).unwrap(),
        Some(format!("content-range:{range}")),
    )
}

async fn answer(shared: &Mutex<State>, uri: &Uri, headers: &HeaderMap) -> Response {
    let url = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let (status, body, extra, offset, latency) = {
        let mut s = shared.lock().unwrap();
        let (status, body, extra) = handle(&mut s, &url, headers);
        (status, body, extra, s.clock_offset_secs, s.latency)
    };
    tokio::time::sleep(latency).await;
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response();
    if offset != 0 {
        let date = chrono::Utc::now() + chrono::Duration::seconds(offset);
        let date = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        response
            .headers_mut()
            .insert("date", HeaderValue::from_str(&date).unwrap());
    }
    if let Some(h) = extra {
        let (k, v) = h.split_once(':').unwrap();
        response.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    response
}

impl FakePostgrest {
    pub fn start(key: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            key: key.to_string(),
            cap: CAP,
            ..State::default()
        }));
        // On hyper, as PostgREST answers: many connections at once, kept alive.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = state.clone();
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(THREADS)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                    let shared = shared.clone();
                    async move { answer(&shared, &uri, &headers).await }
                });
                axum::serve(listener, app)
                    .await
                    .expect("fake PostgREST serves");
            });
        });
        Self { url, state }
    }

    pub fn insert(&self, table: &str, rows: Vec<Row>) {
        let mut state = self.state.lock().unwrap();
        let stored = state.tables.entry(table.to_string()).or_default();
        stored.extend(rows.into_iter().map(|r| {
            let created = r.get("created_at").and_then(micros);
            let id = r.get("id").map(text).unwrap_or_default();
            (created, id, r)
        }));
        stored
            .sort_by(|a, b| (a.0.unwrap_or(i64::MAX), &a.1).cmp(&(b.0.unwrap_or(i64::MAX), &b.1)));
    }
}
