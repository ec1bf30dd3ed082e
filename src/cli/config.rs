//! `ggen-p2p config show [START FLAGS]`: every effective setting of this data directory,
//! and where it came from (default, file, environment or flag) — what `start` with the
//! same flags would run with. Resolving the layers is `config::Layers`'s; this prints.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::{start, Output};
use crate::config::{env_var, Layers};
use crate::registry::FORMAT_VERSION;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value and where it comes from (default, file,
    /// environment, flag); accepts the flags of `start` to show their effect
    #[command(
        after_help = "Examples:\n  ggen-p2p config show\n  ggen-p2p config show --json\n  GGEN_P2P_MAX_CONNECTIONS=50 ggen-p2p config show --listen /ip4/0.0.0.0/tcp/4002"
    )]
    Show(start::Args),
}

/// `config show --json`.
#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub format_version: u32,
    /// The config file of this data directory.
    pub file: PathBuf,
    /// Whether that file exists (when not, no value comes from it).
    pub file_exists: bool,
    /// Every key, sorted.
    pub values: Vec<ConfigValue>,
}

/// One setting.
#[derive(Debug, Serialize)]
pub struct ConfigValue {
    /// Dotted for nested tables: `gossip.mesh_n`.
    pub key: String,
    /// The effective value, as TOML would hold it.
    pub value: serde_json::Value,
    /// "default", "file", "environment" or "flag".
    pub source: &'static str,
    /// The environment variable that sets this key.
    pub env: String,
}

pub fn run(data_dir: &Path, command: ConfigCommand, out: &Output) -> Result<()> {
    let ConfigCommand::Show(flags) = command;
    let layers = Layers::resolve(data_dir, |var| std::env::var(var).ok(), &flags.overrides())?;
    let values: Vec<ConfigValue> = layers
        .entries()
        .into_iter()
        .map(|(key, value, source)| ConfigValue {
            env: env_var(&key),
            value: serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
            key,
            source: source.as_str(),
        })
        .collect();
    let report = ConfigReport {
        format_version: FORMAT_VERSION,
        file_exists: layers.file.exists(),
        file: layers.file,
        values,
    };
    if out.json {
        return Ok(out.json(&report)?);
    }
    let rows: Vec<Vec<String>> = report
        .values
        .iter()
        .map(|v| vec![v.key.clone(), v.source.to_string(), show(&v.value)])
        .collect();
    out.table(&["KEY", "SOURCE", "VALUE"], &rows)?;
    let file = if report.file_exists {
        format!("file: {}", report.file.display())
    } else {
        format!(
            "file: {} (not present; defaults apply)",
            report.file.display()
        )
    };
    out.note(file);
    out.note("every key is documented in docs/configuration.md");
    Ok(())
}

fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
