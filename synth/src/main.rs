use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = synth::Args::parse();
    match synth::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "synth: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
