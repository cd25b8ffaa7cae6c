use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = train::respawn_with_passive_openmp() {
        return code;
    }
    let args = contract::parse_args::<train::predict::PredictArgs>();
    contract::exit("predict", train::predict::run(&args))
}
