//! Typed access to the keys of a manifest's TOML tables, with errors that name the
//! file and the `table.key` at fault; also the size-limited file read and the syntax
//! error position. What the values must be is decided in [`crate::package::fields`].

use std::path::Path;

use super::{ManifestError, MAX_MANIFEST_SIZE};
use crate::package::fields;

pub(super) fn read_limited(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(io(std::io::Error::other(format!(
            "manifest is over the {MAX_MANIFEST_SIZE}-byte limit"
        ))));
    }
    String::from_utf8(bytes).map_err(|_| ManifestError::Syntax {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// "line L, column C: message", counted from the error's span.
pub(super) fn describe_syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    format!("line {line}, column {column}: {message}")
}

pub(super) struct Context<'a> {
    pub(super) path: &'a Path,
}

impl Context<'_> {
    pub(super) fn invalid(&self, field: &str, rule: String) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            rule,
        }
    }
}

/// Typed access to the keys of one table, with errors naming `prefix.key`.
pub(super) struct Fields<'a> {
    pub(super) ctx: &'a Context<'a>,
    pub(super) prefix: &'a str,
    pub(super) table: &'a toml::Table,
}

impl<'a> Fields<'a> {
    pub(super) fn invalid(&self, key: &str, rule: String) -> ManifestError {
        self.ctx.invalid(&format!("{}.{key}", self.prefix), rule)
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, ManifestError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    pub(super) fn required_string(&self, key: &str) -> Result<&'a str, ManifestError> {
        self.string(key)?.ok_or_else(|| {
            self.invalid(
                key,
                format!("required; add `{key} = \"...\"` to [{}]", self.prefix),
            )
        })
    }

    /// An optional short field; empty text counts as absent.
    pub(super) fn short_string(&self, key: &str) -> Result<Option<String>, ManifestError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let text = text.trim();
        self.check_text(key, text, fields::MAX_FIELD_LEN)?;
        Ok((!text.is_empty()).then(|| text.to_string()))
    }

    /// A text field within `max` bytes and free of control characters.
    pub(super) fn check_text(
        &self,
        key: &str,
        text: &str,
        max: usize,
    ) -> Result<(), ManifestError> {
        fields::check_text(text, max).map_err(|rule| self.invalid(key, rule))
    }

    /// An array of non-empty short strings (a single string is accepted as one item).
    pub(super) fn list(&self, key: &str) -> Result<Vec<String>, ManifestError> {
        let items: Vec<&toml::Value> = match self.table.get(key) {
            None => return Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items.iter().collect(),
            Some(value @ toml::Value::String(_)) => vec![value],
            Some(other) => {
                return Err(self.invalid(
                    key,
                    format!("expected an array of strings, found {}", other.type_str()),
                ))
            }
        };
        fields::check_list_len(items.len()).map_err(|rule| self.invalid(key, rule))?;
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let toml::Value::String(text) = item else {
                return Err(self.invalid(
                    &item_key,
                    format!("expected a string, found {}", item.type_str()),
                ));
            };
            let text = text.trim();
            if text.is_empty() {
                return Err(self.invalid(&item_key, "must not be empty".into()));
            }
            self.check_text(&item_key, text, fields::MAX_FIELD_LEN)?;
            out.push(text.to_string());
        }
        Ok(out)
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }
}
