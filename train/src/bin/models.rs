use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
    let args = train::versions::ModelsArgs::parse();
    contract::exit("models", train::versions::run(&args))
}
