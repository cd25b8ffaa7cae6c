use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = train::predict::PredictArgs::parse();
    match train::predict::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "predict: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
