//! Paging through one table: keyset pages on (created_at, id), the rest of a
//! large table read in time slices side by side, the pages handed to the
//! sink in order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use contract::RawTable;
use contract::columns::{CREATED_AT, ID};
use contract::progress::Progress;
use serde_json::{Map, Value};

use super::{Client, KeyKind, PAGE};
use crate::sink::{TableSink, Target};

impl Client {
    /// Reads one table into a sink, every row exactly once, in (created_at, id)
    /// order, rows without a created_at last.
    ///
    /// The first page comes alone: it carries the row count, the server's clock,
    /// and the server's page cap (a full first page shorter than asked is the
    /// cap, so a shorter page later marks the end of the rows, without asking for
    /// an empty one). When more pages follow and no --limit is set, the rest is
    /// read in time slices of a few pages each, `concurrency` slices at a time on
    /// threads of their own (fetch and JSON parse), while the sink takes the
    /// slices' pages in order; see [`Client::sliced`].
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
        let mut out = Collector {
            table,
            origin,
            target,
            sink: None,
            progress: None,
            source_now: None,
            cap: None,
        };
        let never = AtomicBool::new(false);
        if let Some(first_size) = out.next_page_size() {
            let first = self.page(
                table,
                &filters,
                None,
                Pass::Keyset,
                first_size,
                true,
                &never,
            )?;
            out.started(first.total, first.date);
            let after = last_key(&first.rows);
            let read = first.rows.len();
            let left = first.total.map(|t| t.saturating_sub(read as u64));
            // More rows than this page: the server gave all it will per page.
            if left.is_some_and(|l| l > 0) && read > 0 && (read < first_size || read == PAGE) {
                out.cap = Some(read);
            }
            out.push(first.rows)?;
            let more = match left {
                Some(left) => left > 0,
                None => read > 0,
            };
            if let (Some(after), true) = (after, more) {
                let newest = if self.concurrency > 1 && window.limit.is_none() {
                    self.newest(table, &filters, &never)?
                } else {
                    None
                };
                let oldest = contract::timestamp::parse_utc(&after.0);
                match (oldest, newest, left) {
                    (Some(oldest), Some(newest), Some(left)) if newest > oldest => {
                        self.sliced(&filters, after, (oldest, newest), left, &mut out)?;
                    }
                    _ => self.pages(&filters, Some(after), Pass::Keyset, &mut out, &never)?,
                }
            }
        }
        // Rows without a created_at escape the keyset; read them by id afterwards
        // (only when no window asks for a time range).
        if window.since.is_none() && window.until.is_none() {
            self.pages(&filters, None, Pass::NoCreatedAt, &mut out, &never)?;
        }
        out.finish(&self.key)
    }

    /// Pages through the rows `filters` and `pass` select, from after `after`,
    /// into `out`, until a short page or the limit.
    fn pages(
        &self,
        filters: &[(String, String)],
        mut after: Option<Key>,
        pass: Pass,
        out: &mut Collector,
        stop: &AtomicBool,
    ) -> Result<()> {
        while let Some(size) = out.next_page_size() {
            let first = out.progress.is_none();
            let page = self.page(out.table, filters, after.as_ref(), pass, size, first, stop)?;
            if first {
                out.started(page.total, page.date);
            }
            let last = is_last_page(page.rows.len(), size, out.cap);
            after = last_key(&page.rows);
            out.push(page.rows)?;
            if last {
                break;
            }
        }
        Ok(())
    }

    /// The keyset pass after the first page, as time slices between its last
    /// created_at and the newest one, sized for a few pages each: slice i holds
    /// created_at in [b_i, b_i+1) (the first one starts after the first page, the
    /// last one has no end, so rows that arrive meanwhile are read too).
    ///
    /// `concurrency` threads take slices in order from a shared counter and page
    /// through each into the slice's channel; the sink empties slice 0's channel,
    /// then slice 1's, so the order is the sequential one. A thread starts a slice
    /// only while it lies within `2 x concurrency` slices of the one the sink is
    /// at, and a channel holds two pages, so memory is bounded by the pages in
    /// that window, not by the table. A failure in any slice stops all of them and
    /// is the one error returned.
    fn sliced(
        &self,
        filters: &[(String, String)],
        after: Key,
        (oldest, newest): (DateTime<Utc>, DateTime<Utc>),
        left: u64,
        out: &mut Collector,
    ) -> Result<()> {
        let table = out.table;
        let page = out.cap.unwrap_or(PAGE).min(PAGE);
        let count = usize::try_from(left.div_ceil((page * PAGES_PER_SLICE) as u64))
            .unwrap_or(MAX_SLICES)
            .clamp(1, MAX_SLICES);
        let window = 2 * self.concurrency;
        let ranges = slice_ranges(filters, after, (oldest, newest), count);
        let mut senders = Vec::with_capacity(count);
        let mut receivers = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Row>>(PAGES_AHEAD);
            senders.push(Mutex::new(Some(tx)));
            receivers.push(rx);
        }
        let next = AtomicUsize::new(0);
        let reached = (Mutex::new(0usize), Condvar::new());
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let cap = out.cap;
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.min(count) {
                scope.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= count {
                            return;
                        }
                        let mut at = lock(&reached.0);
                        while i >= *at + window && !stop.load(Ordering::SeqCst) {
                            at = reached
                                .1
                                .wait_timeout(at, Duration::from_millis(100))
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                        drop(at);
                        let Some(tx) = lock(&senders[i]).take() else {
                            return;
                        };
                        let (range, start) = &ranges[i];
                        let result =
                            self.slice(table, range, start.clone(), page, cap, &stop, |rows| {
                                tx.send(rows).is_ok()
                            });
                        if let Err(e) = result {
                            if !stop.swap(true, Ordering::SeqCst) {
                                *lock(&failure) = Some(e);
                            }
                            return;
                        }
                    }
                });
            }
            let taken = take_in_order(receivers, out, &stop, &reached);
            stop.store(true, Ordering::SeqCst);
            taken
        })?;
        match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One slice's pages, handed to `send` until a short page, a closed
    /// receiver or a stop.
    #[allow(clippy::too_many_arguments)] // one slice's every part, named at its one call
    fn slice(
        &self,
        table: RawTable,
        filters: &[(String, String)],
        mut after: Option<Key>,
        size: usize,
        cap: Option<usize>,
        stop: &AtomicBool,
        send: impl Fn(Vec<Row>) -> bool,
    ) -> Result<()> {
        while !stop.load(Ordering::SeqCst) {
            let page = self.page(
                table,
                filters,
                after.as_ref(),
                Pass::Keyset,
                size,
                false,
                stop,
            )?;
            let last = is_last_page(page.rows.len(), size, cap);
            after = last_key(&page.rows);
            // An empty page is not sent; a short one is, and ends the slice.
            if after.is_none() || !send(page.rows) || last {
                break;
            }
        }
        Ok(())
    }

    /// The newest created_at in the window, if any.
    fn newest(
        &self,
        table: RawTable,
        filters: &[(String, String)],
        stop: &AtomicBool,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut query = vec![("select".to_string(), CREATED_AT.to_string())];
        query.extend(filters.iter().cloned());
        query.push((CREATED_AT.into(), "not.is.null".into()));
        query.push(("order".into(), format!("{CREATED_AT}.desc,{ID}.desc")));
        query.push(("limit".into(), "1".into()));
        let rows: Vec<Row> = self
            .get(table, &query, false, stop)?
            .json()
            .with_context(|| {
                format!("{table}: Supabase sent a body that is not a JSON array of rows")
            })?;
        Ok(rows
            .first()
            .and_then(|r| r.get(CREATED_AT))
            .map(key_text)
            .and_then(|t| contract::timestamp::parse_utc(&t)))
    }

    /// One page: the rows after `after` in the pass's order, at most `size`.
    #[allow(clippy::too_many_arguments)] // one request's every part, named at each call
    fn page(
        &self,
        table: RawTable,
        filters: &[(String, String)],
        after: Option<&Key>,
        pass: Pass,
        size: usize,
        count: bool,
        stop: &AtomicBool,
    ) -> Result<Page> {
        let mut query = vec![("select".to_string(), "*".to_string())];
        query.extend(filters.iter().cloned());
        match pass {
            Pass::NoCreatedAt => {
                query.push((CREATED_AT.into(), "is.null".into()));
                query.push(("order".into(), format!("{ID}.asc")));
                if let Some((_, id)) = after {
                    query.push((ID.into(), format!("gt.{id}")));
                }
            }
            Pass::Keyset => {
                query.push((CREATED_AT.into(), "not.is.null".into()));
                query.push(("order".into(), format!("{CREATED_AT}.asc,{ID}.asc")));
                if let Some((t, id)) = after {
                    query.push((
                        "or".into(),
                        format!("({CREATED_AT}.gt.\"{t}\",and({CREATED_AT}.eq.\"{t}\",{ID}.gt.\"{id}\"))"),
                    ));
                }
            }
        }
        query.push(("limit".into(), size.to_string()));
        let response = self.get(table, &query, count, stop)?;
        let date = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc));
        let total = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|t| t.parse::<u64>().ok());
        let rows: Vec<Row> = response.json().with_context(|| {
            format!("{table}: Supabase sent a body that is not a JSON array of rows")
        })?;
        Ok(Page { rows, total, date })
    }
}

type Row = Map<String, Value>;

/// PostgREST query parameters, each `(column or keyword, value)`.
type Filters = Vec<(String, String)>;

/// A keyset position: the last row's (created_at as PostgREST filters take it, id).
type Key = (String, String);

/// Pages a slice's channel holds ahead of the sink.
const PAGES_AHEAD: usize = 2;
/// Pages per time slice, on evenly spread rows.
const PAGES_PER_SLICE: usize = 4;
const MAX_SLICES: usize = 100_000;

/// The filters of `count` time slices between `oldest` and `newest` (the
/// first also starts after the key `after`, where the first page ended).
fn slice_ranges(
    filters: &[(String, String)],
    after: Key,
    (oldest, newest): (DateTime<Utc>, DateTime<Utc>),
    count: usize,
) -> Vec<(Filters, Option<Key>)> {
    let span = (newest - oldest).num_microseconds().unwrap_or(i64::MAX);
    let bound = |i: usize| {
        let offset = (span as i128 * i as i128 / count as i128) as i64;
        stamp(oldest + chrono::Duration::microseconds(offset))
    };
    (0..count)
        .map(|i| {
            let mut range = filters.to_vec();
            if i > 0 {
                range.push((CREATED_AT.into(), format!("gte.{}", bound(i))));
            }
            if i + 1 < count {
                range.push((CREATED_AT.into(), format!("lt.{}", bound(i + 1))));
            }
            (range, (i == 0).then(|| after.clone()))
        })
        .collect()
}

/// Empties slice 0's pages into the collector, then slice 1's, ..., telling
/// the fetching threads through `reached` which slice it is at; ends early
/// when `stop` is set.
fn take_in_order(
    receivers: Vec<std::sync::mpsc::Receiver<Vec<Row>>>,
    out: &mut Collector,
    stop: &AtomicBool,
    reached: &(Mutex<usize>, Condvar),
) -> Result<()> {
    for (i, rx) in receivers.into_iter().enumerate() {
        // The slice's sender goes away when its thread is done with it.
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(rows) => out.push(rows)?,
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::SeqCst) => {}
                Err(_) => break,
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        *lock(&reached.0) = i + 1;
        reached.1.notify_all();
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The two passes over a table: by (created_at, id), then rows without a created_at by id.
#[derive(Clone, Copy)]
enum Pass {
    Keyset,
    NoCreatedAt,
}

struct Page {
    rows: Vec<Row>,
    /// The count PostgREST reports with `Prefer: count=exact`.
    total: Option<u64>,
    /// The server's clock, from its `Date` header.
    date: Option<DateTime<Utc>>,
}

/// Whether a page of `rows` (of `asked`) is the last of its run: empty, or,
/// once the server's page cap is known, shorter than it would give.
fn is_last_page(rows: usize, asked: usize, cap: Option<usize>) -> bool {
    rows == 0 || cap.is_some_and(|cap| rows < asked.min(cap))
}

/// The key after a page's last row, None for an empty page.
fn last_key(rows: &[Row]) -> Option<Key> {
    rows.last().map(|r| {
        (
            r.get(CREATED_AT)
                .map(key_text)
                .map(|t| contract::timestamp::parse_utc(&t).map(stamp).unwrap_or(t))
                .unwrap_or_default(),
            r.get(ID).map(key_text).unwrap_or_default(),
        )
    })
}

/// Where one table's pages go: the sink (opened on the first row, with the
/// header of that row), and the progress of the table.
struct Collector<'a> {
    table: RawTable,
    origin: String,
    target: &'a Target,
    sink: Option<TableSink>,
    progress: Option<Progress>,
    source_now: Option<DateTime<Utc>>,
    /// The rows per page the server gives at most, once a full page showed it.
    cap: Option<usize>,
}

impl Collector<'_> {
    /// The next request's size: a page, or what is left of --limit (None: done).
    fn next_page_size(&self) -> Option<usize> {
        let written = self.sink.as_ref().map_or(0, |s| s.rows.counts.rows_written);
        match self.target.window.limit {
            Some(limit) => Some(limit.saturating_sub(written).min(PAGE)).filter(|n| *n > 0),
            None => Some(PAGE),
        }
    }

    /// The first answer: the row count for the progress, the server's clock for the cursor.
    fn started(&mut self, total: Option<u64>, date: Option<DateTime<Utc>>) {
        self.progress = Some(Progress::new("extract", self.table.name(), "rows", total));
        self.source_now = date;
    }

    fn push(&mut self, rows: Vec<Row>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sink = match &mut self.sink {
            Some(s) => s,
            None => {
                let header: Vec<String> = rows[0].keys().cloned().collect();
                let mut new =
                    TableSink::new(self.table, "supabase", &self.origin, header, self.target)?;
                if let Some(now) = self.source_now {
                    new.set_source_now(now);
                }
                self.sink.insert(new)
            }
        };
        let header = sink.header().to_vec();
        // Pages are sized to what --limit leaves; the sink counts any row past it.
        for row in &rows {
            let values: Vec<Value> = header
                .iter()
                .map(|h| row.get(h).cloned().unwrap_or(Value::Null))
                .collect();
            sink.push(&values)?;
        }
        if let Some(p) = self.progress.as_ref() {
            p.inc(rows.len() as u64);
        }
        Ok(())
    }

    fn finish(self, key: &str) -> Result<TableSink> {
        if let Some(p) = self.progress {
            p.finish();
        }
        let table = self.table;
        let nothing = self
            .sink
            .as_ref()
            .is_none_or(|s| s.rows.counts.rows_read == 0);
        if nothing && KeyKind::of(key) == KeyKind::Publishable {
            eprintln!(
                "extract: {table}: no rows visible to a publishable key; if the table has rows, \
                 Row Level Security hides them from the anon role (see the README)"
            );
        }
        match self.sink {
            Some(s) => Ok(s),
            None => {
                let header = table.columns().iter().map(|c| c.name.to_string()).collect();
                Ok(TableSink::new(
                    table,
                    "supabase",
                    &self.origin,
                    header,
                    self.target,
                )?)
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
