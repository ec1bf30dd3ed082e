//! Compatibility with ggen's older `gpack.toml`: how its `[gpack]` table's `id`/`name`
//! become a package name, how its dependency ids map to names, and its key aliases
//! (`tags`, `author`). Everything else reads as `package.toml` does.

use super::table::Fields;
use super::ManifestError;
use crate::package::fields::validate_name;

/// A gpack's package name: its `name` when that is already valid, else the last
/// segment of its `id` ("io.ggen.rust.cli-subcommand" → "cli-subcommand"), else its
/// `name` turned into a slug ("Rust CLI" → "rust-cli").
pub(super) fn name(fields: &Fields<'_>) -> Result<String, ManifestError> {
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

/// `keywords` (or ggen's `tags`) and `authors` (or ggen's `author`).
pub(super) fn keywords_and_authors(
    fields: &Fields<'_>,
) -> Result<(Vec<String>, Vec<String>), ManifestError> {
    Ok((
        list_or_alias(fields, "keywords", "tags")?,
        list_or_alias(fields, "authors", "author")?,
    ))
}

fn list_or_alias(
    fields: &Fields<'_>,
    key: &str,
    alias: &str,
) -> Result<Vec<String>, ManifestError> {
    if fields.has(key) {
        fields.list(key)
    } else {
        fields.list(alias)
    }
}

/// The package name a gpack dependency id stands for: the id itself when it is already
/// a name, else its last segment as a slug, the way the pack's own id maps.
pub(super) fn dependency_name(key: &str) -> String {
    if validate_name(key).is_ok() {
        key.to_string()
    } else {
        slug(key.rsplit('.').next().unwrap_or(key))
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use semver::{Version, VersionReq};

    use super::super::Manifest;

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
}
