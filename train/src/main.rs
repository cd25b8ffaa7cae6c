use std::process::ExitCode;

fn main() -> ExitCode {
    contract::tune_memory();
    if let Some(code) = train::respawn_with_passive_openmp() {
        return code;
    }
    let args = contract::parse_args::<train::Args>();
    contract::exit("train", train::run(&args))
}
