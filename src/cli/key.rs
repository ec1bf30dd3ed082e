//! `ggen-p2p key generate|show|rotate`: the publisher key lives in the data directory as
//! `publisher.key` (mode 0600) and never leaves it. `rotate` goes through the registry
//! (the daemon when one runs), which signs, stores and announces the rotation record.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use super::{Backend, Output};
use crate::package::PublisherKey;
use crate::registry::{KeyReport, Registry, RotateKeyRequest, FORMAT_VERSION, PUBLISHER_KEY_FILE};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new publisher key
    #[command(after_help = "Examples:\n  ggen-p2p key generate\n  ggen-p2p key generate --force")]
    Generate {
        /// Replace an existing key; its names stay with the old key (use `key rotate` to
        /// keep them)
        #[arg(long)]
        force: bool,
    },
    /// Print your publisher id
    #[command(after_help = "Examples:\n  ggen-p2p key show\n  ggen-p2p key show --json")]
    Show,
    /// Replace your key by a new one that keeps your names (a rotation record signed by
    /// both keys; the old key is kept as publisher.key.old-<time>)
    #[command(after_help = "Examples:\n  ggen-p2p key rotate")]
    Rotate(RotateKeyRequest),
}

pub async fn run(data_dir: &Path, command: KeyCommand, out: &Output) -> Result<()> {
    let path = data_dir.join(PUBLISHER_KEY_FILE);
    let (key, created) = match command {
        KeyCommand::Generate { force } => {
            let previous = if force {
                PublisherKey::load(&path).ok()
            } else {
                None
            };
            let key = PublisherKey::generate();
            key.save(&path, force)?;
            if let Some(previous) = previous {
                out.warn(format!(
                    "replaced publisher key {}: names it published stay with it, and this new key cannot update them; to keep your names use `ggen-p2p key rotate` instead",
                    previous.id()
                ));
            }
            (key, true)
        }
        KeyCommand::Show => (PublisherKey::load(&path)?, false),
        KeyCommand::Rotate(request) => {
            let backend = Backend::connect(data_dir).await?;
            let report = backend.rotate_key(request).await?;
            if out.json {
                return Ok(out.json(&report)?);
            }
            out.note(format!(
                "old key kept as {}; your names now follow the new key",
                report.old_key_path.display()
            ));
            out.line(format!("rotated {} -> {}", report.old, report.new))?;
            return Ok(());
        }
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
