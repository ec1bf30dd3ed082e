//! `{{bin}} {{cmd}}`: {{about}}.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// {{about}}
#[derive(Debug, Args)]
pub struct {{Cmd}}Args {
    /// Input file to read.
    #[arg(value_name = "FILE")]
    pub input: PathBuf,

    /// Where to write the result (stdout when omitted).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Show what would be done without writing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Print more detail; repeat for even more.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(args: {{Cmd}}Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("{}: cannot read input", args.input.display()))?;
    if args.verbose > 0 {
        eprintln!("{{cmd}}: read {} bytes from {}", text.len(), args.input.display());
    }
    if args.dry_run {
        eprintln!("{{cmd}}: dry run, nothing written");
        return Ok(());
    }
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("{}: cannot write output", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}
