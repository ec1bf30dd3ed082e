//! The package manifest: `package.toml` (ours) or ggen's older `gpack.toml`, read into
//! one [`Manifest`] and validated so that errors name the file, the field and the rule.
//!
//! Validation rules live here and are reused when a record arrives from the network,
//! so a peer cannot publish what `publish` would have refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest short text field (category, keyword, author, license, repository), in bytes.
pub const MAX_FIELD_LEN: usize = 256;
/// Most keywords, authors or dependencies a manifest may list.
pub const MAX_LIST_LEN: usize = 32;
/// Longest package name.
pub const MAX_NAME_LEN: usize = 64;

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

/// Why a name is not a valid package name, or `Ok` when it is.
pub fn validate_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok_first = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_rest = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if ok_first && ok_rest && bytes.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a package name: use 1-{MAX_NAME_LEN} lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// The form under which names are compared: '-' and '_' are the same character.
pub fn normalize_name(name: &str) -> String {
    name.replace('_', "-")
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

    /// Parses manifest text in the given dialect. Unknown keys and tables are ignored
    /// (as cargo does), so newer manifests and ggen's extra gpack tables still read.
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
        let fields = Fields {
            ctx: &ctx,
            prefix: table_name,
            table,
        };
        let name = match format {
            ManifestFormat::Package => {
                let name = fields.required_string("name")?;
                validate_name(name).map_err(|rule| ctx.invalid("package.name", rule))?;
                name.to_string()
            }
            ManifestFormat::Gpack => gpack_name(&fields)?,
        };
        let version_text = fields.required_string("version")?;
        let version = Version::parse(version_text).map_err(|e| {
            fields.invalid(
                "version",
                format!("{version_text:?} is not a semver version ({e}); write e.g. \"1.2.0\""),
            )
        })?;
        let description = fields.required_string("description")?.trim().to_string();
        if description.is_empty() {
            return Err(fields.invalid("description", "must not be empty".into()));
        }
        fields.check_len("description", &description, MAX_DESCRIPTION_LEN)?;
        let category = fields.short_string("category")?;
        let license = fields.short_string("license")?;
        let repository = fields.short_string("repository")?;
        let (keywords, authors) = match format {
            ManifestFormat::Package => (fields.list("keywords")?, fields.list("authors")?),
            ManifestFormat::Gpack => (
                fields.list_or_alias("keywords", "tags")?,
                fields.list_or_alias("authors", "author")?,
            ),
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

fn read_limited(path: &Path) -> Result<String, ManifestError> {
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
fn describe_syntax_error(text: &str, error: &toml::de::Error) -> String {
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

struct Context<'a> {
    path: &'a Path,
}

impl Context<'_> {
    fn invalid(&self, field: &str, rule: String) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            rule,
        }
    }
}

/// Typed access to the keys of one table, with errors naming `prefix.key`.
struct Fields<'a> {
    ctx: &'a Context<'a>,
    prefix: &'a str,
    table: &'a toml::Table,
}

impl<'a> Fields<'a> {
    fn invalid(&self, key: &str, rule: String) -> ManifestError {
        self.ctx.invalid(&format!("{}.{key}", self.prefix), rule)
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, ManifestError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn required_string(&self, key: &str) -> Result<&'a str, ManifestError> {
        self.string(key)?.ok_or_else(|| {
            self.invalid(
                key,
                format!("required; add `{key} = \"...\"` to [{}]", self.prefix),
            )
        })
    }

    /// An optional short field; empty text counts as absent.
    fn short_string(&self, key: &str) -> Result<Option<String>, ManifestError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let text = text.trim();
        self.check_len(key, text, MAX_FIELD_LEN)?;
        Ok((!text.is_empty()).then(|| text.to_string()))
    }

    fn check_len(&self, key: &str, text: &str, max: usize) -> Result<(), ManifestError> {
        if text.len() > max {
            return Err(self.invalid(
                key,
                format!("is {} bytes, over the {max}-byte limit", text.len()),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(self.invalid(key, "must not contain control characters".into()));
        }
        Ok(())
    }

    /// An array of non-empty short strings (a single string is accepted as one item).
    fn list(&self, key: &str) -> Result<Vec<String>, ManifestError> {
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
        if items.len() > MAX_LIST_LEN {
            return Err(self.invalid(
                key,
                format!(
                    "has {} entries, over the limit of {MAX_LIST_LEN}",
                    items.len()
                ),
            ));
        }
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
            self.check_len(&item_key, text, MAX_FIELD_LEN)?;
            out.push(text.to_string());
        }
        Ok(out)
    }

    fn list_or_alias(&self, key: &str, alias: &str) -> Result<Vec<String>, ManifestError> {
        if self.table.contains_key(key) {
            self.list(key)
        } else {
            self.list(alias)
        }
    }
}

/// A gpack's package name: its `name` when that is already valid, else the last
/// segment of its `id` ("io.ggen.rust.cli-subcommand" → "cli-subcommand"), else its
/// `name` turned into a slug ("Rust CLI" → "rust-cli").
fn gpack_name(fields: &Fields<'_>) -> Result<String, ManifestError> {
    let name = fields.string("name")?;
    let id = fields.string("id")?;
    if let Some(name) = name.filter(|name| validate_name(name).is_ok()) {
        return Ok(name.to_string());
    }
    let derived = match (id, name) {
        (Some(id), _) => slug(id.rsplit('.').next().unwrap_or(id)),
        (None, Some(name)) => slug(name),
        (None, None) => {
            return Err(fields.invalid(
                "name",
                "required; add `name = \"...\"` or `id = \"...\"` to [gpack]".into(),
            ))
        }
    };
    validate_name(&derived).map_err(|rule| {
        let field = if id.is_some() { "id" } else { "name" };
        fields.invalid(
            field,
            format!("no package name can be derived from it: {rule}"),
        )
    })?;
    Ok(derived)
}

/// Lowercase, anything outside `[a-z0-9_-]` becomes '-', runs of '-' collapse, and
/// leading/trailing separators go.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_matches(|c| c == '-' || c == '_').to_string()
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
    if table.len() > MAX_LIST_LEN {
        return Err(ctx.invalid(
            "dependencies",
            format!(
                "has {} entries, over the limit of {MAX_LIST_LEN}",
                table.len()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let field = format!("dependencies.{key}");
        let name = match format {
            ManifestFormat::Package => key.clone(),
            // gpack dependencies are ids; they map to names the way the pack's own id does.
            ManifestFormat::Gpack if validate_name(key).is_ok() => key.clone(),
            ManifestFormat::Gpack => slug(key.rsplit('.').next().unwrap_or(key)),
        };
        validate_name(&name).map_err(|rule| ctx.invalid(&field, rule))?;
        if normalize_name(&name) == normalize_name(own_name) {
            return Err(ctx.invalid(&field, "a package cannot depend on itself".into()));
        }
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
        let req = VersionReq::parse(req_text).map_err(|e| {
            ctx.invalid(
                &field,
                format!("{req_text:?} is not a semver requirement ({e}); write e.g. \"^1.2\""),
            )
        })?;
        if out
            .keys()
            .any(|seen: &String| normalize_name(seen) == normalize_name(&name))
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
    fn reads_a_ggen_gpack_toml() {
        let text = r#"
[gpack]
id = "io.ggen.rust.cli-subcommand"
name = "Rust CLI subcommand"
version = "0.2.1"
description = "Generate clap subcommands"
license = "MIT"
authors = ["ggen team"]
keywords = ["rust", "cli"]
ggen_compat = ">=0.2 <0.4"

[dependencies]
"io.ggen.macros.std" = "^0.2"

[templates]
patterns = ["cli/subcommand/*.tmpl"]

[rdf]
base = "http://example.org/"
"#;
        let manifest = Manifest::parse(text, Path::new("pack/gpack.toml")).unwrap();
        assert_eq!(manifest.name, "cli-subcommand");
        assert_eq!(manifest.version, Version::new(0, 2, 1));
        assert_eq!(manifest.license.as_deref(), Some("MIT"));
        assert_eq!(manifest.keywords, ["rust", "cli"]);
        assert_eq!(
            manifest.dependencies["std"],
            VersionReq::parse("^0.2").unwrap()
        );

        let plain = "[gpack]\nname = \"readme-gen\"\nversion = \"1.0.0\"\ndescription = \"d\"\ntags = [\"docs\"]\nauthor = \"Ann\"\n";
        let manifest = Manifest::parse(plain, Path::new("gpack.toml")).unwrap();
        assert_eq!(manifest.name, "readme-gen");
        assert_eq!(manifest.keywords, ["docs"]);
        assert_eq!(manifest.authors, ["Ann"]);

        let slugged = "[gpack]\nname = \"My Pack!\"\nversion = \"1.0.0\"\ndescription = \"d\"\n";
        let manifest = Manifest::parse(slugged, Path::new("gpack.toml")).unwrap();
        assert_eq!(manifest.name, "my-pack");

        let nameless = "[gpack]\nversion = \"1.0.0\"\ndescription = \"d\"\n";
        let error = Manifest::parse(nameless, Path::new("gpack.toml")).unwrap_err();
        assert!(error.to_string().contains("field `gpack.name`"), "{error}");
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
