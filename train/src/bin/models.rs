use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = train::versions::ModelsArgs::parse();
    match train::versions::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "models: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
