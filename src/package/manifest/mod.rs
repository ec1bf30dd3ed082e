//! The package manifest: `package.toml` (ours) or ggen's older `gpack.toml`, read into
//! one [`Manifest`] and validated so that errors name the file, the field and the rule.
//!
//! This file owns the [`Manifest`] type, finding the file and reading `package.toml`;
//! `gpack.rs` holds what differs for `gpack.toml`, `table.rs` the typed TOML access, and
//! the field rules themselves live in [`crate::package::fields`] (shared with records).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::package::fields::{self, MAX_DESCRIPTION_LEN};
use table::{describe_syntax_error, read_limited, Context, Fields};

mod gpack;
mod table;

/// A package's metadata as its author wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    pub description: String,
    pub category: Option<String>,
    pub keywords: Vec<String>,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub dependencies: BTreeMap<String, VersionReq>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{dir}: no package.toml or gpack.toml; create package.toml with a [package] table (name, version, description)")]
    NotFound { dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path}: field `{field}`: {rule}")]
    Invalid {
        path: PathBuf,
        field: String,
        rule: String,
    },
}

/// The manifest file this crate defines.
pub const MANIFEST_FILE: &str = "package.toml";
/// ggen's older manifest file, read when `package.toml` is absent.
pub const GPACK_FILE: &str = "gpack.toml";
/// Largest manifest file read, checked before parsing.
pub const MAX_MANIFEST_SIZE: u64 = 256 * 1024;

/// The two manifest dialects a pack directory may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// `package.toml` with a `[package]` table.
    Package,
    /// ggen's `gpack.toml` with a `[gpack]` table.
    Gpack,
}

impl ManifestFormat {
    fn table(self) -> &'static str {
        match self {
            ManifestFormat::Package => "package",
            ManifestFormat::Gpack => "gpack",
        }
    }
}

impl Manifest {
    /// Reads `package.toml` (or, failing that, `gpack.toml`) from a pack directory.
    pub fn from_dir(dir: &Path) -> Result<Self, ManifestError> {
        let (path, format) = Self::locate(dir)?;
        let text = read_limited(&path)?;
        Self::parse_as(&text, &path, format)
    }

    /// The manifest file of a pack directory and its dialect: `package.toml` when it
    /// exists, else `gpack.toml`.
    pub fn locate(dir: &Path) -> Result<(PathBuf, ManifestFormat), ManifestError> {
        let io = |source| ManifestError::Io {
            path: dir.to_path_buf(),
            source,
        };
        if !std::fs::metadata(dir).map_err(io)?.is_dir() {
            return Err(io(std::io::Error::other(
                "not a directory; pass the pack's directory",
            )));
        }
        for (file, format) in [
            (MANIFEST_FILE, ManifestFormat::Package),
            (GPACK_FILE, ManifestFormat::Gpack),
        ] {
            let path = dir.join(file);
            if path.is_file() {
                return Ok((path, format));
            }
        }
        Err(ManifestError::NotFound {
            dir: dir.to_path_buf(),
        })
    }

    /// Parses manifest text; the dialect follows the file name (`gpack.toml` is ggen's,
    /// anything else is `package.toml`). `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let format = if path.file_name().is_some_and(|name| name == GPACK_FILE) {
            ManifestFormat::Gpack
        } else {
            ManifestFormat::Package
        };
        Self::parse_as(text, path, format)
    }

    /// Parses manifest text in the given dialect. In `package.toml` an unknown key or
    /// table is an error naming the closest valid key (a typo must not publish
    /// silently); ggen's `gpack.toml` keeps its extra tables, which are ignored.
    pub fn parse_as(
        text: &str,
        path: &Path,
        format: ManifestFormat,
    ) -> Result<Self, ManifestError> {
        let root: toml::Table = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            path: path.to_path_buf(),
            reason: describe_syntax_error(text, &e),
        })?;
        let ctx = Context { path };
        let table_name = format.table();
        let table = match root.get(table_name) {
            Some(toml::Value::Table(table)) => table,
            Some(other) => {
                return Err(ctx.invalid(
                    table_name,
                    format!("expected a table, found {}", other.type_str()),
                ))
            }
            None => {
                return Err(ctx.invalid(
                    table_name,
                    format!(
                        "missing; add a [{table_name}] table with name, version and description"
                    ),
                ))
            }
        };
        let keys = Fields {
            ctx: &ctx,
            prefix: table_name,
            table,
        };
        if format == ManifestFormat::Package {
            check_known_keys(&ctx, "", &root, &["package", "dependencies"])?;
            check_known_keys(&ctx, "package.", table, PACKAGE_KEYS)?;
        }
        let name = match format {
            ManifestFormat::Package => {
                let name = keys.required_string("name")?;
                fields::validate_name(name).map_err(|rule| ctx.invalid("package.name", rule))?;
                name.to_string()
            }
            ManifestFormat::Gpack => gpack::name(&keys)?,
        };
        let version_text = keys.required_string("version")?;
        let version =
            fields::parse_version(version_text).map_err(|rule| keys.invalid("version", rule))?;
        let description = keys.required_string("description")?.trim().to_string();
        if description.is_empty() {
            return Err(keys.invalid("description", "must not be empty".into()));
        }
        keys.check_text("description", &description, MAX_DESCRIPTION_LEN)?;
        let category = keys.short_string("category")?;
        let license = keys.short_string("license")?;
        let repository = keys.short_string("repository")?;
        let (keywords, authors) = match format {
            ManifestFormat::Package => (keys.list("keywords")?, keys.list("authors")?),
            ManifestFormat::Gpack => gpack::keywords_and_authors(&keys)?,
        };
        let dependencies = dependencies(&ctx, &root, format, &name)?;
        Ok(Manifest {
            name,
            version,
            description,
            category,
            keywords,
            authors,
            license,
            repository,
            dependencies,
        })
    }
}

/// The keys `[package]` may hold.
const PACKAGE_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "category",
    "keywords",
    "authors",
    "license",
    "repository",
];

/// Refuses a key of `table` that is not in `known`, suggesting the closest one.
fn check_known_keys(
    ctx: &Context<'_>,
    prefix: &str,
    table: &toml::Table,
    known: &[&str],
) -> Result<(), ManifestError> {
    for key in table.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let closest = known
            .iter()
            .map(|k| (edit_distance(key, k), *k))
            .min()
            .filter(|(distance, k)| *distance <= (k.len() / 3).max(2));
        let hint = match closest {
            Some((_, k)) => format!("unknown key; did you mean `{prefix}{k}`?"),
            None => format!("unknown key; valid keys here: {}", known.join(", ")),
        };
        return Err(ctx.invalid(&format!("{prefix}{key}"), hint));
    }
    Ok(())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `[dependencies]`: name = "req" or name = { version = "req" }.
fn dependencies(
    ctx: &Context<'_>,
    root: &toml::Table,
    format: ManifestFormat,
    own_name: &str,
) -> Result<BTreeMap<String, VersionReq>, ManifestError> {
    let table = match root.get("dependencies") {
        None => return Ok(BTreeMap::new()),
        Some(toml::Value::Table(table)) => table,
        Some(other) => {
            return Err(ctx.invalid(
                "dependencies",
                format!("expected a table, found {}", other.type_str()),
            ))
        }
    };
    fields::check_list_len(table.len()).map_err(|rule| ctx.invalid("dependencies", rule))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let field = format!("dependencies.{key}");
        let name = match format {
            ManifestFormat::Package => key.clone(),
            // gpack dependencies are ids; they map to names the way the pack's own id does.
            ManifestFormat::Gpack => gpack::dependency_name(key),
        };
        fields::check_dependency_name(&name, own_name).map_err(|rule| ctx.invalid(&field, rule))?;
        let req_text = match value {
            toml::Value::String(text) => text.as_str(),
            toml::Value::Table(spec) => match spec.get("version") {
                Some(toml::Value::String(text)) => text.as_str(),
                _ => {
                    return Err(ctx.invalid(
                        &field,
                        "expected a version requirement string or { version = \"...\" }".into(),
                    ))
                }
            },
            other => {
                return Err(ctx.invalid(
                    &field,
                    format!(
                        "expected a version requirement string, found {}",
                        other.type_str()
                    ),
                ))
            }
        };
        let req = fields::parse_requirement(req_text).map_err(|rule| ctx.invalid(&field, rule))?;
        if out
            .keys()
            .any(|seen: &String| fields::normalize_name(seen) == fields::normalize_name(&name))
        {
            return Err(ctx.invalid(&field, format!("{name:?} is listed twice")));
        }
        out.insert(name, req);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::fields::{MAX_DESCRIPTION_LEN, MAX_FIELD_LEN, MAX_LIST_LEN};

    const GOOD: &str = r#"
[package]
name = "rust-axum-service"
version = "1.2.0"
description = "Axum service skeleton with tracing and health checks"
category = "web"
keywords = ["rust", "axum", "web"]
authors = ["Jane Doe <jane@example.com>"]
license = "MIT"
repository = "https://example.com/jane/rust-axum-service"

[dependencies]
rust-tracing-setup = "^0.3"
other_pack = { version = ">=1, <3" }
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("pack/package.toml"))
    }

    /// Parses `text` expecting an `Invalid` error on `field`; returns the full message.
    fn invalid(text: &str, field: &str) -> String {
        match parse(text) {
            Err(error @ ManifestError::Invalid { .. }) => {
                let ManifestError::Invalid { field: got, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(got, field, "{error}");
                let message = error.to_string();
                assert!(
                    message.starts_with("pack/package.toml: field `"),
                    "{message}"
                );
                message
            }
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }

    /// GOOD with one `[package]` key replaced (or added) by `key_line`.
    fn with(key_line: &str) -> String {
        let key = key_line.split('=').next().unwrap_or_default().trim();
        let kept: Vec<&str> = GOOD
            .lines()
            .filter(|line| !line.starts_with(&format!("{key} =")))
            .collect();
        kept.join("\n")
            .replacen("[package]", &format!("[package]\n{key_line}"), 1)
    }

    #[test]
    fn unknown_keys_are_refused_with_the_closest_valid_key() {
        let err = invalid(&with("catgory = \"web\""), "package.catgory");
        assert!(err.contains("did you mean `package.category`?"), "{err}");
        let err = invalid(
            &format!("{}\n[dependecies]\nx = \"^1\"\n", with("")),
            "dependecies",
        );
        assert!(err.contains("did you mean `dependencies`?"), "{err}");
        let err = invalid(&with("zzzzzzzzzz = 1"), "package.zzzzzzzzzz");
        assert!(err.contains("valid keys here: name, version"), "{err}");
        assert_eq!(edit_distance("catgory", "category"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn reads_a_full_package_toml() {
        let manifest = parse(GOOD).unwrap();
        assert_eq!(manifest.name, "rust-axum-service");
        assert_eq!(manifest.version, Version::new(1, 2, 0));
        assert_eq!(manifest.category.as_deref(), Some("web"));
        assert_eq!(manifest.keywords, ["rust", "axum", "web"]);
        assert_eq!(manifest.authors.len(), 1);
        assert_eq!(
            manifest.dependencies["rust-tracing-setup"],
            VersionReq::parse("^0.3").unwrap()
        );
        assert_eq!(
            manifest.dependencies["other_pack"],
            VersionReq::parse(">=1, <3").unwrap()
        );
    }

    #[test]
    fn bad_name_is_refused() {
        let message = invalid(&with("name = \"Bad Name\""), "package.name");
        assert!(message.contains("lowercase letters"), "{message}");
        invalid(
            &with(&format!("name = \"{}\"", "a".repeat(65))),
            "package.name",
        );
    }

    #[test]
    fn bad_version_is_refused() {
        let message = invalid(&with("version = \"1.2\""), "package.version");
        assert!(message.contains("not a semver version"), "{message}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["name", "version", "description"] {
            let text: String = GOOD
                .lines()
                .filter(|line| !line.starts_with(&format!("{field} =")))
                .collect::<Vec<_>>()
                .join("\n");
            let message = invalid(&text, &format!("package.{field}"));
            assert!(message.contains("required"), "{message}");
        }
        invalid("[other]\nx = 1\n", "package");
        invalid(&with("description = \"   \""), "package.description");
    }

    #[test]
    fn bad_dependency_requirement_is_refused() {
        let text = GOOD.replace("\"^0.3\"", "\"not a req\"");
        let message = invalid(&text, "dependencies.rust-tracing-setup");
        assert!(message.contains("not a semver requirement"), "{message}");
        invalid(
            &GOOD.replace("rust-tracing-setup = \"^0.3\"", "Bad = \"1\""),
            "dependencies.Bad",
        );
        invalid(
            &GOOD.replace("rust-tracing-setup = \"^0.3\"", "rust-tracing-setup = 3"),
            "dependencies.rust-tracing-setup",
        );
        invalid(
            &GOOD.replace("rust-tracing-setup", "rust_axum_service"),
            "dependencies.rust_axum_service",
        );
        invalid(
            &GOOD.replace("other_pack", "rust_tracing_setup"),
            "dependencies.rust_tracing_setup",
        );
    }

    #[test]
    fn oversize_text_is_refused() {
        let long = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        let message = invalid(
            &with(&format!("description = \"{long}\"")),
            "package.description",
        );
        assert!(message.contains("1024-byte limit"), "{message}");
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        invalid(&with(&format!("license = \"{long}\"")), "package.license");
        invalid(
            &with(&format!("keywords = [\"{long}\"]")),
            "package.keywords[0]",
        );
    }

    #[test]
    fn too_many_keywords_are_refused() {
        let many: Vec<String> = (0..=MAX_LIST_LEN).map(|i| format!("\"k{i}\"")).collect();
        let message = invalid(
            &with(&format!("keywords = [{}]", many.join(", "))),
            "package.keywords",
        );
        assert!(message.contains("over the limit of 32"), "{message}");
    }

    #[test]
    fn wrong_types_are_named() {
        let message = invalid(&with("keywords = 3"), "package.keywords");
        assert!(message.contains("found integer"), "{message}");
        invalid(&with("keywords = [\"ok\", 3]"), "package.keywords[1]");
        invalid(&with("version = 1.0"), "package.version");
        invalid(&with("license = [\"MIT\"]"), "package.license");
        invalid("package = \"x\"\n", "package");
        let head = GOOD.split("[dependencies]").next().unwrap_or_default();
        invalid(&format!("dependencies = 1\n{head}"), "dependencies");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let text = "[package]\nname = \"a\"\nversion = \n";
        match parse(text) {
            Err(error @ ManifestError::Syntax { .. }) => {
                let message = error.to_string();
                assert!(message.contains("line 3"), "{message}");
                assert!(!message.contains('\n'), "one line: {message}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn from_dir_prefers_package_toml_and_reports_absence() {
        let dir = tempfile::tempdir().unwrap();
        let error = Manifest::from_dir(dir.path()).unwrap_err();
        assert!(matches!(error, ManifestError::NotFound { .. }), "{error}");
        std::fs::write(
            dir.path().join(GPACK_FILE),
            "[gpack]\nid = \"io.x.old\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
        )
        .unwrap();
        assert_eq!(Manifest::from_dir(dir.path()).unwrap().name, "old");
        std::fs::write(dir.path().join(MANIFEST_FILE), GOOD).unwrap();
        assert_eq!(
            Manifest::from_dir(dir.path()).unwrap().name,
            "rust-axum-service"
        );
        std::fs::write(dir.path().join(MANIFEST_FILE), "x".repeat(300 * 1024)).unwrap();
        let error = Manifest::from_dir(dir.path()).unwrap_err();
        assert!(error.to_string().contains("byte limit"), "{error}");
    }
}
