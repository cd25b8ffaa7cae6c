//! Supabase's REST API (PostgREST). Pages by keyset on (created_at, id): a
//! response holds at most 1000 rows whatever `limit` asks, and offsets would
//! skip or repeat rows as the table grows. Retries 429, 5xx and connection
//! errors with exponential backoff and jitter, honouring Retry-After.
//!
//! This file is the client (its key, requests, retries and the errors a user
//! reads); `paging` reads a table through it, page by page.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use contract::RawTable;
use contract::secrets::{SUPABASE_KEY_VARS as KEY_VARS, SUPABASE_URL};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, Response};
use serde_json::Value;

mod paging;

/// Rows asked for per request; PostgREST may cap lower, which paging handles.
const PAGE: usize = 1000;
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Time slices per table read side by side, unless --supabase-concurrency says otherwise.
pub const DEFAULT_CONCURRENCY: u16 = 4;

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
    /// Time slices of one table read side by side (1: one page after another).
    concurrency: usize,
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
            concurrency: usize::from(DEFAULT_CONCURRENCY),
        })
    }

    /// Reads each table in `n` time slices side by side (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
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
    /// Between attempts it gives up when `stop` is set (another slice failed).
    fn get(
        &self,
        table: RawTable,
        query: &[(String, String)],
        count: bool,
        stop: &AtomicBool,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            if attempt > 0 && stop.load(Ordering::SeqCst) {
                bail!("{table}: stopped");
            }
            attempt += 1;
            let retry_after = match self.request(table, query, count).send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => self.refused(table, attempt, response)?,
                Err(e) => {
                    self.unanswered(table, attempt, e)?;
                    None
                }
            };
            let wait = retry_after
                .unwrap_or_else(|| backoff(self.retry.base_delay, attempt))
                .min(self.retry.max_wait);
            // In short steps, so a failure in another slice ends this one soon.
            let until = std::time::Instant::now() + wait;
            while !stop.load(Ordering::SeqCst) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
        }
    }

    fn request(
        &self,
        table: RawTable,
        query: &[(String, String)],
        count: bool,
    ) -> reqwest::blocking::RequestBuilder {
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
        request
    }

    /// An answer that is not a success: Ok(the wait the server asked for)
    /// when it is worth another attempt (429, 5xx), else the error.
    fn refused(
        &self,
        table: RawTable,
        attempt: u32,
        response: Response,
    ) -> Result<Option<Duration>> {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            bail!(
                "{table}: Supabase answered {status}: {}; {}",
                postgrest_message(response),
                self.key_help()
            );
        }
        if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
            bail!(
                "{table}: Supabase answered {status}: {}",
                postgrest_message(response)
            );
        }
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
                "{table}: Supabase answered {status} {}; giving up ({})",
                times(attempts),
                postgrest_message(response)
            );
        }
        eprintln!(
            "extract: {table}: Supabase answered {status}, retrying (attempt {attempt} of {attempts})"
        );
        Ok(wait)
    }

    /// No answer (a timeout, a refused connection): Ok when worth another attempt.
    fn unanswered(&self, table: RawTable, attempt: u32, e: reqwest::Error) -> Result<()> {
        let attempts = self.retry.attempts;
        if e.is_timeout() {
            let secs = self.retry.request_timeout.as_secs();
            if attempt >= attempts {
                bail!(
                    "{table}: Supabase at {} did not answer within {secs} s (--request-timeout), {}; giving up",
                    self.base,
                    times(attempts)
                );
            }
            eprintln!(
                "extract: {table}: no answer within {secs} s, retrying (attempt {attempt} of {attempts})"
            );
            return Ok(());
        }
        if attempt >= attempts {
            return Err(anyhow!(e.without_url())).context(format!(
                "{table}: cannot reach Supabase at {} after {}",
                self.base,
                match attempts {
                    1 => "1 attempt".to_string(),
                    n => format!("{n} attempts"),
                }
            ));
        }
        eprintln!(
            "extract: {table}: cannot reach Supabase ({}), retrying (attempt {attempt} of {attempts})",
            e.without_url()
        );
        Ok(())
    }
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

/// "once", "2 times", ...: how often an answer came, for error lines.
fn times(n: u32) -> String {
    match n {
        1 => "once".into(),
        n => format!("{n} times"),
    }
}
