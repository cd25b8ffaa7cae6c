use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = transform::Args::parse();
    contract::exit("transform", transform::run(&args))
}
