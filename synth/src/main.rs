use std::process::ExitCode;

fn main() -> ExitCode {
    let args = contract::parse_args::<synth::Args>();
    contract::exit("synth", synth::run(&args))
}
