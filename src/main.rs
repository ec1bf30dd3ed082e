//! The `ggen-p2p` binary: parses arguments and hands them to the library's CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ggen_p2p::cli::main(std::env::args_os()))
}
