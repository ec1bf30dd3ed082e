//! How the command line fails: usage errors (exit 2) go through [`usage`], every error is
//! classified into one stable `kind`, and printed once — a line on stderr, or under
//! `--json` an object `{"error": {"kind", "message", "hint"}}` on stdout. The kinds are
//! listed in `docs/user-guide.md` ("Errors"); this file does not decide what failed, only
//! how it is told.

use std::io::Write;

use serde::Serialize;

use crate::config::ConfigError;
use crate::registry::RegistryError;

/// Exit code of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (as clap's own), so scripts can tell "wrong call" apart.
pub const EXIT_USAGE: u8 = 2;

/// Every `error.kind` the CLI prints, in the order `docs/user-guide.md` lists them.
pub const KINDS: &[&str] = &[
    "usage",
    "config",
    "manifest",
    "archive",
    "key",
    "record",
    "store",
    "not_found",
    "compromised",
    "refused",
    "network",
    "not_running",
    "daemon_unreachable",
    "io",
    "internal",
];

/// A command used wrongly (missing words, a bad combination): exit 2, like clap's own
/// errors. The message says what was wrong; the hint shows a correct call.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

/// A usage error as an `anyhow::Error`, ready to return from a command.
pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UsageError {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

/// A failure whose report is already on stdout (`verify` found damage: its `--json`
/// report says what): exit 1, and under `--json` print nothing more, so stdout stays one
/// JSON document. Without `--json` the sentence still goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

/// A [`Reported`] failure as an `anyhow::Error`.
pub fn reported(message: impl Into<String>) -> anyhow::Error {
    Reported(message.into()).into()
}

/// The `--json` form of an error; its fields are the schema.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// What went wrong, one sentence.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// The kind of an error, looked for along its chain (the outermost typed cause wins).
pub fn kind(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return "usage";
        }
        if let Some(err) = cause.downcast_ref::<RegistryError>() {
            return err.kind();
        }
        if cause.is::<ConfigError>() {
            return "config";
        }
        if cause.is::<crate::store::StoreError>() {
            return "store";
        }
        if cause.is::<crate::package::KeyError>() {
            return "key";
        }
        if cause.is::<crate::net::NetError>() {
            return "network";
        }
        if cause.is::<std::io::Error>() {
            return "io";
        }
    }
    "internal"
}

/// What to do, when the message itself does not say: one line per kind.
fn default_hint(kind: &str) -> &'static str {
    match kind {
        "usage" => "`ggen-p2p help COMMAND` shows the arguments and examples",
        "config" => "`ggen-p2p config show` prints every setting and where it comes from",
        "manifest" => "fix package.toml; `ggen-p2p init` writes a valid one to compare with",
        "archive" | "record" => {
            "the data did not verify and was not used; `ggen-p2p verify` checks the store"
        }
        "not_found" => {
            "`ggen-p2p search WORDS` lists what is known; a running node syncs more from its peers"
        }
        "compromised" => {
            "install another version, or pin the archive you trust with --archive HASH"
        }
        "key" => "`ggen-p2p key show` prints your publisher key; `key generate` creates one",
        "store" => "`ggen-p2p verify --repair` checks the data directory and removes leftovers",
        "network" => {
            "`ggen-p2p peers` lists connected peers; `ggen-p2p status` shows bootstrap failures"
        }
        "not_running" => "start a node with `ggen-p2p start` (same --data-dir) in another terminal",
        "daemon_unreachable" => "the node may have stopped; start it again with `ggen-p2p start`",
        "io" => "check the path exists and that you may read and write it",
        _ => "run again with -vv for details, and report it if it persists",
    }
}

/// Builds the report: the message is the error and its causes on one line; when the
/// message already ends with its own advice ("…; pass --data-dir DIR"), that part is
/// the hint, otherwise the kind's default hint is.
pub fn report(err: &anyhow::Error) -> ErrorReport {
    let kind = kind(err);
    if let Some(usage) = err.chain().find_map(|c| c.downcast_ref::<UsageError>()) {
        return ErrorReport {
            error: ErrorBody {
                kind,
                message: usage.message.clone(),
                hint: usage.hint.clone(),
            },
        };
    }
    let text = one_line(err);
    let (message, hint) = match text.rsplit_once("; ") {
        Some((message, hint)) if !hint.is_empty() => (message.to_string(), hint.to_string()),
        _ => (text, default_hint(kind).to_string()),
    };
    ErrorReport {
        error: ErrorBody {
            kind,
            message,
            hint,
        },
    }
}

/// Prints `err` the way `--json` asks (JSON on stdout, else one line on stderr) and
/// returns the exit code. Writes that fail (a closed pipe) are ignored: there is no one
/// left to tell.
pub fn print(err: &anyhow::Error, json: bool) -> u8 {
    let code = if kind(err) == "usage" {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    };
    let already_reported = err.chain().any(|c| c.is::<Reported>());
    if json && already_reported {
        return code;
    }
    if json {
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &report(err));
        let _ = writeln!(stdout);
        return code;
    }
    let mut text = one_line(err);
    if let Some(usage) = err.chain().find_map(|c| c.downcast_ref::<UsageError>()) {
        text = format!("{}; {}", usage.message, usage.hint);
    }
    let _ = writeln!(std::io::stderr().lock(), "ggen-p2p: {text}");
    code
}

/// Whether an error is only a closed stdout (`ggen-p2p list | head -1`): not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, skipping causes whose text the message above
/// them already includes (many errors quote their source).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_typed_cause_and_hints_from_the_message() {
        let err = usage("search needs words", "ggen-p2p search rust web");
        assert_eq!(kind(&err), "usage");
        let shown = report(&err);
        assert_eq!(shown.error.hint, "ggen-p2p search rust web");

        let err: anyhow::Error = RegistryError::NotRunning { operation: "peers" }.into();
        let shown = report(&err);
        assert_eq!(shown.error.kind, "not_running");
        assert!(shown.error.hint.contains("ggen-p2p start"), "{shown:?}");

        let err: anyhow::Error =
            RegistryError::Refused("no pack named x; try search".into()).into();
        let shown = report(&err);
        assert_eq!(shown.error.kind, "refused");
        assert_eq!(shown.error.message, "no pack named x");
        assert_eq!(shown.error.hint, "try search");

        let err = anyhow::anyhow!("something odd");
        assert_eq!(kind(&err), "internal");
        let remote: anyhow::Error = RegistryError::Remote {
            status: 502,
            message: "no provider answered".into(),
        }
        .into();
        assert_eq!(kind(&remote), "network");
        for kind in KINDS {
            assert!(!default_hint(kind).is_empty());
        }
    }
}
