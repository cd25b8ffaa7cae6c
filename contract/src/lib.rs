//! The data contract every stage agrees on: the raw tables and training datasets
//! (names, columns, types), where each lives under the `--data` root, and how
//! Parquet files are read and written (errors name the file; writes are atomic).
//!
//! Stages depend on this crate and never on each other, so any stage can be
//! rerun alone or swapped for another program that honours the same files.

pub mod columns;
pub mod commit;
pub mod datasets;
pub mod drift;
pub mod error;
pub mod history;
pub mod io;
pub mod layout;
pub mod progress;
pub mod registry;
pub mod reports;
pub mod rules;
pub mod secrets;
pub mod tables;
pub mod timestamp;

pub use datasets::Dataset;
pub use error::ContractError;
pub use layout::Layout;
pub use tables::{Kind, RawTable};

/// `n` and a noun, plural but for one: `1 clean row`, `300 clean rows`.
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Column names as messages name them: `` `a`, `b` ``.
pub fn column_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// The `_source` tag of rows made up by `synth`.
pub const SYNTH_SOURCE: &str = "synth";

/// A full extraction (or synth) replaces the raw tables. When `extract
/// --incremental` (`make collect`) has been collecting into them, that would
/// drop what it gathered, which the source may no longer hold: refused
/// unless `replace`, and then the collection's position goes in the same
/// commit, so the next collection starts afresh.
pub fn replace_collected(
    commit: &mut commit::Commit,
    layout: &Layout,
    stage: &str,
    replace: bool,
) -> anyhow::Result<()> {
    let state = layout.extract_state();
    if !state.exists() {
        return Ok(());
    }
    if !replace {
        anyhow::bail!(
            "{}: holds rows collected incrementally (`make collect`; {} keeps its place), \
             which this full {stage} would replace: `make retrain` trains on them, or \
             --replace (REPLACE=yes for make) replaces them",
            layout.raw_root().display(),
            state.display()
        );
    }
    commit.remove(&state);
    Ok(())
}

/// A stage's command line, parsed as clap does with one difference: a
/// negative number after a flag is its value (`--days -1`), so the flag's
/// own check refuses it naming the flag, where clap took it for an unknown
/// flag (`unexpected argument '-1' found`).
pub fn parse_args<T: clap::Parser>() -> T {
    let command = T::command().mut_args(|arg| {
        if arg.get_action().takes_values() {
            arg.allow_negative_numbers(true)
        } else {
            arg
        }
    });
    let mut matches = command.get_matches();
    T::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

/// A command-line count that must be at least 1 (`--limit`, `--max-rows`,
/// `--keep`, ...), where 0 would keep, allow or try nothing: as a value
/// parser, clap then names the flag (`invalid value '0' for '--limit <LIMIT>':
/// must be at least 1`).
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + From<u8> + PartialOrd,
    T::Err: std::fmt::Display,
{
    // A negative count (`--limit -5`) is below 1, not "an invalid digit".
    if text
        .strip_prefix('-')
        .is_some_and(|n| n.parse::<T>().is_ok())
    {
        return Err("must be at least 1".into());
    }
    let n: T = text.parse().map_err(|e: T::Err| e.to_string())?;
    if n < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// How every stage binary ends: success, or one line on stderr
/// (`<stage>: error: <cause: cause ...>`, secrets redacted) and exit status 1.
pub fn exit(stage: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    exit_with(stage, result, |_| 1)
}

/// Called first in train's `main`: glibc's malloc raises its mmap threshold
/// each time a large block is freed (up to 32 MiB), after which the batches
/// train reads and drops (a few MiB per column) come from the heap and stay
/// resident, fragmented, beside the model inputs they were copied into. A
/// fixed 1 MiB threshold hands every large block back to the kernel when it
/// is freed: at 10M rows per table, the csat model's peak fell from 3.16 to
/// 2.47 GB, time unchanged (76 s against 75 s). Not for the other stages:
/// validate took 17.7 s against 11.3 s (a page fault for every fresh block)
/// for 13% less memory, transform 24.1 s against 21.8 s for 11% less.
#[allow(unsafe_code)] // one libc call, no pointers
pub fn tune_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// This machine's memory in bytes: /proc/meminfo's MemTotal, or the cgroup
/// (v2) limit when one is set and smaller. None where neither can be read.
pub fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?
        * 1024;
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(limit.map_or(total, |l| l.min(total)))
}

/// As [`exit`], with the exit status chosen by the error (`validate` tells
/// "too few clean rows" apart with its own status).
pub fn exit_with(
    stage: &str,
    result: anyhow::Result<()>,
    status: impl FnOnce(&anyhow::Error) -> u8,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{stage}: error: {}", secrets::redact(&error_line(&e)));
            std::process::ExitCode::from(status(&e))
        }
    }
}

/// An error and its causes on one line, outermost first, each said once: a
/// message that already ends with its cause's text (`{path}: not a readable
/// Parquet file: {source}`) is not followed by that cause again, as anyhow's
/// `{:#}` would do.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if previous.is_empty() || !previous.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

/// A listing cut short by its reader (`status | head`) ends quietly, as a
/// C program killed by SIGPIPE would (exit status 141), instead of
/// panicking: Rust ignores SIGPIPE, so `println!` to a closed pipe panics.
pub fn end_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::error_line;
    use anyhow::Context;

    #[test]
    fn count_is_plural_but_for_one() {
        assert_eq!(super::count(0, "clean row"), "0 clean rows");
        assert_eq!(super::count(1, "clean row"), "1 clean row");
        assert_eq!(super::count(500, "row"), "500 rows");
    }

    #[test]
    fn column_list_quotes_each_name() {
        let names = ["mood".to_string(), "seen".to_string()];
        assert_eq!(super::column_list(&names), "`mood`, `seen`");
    }

    #[test]
    fn error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = crate::ContractError::Io {
            path: "data/x.parquet".into(),
            source: io,
        };
        let wrapped = Err::<(), _>(err)
            .context("reading the clean layer")
            .unwrap_err();
        assert_eq!(
            error_line(&wrapped),
            "reading the clean layer: data/x.parquet: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&plain), "outer: inner");
    }

    #[test]
    fn counts_of_at_least_one() {
        assert_eq!(crate::at_least_one::<usize>("1"), Ok(1));
        assert_eq!(crate::at_least_one::<u32>("6"), Ok(6));
        assert_eq!(
            crate::at_least_one::<usize>("0"),
            Err("must be at least 1".to_string())
        );
        assert_eq!(
            crate::at_least_one::<u32>("-1"),
            Err("must be at least 1".to_string())
        );
        assert!(crate::at_least_one::<usize>("x").is_err());
    }
}
