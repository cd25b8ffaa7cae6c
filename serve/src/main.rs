use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = model::respawn_with_passive_openmp() {
        return code;
    }
    let args = serve::Args::parse();
    match serve::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "serve: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
