//! The `pgship` binary: parse arguments, run, map the result to a documented exit code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(pgship::cli::main() as u8)
}
