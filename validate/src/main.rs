use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = validate::Args::parse();
    contract::exit_with("validate", validate::run(&args), |e| match e
        .downcast_ref::<validate::BelowMinimum>()
    {
        Some(_) => validate::EXIT_BELOW_MINIMUM,
        None => 1,
    })
}
