use std::process::ExitCode;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
    let args = contract::parse_args::<status::Args>();
    contract::exit("status", status::run(&args))
}
