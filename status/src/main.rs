use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
    let args = status::Args::parse();
    contract::exit("status", status::run(&args))
}
