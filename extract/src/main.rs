use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = extract::Args::parse();
    match extract::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "extract: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
