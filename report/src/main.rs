use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = report::Args::parse();
    match report::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "report: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
