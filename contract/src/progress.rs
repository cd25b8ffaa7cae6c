//! Progress on long work, the same in every stage: on a terminal, an
//! indicatif bar (or a spinner when the total is unknown) per unit of work,
//! with counts, rate and elapsed time, redrawn on indicatif's timer, never
//! per row; off a terminal (CI, cron, `make collect` logs), plain lines on
//! stderr: one when the work starts, one every [`LOG_EVERY`] of long work,
//! one when it ends, never escape codes. `--quiet` ([`set_quiet`]) silences
//! progress; errors are printed whatever it says.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a long piece of work logs a line off a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences progress for the rest of the process (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Every bar of the process stacks in one place, so bars of work done side
/// by side (train's models) do not draw over each other.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)))
}

enum Mode {
    Quiet,
    Bar(ProgressBar),
    Log { last: Mutex<Instant> },
}

/// One piece of long work: `stage: what`, counted in `unit`.
pub struct Progress {
    stage: &'static str,
    what: String,
    unit: &'static str,
    total: Option<u64>,
    done: AtomicU64,
    started: Instant,
    mode: Mode,
}

impl Progress {
    pub fn new(stage: &'static str, what: &str, unit: &'static str, total: Option<u64>) -> Self {
        let mode = if QUIET.load(Ordering::Relaxed) {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let (bar, template) = match total {
                Some(t) => (
                    ProgressBar::new(t),
                    "{prefix:>28} [{bar:30}] {human_pos}/{human_len} {msg} {per_sec} {elapsed_precise} eta {eta}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{prefix:>28} {spinner} {human_pos} {msg} {elapsed_precise}",
                ),
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{stage}: {what}"));
            bar.set_message(unit);
            let bar = bars().add(bar);
            bar.enable_steady_tick(Duration::from_millis(125));
            Mode::Bar(bar)
        } else {
            match total {
                Some(t) => eprintln!("{stage}: {what}: started, {t} {unit} to go"),
                None => eprintln!("{stage}: {what}: started"),
            }
            Mode::Log {
                last: Mutex::new(Instant::now()),
            }
        };
        Self {
            stage,
            what: what.to_string(),
            unit,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            mode,
        }
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.mode {
            Mode::Bar(bar) => bar.inc(n),
            Mode::Log { last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let of = self.total.map_or(String::new(), |t| format!("/{t}"));
                    eprintln!(
                        "{}: {}: {done}{of} {} ({:.0} s)",
                        self.stage,
                        self.what,
                        self.unit,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Mode::Quiet => {}
        }
    }

    /// What the work is at now (a phase), shown beside the count.
    pub fn set_phase(&self, phase: &str) {
        if let Mode::Bar(bar) = &self.mode {
            bar.set_message(format!("{} ({phase})", self.unit));
        }
    }

    /// Runs `f` (which prints a line) with the bar hidden, so the line and the
    /// bar do not garble each other on a terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.mode {
            Mode::Bar(bar) => bar.suspend(f),
            _ => f(),
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The work is over: the bar leaves the screen, the log says how long it took.
    pub fn finish(&self) {
        let took = self.started.elapsed().as_secs_f64();
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Log { .. } => eprintln!(
                "{}: {}: done, {} {} in {took:.1} s",
                self.stage,
                self.what,
                self.done(),
                self.unit
            ),
            Mode::Quiet => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A bar left by an error path must not stay drawn under the error line.
        if let Mode::Bar(bar) = &self.mode
            && !bar.is_finished()
        {
            bar.finish_and_clear();
        }
    }
}
