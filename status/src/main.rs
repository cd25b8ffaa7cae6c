use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
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
