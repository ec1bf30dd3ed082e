//! `ggen-p2p completions SHELL`: prints the shell completion script clap_complete derives
//! from the argument definitions, so completions never drift from the commands. Installing
//! the script is the user's (the `--help` examples show where each shell looks).

use anyhow::Result;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<()> {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "ggen-p2p", &mut script);
    use std::io::Write;
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}
