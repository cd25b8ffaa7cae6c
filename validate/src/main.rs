use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = validate::Args::parse();
    match validate::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "validate: error: {}",
                contract::secrets::redact(&format!("{e:#}"))
            );
            match e.downcast_ref::<validate::BelowMinimum>() {
                Some(_) => ExitCode::from(validate::EXIT_BELOW_MINIMUM),
                None => ExitCode::FAILURE,
            }
        }
    }
}
