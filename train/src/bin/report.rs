use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = train::page::ReportArgs::parse();
    match train::page::run(&args) {
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
