//! Reading a component file: the checks that tell a user what is wrong with it (a core
//! module, not WebAssembly at all, not a valid component), compilation, and its digest.
//! Shared by the loader and `trellis inspect`, so both say the same thing about a file.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// What tells one version of a file from the next without reading it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// The stamp of a regular file, or `None` if there is none at `path`.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(Self { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// A compiled component and the SHA-256 of its bytes.
pub(crate) struct Compiled {
    pub component: Component,
    /// Hex SHA-256 of the file: the same bytes always have the same digest.
    pub digest: String,
}

/// Reads, checks and compiles the component at `path`, refusing a file over `max_mib` before
/// reading it and one without the component header after its first bytes. Blocks: compiling
/// takes a while.
pub(crate) fn compile(engine: &wasmtime::Engine, path: &Path, max_mib: u64) -> anyhow::Result<Compiled> {
    let cannot_read = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    let len = file.metadata().with_context(cannot_read)?.len();
    if len > max_mib.saturating_mul(1024 * 1024) {
        bail!(
            "{} is {len} bytes, over the limit of {max_mib} MiB for a component (limits.max_component_mib)",
            path.display()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut file).take(8).read_to_end(&mut bytes).with_context(cannot_read)?;
    check_header(&bytes, path)?;
    file.read_to_end(&mut bytes).with_context(cannot_read)?;
    let digest = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let component = Component::new(engine, &bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid component: {e:#}", path.display()))?;
    Ok(Compiled { component, digest })
}

/// Whether a file's first bytes are a component's header, saying what they are if not.
fn check_header(bytes: &[u8], path: &Path) -> anyhow::Result<()> {
    if wasmparser::Parser::is_core_wasm(bytes) {
        bail!(
            "{} is a core WebAssembly module, not a component (build it for wasm32-wasip2, or wrap it with `wasm-tools component new`)",
            path.display()
        );
    }
    if !wasmparser::Parser::is_component(bytes) {
        bail!(
            "{} is not a WebAssembly component (not a valid component: it does not start with the component header)",
            path.display()
        );
    }
    Ok(())
}
