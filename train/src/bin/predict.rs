use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = train::respawn_with_passive_openmp() {
        return code;
    }
    let args = train::predict::PredictArgs::parse();
    contract::exit("predict", train::predict::run(&args))
}
