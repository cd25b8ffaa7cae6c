use std::process::ExitCode;

fn main() -> ExitCode {
    let args = contract::parse_args::<transform::Args>();
    contract::exit("transform", transform::run(&args))
}
