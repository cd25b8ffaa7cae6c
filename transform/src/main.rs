use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = transform::Args::parse();
    match transform::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "transform: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
