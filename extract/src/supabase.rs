//! Supabase's REST API (PostgREST). Pages by keyset on (created_at, id): a
//! response holds at most 1000 rows whatever `limit` asks, and offsets would
//! skip or repeat rows as the table grows. Retries 429, 5xx and connection
//! errors with exponential backoff and jitter, honouring Retry-After.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use contract::RawTable;
use contract::columns::{CREATED_AT, ID};
use contract::secrets::{SUPABASE_KEY_VARS as KEY_VARS, SUPABASE_URL};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, Response};
use serde_json::{Map, Value};

use crate::sink::{TableSink, Target};
use contract::progress::Progress;

/// Rows asked for per request; PostgREST may cap lower, which paging handles.
const PAGE: usize = 1000;
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How hard to retry 429, 5xx and connection errors, and how long to wait.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub base_delay: Duration,
    /// The longest wait before a retry, whatever Retry-After asks.
    pub max_wait: Duration,
    /// One request, answer included.
    pub request_timeout: Duration,
}

/// Names this tool to Supabase, which refuses secret keys from browser-like agents.
pub const USER_AGENT: &str = concat!("gm-pipeline-extract/", env!("CARGO_PKG_VERSION"));

/// What kind of key we hold, judged by its shape (never printed itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `sb_secret_...`
    Secret,
    /// `sb_publishable_...`
    Publishable,
    /// A legacy JWT key (anon or service_role): three base64url parts.
    Jwt,
    Other,
}

impl KeyKind {
    pub fn of(key: &str) -> Self {
        if key.starts_with("sb_secret_") {
            KeyKind::Secret
        } else if key.starts_with("sb_publishable_") {
            KeyKind::Publishable
        } else if is_jwt(key) {
            KeyKind::Jwt
        } else {
            KeyKind::Other
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyKind::Secret => "a secret key (sb_secret_...)",
            KeyKind::Publishable => "a publishable key (sb_publishable_...)",
            KeyKind::Jwt => "a JWT key",
            KeyKind::Other => "a key of unknown shape",
        }
    }
}

/// Three non-empty base64url parts separated by dots, as a JWT is.
pub fn is_jwt(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

pub struct Client {
    http: Http,
    base: String,
    key: String,
    /// The variable the key came from, for messages.
    key_var: &'static str,
    retry: Retry,
}

impl Client {
    pub fn from_env(retry: Retry) -> Result<Self> {
        let base = std::env::var(SUPABASE_URL)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .with_context(|| {
                format!("{SUPABASE_URL} is not set (the project URL, e.g. https://xyz.supabase.co)")
            })?;
        let (key_var, key) = KEY_VARS
            .iter()
            .find_map(|v| {
                std::env::var(v)
                    .ok()
                    .filter(|k| !k.trim().is_empty())
                    .map(|k| (*v, k.trim().to_string()))
            })
            .with_context(|| format!("no Supabase API key: set one of {}", KEY_VARS.join(", ")))?;
        Self::new(&base, key_var, key, retry)
    }

    pub fn new(base: &str, key_var: &'static str, key: String, retry: Retry) -> Result<Self> {
        let http = Http::builder()
            .timeout(retry.request_timeout)
            .connect_timeout(retry.request_timeout.min(Duration::from_secs(15)))
            .user_agent(USER_AGENT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            key_var,
            retry,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Which variable and kind of key, never the key.
    pub fn key_description(&self) -> String {
        format!(
            "{} from {}",
            KeyKind::of(&self.key).describe(),
            self.key_var
        )
    }

    /// What to say when Supabase refuses the key.
    fn key_help(&self) -> String {
        let publishable = matches!(KeyKind::of(&self.key), KeyKind::Publishable);
        format!(
            "the key in {} ({}) was refused. Supabase takes a secret key (sb_secret_...) or the \
             legacy service_role JWT for every row, or a publishable key (sb_publishable_...) or \
             the legacy anon JWT, which only sees the rows Row Level Security lets the anon role \
             read{}",
            self.key_var,
            KeyKind::of(&self.key).describe(),
            if publishable {
                "; with a publishable key, add a select-only RLS policy for anon (see the README)"
            } else {
                ""
            }
        )
    }

    fn url(&self, table: RawTable) -> String {
        format!("{}/rest/v1/{}", self.base, table.name())
    }

    /// One GET with retries. Errors never contain the key: it travels only in headers.
    fn get(&self, table: RawTable, query: &[(String, String)], count: bool) -> Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .get(self.url(table))
                .query(query)
                .header("apikey", &self.key)
                .header("Accept", "application/json");
            // Only a JWT is a bearer token; the sb_ keys travel in apikey alone.
            if is_jwt(&self.key) {
                request = request.header("Authorization", format!("Bearer {}", self.key));
            }
            if count {
                request = request.header("Prefer", "count=exact");
            }
            let retry_after = match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let wait = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        // A server that asks for more than we will wait is not
                        // retried early against its word: stop now and say when.
                        if let Some(w) = wait.filter(|w| *w > self.retry.max_wait) {
                            let at = chrono::Utc::now()
                                + chrono::Duration::seconds(
                                    i64::try_from(w.as_secs()).unwrap_or(i64::MAX / 2_000_000),
                                );
                            bail!(
                                "{table}: Supabase answered {status} and asked to wait {} s (Retry-After), more than --max-retry-wait {} s; run again after {} or raise --max-retry-wait",
                                w.as_secs(),
                                self.retry.max_wait.as_secs(),
                                at.format("%Y-%m-%d %H:%M:%SZ")
                            );
                        }
                        let attempts = self.retry.attempts;
                        if attempt >= attempts {
                            bail!(
                                "{table}: Supabase answered {status} {attempts} times; giving up ({})",
                                postgrest_message(response)
                            );
                        }
                        eprintln!(
                            "extract: {table}: Supabase answered {status}, retrying (attempt {attempt} of {attempts})"
                        );
                        wait
                    } else if status == StatusCode::UNAUTHORIZED {
                        bail!(
                            "{table}: Supabase answered {status}: {}; {}",
                            postgrest_message(response),
                            self.key_help()
                        );
                    } else {
                        bail!(
                            "{table}: Supabase answered {status}: {}",
                            postgrest_message(response)
                        );
                    }
                }
                Err(e) if e.is_timeout() => {
                    let attempts = self.retry.attempts;
                    let secs = self.retry.request_timeout.as_secs();
                    if attempt >= attempts {
                        bail!(
                            "{table}: Supabase at {} did not answer within {secs} s (--request-timeout), {attempts} times; giving up",
                            self.base
                        );
                    }
                    eprintln!(
                        "extract: {table}: no answer within {secs} s, retrying (attempt {attempt} of {attempts})"
                    );
                    None
                }
                Err(e) => {
                    let attempts = self.retry.attempts;
                    if attempt >= attempts {
                        return Err(anyhow!(e.without_url())).context(format!(
                            "{table}: cannot reach Supabase at {} after {attempts} attempts",
                            self.base
                        ));
                    }
                    eprintln!(
                        "extract: {table}: cannot reach Supabase ({}), retrying (attempt {attempt} of {attempts})",
                        e.without_url()
                    );
                    None
                }
            };
            std::thread::sleep(
                retry_after
                    .unwrap_or_else(|| backoff(self.retry.base_delay, attempt))
                    .min(self.retry.max_wait),
            );
        }
    }

    /// Reads one table into a sink, every row exactly once.
    pub fn extract_table(&self, table: RawTable, target: &Target) -> Result<TableSink> {
        let window = target.window;
        let origin = format!("{}/rest/v1/{}", self.base, table.name());
        let mut filters: Vec<(String, String)> = Vec::new();
        if let Some(since) = window.since {
            filters.push((CREATED_AT.into(), format!("gte.{}", stamp(since))));
        }
        if let Some(until) = window.until {
            filters.push((CREATED_AT.into(), format!("lt.{}", stamp(until))));
        }
        let mut sink: Option<TableSink> = None;
        let mut after: Option<(String, String)> = None;
        let mut progress: Option<Progress> = None;
        // Rows with no created_at sort last and escape the keyset; read them by id
        // afterwards (only when no window asks for a time range).
        let mut null_pass = false;
        let mut source_now: Option<DateTime<chrono::Utc>> = None;
        loop {
            let remaining = window
                .limit
                .map(|l| l.saturating_sub(sink.as_ref().map_or(0, |s| s.counts.rows_written)));
            if remaining == Some(0) {
                break;
            }
            let mut query = vec![("select".to_string(), "*".to_string())];
            query.extend(filters.iter().cloned());
            if null_pass {
                query.push((CREATED_AT.into(), "is.null".into()));
                query.push(("order".into(), format!("{ID}.asc")));
                if let Some((_, id)) = &after {
                    query.push((ID.into(), format!("gt.{id}")));
                }
            } else {
                query.push(("order".into(), format!("{CREATED_AT}.asc,{ID}.asc")));
                if let Some((t, id)) = &after {
                    query.push((
                        "or".into(),
                        format!("({CREATED_AT}.gt.\"{t}\",and({CREATED_AT}.eq.\"{t}\",{ID}.gt.\"{id}\"))"),
                    ));
                }
            }
            let page = remaining.map_or(PAGE, |r| r.min(PAGE));
            query.push(("limit".into(), page.to_string()));
            let first = progress.is_none();
            let response = self.get(table, &query, first)?;
            if first {
                // The server's clock: the cursor never passes what it calls now.
                source_now = response
                    .headers()
                    .get("date")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                let total = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|t| t.parse::<u64>().ok());
                progress = Some(Progress::new("extract", table.name(), "rows", total));
            }
            let rows: Vec<Map<String, Value>> = response.json().with_context(|| {
                format!("{table}: Supabase sent a body that is not a JSON array of rows")
            })?;
            if rows.is_empty() {
                if !null_pass && window.since.is_none() && window.until.is_none() {
                    null_pass = true;
                    after = None;
                    continue;
                }
                break;
            }
            let sink = match &mut sink {
                Some(s) => s,
                None => {
                    let header: Vec<String> = rows[0].keys().cloned().collect();
                    let mut new = TableSink::new(table, "supabase", &origin, header, target)?;
                    if let Some(now) = source_now {
                        new.set_source_now(now);
                    }
                    sink.insert(new)
                }
            };
            let header = sink.header().to_vec();
            for row in &rows {
                let values: Vec<Value> = header
                    .iter()
                    .map(|h| row.get(h).cloned().unwrap_or(Value::Null))
                    .collect();
                sink.push(&values)?;
            }
            if let Some(p) = progress.as_ref() {
                p.inc(rows.len() as u64);
            }
            let last = rows.last().map(|r| {
                (
                    r.get(CREATED_AT)
                        .map(key_text)
                        .map(|t| contract::timestamp::parse_utc(&t).map(stamp).unwrap_or(t))
                        .unwrap_or_default(),
                    r.get(ID).map(key_text).unwrap_or_default(),
                )
            });
            after = last;
        }
        if let Some(p) = progress {
            p.finish();
        }
        let nothing = sink.as_ref().is_none_or(|s| s.counts.rows_read == 0);
        if nothing && KeyKind::of(&self.key) == KeyKind::Publishable {
            eprintln!(
                "extract: {table}: no rows visible to a publishable key; if the table has rows, \
                 Row Level Security hides them from the anon role (see the README)"
            );
        }
        match sink {
            Some(s) => Ok(s),
            None => {
                let header = table.columns().iter().map(|c| c.name.to_string()).collect();
                Ok(TableSink::new(table, "supabase", &origin, header, target)?)
            }
        }
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as PostgREST filters take it, with no `+` to escape.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Exponential backoff with full jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << attempt.min(10)).min(MAX_DELAY);
    let jitter = rand::rng().random_range(0.5..=1.0);
    ceiling.mul_f64(jitter)
}

/// PostgREST's JSON error body as one line: message (code), or the raw text,
/// with any secret it echoes back blanked out.
fn postgrest_message(response: Response) -> String {
    contract::secrets::redact(&postgrest_text(response))
}

fn postgrest_text(response: Response) -> String {
    let text = response.text().unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(body)) => {
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let mut line = message.to_string();
            if let Some(code) = body.get("code").and_then(Value::as_str) {
                line.push_str(&format!(" (code {code})"));
            }
            if let Some(hint) = body.get("hint").and_then(Value::as_str) {
                line.push_str(&format!("; hint: {hint}"));
            }
            line
        }
        _ => {
            let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.is_empty() {
                "empty body".into()
            } else {
                one_line.chars().take(200).collect()
            }
        }
    }
}
