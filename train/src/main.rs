use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = train::respawn_with_passive_openmp() {
        return code;
    }
    let args = train::Args::parse();
    match train::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "train: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
