use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = model::respawn_with_passive_openmp() {
        return code;
    }
    let args = contract::parse_args::<serve::Args>();
    contract::exit("serve", serve::run(&args))
}
