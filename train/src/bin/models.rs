use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
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
