use std::process::ExitCode;

fn main() -> ExitCode {
    let args = contract::parse_args::<report::Args>();
    contract::exit("report", report::run(&args))
}
