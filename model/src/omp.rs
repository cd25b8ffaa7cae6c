//! LightGBM's OpenMP threads spin while they wait for work. With the cores
//! shared (another train, a build), spinning threads steal the time the
//! working ones need: one measured run went from 22 s to 424 s. A passive wait
//! policy makes waiting threads sleep instead. OpenMP reads the policy once,
//! when the runtime loads (before `main`), so the only way to set it from
//! inside is to start the program again with it set.

use std::process::ExitCode;

const VAR: &str = "OMP_WAIT_POLICY";

/// Re-executes this program with OMP_WAIT_POLICY=PASSIVE unless the variable
/// is already set (by us or by the user, whose choice wins). Returns the exit
/// code to use when the program could not be re-executed and ran as a child.
pub fn respawn_with_passive_openmp() -> Option<ExitCode> {
    if std::env::var_os(VAR).is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env(VAR, "PASSIVE");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Replaces this process; returns only when that failed, and then we
        // simply go on with the default policy.
        let _ = command.exec();
        None
    }
    #[cfg(not(unix))]
    {
        let status = command.status().ok()?;
        Some(ExitCode::from(status.code().unwrap_or(1) as u8))
    }
}
