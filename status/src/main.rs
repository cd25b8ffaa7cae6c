use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = status::Args::parse();
    match status::run(&args) {
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
