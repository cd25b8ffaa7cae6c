//! What becomes of each row a source gives, decided in one place for every
//! reader (the CSV export read in columns, PostgreSQL's COPY in blocks, the
//! CSV export and Supabase pages read row by row): beyond `--limit`,
//! unreadable, outside the window, already collected by an earlier run, or
//! kept; the counts of the report and the cursor follow from it.

use std::collections::HashSet;
use std::sync::Arc;

use contract::reports::TableCounts;

use crate::sink::Target;

/// One row's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Written to the raw layer.
    Kept,
    /// A value did not read as its column's type: written to the rejects.
    Rejected,
    /// Read after `--limit` rows were kept.
    BeyondLimit,
    /// Created before `--since` / `--days` or at or after `--until`.
    OutsideWindow,
    /// An incremental run's lookback re-read it; an earlier run wrote it.
    AlreadyCollected,
}

/// Classifies a table's rows in the order they are read and counts them.
pub struct Classifier {
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<usize>,
    /// The source's present (microseconds): rows dated after it are kept but
    /// never move the cursor. Supabase's arrives with its first answer.
    pub horizon: i64,
    /// Shared with the target: a reader never copies it.
    collected: Arc<HashSet<String>>,
    pub counts: TableCounts,
    /// The greatest (created_at, id) kept and not past the horizon.
    pub max_key: Option<(i64, String)>,
}

impl Classifier {
    pub fn new(target: &Target) -> Self {
        Self {
            since: target.window.since.map(|t| t.timestamp_micros()),
            until: target.window.until.map(|t| t.timestamp_micros()),
            limit: target.window.limit,
            horizon: target.horizon.timestamp_micros(),
            collected: target.collected.clone(),
            counts: TableCounts::default(),
            max_key: None,
        }
    }

    /// Whether `--limit` rows are kept: every later row is beyond it.
    pub fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.counts.rows_written >= l)
    }

    /// The next row: `unreadable` when a value did not read; its created_at
    /// (microseconds) and id when they did.
    pub fn classify(
        &mut self,
        unreadable: bool,
        created_at: Option<i64>,
        id: Option<&str>,
    ) -> Fate {
        let counts = &mut self.counts;
        counts.rows_read += 1;
        if self.limit.is_some_and(|l| counts.rows_written >= l) {
            counts.rows_skipped_limit += 1;
            return Fate::BeyondLimit;
        }
        if unreadable {
            counts.rows_rejected += 1;
            return Fate::Rejected;
        }
        if let Some(t) = created_at
            && (self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u))
        {
            counts.rows_skipped_window += 1;
            return Fate::OutsideWindow;
        }
        if let Some(id) = id
            && self.collected.contains(id)
        {
            counts.already_collected += 1;
            return Fate::AlreadyCollected;
        }
        // The cursor is the newest row the source really holds: a row dated
        // past the source's present (its clock, or ours for files) is
        // collected, but never moves the cursor (it would make later runs
        // skip rows not yet committed).
        if let (Some(t), Some(id)) = (created_at, id)
            && t <= self.horizon
            && self
                .max_key
                .as_ref()
                .is_none_or(|(mt, mid)| (t, id) > (*mt, mid.as_str()))
        {
            self.max_key = Some((t, id.to_string()));
        }
        counts.rows_written += 1;
        Fate::Kept
    }

    /// `rows` more rows left unread once the limit is reached.
    pub fn skip_rest(&mut self, rows: usize) {
        self.counts.rows_read += rows;
        self.counts.rows_skipped_limit += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Window;
    use chrono::{TimeZone, Utc};

    fn target(limit: Option<usize>) -> Target {
        let at = |d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
        Target {
            window: Window {
                since: Some(at(2)),
                until: Some(at(9)),
                limit,
            },
            out_dir: "unused".into(),
            first_part: 0,
            extracted_at: at(10),
            horizon: at(5),
            collected: Arc::new(HashSet::from(["old".to_string()])),
        }
    }

    #[test]
    fn each_fate_is_counted_and_only_kept_rows_inside_the_horizon_move_the_cursor() {
        let day = |d: i64| Some(1_767_225_600_000_000 + (d - 1) * 86_400_000_000);
        let mut c = Classifier::new(&target(Some(3)));
        let fates = [
            c.classify(false, day(3), Some("a")),
            c.classify(true, None, None),
            c.classify(false, day(1), Some("b")),
            c.classify(false, day(9), Some("c")),
            c.classify(false, day(4), Some("old")),
            c.classify(false, day(7), Some("d")),
            c.classify(false, day(4), Some("e")),
            c.classify(true, None, None),
            c.classify(false, day(4), Some("f")),
        ];
        use Fate::*;
        assert_eq!(
            fates,
            [
                Kept,
                Rejected,
                OutsideWindow,
                OutsideWindow,
                AlreadyCollected,
                Kept,
                Kept,
                BeyondLimit,
                BeyondLimit
            ]
        );
        let n = &c.counts;
        assert_eq!(
            (
                n.rows_read,
                n.rows_written,
                n.rows_rejected,
                n.rows_skipped_window,
                n.already_collected,
                n.rows_skipped_limit
            ),
            (9, 3, 1, 2, 1, 2)
        );
        // d (day 7) is past the horizon (day 5): kept, but the cursor is e.
        assert_eq!(c.max_key, Some((day(4).unwrap(), "e".to_string())));
        assert!(c.full());
    }
}
