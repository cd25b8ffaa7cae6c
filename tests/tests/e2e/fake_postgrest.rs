//! A local HTTP server that behaves like PostgREST for the requests extract
//! makes: the 1000-row cap whatever `limit` asks, Content-Range with
//! `Prefer: count=exact`, the filter and order grammar, JSON errors, and
//! injected failures.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Map, Value, json};
use tiny_http::{Header, Response, Server};

pub const CAP: usize = 1000;

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
}

/// Three base64url parts: a JWT's shape.
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

fn handle(state: &mut State, url: &str, headers: &[Header]) -> (u16, String, Option<String>) {
    state.log.push(url.to_string());
    if let Some((status, retry)) = state.failures.pop_front() {
        let mut body = error(status, "PGRST000", "injected failure");
        body.2 = retry.map(|s| format!("retry-after:{s}"));
        return body;
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    state.agents.push(header("user-agent").unwrap_or_default());
    if state.echo_headers {
        let echoed: Vec<String> = headers
            .iter()
            .map(|h| format!("{}: {}", h.field, h.value))
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
    let mut selected: Vec<&(Option<i64>, String, Row)> = rows.iter().collect();
    let mut limit = usize::MAX;
    let mut order_by_created = false;
    for (k, v) in &params {
        match k.as_str() {
            "select" if v == "*" => {}
            "limit" => limit = v.parse().unwrap_or(usize::MAX),
            "order" if v == "created_at.asc,id.asc" => order_by_created = true,
            "order" if v == "id.asc" => {}
            "created_at" | "id" => {
                let (op, value) = v.split_once('.').unwrap_or((v, ""));
                let value = value.trim_matches('"').to_string();
                let column = k.clone();
                let bound = contract::timestamp::parse_utc(&value).map(|t| t.timestamp_micros());
                selected.retain(|(created, id, _)| match (op, column.as_str()) {
                    ("is", "created_at") if value == "null" => created.is_none(),
                    (_, "created_at") => {
                        let (Some(c), Some(x)) = (*created, bound) else {
                            return false;
                        };
                        match op {
                            "gte" => c >= x,
                            "lt" => c < x,
                            "gt" => c > x,
                            "eq" => c == x,
                            _ => false,
                        }
                    }
                    ("gt", "id") => *id > value,
                    _ => false,
                });
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
                let t = contract::timestamp::parse_utc(&q[0]).map(|t| t.timestamp_micros());
                let id = q[2].clone();
                selected.retain(|(c, i, _)| match (*c, t) {
                    (Some(c), Some(t)) => c > t || (c == t && *i > id),
                    _ => false,
                });
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
    if !order_by_created {
        selected.sort_by(|a, b| a.1.cmp(&b.1));
    }
    let total = selected.len();
    let page: Vec<&Row> = selected
        .into_iter()
        .take(limit.min(state.cap))
        .map(|(_, _, r)| r)
        .collect();
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

impl FakePostgrest {
    pub fn start(key: &str) -> Self {
        let server = Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let state = Arc::new(Mutex::new(State {
            key: key.to_string(),
            cap: CAP,
            ..State::default()
        }));
        let shared = state.clone();
        thread::spawn(move || {
            for request in server.incoming_requests() {
                let (status, body, extra, offset) = {
                    let mut s = shared.lock().unwrap();
                    let (status, body, extra) = handle(&mut s, request.url(), request.headers());
                    (status, body, extra, s.clock_offset_secs)
                };
                let mut response = Response::from_string(body)
                    .with_status_code(status)
                    .with_header(Header::from_bytes("Content-Type", "application/json").unwrap());
                if offset != 0 {
                    let date = chrono::Utc::now() + chrono::Duration::seconds(offset);
                    let date = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                    response = response.with_header(Header::from_bytes("Date", date).unwrap());
                }
                if let Some(h) = extra {
                    let (k, v) = h.split_once(':').unwrap();
                    response = response.with_header(Header::from_bytes(k, v).unwrap());
                }
                let _ = request.respond(response);
            }
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
