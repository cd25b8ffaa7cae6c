use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = extract::status::StatusArgs::parse();
    match extract::status::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "status: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
