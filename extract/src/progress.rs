//! Progress on long reads: a bar on a terminal, a log line every so often otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    table: String,
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    last_log: Instant,
}

impl Progress {
    pub fn new(table: &str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(table.to_string());
            bar
        });
        if bar.is_none() {
            match total {
                Some(t) => eprintln!("extract: {table}: {t} rows to read"),
                None => eprintln!("extract: {table}: reading"),
            }
        }
        Self {
            table: table.to_string(),
            bar,
            total,
            done: 0,
            last_log: Instant::now(),
        }
    }

    pub fn add(&mut self, rows: u64) {
        self.done += rows;
        match &self.bar {
            Some(bar) => bar.inc(rows),
            None if self.last_log.elapsed() > Duration::from_secs(5) => {
                self.last_log = Instant::now();
                match self.total {
                    Some(t) => eprintln!("extract: {}: {}/{t} rows", self.table, self.done),
                    None => eprintln!("extract: {}: {} rows", self.table, self.done),
                }
            }
            None => {}
        }
    }

    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish(),
            None => eprintln!("extract: {}: {} rows read", self.table, self.done),
        }
    }
}
