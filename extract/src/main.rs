use std::process::ExitCode;

fn main() -> ExitCode {
    let args = contract::parse_args::<extract::Args>();
    contract::exit("extract", extract::run(&args))
}
