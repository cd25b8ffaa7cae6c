use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = extract::Args::parse();
    contract::exit("extract", extract::run(&args))
}
