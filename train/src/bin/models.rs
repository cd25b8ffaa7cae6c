use std::process::ExitCode;

fn main() -> ExitCode {
    contract::end_quietly_on_closed_stdout();
    let args = contract::parse_args::<train::versions::ModelsArgs>();
    contract::exit("models", train::versions::run(&args))
}
