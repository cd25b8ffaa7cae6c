use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = model::respawn_with_passive_openmp() {
        return code;
    }
    let args = serve::Args::parse();
    contract::exit("serve", serve::run(&args))
}
