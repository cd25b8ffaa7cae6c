use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = report::Args::parse();
    contract::exit("report", report::run(&args))
}
