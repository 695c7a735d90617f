//! The components folder as the registry sees it: which files are components, and by what
//! name. Watching it for changes is the watcher's job.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A component's name: its file name without `.wasm`.
pub(crate) fn component_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_suffix(".wasm")?;
    (!name.is_empty() && !name.starts_with('.')).then(|| name.to_string())
}

/// The component files directly in `dir`, in name order.
pub(super) fn component_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the components folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && component_name(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}
