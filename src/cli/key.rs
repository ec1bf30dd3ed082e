//! `ggen-p2p key generate|show`: the publisher key lives in the data directory as
//! `publisher.key` (mode 0600) and never leaves it.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use super::Output;
use crate::package::PublisherKey;
use crate::registry::{KeyReport, FORMAT_VERSION, PUBLISHER_KEY_FILE};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new publisher key
    Generate {
        /// Replace an existing key (its names can then only be updated after a rotation)
        #[arg(long)]
        force: bool,
    },
    /// Print your publisher id
    Show,
}

pub fn run(data_dir: &Path, command: KeyCommand, out: &Output) -> Result<()> {
    let path = data_dir.join(PUBLISHER_KEY_FILE);
    let (key, created) = match command {
        KeyCommand::Generate { force } => {
            let key = PublisherKey::generate();
            key.save(&path, force)?;
            (key, true)
        }
        KeyCommand::Show => (PublisherKey::load(&path)?, false),
    };
    let report = KeyReport {
        format_version: FORMAT_VERSION,
        publisher: key.id(),
        path,
        created,
    };
    if out.json {
        out.json(&report)?;
    } else {
        if created {
            out.note(format!("created publisher key {}", report.path.display()));
        }
        out.line(report.publisher)?;
    }
    Ok(())
}
