//! The components folder as the registry sees it: which files are components and by what
//! name, and which are refused for their name alone. Watching it is the watcher's job.
//!
//! A component's name is its file name without `.wasm`, and becomes part of routes, metric
//! labels, log lines and storage keys: so it may hold only ASCII letters, digits, `-`, `_`
//! and `.`. A `.wasm` file with any other name (braces, slashes, spaces, control characters,
//! bytes that are not UTF-8) is refused with an error naming it, escaped so that it cannot
//! forge a log line. Names starting with `.` are hidden files (such as a copy in progress).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// What one file in the components folder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A component, by name.
    Component(String),
    /// A `.wasm` file refused for its name: the name shown escaped, and why.
    Refused { name: String, why: String },
    /// Not a component file: ignored.
    Other,
}

/// What `path` is to the registry.
pub(crate) fn entry(path: &Path) -> Entry {
    let Some(file) = path.file_name() else { return Entry::Other };
    let lossy = file.to_string_lossy();
    let Some(stem) = lossy.strip_suffix(".wasm") else { return Entry::Other };
    if stem.is_empty() || stem.starts_with('.') {
        return Entry::Other;
    }
    let name = stem.escape_debug().to_string();
    if file.to_str().is_none() {
        let why = format!("the file name \"{name}.wasm\" is not valid UTF-8");
        return Entry::Refused { name, why };
    }
    if let Some(bad) = stem.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        let why = format!(
            "the file name \"{name}.wasm\" cannot name a component: it holds {:?}, and a component name \
             may hold only ASCII letters, digits, '-', '_' and '.'",
            bad
        );
        return Entry::Refused { name, why };
    }
    Entry::Component(stem.to_string())
}

/// The name a file is known by, refused or not; `None` if it is no component file.
pub(crate) fn known_name(path: &Path) -> Option<String> {
    match entry(path) {
        Entry::Component(name) | Entry::Refused { name, .. } => Some(name),
        Entry::Other => None,
    }
}

/// The component files (refused ones included) directly in `dir`, in name order.
pub(crate) fn component_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the components folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && known_name(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn plain_names_are_components_and_other_files_are_ignored() {
        assert_eq!(entry(Path::new("/c/user-service.wasm")), Entry::Component("user-service".into()));
        assert_eq!(entry(Path::new("/c/v1.2_beta.wasm")), Entry::Component("v1.2_beta".into()));
        assert_eq!(entry(Path::new("/c/.hello.wasm")), Entry::Other, "hidden");
        assert_eq!(entry(Path::new("/c/hello.wasm.part")), Entry::Other);
        assert_eq!(entry(Path::new("/c/.wasm")), Entry::Other);
    }

    #[test]
    fn a_name_that_cannot_be_a_component_is_refused_and_shown_escaped() {
        let Entry::Refused { name, why } = entry(Path::new("/c/x{y}.wasm")) else { panic!("refused") };
        assert_eq!(name, "x{y}");
        assert!(why.contains("'{'") && why.contains("x{y}.wasm"), "{why}");
        let Entry::Refused { name, .. } = entry(Path::new("/c/evil\nINFO forged.wasm")) else { panic!("refused") };
        assert_eq!(name, "evil\\nINFO forged", "the newline is escaped");
        let raw = OsStr::from_bytes(b"caf\xe9.wasm");
        let Entry::Refused { why, .. } = entry(&Path::new("/c").join(raw)) else { panic!("refused") };
        assert!(why.contains("not valid UTF-8"), "{why}");
    }
}
