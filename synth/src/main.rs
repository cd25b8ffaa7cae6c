use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = synth::Args::parse();
    contract::exit("synth", synth::run(&args))
}
