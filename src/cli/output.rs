//! Where output goes: results to stdout as a table or JSON, messages to stderr unless
//! `--quiet`. Writes to stdout report errors (a closed pipe ends the program quietly);
//! writes to stderr never fail loudly (a closed stderr must not turn a note into a panic).

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// A status line on stderr (suppressed by `--quiet` and by `--json`).
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet && !self.json {
            let _ = writeln!(io::stderr().lock(), "{message}");
        }
    }

    /// A warning on stderr (suppressed by `--quiet`).
    pub fn warn(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "warning: {message}");
        }
    }

    pub fn json<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value)?;
        writeln!(stdout)
    }

    pub fn line(&self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(io::stdout().lock(), "{text}")
    }

    /// Prints rows under a header, columns padded to the widest cell; the last column
    /// is not padded so long descriptions do not leave trailing spaces.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut stdout = io::stdout().lock();
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(rows) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(stdout, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Whether progress may be drawn: on a terminal, and neither `--quiet` nor `--json`.
pub fn progress_allowed(out: &Output) -> bool {
    !out.quiet && !out.json && io::stderr().is_terminal()
}

/// A byte progress bar on stderr (`None` when progress is not drawn; see
/// [`progress_allowed`]), with `what` before the bar.
pub fn bytes_bar(out: &Output, what: &str) -> Option<indicatif::ProgressBar> {
    if !progress_allowed(out) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    let template = format!(
        "{{spinner}} {what} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
    );
    let style = indicatif::ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}

/// A spinner with a message and the time elapsed, for work whose total is unknown.
pub fn spinner(out: &Output, message: String) -> Option<indicatif::ProgressBar> {
    if !progress_allowed(out) {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// A writer whose failures are swallowed: for stderr, where a write error (a closed
/// pipe) has no one to be reported to.
pub struct QuietWriter<W>(pub W);

impl<W: Write> Write for QuietWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// A PROVIDERS count for people: "unknown" when none is known and none was asked for.
pub fn providers(count: Option<usize>) -> String {
    count.map_or_else(|| "unknown".to_string(), |n| n.to_string())
}

/// Shortens text to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A byte count for people: 1.5 KiB, 3.2 MiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_format_for_people() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
