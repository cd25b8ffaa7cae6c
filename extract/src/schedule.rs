//! `--every`: one incremental run per period until Ctrl-C; a failed run is
//! logged and retried at the next tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub fn parse_every(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a period like 30s, 15m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "" => return Err(format!("`{s}` needs a unit: s, m or h")),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m or h)")),
    };
    if secs == 0 {
        return Err("the period must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

pub fn every(period: Duration, mut run_once: impl FnMut() -> Result<String>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    eprintln!("extract: collecting every {period:?}; Ctrl-C stops after the current run");
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        match run_once() {
            Ok(summary) => println!(
                "{now} ok in {:.1}s: {summary}",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => println!(
                "{now} failed (retrying next run): {}",
                contract::secrets::redact(&format!("{e:#}"))
            ),
        }
        let next = started + period;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(
                Duration::from_millis(200).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }
    eprintln!("extract: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_every("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_every("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_every("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_every("1").is_err());
        assert!(parse_every("0s").is_err());
        assert!(parse_every("2d").is_err());
    }
}
