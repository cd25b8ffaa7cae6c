use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    contract::tune_memory();
    if let Some(code) = train::respawn_with_passive_openmp() {
        return code;
    }
    let args = train::Args::parse();
    contract::exit("train", train::run(&args))
}
