//! The rules for archive entry paths, shared by packing and unpacking: relative,
//! '/'-separated, no `.`/`..`, within length and depth caps, and no two names that a
//! case-insensitive file system would merge. Reading and writing archives is elsewhere.

use std::collections::HashMap;

/// Longest entry path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest single path component accepted, in bytes (what common file systems allow).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// Why `path` may not name an archive entry: it must be relative, '/'-separated, made
/// of normal components (no `.`, `..` or empty ones), free of `\`, `:` and control
/// characters (separators or devices on Windows), no reserved device name (`con`,
/// `nul.txt`, `COM1`, ...) as a component, and within the length and depth caps.
pub(crate) fn check_entry_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path is over {MAX_PATH_LEN} bytes"));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut depth = 0;
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component ('//')".into()),
            "." | ".." => return Err(format!("path component {component:?}")),
            _ => {}
        }
        if component.len() > MAX_COMPONENT_LEN {
            return Err(format!(
                "a path component is over {MAX_COMPONENT_LEN} bytes"
            ));
        }
        if let Some(c) = component
            .chars()
            .find(|c| matches!(c, '\\' | ':') || c.is_control())
        {
            return Err(format!("path holds {c:?}, unsafe on some systems"));
        }
        if crate::package::fields::is_reserved_device_name(component) {
            return Err(format!(
                "path component {component:?} is a reserved device name on Windows; rename it"
            ));
        }
        depth += 1;
    }
    if depth > MAX_DEPTH {
        return Err(format!("path is nested over {MAX_DEPTH} levels deep"));
    }
    Ok(())
}

/// Names seen so far, compared the way case-insensitive file systems (macOS, Windows)
/// compare them, so two entries can never land on the same file there. Parents of every
/// path count as directories, so a file cannot also be used as a directory. Folding is
/// Unicode lowercase only: NFC/NFD variants of one name (which macOS treats as equal)
/// are not detected, since that needs normalization tables this crate does not carry.
#[derive(Default)]
pub(crate) struct Namespace {
    /// Folded path → (path as written, is a directory).
    seen: HashMap<String, (String, bool)>,
}

impl Namespace {
    /// Records `path` (already passed [`check_entry_path`]).
    pub(crate) fn insert(&mut self, path: &str, is_dir: bool) -> Result<(), String> {
        let mut end = 0;
        for component in path.split('/') {
            end += component.len();
            let prefix = &path[..end];
            let last = end == path.len();
            self.insert_one(prefix, if last { is_dir } else { true }, last)?;
            end += 1;
        }
        Ok(())
    }

    fn insert_one(&mut self, path: &str, is_dir: bool, explicit: bool) -> Result<(), String> {
        let folded = path.to_lowercase();
        match self.seen.get(&folded) {
            None => {
                self.seen.insert(folded, (path.to_string(), is_dir));
                Ok(())
            }
            Some((earlier, _)) if earlier != path => Err(format!(
                "collides with {earlier:?} on case-insensitive file systems; rename one"
            )),
            Some((_, earlier_dir)) if *earlier_dir != is_dir => {
                Err("is both a file and a directory".into())
            }
            // A directory named again (explicitly or as a parent) is fine.
            Some(_) if is_dir && !explicit => Ok(()),
            Some((_, true)) => Ok(()),
            Some(_) => Err("appears twice".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_checked() {
        assert!(check_entry_path("a/b.txt").is_ok());
        for bad in [
            "",
            "/etc",
            "a/../b",
            "..",
            "./a",
            "a//b",
            "a\\b",
            "c:x",
            "a\u{7}",
            "nul",
            "src/CON.rs",
            "Aux/x",
            "lpt1.txt",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad:?}");
        }
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(check_entry_path(&deep).is_err());
    }

    #[test]
    fn namespace_catches_collisions() {
        let mut names = Namespace::default();
        names.insert("a/b", false).unwrap();
        names.insert("a", true).unwrap();
        assert!(names.insert("A/c", false).is_err());
        assert!(names.insert("a/b", false).is_err());
        assert!(names.insert("a/b/c", false).is_err());
        assert!(names.insert("a", false).is_err());
        names.insert("x/y", true).unwrap();
        names.insert("x/y", true).unwrap();
    }
}
