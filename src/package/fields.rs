//! The rules every package field obeys, written once: names (and the one way they are
//! compared), versions, text lengths, lists and dependency requirements. The manifest
//! reader and record verification both call these, so a peer cannot publish what
//! `publish` would have refused. Reading TOML and building error types is not done here.

use semver::{Version, VersionReq};

/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest short text field (category, keyword, author, license, repository), in bytes.
pub const MAX_FIELD_LEN: usize = 256;
/// Most keywords, authors or dependencies a manifest may list.
pub const MAX_LIST_LEN: usize = 32;
/// Longest package name.
pub const MAX_NAME_LEN: usize = 64;

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
        if is_reserved_device_name(name) {
            return Err(format!(
                "{name:?} is a reserved device name on Windows (con, nul, aux, prn, com1-com9, lpt1-lpt9); choose another name"
            ));
        }
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a package name: use 1-{MAX_NAME_LEN} lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// True for names Windows reserves for devices (`con`, `nul`, `aux`, `prn`, `com1`-`com9`,
/// `lpt1`-`lpt9`), in any case, with or without an extension (`nul.txt` is the device
/// too), and with trailing dots or spaces (Windows strips them).
pub fn is_reserved_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    let stem = stem.trim_end_matches([' ', '.']).to_ascii_lowercase();
    match stem.as_str() {
        "con" | "nul" | "aux" | "prn" => true,
        _ => {
            let (prefix, digit) = stem.split_at(stem.len().min(3));
            matches!(prefix, "com" | "lpt")
                && digit.len() == 1
                && matches!(digit.as_bytes()[0], b'1'..=b'9')
        }
    }
}

/// The form under which names are compared: '-' and '_' are the same character.
pub fn normalize_name(name: &str) -> String {
    name.replace('_', "-")
}

/// A version as written in a manifest: semver without build metadata (see
/// [`check_version`]).
pub fn parse_version(text: &str) -> Result<Version, String> {
    let version = Version::parse(text)
        .map_err(|e| format!("{text:?} is not a semver version ({e}); write e.g. \"1.2.0\""))?;
    check_version(&version)?;
    Ok(version)
}

/// A version is `major.minor.patch[-pre]`. Build metadata is refused: semver ignores it
/// when comparing, so `1.0.7+a` and `1.0.7+b` would be two archives for one version and
/// a published version would no longer be immutable.
pub fn check_version(version: &Version) -> Result<(), String> {
    if !version.build.is_empty() {
        return Err(format!(
            "\"{version}\" carries build metadata (+{}), which is not allowed: a version is major.minor.patch[-pre]; write e.g. \"{}.{}.{}\"",
            version.build, version.major, version.minor, version.patch
        ));
    }
    Ok(())
}

/// How far ahead of this node's clock a record's own timestamp may be (10 minutes):
/// more is refused at ingest, so nobody can date a claim into the future.
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// Refuses a record timestamp (`at`, ms) more than [`MAX_CLOCK_SKEW_MS`] after `now`.
pub fn check_not_future(at: u64, now: u64) -> Result<(), String> {
    if at > now.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(format!(
            "the record is dated {} s in the future (more than the {} s allowed for clock skew); check the publisher's clock",
            (at - now) / 1000,
            MAX_CLOCK_SKEW_MS / 1000
        ));
    }
    Ok(())
}

/// A dependency requirement as written in a manifest or carried in a record.
pub fn parse_requirement(text: &str) -> Result<VersionReq, String> {
    VersionReq::parse(text)
        .map_err(|e| format!("{text:?} is not a semver requirement ({e}); write e.g. \"^1.2\""))
}

/// A text field at most `max` bytes long (the description takes
/// [`MAX_DESCRIPTION_LEN`], the short fields [`MAX_FIELD_LEN`]).
pub fn check_len(text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!(
            "is {} bytes, over the {max}-byte limit",
            text.len()
        ));
    }
    Ok(())
}

/// A text field a person wrote: within `max` bytes and free of control characters
/// other than newline and tab.
pub fn check_text(text: &str, max: usize) -> Result<(), String> {
    check_len(text, max)?;
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A list (keywords, authors, dependencies) of at most [`MAX_LIST_LEN`] entries.
pub fn check_list_len(len: usize) -> Result<(), String> {
    if len > MAX_LIST_LEN {
        return Err(format!(
            "has {len} entries, over the limit of {MAX_LIST_LEN}"
        ));
    }
    Ok(())
}

/// A dependency's name: a valid package name other than the depending package's own.
pub fn check_dependency_name(name: &str, own_name: &str) -> Result<(), String> {
    validate_name(name)?;
    if normalize_name(name) == normalize_name(own_name) {
        return Err("a package cannot depend on itself".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("rust-axum_2").is_ok());
        for bad in [
            "",
            "-x",
            "_x",
            "Upper",
            "a b",
            "é",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let rule = validate_name(bad).unwrap_err();
            assert!(rule.contains("lowercase letters"), "{bad:?}: {rule}");
        }
        assert_eq!(normalize_name("a_b-c"), "a-b-c");
        for reserved in ["con", "nul", "aux", "prn", "com1", "com9", "lpt1", "lpt9"] {
            let rule = validate_name(reserved).unwrap_err();
            assert!(rule.contains("reserved device name"), "{reserved}: {rule}");
        }
        for device in ["CON", "Nul.txt", "aux.tar.gz", "COM3", "lpt2.md", "prn "] {
            assert!(is_reserved_device_name(device), "{device}");
        }
        for fine in [
            "console",
            "com",
            "com0",
            "com10",
            "lpt",
            "nul-x",
            "auxiliary",
            "a.con",
        ] {
            assert!(!is_reserved_device_name(fine), "{fine}");
        }
        assert!(validate_name("console").is_ok());
        assert_eq!(
            check_dependency_name("my_pack", "my-pack").unwrap_err(),
            "a package cannot depend on itself"
        );
    }

    #[test]
    fn texts_lists_versions_and_requirements() {
        assert!(check_text(&"x".repeat(MAX_FIELD_LEN), MAX_FIELD_LEN).is_ok());
        assert_eq!(
            check_text(&"x".repeat(MAX_FIELD_LEN + 1), MAX_FIELD_LEN).unwrap_err(),
            "is 257 bytes, over the 256-byte limit"
        );
        assert!(check_text("two\nlines\tok", MAX_FIELD_LEN).is_ok());
        assert!(check_text("bell\u{7}", MAX_FIELD_LEN)
            .unwrap_err()
            .contains("control characters"));
        assert!(check_list_len(MAX_LIST_LEN).is_ok());
        assert!(check_list_len(MAX_LIST_LEN + 1)
            .unwrap_err()
            .contains("over the limit of 32"));
        assert_eq!(parse_version("1.2.0").unwrap(), Version::new(1, 2, 0));
        assert!(parse_version("1.2")
            .unwrap_err()
            .contains("not a semver version"));
        assert_eq!(parse_version("1.0.7-rc.1").unwrap().pre.as_str(), "rc.1");
        let rule = parse_version("1.0.7+build").unwrap_err();
        assert!(rule.contains("build metadata"), "{rule}");
        assert!(rule.contains("major.minor.patch[-pre]"), "{rule}");
        assert!(parse_requirement(">=1, <3").is_ok());
        assert!(parse_requirement("nope")
            .unwrap_err()
            .contains("not a semver requirement"));
    }
}

/// Properties of the one way names are compared.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn normalisation_is_idempotent_and_keeps_names_valid(name in "[a-z0-9][a-z0-9_-]{0,63}") {
            let once = normalize_name(&name);
            prop_assert_eq!(normalize_name(&once), once.clone());
            prop_assert_eq!(validate_name(&name).is_ok(), validate_name(&once).is_ok());
            prop_assert_eq!(once.len(), name.len());
        }

        #[test]
        fn two_names_compare_equal_exactly_when_they_differ_only_in_dash_or_underscore(
            a in "[a-z0-9][a-z0-9_-]{0,12}",
            b in "[a-z0-9][a-z0-9_-]{0,12}",
        ) {
            let same_but_separators = a.len() == b.len()
                && a.bytes().zip(b.bytes()).all(|(x, y)| {
                    x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_'))
                });
            prop_assert_eq!(normalize_name(&a) == normalize_name(&b), same_but_separators);
        }

        #[test]
        fn build_metadata_is_always_refused(
            (ma, mi, pa) in (0u64..100, 0u64..100, 0u64..100),
            build in "[a-z0-9]{1,8}",
        ) {
            let with_build = format!("{ma}.{mi}.{pa}+{build}");
            let plain = format!("{ma}.{mi}.{pa}");
            prop_assert!(parse_version(&with_build).is_err());
            prop_assert!(parse_version(&plain).is_ok());
        }
    }
}
