use std::process::ExitCode;

fn main() -> ExitCode {
    let args = contract::parse_args::<validate::Args>();
    contract::exit_with("validate", validate::run(&args), |e| match e
        .downcast_ref::<validate::BelowMinimum>()
    {
        Some(_) => validate::EXIT_BELOW_MINIMUM,
        None => 1,
    })
}
