use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
